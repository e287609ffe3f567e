//! `crm.Program`: a validated loyalty programme.

use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::convert::{self, serde_to_py};
use crate::errors::{config, IntoPyResult};

/// A validated loyalty programme (point types, earn rules, bonuses, refund
/// policy). Build it with one of the `from_*` constructors; every error is a
/// `ConfigError` whose `.field` is the path of the offending setting
/// (e.g. `earn.rules[0].points_per_unit`) or the line of a syntax error.
#[pyclass(frozen, eq, module = "crm", name = "Program")]
#[derive(Clone, PartialEq)]
pub struct PyProgram(pub crm_core::Program);

#[pymethods]
impl PyProgram {
    /// Build from a dict in the core's JSON form (`Decimal` values are
    /// accepted wherever the JSON form has a decimal string).
    #[classmethod]
    fn from_dict(_cls: &Bound<'_, PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = data.py();
        if convert::dict(data, "programme").is_err() {
            return Err(config(py, "programme", format!("must be a dict, not {}", convert::type_name(data))));
        }
        let value = convert::to_json_raw(data, "").map_err(|e| match e {
            convert::JsonError::Invalid { field, reason } => config(py, &field, reason),
            convert::JsonError::Py(e) => e,
        })?;
        crm_core::Program::from_value(value).py_err(py).map(PyProgram)
    }

    /// Parse a JSON document.
    #[classmethod]
    fn from_json(_cls: &Bound<'_, PyType>, text: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = text.py();
        let text = convert::string(text, "text")?;
        crm_core::Program::from_json(&text).py_err(py).map(PyProgram)
    }

    /// Parse a TOML document.
    #[classmethod]
    fn from_toml(_cls: &Bound<'_, PyType>, text: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = text.py();
        let text = convert::string(text, "text")?;
        crm_core::Program::from_toml(&text).py_err(py).map(PyProgram)
    }

    /// Read a file: `.toml` is TOML, anything else JSON.
    #[classmethod]
    fn from_file(_cls: &Bound<'_, PyType>, path: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = path.py();
        let path = convert::path(path, "path")?;
        crm_core::Program::from_path(path).py_err(py).map(PyProgram)
    }

    /// The demo programme: one spendable `reward` point per full 1.00 (USD),
    /// valid 365 days, UTC.
    #[classmethod]
    fn default_demo(_cls: &Bound<'_, PyType>) -> Self {
        PyProgram(crm_core::Program::default_demo())
    }

    /// The core's JSON form as a dict (decimals as strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }

    /// The core's JSON form as a pretty-printed string.
    fn to_json(&self) -> String {
        self.0.to_json()
    }

    /// Human-readable name.
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }

    /// Programme time zone (IANA name).
    #[getter]
    fn timezone(&self) -> &str {
        self.0.timezone.name()
    }

    /// ISO 4217 currency of order amounts.
    #[getter]
    fn currency(&self) -> &str {
        &self.0.currency
    }

    /// Ids of the point types.
    #[getter]
    fn point_types(&self) -> Vec<String> {
        self.0.point_types.iter().map(|t| t.id.clone()).collect()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        use crate::results::pystr;
        format!(
            "Program(name={}, timezone={}, currency={})",
            pystr(py, &self.0.name),
            pystr(py, self.0.timezone.name()),
            pystr(py, &self.0.currency)
        )
    }
}
