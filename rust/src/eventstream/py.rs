//! Python bindings for the event-stream parser.

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::parser::{self, Frame, HeaderValue};
use crate::errors::NativeError;

create_exception!(
    gateway._native,
    EventStreamError,
    NativeError,
    "Malformed AWS event stream (bad CRC, inconsistent lengths, bad header)."
);

/// Incremental AWS event-stream parser for one stream.
#[pyclass(name = "EventStreamParser", module = "gateway._native")]
pub struct PyEventStreamParser {
    inner: parser::EventStreamParser,
}

#[pymethods]
impl PyEventStreamParser {
    #[new]
    #[pyo3(signature = (*, max_message_bytes = parser::DEFAULT_MAX_MESSAGE_BYTES as i64))]
    fn new(max_message_bytes: i64) -> PyResult<Self> {
        let max = usize::try_from(max_message_bytes)
            .ok()
            .filter(|&m| m >= parser::MIN_MESSAGE_LEN)
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "max_message_bytes must be at least {}, got {max_message_bytes}",
                    parser::MIN_MESSAGE_LEN
                ))
            })?;
        Ok(Self {
            inner: parser::EventStreamParser::with_max_message_bytes(max),
        })
    }

    /// `(string headers, payload)` of each message completed by `chunk`.
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::new();
        let mut failure = None;
        self.inner
            .feed_with(chunk, |frame| {
                if failure.is_none() {
                    match message_tuple(py, &frame) {
                        Ok(item) => out.push(item),
                        Err(err) => failure = Some(err),
                    }
                }
            })
            .map_err(|err| EventStreamError::new_err(err.to_string()))?;
        if let Some(err) = failure {
            return Err(err);
        }
        PyList::new(py, out)
    }

    /// Bytes held for an incomplete trailing message.
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    #[getter]
    fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes()
    }
}

fn message_tuple<'py>(py: Python<'py>, frame: &Frame<'_>) -> PyResult<Bound<'py, PyTuple>> {
    let headers = PyDict::new(py);
    for header in &frame.headers {
        if let HeaderValue::String(value) = header.value {
            headers.set_item(header.name, value)?;
        }
    }
    let payload = PyBytes::new(py, frame.payload);
    PyTuple::new(py, [headers.into_any(), payload.into_any()])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("EventStreamError", m.py().get_type::<EventStreamError>())?;
    m.add_class::<PyEventStreamParser>()?;
    Ok(())
}
