//! Node.js bindings for the crm loyalty engine: conversions and error
//! mapping only — every rule lives in `crm-core`.
//!
//! * [`program`] — `Program` (configuration documents).
//! * [`engine`] — `Engine`: Promise methods plus `…Sync` twins.
//! * [`convert`] — camelCase ↔ core JSON, money, integers, times.
//! * [`errors`] — `CrmError` objects with `code` and `field`.

use napi::bindgen_prelude::{JsObjectValue, Object, Unknown};
use napi::ValueType;
use napi_derive::napi;

// Public so that its free `#[napi]` functions count as used in test builds
// (napi registers them only outside `cfg(test)`).
pub mod analytics;
mod convert;
mod engine;
mod errors;
mod program;
pub mod recommend;
mod store;
pub mod whatif;

/// mimalloc for every allocation the extension makes: the engine allocates
/// many small strings and maps per member, where the system allocator costs
/// about half the time of bulk imports and daily runs (README "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Version of the crm engine bindings.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// True when `value` is an error thrown by this library (an `Error` with a
/// string `code` and a `field` property).
#[napi(ts_args_type = "value: unknown", ts_return_type = "value is CrmError")]
pub fn is_crm_error(value: Unknown<'_>) -> bool {
    fn check(value: Unknown<'_>) -> napi::Result<bool> {
        if value.get_type()? != ValueType::Object || !napi::JsValue::is_error(&value)? {
            return Ok(false);
        }
        let obj = unsafe { value.cast::<Object>() }?;
        let name: Option<Unknown> = obj.get("name")?;
        let code: Option<Unknown> = obj.get("code")?;
        let string = |v: Option<Unknown>| -> napi::Result<Option<String>> {
            match v {
                Some(v) if v.get_type()? == ValueType::String => Ok(Some(unsafe { v.cast::<String>() }?)),
                _ => Ok(None),
            }
        };
        Ok(string(name)?.as_deref() == Some("CrmError")
            && string(code)?.is_some()
            && obj.has_named_property("field")?)
    }
    check(value).unwrap_or(false)
}

/// `n` distinct coupon codes from the operating system's random source: 12
/// characters without look-alikes (no 0, O, 1, I, L) and a check character.
#[napi(catch_unwind)]
pub fn generate_coupon_codes(env: napi::Env, n: u32) -> napi::Result<Vec<String>> {
    crm_core::coupon::generate_codes(n as usize).map_err(|e| errors::into_napi(&env, errors::Fail::from(e)))
}

/// A code as typed (any case, spaces and dashes ignored) in its canonical
/// form; throws a `validation_error` (field `code`) when a character or the
/// check character is wrong.
#[napi(catch_unwind)]
pub fn check_coupon_code(env: napi::Env, code: String) -> napi::Result<String> {
    crm_core::coupon::check_code(&code).map_err(|e| errors::into_napi(&env, errors::Fail::from(e)))
}
