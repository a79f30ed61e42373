//! A whole OpenAI-shaped chat stream, relayed in one call per upstream read: SSE
//! events in, the client's SSE bytes out. It does in one pass what the Python path
//! does in four (`proxy/streaming.py` `sse_events`, the provider's `chat_chunk`,
//! `proxy/openai_contract.py`'s shaper, the relay's encoder), with the same rules:
//!
//! * `data: [DONE]` ends the stream; an event that is not a JSON object is skipped;
//! * an event Python would raise on (an `error` object, a malformed `choices`) stops
//!   the stream and is handed back ([`Outcome::Failed`]) so Python raises its own error;
//! * usage is taken off every chunk; it rides on the chunk carrying `finish_reason`
//!   (held back until the stream ends), or, when the client asked for
//!   `stream_options.include_usage`, on a last usage-only chunk;
//! * on the OpenAI routes a chunk without an id gets the stream's id.

use serde_json::Value;

use super::chunk::{chat_chunk, write_value, Chunk};
use crate::sse::{SseError, SseParser};

/// What a read (or the end of the stream) left the stream in.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// More events may follow.
    Open,
    /// `data: [DONE]` arrived: the upstream's stream is complete.
    Done,
    /// This event's data would make the Python path raise: it decides the error.
    Failed(Vec<u8>),
}

/// The identity of a chunk, kept to build the final usage-only chunk from.
#[derive(Clone)]
struct Template {
    id: Value,
    created: Value,
    model: Value,
}

impl Template {
    fn of(chunk: &Chunk) -> Self {
        Self {
            id: chunk.id.clone(),
            created: chunk.created.clone(),
            model: chunk.model.clone(),
        }
    }

    fn taken(chunk: &mut Chunk) -> Self {
        Self {
            id: chunk.id.take(),
            created: chunk.created.take(),
            model: chunk.model.take(),
        }
    }
}

pub struct ChatStream {
    parser: SseParser,
    state: State,
    gathered: Gathered,
}

/// The data of one read's events, in one buffer reused from read to read.
#[derive(Default)]
struct Gathered {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Gathered {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.ends.push(self.bytes.len());
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start..end])
    }
}

struct State {
    provider: Vec<u8>,
    include_usage: bool,
    stream_ids: bool,
    stream_id: Option<Value>,
    held: Option<Chunk>,
    usage: Option<Value>,
    usage_only: Option<Template>,
    last: Option<Template>,
    chars: u64,
    produced: bool,
    outcome: Outcome,
}

impl ChatStream {
    /// `provider`: the name every chunk carries; `stream_ids`: give chunks without an id
    /// the stream's own (`chatcmpl-` and 32 random hex digits, made when first needed), as
    /// the OpenAI routes do; otherwise they are left as sent.
    pub fn new(
        provider: &str,
        include_usage: bool,
        stream_ids: bool,
        max_line_bytes: usize,
    ) -> Self {
        let mut provider_json = Vec::with_capacity(provider.len() + 2);
        write_value(&mut provider_json, &Value::String(provider.to_owned()));
        Self {
            parser: SseParser::with_max_line_bytes(max_line_bytes),
            gathered: Gathered::default(),
            state: State {
                provider: provider_json,
                include_usage,
                stream_ids,
                stream_id: None,
                held: None,
                usage: None,
                usage_only: None,
                last: None,
                chars: 0,
                produced: false,
                outcome: Outcome::Open,
            },
        }
    }

    /// One upstream read: appends the client's events to `out`. Events after `[DONE]`
    /// or after a failing event are ignored. A read that holds an oversized line changes
    /// nothing (the Python path drops the whole read too): its events are gathered first.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<&Outcome, SseError> {
        let gathered = &mut self.gathered;
        gathered.clear();
        self.parser
            .feed_with(data, |event| gathered.push(event.data))?;
        self.apply(out);
        Ok(&self.state.outcome)
    }

    /// The upstream's body ended: a last event without its blank line still counts.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<&Outcome, SseError> {
        let gathered = &mut self.gathered;
        gathered.clear();
        self.parser.finish_with(|event| gathered.push(event.data))?;
        self.apply(out);
        Ok(&self.state.outcome)
    }

    fn apply(&mut self, out: &mut Vec<u8>) {
        for data in self.gathered.iter() {
            self.state.event(data, out);
        }
    }

    /// After the last event: the held chunk (with the usage, unless the client asked
    /// for its own usage chunk), then that usage chunk.
    pub fn tail(&mut self, out: &mut Vec<u8>) {
        let state = &mut self.state;
        if let Some(mut held) = state.held.take() {
            if !state.include_usage {
                held.usage = state.usage.clone().unwrap_or(Value::Null);
            }
            held.write_event(&state.provider, out);
        }
        if state.include_usage {
            if let (Some(usage), Some(template)) = (
                &state.usage,
                state.usage_only.as_ref().or(state.last.as_ref()),
            ) {
                let chunk = Chunk {
                    id: template.id.clone(),
                    created: template.created.clone(),
                    model: template.model.clone(),
                    choices: Vec::new(),
                    usage: usage.clone(),
                };
                chunk.write_event(&state.provider, out);
            }
        }
    }

    /// When the stream fails: what was delivered still reaches the client, so the
    /// held chunk (as it is, without usage) is written.
    pub fn flush_held(&mut self, out: &mut Vec<u8>) {
        if let Some(held) = self.state.held.take() {
            held.write_event(&self.state.provider, out);
        }
    }

    /// The last usage the upstream reported (reports are cumulative), as JSON.
    pub fn usage(&self) -> Option<&Value> {
        self.state.usage.as_ref()
    }

    /// Characters of text delivered so far.
    pub fn chars(&self) -> u64 {
        self.state.chars
    }

    /// Whether any event made a chunk (a stream that made none is an upstream failure).
    pub fn produced(&self) -> bool {
        self.state.produced
    }
}

impl State {
    fn event(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.outcome != Outcome::Open {
            return;
        }
        if data == b"[DONE]" {
            self.outcome = Outcome::Done;
            return;
        }
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(data) else {
            return; // not JSON, or not an object: skipped, as the Python path skips it
        };
        if map.contains_key("error") {
            self.outcome = Outcome::Failed(data.to_vec());
            return;
        }
        match chat_chunk(map) {
            Some(chunk) => self.shape(chunk, out),
            None => self.outcome = Outcome::Failed(data.to_vec()),
        }
    }

    /// `_Shaper.feed` for one chunk.
    fn shape(&mut self, mut chunk: Chunk, out: &mut Vec<u8>) {
        self.produced = true;
        if chunk.id.is_null() && self.stream_ids {
            chunk.id = self.stream_id.get_or_insert_with(new_stream_id).clone();
        }
        if !chunk.usage.is_null() {
            self.usage = Some(chunk.usage.take());
        }
        if chunk.choices.is_empty() {
            let template = Template::taken(&mut chunk);
            self.usage_only = Some(template.clone());
            self.last = Some(template);
            return;
        }
        self.chars += chunk.text_length() as u64;
        if let Some(held) = self.held.take() {
            held.write_event(&self.provider, out);
        }
        if chunk.finishes() {
            self.last = Some(Template::of(&chunk));
            self.held = Some(chunk);
        } else {
            chunk.write_event(&self.provider, out);
            self.last = Some(Template::taken(&mut chunk)); // written: its fields can move
        }
    }
}

/// `chatcmpl-` and 32 random hex digits, as `uuid.uuid4().hex` gives the Python path.
fn new_stream_id() -> Value {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: the pointer and length describe `rest`, which the call fills
        let got = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if got <= 0 {
            // no getrandom (very old kernels): the clock still makes ids unlikely to repeat
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos());
            bytes = nanos.to_le_bytes();
            break;
        }
        filled += got as usize;
    }
    let mut id = String::with_capacity(9 + 32);
    id.push_str("chatcmpl-");
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    Value::String(id)
}
