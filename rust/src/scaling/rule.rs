//! Declarative rules mapping OpenAI-style request parameters onto a
//! provider's conventions (ranges, defaults, names), evaluated without Python.

use std::fmt;

/// A numeric default, kept as int or float so e.g. `max_tokens` stays an int.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// A field name plus a backend-specific handle for fast lookups (the Python
/// bindings keep an interned `str` there so dict lookups reuse its hash).
#[derive(Debug, Clone)]
pub struct Key<H = ()> {
    pub name: String,
    pub handle: H,
}

impl Key<()> {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            handle: (),
        }
    }
}

/// One rule, applied to `field`. Steps run in this order:
/// fallback → default → reject check → scale → clamp → rename/drop.
#[derive(Debug, Clone)]
pub struct Rule<H = ()> {
    pub field: Key<H>,
    pub scale: Option<f64>,
    /// Only scale non-zero values (0 stays 0, e.g. "greedy" temperatures).
    pub only_nonzero: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Inserted verbatim (already in provider units) when the value is
    /// missing: it is not scaled, clamped or checked.
    pub default: Option<Number>,
    /// Field whose value is used when `field` is missing; it goes through the
    /// numeric steps like a user value would.
    pub fallback: Option<Key<H>>,
    /// Values above `.0` (before scaling) are refused with message `.1`.
    pub reject_above: Option<(f64, String)>,
    pub rename: Option<Key<H>>,
    pub drop: bool,
}

impl<H> Rule<H> {
    /// A rule that does nothing until its options are set.
    pub fn new(field: Key<H>) -> Self {
        Self {
            field,
            scale: None,
            only_nonzero: false,
            min: None,
            max: None,
            default: None,
            fallback: None,
            reject_above: None,
            rename: None,
            drop: false,
        }
    }

    /// Whether the field's value must be a number.
    pub fn is_numeric(&self) -> bool {
        self.scale.is_some()
            || self.min.is_some()
            || self.max.is_some()
            || self.reject_above.is_some()
    }

    /// Consistency checks that do not depend on how the rule was written.
    pub fn validate(&self) -> Result<(), String> {
        let finite = |name: &str, v: Option<f64>| match v {
            Some(x) if !x.is_finite() => Err(format!("'{name}' must be finite, got {x}")),
            _ => Ok(()),
        };
        finite("scale", self.scale)?;
        finite("min", self.min)?;
        finite("max", self.max)?;
        finite("reject_above", self.reject_above.as_ref().map(|r| r.0))?;
        if let Some(Number::Float(d)) = self.default {
            finite("default", Some(d))?;
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max) {
            if lo > hi {
                return Err(format!("'min' ({lo}) is greater than 'max' ({hi})"));
            }
        }
        if self.rename.is_some() && self.drop {
            return Err("'rename' and 'drop' are mutually exclusive".into());
        }
        let same = |k: &Option<Key<H>>| k.as_ref().is_some_and(|k| k.name == self.field.name);
        if same(&self.fallback) {
            return Err("'fallback' must differ from 'field'".into());
        }
        if same(&self.rename) {
            return Err("'rename' must differ from 'field'".into());
        }
        Ok(())
    }

    /// The numeric steps for a present value: reject check, scale, clamp.
    /// `Ok(None)` means "unchanged": callers keep the original object, so an
    /// int stays an int when nothing applies.
    pub fn transform(&self, value: f64) -> Result<Option<f64>, ScaleError> {
        if let Some((limit, message)) = &self.reject_above {
            if value > *limit {
                return Err(ScaleError::Rejected(message.clone()));
            }
        }
        let mut out = value;
        let mut changed = false;
        if let Some(scale) = self.scale {
            // Scaling by 1 is a no-op and must not turn ints into floats.
            if scale != 1.0 && !(self.only_nonzero && value == 0.0) {
                out *= scale;
                changed = true;
            }
        }
        if let Some(lo) = self.min {
            if out < lo {
                out = lo;
                changed = true;
            }
        }
        if let Some(hi) = self.max {
            if out > hi {
                out = hi;
                changed = true;
            }
        }
        Ok(changed.then_some(out))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScaleError {
    /// A `reject_above` limit was exceeded; carries the configured message.
    Rejected(String),
    /// A numeric rule met a non-number.
    NotANumber { field: String },
}

impl fmt::Display for ScaleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaleError::Rejected(message) => f.write_str(message),
            ScaleError::NotANumber { field } => {
                write!(f, "Invalid value for {field}: expected a number")
            }
        }
    }
}

impl std::error::Error for ScaleError {}

/// Applies every rule for `field`, in order, to a bare number (as if the field
/// were present with `value`). Fields without rules pass through.
pub fn scale_value<H>(rules: &[Rule<H>], field: &str, value: f64) -> Result<f64, ScaleError> {
    let mut v = value;
    for rule in rules.iter().filter(|r| r.field.name == field) {
        if let Some(new) = rule.transform(v)? {
            v = new;
        }
    }
    Ok(v)
}
