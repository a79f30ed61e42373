//! Python bindings: `ChatStreamRelay`, used by `gateway.providers.openai_stream`.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::chunk::write_value;
use super::shaper::{ChatStream, Outcome};
use crate::errors::SseError;

/// One OpenAI-shaped chat stream: `feed` each upstream read, `finish` at its end,
/// then `tail`. `feed` and `finish` return `(client bytes, failed event or None,
/// done)`.
#[pyclass(name = "ChatStreamRelay", module = "gateway._native")]
pub struct PyChatStream {
    inner: ChatStream,
}

type Step<'py> = (Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>, bool);

fn step<'py>(py: Python<'py>, out: &[u8], outcome: &Outcome) -> Step<'py> {
    let failed = match outcome {
        Outcome::Failed(data) => Some(PyBytes::new(py, data)),
        _ => None,
    };
    (PyBytes::new(py, out), failed, *outcome == Outcome::Done)
}

#[pymethods]
impl PyChatStream {
    #[new]
    #[pyo3(signature = (provider, *, include_usage, stream_ids, max_line_bytes))]
    fn new(
        provider: &str,
        include_usage: bool,
        stream_ids: bool,
        max_line_bytes: usize,
    ) -> PyResult<Self> {
        if max_line_bytes == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "max_line_bytes must be positive",
            ));
        }
        Ok(Self {
            inner: ChatStream::new(provider, include_usage, stream_ids, max_line_bytes),
        })
    }

    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Step<'py>> {
        let mut out = Vec::with_capacity(data.len() + 128);
        let outcome = self
            .inner
            .feed(data, &mut out)
            .map_err(|err| SseError::new_err(err.to_string()))?;
        Ok(step(py, &out, outcome))
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Step<'py>> {
        let mut out = Vec::new();
        let outcome = self
            .inner
            .finish(&mut out)
            .map_err(|err| SseError::new_err(err.to_string()))?;
        Ok(step(py, &out, outcome))
    }

    fn tail<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        self.inner.tail(&mut out);
        PyBytes::new(py, &out)
    }

    fn flush_held<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        self.inner.flush_held(&mut out);
        PyBytes::new(py, &out)
    }

    /// The last usage reported, as JSON bytes; None when none was.
    #[getter]
    fn usage<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.usage().map(|usage| {
            let mut out = Vec::new();
            write_value(&mut out, usage);
            PyBytes::new(py, &out)
        })
    }

    #[getter]
    fn chars(&self) -> u64 {
        self.inner.chars()
    }

    #[getter]
    fn produced(&self) -> bool {
        self.inner.produced()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyChatStream>()
}
