//! `Program`: a validated loyalty programme (the core's configuration).
//!
//! Programme documents are the configuration schema itself (the same
//! snake_case keys as the JSON/TOML files), so `Program.fromObject(JSON.parse(
//! text))` and `Program.fromJson(text)` accept exactly the same input and
//! `toJSON()` returns a document that loads again.

use crate::convert::{string, JsDocument, Mode, Reader};
use crate::errors::{into_napi, BResult, ErrorInfo};
use napi::bindgen_prelude::Unknown;
use napi::Env;
use napi_derive::napi;

/// A validated loyalty programme: point types, earn rules, bonuses, refund
/// policy. Create it with one of the static constructors; configuration
/// errors throw a `CrmError` with code `config_error` and `field` set to the
/// path of the offending setting.
#[napi]
pub struct Program {
    pub(crate) inner: crm_core::Program,
}

fn load(env: &Env, r: BResult<crm_core::Program>) -> napi::Result<Program> {
    r.map(|inner| Program { inner }).map_err(|f| into_napi(env, f))
}

#[napi]
impl Program {
    /// Parse and validate a programme from JSON text.
    #[napi(catch_unwind, factory, ts_args_type = "text: string")]
    pub fn from_json(env: Env, text: Unknown<'_>) -> napi::Result<Program> {
        load(&env, string(text, "text").and_then(|t| Ok(crm_core::Program::from_json(&t)?)))
    }

    /// Parse and validate a programme from TOML text.
    #[napi(catch_unwind, factory, ts_args_type = "text: string")]
    pub fn from_toml(env: Env, text: Unknown<'_>) -> napi::Result<Program> {
        load(&env, string(text, "text").and_then(|t| Ok(crm_core::Program::from_toml(&t)?)))
    }

    /// Build and validate a programme from a document object (the
    /// configuration schema, snake_case keys as in the JSON files).
    #[napi(catch_unwind, factory, ts_args_type = "document: ProgramConfig")]
    pub fn from_object(env: Env, document: Unknown<'_>) -> napi::Result<Program> {
        let reader = Reader { currency: "" };
        load(&env, reader.read(document, "", Mode::Document).and_then(|v| Ok(crm_core::Program::from_value(v)?)))
    }

    /// Read a programme file: `.toml` is TOML, anything else JSON.
    #[napi(catch_unwind, factory, ts_args_type = "path: string")]
    pub fn from_file(env: Env, path: Unknown<'_>) -> napi::Result<Program> {
        load(&env, string(path, "path").and_then(|p| Ok(crm_core::Program::from_path(p)?)))
    }

    /// The demo programme used by the quick start.
    #[napi(catch_unwind, factory)]
    pub fn default_demo() -> Program {
        Program { inner: crm_core::Program::default_demo() }
    }

    /// The programme document (configuration schema, snake_case keys);
    /// `JSON.stringify(program)` therefore writes a loadable programme file.
    #[napi(catch_unwind, js_name = "toJSON", ts_return_type = "ProgramConfig")]
    pub fn to_json(&self, env: Env) -> napi::Result<JsDocument> {
        serde_json::to_value(&self.inner)
            .map(JsDocument)
            .map_err(|e| crate::errors::to_napi(&env, &ErrorInfo::internal(e.to_string())))
    }

    /// Programme name.
    #[napi(catch_unwind, getter)]
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// ISO 4217 currency of order amounts.
    #[napi(catch_unwind, getter)]
    pub fn currency(&self) -> String {
        self.inner.currency.clone()
    }

    /// Programme time zone (IANA name).
    #[napi(catch_unwind, getter)]
    pub fn timezone(&self) -> String {
        self.inner.timezone.name().to_string()
    }

    /// Ids of the programme's point types.
    #[napi(catch_unwind, getter)]
    pub fn point_types(&self) -> Vec<String> {
        self.inner.point_types.iter().map(|t| t.id.clone()).collect()
    }
}
