//! HTTP/1.1 chunked transfer coding (RFC 9112 §7.1), decoded incrementally: the
//! body bytes of every chunk a read completes, joined, in one call per read.

pub mod decoder;
pub mod py;

#[cfg(test)]
mod tests;

pub use decoder::{ChunkedDecoder, ChunkedError, Decoded};
