//! SSE encoder producing exactly what [`super::parser::SseParser`] reads back.

/// The OpenAI-style end-of-stream sentinel event.
pub const DONE_EVENT: &[u8] = b"data: [DONE]\n\n";

const DATA_PREFIX: &[u8] = b"data: ";

/// Calls `f` for each line of `data`, splitting on LF, CRLF and CR exactly as
/// the parser does, so that every line becomes its own `data:` field.
fn for_each_line<'a>(data: &'a [u8], mut f: impl FnMut(&'a [u8])) {
    let mut rest = data;
    loop {
        match memchr::memchr2(b'\r', b'\n', rest) {
            None => return f(rest),
            Some(i) => {
                f(&rest[..i]);
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
}

/// Exact size of `encode_event(data)`, used to allocate once.
pub fn encoded_len(data: &[u8]) -> usize {
    // Fast path: the overwhelmingly common single-line payload (JSON).
    if memchr::memchr2(b'\r', b'\n', data).is_none() {
        return DATA_PREFIX.len() + data.len() + 2;
    }
    let mut len = 1; // the blank line closing the event
    for_each_line(data, |line| len += DATA_PREFIX.len() + line.len() + 1);
    len
}

/// Destination of encoded bytes: a growable `Vec` or a pre-sized slice (the
/// Python bindings write straight into a freshly allocated `bytes` object).
pub trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes into a slice sized with [`encoded_len`]; panics on overflow, which
/// would mean `encoded_len` is wrong.
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> SliceSink<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// True once exactly `buf.len()` bytes were written.
    pub fn is_full(&self) -> bool {
        self.pos == self.buf.len()
    }
}

impl Sink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
    }
}

/// Appends one event carrying `data` to `out`.
pub fn encode_event_into<S: Sink + ?Sized>(out: &mut S, data: &[u8]) {
    for_each_line(data, |line| {
        out.put(DATA_PREFIX);
        out.put(line);
        out.put(b"\n");
    });
    out.put(b"\n");
}

/// `data: <data>\n\n`, one `data:` line per line of `data`. Line terminators
/// inside `data` come back from the parser as `\n`.
pub fn encode_event(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(data));
    encode_event_into(&mut out, data);
    out
}

/// Concatenation of [`encode_event`] for every item, in one allocation.
pub fn encode_events<T: AsRef<[u8]>>(items: &[T]) -> Vec<u8> {
    let total = items.iter().map(|d| encoded_len(d.as_ref())).sum();
    let mut out = Vec::with_capacity(total);
    for item in items {
        encode_event_into(&mut out, item.as_ref());
    }
    out
}
