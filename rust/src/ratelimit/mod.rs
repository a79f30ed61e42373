//! In-process token-bucket rate limiting.

pub mod bucket;
pub mod clock;
pub mod py;

#[cfg(test)]
mod tests;

pub use bucket::{BucketState, Decision, KeyedTokenBuckets, Rate, RateError, TokenBucket};
pub use clock::{Clock, ManualClock, MonotonicClock};
