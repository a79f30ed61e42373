//! Server-Sent-Events: incremental parser and encoder.

pub mod encoder;
pub mod parser;
pub mod py;

#[cfg(test)]
mod tests;

pub use encoder::{encode_event, encode_event_into, encode_events, encoded_len, DONE_EVENT};
pub use parser::{Event, OwnedEvent, SseError, SseParser};
