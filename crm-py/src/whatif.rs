//! `crm.compare_programmes`: the core's what-if replay (`crm_core::whatif`)
//! over Python inputs, and its `crm.Comparison` result (a dict, a DataFrame
//! of the programmes, an HTML table for notebooks).

use crm_core::facts::Refund;
use crm_core::whatif::{compare, Comparison, Options, ProgrammeFigures, RecordedRedemption};
use crm_core::Program;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde_json::Value;

use crate::convert::{self, serde_to_py, string};
use crate::errors::{detached, invalid};
use crate::program::PyProgram;

fn program(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Program> {
    Ok(obj
        .cast::<PyProgram>()
        .map_err(|_| invalid(obj.py(), field, format!("must be a crm.Program, not {}", convert::type_name(obj))))?
        .get()
        .0
        .clone())
}

/// `{label: Program}`, or a list of `(label, Program)` pairs.
fn programs(obj: &Bound<'_, PyAny>) -> PyResult<Vec<(String, Program)>> {
    let py = obj.py();
    let mut out = Vec::new();
    if let Ok(d) = obj.cast::<PyDict>() {
        for (k, v) in d.iter() {
            let label = string(&k, "programs")?;
            let p = program(&v, &format!("programs.{label}"))?;
            out.push((label, p));
        }
    } else if obj.cast::<PyList>().is_ok() || obj.cast::<PyTuple>().is_ok() {
        for (i, item) in obj.try_iter()?.enumerate() {
            let item = item?;
            let field = format!("programs[{i}]");
            let pair: (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                item.extract().map_err(|_| invalid(py, &field, "must be a (label, crm.Program) pair"))?;
            out.push((string(&pair.0, &field)?, program(&pair.1, &field)?));
        }
    } else {
        return Err(invalid(
            py,
            "programs",
            format!("must be a dict of label -> crm.Program or a list of pairs, not {}", convert::type_name(obj)),
        ));
    }
    Ok(out)
}

/// A list of dicts in the core's JSON form, with Python values.
fn records<T: serde::de::DeserializeOwned>(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Vec<T>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(Vec::new()) };
    let py = obj.py();
    let list = obj.cast::<PyList>().map_err(|_| invalid(py, field, "must be a list of dicts"))?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let f = format!("{field}[{i}]");
            convert::dict(&item, &f)?;
            convert::from_json(py, convert::to_json(&item, &f)?, &f)
        })
        .collect()
}

/// Replay one order history (and optional refunds and recorded redemptions)
/// under several programmes and compare them side by side (the Rust
/// `whatif::compare`, sharded and parallel; deterministic).
///
/// `orders`: a pandas or polars DataFrame, a pyarrow table, a dict of column
/// lists or a list of row dicts, with the columns `Engine.import_orders`
/// reads (`order_id`, `member_id`, `amount`, `placed_at`, optional
/// `paid_at`, `status`, `channel`, `store`, `currency`); money is read in the
/// first programme's currency. `programs`: `{label: crm.Program}` or a list of
/// `(label, crm.Program)` pairs. `refunds`: dicts `{"id", "order_id", "at",
/// "scope": {"type": "full" | "amount" | "items", ...}}`; `redemptions`:
/// dicts `{"member_id", "points", "at"}`, replayed where the balance allows.
/// `until`: the instant the replay ends at (default: the last event). Raises
/// `ValidationError` naming the field for bad input.
#[pyfunction]
#[pyo3(signature = (orders, programs, *, refunds=None, redemptions=None, until=None))]
pub fn compare_programmes(
    py: Python<'_>,
    orders: &Bound<'_, PyAny>,
    programs: &Bound<'_, PyAny>,
    refunds: Option<&Bound<'_, PyAny>>,
    redemptions: Option<&Bound<'_, PyAny>>,
    until: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyComparison> {
    let programs = self::programs(programs)?;
    let currency = programs.first().map(|(_, p)| p.currency.clone()).unwrap_or_else(|| "USD".into());
    let orders = crate::frames::read_orders(py, orders, &currency)?;
    let refunds: Vec<Refund> = records(refunds, "refunds")?;
    let options = Options {
        until: convert::opt_datetime(until, "until")?,
        redemptions: records::<RecordedRedemption>(redemptions, "redemptions")?,
        ..Options::default()
    };
    detached(py, move || compare(&orders, &refunds, &programs, &options)).map(PyComparison)
}

/// Scalar figures of a programme, in table order: (name, JSON value).
fn scalar_rows(p: &ProgrammeFigures) -> Vec<(&'static str, Value)> {
    let v = |x: &dyn erased::Ser| x.json();
    vec![
        ("programme", v(&p.programme)),
        ("currency", v(&p.currency)),
        ("orders", v(&p.orders)),
        ("orders_rejected", v(&p.orders_rejected)),
        ("refunds", v(&p.refunds)),
        ("refunds_rejected", v(&p.refunds_rejected)),
        ("members", v(&p.members)),
        ("points_issued", v(&p.points_issued)),
        ("points_clawed_back", v(&p.points_clawed_back)),
        ("points_redeemed", v(&p.points_redeemed)),
        ("redemptions", v(&p.redemptions)),
        ("redemptions_short", v(&p.redemptions_short)),
        ("redemption_shortfall", v(&p.redemption_shortfall)),
        ("points_expired", v(&p.points_expired)),
        ("points_outstanding", v(&p.points_outstanding)),
        ("liability_value", v(&p.liability_value)),
        ("tier_changes", v(&p.tier_changes)),
        ("stage_changes", v(&p.stage_changes)),
        ("outreach_suppressed", v(&p.outreach_suppressed)),
        ("coupon_cost", v(&p.coupon_cost)),
    ]
}

mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

const MONEY: [&str; 2] = ["liability_value", "coupon_cost"];

fn cell<'py>(py: Python<'py>, name: &str, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    match v {
        Value::String(s) if MONEY.contains(&name) => {
            let d: rust_decimal::Decimal = s.parse().map_err(|e| crate::errors::internal(py, e))?;
            convert::decimal_to_py(py, &d)
        }
        other => convert::json_to_py(py, other),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The result of `crm.compare_programmes`: `programmes` (a DataFrame, one
/// row per programme), `to_dict()` (everything, in the core's JSON form:
/// `until`, `history`, `programmes` with their distributions, `movers`,
/// `notes`), and an HTML table in notebooks.
#[pyclass(frozen, module = "crm", name = "Comparison")]
pub struct PyComparison(pub Comparison);

#[pymethods]
impl PyComparison {
    /// The instant the replay ended at.
    #[getter]
    fn until<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::time_to_py(py, &self.0.until)
    }

    /// The programme labels, in the order given.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.0.programmes.iter().map(|p| p.label.clone()).collect()
    }

    /// One row per programme: `label` and every scalar figure (points
    /// issued, redeemed, expired, outstanding, `liability_value` as
    /// `Decimal`, ...). The per-type and distribution maps are in `to_dict()`.
    #[getter]
    fn programmes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.frame(py, None)
    }

    /// `programmes` with another backend: `"pandas"` (default), `"polars"`,
    /// `"pyarrow"` or `"dict"`.
    #[pyo3(signature = (backend = None))]
    fn frame<'py>(&self, py: Python<'py>, backend: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let d = PyDict::new(py);
        d.set_item("label", self.labels())?;
        let rows: Vec<_> = self.0.programmes.iter().map(scalar_rows).collect();
        if let Some(first) = rows.first() {
            for (k, (name, _)) in first.iter().enumerate() {
                let col = PyList::empty(py);
                for r in &rows {
                    col.append(cell(py, name, &r[k].1)?)?;
                }
                d.set_item(*name, col)?;
            }
        }
        crate::frames::make_frame(py, d, backend)
    }

    /// Everything, in the core's JSON form (money as decimal strings).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        serde_to_py(py, &self.0)
    }

    /// A table: one column per programme, one row per scalar figure.
    fn _repr_html_(&self) -> String {
        let mut html = String::from("<table class=\"crm-comparison\"><thead><tr><th></th>");
        for p in &self.0.programmes {
            html.push_str(&format!("<th>{}</th>", escape(&p.label)));
        }
        html.push_str("</tr></thead><tbody>");
        let rows: Vec<_> = self.0.programmes.iter().map(scalar_rows).collect();
        if let Some(first) = rows.first() {
            for (k, (name, _)) in first.iter().enumerate() {
                html.push_str(&format!("<tr><th>{name}</th>"));
                for r in &rows {
                    let text = match &r[k].1 {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    html.push_str(&format!("<td>{}</td>", escape(&text)));
                }
                html.push_str("</tr>");
            }
        }
        html.push_str("</tbody></table>");
        html
    }

    fn __repr__(&self) -> String {
        format!("Comparison(until={}, labels={:?})", self.0.until.to_rfc3339(), self.labels())
    }
}
