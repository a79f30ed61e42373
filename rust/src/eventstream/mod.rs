//! AWS event-stream framing (`application/vnd.amazon.eventstream`): the binary
//! format of Bedrock's ConverseStream and InvokeModelWithResponseStream.

pub mod parser;
pub mod py;

#[cfg(test)]
mod tests;

pub use parser::{
    decode_frame, EventStreamError, EventStreamParser, Frame, Header, HeaderValue,
    DEFAULT_MAX_MESSAGE_BYTES,
};
