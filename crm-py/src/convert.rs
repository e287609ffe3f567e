//! Conversions between Python values and the core's types.
//!
//! Every extractor takes the name of the argument or field it reads, so a
//! value of the wrong type raises `crm.ValidationError` (code
//! `validation_error`, `.field` = that name) instead of a bare `TypeError`.
//!
//! Rules (documented in the package docstring and the stubs):
//! - money: `decimal.Decimal`, `str` or `int`; a `float` goes through
//!   `crm_core::money::from_f64` (shortest round-trip decimal, rounded half away
//!   from zero to the programme currency's minor unit; NaN and infinities are
//!   rejected); `bool` is rejected;
//! - points: `int` (or anything with `__index__`, e.g. numpy integers), not `bool`;
//! - times: timezone-aware `datetime` (any tzinfo, converted to UTC) or an RFC
//!   3339 string with an offset; a naive `datetime` is rejected.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use crm_core::money;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDate, PyDateTime, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::errors::invalid;

/// Deepest nesting accepted when converting a Python value to JSON (guards
/// against self-referencing containers).
const MAX_DEPTH: usize = 64;

static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The `decimal.Decimal` class.
pub(crate) fn decimal_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DECIMAL.import(py, "decimal", "Decimal")
}

fn utc(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    UTC.get_or_try_init(py, || Ok::<_, PyErr>(py.import("datetime")?.getattr("timezone")?.getattr("utc")?.unbind()))
        .map(|u| u.bind(py))
}

/// `type(obj).__name__`, for messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

// ----- Python -> Rust ---------------------------------------------------------

/// A `str`.
pub(crate) fn string(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    match obj.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(invalid(obj.py(), field, format!("must be a str, not {}", type_name(obj)))),
    }
}

/// A `str` or `None`.
pub(crate) fn opt_string(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<String>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => string(o, field).map(Some),
    }
}

/// A list of `str` (any iterable but a string).
pub(crate) fn strings(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(invalid(obj.py(), field, "must be a list of str, not a str"));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| invalid(obj.py(), field, format!("must be a list of str, not {}", type_name(obj))))?;
    iter.enumerate().map(|(i, item)| string(&item?, &format!("{field}[{i}]"))).collect()
}

/// A `bool` (exactly; `0`/`1` are rejected).
pub(crate) fn boolean(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    match obj.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(invalid(obj.py(), field, format!("must be a bool, not {}", type_name(obj)))),
    }
}

/// An integer: `int` or anything with `__index__` (numpy integers), not `bool`.
pub(crate) fn integer(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<i64> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(py, field, "must be an int, not bool"));
    }
    let int = if obj.is_instance_of::<PyInt>() {
        obj.clone()
    } else if !obj.is_instance_of::<PyFloat>() && obj.hasattr("__index__")? {
        obj.call_method0("__index__")?
    } else {
        return Err(invalid(py, field, format!("must be an int, not {}", type_name(obj))));
    };
    int.extract::<i64>().map_err(|_| invalid(py, field, "is out of range"))
}

/// A non-negative integer that fits `usize`/`u32` limits of the caller.
pub(crate) fn count(obj: &Bound<'_, PyAny>, field: &str, max: u64) -> PyResult<u64> {
    let v = integer(obj, field)?;
    if v < 0 || v as u64 > max {
        return Err(invalid(obj.py(), field, format!("must be 0-{max}")));
    }
    Ok(v as u64)
}

fn is_decimal(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.is_instance(decimal_type(obj.py())?)
}

/// Plain (non-scientific) text of a `decimal.Decimal`.
fn decimal_text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = obj.py();
    py.import("builtins")?.getattr("format")?.call1((obj, "f"))?.extract::<String>()
}

/// Money in the programme currency (see the module docs for the rules).
pub(crate) fn money(obj: &Bound<'_, PyAny>, currency: &str, field: &str) -> PyResult<Decimal> {
    let py = obj.py();
    let core = |r: crm_core::Result<Decimal>| r.map_err(|e| crate::errors::to_py(py, &e));
    if obj.is_instance_of::<PyBool>() {
        return Err(invalid(py, field, "must be a Decimal, str or int, not bool"));
    }
    if obj.is_instance_of::<PyInt>() {
        let v: i64 = obj.extract().map_err(|_| invalid(py, field, "is out of range"))?;
        return Ok(Decimal::from(v));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return core(money::parse(&s.to_cow()?, field));
    }
    if is_decimal(obj)? {
        let text = decimal_text(obj)?;
        return core(money::parse(&text, field));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return core(money::from_f64(f.value(), currency, field));
    }
    // numpy scalars: integers have __index__, floats __float__.
    if obj.hasattr("__index__")? {
        return Ok(Decimal::from(integer(obj, field)?));
    }
    if obj.hasattr("__float__")? {
        let v: f64 = obj.call_method0("__float__")?.extract()?;
        return core(money::from_f64(v, currency, field));
    }
    Err(invalid(py, field, format!("must be a Decimal, str or int, not {}", type_name(obj))))
}

/// An instant: an aware `datetime` or an RFC 3339 string.
pub(crate) fn datetime(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<DateTime<Utc>> {
    datetime_checked(obj)?.map_err(|reason| invalid(obj.py(), field, reason))
}

/// The instant, or the reason it is not one (outer error: Python failed).
fn datetime_checked(obj: &Bound<'_, PyAny>) -> PyResult<Result<DateTime<Utc>, String>> {
    let py = obj.py();
    if let Ok(dt) = obj.cast::<PyDateTime>() {
        if dt.getattr("tzinfo")?.is_none() || dt.call_method0("utcoffset")?.is_none() {
            return Ok(Err("must be a timezone-aware datetime (naive datetimes are rejected; \
                 use e.g. datetime(..., tzinfo=timezone.utc))"
                .into()));
        }
        let in_utc = dt.call_method1("astimezone", (utc(py)?,))?;
        return Ok(in_utc.extract::<DateTime<Utc>>().map_err(|e| e.to_string()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_cow()?;
        return Ok(DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("{text:?} is not an RFC 3339 timestamp with an offset")));
    }
    Ok(Err(format!("must be a timezone-aware datetime or an RFC 3339 string, not {}", type_name(obj))))
}

/// An optional instant.
pub(crate) fn opt_datetime(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<DateTime<Utc>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => datetime(o, field).map(Some),
    }
}

/// A path: `str` or `os.PathLike`.
pub(crate) fn path(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    let py = obj.py();
    let fspath = py
        .import("os")?
        .getattr("fspath")?
        .call1((obj,))
        .map_err(|_| invalid(py, field, format!("must be a str or os.PathLike, not {}", type_name(obj))))?;
    string(&fspath, field)
}

/// Join a field prefix and a serde path (`.` is the root).
fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path == "." || path.is_empty()) {
        (_, true) => prefix.to_string(),
        (true, false) => path.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Deserialize a core type from JSON; errors name the field path under `field`.
pub(crate) fn from_json<T: DeserializeOwned>(py: Python<'_>, value: Value, field: &str) -> PyResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let at = join(field, &e.path().to_string());
        invalid(py, &at, e.inner())
    })
}

/// Why a Python value could not become JSON.
pub(crate) enum JsonError {
    /// The value at `field` is unacceptable for `reason`.
    Invalid { field: String, reason: String },
    /// Python itself raised.
    Py(PyErr),
}

impl From<PyErr> for JsonError {
    fn from(e: PyErr) -> Self {
        JsonError::Py(e)
    }
}

/// Convert a Python value to JSON: dicts with `str` keys, lists and tuples,
/// `str`, `int`, finite `float`, `bool`, `None`, `Decimal` (as a decimal
/// string), aware `datetime` (RFC 3339 UTC) and `date` (`YYYY-MM-DD`).
/// Problems raise `ValidationError` naming the path below `field`.
pub(crate) fn to_json(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    to_json_raw(obj, field).map_err(|e| match e {
        JsonError::Invalid { field, reason } => invalid(obj.py(), &field, reason),
        JsonError::Py(e) => e,
    })
}

/// [`to_json`] with the error left for the caller to map.
pub(crate) fn to_json_raw(obj: &Bound<'_, PyAny>, field: &str) -> Result<Value, JsonError> {
    to_json_at(obj, field, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, field: &str, depth: usize) -> Result<Value, JsonError> {
    let bad = |reason: String| JsonError::Invalid { field: field.to_string(), reason };
    if depth > MAX_DEPTH {
        return Err(bad("is nested too deeply".into()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Value::from(v));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(Value::from(v));
        }
        return Err(bad("is out of range".into()));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value()).map(Value::Number).ok_or_else(|| bad("must be a finite number".into()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if is_decimal(obj)? {
        let text = decimal_text(obj)?;
        if text.parse::<Decimal>().is_err() {
            return Err(bad(format!("{text:?} is not a decimal number")));
        }
        return Ok(Value::String(text));
    }
    if obj.is_instance_of::<PyDateTime>() {
        let t = datetime_checked(obj)?.map_err(bad)?;
        return Ok(Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
    }
    if obj.is_instance_of::<PyDate>() {
        let d: NaiveDate = obj.extract().map_err(|e: PyErr| bad(e.to_string()))?;
        return Ok(Value::String(d.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s.to_cow()?.into_owned(),
                Err(_) => return Err(bad(format!("keys must be str, not {}", type_name(&k)))),
            };
            let value = to_json_at(&v, &join(field, &key), depth + 1)?;
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for (i, item) in obj.try_iter()?.enumerate() {
            out.push(to_json_at(&item?, &format!("{field}[{i}]"), depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    Err(bad(format!("has unsupported type {}", type_name(obj))))
}

/// A dict (exactly), or a `ValidationError` naming `field`.
pub(crate) fn dict<'a, 'py>(obj: &'a Bound<'py, PyAny>, field: &str) -> PyResult<&'a Bound<'py, PyDict>> {
    obj.cast::<PyDict>().map_err(|_| invalid(obj.py(), field, format!("must be a dict, not {}", type_name(obj))))
}

// ----- Rust -> Python ---------------------------------------------------------

/// A `decimal.Decimal`.
pub(crate) fn decimal_to_py<'py>(py: Python<'py>, d: &Decimal) -> PyResult<Bound<'py, PyAny>> {
    decimal_type(py)?.call1((d.to_string(),))
}

/// A `decimal.Decimal`, or `None`.
pub(crate) fn opt_decimal_to_py<'py>(py: Python<'py>, d: &Option<Decimal>) -> PyResult<Bound<'py, PyAny>> {
    match d {
        Some(d) => decimal_to_py(py, d),
        None => Ok(py.None().into_bound(py)),
    }
}

/// An aware `datetime` in UTC.
pub(crate) fn time_to_py<'py>(py: Python<'py>, t: &DateTime<Utc>) -> PyResult<Bound<'py, PyAny>> {
    Ok(t.into_pyobject(py)?.into_any())
}

/// An optional aware `datetime`.
pub(crate) fn opt_time_to_py<'py>(py: Python<'py>, t: &Option<DateTime<Utc>>) -> PyResult<Bound<'py, PyAny>> {
    match t {
        Some(t) => time_to_py(py, t),
        None => Ok(py.None().into_bound(py)),
    }
}

/// JSON to plain Python values (the `to_dict()` form: decimals stay strings).
pub(crate) fn json_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for item in a {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, item) in o {
                d.set_item(k, json_to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

/// Serialize a core value and convert it to plain Python values.
pub(crate) fn serde_to_py<'py, T: serde::Serialize>(py: Python<'py>, v: &T) -> PyResult<Bound<'py, PyAny>> {
    let value = serde_json::to_value(v).map_err(|e| crate::errors::internal(py, e))?;
    json_to_py(py, &value)
}
