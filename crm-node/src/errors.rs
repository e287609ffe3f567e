//! Error mapping: every failure reaches JavaScript as an `Error` whose `code`
//! is the core's stable code and whose `field` is the core's field path (or
//! `null`). Nothing here decides anything; it only carries the core's error.

use crm_core::CrmError;
use napi::bindgen_prelude::{JsObjectValue, JsValue, Null};
use napi::{Env, Status};
use serde_json::{json, Value};

/// Code used for a panic caught at the boundary (a bug, never expected).
pub const INTERNAL: &str = "internal_error";

/// A failure as the binding reports it: code, field and message (and, for a
/// `rule_error`, where in the rule).
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    /// Set for the core's `CrmError::Rule` only.
    pub rule: Option<RuleSpot>,
}

/// Where a segment rule failed to read (the core's `CrmError::Rule`): for the
/// text form `line`/`column` are 1-based and `excerpt` is the source line
/// with a `^` under the column; for the JSON form both are 0 and `excerpt`
/// is the JSON path (`and[1].value`).
#[derive(Debug, Clone)]
pub struct RuleSpot {
    pub line: usize,
    pub column: usize,
    pub excerpt: String,
}

impl From<CrmError> for ErrorInfo {
    fn from(e: CrmError) -> Self {
        let rule = match &e {
            CrmError::Rule { line, column, excerpt, .. } => {
                Some(RuleSpot { line: *line, column: *column, excerpt: excerpt.clone() })
            }
            _ => None,
        };
        ErrorInfo { code: e.code().to_string(), field: e.field().map(str::to_string), message: e.to_string(), rule }
    }
}

impl ErrorInfo {
    /// The `{code, field, message}` object used in batch results and by hosts
    /// that serialise errors (keys are single words, so no case conversion).
    pub fn to_value(&self) -> Value {
        let mut v = json!({ "code": self.code, "field": self.field, "message": self.message });
        if let (Some(spot), Some(map)) = (&self.rule, v.as_object_mut()) {
            map.insert("line".into(), spot.line.into());
            map.insert("column".into(), spot.column.into());
            map.insert("excerpt".into(), spot.excerpt.clone().into());
        }
        v
    }

    /// A bug caught at the boundary.
    pub fn internal(message: impl Into<String>) -> Self {
        ErrorInfo { code: INTERNAL.to_string(), field: None, message: message.into(), rule: None }
    }
}

/// Why a conversion or a call failed: an error to report, or a JavaScript
/// exception that is already pending (a throwing getter) and must propagate.
pub enum Fail {
    Info(ErrorInfo),
    Js(napi::Error),
}

impl From<CrmError> for Fail {
    fn from(e: CrmError) -> Self {
        Fail::Info(e.into())
    }
}

impl From<ErrorInfo> for Fail {
    fn from(e: ErrorInfo) -> Self {
        Fail::Info(e)
    }
}

impl From<napi::Error> for Fail {
    fn from(e: napi::Error) -> Self {
        Fail::Js(e)
    }
}

/// Result of the binding's conversions.
pub type BResult<T> = std::result::Result<T, Fail>;

/// A validation error on `field` (the core's `validation_error`).
pub fn invalid(field: &str, reason: impl Into<String>) -> Fail {
    Fail::Info(CrmError::Validation { field: field.to_string(), reason: reason.into() }.into())
}

/// A programme error on `path` (the core's `config_error`).
pub fn config(path: &str, reason: impl Into<String>) -> Fail {
    Fail::Info(CrmError::Config { path: path.to_string(), reason: reason.into() }.into())
}

/// Build the JavaScript `Error` for `info` and wrap it so that napi throws
/// (or rejects with) exactly that object.
pub fn to_napi(env: &Env, info: &ErrorInfo) -> napi::Error {
    match build(env, info) {
        Ok(e) => e,
        Err(_) => napi::Error::new(Status::GenericFailure, format!("[{}] {}", info.code, info.message)),
    }
}

fn build(env: &Env, info: &ErrorInfo) -> napi::Result<napi::Error> {
    let mut obj = env.create_error(napi::Error::new(Status::GenericFailure, info.message.clone()))?;
    obj.set_named_property("code", info.code.as_str())?;
    match &info.field {
        Some(f) => obj.set_named_property("field", f.as_str())?,
        None => obj.set_named_property("field", Null)?,
    }
    if let Some(spot) = &info.rule {
        obj.set_named_property("line", spot.line as u32)?;
        obj.set_named_property("column", spot.column as u32)?;
        obj.set_named_property("excerpt", spot.excerpt.as_str())?;
    }
    obj.set_named_property("name", "CrmError")?;
    Ok(napi::Error::from(obj.to_unknown()))
}

/// Turn a [`Fail`] into the error napi throws.
pub fn into_napi(env: &Env, fail: Fail) -> napi::Error {
    match fail {
        Fail::Info(info) => to_napi(env, &info),
        Fail::Js(e) => e,
    }
}

/// Map a serde error (with its path) onto the core's field-path convention.
/// `prefix` is the path of the value being read (`order`, `refund`, or empty
/// for a whole command).
pub fn de_error(
    prefix: &str,
    err: serde_path_to_error::Error<serde_json::Error>,
    make: fn(&str, String) -> Fail,
) -> Fail {
    let inner = err.inner().to_string();
    let mut path = err.path().to_string();
    if path == "." {
        path.clear();
    }
    // "missing field `x`" is reported on the parent; name the field itself.
    if let Some(name) = inner.strip_prefix("missing field `").and_then(|r| r.split('`').next()) {
        path = join(&path, name);
    }
    let field = join(prefix, &path);
    let field = if field.is_empty() { "value".to_string() } else { field };
    make(&field, inner)
}

/// `a.b` without a leading or trailing dot when either side is empty.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}.{b}"),
    }
}
