//! Python bindings: rules are parsed from dicts once; `apply` mutates a dict.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use super::apply::{self, ApplyError, Payload};
use super::rule::{self, Key, Number, Rule};
use crate::errors::ScalingError;

/// Keys carry an interned `str` so that dict lookups reuse its cached hash.
type PyRule = Rule<Py<PyString>>;

/// Parameter rewriting rules for one provider, built once.
#[pyclass(name = "ParamScaler", module = "gateway._native", frozen)]
pub struct PyParamScaler {
    rules: Vec<PyRule>,
}

#[pymethods]
impl PyParamScaler {
    #[new]
    fn new(rules: Vec<Bound<'_, PyAny>>) -> PyResult<Self> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                parse_rule(spec).map_err(|msg| PyValueError::new_err(format!("rule {i}: {msg}")))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self { rules })
    }

    /// Rewrites `payload` in place according to the rules, in order.
    fn apply(&self, payload: &Bound<'_, PyDict>) -> PyResult<()> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let mut target = DictPayload { dict: payload };
        apply::apply(&self.rules, &mut target).map_err(|e| match e {
            ApplyError::Scale(e) => ScalingError::new_err(e.to_string()),
            ApplyError::Backend(e) => e,
        })
    }

    /// The numeric steps (reject check, scale, clamp) of every rule for
    /// `field` applied to `value`; other fields pass through unchanged.
    fn scale_value(&self, field: &str, value: f64) -> PyResult<f64> {
        rule::scale_value(&self.rules, field, value)
            .map_err(|e| ScalingError::new_err(e.to_string()))
    }

    fn __len__(&self) -> usize {
        self.rules.len()
    }

    fn __repr__(&self) -> String {
        let fields: Vec<&str> = self.rules.iter().map(|r| r.field.name.as_str()).collect();
        format!("ParamScaler(fields={fields:?})")
    }
}

struct DictPayload<'a, 'py> {
    dict: &'a Bound<'py, PyDict>,
}

impl<'py> Payload for DictPayload<'_, 'py> {
    type Handle = Py<PyString>;
    type Value = Bound<'py, PyAny>;
    type Error = PyErr;

    fn get(&self, key: &Key<Self::Handle>) -> PyResult<Option<Self::Value>> {
        self.dict.get_item(key.handle.bind(self.dict.py()))
    }

    fn set(&mut self, key: &Key<Self::Handle>, value: Self::Value) -> PyResult<()> {
        self.dict.set_item(key.handle.bind(self.dict.py()), value)
    }

    fn remove(&mut self, key: &Key<Self::Handle>) -> PyResult<()> {
        self.dict.del_item(key.handle.bind(self.dict.py()))
    }

    fn is_null(&self, value: &Self::Value) -> bool {
        value.is_none()
    }

    fn as_number(&self, value: &Self::Value) -> Option<f64> {
        py_number(value)
    }

    fn float(&self, value: f64) -> Self::Value {
        PyFloat::new(self.dict.py(), value).into_any()
    }

    fn number(&self, value: Number) -> Self::Value {
        let py = self.dict.py();
        match value {
            Number::Int(i) => i
                .into_pyobject(py)
                .expect("int conversion is infallible")
                .into_any(),
            Number::Float(f) => PyFloat::new(py, f).into_any(),
        }
    }
}

/// int or float (subclasses included) but not bool, which JSON and the
/// providers treat as a different type.
fn py_number(value: &Bound<'_, PyAny>) -> Option<f64> {
    if let Ok(f) = value.downcast_exact::<PyFloat>() {
        return Some(f.value());
    }
    if value.is_instance_of::<PyBool>() {
        return None;
    }
    if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        // Ints beyond f64 range raise OverflowError: not a usable number.
        return value.extract::<f64>().ok();
    }
    None
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn parse_rule(spec: &Bound<'_, PyAny>) -> Result<PyRule, String> {
    let dict = spec
        .downcast::<PyDict>()
        .map_err(|_| format!("expected a dict, got {}", type_name(spec)))?;
    let field = match dict.get_item("field").map_err(|e| e.to_string())? {
        Some(v) => key(&v, "field")?,
        None => return Err("missing required key 'field'".into()),
    };
    let mut rule = Rule::new(field);
    let mut reject_message = None;
    for (k, v) in dict.iter() {
        let name = k
            .downcast::<PyString>()
            .map_err(|_| format!("keys must be str, got {}", type_name(&k)))?;
        let name = name.to_str().map_err(|e| e.to_string())?;
        match name {
            "field" => {}
            "scale" => rule.scale = Some(number(&v, name)?),
            "only_nonzero" => rule.only_nonzero = boolean(&v, name)?,
            "min" => rule.min = Some(number(&v, name)?),
            "max" => rule.max = Some(number(&v, name)?),
            "default" => rule.default = Some(default_number(&v)?),
            "fallback" => rule.fallback = Some(key(&v, name)?),
            "reject_above" => rule.reject_above = Some((number(&v, name)?, String::new())),
            "reject_message" => reject_message = Some(string(&v, name)?),
            "rename" => rule.rename = Some(key(&v, name)?),
            "drop" => rule.drop = boolean(&v, name)?,
            other => return Err(format!("unknown key '{other}'")),
        }
    }
    match (&mut rule.reject_above, reject_message) {
        (Some((_, msg)), Some(m)) => *msg = m,
        (Some((limit, msg)), None) => {
            *msg = format!(
                "Invalid value for {}: cannot exceed {}.",
                rule.field.name, limit
            )
        }
        (None, Some(_)) => return Err("'reject_message' requires 'reject_above'".into()),
        (None, None) => {}
    }
    rule.validate()?;
    Ok(rule)
}

fn number(v: &Bound<'_, PyAny>, name: &str) -> Result<f64, String> {
    py_number(v).ok_or_else(|| format!("'{name}' must be a number, got {}", type_name(v)))
}

fn default_number(v: &Bound<'_, PyAny>) -> Result<Number, String> {
    if v.is_instance_of::<PyInt>() && !v.is_instance_of::<PyBool>() {
        return v
            .extract::<i64>()
            .map(Number::Int)
            .map_err(|_| "'default' int must fit in 64 bits".into());
    }
    number(v, "default").map(Number::Float)
}

fn boolean(v: &Bound<'_, PyAny>, name: &str) -> Result<bool, String> {
    v.downcast::<PyBool>()
        .map(|b| b.is_true())
        .map_err(|_| format!("'{name}' must be a bool, got {}", type_name(v)))
}

fn string(v: &Bound<'_, PyAny>, name: &str) -> Result<String, String> {
    v.downcast::<PyString>()
        .map_err(|_| format!("'{name}' must be a str, got {}", type_name(v)))?
        .to_str()
        .map(str::to_owned)
        .map_err(|e| e.to_string())
}

fn key(v: &Bound<'_, PyAny>, name: &str) -> Result<Key<Py<PyString>>, String> {
    let s = string(v, name)?;
    if s.is_empty() {
        return Err(format!("'{name}' must be a non-empty str"));
    }
    Ok(Key {
        handle: PyString::intern(v.py(), &s).unbind(),
        name: s,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyParamScaler>()
}
