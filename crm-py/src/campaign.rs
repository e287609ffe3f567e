//! `Engine.campaign_report` / `Engine.campaign_members` and the
//! `crm.CampaignReport` result: conversions of the campaign dict and of the
//! report (attributes, `to_dict`, DataFrames). The measurement is the core's.

use crm_core::campaign::{Campaign, GroupResult, Uplift};
use crm_core::engine::CampaignReport;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::{self, datetime, decimal_to_py, opt_decimal_to_py, serde_to_py, time_to_py};
use crate::engine::PyEngine;
use crate::errors::detached;
use crate::results::repr_of;

/// Read a campaign: a dict in the core's form with Python values
/// (`Decimal`/`str` shares and money, aware `datetime`s or RFC 3339 strings).
fn campaign_arg(obj: &Bound<'_, PyAny>) -> PyResult<Campaign> {
    let py = obj.py();
    convert::dict(obj, "campaign")?;
    let json = convert::to_json(obj, "campaign")?;
    let campaign: Campaign = convert::from_json(py, json, "campaign")?;
    Ok(campaign)
}

fn group_dict<'py>(py: Python<'py>, g: &GroupResult) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("members", g.members)?;
    d.set_item("converted", g.converted)?;
    d.set_item("conversion_rate", decimal_to_py(py, &g.conversion_rate)?)?;
    d.set_item("revenue", decimal_to_py(py, &g.revenue)?)?;
    d.set_item("revenue_per_member", decimal_to_py(py, &g.revenue_per_member)?)?;
    d.set_item("repurchased", g.repurchased)?;
    d.set_item("repurchase_rate", decimal_to_py(py, &g.repurchase_rate)?)?;
    Ok(d)
}

fn uplift_dict<'py>(py: Python<'py>, u: &Uplift) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("estimate", decimal_to_py(py, &u.estimate)?)?;
    d.set_item("low", opt_decimal_to_py(py, &u.low)?)?;
    d.set_item("high", opt_decimal_to_py(py, &u.high)?)?;
    d.set_item("significant", u.significant)?;
    Ok(d)
}

/// A campaign's results at an instant (`Engine.campaign_report`): the two
/// groups, the uplifts with their 95 % intervals, incremental revenue, cost
/// and return. Money and rates are `Decimal`. `to_frame()` gives one row per
/// group, `uplift_frame()` one row per measure.
#[pyclass(frozen, eq, module = "crm", name = "CampaignReport")]
#[derive(PartialEq)]
pub struct PyCampaignReport(pub CampaignReport);

#[pymethods]
impl PyCampaignReport {
    /// The campaign's id.
    #[getter]
    fn campaign_id(&self) -> &str {
        &self.0.campaign_id
    }
    /// The instant the figures are as of.
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.at)
    }
    /// Start of the campaign (the audience is taken then).
    #[getter]
    fn starts_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.starts_at)
    }
    /// End of attribution (exclusive).
    #[getter]
    fn attribution_end<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.attribution_end)
    }
    /// `at` is at or past the end of attribution: the figures are final.
    #[getter]
    fn complete(&self) -> bool {
        self.0.complete
    }
    /// Audience size (treatment + control).
    #[getter]
    fn targeted(&self) -> u64 {
        self.0.targeted
    }
    /// `{"members", "converted", "conversion_rate", "revenue", "revenue_per_member", "repurchased", "repurchase_rate"}`.
    #[getter]
    fn treatment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        group_dict(py, &self.0.treatment)
    }
    /// The held-out group, as `treatment`.
    #[getter]
    fn control<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        group_dict(py, &self.0.control)
    }
    /// `{"estimate", "low", "high", "significant"}`: conversion rate,
    /// treatment − control, Newcombe hybrid score 95 % interval.
    #[getter]
    fn conversion_uplift<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        uplift_dict(py, &self.0.conversion_uplift)
    }
    /// Revenue per member, treatment − control, Welch 95 % interval.
    #[getter]
    fn revenue_uplift<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        uplift_dict(py, &self.0.revenue_uplift)
    }
    /// Conversion uplift × treatment members, two places.
    #[getter]
    fn incremental_conversions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.incremental_conversions)
    }
    /// Revenue uplift per member × treatment members.
    #[getter]
    fn incremental_revenue<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.incremental_revenue)
    }
    /// `{"points", "points_value", "coupon_value", "total"}`.
    #[getter]
    fn cost<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.0.cost;
        let d = PyDict::new(py);
        d.set_item("points", c.points)?;
        d.set_item("points_value", decimal_to_py(py, &c.points_value)?)?;
        d.set_item("coupon_value", decimal_to_py(py, &c.coupon_value)?)?;
        d.set_item("total", decimal_to_py(py, &c.total)?)?;
        Ok(d)
    }
    /// `(incremental_revenue − cost) / cost`, or `None` when it cost nothing.
    #[getter]
    fn roi<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_decimal_to_py(py, &self.0.roi)
    }

    /// One row per group (`treatment`, `control`): `group`, `members`,
    /// `converted`, `conversion_rate`, `revenue`, `revenue_per_member`,
    /// `repurchased`, `repurchase_rate` (money and rates as `Decimal`).
    /// `backend`: `"pandas"` (default), `"polars"`, `"pyarrow"` or `"dict"`.
    #[pyo3(signature = (backend = None))]
    fn to_frame<'py>(&self, py: Python<'py>, backend: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let groups = [("treatment", &self.0.treatment), ("control", &self.0.control)];
        let d = PyDict::new(py);
        d.set_item("group", groups.iter().map(|(n, _)| *n).collect::<Vec<_>>())?;
        d.set_item("members", groups.iter().map(|(_, g)| g.members).collect::<Vec<_>>())?;
        d.set_item("converted", groups.iter().map(|(_, g)| g.converted).collect::<Vec<_>>())?;
        let decimals = |f: fn(&GroupResult) -> &rust_decimal::Decimal| -> PyResult<Bound<'py, PyList>> {
            let l = PyList::empty(py);
            for (_, g) in &groups {
                l.append(decimal_to_py(py, f(g))?)?;
            }
            Ok(l)
        };
        d.set_item("conversion_rate", decimals(|g| &g.conversion_rate)?)?;
        d.set_item("revenue", decimals(|g| &g.revenue)?)?;
        d.set_item("revenue_per_member", decimals(|g| &g.revenue_per_member)?)?;
        d.set_item("repurchased", groups.iter().map(|(_, g)| g.repurchased).collect::<Vec<_>>())?;
        d.set_item("repurchase_rate", decimals(|g| &g.repurchase_rate)?)?;
        crate::frames::make_frame(py, d, backend)
    }

    /// One row per measure (`conversion_rate`, `revenue_per_member`):
    /// `measure`, `treatment`, `control`, `uplift`, `low`, `high`,
    /// `significant` (`low`/`high` are `None` when no interval exists).
    #[pyo3(signature = (backend = None))]
    fn uplift_frame<'py>(&self, py: Python<'py>, backend: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let r = &self.0;
        let rows = [
            ("conversion_rate", &r.treatment.conversion_rate, &r.control.conversion_rate, &r.conversion_uplift),
            ("revenue_per_member", &r.treatment.revenue_per_member, &r.control.revenue_per_member, &r.revenue_uplift),
        ];
        let (measure, treatment, control, uplift, low, high, significant) = (
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
            PyList::empty(py),
        );
        for (name, t, c, u) in rows {
            measure.append(name)?;
            treatment.append(decimal_to_py(py, t)?)?;
            control.append(decimal_to_py(py, c)?)?;
            uplift.append(decimal_to_py(py, &u.estimate)?)?;
            low.append(opt_decimal_to_py(py, &u.low)?)?;
            high.append(opt_decimal_to_py(py, &u.high)?)?;
            significant.append(u.significant)?;
        }
        let d = PyDict::new(py);
        for (k, v) in [
            ("measure", measure),
            ("treatment", treatment),
            ("control", control),
            ("uplift", uplift),
            ("low", low),
            ("high", high),
            ("significant", significant),
        ] {
            d.set_item(k, v)?;
        }
        crate::frames::make_frame(py, d, backend)
    }

    /// The core's JSON form (money and rates as decimal strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "CampaignReport", &["campaign_id", "targeted", "incremental_revenue", "roi", "complete"])
    }
}

/// `Engine.campaign_report` (the docstring is on the method in `engine.rs`).
pub(crate) fn campaign_report(
    engine: &PyEngine,
    py: Python<'_>,
    campaign: &Bound<'_, PyAny>,
    at: &Bound<'_, PyAny>,
) -> PyResult<PyCampaignReport> {
    let campaign = campaign_arg(campaign)?;
    let at = datetime(at, "at")?;
    let engine = engine.inner.clone();
    detached(py, move || engine.campaign_report(&campaign, at)).map(PyCampaignReport)
}

/// `Engine.campaign_members`.
pub(crate) fn campaign_members<'py>(
    engine: &PyEngine,
    py: Python<'py>,
    campaign: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let campaign = campaign_arg(campaign)?;
    let engine = engine.inner.clone();
    let members = detached(py, move || engine.campaign_members(&campaign))?;
    serde_to_py(py, &members)
}
