//! Python exception hierarchy (`CrmError` and one subclass per error kind) and
//! the mapping from `crm_core::CrmError`.
//!
//! Every raised instance carries `.code` (the core's stable code) and `.field`
//! (the offending field path, or `None`); the message is the core's message.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crm_core::CrmError as CoreError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyType;

create_exception!(crm, CrmError, PyException, "Base class of all crm errors.");
create_exception!(crm, ValidationError, CrmError, "Input failed validation.");
create_exception!(crm, NotFound, CrmError, "The entity does not exist.");
create_exception!(crm, InsufficientPoints, CrmError, "The point balance is too low.");
create_exception!(crm, Conflict, CrmError, "The operation conflicts with current state.");
create_exception!(crm, ConfigError, CrmError, "The configuration is invalid.");
create_exception!(crm, StoreError, CrmError, "The storage backend failed.");
create_exception!(
    crm,
    RuleError,
    CrmError,
    "A segment rule could not be read (code `rule_error`). `line` and `column` are 1-based \
     (0 for the JSON form), `excerpt` is the source line with a `^` under the column (the JSON \
     path for the JSON form), `message` is the reason without the location; `field` names the \
     field of a type error."
);

/// Code of errors that are not the core's (an internal failure caught at the
/// boundary).
pub(crate) const INTERNAL: &str = "internal_error";

/// Adds the exception types to the extension module, with class-level
/// defaults for `code` and `field` so that instances raised from Python code
/// have them too.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes: [(&str, Bound<'_, PyType>, &str); 8] = [
        ("CrmError", py.get_type::<CrmError>(), INTERNAL),
        ("ValidationError", py.get_type::<ValidationError>(), "validation_error"),
        ("NotFound", py.get_type::<NotFound>(), "not_found"),
        ("InsufficientPoints", py.get_type::<InsufficientPoints>(), "insufficient_points"),
        ("Conflict", py.get_type::<Conflict>(), "conflict"),
        ("ConfigError", py.get_type::<ConfigError>(), "config_error"),
        ("StoreError", py.get_type::<StoreError>(), "store_error"),
        ("RuleError", py.get_type::<RuleError>(), "rule_error"),
    ];
    for (name, class, code) in classes {
        class.setattr("code", code)?;
        class.setattr("field", py.None())?;
        class.setattr("__module__", "crm")?;
        m.add(name, class)?;
    }
    let rule = py.get_type::<RuleError>();
    rule.setattr("line", 0)?;
    rule.setattr("column", 0)?;
    rule.setattr("excerpt", "")?;
    rule.setattr("message", "")?;
    Ok(())
}

/// Build a Python exception of class `T` with `.code` and `.field` set.
fn raise<T: pyo3::PyTypeInfo>(py: Python<'_>, message: String, code: &str, field: Option<&str>) -> PyErr {
    let err = PyErr::new::<T, _>(message);
    let value = err.value(py);
    // Setting attributes on a fresh exception instance cannot fail in
    // practice; if it ever did, the exception is still the right class.
    let _ = value.setattr("code", code);
    let _ = value.setattr("field", field);
    err
}

/// Map a core error to its Python exception.
pub(crate) fn to_py(py: Python<'_>, e: &CoreError) -> PyErr {
    let (msg, code, field) = (e.to_string(), e.code(), e.field());
    match e {
        CoreError::Validation { .. } => raise::<ValidationError>(py, msg, code, field),
        CoreError::Config { .. } => raise::<ConfigError>(py, msg, code, field),
        CoreError::NotFound { .. } => raise::<NotFound>(py, msg, code, field),
        CoreError::InsufficientPoints { .. } => raise::<InsufficientPoints>(py, msg, code, field),
        CoreError::Conflict { .. } => raise::<Conflict>(py, msg, code, field),
        CoreError::Store(_) => raise::<StoreError>(py, msg, code, field),
        CoreError::Rule { line, column, message, excerpt, .. } => {
            let err = raise::<RuleError>(py, msg, code, field);
            let value = err.value(py);
            let _ = value.setattr("line", *line);
            let _ = value.setattr("column", *column);
            let _ = value.setattr("excerpt", excerpt.as_str());
            let _ = value.setattr("message", message.as_str());
            err
        }
        _ => raise::<CrmError>(py, msg, code, field),
    }
}

/// A `ValidationError` about one argument or field, in the core's wording
/// (`invalid <field>: <reason>`).
pub(crate) fn invalid(py: Python<'_>, field: &str, reason: impl std::fmt::Display) -> PyErr {
    to_py(py, &CoreError::Validation { field: field.to_string(), reason: reason.to_string() })
}

/// A `ConfigError` at `path`.
pub(crate) fn config(py: Python<'_>, path: &str, reason: impl std::fmt::Display) -> PyErr {
    to_py(py, &CoreError::Config { path: path.to_string(), reason: reason.to_string() })
}

/// A `crm.CrmError` with code `internal_error` (a bug in the binding).
pub(crate) fn internal(py: Python<'_>, what: impl std::fmt::Display) -> PyErr {
    raise::<CrmError>(py, format!("internal error: {what}"), INTERNAL, None)
}

/// Extension trait: `core_result.py_err(py)?`.
pub(crate) trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, CoreError> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}

/// Run `f` with the GIL released, catching panics so that none crosses the
/// FFI boundary: a panic becomes `crm.CrmError` with code `internal_error`.
pub(crate) fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: FnOnce() -> Result<T, CoreError> + Send,
    T: Send,
{
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(result) => result.py_err(py),
        Err(payload) => Err(panic_error(py, payload)),
    }
}

/// Run `f` (holding the GIL), turning a panic into `crm.CrmError`.
pub(crate) fn guarded<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => Err(panic_error(py, payload)),
    }
}

fn panic_error(py: Python<'_>, payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    raise::<CrmError>(py, format!("internal error: {what}"), INTERNAL, None)
}
