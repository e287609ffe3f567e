//! Node.js bindings for the crm loyalty engine.

use napi_derive::napi;

/// Version of the crm engine bindings.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
