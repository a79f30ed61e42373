//! Applying rules to a request payload through the [`Payload`] abstraction,
//! so the same logic runs on a Python dict and on a plain Rust map in tests.

use super::rule::{Key, Number, Rule, ScaleError};

/// A mutable string-keyed map of dynamically typed values.
pub trait Payload {
    /// Key handle stored in the rules (see [`Key`]).
    type Handle;
    type Value;
    /// Backend failure (e.g. a Python exception raised by `__hash__`).
    type Error;

    /// `Ok(None)` when the key is absent.
    fn get(&self, key: &Key<Self::Handle>) -> Result<Option<Self::Value>, Self::Error>;
    fn set(&mut self, key: &Key<Self::Handle>, value: Self::Value) -> Result<(), Self::Error>;
    fn remove(&mut self, key: &Key<Self::Handle>) -> Result<(), Self::Error>;

    fn is_null(&self, value: &Self::Value) -> bool;
    /// The value as a number, `None` if it is not one (booleans are not).
    fn as_number(&self, value: &Self::Value) -> Option<f64>;
    fn float(&self, value: f64) -> Self::Value;
    fn number(&self, value: Number) -> Self::Value;
}

#[derive(Debug)]
pub enum ApplyError<E> {
    Scale(ScaleError),
    Backend(E),
}

impl<E> From<ScaleError> for ApplyError<E> {
    fn from(e: ScaleError) -> Self {
        ApplyError::Scale(e)
    }
}

/// Applies `rules` in order, mutating `payload`.
pub fn apply<P: Payload>(
    rules: &[Rule<P::Handle>],
    payload: &mut P,
) -> Result<(), ApplyError<P::Error>> {
    for rule in rules {
        apply_rule(rule, payload)?;
    }
    Ok(())
}

fn apply_rule<P: Payload>(
    rule: &Rule<P::Handle>,
    payload: &mut P,
) -> Result<(), ApplyError<P::Error>> {
    let present = payload.get(&rule.field).map_err(ApplyError::Backend)?;
    let is_present = present.is_some();
    // Absent and explicit None are treated alike for fallback/default.
    let mut value = present.filter(|v| !payload.is_null(v));
    // Whether `value` differs from what `field` holds and must be written.
    let mut changed = false;
    let mut is_default = false;

    if value.is_none() {
        if let Some(fallback) = &rule.fallback {
            value = payload
                .get(fallback)
                .map_err(ApplyError::Backend)?
                .filter(|v| !payload.is_null(v));
            changed = value.is_some();
        }
    }
    if value.is_none() {
        if let Some(default) = rule.default {
            value = Some(payload.number(default));
            changed = true;
            is_default = true;
        }
    }
    if let Some(v) = &value {
        if rule.is_numeric() && !is_default {
            let x = payload.as_number(v).ok_or_else(|| ScaleError::NotANumber {
                field: rule.field.name.clone(),
            })?;
            if let Some(new) = rule.transform(x)? {
                value = Some(payload.float(new));
                changed = true;
            }
        }
    }

    if rule.drop {
        if is_present {
            payload.remove(&rule.field).map_err(ApplyError::Backend)?;
        }
    } else if let Some(target) = &rule.rename {
        // Re-read the original object when it was kept unchanged (a null
        // value included), so the rename moves it as-is.
        let moved = match value {
            Some(v) => Some(v),
            None if is_present => payload.get(&rule.field).map_err(ApplyError::Backend)?,
            None => None,
        };
        if let Some(v) = moved {
            if is_present {
                payload.remove(&rule.field).map_err(ApplyError::Backend)?;
            }
            payload.set(target, v).map_err(ApplyError::Backend)?;
        }
    } else if changed {
        if let Some(v) = value {
            payload.set(&rule.field, v).map_err(ApplyError::Backend)?;
        }
    }
    Ok(())
}
