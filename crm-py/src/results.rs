//! Result objects: small immutable wrappers over the core's values.
//!
//! Attributes are typed Python values (`int` points, `decimal.Decimal` money,
//! aware UTC `datetime`s); `to_dict()` returns exactly the core's serde JSON
//! form (money as decimal strings, times as RFC 3339 strings) so results can be
//! compared with the shared scenario files.

use std::fmt::Write as _;

use chrono::NaiveDate;
use crm_core::engine::{StageView, TransitionMatrix};
use crm_core::lifecycle::{Stage, StageChange};
use crm_core::member::MemberStatus;
use crm_core::outreach::OutreachItem;
use crm_core::state::MemberState;
use crm_core::tier::{Benefits, Gap, ManualTier, Metric, Progress, TierChange, TierView};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde_json::Value;

use crate::convert::{decimal_to_py, json_to_py, opt_decimal_to_py, opt_time_to_py, serde_to_py, time_to_py};

/// `repr()` of a Python value, for `__repr__` implementations.
pub(crate) fn r(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|s| s.to_string()).unwrap_or_else(|_| "?".into())
}

/// Python `repr()` of a string.
pub(crate) fn pystr(py: Python<'_>, s: &str) -> String {
    r(&pyo3::types::PyString::new(py, s).into_any())
}

/// `Name(k=v, ...)` from attribute names.
pub(crate) fn repr_of(obj: &Bound<'_, PyAny>, name: &str, attrs: &[&str]) -> PyResult<String> {
    let mut out = format!("{name}(");
    for (i, a) in attrs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{a}={}", r(&obj.getattr(*a)?));
    }
    out.push(')');
    Ok(out)
}

// ----- Balance ----------------------------------------------------------------

/// Points of one type at an instant: `available` (spendable now, after any
/// debt), `pending` (still in the return window) and `debt` (negative balance
/// carried after clawing back spent points).
#[pyclass(frozen, eq, module = "crm", name = "Balance")]
#[derive(PartialEq)]
pub struct PyBalance(pub crm_core::Balance);

#[pymethods]
impl PyBalance {
    /// Spendable points (open, available lots minus any debt).
    #[getter]
    fn available(&self) -> i64 {
        self.0.available
    }
    /// Points earned but still pending.
    #[getter]
    fn pending(&self) -> i64 {
        self.0.pending
    }
    /// Negative balance carried after a clawback.
    #[getter]
    fn debt(&self) -> i64 {
        self.0.debt
    }
    /// `available + pending`.
    #[getter]
    fn total(&self) -> i64 {
        self.0.total()
    }
    /// The core's JSON form: `{"available": int, "pending": int, "debt": int}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Balance", &["available", "pending", "debt"])
    }
}

// ----- Lot and Allocation -----------------------------------------------------

/// A lot of earned points: granted once, consumed soonest-expiry first.
#[pyclass(frozen, eq, module = "crm", name = "Lot")]
#[derive(PartialEq)]
pub struct PyLot(pub crm_core::Lot);

#[pymethods]
impl PyLot {
    /// Lot id, unique within the member (`<member>#<n>`).
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }
    /// Point type of the lot.
    #[getter]
    fn point_type(&self) -> &str {
        &self.0.point_type
    }
    /// Points granted; never changes.
    #[getter]
    fn granted(&self) -> i64 {
        self.0.granted
    }
    /// Points still open.
    #[getter]
    fn remaining(&self) -> i64 {
        self.0.remaining
    }
    /// When the lot was earned (aware UTC datetime).
    #[getter]
    fn earned_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.earned_at)
    }
    /// When the lot becomes spendable.
    #[getter]
    fn available_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.available_at)
    }
    /// First instant at which the lot is expired, or `None` (never expires).
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.expires_at)
    }
    /// Where the lot came from, in the core's JSON form
    /// (e.g. `{"type": "order", "order_id": "o1", "rule_id": "base"}`).
    #[getter]
    fn source<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0.source)
    }
    /// False while a pending lot has not been activated by `run_due`.
    #[getter]
    fn activated(&self) -> bool {
        self.0.activated
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Lot", &["id", "point_type", "granted", "remaining", "expires_at"])
    }
}

/// Points taken from (or put back into) one lot.
#[pyclass(frozen, eq, module = "crm", name = "Allocation")]
#[derive(PartialEq)]
pub struct PyAllocation(pub crm_core::Allocation);

#[pymethods]
impl PyAllocation {
    /// The lot.
    #[getter]
    fn lot_id(&self) -> &str {
        &self.0.lot_id
    }
    /// Points taken from it.
    #[getter]
    fn points(&self) -> i64 {
        self.0.points
    }
    /// The lot's expiry.
    #[getter]
    fn expires_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.expires_at)
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Allocation", &["lot_id", "points"])
    }
}

/// Points clawed back from one point type by a refund.
#[pyclass(frozen, eq, module = "crm", name = "Clawback")]
#[derive(PartialEq)]
pub struct PyClawback(pub crm_core::Clawback);

#[pymethods]
impl PyClawback {
    /// Point type.
    #[getter]
    fn point_type(&self) -> &str {
        &self.0.point_type
    }
    /// Points taken from open lots.
    #[getter]
    fn taken(&self) -> i64 {
        self.0.taken
    }
    /// Points added to the negative balance.
    #[getter]
    fn debt(&self) -> i64 {
        self.0.debt
    }
    /// Points written off (cap-at-zero policy).
    #[getter]
    fn shortfall(&self) -> i64 {
        self.0.shortfall
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Clawback", &["point_type", "taken", "debt", "shortfall"])
    }
}

// ----- Outcome ----------------------------------------------------------------

/// What a command did. `.type` is the core's outcome tag (`member`, `order`,
/// `refund`, `redemption`, `reversal`, `adjustment`, `action`, `merge`,
/// `erasure`, `due`, `tier`); the variant's fields are attributes (`.order_id`,
/// `.earned`, `.points`, ...). Money fields are `Decimal`, allocations and
/// clawbacks are `Allocation`/`Clawback` objects, `run_due`'s `.outreach` is a
/// list of `OutreachItem`s and `assign_tier`'s `.until` an aware `datetime`.
#[pyclass(frozen, eq, module = "crm", name = "Outcome")]
pub struct PyOutcome {
    pub(crate) inner: crm_core::Outcome,
    json: Value,
}

impl PartialEq for PyOutcome {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl PyOutcome {
    pub(crate) fn new(inner: crm_core::Outcome) -> Self {
        let json = serde_json::to_value(&inner).unwrap_or(Value::Null);
        PyOutcome { inner, json }
    }

    fn field<'py>(&self, py: Python<'py>, name: &str, v: &Value) -> PyResult<Bound<'py, PyAny>> {
        match (name, v) {
            ("amount" | "discount" | "cost", Value::String(s)) => match s.parse::<rust_decimal::Decimal>() {
                Ok(d) => decimal_to_py(py, &d),
                Err(_) => json_to_py(py, v),
            },
            ("allocations", Value::Array(a)) => {
                let list = PyList::empty(py);
                for item in a {
                    match serde_json::from_value::<crm_core::Allocation>(item.clone()) {
                        Ok(al) => list.append(Py::new(py, PyAllocation(al))?)?,
                        Err(_) => list.append(json_to_py(py, item)?)?,
                    }
                }
                Ok(list.into_any())
            }
            ("until" | "valid_from" | "expires_at", Value::String(s)) => {
                match chrono::DateTime::parse_from_rfc3339(s) {
                    Ok(t) => time_to_py(py, &t.with_timezone(&chrono::Utc)),
                    Err(_) => json_to_py(py, v),
                }
            }
            ("outreach", Value::Array(a)) => {
                let list = PyList::empty(py);
                for item in a {
                    match serde_json::from_value::<OutreachItem>(item.clone()) {
                        Ok(o) => list.append(Py::new(py, PyOutreachItem(o))?)?,
                        Err(_) => list.append(json_to_py(py, item)?)?,
                    }
                }
                Ok(list.into_any())
            }
            ("clawbacks", Value::Array(a)) => {
                let list = PyList::empty(py);
                for item in a {
                    match serde_json::from_value::<crm_core::Clawback>(item.clone()) {
                        Ok(c) => list.append(Py::new(py, PyClawback(c))?)?,
                        Err(_) => list.append(json_to_py(py, item)?)?,
                    }
                }
                Ok(list.into_any())
            }
            _ => json_to_py(py, v),
        }
    }

    fn names(&self) -> Vec<&str> {
        match &self.json {
            Value::Object(o) => o.keys().map(String::as_str).collect(),
            _ => vec![],
        }
    }
}

#[pymethods]
impl PyOutcome {
    /// The outcome kind (`"order"`, `"redemption"`, ...).
    #[getter(r#type)]
    fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or("unknown")
    }

    /// The variant's fields as typed Python values (without `type`).
    #[getter]
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Value::Object(o) = &self.json {
            for (k, v) in o.iter().filter(|(k, _)| *k != "type") {
                d.set_item(k, self.field(py, k, v)?)?;
            }
        }
        Ok(d)
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        match self.json.get(name) {
            Some(v) if name != "type" => self.field(py, name, v),
            _ => Err(pyo3::exceptions::PyAttributeError::new_err(format!(
                "{} outcome has no attribute {name:?}",
                self.kind()
            ))),
        }
    }

    fn __dir__(&self) -> Vec<String> {
        let mut v: Vec<String> = ["type", "fields", "to_dict"].iter().map(|s| s.to_string()).collect();
        v.extend(self.names().into_iter().filter(|n| *n != "type").map(String::from));
        v
    }

    /// The core's JSON form (tagged by `type`; money as decimal strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.json)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut out = format!("Outcome(type={}", pystr(py, self.kind()));
        if let Value::Object(o) = &self.json {
            for (k, v) in o.iter().filter(|(k, _)| *k != "type") {
                let _ = write!(out, ", {k}={}", r(&self.field(py, k, v)?));
            }
        }
        out.push(')');
        Ok(out)
    }
}

// ----- Statement ----------------------------------------------------------------

/// One line of a member's statement for a point type.
#[pyclass(frozen, eq, module = "crm", name = "StatementEntry")]
#[derive(PartialEq)]
pub struct PyStatementEntry(pub crm_core::StatementEntry);

#[pymethods]
impl PyStatementEntry {
    /// Position in the member's event log (1-based).
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    /// Effective time.
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.at)
    }
    /// `earn`, `redeem`, `reverse`, `clawback`, `adjust`, `expire`, `merge_in`, `merge_out`.
    #[getter]
    fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Signed points of the entry.
    #[getter]
    fn points(&self) -> i64 {
        self.0.points
    }
    /// Outstanding points after this entry.
    #[getter]
    fn balance(&self) -> i64 {
        self.0.balance
    }
    /// Order, redemption, bonus or member the entry refers to.
    #[getter]
    fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }
    /// Who made a manual adjustment (`None` for every other kind).
    #[getter]
    fn actor(&self) -> Option<&str> {
        self.0.actor.as_deref()
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "StatementEntry", &["seq", "at", "kind", "points", "balance", "reference", "actor"])
    }
}

/// A page of a statement; iterate it for its entries.
#[pyclass(frozen, eq, module = "crm", name = "StatementPage")]
#[derive(PartialEq)]
pub struct PyStatementPage(pub crm_core::StatementPage);

impl PyStatementPage {
    fn entry_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for e in &self.0.entries {
            list.append(Py::new(py, PyStatementEntry(e.clone()))?)?;
        }
        Ok(list)
    }
}

#[pymethods]
impl PyStatementPage {
    /// Entries of this page, oldest first.
    #[getter]
    fn entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.entry_list(py)
    }
    /// Entries in the whole statement.
    #[getter]
    fn total(&self) -> usize {
        self.0.total
    }
    /// Offset of the next page, or `None` on the last page.
    #[getter]
    fn next_offset(&self) -> Option<usize> {
        self.0.next_offset
    }
    fn __len__(&self) -> usize {
        self.0.entries.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.entry_list(py)?.try_iter()?.into_any())
    }
    fn __getitem__(&self, index: isize) -> PyResult<PyStatementEntry> {
        let n = self.0.entries.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if i < 0 || i >= n {
            return Err(pyo3::exceptions::PyIndexError::new_err("statement page index out of range"));
        }
        Ok(PyStatementEntry(self.0.entries[i as usize].clone()))
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(&self) -> String {
        format!(
            "StatementPage(entries=<{} entries>, total={}, next_offset={})",
            self.0.entries.len(),
            self.0.total,
            self.0.next_offset.map_or("None".to_string(), |o| o.to_string())
        )
    }
}

// ----- Expiring ---------------------------------------------------------------

/// Points of one type expiring within a window, bucketed by expiry instant.
#[pyclass(frozen, eq, module = "crm", name = "Expiring")]
#[derive(PartialEq)]
pub struct PyExpiring(pub crm_core::Expiring);

#[pymethods]
impl PyExpiring {
    /// Points expiring in the window.
    #[getter]
    fn total(&self) -> i64 {
        self.0.total
    }
    /// `(expires_at, points)` pairs, soonest first.
    #[getter]
    fn buckets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (t, p) in &self.0.buckets {
            list.append(PyTuple::new(py, [time_to_py(py, t)?, p.into_pyobject(py)?.into_any()])?)?;
        }
        Ok(list)
    }
    /// The core's JSON form (`buckets` as `[time, points]` pairs).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Expiring", &["total", "buckets"])
    }
}

// ----- Liability --------------------------------------------------------------

/// Outstanding points of one type across the programme.
#[pyclass(frozen, eq, module = "crm", name = "PointTypeLiability")]
#[derive(PartialEq)]
pub struct PyPointTypeLiability(pub crm_core::PointTypeLiability);

#[pymethods]
impl PyPointTypeLiability {
    /// Point type.
    #[getter]
    fn point_type(&self) -> &str {
        &self.0.point_type
    }
    /// Whether the type can be redeemed.
    #[getter]
    fn spendable(&self) -> bool {
        self.0.spendable
    }
    /// Members holding any outstanding points of this type.
    #[getter]
    fn members(&self) -> u64 {
        self.0.members
    }
    /// Available points (after debt).
    #[getter]
    fn available(&self) -> i64 {
        self.0.available
    }
    /// Pending points.
    #[getter]
    fn pending(&self) -> i64 {
        self.0.pending
    }
    /// Negative balances.
    #[getter]
    fn debt(&self) -> i64 {
        self.0.debt
    }
    /// `available + pending`.
    #[getter]
    fn outstanding(&self) -> i64 {
        self.0.outstanding
    }
    /// Money value of the outstanding points (`Decimal`; zero for non-spendable types).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.value)
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "PointTypeLiability", &["point_type", "members", "outstanding", "value"])
    }
}

/// Programme-wide outstanding points and their money value at an instant.
#[pyclass(frozen, eq, module = "crm", name = "Liability")]
#[derive(PartialEq)]
pub struct PyLiability(pub crm_core::Liability);

#[pymethods]
impl PyLiability {
    /// The instant.
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.at)
    }
    /// Members in the store.
    #[getter]
    fn members(&self) -> u64 {
        self.0.members
    }
    /// One entry per point type of the programme.
    #[getter]
    fn point_types(&self) -> Vec<PyPointTypeLiability> {
        self.0.point_types.iter().cloned().map(PyPointTypeLiability).collect()
    }
    /// Total money value of spendable points (`Decimal`).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.value)
    }
    /// The entry of one point type.
    fn __getitem__(&self, point_type: &str) -> PyResult<PyPointTypeLiability> {
        self.0
            .point_types
            .iter()
            .find(|l| l.point_type == point_type)
            .cloned()
            .map(PyPointTypeLiability)
            .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(point_type.to_string()))
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Liability", &["at", "members", "value"])
    }
}

// ----- Member -----------------------------------------------------------------

/// A member record: profile, identities, tags, consent, open lots and order
/// aggregates. `to_dict()` is the core's full JSON form of the member state.
#[pyclass(frozen, eq, module = "crm", name = "Member")]
#[derive(PartialEq)]
pub struct PyMember(pub MemberState);

#[pymethods]
impl PyMember {
    /// Member id.
    #[getter]
    fn id(&self) -> &str {
        self.0.id.as_str()
    }
    /// `"active"`, `"merged"` or `"erased"`.
    #[getter]
    fn status(&self) -> &'static str {
        match self.0.status {
            MemberStatus::Active => "active",
            MemberStatus::Merged { .. } => "merged",
            MemberStatus::Erased { .. } => "erased",
        }
    }
    /// The surviving member when this one was merged, else `None`.
    #[getter]
    fn merged_into(&self) -> Option<&str> {
        match &self.0.status {
            MemberStatus::Merged { into, .. } => Some(into.as_str()),
            _ => None,
        }
    }
    /// When the member was created.
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.created_at)
    }
    /// Latest effective time of any event.
    #[getter]
    fn last_event_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.last_event_at)
    }
    /// Profile as a dict (`birthday` a `date`, `joined_at` a `datetime`,
    /// absent fields `None`).
    #[getter]
    fn profile<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = serde_to_py(py, &self.0.profile)?;
        let dict = d.cast::<PyDict>()?;
        let p = &self.0.profile;
        dict.set_item("joined_at", opt_time_to_py(py, &p.joined_at)?)?;
        let birthday: Option<NaiveDate> = p.birthday;
        dict.set_item("birthday", birthday)?;
        Ok(d)
    }
    /// Linked identities as `(channel, external_id)` tuples, sorted.
    #[getter]
    fn identities(&self) -> Vec<(String, String)> {
        self.0.identities.iter().map(|i| (i.channel.clone(), i.external_id.clone())).collect()
    }
    /// Tags, sorted.
    #[getter]
    fn tags(&self) -> Vec<String> {
        self.0.tags.iter().cloned().collect()
    }
    /// Marketing consent per channel (`True` = granted).
    #[getter]
    fn consents<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, c) in &self.0.consents {
            d.set_item(k, c.granted)?;
        }
        Ok(d)
    }
    /// Members merged into this one.
    #[getter]
    fn merged_from(&self) -> Vec<String> {
        self.0.merged_from.iter().map(|m| m.0.clone()).collect()
    }
    /// Open lots.
    #[getter]
    fn lots(&self) -> Vec<PyLot> {
        self.0.open_lots().cloned().map(PyLot).collect()
    }
    /// Negative balance per point type.
    #[getter]
    fn debts(&self) -> std::collections::BTreeMap<String, i64> {
        self.0.debts.clone()
    }
    /// Ids of the member's orders.
    #[getter]
    fn order_ids(&self) -> Vec<String> {
        self.0.orders.keys().cloned().collect()
    }
    /// Paid (earning) orders.
    #[getter]
    fn order_count(&self) -> u64 {
        self.0.stats.orders
    }
    /// Sum of paid order amounts (`Decimal`).
    #[getter]
    fn spend<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.stats.spend)
    }
    /// Sum of refunds (`Decimal`).
    #[getter]
    fn refunded<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.stats.refunded)
    }
    /// First paid order, or `None`.
    #[getter]
    fn first_order_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.stats.first_order_at)
    }
    /// Last paid order, or `None`.
    #[getter]
    fn last_order_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.stats.last_order_at)
    }
    /// The core's full JSON form of the member state.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "Member", &["id", "status", "tags", "order_count", "spend"])
    }
}

// ----- Tiers ------------------------------------------------------------------

/// The snake_case serde name of a unit enum value (`TierReason::ManualExpired`
/// -> `"manual_expired"`).
fn tag_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The qualifying metric of a tier ladder over its window: spend (`Decimal`),
/// paid orders and growth points.
#[pyclass(frozen, eq, module = "crm", name = "TierMetric")]
#[derive(PartialEq)]
pub struct PyTierMetric(pub Metric);

#[pymethods]
impl PyTierMetric {
    /// Qualifying spend (`Decimal`; refunds deducted).
    #[getter]
    fn spend<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        decimal_to_py(py, &self.0.spend)
    }
    /// Paid orders (fully refunded orders deducted).
    #[getter]
    fn orders(&self) -> i64 {
        self.0.orders
    }
    /// Growth points (points of the ladder's `point_type`).
    #[getter]
    fn points(&self) -> i64 {
        self.0.points
    }
    /// The core's JSON form (`spend` as a decimal string).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "TierMetric", &["spend", "orders", "points"])
    }
}

/// What is still missing to meet a threshold: one attribute per part of the
/// threshold (`None` for parts the threshold does not have; zero where met).
#[pyclass(frozen, eq, module = "crm", name = "TierGap")]
#[derive(PartialEq)]
pub struct PyTierGap(pub Gap);

#[pymethods]
impl PyTierGap {
    /// Spend still missing (`Decimal`), or `None`.
    #[getter]
    fn spend<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_decimal_to_py(py, &self.0.spend)
    }
    /// Orders still missing, or `None`.
    #[getter]
    fn orders(&self) -> Option<i64> {
        self.0.orders
    }
    /// Growth points still missing, or `None`.
    #[getter]
    fn points(&self) -> Option<i64> {
        self.0.points
    }
    /// True when nothing is missing.
    #[getter]
    fn met(&self) -> bool {
        self.0.is_met()
    }
    /// The core's JSON form (absent parts left out; `spend` as a decimal string).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "TierGap", &["spend", "orders", "points", "met"])
    }
}

/// Progress towards a tier's threshold by a deadline (`TierView.next` and
/// `TierView.retain`).
#[pyclass(frozen, eq, module = "crm", name = "TierProgress")]
#[derive(PartialEq)]
pub struct PyTierProgress(pub Progress);

#[pymethods]
impl PyTierProgress {
    /// The tier the progress is towards (next tier up, or the tier to keep).
    #[getter]
    fn tier(&self) -> &str {
        &self.0.tier
    }
    /// The metric so far over the window that counts.
    #[getter]
    fn metric(&self) -> PyTierMetric {
        PyTierMetric(self.0.metric.clone())
    }
    /// What is still missing.
    #[getter]
    fn missing(&self) -> PyTierGap {
        PyTierGap(self.0.missing.clone())
    }
    /// Deadline (the review or the end of grace), or `None`.
    #[getter]
    fn by<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.by)
    }
    /// Readable summary ("spend 120.00 more by 31 Dec 2024 to keep Gold").
    #[getter]
    fn message(&self) -> &str {
        &self.0.message
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "TierProgress", &["tier", "missing", "by", "message"])
    }
}

/// A tier assigned by hand (`Engine.assign_tier`), in force until `until`.
#[pyclass(frozen, eq, module = "crm", name = "ManualTier")]
#[derive(PartialEq)]
pub struct PyManualTier(pub ManualTier);

#[pymethods]
impl PyManualTier {
    /// When the assignment ends (then the metric decides again).
    #[getter]
    fn until<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.until)
    }
    /// Why it was assigned.
    #[getter]
    fn reason(&self) -> &str {
        &self.0.reason
    }
    /// Who assigned it.
    #[getter]
    fn actor(&self) -> &str {
        &self.0.actor
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "ManualTier", &["until", "reason", "actor"])
    }
}

/// What members of a tier get.
#[pyclass(frozen, eq, module = "crm", name = "TierBenefits")]
#[derive(PartialEq)]
pub struct PyTierBenefits(pub Benefits);

#[pymethods]
impl PyTierBenefits {
    /// Factor on points earned by rate rules (`Decimal`), or `None` (1).
    #[getter]
    fn points_multiplier<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_decimal_to_py(py, &self.0.points_multiplier)
    }
    /// Discount rate the host applies at checkout (`Decimal`, `0.05` = 5 %), or `None`.
    #[getter]
    fn discount_rate<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_decimal_to_py(py, &self.0.discount_rate)
    }
    /// Free shipping.
    #[getter]
    fn free_shipping(&self) -> bool {
        self.0.free_shipping
    }
    /// Birthday gift reference, or `None`.
    #[getter]
    fn birthday_gift(&self) -> Option<&str> {
        self.0.birthday_gift.as_deref()
    }
    /// Host-defined extras (plain JSON values).
    #[getter]
    fn custom<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0.custom)
    }
    /// The core's JSON form (decimals as strings, absent fields left out).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(
            slf.as_any(),
            "TierBenefits",
            &["points_multiplier", "discount_rate", "free_shipping", "birthday_gift", "custom"],
        )
    }
}

/// A member's tier at an instant, with its benefits and progress
/// (`Engine.tier`).
#[pyclass(frozen, eq, module = "crm", name = "TierView")]
#[derive(PartialEq)]
pub struct PyTierView(pub TierView);

#[pymethods]
impl PyTierView {
    /// Tier id (`"gold"`).
    #[getter]
    fn tier(&self) -> &str {
        &self.0.tier
    }
    /// Display name (`"Gold"`; the id when the tier has none).
    #[getter]
    fn name(&self) -> &str {
        &self.0.name
    }
    /// When the member entered the tier.
    #[getter]
    fn since<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.since)
    }
    /// Next review, or `None` (never reviewed).
    #[getter]
    fn review_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.review_at)
    }
    /// End of the grace period after a failed review, or `None`.
    #[getter]
    fn grace_until<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.grace_until)
    }
    /// The manual assignment in force, or `None`.
    #[getter]
    fn manual(&self) -> Option<PyManualTier> {
        self.0.manual.clone().map(PyManualTier)
    }
    /// The tier's benefits.
    #[getter]
    fn benefits(&self) -> PyTierBenefits {
        PyTierBenefits(self.0.benefits.clone())
    }
    /// Progress to the next tier up (`None` at the top).
    #[getter]
    fn next(&self) -> Option<PyTierProgress> {
        self.0.next.clone().map(PyTierProgress)
    }
    /// Progress to keeping this tier at the next review (`None` for the base
    /// tier and lifetime windows).
    #[getter]
    fn retain(&self) -> Option<PyTierProgress> {
        self.0.retain.clone().map(PyTierProgress)
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "TierView", &["tier", "name", "since", "review_at", "grace_until", "manual"])
    }
}

/// One entry of a member's tier history (`Engine.tier_history`).
#[pyclass(frozen, eq, module = "crm", name = "TierChange")]
#[derive(PartialEq)]
pub struct PyTierChange(pub TierChange);

#[pymethods]
impl PyTierChange {
    /// When it happened.
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.at)
    }
    /// The previous tier (`None` when the member joined); `from` in `to_dict()`.
    #[getter(from_)]
    fn from_(&self) -> Option<&str> {
        self.0.from.as_deref()
    }
    /// The tier after the change (the same tier for `retained` and `grace`).
    #[getter]
    fn to(&self) -> &str {
        &self.0.to
    }
    /// `joined`, `upgrade`, `retained`, `grace`, `downgrade`, `refund`,
    /// `manual`, `manual_expired`, `ladder_changed` or `reinstated`.
    #[getter]
    fn reason(&self) -> String {
        tag_of(&self.0.reason)
    }
    /// Free text (the reason of a manual assignment), or `None`.
    #[getter]
    fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    /// The core's JSON form (keys `at`, `from`, `to`, `reason`, `note`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "TierChange", &["at", "from_", "to", "reason", "note"])
    }
}

// ----- Lifecycle stages ---------------------------------------------------------

/// A member's lifecycle stage at an instant (`Engine.stage`).
#[pyclass(frozen, eq, module = "crm", name = "StageView")]
#[derive(PartialEq)]
pub struct PyStageView(pub StageView);

#[pymethods]
impl PyStageView {
    /// `prospect`, `new`, `active`, `reactivated`, `at_risk`, `dormant` or `churned`.
    #[getter]
    fn stage(&self) -> &'static str {
        self.0.stage.as_str()
    }
    /// When the member entered the stage (recorded transitions), or `None`
    /// (the programme does not record stages).
    #[getter]
    fn since<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.since)
    }
    /// Last paid order up to the instant, or `None`.
    #[getter]
    fn last_order_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        opt_time_to_py(py, &self.0.last_order_at)
    }
    /// Whole days since the last paid order, or `None`.
    #[getter]
    fn days_since_last_order(&self) -> Option<i64> {
        self.0.days_since_last_order
    }
    /// Paid orders up to the instant.
    #[getter]
    fn orders(&self) -> u64 {
        self.0.orders
    }
    /// The core's JSON form.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "StageView", &["stage", "since", "last_order_at", "days_since_last_order", "orders"])
    }
}

/// A recorded stage transition (`Engine.stage_history`).
#[pyclass(frozen, eq, module = "crm", name = "StageChange")]
#[derive(PartialEq)]
pub struct PyStageChange(pub StageChange);

#[pymethods]
impl PyStageChange {
    /// When it happened.
    #[getter]
    fn at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.at)
    }
    /// The previous stage (`None` when the member joined); `from` in `to_dict()`.
    #[getter(from_)]
    fn from_(&self) -> Option<&'static str> {
        self.0.from.map(Stage::as_str)
    }
    /// The new stage.
    #[getter]
    fn to(&self) -> &'static str {
        self.0.to.as_str()
    }
    /// Why ("no order for 60 days").
    #[getter]
    fn reason(&self) -> &str {
        &self.0.reason
    }
    /// The core's JSON form (keys `at`, `from`, `to`, `reason`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "StageChange", &["at", "from_", "to", "reason"])
    }
}

/// How members moved between stages from one instant to another
/// (`Engine.stage_transitions`).
#[pyclass(frozen, eq, module = "crm", name = "TransitionMatrix")]
#[derive(PartialEq)]
pub struct PyTransitionMatrix(pub TransitionMatrix);

#[pymethods]
impl PyTransitionMatrix {
    /// The first instant; `from` in `to_dict()`.
    #[getter(from_)]
    fn from_<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.from)
    }
    /// The second instant.
    #[getter]
    fn to<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.to)
    }
    /// `counts[a][b]`: members in stage `a` at `from_` and in `b` at `to`
    /// (only pairs with members are present). Members who joined after
    /// `from_` count as `prospect` there.
    #[getter]
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (a, row) in &self.0.counts {
            let inner = PyDict::new(py);
            for (b, n) in row {
                inner.set_item(b.as_str(), *n)?;
            }
            d.set_item(a.as_str(), inner)?;
        }
        Ok(d)
    }
    /// Members in stage `start` at `from_` and in `end` at `to` (0 when none).
    fn count(&self, start: &str, end: &str) -> u64 {
        self.0
            .counts
            .iter()
            .filter(|(a, _)| a.as_str() == start)
            .flat_map(|(_, row)| row.iter().filter(|(b, _)| b.as_str() == end).map(|(_, n)| *n))
            .sum()
    }
    /// The core's JSON form (keys `from`, `to`, `counts`).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "TransitionMatrix", &["from_", "to", "counts"])
    }
}

// ----- Outreach ---------------------------------------------------------------

/// A message the host should send, as emitted by `Engine.run_due`
/// (`Outcome.outreach`).
#[pyclass(frozen, eq, module = "crm", name = "OutreachItem")]
#[derive(PartialEq)]
pub struct PyOutreachItem(pub OutreachItem);

#[pymethods]
impl PyOutreachItem {
    /// Stable id `member:trigger:occurrence` (use it to deduplicate sends).
    #[getter]
    fn id(&self) -> &str {
        &self.0.id
    }
    /// The member.
    #[getter]
    fn member_id(&self) -> &str {
        self.0.member_id.as_str()
    }
    /// The trigger id of the programme (`"birthday_sms"`).
    #[getter]
    fn trigger(&self) -> &str {
        &self.0.trigger
    }
    /// Occurrence key within the trigger (`"2025"`, `"o-17"`, `"2025-03"`).
    #[getter]
    fn occurrence(&self) -> &str {
        &self.0.occurrence
    }
    /// The first of the trigger's channels the member consented to.
    #[getter]
    fn channel(&self) -> &str {
        &self.0.channel
    }
    /// When it is due (after quiet-hours deferral).
    #[getter]
    fn due_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        time_to_py(py, &self.0.due_at)
    }
    /// Trigger data and the trigger's static payload, as plain JSON values (a dict).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0.payload)
    }
    /// The core's JSON form (`due_at` as an RFC 3339 string).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        repr_of(slf.as_any(), "OutreachItem", &["id", "channel", "due_at", "payload"])
    }
}
