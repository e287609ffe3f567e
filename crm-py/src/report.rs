//! The visual report (`crm_core::report`): `Engine.report_page` returns a
//! `ReportPage` that renders as HTML (and in Jupyter through `_repr_html_`);
//! `Engine.report_html` and `Engine.write_report` are the one-call forms.

use std::str::FromStr;

use crm_core::report::{comparison_from_json, render_fragment, render_html, Lang, PageData, PageOptions};
use crm_core::whatif::Comparison;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::convert::{self, datetime, opt_datetime};
use crate::errors::to_py;
use crate::results::repr_of;

/// The data of the report page at one instant: headline figures, tier and
/// stage distributions, stage flows, liability, cohorts, the RFM grid and
/// channels. `html()` draws it as a self-contained HTML document;
/// in Jupyter it renders itself (`_repr_html_`).
#[pyclass(frozen, module = "crm", name = "ReportPage")]
pub struct PyReportPage(pub PageData);

/// `lang`: `"en"` or `"zh"`.
pub(crate) fn lang_arg(py: Python<'_>, lang: &str) -> PyResult<Lang> {
    Lang::from_str(lang).map_err(|e| to_py(py, &e))
}

/// `whatif`: a comparison as a dict (its JSON form) or as JSON text.
pub(crate) fn whatif_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Comparison>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(None) };
    let py = obj.py();
    if let Ok(text) = obj.cast::<PyString>() {
        return comparison_from_json(&text.to_cow()?).map(Some).map_err(|e| to_py(py, &e));
    }
    let json = convert::to_json(obj, "whatif")?;
    convert::from_json(py, json, "whatif").map(Some)
}

/// The page options from the keyword arguments.
pub(crate) fn page_options(
    at: &Bound<'_, PyAny>,
    flows_from: Option<&Bound<'_, PyAny>>,
    flows_to: Option<&Bound<'_, PyAny>>,
) -> PyResult<PageOptions> {
    Ok(PageOptions {
        at: datetime(at, "at")?,
        flows_from: opt_datetime(flows_from, "flows_from")?,
        flows_to: opt_datetime(flows_to, "flows_to")?,
    })
}

#[pymethods]
impl PyReportPage {
    /// The instant every figure is taken at.
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::time_to_py(py, &self.0.at)
    }
    /// The programme's name.
    #[getter]
    fn programme(&self) -> &str {
        &self.0.programme
    }
    /// Members (merged-away and erased ones not counted).
    #[getter]
    fn members(&self) -> u64 {
        self.0.report.members
    }
    /// Share of members in the new, active or reactivated stage.
    #[getter]
    fn active_share<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::decimal_to_py(py, &self.0.active_share)
    }
    /// The page as a complete HTML document: `lang` is `"en"` or `"zh"`;
    /// `whatif` (a comparison dict or its JSON text, e.g. the last line of
    /// the `whatif` example) adds the comparison section.
    #[pyo3(signature = (*, lang = "en", whatif = None))]
    fn html(&self, py: Python<'_>, lang: &str, whatif: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
        let lang = lang_arg(py, lang)?;
        let whatif = whatif_arg(whatif)?;
        Ok(render_html(&self.0, lang, whatif.as_ref()))
    }
    /// Write `html(lang=..., whatif=...)` to `path` (UTF-8).
    #[pyo3(signature = (path, *, lang = "en", whatif = None))]
    fn write(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        lang: &str,
        whatif: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let path = convert::path(path, "path")?;
        let html = self.html(py, lang, whatif)?;
        py.detach(|| std::fs::write(&path, html)).map_err(PyErr::from)
    }
    /// The page as one `<div>` with its own styles, in English: Jupyter
    /// shows it for the object.
    fn _repr_html_(&self) -> String {
        render_fragment(&self.0, Lang::En, None)
    }
    /// The page's data as plain Python values (the core's JSON form, money
    /// and rates as `Decimal`, instants as datetimes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = serde_json::to_value(&self.0).map_err(|e| crate::errors::internal(py, e))?;
        crate::engine::report_to_py(py, None, &value)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "ReportPage", &["programme", "at", "members", "active_share"])
    }
}
