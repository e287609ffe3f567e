//! Store adapters the binding can open.

use std::sync::Arc;
use std::time::Duration;

use crm_core::store::postgres::{PostgresOptions, PostgresStore};
use crm_core::store::sqlite::SqliteSettings;
use crm_core::{CrmError, SqliteStore, Store};

/// Open (or create) a SQLite database file; `":memory:"` opens a private
/// in-memory database.
pub fn open_sqlite(path: &str, settings: &SqliteSettings) -> Result<Arc<dyn Store>, CrmError> {
    let options = settings.options()?;
    let store =
        if path == ":memory:" { SqliteStore::open_in_memory()? } else { SqliteStore::open_with(path, options)? };
    Ok(Arc::new(store))
}

/// Where a PostgreSQL engine's tables live, kept by the engine so that
/// `dropStoreSchema` can open the connection that drops them (the URL may
/// hold a password: it is never shown).
#[derive(Clone)]
pub struct PostgresTarget {
    pub url: String,
    pub schema: String,
    pub pool_size: usize,
    pub connect_timeout: Option<Duration>,
}

impl PostgresTarget {
    /// Connect (creating and migrating the schema as needed).
    pub fn connect(&self) -> Result<PostgresStore, CrmError> {
        let mut options = PostgresOptions::new().schema(self.schema.as_str()).pool_size(self.pool_size);
        if let Some(t) = self.connect_timeout {
            options = options.connect_timeout(t);
        }
        PostgresStore::connect_with(&self.url, options)
    }

    /// Drop the schema and everything in it, over a connection of its own
    /// (`PostgresStore::drop_schema` takes the store by value, and the engine
    /// shares its store).
    pub fn drop_schema(&self) -> Result<(), CrmError> {
        PostgresTarget { pool_size: 1, ..self.clone() }.connect()?.drop_schema()
    }
}
