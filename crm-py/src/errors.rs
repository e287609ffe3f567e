//! Python exception hierarchy: `CrmError` and one subclass per error kind.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(crm, CrmError, PyException, "Base class of all crm errors.");
create_exception!(crm, ValidationError, CrmError, "Input failed validation.");
create_exception!(crm, NotFound, CrmError, "The entity does not exist.");
create_exception!(crm, InsufficientPoints, CrmError, "The point balance is too low.");
create_exception!(crm, Conflict, CrmError, "The operation conflicts with current state.");
create_exception!(crm, ConfigError, CrmError, "The configuration is invalid.");
create_exception!(crm, StoreError, CrmError, "The storage backend failed.");

/// Adds the exception types to the extension module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("CrmError", py.get_type::<CrmError>())?;
    m.add("ValidationError", py.get_type::<ValidationError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("InsufficientPoints", py.get_type::<InsufficientPoints>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("StoreError", py.get_type::<StoreError>())?;
    Ok(())
}
