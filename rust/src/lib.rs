//! Native primitives of the gateway, exposed to Python as `gateway._native`.
//!
//! Each primitive lives in its own folder: plain Rust logic (usable and tested
//! without Python) plus a thin `py.rs` holding the PyO3 wrappers.

use pyo3::prelude::*;

pub mod chatstream;
pub mod chunked;
pub mod counters;
pub mod errors;
pub mod eventstream;
pub mod jsonscan;
pub mod ratelimit;
pub mod scaling;
pub mod sse;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    m.add("build_profile", profile)?;
    errors::register(m)?;
    chatstream::py::register(m)?;
    chunked::py::register(m)?;
    eventstream::py::register(m)?;
    jsonscan::py::register(m)?;
    sse::py::register(m)?;
    scaling::py::register(m)?;
    ratelimit::py::register(m)?;
    counters::py::register(m)?;
    Ok(())
}
