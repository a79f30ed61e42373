//! Provider parameter scaling: rules built once per provider, applied to each
//! request payload in place.

pub mod apply;
pub mod py;
pub mod rule;

#[cfg(test)]
mod tests;

pub use apply::{apply, ApplyError, Payload};
pub use rule::{scale_value, Key, Number, Rule, ScaleError};
