//! One pass over raw JSON bytes that measures what decoding them would cost
//! (nesting depth, number of values, length of the top-level `messages`
//! array) without building any value, so a request can be refused before it
//! becomes Python objects.

pub mod py;
pub mod scanner;

#[cfg(test)]
mod tests;

pub use scanner::{scan, Exceeded, Limit, Limits, Stats};
