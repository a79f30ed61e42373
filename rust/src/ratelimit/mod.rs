//! Token-bucket rate limiting: in-process buckets (`bucket`), and buckets
//! plus concurrency counters shared by the worker processes of one gateway
//! instance through a memory-mapped table (`gcra`, `shared`).

pub mod bucket;
pub mod clock;
pub mod gcra;
pub mod py;
pub mod py_shared;
pub mod region;
pub mod shared;
pub mod siphash;

#[cfg(test)]
mod shared_tests;
#[cfg(test)]
mod tests;

pub use bucket::{BucketState, Decision, KeyedTokenBuckets, Rate, RateError, TokenBucket};
pub use clock::{Clock, HostClock, ManualClock, MonotonicClock};
pub use gcra::Gcra;
pub use region::Region;
pub use shared::{Layout, SharedTable, TableError, MAX_WORKERS};
pub use siphash::{siphash, SipKey};
