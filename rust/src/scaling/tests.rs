use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

/// JSON-like value for a plain-Rust [`Payload`].
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

type Map = HashMap<String, Val>;

impl Payload for Map {
    type Handle = ();
    type Value = Val;
    type Error = std::convert::Infallible;

    fn get(&self, key: &Key) -> Result<Option<Val>, Self::Error> {
        Ok(HashMap::get(self, &key.name).cloned())
    }
    fn set(&mut self, key: &Key, value: Val) -> Result<(), Self::Error> {
        self.insert(key.name.clone(), value);
        Ok(())
    }
    fn remove(&mut self, key: &Key) -> Result<(), Self::Error> {
        HashMap::remove(self, &key.name);
        Ok(())
    }
    fn is_null(&self, value: &Val) -> bool {
        *value == Val::Null
    }
    fn as_number(&self, value: &Val) -> Option<f64> {
        match value {
            Val::Int(i) => Some(*i as f64),
            Val::Float(f) => Some(*f),
            _ => None,
        }
    }
    fn float(&self, value: f64) -> Val {
        Val::Float(value)
    }
    fn number(&self, value: Number) -> Val {
        match value {
            Number::Int(i) => Val::Int(i),
            Number::Float(f) => Val::Float(f),
        }
    }
}

fn map(items: &[(&str, Val)]) -> Map {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn rule(field: &str) -> Rule {
    Rule::new(Key::new(field))
}

fn run(rules: &[Rule], items: &[(&str, Val)]) -> Result<Map, ScaleError> {
    let mut m = map(items);
    match apply(rules, &mut m) {
        Ok(()) => Ok(m),
        Err(ApplyError::Scale(e)) => Err(e),
        Err(ApplyError::Backend(never)) => match never {},
    }
}

fn run1(rule: &Rule, items: &[(&str, Val)]) -> Result<Map, ScaleError> {
    run(std::slice::from_ref(rule), items)
}

#[test]
fn scale_turns_ints_into_floats() {
    let r = Rule {
        scale: Some(0.5),
        ..rule("temperature")
    };
    assert_eq!(
        run1(&r, &[("temperature", Val::Int(1))]).unwrap(),
        map(&[("temperature", Val::Float(0.5))])
    );
    assert_eq!(
        run1(&r, &[("temperature", Val::Float(1.5))]).unwrap(),
        map(&[("temperature", Val::Float(0.75))])
    );
}

#[test]
fn scale_by_one_keeps_original_value() {
    let r = Rule {
        scale: Some(1.0),
        ..rule("t")
    };
    assert_eq!(
        run1(&r, &[("t", Val::Int(3))]).unwrap(),
        map(&[("t", Val::Int(3))])
    );
}

#[test]
fn only_nonzero() {
    let r = Rule {
        scale: Some(2.0),
        only_nonzero: true,
        ..rule("t")
    };
    assert_eq!(
        run1(&r, &[("t", Val::Int(0))]).unwrap(),
        map(&[("t", Val::Int(0))])
    );
    assert_eq!(
        run1(&r, &[("t", Val::Int(2))]).unwrap(),
        map(&[("t", Val::Float(4.0))])
    );
}

#[test]
fn min_and_max_clamp_after_scaling() {
    // HF TGI: temperature scaled by 50 and kept strictly positive.
    let tgi = Rule {
        scale: Some(50.0),
        min: Some(0.001),
        ..rule("temperature")
    };
    assert_eq!(
        run1(&tgi, &[("temperature", Val::Int(0))]).unwrap(),
        map(&[("temperature", Val::Float(0.001))])
    );
    assert_eq!(tgi.transform(0.5).unwrap(), Some(25.0));
    let capped = Rule {
        scale: Some(2.0),
        max: Some(1.0),
        ..rule("top_p")
    };
    assert_eq!(capped.transform(0.9).unwrap(), Some(1.0));
    // A value already in range is untouched (an int stays an int).
    let clamp_only = Rule {
        min: Some(0.0),
        max: Some(10.0),
        ..rule("n")
    };
    assert_eq!(clamp_only.transform(3.0).unwrap(), None);
    assert_eq!(
        run1(&clamp_only, &[("n", Val::Int(3))]).unwrap(),
        map(&[("n", Val::Int(3))])
    );
}

#[test]
fn default_when_absent_or_null() {
    let r = Rule {
        default: Some(Number::Int(8192)),
        ..rule("max_tokens")
    };
    assert_eq!(
        run1(&r, &[]).unwrap(),
        map(&[("max_tokens", Val::Int(8192))])
    );
    assert_eq!(
        run1(&r, &[("max_tokens", Val::Null)]).unwrap(),
        map(&[("max_tokens", Val::Int(8192))])
    );
    assert_eq!(
        run1(&r, &[("max_tokens", Val::Int(5))]).unwrap(),
        map(&[("max_tokens", Val::Int(5))])
    );
}

#[test]
fn default_is_not_scaled_or_checked() {
    let r = Rule {
        scale: Some(2.0),
        reject_above: Some((1.0, "too big".into())),
        default: Some(Number::Float(7.0)),
        ..rule("x")
    };
    assert_eq!(run1(&r, &[]).unwrap(), map(&[("x", Val::Float(7.0))]));
}

fn anthropic_rules() -> Vec<Rule> {
    vec![
        Rule {
            fallback: Some(Key::new("max_completion_tokens")),
            default: Some(Number::Int(8192)),
            reject_above: Some((
                1_000_000.0,
                "Invalid value for max_tokens: cannot exceed 1000000.".into(),
            )),
            ..rule("max_tokens")
        },
        Rule {
            drop: true,
            ..rule("max_completion_tokens")
        },
    ]
}

#[test]
fn fallback_then_default_then_drop() {
    let rules = anthropic_rules();
    assert_eq!(
        run(&rules, &[("max_completion_tokens", Val::Int(100))]).unwrap(),
        map(&[("max_tokens", Val::Int(100))])
    );
    assert_eq!(
        run(
            &rules,
            &[
                ("max_tokens", Val::Int(5)),
                ("max_completion_tokens", Val::Int(100))
            ]
        )
        .unwrap(),
        map(&[("max_tokens", Val::Int(5))])
    );
    assert_eq!(
        run(&rules, &[("max_completion_tokens", Val::Null)]).unwrap(),
        map(&[("max_tokens", Val::Int(8192))])
    );
    assert_eq!(
        run(&rules, &[]).unwrap(),
        map(&[("max_tokens", Val::Int(8192))])
    );
}

#[test]
fn reject_above_uses_configured_message_and_checks_fallback_values() {
    let rules = anthropic_rules();
    let err = run(&rules, &[("max_tokens", Val::Int(1_000_001))]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid value for max_tokens: cannot exceed 1000000."
    );
    let err = run(&rules, &[("max_completion_tokens", Val::Int(2_000_000))]).unwrap_err();
    assert!(matches!(err, ScaleError::Rejected(_)));
    // Exactly at the limit is fine; the check runs before scaling.
    assert!(run(&rules, &[("max_tokens", Val::Int(1_000_000))]).is_ok());
    let scaled = Rule {
        scale: Some(10.0),
        reject_above: Some((1.0, "no".into())),
        ..rule("t")
    };
    assert_eq!(scaled.transform(1.0).unwrap(), Some(10.0));
    assert!(scaled.transform(1.5).is_err());
}

#[test]
fn rename_moves_value() {
    let r = Rule {
        scale: Some(2.0),
        rename: Some(Key::new("maxOutputTokens")),
        ..rule("max_tokens")
    };
    assert_eq!(
        run1(&r, &[("max_tokens", Val::Int(10))]).unwrap(),
        map(&[("maxOutputTokens", Val::Float(20.0))])
    );
    assert_eq!(run1(&r, &[]).unwrap(), map(&[]));
    let plain = Rule {
        rename: Some(Key::new("stop_sequences")),
        ..rule("stop")
    };
    assert_eq!(
        run1(&plain, &[("stop", Val::Str("x".into()))]).unwrap(),
        map(&[("stop_sequences", Val::Str("x".into()))])
    );
    assert_eq!(
        run1(&plain, &[("stop", Val::Null)]).unwrap(),
        map(&[("stop_sequences", Val::Null)])
    );
}

#[test]
fn rename_with_default_inserts_under_new_name() {
    let r = Rule {
        default: Some(Number::Int(1)),
        rename: Some(Key::new("n_new")),
        ..rule("n")
    };
    assert_eq!(run1(&r, &[]).unwrap(), map(&[("n_new", Val::Int(1))]));
}

#[test]
fn drop_removes_field() {
    let r = Rule {
        drop: true,
        ..rule("logprobs")
    };
    assert_eq!(
        run1(&r, &[("logprobs", Val::Bool(true)), ("a", Val::Int(1))]).unwrap(),
        map(&[("a", Val::Int(1))])
    );
    assert_eq!(run1(&r, &[]).unwrap(), map(&[]));
}

#[test]
fn non_numbers_are_rejected_only_by_numeric_rules() {
    let r = Rule {
        scale: Some(2.0),
        ..rule("temperature")
    };
    for bad in [Val::Str("0.5".into()), Val::Bool(true)] {
        let err = run1(&r, &[("temperature", bad)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid value for temperature: expected a number"
        );
    }
    // Null is "absent", not invalid.
    assert_eq!(
        run1(&r, &[("temperature", Val::Null)]).unwrap(),
        map(&[("temperature", Val::Null)])
    );
    let rename_only = Rule {
        rename: Some(Key::new("b")),
        ..rule("a")
    };
    assert!(run1(&rename_only, &[("a", Val::Str("s".into()))]).is_ok());
}

#[test]
fn rules_apply_in_order() {
    let rules = [
        Rule {
            rename: Some(Key::new("b")),
            ..rule("a")
        },
        Rule {
            scale: Some(3.0),
            ..rule("b")
        },
    ];
    assert_eq!(
        run(&rules, &[("a", Val::Int(2))]).unwrap(),
        map(&[("b", Val::Float(6.0))])
    );
}

#[test]
fn empty_rules_and_absent_fields_are_noops() {
    assert_eq!(
        run(&[], &[("x", Val::Int(1))]).unwrap(),
        map(&[("x", Val::Int(1))])
    );
    let r = Rule {
        scale: Some(2.0),
        min: Some(1.0),
        ..rule("absent")
    };
    assert_eq!(
        run1(&r, &[("x", Val::Int(1))]).unwrap(),
        map(&[("x", Val::Int(1))])
    );
}

#[test]
fn scale_value_applies_all_rules_for_the_field() {
    let rules = [
        Rule {
            scale: Some(2.0),
            ..rule("t")
        },
        Rule {
            max: Some(3.0),
            ..rule("t")
        },
        Rule {
            scale: Some(100.0),
            ..rule("other")
        },
    ];
    assert_eq!(scale_value(&rules, "t", 1.0).unwrap(), 2.0);
    assert_eq!(scale_value(&rules, "t", 2.0).unwrap(), 3.0);
    assert_eq!(scale_value(&rules, "unknown", 2.5).unwrap(), 2.5);
}

#[test]
fn validation() {
    let ok = Rule {
        min: Some(0.0),
        max: Some(1.0),
        ..rule("x")
    };
    assert!(ok.validate().is_ok());
    let bad = [
        Rule {
            min: Some(2.0),
            max: Some(1.0),
            ..rule("x")
        },
        Rule {
            scale: Some(f64::NAN),
            ..rule("x")
        },
        Rule {
            rename: Some(Key::new("y")),
            drop: true,
            ..rule("x")
        },
        Rule {
            fallback: Some(Key::new("x")),
            ..rule("x")
        },
        Rule {
            rename: Some(Key::new("x")),
            ..rule("x")
        },
        Rule {
            default: Some(Number::Float(f64::INFINITY)),
            ..rule("x")
        },
    ];
    for r in bad {
        assert!(r.validate().is_err(), "{r:?}");
    }
}

proptest! {
    #[test]
    fn clamped_values_stay_in_bounds(
        v in -1e6f64..1e6,
        scale in -100f64..100.0,
        lo in -10f64..0.0,
        width in 0f64..20.0,
    ) {
        let r = Rule { scale: Some(scale), min: Some(lo), max: Some(lo + width), ..rule("x") };
        let out = r.transform(v).unwrap().unwrap_or(v);
        prop_assert!(out >= lo && out <= lo + width);
    }
}
