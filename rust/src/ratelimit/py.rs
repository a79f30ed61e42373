//! Python bindings for the token buckets (monotonic clock only).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::bucket::{Decision, KeyedTokenBuckets, Rate, TokenBucket};

fn rate(capacity: i64, period_seconds: f64) -> PyResult<Rate> {
    let capacity = u64::try_from(capacity).unwrap_or(0);
    Rate::from_secs(capacity, period_seconds).map_err(|e| PyValueError::new_err(e.to_string()))
}

fn count(n: i64) -> PyResult<u64> {
    u64::try_from(n).map_err(|_| PyValueError::new_err(format!("n must be >= 0, got {n}")))
}

fn as_tuple(d: Decision) -> (bool, u64, f64) {
    (d.allowed, d.remaining, d.retry_after_secs())
}

/// A token bucket holding up to `capacity` tokens, refilled continuously at
/// `capacity / period_seconds` tokens per second; starts full.
#[pyclass(name = "TokenBucket", module = "gateway._native", frozen)]
pub struct PyTokenBucket {
    inner: TokenBucket,
}

#[pymethods]
impl PyTokenBucket {
    #[new]
    fn new(capacity: i64, period_seconds: f64) -> PyResult<Self> {
        Ok(Self {
            inner: TokenBucket::new(rate(capacity, period_seconds)?),
        })
    }

    /// `(allowed, remaining, retry_after_seconds)`; nothing is taken when
    /// the request is refused.
    #[pyo3(signature = (n = 1))]
    fn try_acquire(&self, n: i64) -> PyResult<(bool, u64, f64)> {
        Ok(as_tuple(self.inner.try_acquire(count(n)?)))
    }

    fn refund(&self, n: i64) -> PyResult<()> {
        self.inner.refund(count(n)?);
        Ok(())
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.inner.rate().capacity()
    }

    #[getter]
    fn period_seconds(&self) -> f64 {
        self.inner.rate().period_seconds()
    }

    fn __repr__(&self) -> String {
        let r = self.inner.rate();
        format!(
            "TokenBucket(capacity={}, period_seconds={:?})",
            r.capacity(),
            r.period_seconds()
        )
    }
}

/// One token bucket per string key, created full on first use.
#[pyclass(name = "KeyedTokenBuckets", module = "gateway._native", frozen)]
pub struct PyKeyedTokenBuckets {
    inner: KeyedTokenBuckets,
}

#[pymethods]
impl PyKeyedTokenBuckets {
    #[new]
    #[pyo3(signature = (capacity, period_seconds, max_keys = 100_000))]
    fn new(capacity: i64, period_seconds: f64, max_keys: i64) -> PyResult<Self> {
        let max_keys = usize::try_from(max_keys)
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "max_keys must be a positive integer, got {max_keys}"
                ))
            })?;
        Ok(Self {
            inner: KeyedTokenBuckets::new(rate(capacity, period_seconds)?, max_keys),
        })
    }

    #[pyo3(signature = (key, n = 1))]
    fn try_acquire(&self, key: &str, n: i64) -> PyResult<(bool, u64, f64)> {
        Ok(as_tuple(self.inner.try_acquire(key, count(n)?)))
    }

    /// Gives tokens back to `key`'s bucket (no-op for an unknown key).
    fn refund(&self, key: &str, n: i64) -> PyResult<()> {
        self.inner.refund(key, count(n)?);
        Ok(())
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.inner.rate().capacity()
    }

    #[getter]
    fn period_seconds(&self) -> f64 {
        self.inner.rate().period_seconds()
    }

    #[getter]
    fn max_keys(&self) -> usize {
        self.inner.max_keys()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTokenBucket>()?;
    m.add_class::<PyKeyedTokenBuckets>()?;
    super::py_shared::register(m)?;
    Ok(())
}
