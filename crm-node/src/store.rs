//! Store adapters the binding can open.

use std::sync::Arc;

use crm_core::{CrmError, Store};

/// Open (or create) a SQLite database file.
pub fn open_sqlite(path: &str) -> Result<Arc<dyn Store>, CrmError> {
    // TODO(sqlite): switch to crm_core::SqliteStore::open(path) once it lands.
    let _ = path;
    Ok(Arc::new(crm_core::MemoryStore::new()))
}
