//! Python exception types shared by all primitives.
//!
//! Everything derives from `ValueError` so callers that already treat bad
//! client input as `ValueError` keep working, while `NativeError` lets them
//! single out errors raised by this extension.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    gateway._native,
    NativeError,
    PyValueError,
    "Base class of the errors raised by gateway._native."
);
create_exception!(
    gateway._native,
    SseError,
    NativeError,
    "Malformed or oversized Server-Sent-Events stream."
);
create_exception!(
    gateway._native,
    ScalingError,
    NativeError,
    "Request parameter rejected by a ParamScaler rule."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("NativeError", py.get_type::<NativeError>())?;
    m.add("SseError", py.get_type::<SseError>())?;
    m.add("ScalingError", py.get_type::<ScalingError>())?;
    Ok(())
}
