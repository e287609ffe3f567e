//! Python bindings of `crm_core::analytics` and `crm_core::segment`.
//!
//! - `crm.rfm`, `crm.summary`: order DataFrames in, DataFrames of the same kind out;
//! - `crm.fit_bgnbd`, `crm.fit_gamma_gamma` -> `crm.BgNbd`, `crm.GammaGamma`, and `crm.clv`;
//! - `crm.Rule`: the segment rule language, evaluated over a DataFrame or one member.
//!
//! The frame-library work (reading named columns as lists, building the result
//! frame or Series) is done by the Python helper `crm._analytics`; the values
//! are converted and checked here, and every computation is the core's, run
//! with the GIL released.
//!
//! Money stays exact: order amounts become integer minor units at `scale`
//! decimal places (`Decimal`, `str` and `int` as given; a `float` only when it
//! is already exact to `scale` places, else `ValidationError` naming the cell,
//! e.g. `amount[3]`). Returned money is `Decimal`.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

use chrono::NaiveDate;
use crm_core::analytics::cluster::value_clusters;
use crm_core::analytics::orders::{day_of_date, Day, Orders};
use crm_core::analytics::{rfm_orders, summarize, BgNbd, ClvOptions, FitReport, GammaGamma, Period, Summary};
use crm_core::member::MemberId;
use crm_core::money;
use crm_core::segment::{eval_columns, Field, FieldType, FieldValue, MemberColumns, MemberValues, Rule};
use crm_core::CrmError as CoreError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDate, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use rust_decimal::Decimal;

use crate::convert::{self, decimal_to_py, decimal_type, integer, json_to_py, string, strings, type_name};
use crate::errors::{detached, internal, invalid, to_py};

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Largest integer a float holds exactly (2^53 - 1).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Adds the analytics classes and functions to the extension module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyRule>()?;
    m.add_class::<PyBgNbd>()?;
    m.add_class::<PyGammaGamma>()?;
    m.add_function(wrap_pyfunction!(rfm, m)?)?;
    m.add_function(wrap_pyfunction!(summary, m)?)?;
    m.add_function(wrap_pyfunction!(fit_bgnbd, m)?)?;
    m.add_function(wrap_pyfunction!(fit_gamma_gamma, m)?)?;
    m.add_function(wrap_pyfunction!(clv, m)?)?;
    Ok(())
}

/// `crm._analytics.<name>`.
fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("crm._analytics")?.getattr(name)
}

fn core_err(py: Python<'_>, e: CoreError) -> PyErr {
    to_py(py, &e)
}

fn validation(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
    CoreError::Validation { field: field.into(), reason: reason.into() }
}

// ----- scalar conversions -------------------------------------------------------

fn is_decimal(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.is_instance(decimal_type(obj.py())?)
}

/// Plain text of a `decimal.Decimal` (`format(d, "f")`).
fn decimal_text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    obj.py().import("builtins")?.getattr("format")?.call1((obj, "f"))?.extract()
}

/// A float as an exact decimal: its shortest round-trip form, which must have
/// at most `places` decimals (no silent rounding of money).
fn float_decimal(py: Python<'_>, v: f64, places: u32, field: &str) -> PyResult<Decimal> {
    if !v.is_finite() {
        return Err(invalid(py, field, format!("{v} is not a finite amount")));
    }
    if v.fract() == 0.0 && v.abs() > MAX_SAFE {
        return Err(invalid(py, field, format!("{v} is not a safe integer; pass a Decimal or str")));
    }
    let d = money::parse(&format!("{v}"), field).map_err(|e| core_err(py, e))?;
    if d.normalize().scale() > places {
        return Err(invalid(
            py,
            field,
            format!("{v} is not exact to {places} decimal places (a binary float); pass a Decimal or str"),
        ));
    }
    Ok(d)
}

/// Money: `Decimal`, `str`, `int` (numpy integers too), or a `float` exact to `places` decimals.
fn money_arg(obj: &Bound<'_, PyAny>, places: u32, field: &str) -> PyResult<Decimal> {
    let py = obj.py();
    let core = |r: crm_core::Result<Decimal>| r.map_err(|e| core_err(py, e));
    if obj.is_none() {
        return Err(invalid(py, field, "is required"));
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(py, field, "must be a Decimal, str or int, not bool"));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Decimal::from(integer(obj, field)?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return core(money::parse(&s.to_cow()?, field));
    }
    if is_decimal(obj)? {
        return core(money::parse(&decimal_text(obj)?, field));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return float_decimal(py, f.value(), places, field);
    }
    if obj.hasattr("__index__")? {
        return Ok(Decimal::from(integer(obj, field)?));
    }
    if obj.hasattr("__float__")? {
        let v: f64 = obj.call_method0("__float__")?.extract()?;
        return float_decimal(py, v, places, field);
    }
    Err(invalid(py, field, format!("must be a Decimal, str or int, not {}", type_name(obj))))
}

/// `d` in integer minor units at `scale` places; more places than `scale` is an error.
fn minor_units(py: Python<'_>, d: Decimal, scale: u32, field: &str) -> PyResult<i64> {
    let d = d.normalize();
    if d.scale() > scale {
        return Err(invalid(py, field, format!("{d} has more than {scale} decimal places")));
    }
    10i128
        .checked_pow(scale - d.scale())
        .and_then(|f| d.mantissa().checked_mul(f))
        .and_then(|m| i64::try_from(m).ok())
        .ok_or_else(|| invalid(py, field, "is out of range"))
}

/// A model input: `int`, `float` or `Decimal` (numpy numbers too), finite.
fn number(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<f64> {
    let py = obj.py();
    if obj.is_none() {
        return Err(invalid(py, field, "is required"));
    }
    if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyString>() {
        return Err(invalid(py, field, format!("must be a number, not {}", type_name(obj))));
    }
    let v: f64 = obj.extract().map_err(|_| invalid(py, field, format!("must be a number, not {}", type_name(obj))))?;
    if !v.is_finite() {
        return Err(invalid(py, field, format!("{v} is not a finite number")));
    }
    Ok(v)
}

/// A whole number for a rule's number field: `int`, or a `float`/`Decimal` without a fraction.
fn whole(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<i64> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(py, field, "must be an int, not bool"));
    }
    if obj.is_instance_of::<PyInt>() || (!obj.is_instance_of::<PyFloat>() && obj.hasattr("__index__")?) {
        return integer(obj, field);
    }
    let v = if is_decimal(obj)? || obj.is_instance_of::<PyFloat>() || obj.hasattr("__float__")? {
        obj.call_method0("__float__")?.extract::<f64>()?
    } else {
        return Err(invalid(py, field, format!("must be an int, not {}", type_name(obj))));
    };
    if v.fract() != 0.0 || !v.is_finite() || v.abs() > MAX_SAFE {
        return Err(invalid(py, field, format!("{v} is not a whole number")));
    }
    Ok(v as i64)
}

/// A calendar date: `date` (not `datetime`) or an ISO `YYYY-MM-DD` string.
fn date_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<NaiveDate> {
    let py = obj.py();
    if obj.is_instance_of::<PyDateTime>() {
        return Err(invalid(py, field, "must be a date, not a datetime"));
    }
    if obj.is_instance_of::<PyDate>() {
        return obj.extract();
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        return NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .map_err(|_| invalid(py, field, format!("{text:?} is not an ISO date (YYYY-MM-DD)")));
    }
    Err(invalid(py, field, format!("must be a date or an ISO date string, not {}", type_name(obj))))
}

/// An order time in microseconds since the epoch: integer microseconds (from a
/// timezone-aware column), an aware `datetime`, an RFC 3339 string, or a `date` /
/// `YYYY-MM-DD` string (midnight UTC of that day, as in the order CSV).
fn order_micros(obj: &Bound<'_, PyAny>, micros: bool, field: &str) -> PyResult<i64> {
    let py = obj.py();
    if obj.is_none() {
        return Err(invalid(py, field, "is required"));
    }
    if micros {
        return obj.extract();
    }
    if obj.is_instance_of::<PyDateTime>() {
        return Ok(convert::datetime(obj, field)?.timestamp_micros());
    }
    if obj.is_instance_of::<PyDate>() {
        return Ok(i64::from(day_of_date(obj.extract()?)) * MICROS_PER_DAY);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(d) = NaiveDate::parse_from_str(s.to_cow()?.trim(), "%Y-%m-%d") {
            return Ok(i64::from(day_of_date(d)) * MICROS_PER_DAY);
        }
        return Ok(convert::datetime(obj, field)?.timestamp_micros());
    }
    Err(invalid(
        py,
        field,
        format!("must be a timezone-aware datetime, a date or an RFC 3339 string, not {}", type_name(obj)),
    ))
}

/// The cut-off of `as_of` / `calibration_end`: `(last counted microsecond, day)`.
/// A date (or `YYYY-MM-DD`) means the end of that UTC day.
fn cutoff(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<(i64, Day)> {
    let py = obj.py();
    let end_of = |d: NaiveDate| {
        let day = day_of_date(d);
        ((i64::from(day) + 1) * MICROS_PER_DAY - 1, day)
    };
    if obj.is_instance_of::<PyDateTime>() {
        let t = convert::datetime(obj, field)?;
        return Ok((t.timestamp_micros(), t.timestamp().div_euclid(86_400) as Day));
    }
    if obj.is_instance_of::<PyDate>() {
        return Ok(end_of(obj.extract()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        if let Ok(d) = NaiveDate::parse_from_str(s.to_cow()?.trim(), "%Y-%m-%d") {
            return Ok(end_of(d));
        }
        let t = convert::datetime(obj, field)?;
        return Ok((t.timestamp_micros(), t.timestamp().div_euclid(86_400) as Day));
    }
    Err(invalid(py, field, format!("must be a date, a timezone-aware datetime or a string, not {}", type_name(obj))))
}

/// A member id: `str`, or an integer (kept as its decimal text for grouping).
fn member_key(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    let py = obj.py();
    if obj.is_none() {
        return Err(invalid(py, field, "is required"));
    }
    let key = if let Ok(s) = obj.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else if obj.is_instance_of::<PyBool>() || obj.is_instance_of::<PyFloat>() {
        return Err(invalid(py, field, format!("must be a str or int, not {}", type_name(obj))));
    } else if obj.is_instance_of::<PyInt>() {
        obj.str()?.to_string()
    } else if obj.hasattr("__index__")? {
        obj.call_method0("__index__")?.str()?.to_string()
    } else {
        return Err(invalid(py, field, format!("must be a str or int, not {}", type_name(obj))));
    };
    if key.is_empty() {
        return Err(invalid(py, field, "is empty"));
    }
    Ok(key)
}

fn period_arg(py: Python<'_>, period: &str) -> PyResult<Period> {
    match period {
        "day" => Ok(Period::Day),
        "week" => Ok(Period::Week),
        other => Err(invalid(py, "period", format!("must be \"day\" or \"week\", not {other:?}"))),
    }
}

fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
    }
}

/// A count argument (`scale`, `clusters`, `months`, `seed`).
fn count_arg(obj: &Bound<'_, PyAny>, field: &str, max: u64) -> PyResult<u64> {
    convert::count(obj, field, max)
}

// ----- order frames -----------------------------------------------------------------

/// Column names of an order frame.
struct OrderNames {
    member_id: String,
    placed_at: String,
    amount: String,
    status: String,
}

/// Orders read from a frame: the core columns, the frame's kind, and for each
/// member index the row of its first order (whose `member_id` object is returned).
struct OrderFrame<'py> {
    kind: String,
    ids: Bound<'py, PyList>,
    first_row: Vec<usize>,
    orders: Orders,
}

fn list<'py>(py: Python<'py>, data: &Bound<'py, PyDict>, name: &str) -> PyResult<Option<Bound<'py, PyList>>> {
    match data.get_item(name)? {
        None => Ok(None),
        Some(v) => v.cast_into::<PyList>().map(Some).map_err(|e| internal(py, e)),
    }
}

/// Read the counted orders of `frame` placed at or before `until` (microseconds).
/// With a status column only `paid` and `completed` orders count (an empty
/// status is `paid`), as in the order CSV.
fn read_orders<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    names: &OrderNames,
    until: i64,
    scale: u32,
) -> PyResult<OrderFrame<'py>> {
    let wanted = [&names.member_id, &names.placed_at, &names.amount, &names.status];
    let out = helper(py, "read_columns")?.call1((frame, wanted, [&names.placed_at], (), [&names.status]))?;
    let (kind, rows, data, micros): (String, usize, Bound<'py, PyDict>, Vec<String>) = out.extract()?;
    let need = |name: &str| -> PyResult<Bound<'py, PyList>> {
        list(py, &data, name)?.ok_or_else(|| internal(py, format!("column {name} was not read")))
    };
    let (ids, placed, amounts) = (need(&names.member_id)?, need(&names.placed_at)?, need(&names.amount)?);
    let status = list(py, &data, &names.status)?;
    let micros = micros.contains(&names.placed_at);
    let mut orders = Orders { scale, ..Orders::default() };
    let mut first_row = Vec::new();
    for row in 0..rows {
        let cell = |name: &str| format!("{name}[{row}]");
        if let Some(status) = &status {
            let s = status.get_item(row)?;
            if !s.is_none() {
                let field = cell(&names.status);
                match string(&s, &field)?.as_str() {
                    "paid" | "completed" => {}
                    "placed" | "cancelled" => continue,
                    other => {
                        return Err(invalid(
                            py,
                            &field,
                            format!("unknown status {other:?}; expected paid, completed, placed or cancelled"),
                        ))
                    }
                }
            }
        }
        let t = order_micros(&placed.get_item(row)?, micros, &cell(&names.placed_at))?;
        if t > until {
            continue;
        }
        let amount_field = cell(&names.amount);
        let amount = money_arg(&amounts.get_item(row)?, scale, &amount_field)?;
        let amount = minor_units(py, amount, scale, &amount_field)?;
        let id_field = cell(&names.member_id);
        let key = member_key(&ids.get_item(row)?, &id_field)?;
        let index = orders.ids.intern(key.as_bytes()).map_err(|e| core_err(py, e))?;
        if index as usize == first_row.len() {
            first_row.push(row);
        }
        orders.member.push(index);
        orders.day.push(t.div_euclid(MICROS_PER_DAY) as Day);
        orders.amount.push(amount);
    }
    Ok(OrderFrame { kind, ids, first_row, orders })
}

fn order_names(member_id: &str, placed_at: &str, amount: &str, status: &str) -> OrderNames {
    OrderNames {
        member_id: member_id.to_string(),
        placed_at: placed_at.to_string(),
        amount: amount.to_string(),
        status: status.to_string(),
    }
}

fn scale_arg(scale: &Bound<'_, PyAny>) -> PyResult<u32> {
    Ok(count_arg(scale, "scale", 18)? as u32)
}

/// RFM per member of an order DataFrame (pandas, polars, pyarrow or a dict of lists).
///
/// Orders placed after `as_of` are left out (a date means the end of that UTC
/// day; an aware datetime or RFC 3339 string is an instant). With a `status`
/// column only `paid` and `completed` orders count. Amounts are `Decimal`,
/// `str`, `int`, or `float` only when exact to `scale` decimal places (else
/// `ValidationError` naming the cell, e.g. `amount[3]`); `placed_at` is a
/// timezone-aware timestamp column, aware datetimes, RFC 3339 strings, or dates
/// (midnight UTC).
///
/// Returns a frame of the input's kind, one row per member with a counted
/// order, sorted by member id (numerically when every id is an integer):
/// `member_id` (as given), `recency` (whole UTC days from the last order to
/// `as_of`), `frequency` (orders), `monetary` (exact `Decimal` sum), `r_score`,
/// `f_score`, `m_score` (1-5 ranks; ties share a score), `group`
/// (`champions`, `loyal`, ..., `lost`), and with `clusters=k` a `cluster`
/// column (k-means++ on log-scaled RFM with `seed`; 0 is the most valuable).
#[pyfunction]
#[pyo3(signature = (orders, as_of, *, member_id="member_id", placed_at="placed_at", amount="amount", status="status", scale=None, clusters=None, seed=None))]
#[allow(clippy::too_many_arguments)]
fn rfm<'py>(
    py: Python<'py>,
    orders: &Bound<'py, PyAny>,
    as_of: &Bound<'py, PyAny>,
    member_id: &str,
    placed_at: &str,
    amount: &str,
    status: &str,
    scale: Option<&Bound<'py, PyAny>>,
    clusters: Option<&Bound<'py, PyAny>>,
    seed: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let scale = scale.filter(|s| !s.is_none()).map(scale_arg).transpose()?.unwrap_or(2);
    let k = clusters.filter(|c| !c.is_none()).map(|c| count_arg(c, "clusters", 1 << 20)).transpose()?;
    if k == Some(0) {
        return Err(invalid(py, "clusters", "must be at least 1"));
    }
    let seed = seed.filter(|s| !s.is_none()).map(|s| count_arg(s, "seed", i64::MAX as u64)).transpose()?.unwrap_or(1);
    let (until, day) = cutoff(as_of, "as_of")?;
    let names = order_names(member_id, placed_at, amount, status);
    let OrderFrame { kind, ids, first_row, orders } = read_orders(py, orders, &names, until, scale)?;
    let (table, assignment, order) = detached(py, move || {
        let table = rfm_orders(&orders, day)?;
        let assignment = match k {
            Some(k) => Some(value_clusters(&table, k as usize, seed)?.assignment),
            None => None,
        };
        let mut order: Vec<u32> = (0..table.len() as u32).collect();
        orders.ids.sort_natural_by(&mut order, |&r| table.member[r as usize]);
        Ok((table, assignment, order))
    })?;
    let d = PyDict::new(py);
    let col = |f: &dyn Fn(usize) -> PyResult<Bound<'py, PyAny>>| -> PyResult<Bound<'py, PyList>> {
        let l = PyList::empty(py);
        for &r in &order {
            l.append(f(r as usize)?)?;
        }
        Ok(l)
    };
    d.set_item("member_id", col(&|i| ids.get_item(first_row[table.member[i] as usize]))?)?;
    let ints = |v: &[u32]| order.iter().map(|&r| v[r as usize]).collect::<Vec<u32>>();
    d.set_item("recency", ints(&table.recency))?;
    d.set_item("frequency", ints(&table.frequency))?;
    d.set_item("monetary", col(&|i| decimal_to_py(py, &table.monetary(i)))?)?;
    let scores = |v: &[u8]| order.iter().map(|&r| u32::from(v[r as usize])).collect::<Vec<u32>>();
    d.set_item("r_score", scores(&table.r_score))?;
    d.set_item("f_score", scores(&table.f_score))?;
    d.set_item("m_score", scores(&table.m_score))?;
    d.set_item("group", order.iter().map(|&r| table.group(r as usize).name()).collect::<Vec<_>>())?;
    if let Some(a) = assignment {
        d.set_item("cluster", order.iter().map(|&r| a[r as usize]).collect::<Vec<u32>>())?;
    }
    helper(py, "frame_like")?.call1((kind, d))
}

/// Summarise orders (see [`summary`]): the summary, the member objects in natural order.
fn summarize_frame<'py>(
    py: Python<'py>,
    orders: &Bound<'py, PyAny>,
    calibration_end: &Bound<'py, PyAny>,
    period: Period,
    names: &OrderNames,
    scale: u32,
) -> PyResult<(String, Summary, Vec<Bound<'py, PyAny>>)> {
    let (until, day) = cutoff(calibration_end, "calibration_end")?;
    let OrderFrame { kind, ids, first_row, orders } = read_orders(py, orders, names, until, scale)?;
    let (s, order) = detached(py, move || {
        let s = summarize(&orders, day, period)?;
        let mut order: Vec<u32> = (0..s.len() as u32).collect();
        orders.ids.sort_natural_by(&mut order, |&r| s.member[r as usize]);
        let pick = |v: &[f64]| order.iter().map(|&r| v[r as usize]).collect::<Vec<f64>>();
        let sorted = Summary {
            member: order.iter().map(|&r| s.member[r as usize]).collect(),
            frequency: pick(&s.frequency),
            recency: pick(&s.recency),
            t: pick(&s.t),
            monetary: pick(&s.monetary),
        };
        Ok((sorted, order))
    })?;
    drop(order);
    let members = s.member.iter().map(|&m| ids.get_item(first_row[m as usize])).collect::<PyResult<Vec<_>>>()?;
    Ok((kind, s, members))
}

/// Per-customer summary of an order DataFrame for the value models, as in the
/// published CDNOW analyses: purchases are counted per day (several orders on
/// one day are one transaction), over the orders up to `calibration_end` (a
/// date means the end of that UTC day).
///
/// Returns a frame of the input's kind, one row per customer whose first order
/// is on or before `calibration_end`, sorted by member id: `member_id`,
/// `frequency` (repeat purchase days), `recency` (first to last purchase) and
/// `T` (first purchase to `calibration_end`) in `period`s (`"day"` or
/// `"week"`), and `monetary_value` (mean repeat day total, a float model
/// input; 0 without repeats). Order columns and amounts as in `crm.rfm`.
#[pyfunction]
#[pyo3(signature = (orders, calibration_end, period="day", *, member_id="member_id", placed_at="placed_at", amount="amount", status="status", scale=None))]
#[allow(clippy::too_many_arguments)]
fn summary<'py>(
    py: Python<'py>,
    orders: &Bound<'py, PyAny>,
    calibration_end: &Bound<'py, PyAny>,
    period: &str,
    member_id: &str,
    placed_at: &str,
    amount: &str,
    status: &str,
    scale: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let period = period_arg(py, period)?;
    let scale = scale.filter(|s| !s.is_none()).map(scale_arg).transpose()?.unwrap_or(2);
    let names = order_names(member_id, placed_at, amount, status);
    let (kind, s, members) = summarize_frame(py, orders, calibration_end, period, &names, scale)?;
    let d = PyDict::new(py);
    d.set_item("member_id", members)?;
    d.set_item("frequency", s.frequency.iter().map(|&x| x as u64).collect::<Vec<_>>())?;
    d.set_item("recency", &s.recency)?;
    d.set_item("T", &s.t)?;
    d.set_item("monetary_value", &s.monetary)?;
    helper(py, "frame_like")?.call1((kind, d))
}

// ----- model inputs -----------------------------------------------------------------

/// Summary columns as floats: frequency, recency, T, and monetary value when asked.
struct SummaryInput {
    frequency: Vec<f64>,
    recency: Vec<f64>,
    t: Vec<f64>,
    monetary: Vec<f64>,
}

/// Floats of a list, each named `name[i]` in errors.
fn floats(list: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<f64>> {
    let list = list.cast::<PyList>().map_err(|e| internal(list.py(), e))?;
    list.iter().enumerate().map(|(i, v)| number(&v, &format!("{name}[{i}]"))).collect()
}

/// The summary columns of a summary frame (`frequency`/`x`, `recency`/`t_x`, `T`,
/// `monetary_value`/`zbar`/`monetary`), or of the summary of an order frame
/// when `calibration_end` is given.
#[allow(clippy::too_many_arguments)]
fn summary_input(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    wanted: &[&str],
    calibration_end: Option<&Bound<'_, PyAny>>,
    period: Period,
    names: &OrderNames,
    scale: u32,
) -> PyResult<SummaryInput> {
    if let Some(end) = calibration_end.filter(|e| !e.is_none()) {
        let (_, s, _) = summarize_frame(py, data, end, period, names, scale)?;
        return Ok(SummaryInput { frequency: s.frequency, recency: s.recency, t: s.t, monetary: s.monetary });
    }
    let out = helper(py, "summary_columns")?.call1((data, wanted.to_vec()))?;
    let (_, _, cols): (String, usize, Bound<'_, PyDict>) = out.extract()?;
    let get = |key: &str| -> PyResult<Vec<f64>> {
        match cols.get_item(key)? {
            Some(l) => floats(&l, key),
            None => Ok(Vec::new()),
        }
    };
    Ok(SummaryInput {
        frequency: get("frequency")?,
        recency: get("recency")?,
        t: get("T")?,
        monetary: get("monetary_value")?,
    })
}

/// One customer row's checks, with the row in the field names.
fn check_row(i: Option<usize>, x: f64, t_x: f64, t: f64) -> Result<(), CoreError> {
    let at = |name: &str| match i {
        Some(i) => format!("{name}[{i}]"),
        None => name.to_string(),
    };
    if !(x >= 0.0 && x.is_finite() && x.fract() == 0.0) {
        return Err(validation(at("frequency"), format!("{x} is not a whole number >= 0")));
    }
    if !(t.is_finite() && t >= 0.0) {
        return Err(validation(at("T"), format!("{t} is not a finite age >= 0")));
    }
    if !(t_x >= 0.0 && t_x <= t) {
        return Err(validation(at("recency"), format!("{t_x} is not between 0 and T = {t}")));
    }
    Ok(())
}

/// A model-method argument: one number, or one per customer.
enum Num {
    Scalar(f64),
    Vector(Vec<f64>),
}

impl Num {
    fn at(&self, i: usize) -> f64 {
        match self {
            Num::Scalar(v) => *v,
            Num::Vector(v) => v[i],
        }
    }
}

/// Arguments of a vectorised model method, with the first vector (or frame)
/// as the template of the result.
struct Args<'py> {
    nums: Vec<Num>,
    len: Option<usize>,
    template: Option<Bound<'py, PyAny>>,
}

impl<'py> Args<'py> {
    fn new() -> Self {
        Args { nums: Vec::new(), len: None, template: None }
    }

    fn push(&mut self, obj: &Bound<'py, PyAny>, name: &str) -> PyResult<()> {
        let py = obj.py();
        let scalar = obj.is_instance_of::<PyFloat>()
            || obj.is_instance_of::<PyInt>()
            || is_decimal(obj)?
            || (!obj.is_instance_of::<PyString>() && obj.hasattr("__float__")? && !obj.hasattr("__len__")?);
        if scalar {
            self.nums.push(Num::Scalar(number(obj, name)?));
            return Ok(());
        }
        let values = helper(py, "to_list")?.call1((obj, name))?;
        let values = floats(&values, name)?;
        self.vector(values, obj, name)
    }

    fn vector(&mut self, values: Vec<f64>, template: &Bound<'py, PyAny>, name: &str) -> PyResult<()> {
        match self.len {
            Some(n) if n != values.len() => {
                return Err(invalid(template.py(), name, format!("has {} values, expected {n}", values.len())))
            }
            _ => self.len = Some(values.len()),
        }
        if self.template.is_none() {
            self.template = Some(template.clone());
        }
        self.nums.push(Num::Vector(values));
        Ok(())
    }

    /// Apply `f` to every row (`None` for all-scalar arguments) and return a
    /// float, or a vector of the template's kind named `name`.
    fn map<F>(self, py: Python<'py>, name: &str, f: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: Fn(Option<usize>, &[f64]) -> Result<f64, CoreError> + Send + Sync,
    {
        let Args { nums, len, template } = self;
        let row = |i: usize| nums.iter().map(|n| n.at(i)).collect::<Vec<f64>>();
        match (len, template) {
            (Some(n), Some(template)) => {
                let values = detached(py, || (0..n).map(|i| f(Some(i), &row(i))).collect::<Result<Vec<f64>, _>>())?;
                helper(py, "series_like")?.call1((template, values, name))
            }
            _ => {
                let v = f(None, &row(0)).map_err(|e| core_err(py, e))?;
                Ok(PyFloat::new(py, v).into_any())
            }
        }
    }
}

/// Summary columns of a frame passed where per-customer arguments go.
fn frame_args<'py>(frame: &Bound<'py, PyAny>, wanted: &[&str], args: &mut Args<'py>) -> PyResult<()> {
    let py = frame.py();
    let out = helper(py, "summary_columns")?.call1((frame, wanted.to_vec()))?;
    let (_, _, cols): (String, usize, Bound<'py, PyDict>) = out.extract()?;
    for key in wanted {
        let l = cols.get_item(key)?.ok_or_else(|| internal(py, format!("column {key} was not read")))?;
        args.vector(floats(&l, key)?, frame, key)?;
    }
    Ok(())
}

fn is_frame(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    helper(obj.py(), "is_frame")?.call1((obj,))?.extract()
}

/// Model parameters must be positive and finite.
fn positive(py: Python<'_>, name: &str, v: f64) -> PyResult<f64> {
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(invalid(py, name, format!("{v} is not a positive finite number")))
    }
}

fn fit_dict<'py>(py: Python<'py>, d: &Bound<'py, PyDict>, report: &Option<FitReport>) -> PyResult<()> {
    d.set_item("log_likelihood", report.map(|r| r.log_likelihood))?;
    d.set_item("converged", report.map(|r| r.converged))?;
    d.set_item("customers", report.map(|r| r.customers))?;
    let _ = py;
    Ok(())
}

// ----- BG/NBD -------------------------------------------------------------------------

/// Fitted (or given) BG/NBD parameters (Fader, Hardie & Lee 2005): while
/// alive, a customer buys at a Poisson rate λ ~ Gamma(r, alpha); after each
/// purchase they drop out with probability p ~ Beta(a, b).
///
/// `BgNbd(r, alpha, a, b, period="day")` builds a model from known
/// parameters; `crm.fit_bgnbd` fits one. `period` is the time unit of
/// recency and T (and of `t` in `expected_purchases`); `crm.clv` uses it to
/// step months. The methods take numbers (returning a float), or Series /
/// arrays / lists, or a summary DataFrame in place of `frequency` (returning
/// a vector of the input's kind: a pandas Series on the frame's index, a
/// polars Series, ...).
#[pyclass(frozen, module = "crm", name = "BgNbd")]
pub struct PyBgNbd {
    model: BgNbd,
    period: Period,
    report: Option<FitReport>,
}

#[pymethods]
impl PyBgNbd {
    #[new]
    #[pyo3(signature = (r, alpha, a, b, *, period="day"))]
    fn new(py: Python<'_>, r: f64, alpha: f64, a: f64, b: f64, period: &str) -> PyResult<Self> {
        let model = BgNbd {
            r: positive(py, "r", r)?,
            alpha: positive(py, "alpha", alpha)?,
            a: positive(py, "a", a)?,
            b: positive(py, "b", b)?,
        };
        Ok(PyBgNbd { model, period: period_arg(py, period)?, report: None })
    }

    /// Shape of the purchase-rate gamma.
    #[getter]
    fn r(&self) -> f64 {
        self.model.r
    }

    /// Scale of the purchase-rate gamma (in periods).
    #[getter]
    fn alpha(&self) -> f64 {
        self.model.alpha
    }

    /// Dropout beta, first shape.
    #[getter]
    fn a(&self) -> f64 {
        self.model.a
    }

    /// Dropout beta, second shape.
    #[getter]
    fn b(&self) -> f64 {
        self.model.b
    }

    /// Time unit of recency and T: `"day"` or `"week"`.
    #[getter]
    fn period(&self) -> &'static str {
        period_name(self.period)
    }

    /// Total log-likelihood at the fitted optimum (`None` for a model built from parameters).
    #[getter]
    fn log_likelihood(&self) -> Option<f64> {
        self.report.map(|r| r.log_likelihood)
    }

    /// Whether the optimiser converged (`None` for a model built from parameters).
    #[getter]
    fn converged(&self) -> Option<bool> {
        self.report.map(|r| r.converged)
    }

    /// Customers the model was fitted on (`None` for a model built from parameters).
    #[getter]
    fn customers(&self) -> Option<usize> {
        self.report.map(|r| r.customers)
    }

    /// Probability that a customer with `frequency` repeat purchases, the last
    /// at `recency`, observed for `T` periods, is still alive. Pass a summary
    /// DataFrame as `frequency` (and nothing else) to score every row.
    #[pyo3(signature = (frequency, recency=None, T=None))]
    #[allow(non_snake_case)]
    fn p_alive<'py>(
        &self,
        py: Python<'py>,
        frequency: &Bound<'py, PyAny>,
        recency: Option<&Bound<'py, PyAny>>,
        T: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = history(frequency, recency, T, Args::new())?;
        let model = self.model;
        args.map(py, "p_alive", move |i, v| {
            check_row(i, v[0], v[1], v[2])?;
            Ok(model.p_alive(v[0], v[1], v[2]))
        })
    }

    /// The age `T` (periods since the first purchase) at which the P(alive)
    /// of a customer with `frequency` repeat purchases, the last at
    /// `recency`, falls to `p` if no purchase comes; `None` for a customer
    /// with no repeat purchase (the model keeps them alive). Lifecycle
    /// stages on P(alive) put their thresholds here.
    fn alive_until(&self, py: Python<'_>, frequency: f64, recency: f64, p: f64) -> PyResult<Option<f64>> {
        self.model.alive_until(frequency, recency, p).map_err(|e| core_err(py, e))
    }

    /// Expected purchases in the next `t` periods: of a customer with history
    /// (`frequency`, `recency`, `T`), or of a new customer when no history is
    /// given. Pass a summary DataFrame as `frequency` to score every row.
    #[pyo3(signature = (t, frequency=None, recency=None, T=None))]
    #[allow(non_snake_case)]
    fn expected_purchases<'py>(
        &self,
        py: Python<'py>,
        t: &Bound<'py, PyAny>,
        frequency: Option<&Bound<'py, PyAny>>,
        recency: Option<&Bound<'py, PyAny>>,
        T: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut args = Args::new();
        args.push(t, "t")?;
        let model = self.model;
        match frequency.filter(|f| !f.is_none()) {
            None => {
                if recency.is_some_and(|r| !r.is_none()) || T.is_some_and(|t| !t.is_none()) {
                    return Err(invalid(py, "frequency", "is required with recency and T"));
                }
                args.map(py, "expected_purchases", move |_, v| model.expected_purchases(v[0]))
            }
            Some(f) => {
                let args = history(f, recency, T, args)?;
                args.map(py, "expected_purchases", move |i, v| {
                    check_row(i, v[1], v[2], v[3])?;
                    model.conditional_expected_purchases(v[0], v[1], v[2], v[3])
                })
            }
        }
    }

    /// `{"r", "alpha", "a", "b", "period", "log_likelihood", "converged", "customers"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("r", self.model.r)?;
        d.set_item("alpha", self.model.alpha)?;
        d.set_item("a", self.model.a)?;
        d.set_item("b", self.model.b)?;
        d.set_item("period", self.period())?;
        fit_dict(py, &d, &self.report)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let m = &self.model;
        format!("BgNbd(r={}, alpha={}, a={}, b={}, period={:?})", m.r, m.alpha, m.a, m.b, self.period())
    }
}

/// (frequency, recency, T) arguments: three numbers/vectors, or a summary frame in `frequency`.
fn history<'py>(
    frequency: &Bound<'py, PyAny>,
    recency: Option<&Bound<'py, PyAny>>,
    t: Option<&Bound<'py, PyAny>>,
    mut args: Args<'py>,
) -> PyResult<Args<'py>> {
    let py = frequency.py();
    match (recency.filter(|r| !r.is_none()), t.filter(|t| !t.is_none())) {
        (None, None) if is_frame(frequency)? => frame_args(frequency, &["frequency", "recency", "T"], &mut args)?,
        (Some(r), Some(t)) => {
            args.push(frequency, "frequency")?;
            args.push(r, "recency")?;
            args.push(t, "T")?;
        }
        _ => return Err(invalid(py, "recency", "recency and T are required unless frequency is a summary DataFrame")),
    }
    Ok(args)
}

// ----- Gamma-Gamma --------------------------------------------------------------------

/// Fitted (or given) Gamma-Gamma spend parameters (Fader, Hardie & Lee 2005):
/// transaction values are Gamma(p, ν) around a customer's mean p/ν, with
/// ν ~ Gamma(q, gamma) across customers. `GammaGamma(p, q, gamma)` builds a
/// model from known parameters; `crm.fit_gamma_gamma` fits one.
#[pyclass(frozen, module = "crm", name = "GammaGamma")]
pub struct PyGammaGamma {
    model: GammaGamma,
    report: Option<FitReport>,
}

#[pymethods]
impl PyGammaGamma {
    #[new]
    fn new(py: Python<'_>, p: f64, q: f64, gamma: f64) -> PyResult<Self> {
        let model =
            GammaGamma { p: positive(py, "p", p)?, q: positive(py, "q", q)?, gamma: positive(py, "gamma", gamma)? };
        Ok(PyGammaGamma { model, report: None })
    }

    /// Shape of the transaction values.
    #[getter]
    fn p(&self) -> f64 {
        self.model.p
    }

    /// Shape of the spend-rate gamma across customers.
    #[getter]
    fn q(&self) -> f64 {
        self.model.q
    }

    /// Scale of the spend-rate gamma across customers.
    #[getter]
    fn gamma(&self) -> f64 {
        self.model.gamma
    }

    /// Total log-likelihood at the fitted optimum (`None` for a model built from parameters).
    #[getter]
    fn log_likelihood(&self) -> Option<f64> {
        self.report.map(|r| r.log_likelihood)
    }

    /// Whether the optimiser converged (`None` for a model built from parameters).
    #[getter]
    fn converged(&self) -> Option<bool> {
        self.report.map(|r| r.converged)
    }

    /// Customers with repeat purchases the model was fitted on (`None` for a model built from parameters).
    #[getter]
    fn customers(&self) -> Option<usize> {
        self.report.map(|r| r.customers)
    }

    /// Expected mean transaction value of a customer with `frequency` repeat
    /// purchases of mean `monetary_value`: `p (gamma + x z) / (p x + q - 1)`
    /// (the population mean for `frequency == 0`; needs q > 1). Pass a summary
    /// DataFrame as `frequency` to score every row.
    #[pyo3(signature = (frequency, monetary_value=None))]
    fn expected_average_value<'py>(
        &self,
        py: Python<'py>,
        frequency: &Bound<'py, PyAny>,
        monetary_value: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut args = Args::new();
        match monetary_value.filter(|m| !m.is_none()) {
            None if is_frame(frequency)? => frame_args(frequency, &["frequency", "monetary_value"], &mut args)?,
            None => return Err(invalid(py, "monetary_value", "is required unless frequency is a summary DataFrame")),
            Some(m) => {
                args.push(frequency, "frequency")?;
                args.push(m, "monetary_value")?;
            }
        }
        let model = self.model;
        args.map(py, "expected_average_value", move |i, v| {
            model.expected_average_value(v[0], v[1]).map_err(|e| match (i, e) {
                (Some(i), CoreError::Validation { field, reason }) if field == "monetary_value" => {
                    validation(format!("monetary_value[{i}]"), reason)
                }
                (_, e) => e,
            })
        })
    }

    /// `{"p", "q", "gamma", "log_likelihood", "converged", "customers"}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("p", self.model.p)?;
        d.set_item("q", self.model.q)?;
        d.set_item("gamma", self.model.gamma)?;
        fit_dict(py, &d, &self.report)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let m = &self.model;
        format!("GammaGamma(p={}, q={}, gamma={})", m.p, m.q, m.gamma)
    }
}

// ----- fits and CLV ---------------------------------------------------------------------

/// Fit the BG/NBD model by maximum likelihood.
///
/// `data` is a summary DataFrame (columns `frequency` or `x`, `recency` or
/// `t_x`, and `T`; recency and T in `period`s), or, with `calibration_end`,
/// an order DataFrame that is summarised first as by `crm.summary(data,
/// calibration_end, period)`. `period` (`"day"` or `"week"`) is kept on the
/// model for `crm.clv`.
#[pyfunction]
#[pyo3(signature = (data, *, period="day", calibration_end=None, member_id="member_id", placed_at="placed_at", amount="amount", status="status", scale=None))]
#[allow(clippy::too_many_arguments)]
fn fit_bgnbd<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    period: &str,
    calibration_end: Option<&Bound<'py, PyAny>>,
    member_id: &str,
    placed_at: &str,
    amount: &str,
    status: &str,
    scale: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyBgNbd> {
    let period = period_arg(py, period)?;
    let scale = scale.filter(|s| !s.is_none()).map(scale_arg).transpose()?.unwrap_or(2);
    let names = order_names(member_id, placed_at, amount, status);
    let s = summary_input(py, data, &["frequency", "recency", "T"], calibration_end, period, &names, scale)?;
    let (model, report) = detached(py, move || BgNbd::fit(&s.frequency, &s.recency, &s.t))?;
    Ok(PyBgNbd { model, period, report: Some(report) })
}

/// Fit the Gamma-Gamma spend model by maximum likelihood.
///
/// `data` is a summary DataFrame (columns `frequency` or `x`, and
/// `monetary_value`, `zbar` or `monetary`: the mean repeat-transaction value),
/// or, with `calibration_end`, an order DataFrame summarised first as by
/// `crm.summary`. Customers without repeat purchases are skipped.
#[pyfunction]
#[pyo3(signature = (data, *, calibration_end=None, member_id="member_id", placed_at="placed_at", amount="amount", status="status", scale=None))]
#[allow(clippy::too_many_arguments)]
fn fit_gamma_gamma<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    calibration_end: Option<&Bound<'py, PyAny>>,
    member_id: &str,
    placed_at: &str,
    amount: &str,
    status: &str,
    scale: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyGammaGamma> {
    let scale = scale.filter(|s| !s.is_none()).map(scale_arg).transpose()?.unwrap_or(2);
    let names = order_names(member_id, placed_at, amount, status);
    let s = summary_input(py, data, &["frequency", "monetary_value"], calibration_end, Period::Day, &names, scale)?;
    let (model, report) = detached(py, move || GammaGamma::fit(&s.frequency, &s.monetary))?;
    Ok(PyGammaGamma { model, report: Some(report) })
}

/// Customer lifetime value of every row of a summary DataFrame (columns
/// `frequency`/`x`, `recency`/`t_x`, `T`, `monetary_value`/`zbar`, in the
/// BG/NBD model's period): `margin` × Gamma-Gamma expected mean value × the
/// BG/NBD purchases expected in each of the next `months` months, discounted
/// at `discount_rate` a month (the formula of the `lifetimes` package).
///
/// Returns a vector of the input's kind named `clv` (a pandas Series on the
/// frame's index, a polars Series, ...; a list for a dict of lists).
#[pyfunction]
#[pyo3(signature = (bgnbd, gamma_gamma, data, *, months=12, discount_rate=0.01, margin=1.0))]
fn clv<'py>(
    py: Python<'py>,
    bgnbd: &Bound<'py, PyAny>,
    gamma_gamma: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    months: i64,
    discount_rate: f64,
    margin: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let bg = bgnbd
        .cast::<PyBgNbd>()
        .map_err(|_| invalid(py, "bgnbd", format!("must be a crm.BgNbd, not {}", type_name(bgnbd))))?
        .get();
    let gg = gamma_gamma
        .cast::<PyGammaGamma>()
        .map_err(|_| invalid(py, "gamma_gamma", format!("must be a crm.GammaGamma, not {}", type_name(gamma_gamma))))?
        .get();
    if !(0..=1200).contains(&months) {
        return Err(invalid(py, "months", "must be 0-1200"));
    }
    if !(discount_rate > -1.0 && discount_rate.is_finite()) {
        return Err(invalid(py, "discount_rate", format!("{discount_rate} is not a finite rate above -1")));
    }
    if !margin.is_finite() {
        return Err(invalid(py, "margin", format!("{margin} is not finite")));
    }
    let options = ClvOptions {
        months: months as u32,
        monthly_discount_rate: discount_rate,
        periods_per_month: bg.period.per_month(),
        margin,
    };
    let mut args = Args::new();
    frame_args(data, &["frequency", "recency", "T", "monetary_value"], &mut args)?;
    let (bg, gg) = (bg.model, gg.model);
    args.map(py, "clv", move |i, v| {
        check_row(i, v[0], v[1], v[2])?;
        crm_core::analytics::clv(&bg, &gg, v[0], v[1], v[2], v[3], options)
    })
}

// ----- segment rules ------------------------------------------------------------------

/// A segment rule (the rule language of `crm_core::segment`).
///
/// `Rule(text)` reads the text form, `Rule.from_json(...)` the JSON form;
/// both check types and normalise, so `str(rule)` is the canonical text and
/// `Rule(str(rule)) == rule`. A rule that cannot be read raises `RuleError`
/// (`.line`, `.column`, `.excerpt` with a caret; `.field` for type errors).
///
/// `rule.evaluate(frame)` gives a boolean mask over a DataFrame whose columns
/// are named by the fields' text form (`tier`, `orders(90d)`,
/// `spend(365d)`, `days_since_last_order`, `tags` as lists of str, ...);
/// `rule.matches(values)` tests one member given as a dict keyed the same way.
/// Missing values (None, NaN) make every comparison false; `not` is the plain
/// complement.
#[pyclass(frozen, eq, module = "crm", name = "Rule")]
#[derive(PartialEq)]
pub struct PyRule(Rule);

/// A rule argument of an engine query: a `Rule`, its text, or its JSON form (dict).
pub(crate) fn rule_arg(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Rule> {
    let py = obj.py();
    if let Ok(r) = obj.cast::<PyRule>() {
        return Ok(r.get().0.clone());
    }
    if let Ok(text) = obj.extract::<String>() {
        return Rule::parse(&text).map_err(|e| rule_err(py, e));
    }
    if obj.is_instance_of::<pyo3::types::PyDict>() {
        let json = crate::convert::to_json(obj, field)?;
        return Rule::from_json(&json).map_err(|e| rule_err(py, e));
    }
    Err(crate::errors::invalid(py, field, "must be a crm.Rule, its text or its JSON form (dict)"))
}

fn rule_err(py: Python<'_>, e: crm_core::segment::RuleError) -> PyErr {
    to_py(py, &CoreError::from(e))
}

/// The field a column name or dict key spells (`"Orders(90D)"` -> `orders(90d)`).
fn field_of(name: &str) -> Option<Field> {
    match Rule::parse(&format!("{name} exists")) {
        Ok(Rule::Exists { field }) => Some(field),
        _ => None,
    }
}

/// One member's value of `field` from a Python value (None and NaN are missing).
fn field_value(obj: &Bound<'_, PyAny>, field: &Field, name: &str) -> PyResult<Option<FieldValue<'static>>> {
    let py = obj.py();
    let ty = field.field_type();
    if obj.is_none() || obj.cast::<PyFloat>().is_ok_and(|f| f.value().is_nan()) {
        return Ok(if ty == FieldType::TextSet {
            Some(FieldValue::TextSet(Cow::Owned(BTreeSet::new())))
        } else {
            None
        });
    }
    Ok(Some(match ty {
        FieldType::Number => FieldValue::Int(whole(obj, name)?),
        FieldType::Money => FieldValue::Money(money_arg(obj, 2, name)?),
        // Means of scores are not money: no currency rounding of a float.
        FieldType::Decimal => FieldValue::Money(money_arg(obj, 28, name)?),
        FieldType::Text => FieldValue::Text(Cow::Owned(string(obj, name)?)),
        FieldType::Date => FieldValue::Date(date_arg(obj, name)?),
        FieldType::Bool => FieldValue::Bool(convert::boolean(obj, name)?),
        FieldType::TextSet => FieldValue::TextSet(Cow::Owned(strings(obj, name)?.into_iter().collect())),
        FieldType::Dynamic => FieldValue::Json(Cow::Owned(convert::to_json(obj, name)?)),
        other => return Err(internal(py, format!("unsupported field type {}", other.name()))),
    }))
}

/// Add one column of values to the table, by the field's type.
fn add_column(
    table: &mut MemberColumns,
    field: Field,
    values: Vec<Option<FieldValue<'static>>>,
) -> crm_core::Result<()> {
    macro_rules! pick {
        ($variant:ident) => {
            values.into_iter().map(|v| match v {
                Some(FieldValue::$variant(x)) => Some(x),
                _ => None,
            })
        };
    }
    match field.field_type() {
        FieldType::Number => table.add_int(field, pick!(Int)),
        FieldType::Money => table.add_money(field, pick!(Money)),
        FieldType::Decimal => table.add_decimal(field, pick!(Money)),
        FieldType::Text => table.add_text(field, pick!(Text)),
        FieldType::Date => table.add_date(field, pick!(Date)),
        FieldType::Bool => table.add_bool(field, pick!(Bool)),
        FieldType::TextSet => table.add_text_set(
            field,
            values.into_iter().map(|v| match v {
                Some(FieldValue::TextSet(s)) => s.into_owned(),
                _ => BTreeSet::new(),
            }),
        ),
        FieldType::Dynamic => table.add_attr(field, pick!(Json).map(|j| j.map(Cow::into_owned))),
        other => Err(validation(field.to_string(), format!("unsupported field type {}", other.name()))),
    }
}

fn tier_ladder(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<String>>> {
    obj.filter(|o| !o.is_none()).map(|o| strings(o, "tier_ladder")).transpose()
}

#[pymethods]
impl PyRule {
    /// Read the text form, e.g. `Rule('tier in ("gold", "platinum") and orders(90d) >= 2')`.
    #[new]
    fn new(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Self> {
        let text = string(text, "text")?;
        Rule::parse(&text).map(PyRule).map_err(|e| rule_err(py, e))
    }

    /// Read the JSON form: a dict (`{"and": [...]}`, `{"field": "tier", "op": "==", "value": "gold"}`, ...)
    /// or a JSON string.
    #[staticmethod]
    fn from_json(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Self> {
        let rule = if let Ok(s) = value.cast::<PyString>() {
            Rule::from_json_str(&s.to_cow()?)
        } else if value.is_instance_of::<PyDict>() {
            Rule::from_json(&convert::to_json(value, "rule")?)
        } else {
            return Err(invalid(py, "rule", format!("must be a dict or a JSON string, not {}", type_name(value))));
        };
        rule.map(PyRule).map_err(|e| rule_err(py, e))
    }

    /// The JSON form as a dict (money as decimal strings).
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0.to_json())
    }

    /// The fields the rule reads, in their text form (`"orders(90d)"`), in first-use order:
    /// the columns `evaluate` needs.
    #[getter]
    fn fields(&self) -> Vec<String> {
        self.0.fields().iter().map(ToString::to_string).collect()
    }

    /// Evaluate the rule on every row of a DataFrame (pandas, polars, pyarrow
    /// or a dict of lists); returns a boolean mask of the input's kind (a
    /// pandas Series on the frame's index, a polars Series, a pyarrow array, a
    /// list). Each field the rule reads is the column named by its text form
    /// (`orders(90d)`; spelling variants such as `Orders(90D)` are found too),
    /// or the column `columns[field]`. Column values: numbers as ints (whole
    /// floats accepted), money as `Decimal`/`str`/`int` (floats only when exact
    /// to the cent), text as `str`, dates as dates or ISO strings, tags and
    /// channels as lists or sets of `str`. `tier_ladder` (lowest first) orders
    /// `tier >= "gold"`.
    #[pyo3(signature = (frame, *, columns=None, tier_ladder=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        frame: &Bound<'py, PyAny>,
        columns: Option<&Bound<'py, PyAny>>,
        tier_ladder: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ladder = self::tier_ladder(tier_ladder)?;
        let mapping: HashMap<String, String> =
            helper(py, "optional_mapping")?.call1((columns, "columns"))?.extract()?;
        let mut renamed: HashMap<Field, String> = HashMap::new();
        for (k, v) in mapping {
            let field = field_of(&k).ok_or_else(|| invalid(py, &format!("columns.{k}"), "is not a rule field"))?;
            renamed.insert(field, v);
        }
        let present: Vec<String> = helper(py, "column_names")?.call1((frame,))?.extract()?;
        let fields = self.0.fields();
        let mut names = Vec::with_capacity(fields.len());
        for field in &fields {
            let text = field.to_string();
            let name = renamed
                .get(field)
                .cloned()
                .or_else(|| present.iter().find(|c| **c == text).cloned())
                .or_else(|| present.iter().find(|c| field_of(c).as_ref() == Some(field)).cloned())
                .ok_or_else(|| {
                    invalid(
                        py,
                        &text,
                        format!("the rule reads this field but the frame has no column {text:?} (rename a column or pass columns={{...}})"),
                    )
                })?;
            names.push(name);
        }
        let dates: Vec<&String> =
            fields.iter().zip(&names).filter(|(f, _)| f.field_type() == FieldType::Date).map(|(_, n)| n).collect();
        let out = helper(py, "read_columns")?.call1((frame, names.clone(), (), dates))?;
        let (_, rows, data, _): (String, usize, Bound<'py, PyDict>, Vec<String>) = out.extract()?;
        let mut table = MemberColumns::new(vec![MemberId(String::new()); rows]);
        if let Some(ladder) = ladder {
            table.set_tier_ladder(ladder);
        }
        for (field, name) in fields.iter().zip(&names) {
            let l = list(py, &data, name)?.ok_or_else(|| internal(py, format!("column {name} was not read")))?;
            let mut values = Vec::with_capacity(rows);
            for (i, v) in l.iter().enumerate() {
                values.push(field_value(&v, field, &format!("{name}[{i}]"))?);
            }
            add_column(&mut table, field.clone(), values).map_err(|e| core_err(py, e))?;
        }
        let rule = &self.0;
        let bits = detached(py, || {
            let bits = eval_columns(rule, &table)?;
            Ok((0..rows).map(|i| bits.get(i)).collect::<Vec<bool>>())
        })?;
        helper(py, "series_like")?.call1((frame, bits, "match"))
    }

    /// Whether one member matches. `values` maps field text forms (`"tier"`,
    /// `"orders(90d)"`, `"tags"`, ...) to values, converted as by `evaluate`;
    /// keys that are not fields of the rule are ignored, and a field the rule
    /// reads that is absent (or None) is missing.
    #[pyo3(signature = (values, *, tier_ladder=None))]
    fn matches(
        &self,
        py: Python<'_>,
        values: &Bound<'_, PyAny>,
        tier_ladder: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if !values.hasattr("items")? {
            return Err(invalid(py, "values", format!("must be a dict, not {}", type_name(values))));
        }
        let fields = self.0.fields();
        let mut member = MemberValues::new();
        for item in values.call_method0("items")?.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            let key = string(&k, "values")?;
            let Some(field) = field_of(&key).filter(|f| fields.contains(f)) else { continue };
            if let Some(value) = field_value(&v, &field, &key)? {
                member.set(field, value);
            }
        }
        if let Some(ladder) = self::tier_ladder(tier_ladder)? {
            member = member.with_tier_ladder(ladder);
        }
        Ok(self.0.matches(&member))
    }

    fn __str__(&self) -> String {
        self.0.to_string()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Rule({})", crate::results::pystr(py, &self.0.to_string()))
    }

    fn __hash__(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.0.to_string().hash(&mut h);
        h.finish()
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let text = slf.get().0.to_string();
        Ok((py.get_type::<PyRule>(), PyTuple::new(py, [text])?))
    }
}
