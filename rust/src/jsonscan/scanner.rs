//! The scanner: structure only. Strings are skipped with `memchr`, nothing is
//! decoded or allocated (one bit per nesting level past the first 128 aside).
//!
//! It does not validate JSON: orjson does that afterwards for bodies within
//! the limits. Invalid input is measured as far as it makes sense (stray
//! closing brackets are ignored, an unterminated string runs to the end) and
//! never panics. Counts are exact for valid JSON.

use memchr::memchr2;

/// What one body may cost before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of arrays and objects (`[]` is 1, `[[]]` is 2).
    pub max_depth: usize,
    /// Array elements plus object members, counted at every level.
    pub max_values: u64,
    /// Elements of the array that is the value of a top-level `messages` member.
    pub max_messages: u64,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        max_depth: usize::MAX,
        max_values: u64::MAX,
        max_messages: u64::MAX,
    };
}

/// What a body that is within its limits holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub depth: usize,
    pub values: u64,
    /// Length of the longest top-level `messages` array (several when the key
    /// is repeated: orjson builds each before it keeps the last).
    pub messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Depth,
    Values,
    Messages,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Depth => "depth",
            Limit::Values => "values",
            Limit::Messages => "messages",
        }
    }
}

/// The first limit a body crosses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    /// For `Depth`, the deepest nesting of the whole input (after the limit
    /// the scan goes on counting brackets only, so a caller can tell "a bit
    /// too deep" from "deeper than any parser goes"). For `Values` and
    /// `Messages`, the limit plus one: the scan stops there.
    pub observed: u64,
}

/// Measures `input` against `limits`, stopping at the first limit crossed.
pub fn scan(input: &[u8], limits: &Limits) -> Result<Stats, Exceeded> {
    let mut state = State::new(limits);
    let n = input.len();
    let mut i = 0;
    while i < n {
        match input[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                let new = state.start_value()?;
                let end = skip_string(input, i + 1);
                if state.depth == 1 {
                    // a key of the top-level object, or a top-level member's string value
                    state.messages_key =
                        new && state.objects.get(1) && key_is(&input[i + 1..end], b"messages");
                }
                i = end + 1;
            }
            open @ (b'[' | b'{') => {
                let new = state.start_value()?;
                if state.depth == 1 && !new {
                    // the value of a top-level member: is it the messages array?
                    state.in_messages = open == b'[' && state.messages_key;
                    state.messages = 0;
                    state.messages_key = false;
                }
                state.depth += 1;
                if state.depth > limits.max_depth {
                    return Err(Exceeded {
                        limit: Limit::Depth,
                        observed: deepest(input, i + 1, state.depth) as u64,
                    });
                }
                state.stats.depth = state.stats.depth.max(state.depth);
                state.objects.set(state.depth, open == b'{');
                state.expect_item = true;
                i += 1;
            }
            b']' | b'}' => {
                if state.depth == 2 && state.in_messages {
                    state.close_messages();
                }
                state.depth = state.depth.saturating_sub(1);
                state.expect_item = false;
                i += 1;
            }
            b',' => {
                state.expect_item = state.depth > 0;
                i += 1;
            }
            b':' => {
                state.expect_item = false;
                i += 1;
            }
            _ => {
                // a number, true, false, null (or garbage): one value, skipped whole
                state.start_value()?;
                if state.depth == 1 {
                    state.messages_key = false;
                }
                i += 1;
                while i < n && !is_delimiter(input[i]) {
                    i += 1;
                }
            }
        }
    }
    if state.in_messages {
        state.close_messages(); // unterminated input
    }
    Ok(state.stats)
}

struct State<'a> {
    limits: &'a Limits,
    stats: Stats,
    depth: usize,
    objects: BitStack,
    /// The next value or key begins a new element or member of the current container.
    expect_item: bool,
    /// The last key of the top-level object was `messages`.
    messages_key: bool,
    /// Inside that key's array (depth 2), with `messages` elements so far.
    in_messages: bool,
    messages: u64,
}

impl<'a> State<'a> {
    fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            stats: Stats::default(),
            depth: 0,
            objects: BitStack::new(),
            expect_item: false,
            messages_key: false,
            in_messages: false,
            messages: 0,
        }
    }

    /// A value or key starts: counts it when it begins a new element or
    /// member, which it returns. Keys count as members; the value after a
    /// `:` does not count again.
    #[inline(always)]
    fn start_value(&mut self) -> Result<bool, Exceeded> {
        if !self.expect_item {
            return Ok(false);
        }
        self.expect_item = false;
        self.stats.values += 1;
        if self.stats.values > self.limits.max_values {
            return Err(Exceeded {
                limit: Limit::Values,
                observed: self.stats.values,
            });
        }
        if self.in_messages && self.depth == 2 {
            self.messages += 1;
            if self.messages > self.limits.max_messages {
                return Err(Exceeded {
                    limit: Limit::Messages,
                    observed: self.messages,
                });
            }
        }
        Ok(true)
    }

    fn close_messages(&mut self) {
        self.in_messages = false;
        self.stats.messages = self.stats.messages.max(self.messages);
    }
}

/// Index of the quote closing a string whose content starts at `i`, or the
/// input's length when it is unterminated. Short strings and the bytes after
/// an escape are looked at one by one; long runs go to `memchr2`, whose set-up
/// costs more than a short loop.
#[inline]
fn skip_string(input: &[u8], mut i: usize) -> usize {
    let n = input.len();
    loop {
        let stop = n.min(i + SHORT_RUN);
        while i < stop {
            match input[i] {
                b'"' => return i,
                b'\\' => i += 2, // the escaped byte cannot close the string
                _ => i += 1,
            }
        }
        if i >= n {
            return n;
        }
        match memchr2(b'"', b'\\', &input[i..]) {
            None => return n,
            Some(k) => {
                i += k;
                if input[i] == b'"' {
                    return i;
                }
                i += 2;
            }
        }
    }
}

const SHORT_RUN: usize = 16;

/// Bytes that end a number or literal.
static DELIMITER: [bool; 256] = {
    let mut table = [false; 256];
    let mut k = 0;
    let bytes = b" \t\n\r,:[]{}\"";
    while k < bytes.len() {
        table[bytes[k] as usize] = true;
        k += 1;
    }
    table
};

#[inline(always)]
fn is_delimiter(b: u8) -> bool {
    DELIMITER[b as usize]
}

/// Deepest nesting from `i` on, starting at `depth`: brackets only.
fn deepest(input: &[u8], mut i: usize, mut depth: usize) -> usize {
    let mut max = depth;
    while i < input.len() {
        match input[i] {
            b'"' => i = skip_string(input, i + 1),
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Whether the raw content of a JSON string (between its quotes) decodes to
/// `target`, an ASCII word: `"m\u0065ssages"` is `messages` to orjson too.
fn key_is(raw: &[u8], target: &[u8]) -> bool {
    if !raw.contains(&b'\\') {
        return raw == target;
    }
    let mut want = target.iter();
    let mut i = 0;
    while i < raw.len() {
        let byte = if raw[i] == b'\\' {
            let Some(&escape) = raw.get(i + 1) else {
                return false;
            };
            i += 2;
            match escape {
                b'"' | b'\\' | b'/' => escape,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let Some(code) = raw.get(i..i + 4).and_then(hex4) else {
                        return false;
                    };
                    i += 4;
                    match u8::try_from(code) {
                        Ok(ascii) if ascii.is_ascii() => ascii,
                        _ => return false, // not ASCII, so not in `target`
                    }
                }
                _ => return false,
            }
        } else {
            i += 1;
            raw[i - 1]
        };
        if want.next() != Some(&byte) {
            return false;
        }
    }
    want.next().is_none()
}

fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc * 16 + v)
    })
}

/// One bit per nesting level (set: object); the first 128 levels need no
/// allocation.
struct BitStack {
    inline: [u64; 2],
    spill: Vec<u64>,
}

impl BitStack {
    fn new() -> Self {
        Self {
            inline: [0; 2],
            spill: Vec::new(),
        }
    }

    fn word(&mut self, index: usize) -> &mut u64 {
        if index < self.inline.len() {
            return &mut self.inline[index];
        }
        let index = index - self.inline.len();
        if index >= self.spill.len() {
            self.spill.resize(index + 1, 0);
        }
        &mut self.spill[index]
    }

    fn set(&mut self, level: usize, bit: bool) {
        let mask = 1u64 << (level % 64);
        let word = self.word(level / 64);
        if bit {
            *word |= mask;
        } else {
            *word &= !mask;
        }
    }

    fn get(&self, level: usize) -> bool {
        let index = level / 64;
        let word = if index < self.inline.len() {
            self.inline[index]
        } else {
            self.spill
                .get(index - self.inline.len())
                .copied()
                .unwrap_or(0)
        };
        word & (1u64 << (level % 64)) != 0
    }
}
