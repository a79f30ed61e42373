//! Incremental Server-Sent-Events parser (WHATWG "event stream interpretation").
//!
//! The parser is fed arbitrary byte chunks: a chunk may end inside a line,
//! inside a CRLF pair or inside a multi-byte UTF-8 character. Only the bytes of
//! an incomplete trailing line are copied into an internal buffer; complete
//! lines are interpreted straight from the caller's chunk, so the hot path does
//! no per-byte work beyond a vectorised `memchr2` scan for line terminators.

use std::fmt;

/// UTF-8 byte order mark, ignored at the very start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Event type reported when the event had no (or an empty) `event:` field.
pub const DEFAULT_EVENT_TYPE: &str = "message";

/// Default cap on the size of one line (and of one event's data).
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// A dispatched event. Borrows the parser's buffers, so consumers that only
/// need to copy the bytes elsewhere (e.g. into a Python `bytes`) pay no extra
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Raw value of the `event:` field, empty when absent (see [`Event::event_type`]).
    pub event: &'a [u8],
    /// `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

impl Event<'_> {
    /// The event type as the spec defines it: `"message"` unless an `event:`
    /// field set a non-empty name. Invalid UTF-8 is replaced, as a browser would.
    pub fn event_type(&self) -> std::borrow::Cow<'_, str> {
        if self.event.is_empty() {
            std::borrow::Cow::Borrowed(DEFAULT_EVENT_TYPE)
        } else {
            String::from_utf8_lossy(self.event)
        }
    }

    pub fn into_owned(self) -> OwnedEvent {
        OwnedEvent {
            event: self.event_type().into_owned(),
            data: self.data.to_vec(),
        }
    }
}

/// Owned copy of an [`Event`], convenient for tests and non-hot paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedEvent {
    pub event: String,
    pub data: Vec<u8>,
}

/// Raised when a line or an event outgrows `max_line_bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    LineTooLong { limit: usize },
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::LineTooLong { limit } => write!(
                f,
                "SSE line exceeds max_line_bytes ({limit} bytes) without a line terminator"
            ),
            SseError::EventTooLarge { limit } => {
                write!(f, "SSE event data exceeds max_line_bytes ({limit} bytes)")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// Fields of the event being assembled. Kept apart from the line buffer so a
/// line borrowed from that buffer can be interpreted while this is mutated.
#[derive(Debug, Default)]
struct EventBuilder {
    data: Vec<u8>,
    /// Distinguishes "no data line" (not dispatched) from "one empty data line"
    /// (dispatched with empty data), which `data.is_empty()` cannot.
    has_data: bool,
    event: Vec<u8>,
    last_event_id: Vec<u8>,
    retry_ms: Option<u64>,
}

impl EventBuilder {
    /// Interprets one complete line (terminator already stripped).
    fn process_line<F>(&mut self, line: &[u8], limit: usize, emit: &mut F) -> Result<(), SseError>
    where
        F: FnMut(Event<'_>),
    {
        if line.is_empty() {
            self.dispatch(emit);
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment, often used as a keep-alive
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            // A line without a colon is a field name with an empty value.
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                let extra = value.len() + usize::from(self.has_data);
                if self.data.len() + extra > limit {
                    return Err(SseError::EventTooLarge { limit });
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            // The spec ignores ids containing NUL.
            b"id" if !value.contains(&0) => {
                self.last_event_id.clear();
                self.last_event_id.extend_from_slice(value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Absurdly long digit strings saturate rather than wrap.
                let ms = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry_ms = Some(ms);
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch<F>(&mut self, emit: &mut F)
    where
        F: FnMut(Event<'_>),
    {
        if self.has_data {
            emit(Event {
                event: &self.event,
                data: &self.data,
            });
        }
        // Buffers are cleared, not dropped, so their capacity is reused by the
        // next event of the stream.
        self.data.clear();
        self.event.clear();
        self.has_data = false;
    }
}

/// Per-stream incremental parser. Not thread-safe by design (`&mut self`).
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    builder: EventBuilder,
    /// The previous chunk ended with CR: a LF at the start of the next chunk
    /// belongs to the same CRLF terminator and must be skipped.
    pending_cr: bool,
    /// No line completed yet, so a leading BOM may still have to be removed.
    at_stream_start: bool,
    max_line_bytes: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            builder: EventBuilder::default(),
            pending_cr: false,
            at_stream_start: true,
            max_line_bytes,
        }
    }

    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Bytes held for the incomplete trailing line.
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    /// Last `id:` seen on the stream (persists across events, per the spec).
    pub fn last_event_id(&self) -> &[u8] {
        &self.builder.last_event_id
    }

    /// Last valid `retry:` value in milliseconds.
    pub fn retry_ms(&self) -> Option<u64> {
        self.builder.retry_ms
    }

    /// Consumes `chunk`, calling `emit` for every event it completes, in order.
    ///
    /// On error the parser is reset: the stream is unusable past an oversized
    /// line anyway, and a reset keeps memory bounded.
    pub fn feed_with<F>(&mut self, chunk: &[u8], mut emit: F) -> Result<(), SseError>
    where
        F: FnMut(Event<'_>),
    {
        let result = self.feed_inner(chunk, &mut emit);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn feed_inner<F>(&mut self, chunk: &[u8], emit: &mut F) -> Result<(), SseError>
    where
        F: FnMut(Event<'_>),
    {
        let limit = self.max_line_bytes;
        let mut rest = chunk;
        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(i) = memchr::memchr2(b'\r', b'\n', rest) {
            if self.line.len() + i > limit {
                return Err(SseError::LineTooLong { limit });
            }
            // Interpret straight from the chunk when nothing is buffered (the
            // common case); otherwise complete the buffered line first.
            if self.line.is_empty() {
                let line = strip_bom(&mut self.at_stream_start, &rest[..i]);
                self.builder.process_line(line, limit, emit)?;
            } else {
                self.line.extend_from_slice(&rest[..i]);
                let line = strip_bom(&mut self.at_stream_start, &self.line);
                self.builder.process_line(line, limit, emit)?;
                self.line.clear();
            }
            let terminator = rest[i];
            rest = &rest[i + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
        }
        if self.line.len() + rest.len() > limit {
            return Err(SseError::LineTooLong { limit });
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Convenience wrapper collecting owned events.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<OwnedEvent>, SseError> {
        let mut out = Vec::new();
        self.feed_with(chunk, |e| out.push(e.into_owned()))?;
        Ok(out)
    }

    /// Ends the stream. Unlike the strict spec, a final event that lacks its
    /// blank line (or even its last line terminator) is still dispatched: some
    /// upstreams close the connection right after the last `data:` line.
    /// The parser is then reset and can parse a new stream.
    pub fn finish_with<F>(&mut self, mut emit: F) -> Result<(), SseError>
    where
        F: FnMut(Event<'_>),
    {
        let limit = self.max_line_bytes;
        let line = std::mem::take(&mut self.line);
        let mut result = Ok(());
        if !line.is_empty() {
            let line_ref = strip_bom(&mut self.at_stream_start, &line);
            result = self.builder.process_line(line_ref, limit, &mut emit);
        }
        if result.is_ok() {
            self.builder.dispatch(&mut emit);
        }
        self.line = line;
        self.reset();
        result
    }

    pub fn finish(&mut self) -> Result<Vec<OwnedEvent>, SseError> {
        let mut out = Vec::new();
        self.finish_with(|e| out.push(e.into_owned()))?;
        Ok(out)
    }

    /// Back to the state of a fresh parser, keeping allocated capacity.
    pub fn reset(&mut self) {
        self.line.clear();
        self.builder.data.clear();
        self.builder.event.clear();
        self.builder.has_data = false;
        self.builder.last_event_id.clear();
        self.builder.retry_ms = None;
        self.pending_cr = false;
        self.at_stream_start = true;
    }
}

/// Removes the BOM from the first line of the stream. Done per complete line
/// rather than per chunk so a BOM split across chunks is handled too.
fn strip_bom<'a>(at_stream_start: &mut bool, line: &'a [u8]) -> &'a [u8] {
    if std::mem::replace(at_stream_start, false) {
        line.strip_prefix(BOM).unwrap_or(line)
    } else {
        line
    }
}
