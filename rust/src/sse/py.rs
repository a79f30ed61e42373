//! Python bindings for the SSE parser and encoder.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::encoder::{self, SliceSink};
use super::parser::{self, Event};
use crate::errors::SseError;

fn to_py_err(err: parser::SseError) -> PyErr {
    SseError::new_err(err.to_string())
}

/// Incremental SSE parser for one stream.
#[pyclass(name = "SseParser", module = "gateway._native")]
pub struct PySseParser {
    inner: parser::SseParser,
}

#[pymethods]
impl PySseParser {
    #[new]
    #[pyo3(signature = (*, max_line_bytes = parser::DEFAULT_MAX_LINE_BYTES as i64))]
    fn new(max_line_bytes: i64) -> PyResult<Self> {
        let max = usize::try_from(max_line_bytes)
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "max_line_bytes must be a positive integer, got {max_line_bytes}"
                ))
            })?;
        Ok(Self {
            inner: parser::SseParser::with_max_line_bytes(max),
        })
    }

    /// Data payloads of the events completed by `chunk`.
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::new();
        self.inner
            .feed_with(chunk, |e| out.push(PyBytes::new(py, e.data)))
            .map_err(to_py_err)?;
        PyList::new(py, out)
    }

    /// `(event type, data)` of the events completed by `chunk`.
    fn feed_events<'py>(&mut self, py: Python<'py>, chunk: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::new();
        self.inner
            .feed_with(chunk, |e| out.push(event_tuple(py, &e)))
            .map_err(to_py_err)?;
        PyList::new(py, out)
    }

    /// Ends the stream, dispatching a trailing event that lacks its blank line.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::new();
        self.inner
            .finish_with(|e| out.push(PyBytes::new(py, e.data)))
            .map_err(to_py_err)?;
        PyList::new(py, out)
    }

    /// Bytes held for the incomplete trailing line.
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    #[getter]
    fn max_line_bytes(&self) -> usize {
        self.inner.max_line_bytes()
    }
}

fn event_tuple<'py>(py: Python<'py>, e: &Event<'_>) -> Bound<'py, PyTuple> {
    // The default type is shared (interned) rather than allocated per event.
    let name = if e.event.is_empty() {
        pyo3::intern!(py, "message").clone()
    } else {
        PyString::new(py, &e.event_type())
    };
    let data = PyBytes::new(py, e.data);
    PyTuple::new(py, [name.into_any(), data.into_any()])
        .expect("a 2-tuple from an array cannot fail")
}

/// `b"data: " + data + b"\n\n"`, one `data:` line per line of `data`.
#[pyfunction]
fn encode_event<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, encoder::encoded_len(data), |buf| {
        let mut sink = SliceSink::new(buf);
        encoder::encode_event_into(&mut sink, data);
        debug_assert!(sink.is_full(), "encoded_len must be exact");
        Ok(())
    })
}

/// Concatenated encoding of every item, written straight into one `bytes`
/// (a single allocation, no intermediate buffer).
#[pyfunction]
fn encode_events<'py>(
    py: Python<'py>,
    items: Vec<Bound<'py, PyBytes>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let total = items
        .iter()
        .map(|b| encoder::encoded_len(b.as_bytes()))
        .sum();
    PyBytes::new_with(py, total, |buf| {
        let mut sink = SliceSink::new(buf);
        for item in &items {
            encoder::encode_event_into(&mut sink, item.as_bytes());
        }
        debug_assert!(sink.is_full(), "encoded_len must be exact");
        Ok(())
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySseParser>()?;
    m.add_function(wrap_pyfunction!(encode_event, m)?)?;
    m.add_function(wrap_pyfunction!(encode_events, m)?)?;
    m.add("DONE_EVENT", PyBytes::new(m.py(), encoder::DONE_EVENT))?;
    Ok(())
}
