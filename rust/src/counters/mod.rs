//! Integer counters that expire, shared by the worker processes of one
//! gateway instance through a memory-mapped table: the spend ledger of the
//! budgets. The mapping and the keyed hash are the rate-limit table's
//! (`ratelimit::region`, `ratelimit::siphash`).

pub mod py;
pub mod table;

#[cfg(test)]
mod tests;

pub use table::{CounterError, Counters};
