//! A fixed-size open-addressing table of `i64` counters in shared memory.
//!
//! Every worker maps the same file; an addition is one `fetch_add`, so
//! concurrent workers never lose an increment. Layout, in 64-bit words:
//!
//! ```text
//! header  8 words: magic, slot count, hash key (2 words), insert lock
//! slots   8 words each (one cache line, so hot counters do not share one):
//!         key hash, check hash, expires_at (unix s), value, pins
//! ```
//!
//! A counter is named by two independent keyed SipHashes of its name (128
//! bits: a collision is negligible, and the key is random per file so names
//! cannot be crafted to collide). Lookups and additions on an existing
//! counter take no lock. Creating a counter (rare: one per scope and window)
//! takes the insert lock, so a name never gets two slots; the lock holds the
//! holder's pid and is taken over if that process died.
//!
//! A slot whose `expires_at` has passed is reused for a new counter. Readers
//! and adders *pin* a slot while they use it (pins up, then check the key);
//! a reclaimer first swaps the key for `RESERVED` and then waits for the pins
//! to drain, so an addition lands either in the old counter or, after a
//! retry, in the new one, never in the wrong one.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ratelimit::region::Region;
use crate::ratelimit::siphash::{siphash, SipKey};

const MAGIC: u64 = u64::from_le_bytes(*b"GWCNTR01");
const HEADER_WORDS: usize = 8;
const H_MAGIC: usize = 0;
const H_SLOTS: usize = 1;
const H_KEY0: usize = 2;
const H_KEY1: usize = 3;
const H_LOCK: usize = 4;
const SLOT_WORDS: usize = 8;
const S_KEY: usize = 0;
const S_CHECK: usize = 1;
const S_EXPIRES: usize = 2;
const S_VALUE: usize = 3;
const S_PINS: usize = 4;
/// Slots looked at for one name.
const PROBE: usize = 64;
pub const MIN_SLOTS: usize = 64;
pub const MAX_SLOTS: usize = 1 << 24;
/// The key word of a slot being (re)initialised.
const RESERVED: u64 = u64::MAX;
/// Tweaks the file's key into the second, independent hash key.
const CHECK_TWEAK: u64 = 0x9e37_79b9_7f4a_7c15;
/// How long a reclaimer waits for a slot's pins to drain before giving up on it.
const PIN_WAIT: Duration = Duration::from_millis(20);
/// How long an insert waits for the lock held by a live process.
const LOCK_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub enum CounterError {
    /// No free or expired slot in the name's probe window.
    Full,
    /// The insert lock stayed taken by a live process (never in practice).
    Busy,
    Layout(String),
    Io(io::Error),
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CounterError::Full => f.write_str(
                "the shared counter table has no room for another counter (every slot it may \
                 use holds a live one)",
            ),
            CounterError::Busy => {
                f.write_str("the shared budget table stayed locked by another worker")
            }
            CounterError::Layout(msg) => f.write_str(msg),
            CounterError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CounterError {}

impl From<io::Error> for CounterError {
    fn from(e: io::Error) -> Self {
        CounterError::Io(e)
    }
}

fn check_slots(slots: usize) -> Result<usize, CounterError> {
    if slots.is_power_of_two() && (MIN_SLOTS..=MAX_SLOTS).contains(&slots) {
        Ok(slots)
    } else {
        Err(CounterError::Layout(format!(
            "counter slots ({slots}) must be a power of two, at least {MIN_SLOTS}, at most 2^24"
        )))
    }
}

fn bytes(slots: usize) -> usize {
    (HEADER_WORDS + SLOT_WORDS * slots) * 8
}

/// A counter's stored identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Id {
    hash: u64,
    check: u64,
}

pub struct Counters {
    region: Region,
    slots: usize,
    key: SipKey,
    check_key: SipKey,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counters")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl Counters {
    /// Creates the instance's table file (it must not exist), mode 0600.
    pub fn create(path: &Path, slots: usize) -> Result<Self, CounterError> {
        let region = Region::create(path, bytes(check_slots(slots)?))?;
        Self::init(region, slots, SipKey::random()?)
    }

    /// Maps a table file made by [`Counters::create`].
    pub fn open(path: &Path) -> Result<Self, CounterError> {
        Self::attach(Region::open(path)?)
    }

    /// A table private to this process.
    pub fn private(slots: usize) -> Result<Self, CounterError> {
        let region = Region::anonymous(bytes(check_slots(slots)?))?;
        Self::init(region, slots, SipKey::random()?)
    }

    /// Writes a fresh header into zeroed memory; the magic goes last.
    pub fn init(region: Region, slots: usize, key: SipKey) -> Result<Self, CounterError> {
        let slots = check_slots(slots)?;
        if region.len() < bytes(slots) {
            return Err(CounterError::Layout("region smaller than the table".into()));
        }
        let w = region.words();
        w[H_SLOTS].store(slots as u64, Ordering::Relaxed);
        w[H_KEY0].store(key.0, Ordering::Relaxed);
        w[H_KEY1].store(key.1, Ordering::Relaxed);
        w[H_MAGIC].store(MAGIC, Ordering::Release);
        Ok(Self::assemble(region, slots, key))
    }

    /// Maps an initialised table, checking its header against its size.
    pub fn attach(region: Region) -> Result<Self, CounterError> {
        let w = region.words();
        if w.len() < HEADER_WORDS || w[H_MAGIC].load(Ordering::Acquire) != MAGIC {
            return Err(CounterError::Layout(
                "not a gateway counter table (bad magic)".into(),
            ));
        }
        let slots = usize::try_from(w[H_SLOTS].load(Ordering::Relaxed)).unwrap_or(0);
        let slots = check_slots(slots)?;
        if region.len() != bytes(slots) {
            return Err(CounterError::Layout(
                "counter table size does not match its header".into(),
            ));
        }
        let key = SipKey(
            w[H_KEY0].load(Ordering::Relaxed),
            w[H_KEY1].load(Ordering::Relaxed),
        );
        Ok(Self::assemble(region, slots, key))
    }

    fn assemble(region: Region, slots: usize, key: SipKey) -> Self {
        let check_key = SipKey(key.0 ^ CHECK_TWEAK, key.1.rotate_left(17) ^ CHECK_TWEAK);
        Self {
            region,
            slots,
            key,
            check_key,
        }
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Slots holding a counter (live or expired).
    pub fn occupancy(&self) -> usize {
        (0..self.slots)
            .filter(|&s| self.word(s, S_KEY).load(Ordering::Relaxed) != 0)
            .count()
    }

    fn id(&self, name: &[u8]) -> Id {
        let hash = siphash(self.key, &[name]);
        Id {
            // 0 marks an empty slot and RESERVED one being set up
            hash: if hash == 0 || hash == RESERVED {
                1
            } else {
                hash
            },
            check: siphash(self.check_key, &[name]),
        }
    }

    fn word(&self, slot: usize, offset: usize) -> &AtomicU64 {
        &self.region.words()[HEADER_WORDS + SLOT_WORDS * slot + offset]
    }

    fn probe(&self, hash: u64) -> impl Iterator<Item = usize> {
        let mask = self.slots - 1;
        let start = usize::try_from(hash).unwrap_or(0) & mask;
        (0..PROBE.min(self.slots)).map(move |i| (start + i) & mask)
    }

    /// The slot holding `id`, if any. Slots never become empty again, so an
    /// empty one ends the search.
    fn find(&self, id: Id) -> Option<usize> {
        for slot in self.probe(id.hash) {
            let key = self.word(slot, S_KEY).load(Ordering::Acquire);
            if key == 0 {
                return None;
            }
            if key == id.hash && self.word(slot, S_CHECK).load(Ordering::Acquire) == id.check {
                return Some(slot);
            }
        }
        None
    }

    /// Pins `slot` if it holds `id`: until `unpin`, it cannot be reclaimed.
    fn pin(&self, slot: usize, id: Id) -> bool {
        self.word(slot, S_PINS).fetch_add(1, Ordering::SeqCst);
        if self.word(slot, S_KEY).load(Ordering::SeqCst) == id.hash
            && self.word(slot, S_CHECK).load(Ordering::SeqCst) == id.check
        {
            return true;
        }
        self.unpin(slot);
        false
    }

    fn unpin(&self, slot: usize) {
        self.word(slot, S_PINS).fetch_sub(1, Ordering::SeqCst);
    }

    fn live(&self, slot: usize, now: u64) -> bool {
        self.word(slot, S_EXPIRES).load(Ordering::Acquire) > now
    }

    fn value(&self, slot: usize) -> i64 {
        self.word(slot, S_VALUE).load(Ordering::Acquire) as i64
    }

    /// The total of each named counter at `now` (unix seconds): 0 for a
    /// counter never added to or expired.
    pub fn totals(&self, names: &[&[u8]], now: u64) -> Vec<i64> {
        names
            .iter()
            .map(|name| self.total(self.id(name), now))
            .collect()
    }

    fn total(&self, id: Id, now: u64) -> i64 {
        // a miss after a found slot means it was reclaimed meanwhile: look again
        for _ in 0..4 {
            let Some(slot) = self.find(id) else { return 0 };
            if self.pin(slot, id) {
                let total = if self.live(slot, now) {
                    self.value(slot)
                } else {
                    0
                };
                self.unpin(slot);
                return total;
            }
        }
        0
    }

    /// Adds `amount` to each `(name, expires_at)` and returns the new
    /// totals. A counter is created on first use; `expires_at` only ever
    /// moves later. An item whose `expires_at` is not after `now` counts
    /// nothing (its window is over) and totals 0. Every slot is resolved
    /// before anything is added, so an error adds nothing.
    pub fn add(
        &self,
        items: &[(&[u8], u64)],
        amount: i64,
        now: u64,
    ) -> Result<Vec<i64>, CounterError> {
        let mut pinned: Vec<Option<usize>> = Vec::with_capacity(items.len());
        for &(name, expires) in items {
            if expires <= now {
                pinned.push(None);
                continue;
            }
            match self.acquire(self.id(name), expires, now) {
                Ok(slot) => pinned.push(Some(slot)),
                Err(e) => {
                    pinned.iter().flatten().for_each(|&s| self.unpin(s));
                    return Err(e);
                }
            }
        }
        let totals = items
            .iter()
            .zip(&pinned)
            .map(|(&(_, expires), slot)| {
                let Some(slot) = *slot else { return 0 };
                self.word(slot, S_EXPIRES)
                    .fetch_max(expires, Ordering::AcqRel);
                let before = self
                    .word(slot, S_VALUE)
                    .fetch_add(amount as u64, Ordering::AcqRel) as i64;
                self.unpin(slot);
                before.wrapping_add(amount)
            })
            .collect();
        Ok(totals)
    }

    /// A pinned, live slot for `id`, created if needed.
    fn acquire(&self, id: Id, expires: u64, now: u64) -> Result<usize, CounterError> {
        if let Some(slot) = self.find(id) {
            if self.pin(slot, id) {
                if self.live(slot, now) {
                    return Ok(slot);
                }
                self.unpin(slot);
            }
        }
        let _lock = self.lock()?;
        self.claim(id, expires, now)
    }

    /// Under the insert lock: the slot of `id` if it is live, else a free or
    /// expired slot set up for it (its own expired slot first, so a name
    /// never has two).
    fn claim(&self, id: Id, expires: u64, now: u64) -> Result<usize, CounterError> {
        let mut candidates = Vec::new();
        for slot in self.probe(id.hash) {
            let key = self.word(slot, S_KEY).load(Ordering::Acquire);
            if key == id.hash && self.word(slot, S_CHECK).load(Ordering::Acquire) == id.check {
                if self.pin(slot, id) {
                    if self.live(slot, now) {
                        return Ok(slot);
                    }
                    self.unpin(slot);
                }
                // its own window is over: start it again here or not at all
                return self
                    .take(slot, key, id, expires, now)
                    .then_some(slot)
                    .ok_or(CounterError::Busy);
            }
            if key == 0 {
                candidates.push((slot, key));
                break;
            }
            // RESERVED under the lock: left by an inserter that died
            if key == RESERVED || !self.live(slot, now) {
                candidates.push((slot, key));
            }
        }
        candidates
            .into_iter()
            .find(|&(slot, key)| self.take(slot, key, id, expires, now))
            .map(|(slot, _)| slot)
            .ok_or(CounterError::Full)
    }

    /// Sets `slot` (whose key word was `key`) up for `id`, pinned. False if
    /// someone still uses it or made it live again.
    fn take(&self, slot: usize, key: u64, id: Id, expires: u64, now: u64) -> bool {
        let cell = self.word(slot, S_KEY);
        if key != RESERVED
            && cell
                .compare_exchange(key, RESERVED, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return false;
        }
        let give_back = || {
            let _ = cell.compare_exchange(RESERVED, key, Ordering::SeqCst, Ordering::SeqCst);
            false
        };
        // additions that pinned the old counter before the swap finish first
        let deadline = Instant::now() + PIN_WAIT;
        while self.word(slot, S_PINS).load(Ordering::SeqCst) != 0 {
            if Instant::now() > deadline {
                return give_back();
            }
            std::thread::yield_now();
        }
        if key != 0 && key != RESERVED && self.live(slot, now) {
            return give_back(); // extended by an addition that was pinned
        }
        self.word(slot, S_CHECK).store(id.check, Ordering::SeqCst);
        self.word(slot, S_EXPIRES).store(expires, Ordering::SeqCst);
        self.word(slot, S_VALUE).store(0, Ordering::SeqCst);
        self.word(slot, S_PINS).fetch_add(1, Ordering::SeqCst);
        cell.store(id.hash, Ordering::SeqCst);
        true
    }

    fn lock(&self) -> Result<LockGuard<'_>, CounterError> {
        let cell = &self.region.words()[H_LOCK];
        let me = u64::from(std::process::id());
        let deadline = Instant::now() + LOCK_WAIT;
        let mut spins = 0u32;
        loop {
            match cell.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(LockGuard(cell)),
                Err(holder) => {
                    spins = spins.wrapping_add(1);
                    if spins % 256 == 0 {
                        if holder != me && !process_alive(holder) {
                            // its holder was killed mid-insert
                            let _ = cell.compare_exchange(
                                holder,
                                0,
                                Ordering::SeqCst,
                                Ordering::SeqCst,
                            );
                        }
                        if Instant::now() > deadline {
                            return Err(CounterError::Busy);
                        }
                    }
                    std::thread::yield_now();
                }
            }
        }
    }
}

struct LockGuard<'a>(&'a AtomicU64);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

fn process_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}
