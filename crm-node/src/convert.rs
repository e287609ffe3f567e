//! The one place where JavaScript values meet the core's serde JSON form.
//!
//! * Keys: camelCase in JavaScript, snake_case in the core. Keys of maps that
//!   are keyed by data (point types, channels, order ids, custom attributes)
//!   are never converted — see [`VERBATIM`] and [`KEYED`].
//! * Money (`amount`, `price`): decimal strings, parsed by
//!   [`crm_core::money::parse`]; JS numbers only when exact in the currency's
//!   minor unit (checked with [`crm_core::money::from_f64`]).
//! * Points and other integers: safe integers only.
//! * Times: `Date` objects or ISO-8601 strings with an offset; out as RFC 3339.

use std::borrow::Cow;
use std::ptr;

use chrono::{DateTime, SecondsFormat, Utc};
use crm_core::money;
use napi::bindgen_prelude::{Array, FromNapiValue, JsValue, Null, Object, ToNapiValue, TypeName, Unknown};
use napi::{check_status, sys, JsDate, ValueType};
use serde_json::{Map, Number, Value};

use crate::errors::{config, invalid, BResult, Fail};

/// Largest integer a JavaScript number holds exactly (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE: i64 = 9_007_199_254_740_991;

/// Fields whose value is a map keyed by data, holding scalars or free-form
/// JSON: the whole subtree is passed through unchanged.
const VERBATIM: &[&str] = &[
    "attributes",
    "earned",
    "awarded",
    "moved",
    "debts",
    "shortfalls",
    "bonus_counts",
    "rule_days",
    "last_activity",
    "returned",
    "clawed",
    "bonus",
    "expired",
    "bonus_expired",
    // Tier benefits: host-defined extras.
    "custom",
    // Outreach items: the trigger's data merged with the programme's static
    // payload (template ids …), handed to the host's sender as is.
    "payload",
    // Stage transition matrix: counts[from_stage][to_stage].
    "counts",
    // Reports: members per channel; member state: point totals per type.
    "by_channel",
    "totals",
];

/// Fields whose value is a map keyed by data (order id, redemption id,
/// channel, feedback record id) holding structured values: keys unchanged,
/// values converted.
const KEYED: &[&str] = &["orders", "redemptions", "consents", "contacts", "tickets", "reviews", "surveys"];

/// Fields that hold money.
const MONEY: &[&str] = &["amount", "price"];

/// Field holding profile field names (`patch.clear`), converted like keys.
const FIELD_NAMES: &str = "clear";

/// How a subtree is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Command input: camelCase keys, strict numbers, money rules.
    Fields,
    /// Free-form data under a verbatim key.
    Verbatim,
    /// A map keyed by data: keys unchanged, values read as [`Mode::Fields`].
    Keyed,
    /// A programme document (the configuration schema, used verbatim);
    /// errors are `config_error`.
    Document,
}

/// Reads JavaScript input into the core's JSON form.
pub struct Reader<'a> {
    /// Currency of the programme, for the money rule.
    pub currency: &'a str,
}

impl Reader<'_> {
    /// Convert `v` found at `path` (core field path, e.g. `order`).
    pub fn read(&self, v: Unknown<'_>, path: &str, mode: Mode) -> BResult<Value> {
        self.value(v, path, mode, 0)
    }

    fn error(&self, mode: Mode, path: &str, reason: impl Into<String>) -> Fail {
        let path = if path.is_empty() { "value" } else { path };
        match mode {
            Mode::Document => config(if path == "value" { "programme" } else { path }, reason),
            _ => invalid(path, reason),
        }
    }

    fn value(&self, v: Unknown<'_>, path: &str, mode: Mode, depth: usize) -> BResult<Value> {
        if depth > 64 {
            return Err(self.error(mode, path, "is nested too deeply"));
        }
        Ok(match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Value::Null,
            ValueType::Boolean => Value::Bool(unsafe { v.cast::<bool>() }?),
            ValueType::String => Value::String(unsafe { v.cast::<String>() }?),
            ValueType::Number => {
                let x = unsafe { v.cast::<f64>() }?;
                self.number(x, path, mode)?
            }
            ValueType::Object => {
                let obj = unsafe { v.cast::<Object>() }?;
                if obj.is_date()? {
                    let ms = unsafe { v.cast::<JsDate>() }?.value_of()?;
                    let t = from_millis(ms).ok_or_else(|| self.error(mode, path, "is an invalid Date"))?;
                    Value::String(rfc3339(t))
                } else if obj.is_array()? {
                    let arr = unsafe { v.cast::<Array>() }?;
                    let mut out = Vec::with_capacity(arr.len() as usize);
                    for i in 0..arr.len() {
                        let p = format!("{path}[{i}]");
                        match arr.get::<Unknown>(i)? {
                            Some(e) => out.push(self.value(e, &p, mode, depth + 1)?),
                            None => out.push(Value::Null),
                        }
                    }
                    Value::Array(out)
                } else {
                    Value::Object(self.object(&obj, path, mode, depth)?)
                }
            }
            other => {
                return Err(self.error(mode, path, format!("has an unsupported type ({other})")));
            }
        })
    }

    fn object(&self, obj: &Object<'_>, path: &str, mode: Mode, depth: usize) -> BResult<Map<String, Value>> {
        let mut out = Map::new();
        for key in Object::keys(obj)? {
            let Some(child) = obj.get::<Unknown>(&key)? else {
                continue; // undefined: absent
            };
            if child.get_type()? == ValueType::Undefined {
                continue;
            }
            let name = match mode {
                Mode::Fields => camel_to_snake(&key).into_owned(),
                _ => key,
            };
            let p = join_path(path, &name);
            let value = match mode {
                Mode::Keyed => self.value(child, &p, Mode::Fields, depth + 1)?,
                Mode::Fields if VERBATIM.contains(&name.as_str()) => {
                    self.value(child, &p, Mode::Verbatim, depth + 1)?
                }
                Mode::Fields if KEYED.contains(&name.as_str()) => self.value(child, &p, Mode::Keyed, depth + 1)?,
                Mode::Fields if MONEY.contains(&name.as_str()) => self.money(child, &p, depth + 1)?,
                Mode::Fields if name == FIELD_NAMES => match self.value(child, &p, mode, depth + 1)? {
                    Value::Array(items) => Value::Array(
                        items
                            .into_iter()
                            .map(|i| match i {
                                Value::String(s) => Value::String(camel_to_snake(&s).into_owned()),
                                other => other,
                            })
                            .collect(),
                    ),
                    other => other,
                },
                _ => self.value(child, &p, mode, depth + 1)?,
            };
            out.insert(name, value);
        }
        Ok(out)
    }

    /// A money field: a decimal string, or a number exact in the minor unit.
    fn money(&self, v: Unknown<'_>, path: &str, depth: usize) -> BResult<Value> {
        match v.get_type()? {
            ValueType::String => {
                let s = unsafe { v.cast::<String>() }?;
                Ok(Value::String(money::parse(&s, path)?.to_string()))
            }
            ValueType::Number => {
                let x = unsafe { v.cast::<f64>() }?;
                Ok(Value::String(money_from_number(x, self.currency, path)?))
            }
            _ => self.value(v, path, Mode::Fields, depth),
        }
    }

    fn number(&self, x: f64, path: &str, mode: Mode) -> BResult<Value> {
        if !x.is_finite() {
            return Err(self.error(mode, path, "must be a finite number"));
        }
        if matches!(mode, Mode::Fields | Mode::Keyed) {
            return Ok(Value::Number(safe_integer(x, path)?.into()));
        }
        if x.fract() == 0.0 && x.abs() <= MAX_SAFE as f64 {
            return Ok(Value::Number((x as i64).into()));
        }
        Number::from_f64(x).map(Value::Number).ok_or_else(|| self.error(mode, path, "must be a finite number"))
    }
}

/// A JS number as an exact safe integer.
pub fn safe_integer(x: f64, field: &str) -> BResult<i64> {
    if !x.is_finite() {
        return Err(invalid(field, "must be a finite number"));
    }
    if x.fract() != 0.0 {
        return Err(invalid(field, format!("must be an integer, got {x}")));
    }
    if x.abs() > MAX_SAFE as f64 {
        return Err(invalid(field, format!("{x} is not a safe integer")));
    }
    Ok(x as i64)
}

/// A JS number as money: only when exact in the currency's minor unit
/// (the core's [`money::exact_from_f64`]); otherwise pass a decimal string.
pub fn money_from_number(x: f64, currency: &str, field: &str) -> BResult<String> {
    Ok(money::exact_from_f64(x, currency, field)?.to_string())
}

/// An instant from a `Date` or an ISO-8601 string with an offset.
pub fn instant(v: Unknown<'_>, field: &str) -> BResult<DateTime<Utc>> {
    let bad = || invalid(field, "must be a Date or an ISO-8601 string with an offset");
    match v.get_type()? {
        ValueType::String => {
            let s = unsafe { v.cast::<String>() }?;
            s.trim()
                .parse::<DateTime<Utc>>()
                .map_err(|e| invalid(field, format!("{s:?} is not an ISO-8601 date-time with an offset ({e})")))
        }
        ValueType::Object => {
            let obj = unsafe { v.cast::<Object>() }?;
            if !obj.is_date()? {
                return Err(bad());
            }
            let ms = unsafe { v.cast::<JsDate>() }?.value_of()?;
            from_millis(ms).ok_or_else(|| invalid(field, "is an invalid Date"))
        }
        _ => Err(bad()),
    }
}

fn from_millis(ms: f64) -> Option<DateTime<Utc>> {
    if !ms.is_finite() {
        return None;
    }
    DateTime::from_timestamp_millis(ms as i64)
}

/// RFC 3339 in UTC, the core's wire form.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A required string argument.
pub fn string(v: Unknown<'_>, field: &str) -> BResult<String> {
    match v.get_type()? {
        ValueType::String => Ok(unsafe { v.cast::<String>() }?),
        _ => Err(invalid(field, "must be a string")),
    }
}

/// A required boolean argument.
pub fn boolean(v: Unknown<'_>, field: &str) -> BResult<bool> {
    match v.get_type()? {
        ValueType::Boolean => Ok(unsafe { v.cast::<bool>() }?),
        _ => Err(invalid(field, "must be a boolean")),
    }
}

/// A required integer argument (points, offsets): a safe integer.
pub fn integer(v: Unknown<'_>, field: &str) -> BResult<i64> {
    match v.get_type()? {
        ValueType::Number => safe_integer(unsafe { v.cast::<f64>() }?, field),
        _ => Err(invalid(field, "must be a number (a safe integer)")),
    }
}

/// `a.b`, or `b` at the root.
pub fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `memberId` → `member_id`.
pub fn camel_to_snake(key: &str) -> Cow<'_, str> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `member_id` → `memberId`.
pub fn snake_to_camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A core JSON value on its way to JavaScript (camelCase keys).
pub struct Js(pub Value);

/// A core JSON value on its way to JavaScript, keys unchanged (documents,
/// and results that are maps keyed by data such as distributions).
pub struct JsDocument(pub Value);

impl From<Value> for Js {
    fn from(v: Value) -> Self {
        Js(v)
    }
}

impl From<Value> for JsDocument {
    fn from(v: Value) -> Self {
        JsDocument(v)
    }
}

impl TypeName for Js {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl TypeName for JsDocument {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl ToNapiValue for Js {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        unsafe { write(env, &val.0, Mode::Fields) }
    }
}

impl ToNapiValue for JsDocument {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        unsafe { write(env, &val.0, Mode::Document) }
    }
}

unsafe fn write(env: sys::napi_env, v: &Value, mode: Mode) -> napi::Result<sys::napi_value> {
    unsafe {
        match v {
            Value::Null => Null::to_napi_value(env, Null),
            Value::Bool(b) => bool::to_napi_value(env, *b),
            Value::Number(n) => {
                let x = if let Some(i) = n.as_i64() {
                    if i.unsigned_abs() > MAX_SAFE as u64 {
                        return Err(napi::Error::from_reason(format!(
                            "integer {i} is outside the safe range of JavaScript numbers"
                        )));
                    }
                    i as f64
                } else if let Some(u) = n.as_u64() {
                    if u > MAX_SAFE as u64 {
                        return Err(napi::Error::from_reason(format!(
                            "integer {u} is outside the safe range of JavaScript numbers"
                        )));
                    }
                    u as f64
                } else {
                    n.as_f64().unwrap_or(f64::NAN)
                };
                f64::to_napi_value(env, x)
            }
            Value::String(s) => <&str>::to_napi_value(env, s.as_str()),
            Value::Array(items) => {
                let mut arr = ptr::null_mut();
                check_status!(sys::napi_create_array_with_length(env, items.len(), &mut arr))?;
                for (i, item) in items.iter().enumerate() {
                    let e = write(env, item, mode)?;
                    check_status!(sys::napi_set_element(env, arr, i as u32, e))?;
                }
                Ok(arr)
            }
            Value::Object(map) => {
                let mut obj = ptr::null_mut();
                check_status!(sys::napi_create_object(env, &mut obj))?;
                for (k, item) in map {
                    let (name, child_mode) = match mode {
                        Mode::Fields if VERBATIM.contains(&k.as_str()) => (snake_to_camel(k), Mode::Verbatim),
                        Mode::Fields if KEYED.contains(&k.as_str()) => (snake_to_camel(k), Mode::Keyed),
                        Mode::Fields => (snake_to_camel(k), Mode::Fields),
                        Mode::Keyed => (Cow::Borrowed(k.as_str()), Mode::Fields),
                        Mode::Verbatim | Mode::Document => (Cow::Borrowed(k.as_str()), mode),
                    };
                    let e = write(env, item, child_mode)?;
                    let mut key = ptr::null_mut();
                    check_status!(sys::napi_create_string_utf8(
                        env,
                        name.as_ptr().cast(),
                        name.len() as isize,
                        &mut key
                    ))?;
                    check_status!(sys::napi_set_property(env, obj, key, e))?;
                }
                Ok(obj)
            }
        }
    }
}

/// Read a `#[napi]` class instance out of an argument.
pub fn instance<'a, T: 'a + FromNapiValue>(v: Unknown<'a>, field: &str, what: &str) -> BResult<T> {
    if v.get_type()? != ValueType::Object {
        return Err(invalid(field, format!("must be a {what}")));
    }
    unsafe { v.cast::<T>() }.map_err(|_| invalid(field, format!("must be a {what}")))
}
