//! Python bindings of `crm_core::recommend`: `crm.Recommender` (fitted from an
//! order-line DataFrame and optional engagement events) and `crm.recommend` (the
//! top k of every member as a DataFrame). Columns are read by the Python helper
//! `crm._analytics.read_columns`; ids are checked and the model is fitted here,
//! with the GIL released. Every rule is the core's.

use std::collections::BTreeMap;

use crm_core::recommend::{InteractionOptions, Interactions, PurchaseWeight, RecommendOptions, Recommender};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::convert::{integer, type_name};
use crate::errors::{detached, internal, invalid};

/// Adds `Recommender` and `recommend` to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRecommender>()?;
    m.add_function(wrap_pyfunction!(recommend, m)?)?;
    Ok(())
}

fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("crm._analytics")?.getattr(name)
}

/// An id cell: `str`, or an `int` (written in decimal).
fn id_cell(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    let py = obj.py();
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_cow()?;
        if s.is_empty() {
            return Err(invalid(py, field, "is empty"));
        }
        return Ok(s.into_owned());
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() || obj.hasattr("__index__")? {
        return Ok(integer(obj, field)?.to_string());
    }
    if obj.is_none() {
        return Err(invalid(py, field, "is required"));
    }
    Err(invalid(py, field, format!("must be a str or int, not {}", type_name(obj))))
}

fn columns<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    names: &[&str],
    optional: &[&str],
) -> PyResult<(String, usize, Bound<'py, PyDict>)> {
    let out = helper(py, "read_columns")?.call1((frame, names.to_vec(), (), (), optional.to_vec()))?;
    let (kind, rows, data, _micros): (String, usize, Bound<'py, PyDict>, Vec<String>) = out.extract()?;
    Ok((kind, rows, data))
}

fn column<'py>(data: &Bound<'py, PyDict>, name: &str) -> PyResult<Option<Bound<'py, PyList>>> {
    match data.get_item(name)? {
        None => Ok(None),
        Some(v) => v.cast_into::<PyList>().map(Some).map_err(|e| internal(data.py(), e)),
    }
}

/// Read order lines and engagements into `Interactions`; returns the line frame's kind.
#[allow(clippy::too_many_arguments)]
fn read_interactions<'py>(
    py: Python<'py>,
    lines: &Bound<'py, PyAny>,
    engagements: Option<&Bound<'py, PyAny>>,
    options: InteractionOptions,
    member_id: &str,
    sku: &str,
    category: &str,
    qty: &str,
    kind: &str,
) -> PyResult<(String, Interactions)> {
    let mut x = Interactions::new(options).map_err(|e| crate::errors::to_py(py, &e))?;
    // Core errors name the field; the cell adds the row.
    let core = |e: crm_core::CrmError, row: usize| -> PyErr {
        match e {
            crm_core::CrmError::Validation { field, reason } => invalid(py, &format!("{field}[{row}]"), reason),
            other => crate::errors::to_py(py, &other),
        }
    };
    let (frame_kind, rows, data) = columns(py, lines, &[member_id, sku, category, qty], &[category, qty])?;
    let need = |name: &str| column(&data, name)?.ok_or_else(|| internal(py, format!("column {name} was not read")));
    let (members, skus) = (need(member_id)?, need(sku)?);
    let (categories, qtys) = (column(&data, category)?, column(&data, qty)?);
    for row in 0..rows {
        let cell = |name: &str| format!("{name}[{row}]");
        let m = id_cell(&members.get_item(row)?, &cell(member_id))?;
        let s = id_cell(&skus.get_item(row)?, &cell(sku))?;
        let c = match &categories {
            Some(c) => {
                let v = c.get_item(row)?;
                if v.is_none() || v.is_instance_of::<PyFloat>() {
                    // None, or NaN in a pandas object column: no category.
                    None
                } else {
                    Some(id_cell(&v, &cell(category))?)
                }
            }
            None => None,
        };
        let q = match &qtys {
            Some(q) => {
                let v = q.get_item(row)?;
                let n = integer(&v, &cell(qty))?;
                u32::try_from(n)
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| invalid(py, &cell(qty), format!("{n} is not a positive integer")))?
            }
            None => 1,
        };
        x.add_purchase(&m, &s, c.as_deref(), q).map_err(|e| core(e, row))?;
    }
    if let Some(frame) = engagements.filter(|e| !e.is_none()) {
        let (_, rows, data) = columns(py, frame, &[member_id, sku, kind], &[])?;
        let need = |name: &str| column(&data, name)?.ok_or_else(|| internal(py, format!("column {name} was not read")));
        let (members, skus, kinds) = (need(member_id)?, need(sku)?, need(kind)?);
        for row in 0..rows {
            let cell = |name: &str| format!("{name}[{row}]");
            let m = id_cell(&members.get_item(row)?, &cell(member_id))?;
            let s = id_cell(&skus.get_item(row)?, &cell(sku))?;
            let k = id_cell(&kinds.get_item(row)?, &cell(kind))?;
            x.add_engagement(&m, &s, &k).map_err(|e| core(e, row))?;
        }
    }
    Ok((frame_kind, x))
}

fn weights(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<BTreeMap<String, f64>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(InteractionOptions::default().engagement_weights);
    };
    let d = obj.cast::<PyDict>().map_err(|_| {
        invalid(py, "engagement_weights", format!("must be a dict of kind -> weight, not {}", type_name(obj)))
    })?;
    let mut out = BTreeMap::new();
    for (k, v) in d.iter() {
        let k: String = k.extract().map_err(|_| invalid(py, "engagement_weights", "keys must be str"))?;
        let field = format!("engagement_weights.{k}");
        if v.is_instance_of::<PyBool>() || v.is_instance_of::<PyString>() {
            return Err(invalid(py, &field, format!("must be a number, not {}", type_name(&v))));
        }
        let w: f64 =
            v.extract().map_err(|_| invalid(py, &field, format!("must be a number, not {}", type_name(&v))))?;
        out.insert(k, w);
    }
    Ok(out)
}

/// An item-to-item recommender (cosine similarity over co-purchases), fitted on
/// order lines and, optionally, engagement events.
///
/// `lines`: a pandas / polars DataFrame, pyarrow Table or dict of lists with
/// `member_id` and `sku` (str or int), and optionally `category` (str or None)
/// and `qty` (positive int; 1 when absent). `engagements`: the same kinds of
/// frame with `member_id`, `sku` and `kind` (a key of `engagement_weights`,
/// default `{"browse": 0.1, "favourite": 0.3, "add_to_cart": 0.5}`).
///
/// `purchase_weight`: `"binary"` (a bought sku counts 1) or `"quantity"`.
/// `neighbours`: similar skus kept per sku. `exclude_bought`: leave out skus the
/// member bought. `one_per_category`: at most one sku per category.
/// `power`: similarities are raised to it when scoring (1-4, default 2).
/// `threads`: 0 for every core. Results do not depend on the thread count nor
/// on the row order. Bad input raises `ValidationError` naming the cell
/// (`qty[3]`) or option.
#[pyclass(name = "Recommender", module = "crm", frozen)]
pub struct PyRecommender {
    model: Recommender,
    kind: String,
}

#[pymethods]
impl PyRecommender {
    #[new]
    #[pyo3(signature = (lines, engagements=None, *, member_id="member_id", sku="sku", category="category", qty="qty", kind="kind", purchase_weight="binary", engagement_weights=None, neighbours=20, exclude_bought=true, one_per_category=false, power=2, threads=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        lines: &Bound<'_, PyAny>,
        engagements: Option<&Bound<'_, PyAny>>,
        member_id: &str,
        sku: &str,
        category: &str,
        qty: &str,
        kind: &str,
        purchase_weight: &str,
        engagement_weights: Option<&Bound<'_, PyAny>>,
        neighbours: i64,
        exclude_bought: bool,
        one_per_category: bool,
        power: i64,
        threads: i64,
    ) -> PyResult<PyRecommender> {
        let purchase = PurchaseWeight::parse(purchase_weight).map_err(|e| crate::errors::to_py(py, &e))?;
        let options = InteractionOptions { purchase, engagement_weights: weights(py, engagement_weights)? };
        let range = |v: i64, field: &str, max: i64| -> PyResult<usize> {
            if (0..=max).contains(&v) {
                Ok(v as usize)
            } else {
                Err(invalid(py, field, format!("must be 0-{max}, got {v}")))
            }
        };
        let fit = RecommendOptions {
            neighbours: range(neighbours, "neighbours", 100_000)?,
            exclude_bought,
            one_per_category,
            power: range(power, "power", 4)? as u32,
            threads: range(threads, "threads", 256)?,
        };
        let (kind_of, x) = read_interactions(py, lines, engagements, options, member_id, sku, category, qty, kind)?;
        let model = detached(py, move || Recommender::fit(&x, fit))?;
        Ok(PyRecommender { model, kind: kind_of })
    }

    /// Members the model knows (with or without history).
    #[getter]
    fn members(&self) -> usize {
        self.model.members()
    }

    /// Skus the model knows.
    #[getter]
    fn skus(&self) -> usize {
        self.model.skus()
    }

    /// The top `k` skus for `member_id` as a list of `(sku, score)`; score 0
    /// marks a popular sku filling the list. An unknown member gets the most
    /// popular skus.
    #[pyo3(signature = (member_id, k=10))]
    fn recommend(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>, k: i64) -> PyResult<Vec<(String, f64)>> {
        let m = id_cell(member_id, "member_id")?;
        let k = size(py, k, "k")?;
        Ok(self.model.recommend(&m, k).into_iter().map(|r| (r.sku, r.score)).collect())
    }

    /// The `n` most similar skus of `sku` with their cosine similarity.
    #[pyo3(signature = (sku, n=10))]
    fn similar(&self, py: Python<'_>, sku: &Bound<'_, PyAny>, n: i64) -> PyResult<Vec<(String, f64)>> {
        let s = id_cell(sku, "sku")?;
        let n = size(py, n, "n")?;
        Ok(self.model.similar(&s, n))
    }

    /// The top `k` of every member as a frame of the input's kind: `member_id`,
    /// `rank` (1-based), `sku`, `score`; members in natural id order.
    #[pyo3(signature = (k=10))]
    fn recommend_all<'py>(&self, py: Python<'py>, k: i64) -> PyResult<Bound<'py, PyAny>> {
        let k = size(py, k, "k")?;
        frame_of(py, &self.model, k, &self.kind)
    }

    fn __repr__(&self) -> String {
        format!("Recommender(members={}, skus={})", self.model.members(), self.model.skus())
    }
}

/// A list length: 0 to 100,000.
fn size(py: Python<'_>, v: i64, field: &str) -> PyResult<usize> {
    if (0..=100_000).contains(&v) {
        Ok(v as usize)
    } else {
        Err(invalid(py, field, format!("must be 0-100000, got {v}")))
    }
}

fn frame_of<'py>(py: Python<'py>, model: &Recommender, k: usize, kind: &str) -> PyResult<Bound<'py, PyAny>> {
    let (top, order) = detached(py, || {
        let top = model.recommend_all(k);
        let mut order: Vec<u32> = (0..model.members() as u32).collect();
        model.member_ids().sort_natural_by(&mut order, |&m| m);
        Ok((top, order))
    })?;
    let ids = model.member_ids();
    let (mut member, mut rank, mut sku, mut score) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for &m in &order {
        for (r, (item, s)) in top.of(m as usize).enumerate() {
            member.push(ids.get(m));
            rank.push(r as u32 + 1);
            sku.push(model.item_sku(item));
            score.push(f64::from(s));
        }
    }
    let d = PyDict::new(py);
    d.set_item("member_id", member)?;
    d.set_item("rank", rank)?;
    d.set_item("sku", sku)?;
    d.set_item("score", score)?;
    helper(py, "frame_like")?.call1((kind, d))
}

/// Fit a `Recommender` on `lines` (and `engagements`) and return the top `k` of
/// every member as a frame (see `Recommender.recommend_all`). Options as in
/// `Recommender`.
#[pyfunction]
#[pyo3(signature = (lines, engagements=None, *, k=10, member_id="member_id", sku="sku", category="category", qty="qty", kind="kind", purchase_weight="binary", engagement_weights=None, neighbours=20, exclude_bought=true, one_per_category=false, power=2, threads=0))]
#[allow(clippy::too_many_arguments)]
fn recommend<'py>(
    py: Python<'py>,
    lines: &Bound<'py, PyAny>,
    engagements: Option<&Bound<'py, PyAny>>,
    k: i64,
    member_id: &str,
    sku: &str,
    category: &str,
    qty: &str,
    kind: &str,
    purchase_weight: &str,
    engagement_weights: Option<&Bound<'py, PyAny>>,
    neighbours: i64,
    exclude_bought: bool,
    one_per_category: bool,
    power: i64,
    threads: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let r = PyRecommender::new(
        py,
        lines,
        engagements,
        member_id,
        sku,
        category,
        qty,
        kind,
        purchase_weight,
        engagement_weights,
        neighbours,
        exclude_bought,
        one_per_category,
        power,
        threads,
    )?;
    let k = size(py, k, "k")?;
    frame_of(py, &r.model, k, &r.kind)
}
