//! Incremental AWS event-stream parser.
//!
//! Wire format of one message (all integers big-endian):
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32   (the 12-byte prelude)
//! headers          | payload            | message CRC32 u32
//! ```
//!
//! The prelude CRC covers the first 8 bytes; the message CRC covers everything
//! before it. A header is `name length u8 | name | type u8 | value`.
//!
//! Chunks may split a message anywhere. Complete messages are decoded straight
//! from the caller's chunk; only the bytes of an incomplete trailing message are
//! copied into the parser's buffer, which the prelude's length bounds.

use std::fmt;

pub const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
/// Prelude plus message CRC: the size of a message without headers or payload.
pub const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + CRC_LEN;
/// AWS caps a payload at 16 MiB and the headers at 128 KiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024 + 128 * 1024 + MIN_MESSAGE_LEN;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStreamError {
    PreludeCrc { expected: u32, computed: u32 },
    MessageCrc { expected: u32, computed: u32 },
    BadLength { total: u32, headers: u32 },
    TooLarge { total: u32, limit: usize },
    BadHeader(String),
}

impl fmt::Display for EventStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PreludeCrc { expected, computed } => write!(
                f,
                "event-stream prelude CRC mismatch (expected {expected:#010x}, computed {computed:#010x})"
            ),
            Self::MessageCrc { expected, computed } => write!(
                f,
                "event-stream message CRC mismatch (expected {expected:#010x}, computed {computed:#010x})"
            ),
            Self::BadLength { total, headers } => write!(
                f,
                "event-stream message lengths are inconsistent (total {total}, headers {headers})"
            ),
            Self::TooLarge { total, limit } => write!(
                f,
                "event-stream message of {total} bytes exceeds max_message_bytes ({limit})"
            ),
            Self::BadHeader(reason) => write!(f, "malformed event-stream header: {reason}"),
        }
    }
}

impl std::error::Error for EventStreamError {}

/// A header value; byte arrays and strings borrow from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderValue<'a> {
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Bytes(&'a [u8]),
    String(&'a str),
    /// Milliseconds since the Unix epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: HeaderValue<'a>,
}

/// One decoded message, borrowing the bytes it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    pub headers: Vec<Header<'a>>,
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// The value of a string-typed header such as `:event-type`.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find_map(|h| match h.value {
            HeaderValue::String(s) if h.name == name => Some(s),
            _ => None,
        })
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Checks a 12-byte prelude and returns the message's total length.
fn check_prelude(prelude: &[u8], limit: usize) -> Result<usize, EventStreamError> {
    let expected = be_u32(&prelude[8..12]);
    let computed = crc32fast::hash(&prelude[..8]);
    if expected != computed {
        return Err(EventStreamError::PreludeCrc { expected, computed });
    }
    let total = be_u32(&prelude[0..4]);
    let headers = be_u32(&prelude[4..8]);
    if (total as usize) < MIN_MESSAGE_LEN || headers as usize > total as usize - MIN_MESSAGE_LEN {
        return Err(EventStreamError::BadLength { total, headers });
    }
    if total as usize > limit {
        return Err(EventStreamError::TooLarge { total, limit });
    }
    Ok(total as usize)
}

/// Decodes one complete message (`frame.len()` must equal its total length,
/// and its prelude must already have been checked).
pub fn decode_frame(frame: &[u8]) -> Result<Frame<'_>, EventStreamError> {
    let end = frame.len() - CRC_LEN;
    let expected = be_u32(&frame[end..]);
    let computed = crc32fast::hash(&frame[..end]);
    if expected != computed {
        return Err(EventStreamError::MessageCrc { expected, computed });
    }
    let headers_end = PRELUDE_LEN + be_u32(&frame[4..8]) as usize;
    Ok(Frame {
        headers: parse_headers(&frame[PRELUDE_LEN..headers_end])?,
        payload: &frame[headers_end..end],
    })
}

fn parse_headers(mut bytes: &[u8]) -> Result<Vec<Header<'_>>, EventStreamError> {
    let mut headers = Vec::new();
    while !bytes.is_empty() {
        let name_len = take(&mut bytes, 1)?[0] as usize;
        if name_len == 0 {
            return Err(EventStreamError::BadHeader("empty header name".into()));
        }
        let name = utf8(take(&mut bytes, name_len)?)?;
        let value = match take(&mut bytes, 1)?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(take(&mut bytes, 1)?[0] as i8),
            3 => HeaderValue::Short(i16::from_be_bytes(array(take(&mut bytes, 2)?))),
            4 => HeaderValue::Int(i32::from_be_bytes(array(take(&mut bytes, 4)?))),
            5 => HeaderValue::Long(i64::from_be_bytes(array(take(&mut bytes, 8)?))),
            6 => HeaderValue::Bytes(take_prefixed(&mut bytes)?),
            7 => HeaderValue::String(utf8(take_prefixed(&mut bytes)?)?),
            8 => HeaderValue::Timestamp(i64::from_be_bytes(array(take(&mut bytes, 8)?))),
            9 => HeaderValue::Uuid(array(take(&mut bytes, 16)?)),
            other => {
                return Err(EventStreamError::BadHeader(format!(
                    "unknown value type {other} for header '{name}'"
                )))
            }
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], EventStreamError> {
    if bytes.len() < n {
        return Err(EventStreamError::BadHeader("truncated header".into()));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

fn take_prefixed<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], EventStreamError> {
    let len = u16::from_be_bytes(array(take(bytes, 2)?)) as usize;
    take(bytes, len)
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.try_into().expect("take returned exactly N bytes")
}

fn utf8(bytes: &[u8]) -> Result<&str, EventStreamError> {
    std::str::from_utf8(bytes).map_err(|_| EventStreamError::BadHeader("invalid UTF-8".into()))
}

/// Incremental parser for one stream (not thread-safe). After an error its
/// buffer is dropped: the stream cannot be resynchronised, so callers abort it.
#[derive(Debug)]
pub struct EventStreamParser {
    buf: Vec<u8>,
    max_message_bytes: usize,
}

impl Default for EventStreamParser {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamParser {
    pub fn new() -> Self {
        Self::with_max_message_bytes(DEFAULT_MAX_MESSAGE_BYTES)
    }

    pub fn with_max_message_bytes(max_message_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_message_bytes: max_message_bytes.max(MIN_MESSAGE_LEN),
        }
    }

    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Bytes held for an incomplete trailing message (non-zero at the end of a
    /// stream means it was cut mid-message).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds `chunk`, calling `on_message` for each message it completes, in order.
    pub fn feed_with<F>(&mut self, chunk: &[u8], mut on_message: F) -> Result<(), EventStreamError>
    where
        F: FnMut(Frame<'_>),
    {
        let result = self.feed_inner(chunk, &mut on_message);
        if result.is_err() {
            self.buf = Vec::new();
        }
        result
    }

    fn feed_inner<F>(&mut self, chunk: &[u8], on_message: &mut F) -> Result<(), EventStreamError>
    where
        F: FnMut(Frame<'_>),
    {
        let mut input = chunk;
        if !self.buf.is_empty() {
            // finish the message started by an earlier chunk
            self.fill(&mut input, PRELUDE_LEN);
            if self.buf.len() < PRELUDE_LEN {
                return Ok(());
            }
            let total = check_prelude(&self.buf[..PRELUDE_LEN], self.max_message_bytes)?;
            self.fill(&mut input, total);
            if self.buf.len() < total {
                return Ok(());
            }
            on_message(decode_frame(&self.buf)?);
            self.buf.clear();
        }
        while input.len() >= PRELUDE_LEN {
            let total = check_prelude(&input[..PRELUDE_LEN], self.max_message_bytes)?;
            if input.len() < total {
                break;
            }
            on_message(decode_frame(&input[..total])?);
            input = &input[total..];
        }
        self.buf.extend_from_slice(input);
        Ok(())
    }

    /// Moves bytes from `input` into the buffer until it holds `upto` bytes.
    fn fill(&mut self, input: &mut &[u8], upto: usize) {
        let take = upto.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        *input = &input[take..];
    }
}
