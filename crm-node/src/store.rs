//! Store adapters the binding can open.

use std::sync::Arc;
use std::time::Duration;

use crm_core::store::sqlite::{SqliteOptions, Synchronous};
use crm_core::{CrmError, SqliteStore, Store};

/// Open (or create) a SQLite database file; `":memory:"` opens a private
/// in-memory database.
pub fn open_sqlite(
    path: &str,
    synchronous: Option<&str>,
    busy_timeout_ms: Option<u64>,
) -> Result<Arc<dyn Store>, CrmError> {
    let mut options = SqliteOptions::new();
    match synchronous {
        None | Some("full") => {}
        Some("normal") => options = options.synchronous(Synchronous::Normal),
        Some(other) => {
            return Err(CrmError::Validation {
                field: "synchronous".into(),
                reason: format!("must be \"full\" or \"normal\", got {other:?}"),
            })
        }
    }
    if let Some(ms) = busy_timeout_ms {
        options = options.busy_timeout(Duration::from_millis(ms));
    }
    let store =
        if path == ":memory:" { SqliteStore::open_in_memory()? } else { SqliteStore::open_with(path, options)? };
    Ok(Arc::new(store))
}
