//! One upstream chat-completion chunk (OpenAI's stream shape) normalised the way
//! `gateway.providers.openai_shapes.chat_chunk` does it, and written back as the
//! JSON the gateway's `ChatChunk` schema encodes to.
//!
//! The Python function reads the upstream's values with `dict.get` and passes them
//! on untyped, so this does the same with `serde_json::Value`: any value the
//! upstream put in `id`, `index`, `content`, ... comes out as it went in. What the
//! Python code would raise on (a `choices` that is a string, a `delta` that is a
//! list, ...) is reported as `None`: the caller lets Python raise its own error.

use serde_json::{Map, Value};

/// A choice's normalised fields, in the order `ChatChunkChoice` / `ChatDelta` emit them.
pub struct Choice {
    pub index: Value,
    pub finish_reason: Value,
    pub role: Value,
    pub content: Value,
    /// `None`: `"tool_calls": null`.
    pub tool_calls: Option<Vec<Map<String, Value>>>,
}

pub struct Chunk {
    pub id: Value,
    pub created: Value,
    pub model: Value,
    pub choices: Vec<Choice>,
    pub usage: Value,
}

/// Python's truthiness of a JSON value (`value or default` in the Python code).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `mapping.get(key)` (missing: null).
fn get(map: &mut Map<String, Value>, key: &str) -> Value {
    map.get_mut(key).map(Value::take).unwrap_or(Value::Null)
}

/// `value or {}` where the Python code then calls `.get` on it: `Some(empty)` when
/// falsy, the object when it is one, `None` (Python would raise) otherwise.
fn object_or_empty(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other if !truthy(&other) => Some(Map::new()),
        _ => None,
    }
}

/// `value or ()` iterated where each item must be a dict: the dicts, or `None` when
/// Python would raise (a truthy non-list, or a list holding a non-dict).
fn objects_or_empty(value: Value) -> Option<Vec<Map<String, Value>>> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .collect(),
        other if !truthy(&other) => Some(Vec::new()),
        _ => None,
    }
}

/// `mapping.get("index", 0)`: a missing index is 0, a null one stays null.
fn index_of(map: &mut Map<String, Value>) -> Value {
    match map.get_mut("index") {
        Some(value) => value.take(),
        None => Value::from(0),
    }
}

/// Moves `keys` from `from` to `to`, leaving out the missing and null ones.
fn move_present(from: &mut Map<String, Value>, to: &mut Map<String, Value>, keys: [&str; 2]) {
    for key in keys {
        let value = get(from, key);
        if !value.is_null() {
            to.insert(key.into(), value);
        }
    }
}

/// `_tool_call_delta`, then `_drop_null_tool_call_fields` (the OpenAI SDK's stream
/// helper breaks on null `id` / `type` / `function.name` / `function.arguments`).
fn tool_call(mut call: Map<String, Value>) -> Option<Map<String, Value>> {
    let mut function = object_or_empty(get(&mut call, "function"))?;
    let mut out = Map::new();
    out.insert("index".into(), index_of(&mut call));
    move_present(&mut call, &mut out, ["id", "type"]);
    let mut function_out = Map::new();
    move_present(&mut function, &mut function_out, ["name", "arguments"]);
    out.insert("function".into(), Value::Object(function_out));
    Some(out)
}

/// `chat_chunk(data)`; `None` where it would raise.
pub fn chat_chunk(mut data: Map<String, Value>) -> Option<Chunk> {
    let mut choices = Vec::new();
    for mut choice in objects_or_empty(get(&mut data, "choices"))? {
        let mut delta = object_or_empty(get(&mut choice, "delta"))?;
        let calls = get(&mut delta, "tool_calls");
        let tool_calls = if truthy(&calls) {
            let calls = objects_or_empty(calls)?;
            Some(
                calls
                    .into_iter()
                    .map(tool_call)
                    .collect::<Option<Vec<_>>>()?,
            )
        } else {
            None
        };
        choices.push(Choice {
            index: index_of(&mut choice),
            finish_reason: get(&mut choice, "finish_reason"),
            role: get(&mut delta, "role"),
            content: get(&mut delta, "content"),
            tool_calls,
        });
    }
    Some(Chunk {
        id: get(&mut data, "id"),
        created: get(&mut data, "created"),
        model: get(&mut data, "model"),
        choices,
        usage: get(&mut data, "usage"),
    })
}

impl Chunk {
    /// The text this chunk delivers, in characters (Python's `len`), for usage estimates.
    pub fn text_length(&self) -> usize {
        self.choices
            .iter()
            .map(|choice| match &choice.content {
                Value::String(text) => text.chars().count(),
                _ => 0,
            })
            .sum()
    }

    pub fn finishes(&self) -> bool {
        self.choices
            .iter()
            .any(|choice| !choice.finish_reason.is_null())
    }

    /// One SSE event: `data: <the ChatChunk's JSON>\n\n`.
    /// `provider` is the provider's name already written as a JSON string.
    pub fn write_event(&self, provider: &[u8], out: &mut Vec<u8>) {
        put(out, b"data: {\"id\":", &self.id);
        put(
            out,
            b",\"object\":\"chat.completion.chunk\",\"created\":",
            &self.created,
        );
        put(out, b",\"model\":", &self.model);
        out.extend_from_slice(b",\"choices\":[");
        for (i, choice) in self.choices.iter().enumerate() {
            put(
                out,
                if i > 0 {
                    b",{\"index\":"
                } else {
                    b"{\"index\":"
                },
                &choice.index,
            );
            put(out, b",\"finish_reason\":", &choice.finish_reason);
            put(out, b",\"delta\":{\"role\":", &choice.role);
            put(out, b",\"content\":", &choice.content);
            out.extend_from_slice(b",\"tool_calls\":");
            match &choice.tool_calls {
                None => out.extend_from_slice(b"null"),
                Some(calls) => {
                    out.push(b'[');
                    for (j, call) in calls.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        serde_json::to_writer(&mut *out, call).expect("JSON into memory");
                    }
                    out.push(b']');
                }
            }
            out.extend_from_slice(b"}}");
        }
        put(out, b"],\"usage\":", &self.usage);
        out.extend_from_slice(b",\"provider\":");
        out.extend_from_slice(provider);
        out.extend_from_slice(b"}\n\n");
    }
}

/// `prefix` (a key, with what precedes it), then the value.
fn put(out: &mut Vec<u8>, prefix: &[u8], value: &Value) {
    out.extend_from_slice(prefix);
    write_value(out, value);
}

pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    // writing JSON to a Vec cannot fail
    serde_json::to_writer(&mut *out, value).expect("JSON into memory");
}
