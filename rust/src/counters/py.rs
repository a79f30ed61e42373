//! Python bindings for the shared counters (`SharedCounters`). Calls release
//! the GIL: an insert may wait for another worker's lock.

use std::path::Path;
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::table::{CounterError, Counters};
use crate::errors::NativeError;

create_exception!(
    gateway._native,
    CounterTableError,
    NativeError,
    "The shared counter table cannot serve: full, locked, or not a valid table file."
);

fn table_error(e: CounterError) -> PyErr {
    CounterTableError::new_err(e.to_string())
}

fn slots(value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("slots must be positive, got {value}")))
}

/// Unix seconds; a time before 1970 is 0.
fn seconds(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Expiring integer counters shared by every worker of the instance.
#[pyclass(name = "SharedCounters", module = "gateway._native", frozen)]
pub struct PySharedCounters {
    table: Arc<Counters>,
    path: Option<String>,
}

#[pymethods]
impl PySharedCounters {
    /// Creates the table file (it must not exist), mode 0600.
    #[staticmethod]
    #[pyo3(signature = (path, slots = 65536))]
    fn create(path: &str, slots: i64) -> PyResult<Self> {
        let table = Counters::create(Path::new(path), self::slots(slots)?).map_err(table_error)?;
        Ok(Self {
            table: Arc::new(table),
            path: Some(path.to_owned()),
        })
    }

    /// Maps a table file made by `create`.
    #[staticmethod]
    fn open(path: &str) -> PyResult<Self> {
        let table = Counters::open(Path::new(path)).map_err(table_error)?;
        Ok(Self {
            table: Arc::new(table),
            path: Some(path.to_owned()),
        })
    }

    /// A table visible to this process only.
    #[staticmethod]
    #[pyo3(signature = (slots = 65536))]
    fn private(slots: i64) -> PyResult<Self> {
        let table = Counters::private(self::slots(slots)?).map_err(table_error)?;
        Ok(Self {
            table: Arc::new(table),
            path: None,
        })
    }

    #[getter]
    fn path(&self) -> Option<String> {
        self.path.clone()
    }

    #[getter]
    fn slots(&self) -> usize {
        self.table.slots()
    }

    /// Slots holding a counter, live or expired.
    fn occupancy(&self) -> usize {
        self.table.occupancy()
    }

    /// The total of each key at `now` (unix seconds); 0 if absent or expired.
    fn totals(&self, py: Python<'_>, keys: Vec<String>, now: i64) -> Vec<i64> {
        let table = &self.table;
        py.allow_threads(|| {
            let names: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            table.totals(&names, seconds(now))
        })
    }

    /// Adds `amount` to each `(key, expires_at)`; returns the new totals.
    /// Nothing is added if any key finds no room (`CounterTableError`).
    fn add(
        &self,
        py: Python<'_>,
        items: Vec<(String, i64)>,
        amount: i64,
        now: i64,
    ) -> PyResult<Vec<i64>> {
        let table = &self.table;
        py.allow_threads(|| {
            let items: Vec<(&[u8], u64)> = items
                .iter()
                .map(|(k, e)| (k.as_bytes(), seconds(*e)))
                .collect();
            table.add(&items, amount, seconds(now))
        })
        .map_err(table_error)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CounterTableError", m.py().get_type::<CounterTableError>())?;
    m.add_class::<PySharedCounters>()?;
    Ok(())
}
