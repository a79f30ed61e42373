//! OpenAI-shaped chat streams relayed natively: one call per upstream read parses
//! the SSE events, normalises each chunk, applies OpenAI's stream contract (usage
//! placement, stream ids) and writes the client's SSE bytes.

pub mod chunk;
pub mod py;
pub mod shaper;

#[cfg(test)]
mod tests;

pub use shaper::{ChatStream, Outcome};
