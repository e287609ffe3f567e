//! Python bindings of `crm_core::analytics` and `crm_core::segment`.

use pyo3::prelude::*;

/// Adds the analytics classes and functions to the extension module.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
