//! Python bindings for the chunked decoder.

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::decoder::{ChunkedDecoder, ChunkedError};
use crate::errors::NativeError;

create_exception!(
    gateway._native,
    ChunkedEncodingError,
    NativeError,
    "Malformed HTTP/1.1 chunked body (chunk size line, missing CRLF)."
);
create_exception!(
    gateway._native,
    ChunkedTrailersTooLarge,
    NativeError,
    "HTTP/1.1 response trailers beyond the bytes or lines left by the head."
);

/// Incremental decoder of one chunked response body.
#[pyclass(name = "ChunkedDecoder", module = "gateway._native")]
pub struct PyChunkedDecoder {
    inner: ChunkedDecoder,
}

#[pymethods]
impl PyChunkedDecoder {
    #[new]
    #[pyo3(signature = (*, max_line, trailer_bytes, trailer_lines))]
    fn new(max_line: usize, trailer_bytes: usize, trailer_lines: usize) -> Self {
        Self {
            inner: ChunkedDecoder::new(max_line, trailer_bytes, trailer_lines),
        }
    }

    /// `(data, done, rest)`: the chunk data `read` completes, joined; whether the body
    /// ended; how many bytes of `read` came after its end.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        read: &[u8],
    ) -> PyResult<(Bound<'py, PyBytes>, bool, usize)> {
        let mut out = Vec::with_capacity(read.len());
        match self.inner.feed(read, &mut out) {
            Ok(decoded) => Ok((PyBytes::new(py, &out), decoded.done, decoded.rest)),
            Err(ChunkedError::TrailersTooLarge) => Err(ChunkedTrailersTooLarge::new_err(
                ChunkedError::TrailersTooLarge.to_string(),
            )),
            Err(error) => Err(ChunkedEncodingError::new_err(error.to_string())),
        }
    }

    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add(
        "ChunkedEncodingError",
        py.get_type::<ChunkedEncodingError>(),
    )?;
    m.add(
        "ChunkedTrailersTooLarge",
        py.get_type::<ChunkedTrailersTooLarge>(),
    )?;
    m.add_class::<PyChunkedDecoder>()?;
    Ok(())
}
