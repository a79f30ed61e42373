//! Python bindings for the JSON cost scanner.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::scanner::{self, Exceeded, Limits};

fn non_negative(name: &str, value: i64) -> PyResult<u64> {
    u64::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must not be negative, got {value}")))
}

/// Limits on what one JSON body may cost before it is decoded; built once,
/// checked per request.
#[pyclass(name = "JsonLimits", module = "gateway._native", frozen)]
pub struct PyJsonLimits {
    inner: Limits,
}

#[pymethods]
impl PyJsonLimits {
    #[new]
    #[pyo3(signature = (*, max_depth, max_values, max_messages))]
    fn new(max_depth: i64, max_values: i64, max_messages: i64) -> PyResult<Self> {
        Ok(Self {
            inner: Limits {
                max_depth: usize::try_from(non_negative("max_depth", max_depth)?)
                    .unwrap_or(usize::MAX),
                max_values: non_negative("max_values", max_values)?,
                max_messages: non_negative("max_messages", max_messages)?,
            },
        })
    }

    /// `None` when `body` is within the limits, else `(limit, observed)` for
    /// the first one crossed. With `release_gil` the scan runs without the
    /// GIL, for a worker thread.
    #[pyo3(signature = (body, release_gil = false))]
    fn check(&self, py: Python<'_>, body: &[u8], release_gil: bool) -> Option<(&'static str, u64)> {
        let limits = &self.inner;
        let result = if release_gil {
            py.allow_threads(|| scanner::scan(body, limits))
        } else {
            scanner::scan(body, limits)
        };
        result
            .err()
            .map(|Exceeded { limit, observed }| (limit.name(), observed))
    }

    #[getter]
    fn max_depth(&self) -> usize {
        self.inner.max_depth
    }

    #[getter]
    fn max_values(&self) -> u64 {
        self.inner.max_values
    }

    #[getter]
    fn max_messages(&self) -> u64 {
        self.inner.max_messages
    }
}

/// `(depth, values, messages)` of `body`, with no limit (measurements, tests).
#[pyfunction]
fn json_stats(py: Python<'_>, body: &[u8]) -> (usize, u64, u64) {
    let stats = py
        .allow_threads(|| scanner::scan(body, &Limits::UNLIMITED))
        .unwrap_or_default(); // nothing exceeds UNLIMITED
    (stats.depth, stats.values, stats.messages)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJsonLimits>()?;
    m.add_function(wrap_pyfunction!(json_stats, m)?)?;
    Ok(())
}
