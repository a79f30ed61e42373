//! Python bindings for the shared (memory-mapped) rate-limit table.
//!
//! Decisions come back as `(allowed, remaining, retry_after_seconds,
//! reset_seconds)`. Whole-endpoint buckets resolve their slot once, so a
//! decision on them is one CAS.

use std::path::Path;
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::bucket::{Decision, Rate};
use super::gcra::Gcra;
use super::shared::{Layout, SharedTable, TableError, MAX_WORKERS};
use crate::errors::NativeError;

create_exception!(
    gateway._native,
    LimitTableError,
    NativeError,
    "The shared rate-limit table cannot serve: full, or not a valid table file."
);

type Verdict = (bool, u64, f64, f64);

fn verdict(d: Decision) -> Verdict {
    (d.allowed, d.remaining, d.retry_after_secs(), d.reset_secs())
}

fn table_error(e: TableError) -> PyErr {
    LimitTableError::new_err(e.to_string())
}

fn size(value: i64, what: &str) -> PyResult<usize> {
    usize::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{what} must be positive, got {value}")))
}

fn count(n: i64) -> PyResult<u64> {
    u64::try_from(n).map_err(|_| PyValueError::new_err(format!("n must be >= 0, got {n}")))
}

fn gcra(capacity: i64, period_seconds: f64) -> PyResult<(Rate, Gcra)> {
    let capacity = u64::try_from(capacity).unwrap_or(0);
    let rate = Rate::from_secs(capacity, period_seconds)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((rate, Gcra::new(&rate)))
}

/// The rate-limit table of one gateway instance, shared by its workers.
#[pyclass(name = "SharedLimits", module = "gateway._native", frozen)]
pub struct PySharedLimits {
    table: Arc<SharedTable>,
    path: Option<String>,
}

#[pymethods]
impl PySharedLimits {
    /// Creates the table file (it must not exist), mode 0600.
    #[staticmethod]
    #[pyo3(signature = (path, bucket_slots = 65536, concurrency_slots = 1024))]
    fn create(path: &str, bucket_slots: i64, concurrency_slots: i64) -> PyResult<Self> {
        let layout = Layout::new(
            size(bucket_slots, "bucket_slots")?,
            size(concurrency_slots, "concurrency_slots")?,
        )
        .map_err(table_error)?;
        let table = SharedTable::create(Path::new(path), layout).map_err(table_error)?;
        Ok(Self {
            table: Arc::new(table),
            path: Some(path.to_owned()),
        })
    }

    /// Maps a table file made by `create`.
    #[staticmethod]
    fn open(path: &str) -> PyResult<Self> {
        let table = SharedTable::open(Path::new(path)).map_err(table_error)?;
        Ok(Self {
            table: Arc::new(table),
            path: Some(path.to_owned()),
        })
    }

    /// A table visible to this process only.
    #[staticmethod]
    #[pyo3(signature = (bucket_slots = 65536, concurrency_slots = 1024))]
    fn private(bucket_slots: i64, concurrency_slots: i64) -> PyResult<Self> {
        let layout = Layout::new(
            size(bucket_slots, "bucket_slots")?,
            size(concurrency_slots, "concurrency_slots")?,
        )
        .map_err(table_error)?;
        let table = SharedTable::private(layout).map_err(table_error)?;
        Ok(Self {
            table: Arc::new(table),
            path: None,
        })
    }

    #[classattr]
    fn max_workers() -> usize {
        MAX_WORKERS
    }

    #[getter]
    fn path(&self) -> Option<String> {
        self.path.clone()
    }

    #[getter]
    fn bucket_slots(&self) -> usize {
        self.table.bucket_slots()
    }

    #[getter]
    fn concurrency_slots(&self) -> usize {
        self.table.concurrency_slots()
    }

    /// Claims a worker record for this handle; `ident` names the process.
    fn register_worker(&self, ident: u64) -> PyResult<usize> {
        self.table.register_worker(ident).map_err(table_error)
    }

    #[getter]
    fn worker_index(&self) -> Option<usize> {
        self.table.worker_index()
    }

    /// `(index, ident)` of every taken worker record.
    fn workers(&self) -> Vec<(usize, u64)> {
        self.table.workers()
    }

    /// Frees the record of a dead worker and gives back its in-flight places.
    fn reap_worker(&self, index: usize, ident: u64) -> Option<u64> {
        self.table.reap_worker(index, ident)
    }

    /// `(bucket slots, concurrency slots)` in use.
    fn occupancy(&self) -> (usize, usize) {
        self.table.occupancy()
    }

    /// One bucket for everyone, named `name` (its slot is pinned).
    fn bucket(&self, name: &str, capacity: i64, period_seconds: f64) -> PyResult<PySharedBucket> {
        let (rate, gcra) = gcra(capacity, period_seconds)?;
        let key = self.table.key_of(name.as_bytes(), None);
        let slot = self.table.bucket_slot(key).map_err(table_error)?;
        Ok(PySharedBucket {
            table: self.table.clone(),
            rate,
            gcra,
            slot,
        })
    }

    /// One bucket per client key under `name`, created full on first use.
    fn keyed_bucket(
        &self,
        name: &str,
        capacity: i64,
        period_seconds: f64,
    ) -> PyResult<PyKeyedSharedBucket> {
        let (rate, gcra) = gcra(capacity, period_seconds)?;
        Ok(PyKeyedSharedBucket {
            table: self.table.clone(),
            rate,
            gcra,
            name: name.as_bytes().into(),
        })
    }

    /// An in-flight counter named `name`, capped at `limit`.
    fn concurrency(&self, name: &str, limit: i64) -> PyResult<PySharedConcurrency> {
        let limit = u64::try_from(limit)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| PyValueError::new_err(format!("limit must be positive, got {limit}")))?;
        let key = self.table.key_of(name.as_bytes(), None);
        let slot = self.table.concurrency_slot(key).map_err(table_error)?;
        Ok(PySharedConcurrency {
            table: self.table.clone(),
            slot,
            limit,
        })
    }
}

/// A bucket shared by every worker of the instance.
#[pyclass(name = "SharedBucket", module = "gateway._native", frozen)]
pub struct PySharedBucket {
    table: Arc<SharedTable>,
    rate: Rate,
    gcra: Gcra,
    slot: usize,
}

#[pymethods]
impl PySharedBucket {
    #[pyo3(signature = (n = 1))]
    fn try_acquire(&self, n: i64) -> PyResult<Verdict> {
        Ok(verdict(self.table.acquire(
            self.slot,
            &self.gcra,
            count(n)?,
        )))
    }

    fn refund(&self, n: i64) -> PyResult<()> {
        self.table.refund(self.slot, &self.gcra, count(n)?);
        Ok(())
    }

    fn charge(&self, n: i64) -> PyResult<()> {
        self.table.charge(self.slot, &self.gcra, count(n)?);
        Ok(())
    }

    fn peek(&self) -> Verdict {
        verdict(self.table.peek(self.slot, &self.gcra))
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.rate.capacity()
    }

    #[getter]
    fn period_seconds(&self) -> f64 {
        self.rate.period_seconds()
    }
}

/// Buckets per client key, shared by every worker of the instance.
#[pyclass(name = "KeyedSharedBucket", module = "gateway._native", frozen)]
pub struct PyKeyedSharedBucket {
    table: Arc<SharedTable>,
    rate: Rate,
    gcra: Gcra,
    name: Box<[u8]>,
}

impl PyKeyedSharedBucket {
    fn key(&self, client: &str) -> u64 {
        self.table.key_of(&self.name, Some(client.as_bytes()))
    }
}

#[pymethods]
impl PyKeyedSharedBucket {
    #[pyo3(signature = (key, n = 1))]
    fn try_acquire(&self, key: &str, n: i64) -> PyResult<Verdict> {
        let n = count(n)?;
        let slot = self.table.bucket_slot(self.key(key)).map_err(table_error)?;
        Ok(verdict(self.table.acquire(slot, &self.gcra, n)))
    }

    /// Gives tokens back to `key` (nothing if its bucket was forgotten: it is full).
    fn refund(&self, key: &str, n: i64) -> PyResult<()> {
        let n = count(n)?;
        if let Some(slot) = self.table.find_bucket(self.key(key)) {
            self.table.refund(slot, &self.gcra, n);
        }
        Ok(())
    }

    fn charge(&self, key: &str, n: i64) -> PyResult<()> {
        let n = count(n)?;
        let slot = self.table.bucket_slot(self.key(key)).map_err(table_error)?;
        self.table.charge(slot, &self.gcra, n);
        Ok(())
    }

    fn peek(&self, key: &str) -> Verdict {
        match self.table.find_bucket(self.key(key)) {
            Some(slot) => verdict(self.table.peek(slot, &self.gcra)),
            None => (true, self.rate.capacity(), 0.0, 0.0),
        }
    }

    #[getter]
    fn capacity(&self) -> u64 {
        self.rate.capacity()
    }

    #[getter]
    fn period_seconds(&self) -> f64 {
        self.rate.period_seconds()
    }
}

/// An in-flight cap shared by every worker of the instance.
#[pyclass(name = "SharedConcurrency", module = "gateway._native", frozen)]
pub struct PySharedConcurrency {
    table: Arc<SharedTable>,
    slot: usize,
    limit: u64,
}

#[pymethods]
impl PySharedConcurrency {
    /// `(entered, in_flight)`; a refusal takes nothing.
    fn try_enter(&self) -> (bool, u64) {
        self.table.enter(self.slot, self.limit)
    }

    /// Gives back a place taken by `try_enter`.
    fn leave(&self) {
        self.table.leave(self.slot);
    }

    #[getter]
    fn in_flight(&self) -> u64 {
        self.table.in_flight(self.slot)
    }

    #[getter]
    fn limit(&self) -> u64 {
        self.limit
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LimitTableError", m.py().get_type::<LimitTableError>())?;
    m.add_class::<PySharedLimits>()?;
    m.add_class::<PySharedBucket>()?;
    m.add_class::<PyKeyedSharedBucket>()?;
    m.add_class::<PySharedConcurrency>()?;
    Ok(())
}
