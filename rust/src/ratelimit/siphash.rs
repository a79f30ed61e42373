//! SipHash-2-4 with a secret key, for the shared bucket table.
//!
//! Client keys (addresses, bearer tokens) are stored only as this keyed
//! hash, and because the key is random per gateway instance a client cannot
//! craft keys that pile up in one probe window of the open-addressing table.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

impl SipKey {
    /// A fresh key from the kernel's random source (one per table file).
    pub fn random() -> std::io::Result<Self> {
        use std::io::Read;
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        let (a, b) = bytes.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        Ok(SipKey(word(a), word(b)))
    }
}

struct State {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl State {
    fn new(key: SipKey) -> Self {
        Self {
            v0: key.0 ^ 0x736f_6d65_7073_6575,
            v1: key.1 ^ 0x646f_7261_6e64_6f6d,
            v2: key.0 ^ 0x6c79_6765_6e65_7261,
            v3: key.1 ^ 0x7465_6462_7974_6573,
        }
    }

    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13) ^ self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16) ^ self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21) ^ self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17) ^ self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.round();
        self.v0 ^= m;
    }
}

/// SipHash-2-4 of the concatenation of `parts`.
pub fn siphash(key: SipKey, parts: &[&[u8]]) -> u64 {
    let mut s = State::new(key);
    let mut tail = [0u8; 8];
    let mut filled = 0usize;
    let mut total = 0usize;
    for part in parts {
        total += part.len();
        let mut rest: &[u8] = part;
        // top up a word left partial by the previous part
        while filled > 0 && !rest.is_empty() {
            tail[filled] = rest[0];
            filled = (filled + 1) % 8;
            rest = &rest[1..];
            if filled == 0 {
                s.compress(u64::from_le_bytes(tail));
            }
        }
        let mut words = rest.chunks_exact(8);
        for word in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            s.compress(u64::from_le_bytes(bytes));
        }
        for &byte in words.remainder() {
            tail[filled] = byte;
            filled += 1;
        }
    }
    let mut last = [0u8; 8];
    last[..filled].copy_from_slice(&tail[..filled]);
    // Only the length's low byte takes part, as the reference specifies.
    last[7] = total as u8;
    s.compress(u64::from_le_bytes(last));
    s.v2 ^= 0xff;
    for _ in 0..4 {
        s.round();
    }
    s.v0 ^ s.v1 ^ s.v2 ^ s.v3
}
