//! DataFrame import and export.
//!
//! The column work that depends on the frame library (pandas, polars, pyarrow
//! or any object with the Arrow C stream interface) is done by the small
//! Python helper `crm._frames`, which turns every column into a plain list
//! (aware timestamp columns become integer microseconds since the epoch, so
//! no per-row `datetime` objects are built). This module converts the lists
//! row by row into the core's `Order`, imports them in atomic batches with
//! `Engine::record_orders` (GIL released), and keeps one result per row.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use crm_core::member::{MemberId, MemberStatus};
use crm_core::{Order, OrderStatus, Outcome};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use serde_json::Value;

use crate::convert::{self, money, string};
use crate::engine::PyEngine;
use crate::errors::{detached, invalid, INTERNAL};

/// Columns `import_orders` reads (`columns=` may rename them).
const COLUMNS: &[&str] =
    &["member_id", "order_id", "placed_at", "amount", "paid_at", "status", "channel", "store", "currency"];

/// A row `import_orders` rejected: `row` is the 0-based position in the frame,
/// `code`/`field`/`message` are those of the error the row raised.
#[pyclass(frozen, eq, module = "crm", name = "RejectedRow", get_all)]
#[derive(Clone, PartialEq)]
pub struct PyRejectedRow {
    /// 0-based position of the row in the frame.
    pub row: usize,
    /// The row's order id, when it could be read.
    pub order_id: Option<String>,
    /// Stable error code (`validation_error`, `conflict`, ...).
    pub code: String,
    /// Offending field (e.g. `order.amount`), or `None`.
    pub field: Option<String>,
    /// Error message.
    pub message: String,
}

#[pymethods]
impl PyRejectedRow {
    /// `{"row", "order_id", "code", "field", "message"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("row", self.row)?;
        d.set_item("order_id", &self.order_id)?;
        d.set_item("code", &self.code)?;
        d.set_item("field", &self.field)?;
        d.set_item("message", &self.message)?;
        Ok(d)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        crate::results::repr_of(slf.as_any(), "RejectedRow", &["row", "order_id", "code", "field", "message"])
    }
}

/// The result of one row.
#[derive(Clone, PartialEq)]
struct RowResult {
    order_id: Option<String>,
    member_id: Option<String>,
    /// Points earned per point type, or the rejection.
    outcome: Result<BTreeMap<String, i64>, PyRejectedRow>,
}

/// Result of `Engine.import_orders`: one entry per row of the frame.
/// `to_frame()` gives the per-row results as a DataFrame.
#[pyclass(frozen, eq, module = "crm", name = "ImportResult")]
#[derive(PartialEq)]
pub struct PyImportResult {
    rows: Vec<RowResult>,
    point_types: Vec<String>,
}

#[pymethods]
impl PyImportResult {
    /// Rows in the frame.
    #[getter]
    fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Rows recorded (an order already recorded earlier with the same content counts).
    #[getter]
    fn recorded(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome.is_ok()).count()
    }

    /// Distinct members of the recorded rows.
    #[getter]
    fn members(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcome.is_ok())
            .filter_map(|r| r.member_id.as_deref())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Points earned by the recorded rows, per point type.
    #[getter]
    fn earned(&self) -> BTreeMap<String, i64> {
        let mut out: BTreeMap<String, i64> = self.point_types.iter().map(|p| (p.clone(), 0)).collect();
        for r in &self.rows {
            if let Ok(e) = &r.outcome {
                for (k, v) in e {
                    *out.entry(k.clone()).or_insert(0) += v;
                }
            }
        }
        out
    }

    /// The rejected rows, in frame order.
    #[getter]
    fn rejected(&self) -> Vec<PyRejectedRow> {
        self.rows.iter().filter_map(|r| r.outcome.as_ref().err().cloned()).collect()
    }

    /// Per-row results as a DataFrame (`backend`: `"pandas"`, `"polars"`,
    /// `"pyarrow"` or `"dict"` for a dict of lists; `None` means `"pandas"`). Columns: `row`,
    /// `order_id`, `member_id`, `status` (`"recorded"` or `"rejected"`),
    /// `earned_<point type>` for each point type, `code`, `field`, `message`.
    #[pyo3(signature = (backend=None))]
    fn to_frame<'py>(&self, py: Python<'py>, backend: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let d = PyDict::new(py);
        d.set_item("row", (0..self.rows.len()).collect::<Vec<_>>())?;
        d.set_item("order_id", self.rows.iter().map(|r| r.order_id.clone()).collect::<Vec<_>>())?;
        d.set_item("member_id", self.rows.iter().map(|r| r.member_id.clone()).collect::<Vec<_>>())?;
        let status: Vec<&str> =
            self.rows.iter().map(|r| if r.outcome.is_ok() { "recorded" } else { "rejected" }).collect();
        d.set_item("status", status)?;
        for pt in &self.point_types {
            let col: Vec<i64> = self
                .rows
                .iter()
                .map(|r| r.outcome.as_ref().ok().and_then(|e| e.get(pt)).copied().unwrap_or(0))
                .collect();
            d.set_item(format!("earned_{pt}"), col)?;
        }
        let err = |f: fn(&PyRejectedRow) -> Option<String>| -> Vec<Option<String>> {
            self.rows.iter().map(|r| r.outcome.as_ref().err().and_then(f)).collect()
        };
        d.set_item("code", err(|e| Some(e.code.clone())))?;
        d.set_item("field", err(|e| e.field.clone()))?;
        d.set_item("message", err(|e| Some(e.message.clone())))?;
        make_frame(py, d, backend)
    }

    /// `{"rows", "recorded", "members", "earned", "rejected": [RejectedRow.to_dict(), ...]}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("rows", self.rows())?;
        d.set_item("recorded", self.recorded())?;
        d.set_item("members", self.members())?;
        d.set_item("earned", self.earned())?;
        let list = PyList::empty(py);
        for r in self.rejected() {
            list.append(r.to_dict(py)?)?;
        }
        d.set_item("rejected", list)?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.rows.len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let earned = self.earned().into_pyobject(py)?;
        Ok(format!(
            "ImportResult(rows={}, recorded={}, rejected={}, members={}, earned={})",
            self.rows.len(),
            self.recorded(),
            self.rows.len() - self.recorded(),
            self.members(),
            crate::results::r(earned.as_any())
        ))
    }
}

/// `crm._frames.make_frame(data, backend)`.
pub(crate) fn make_frame<'py>(
    py: Python<'py>,
    data: Bound<'py, PyDict>,
    backend: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("crm._frames")?.getattr("make_frame")?.call1((data, backend))
}

/// Code, field and message of an error raised while converting a row.
fn rejection(py: Python<'_>, row: usize, order_id: Option<String>, err: &PyErr) -> PyRejectedRow {
    let value = err.value(py);
    let attr = |name: &str| -> Option<String> { value.getattr(name).ok().and_then(|v| v.extract::<String>().ok()) };
    let is_crm = err.is_instance_of::<crate::errors::CrmError>(py);
    PyRejectedRow {
        row,
        order_id,
        code: if is_crm { attr("code").unwrap_or_else(|| INTERNAL.into()) } else { "validation_error".into() },
        field: if is_crm { attr("field") } else { None },
        message: value.str().map(|s| s.to_string()).unwrap_or_default(),
    }
}

fn core_rejection(row: usize, order_id: Option<String>, e: &crm_core::CrmError) -> PyRejectedRow {
    PyRejectedRow {
        row,
        order_id,
        code: e.code().to_string(),
        field: e.field().map(str::to_string),
        message: e.to_string(),
    }
}

/// The columns of a frame as lists.
struct Columns<'py> {
    rows: usize,
    lists: BTreeMap<&'static str, Bound<'py, PyList>>,
    /// Time columns given as integer microseconds since the epoch (UTC).
    micros: BTreeSet<String>,
}

impl<'py> Columns<'py> {
    fn cell(&self, name: &str, row: usize) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.lists.get(name) {
            None => Ok(None),
            Some(l) => {
                let v = l.get_item(row)?;
                Ok(if v.is_none() { None } else { Some(v) })
            }
        }
    }

    fn time(&self, name: &str, row: usize, field: &str) -> PyResult<Option<DateTime<Utc>>> {
        let Some(v) = self.cell(name, row)? else { return Ok(None) };
        if self.micros.contains(name) {
            let us: i64 = v.extract()?;
            return DateTime::from_timestamp_micros(us)
                .map(Some)
                .ok_or_else(|| invalid(v.py(), field, "is out of range"));
        }
        convert::datetime(&v, field).map(Some)
    }
}

fn required<'py>(v: Option<Bound<'py, PyAny>>, py: Python<'py>, field: &str) -> PyResult<Bound<'py, PyAny>> {
    v.ok_or_else(|| invalid(py, field, "is required"))
}

fn row_order(cols: &Columns<'_>, py: Python<'_>, row: usize, currency: &str) -> PyResult<Order> {
    let status = match cols.cell("status", row)? {
        None => OrderStatus::Paid,
        Some(s) => convert::from_json(py, Value::String(string(&s, "order.status")?), "order.status")?,
    };
    let opt = |name: &str, field: &str| -> PyResult<Option<String>> {
        cols.cell(name, row)?.map(|v| string(&v, field)).transpose()
    };
    Ok(Order {
        id: string(&required(cols.cell("order_id", row)?, py, "order.id")?, "order.id")?,
        member_id: MemberId(string(
            &required(cols.cell("member_id", row)?, py, "order.member_id")?,
            "order.member_id",
        )?),
        channel: opt("channel", "order.channel")?,
        store: opt("store", "order.store")?,
        placed_at: cols
            .time("placed_at", row, "order.placed_at")?
            .ok_or_else(|| invalid(py, "order.placed_at", "is required"))?,
        paid_at: cols.time("paid_at", row, "order.paid_at")?,
        status,
        amount: money(&required(cols.cell("amount", row)?, py, "order.amount")?, currency, "order.amount")?,
        currency: opt("currency", "order.currency")?,
        items: Vec::new(),
    })
}

fn read_columns<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    columns: Option<&Bound<'py, PyAny>>,
) -> PyResult<Columns<'py>> {
    let helper = py.import("crm._frames")?.getattr("order_columns")?;
    let out = helper.call1((frame, columns))?;
    let (rows, data, micros): (usize, Bound<'py, PyDict>, Vec<String>) = out.extract()?;
    let mut lists = BTreeMap::new();
    for name in COLUMNS {
        if let Some(list) = data.get_item(name)? {
            let list = list.cast_into::<PyList>().map_err(|e| crate::errors::internal(py, e))?;
            if list.len() != rows {
                return Err(crate::errors::internal(py, format!("column {name} has {} rows, not {rows}", list.len())));
            }
            lists.insert(*name, list);
        }
    }
    Ok(Columns { rows, lists, micros: micros.into_iter().collect() })
}

/// Every order of `frame` (a DataFrame, Arrow table, dict of column lists, or
/// a list of row dicts with the same column names), all or nothing: the first
/// bad row raises its error. For `crm.compare_programmes`.
pub(crate) fn read_orders(py: Python<'_>, frame: &Bound<'_, PyAny>, currency: &str) -> PyResult<Vec<Order>> {
    let cols = if let Ok(rows) = frame.cast::<PyList>() {
        let d = PyDict::new(py);
        for name in COLUMNS {
            let col = PyList::empty(py);
            for row in rows.iter() {
                let row = convert::dict(&row, "orders")?;
                col.append(row.get_item(*name)?)?;
            }
            if col.iter().any(|v| !v.is_none()) || ["order_id", "member_id", "amount", "placed_at"].contains(name) {
                d.set_item(*name, col)?;
            }
        }
        read_columns(py, d.as_any(), None)?
    } else {
        read_columns(py, frame, None)?
    };
    (0..cols.rows).map(|i| row_order(&cols, py, i, currency)).collect()
}

/// `Engine.import_orders`.
pub(crate) fn import_orders(
    engine: &PyEngine,
    py: Python<'_>,
    frame: &Bound<'_, PyAny>,
    now: DateTime<Utc>,
    batch_size: usize,
    columns: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyImportResult> {
    let cols = read_columns(py, frame, columns)?;
    let currency = engine.currency().to_string();
    let mut rows: Vec<RowResult> = Vec::with_capacity(cols.rows);
    let mut batch: Vec<(usize, Order)> = Vec::with_capacity(batch_size.min(cols.rows));
    let flush = |batch: &mut Vec<(usize, Order)>, rows: &mut Vec<RowResult>| -> PyResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (idx, orders): (Vec<usize>, Vec<Order>) = std::mem::take(batch).into_iter().unzip();
        let core = engine.inner.clone();
        let results = detached(py, move || {
            let r = core.record_orders(&orders, now);
            r.map(|r| (r, orders))
        })?;
        let (results, orders) = results;
        for ((i, order), result) in idx.into_iter().zip(orders).zip(results) {
            let slot = &mut rows[i];
            slot.outcome = match result {
                Ok(Outcome::Order { earned, .. }) => Ok(earned),
                Ok(_) => Ok(BTreeMap::new()),
                Err(e) => Err(core_rejection(i, Some(order.id.clone()), &e)),
            };
        }
        Ok(())
    };
    for i in 0..cols.rows {
        let text = |name: &str| -> Option<String> {
            cols.cell(name, i).ok().flatten().and_then(|v| v.cast::<PyString>().ok().map(|s| s.to_string()))
        };
        let (order_id, member_id) = (text("order_id"), text("member_id"));
        match row_order(&cols, py, i, &currency) {
            Ok(order) => {
                rows.push(RowResult { order_id, member_id, outcome: Ok(BTreeMap::new()) });
                batch.push((i, order));
                if batch.len() >= batch_size {
                    flush(&mut batch, &mut rows)?;
                }
            }
            Err(e) => {
                let rej = rejection(py, i, order_id.clone(), &e);
                rows.push(RowResult { order_id, member_id, outcome: Err(rej) });
            }
        }
    }
    flush(&mut batch, &mut rows)?;
    let point_types = engine.inner.program().point_types.iter().map(|t| t.id.clone()).collect();
    Ok(PyImportResult { rows, point_types })
}

/// `Engine.balances_frame`.
pub(crate) fn balances_frame<'py>(
    engine: &PyEngine,
    py: Python<'py>,
    point_type: String,
    at: DateTime<Utc>,
    backend: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let core = engine.inner.clone();
    let rows = detached(py, move || {
        core.program().require_point_type(&point_type, "point_type")?;
        let mut members: Vec<(MemberId, &'static str)> = Vec::new();
        core.store().scan(&mut |v| {
            let status = match v.state.status {
                MemberStatus::Active => "active",
                MemberStatus::Erased { .. } => "erased",
                MemberStatus::Merged { .. } => return Ok(()),
            };
            members.push((v.state.id, status));
            Ok(())
        })?;
        members.sort();
        let mut out = Vec::with_capacity(members.len());
        for (id, status) in members {
            let b = core.balance(&id, &point_type, at)?;
            out.push((id.0, status, b));
        }
        Ok(out)
    })?;
    let d = PyDict::new(py);
    d.set_item("member_id", rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>())?;
    d.set_item("status", rows.iter().map(|r| r.1).collect::<Vec<_>>())?;
    d.set_item("available", rows.iter().map(|r| r.2.available).collect::<Vec<_>>())?;
    d.set_item("pending", rows.iter().map(|r| r.2.pending).collect::<Vec<_>>())?;
    d.set_item("debt", rows.iter().map(|r| r.2.debt).collect::<Vec<_>>())?;
    d.set_item("total", rows.iter().map(|r| r.2.total()).collect::<Vec<_>>())?;
    make_frame(py, d, backend)
}
