//! Python bindings for the crm loyalty engine.
//!
//! The compiled extension is importable as `crm._crm`; the pure-Python package
//! in `python/crm/` re-exports its public names.

use pyo3::prelude::*;

mod errors;

#[pymodule]
fn _crm(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    Ok(())
}
