//! `crm.Engine`: the loyalty engine over an in-memory, SQLite or PostgreSQL
//! store.
//!
//! Every method converts its arguments, builds the core's `Command` (or calls
//! the core query) and runs it with the GIL released. Command methods take an
//! optional `idempotency_key`; when it is `None` the core's
//! `Command::default_key` is used (`Engine::submit`). Redeem, reverse and
//! adjust require a key.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use crm_core::facts::{OrderItem, RefundScope, ReturnedItem};
use crm_core::member::{Identity, MemberId, Profile, ProfilePatch};
use crm_core::program::Action;
use crm_core::store::postgres::{PostgresOptions, PostgresStore};
use crm_core::store::sqlite::{SqliteOptions, SqliteSettings};
use crm_core::store::Store;
use crm_core::{Command, Order, OrderStatus, Refund};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use serde_json::Value;

use crate::convert::{self, datetime, dict, integer, money, opt_datetime, opt_string, string};
use crate::errors::{detached, invalid, to_py};
use crate::program::PyProgram;
use crate::results::{
    PyBalance, PyExpiring, PyLiability, PyLot, PyMember, PyOutcome, PyOutreachItem, PyStageChange, PyStageView,
    PyStatementEntry, PyStatementPage, PyTierChange, PyTierView, PyTransitionMatrix,
};

/// The core engine as the binding holds it.
pub(crate) type CoreEngine = crm_core::Engine<Arc<dyn Store>>;

/// The loyalty engine. `Engine(program)` keeps everything in memory;
/// `Engine(program, path)` stores it in a SQLite file (created if missing);
/// `Engine.open_postgres(program, url)` in a PostgreSQL schema.
///
/// Every method takes the current time explicitly (`now=`, keyword-only):
/// the engine never reads a clock. Times are timezone-aware `datetime`s or
/// RFC 3339 strings; naive datetimes raise `ValidationError`. Money is
/// `Decimal`, `str` or `int` (a `float` is rounded half away from zero to the
/// currency's minor unit). Engine calls release the GIL.
#[pyclass(frozen, module = "crm", name = "Engine")]
pub struct PyEngine {
    pub(crate) inner: Arc<CoreEngine>,
    store: StoreKind,
}

/// Which store an engine runs on (for `path`, `repr` and `drop_store_schema`).
#[derive(Clone)]
enum StoreKind {
    Memory,
    Sqlite {
        path: String,
    },
    /// The URL is kept (never shown: it may hold a password) so that
    /// `drop_store_schema` can open the connection that drops the schema.
    Postgres {
        url: String,
        schema: String,
        connect_timeout: Option<Duration>,
    },
}

fn program_arg(program: &Bound<'_, PyAny>) -> PyResult<crm_core::Program> {
    let py = program.py();
    Ok(program
        .cast::<PyProgram>()
        .map_err(|_| invalid(py, "program", format!("must be a crm.Program, not {}", convert::type_name(program))))?
        .get()
        .0
        .clone())
}

/// `connect_timeout` in seconds (`int` or `float`, positive and finite).
fn seconds(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Duration> {
    let py = obj.py();
    let value = if obj.is_instance_of::<pyo3::types::PyBool>() { None } else { obj.extract::<f64>().ok() };
    match value {
        Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        Some(_) => Err(invalid(py, field, "must be a number of seconds between 0 (exclusive) and 86400")),
        None => Err(invalid(py, field, format!("must be a number of seconds, not {}", convert::type_name(obj)))),
    }
}

fn member_id(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<MemberId> {
    string(obj, field).map(MemberId)
}

/// The SQLite keyword arguments, as given (`None`: the default).
#[derive(Default)]
struct SqliteArgs<'a, 'py> {
    synchronous: Option<&'a Bound<'py, PyAny>>,
    busy_timeout_ms: Option<&'a Bound<'py, PyAny>>,
    member_cache: Option<&'a Bound<'py, PyAny>>,
    snapshot_every: Option<&'a Bound<'py, PyAny>>,
    checkpoint_bytes: Option<&'a Bound<'py, PyAny>>,
}

impl SqliteArgs<'_, '_> {
    /// Converted here, checked by `SqliteSettings::options` in the core.
    fn options(&self, py: Python<'_>) -> PyResult<SqliteOptions> {
        fn given<'a, 'py>(v: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
            v.filter(|v| !v.is_none())
        }
        let int = |v: Option<&Bound<'_, PyAny>>, field: &str| given(v).map(|v| integer(v, field)).transpose();
        let settings = SqliteSettings {
            synchronous: given(self.synchronous).map(|s| string(s, "synchronous")).transpose()?,
            busy_timeout_ms: int(self.busy_timeout_ms, "busy_timeout_ms")?,
            member_cache: int(self.member_cache, "member_cache")?,
            snapshot_every: int(self.snapshot_every, "snapshot_every")?,
            checkpoint_bytes: int(self.checkpoint_bytes, "checkpoint_bytes")?,
        };
        settings.options().map_err(|e| to_py(py, &e))
    }
}

impl PyEngine {
    fn open(program: &Bound<'_, PyAny>, path: Option<String>, sqlite: &SqliteArgs<'_, '_>) -> PyResult<Self> {
        let py = program.py();
        let program = program_arg(program)?;
        let options = sqlite.options(py)?;
        let store: Arc<dyn Store> = match &path {
            None => Arc::new(crm_core::MemoryStore::new()),
            Some(p) => {
                let p = p.clone();
                Arc::new(detached(py, move || crm_core::SqliteStore::open_with(p, options))?)
            }
        };
        let store_kind = match path {
            None => StoreKind::Memory,
            Some(path) => StoreKind::Sqlite { path },
        };
        Ok(PyEngine { inner: Arc::new(crm_core::Engine::new(program, store)), store: store_kind })
    }

    pub(crate) fn currency(&self) -> &str {
        &self.inner.program().currency
    }

    fn submit(
        &self,
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        command: Command,
        now: &Bound<'_, PyAny>,
    ) -> PyResult<PyOutcome> {
        let key = opt_string(key, "idempotency_key")?;
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        detached(py, move || engine.submit(key.as_deref(), command, now)).map(PyOutcome::new)
    }

    /// Build an order from a dict in the core's field names.
    pub(crate) fn order_from_dict(&self, d: &Bound<'_, PyDict>) -> PyResult<Order> {
        let py = d.py();
        const KNOWN: &[&str] =
            &["id", "member_id", "amount", "placed_at", "paid_at", "status", "channel", "store", "currency", "items"];
        for k in d.keys() {
            let k = string(&k, "order")?;
            if !KNOWN.contains(&k.as_str()) {
                return Err(invalid(py, &format!("order.{k}"), "unknown field"));
            }
        }
        let get = |name: &str| -> PyResult<Option<Bound<'_, PyAny>>> { Ok(d.get_item(name)?.filter(|v| !v.is_none())) };
        let need = |name: &str| -> PyResult<Bound<'_, PyAny>> {
            get(name)?.ok_or_else(|| invalid(py, &format!("order.{name}"), "is required"))
        };
        let status = match get("status")? {
            None => OrderStatus::Paid,
            Some(s) => convert::from_json(py, Value::String(string(&s, "order.status")?), "order.status")?,
        };
        let mut items = Vec::new();
        if let Some(list) = get("items")? {
            let iter = list.try_iter().map_err(|_| invalid(py, "order.items", "must be a list of dicts"))?;
            for (i, item) in iter.enumerate() {
                let item = item?;
                let at = format!("order.items[{i}]");
                items.push(self.order_item(&item, &at)?);
            }
        }
        Ok(Order {
            id: string(&need("id")?, "order.id")?,
            member_id: member_id(&need("member_id")?, "order.member_id")?,
            channel: opt_string(get("channel")?.as_ref(), "order.channel")?,
            store: opt_string(get("store")?.as_ref(), "order.store")?,
            placed_at: datetime(&need("placed_at")?, "order.placed_at")?,
            paid_at: opt_datetime(get("paid_at")?.as_ref(), "order.paid_at")?,
            status,
            amount: money(&need("amount")?, self.currency(), "order.amount")?,
            currency: opt_string(get("currency")?.as_ref(), "order.currency")?,
            items,
        })
    }

    fn order_item(&self, item: &Bound<'_, PyAny>, at: &str) -> PyResult<OrderItem> {
        let py = item.py();
        let d = dict(item, at)?;
        for k in d.keys() {
            let k = string(&k, at)?;
            if !["sku", "category", "qty", "price"].contains(&k.as_str()) {
                return Err(invalid(py, &format!("{at}.{k}"), "unknown field"));
            }
        }
        let need = |name: &str| -> PyResult<Bound<'_, PyAny>> {
            d.get_item(name)?
                .filter(|v| !v.is_none())
                .ok_or_else(|| invalid(py, &format!("{at}.{name}"), "is required"))
        };
        Ok(OrderItem {
            sku: string(&need("sku")?, &format!("{at}.sku"))?,
            category: opt_string(d.get_item("category")?.as_ref(), &format!("{at}.category"))?,
            qty: convert::count(&need("qty")?, &format!("{at}.qty"), u64::from(u32::MAX))? as u32,
            price: money(&need("price")?, self.currency(), &format!("{at}.price"))?,
        })
    }

    fn identity(obj: &Bound<'_, PyAny>, at: &str) -> PyResult<Identity> {
        let py = obj.py();
        if let Ok(d) = obj.cast::<PyDict>() {
            let v = convert::to_json(d.as_any(), at)?;
            return convert::from_json(py, v, at);
        }
        if (obj.is_instance_of::<PyTuple>() || obj.is_instance_of::<PyList>()) && obj.len()? == 2 {
            return Ok(Identity {
                channel: string(&obj.get_item(0)?, &format!("{at}.channel"))?,
                external_id: string(&obj.get_item(1)?, &format!("{at}.external_id"))?,
            });
        }
        Err(invalid(
            py,
            at,
            format!("must be a (channel, external_id) tuple or a dict, not {}", convert::type_name(obj)),
        ))
    }
}

/// Connect a PostgreSQL store (with the GIL released).
fn connect_postgres(
    py: Python<'_>,
    url: &str,
    schema: &str,
    pool_size: usize,
    connect_timeout: Option<Duration>,
) -> PyResult<PostgresStore> {
    let mut options = PostgresOptions::new().schema(schema).pool_size(pool_size);
    if let Some(t) = connect_timeout {
        options = options.connect_timeout(t);
    }
    detached(py, move || PostgresStore::connect_with(url, options))
}

#[pymethods]
impl PyEngine {
    /// Open an engine: in memory when `path` is `None`, else over the SQLite
    /// file at `path` (`str` or `os.PathLike`; created if missing).
    /// SQLite only: `synchronous`, `"full"` (default; every acknowledged
    /// command survives power loss) or `"normal"` (survives a process crash;
    /// the latest commits can be lost on power loss; much faster);
    /// `busy_timeout_ms`, how long to wait for another writer's lock
    /// (default 5000); `member_cache`, how many decoded members to keep in
    /// memory so their reads skip JSON decoding (default 10000; 0: none);
    /// `snapshot_every`, rewrite a member's stored snapshot every so many
    /// events (default 16; 1: on every commit); `checkpoint_bytes`, WAL
    /// bytes between two background checkpoints (default 4 MB, at least
    /// 64 KB; larger for bulk imports). A bad value raises
    /// `ValidationError` naming it.
    #[new]
    #[pyo3(signature = (
        program, path=None, *, synchronous=None, busy_timeout_ms=None, member_cache=None,
        snapshot_every=None, checkpoint_bytes=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        program: &Bound<'_, PyAny>,
        path: Option<&Bound<'_, PyAny>>,
        synchronous: Option<&Bound<'_, PyAny>>,
        busy_timeout_ms: Option<&Bound<'_, PyAny>>,
        member_cache: Option<&Bound<'_, PyAny>>,
        snapshot_every: Option<&Bound<'_, PyAny>>,
        checkpoint_bytes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let path = match path {
            Some(p) if !p.is_none() => Some(convert::path(p, "path")?),
            _ => None,
        };
        let sqlite = SqliteArgs { synchronous, busy_timeout_ms, member_cache, snapshot_every, checkpoint_bytes };
        PyEngine::open(program, path, &sqlite)
    }

    /// An engine over an in-memory store.
    #[staticmethod]
    fn in_memory(program: &Bound<'_, PyAny>) -> PyResult<Self> {
        PyEngine::open(program, None, &SqliteArgs::default())
    }

    /// An engine over the SQLite file at `path` (created if missing); see
    /// `Engine()` for the options.
    #[staticmethod]
    #[pyo3(signature = (
        program, path, *, synchronous=None, busy_timeout_ms=None, member_cache=None,
        snapshot_every=None, checkpoint_bytes=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn open_sqlite(
        program: &Bound<'_, PyAny>,
        path: &Bound<'_, PyAny>,
        synchronous: Option<&Bound<'_, PyAny>>,
        busy_timeout_ms: Option<&Bound<'_, PyAny>>,
        member_cache: Option<&Bound<'_, PyAny>>,
        snapshot_every: Option<&Bound<'_, PyAny>>,
        checkpoint_bytes: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let path = convert::path(path, "path")?;
        let sqlite = SqliteArgs { synchronous, busy_timeout_ms, member_cache, snapshot_every, checkpoint_bytes };
        PyEngine::open(program, Some(path), &sqlite)
    }

    /// An engine over PostgreSQL at `url` (libpq style:
    /// `postgresql://user:password@host:port/dbname`, or `key=value` pairs).
    /// The tables live in `schema` (default `"crm"`; letters, digits and `_`,
    /// not starting with a digit), which is created and migrated as needed;
    /// several engines and processes may share one schema. At most
    /// `pool_size` connections are opened (default 8; calls release the GIL,
    /// so threads run in parallel up to that many). `connect_timeout`
    /// (seconds; default 10 unless the URL sets one) bounds each connection
    /// attempt. TLS follows the URL's `sslmode` (`disable`, `prefer` by
    /// default, `require`, `verify-ca`, `verify-full`), `sslrootcert` (a
    /// PEM file, or `system`) and `sslcert`/`sslkey` (a client certificate)
    /// as in libpq; when every host is a Unix-domain socket (`host=/var/run/postgresql`)
    /// the connection is plain whatever `sslmode` says, as libpq's.
    ///
    /// Raises `StoreError` when the database cannot be reached (a refused
    /// certificate included) or the URL is malformed, `ValidationError` (with
    /// `.field`) for a bad `schema`, `pool_size` or TLS setting.
    #[staticmethod]
    #[pyo3(
        signature = (program, url, *, schema=None, pool_size=None, connect_timeout=None),
        text_signature = "(program, url, *, schema='crm', pool_size=8, connect_timeout=None)"
    )]
    fn open_postgres(
        program: &Bound<'_, PyAny>,
        url: &Bound<'_, PyAny>,
        schema: Option<&Bound<'_, PyAny>>,
        pool_size: Option<&Bound<'_, PyAny>>,
        connect_timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let py = program.py();
        let program = program_arg(program)?;
        let url = string(url, "url")?;
        let schema = match schema {
            Some(s) => string(s, "schema")?,
            None => PostgresOptions::new().schema,
        };
        let pool_size = match pool_size {
            Some(n) => match integer(n, "pool_size")? {
                n @ 1..=1024 => n as usize,
                _ => return Err(invalid(py, "pool_size", "must be 1-1024")),
            },
            None => PostgresOptions::new().pool_size,
        };
        let connect_timeout = match connect_timeout.filter(|t| !t.is_none()) {
            Some(t) => Some(seconds(t, "connect_timeout")?),
            None => None,
        };
        let store = connect_postgres(py, &url, &schema, pool_size, connect_timeout)?;
        Ok(PyEngine {
            inner: Arc::new(crm_core::Engine::new(program, Arc::new(store) as Arc<dyn Store>)),
            store: StoreKind::Postgres { url, schema, connect_timeout },
        })
    }

    /// PostgreSQL engines only: drop the engine's schema with all its data
    /// (for tests and tear-downs). The engine is unusable afterwards; other
    /// engines on the same schema lose their tables too. Raises `Conflict`
    /// on an engine that is not backed by PostgreSQL.
    fn drop_store_schema(&self, py: Python<'_>) -> PyResult<()> {
        let StoreKind::Postgres { url, schema, connect_timeout } = &self.store else {
            return Err(to_py(
                py,
                &crm_core::CrmError::Conflict {
                    reason: "drop_store_schema needs an engine opened with Engine.open_postgres".into(),
                },
            ));
        };
        // `PostgresStore::drop_schema` takes the store by value and the
        // engine shares its store, so the drop runs on a connection of its own.
        let store = connect_postgres(py, url, schema, 1, *connect_timeout)?;
        detached(py, move || store.drop_schema())
    }

    /// The programme the engine runs.
    #[getter]
    fn program(&self) -> PyProgram {
        PyProgram(self.inner.program().clone())
    }

    /// An engine over this engine's store under another programme, as a
    /// host gets by opening the store again with a changed programme (an
    /// in-memory store cannot be opened again). Its first `run_due` derives
    /// every member's wake-up again under `program` (see `reschedule`).
    /// Stop running `run_due` on this engine afterwards: two engines under
    /// different programmes on one store would each derive them again at
    /// every run.
    #[pyo3(signature = (program))]
    fn with_program(&self, program: &Bound<'_, PyAny>) -> PyResult<PyEngine> {
        let program = program_arg(program)?;
        Ok(PyEngine { inner: Arc::new(self.inner.with_program(program)), store: self.store.clone() })
    }

    /// The SQLite file, or `None` for an in-memory or PostgreSQL engine.
    #[getter]
    fn path(&self) -> Option<&str> {
        match &self.store {
            StoreKind::Sqlite { path } => Some(path),
            _ => None,
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let name = crate::results::pystr(py, &self.inner.program().name);
        match &self.store {
            StoreKind::Sqlite { path } => format!("Engine(program={name}, path={})", crate::results::pystr(py, path)),
            StoreKind::Memory => format!("Engine(program={name}, in_memory=True)"),
            StoreKind::Postgres { schema, .. } => {
                format!("Engine(program={name}, store='postgres', schema={})", crate::results::pystr(py, schema))
            }
        }
    }

    // ----- generic --------------------------------------------------------

    /// Execute a command given in the core's serde form (a dict tagged by
    /// `type`, e.g. `{"type": "redeem", "member_id": "m1", "point_type":
    /// "reward", "points": 100}`) under idempotency key `key`.
    #[pyo3(signature = (key, command, now))]
    fn execute(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        command: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
    ) -> PyResult<PyOutcome> {
        let key = string(key, "idempotency_key")?;
        let value = convert::to_json(dict(command, "command")?.as_any(), "command")?;
        let command: Command = convert::from_json(py, value, "command")?;
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        detached(py, move || engine.execute(&key, command, now)).map(PyOutcome::new)
    }

    // ----- members --------------------------------------------------------

    /// Create a member. `profile` is a dict of profile fields (`name`,
    /// `phone`, `email`, `birthday`, `gender`, `region`, `joined_at`,
    /// `join_channel`, `timezone`, `attributes`); `identities` a list of
    /// `(channel, external_id)` tuples or dicts; `consents` maps channel to bool.
    #[pyo3(signature = (member_id, *, now, profile=None, identities=None, tags=None, consents=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn create_member(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        profile: Option<&Bound<'_, PyAny>>,
        identities: Option<&Bound<'_, PyAny>>,
        tags: Option<&Bound<'_, PyAny>>,
        consents: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let member_id = self::member_id(member_id, "member_id")?;
        let profile: Profile = match profile.filter(|p| !p.is_none()) {
            None => Profile::default(),
            Some(p) => {
                let v = convert::to_json(dict(p, "profile")?.as_any(), "profile")?;
                convert::from_json(py, v, "profile")?
            }
        };
        let mut ids = Vec::new();
        if let Some(list) = identities.filter(|p| !p.is_none()) {
            if list.is_instance_of::<PyString>() || list.is_instance_of::<PyDict>() {
                return Err(invalid(py, "identities", "must be a list"));
            }
            let iter = list.try_iter().map_err(|_| invalid(py, "identities", "must be a list"))?;
            for (i, item) in iter.enumerate() {
                ids.push(PyEngine::identity(&item?, &format!("identities[{i}]"))?);
            }
        }
        let tags = match tags.filter(|p| !p.is_none()) {
            None => Vec::new(),
            Some(t) => convert::strings(t, "tags")?,
        };
        let mut consent_map = BTreeMap::new();
        if let Some(c) = consents.filter(|p| !p.is_none()) {
            for (k, v) in dict(c, "consents")?.iter() {
                let channel = string(&k, "consents")?;
                let granted = convert::boolean(&v, &format!("consents.{channel}"))?;
                consent_map.insert(channel, granted);
            }
        }
        let command = Command::CreateMember { member_id, profile, identities: ids, tags, consents: consent_map };
        self.submit(py, idempotency_key, command, now)
    }

    /// Update profile fields: keys set in `patch` are changed, `clear` lists
    /// fields to remove, `attributes` are merged (a `None` value removes a key).
    #[pyo3(signature = (member_id, patch, *, now, idempotency_key=None))]
    fn update_profile(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        patch: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let member_id = self::member_id(member_id, "member_id")?;
        let v = convert::to_json(dict(patch, "patch")?.as_any(), "patch")?;
        let patch: ProfilePatch = convert::from_json(py, v, "patch")?;
        self.submit(py, idempotency_key, Command::UpdateProfile { member_id, patch }, now)
    }

    /// Link an identity (channel account) to a member.
    #[pyo3(signature = (member_id, channel, external_id, *, now, idempotency_key=None))]
    fn link_identity(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        channel: &Bound<'_, PyAny>,
        external_id: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::LinkIdentity {
            member_id: self::member_id(member_id, "member_id")?,
            identity: Identity {
                channel: string(channel, "channel")?,
                external_id: string(external_id, "external_id")?,
            },
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Unlink an identity from a member.
    #[pyo3(signature = (member_id, channel, external_id, *, now, idempotency_key=None))]
    fn unlink_identity(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        channel: &Bound<'_, PyAny>,
        external_id: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::UnlinkIdentity {
            member_id: self::member_id(member_id, "member_id")?,
            identity: Identity {
                channel: string(channel, "channel")?,
                external_id: string(external_id, "external_id")?,
            },
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Add a tag (no-op when present).
    #[pyo3(signature = (member_id, tag, *, now, idempotency_key=None))]
    fn add_tag(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        tag: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::AddTag { member_id: self::member_id(member_id, "member_id")?, tag: string(tag, "tag")? };
        self.submit(py, idempotency_key, command, now)
    }

    /// Remove a tag (no-op when absent).
    #[pyo3(signature = (member_id, tag, *, now, idempotency_key=None))]
    fn remove_tag(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        tag: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command =
            Command::RemoveTag { member_id: self::member_id(member_id, "member_id")?, tag: string(tag, "tag")? };
        self.submit(py, idempotency_key, command, now)
    }

    /// Grant or withdraw marketing consent for a channel.
    #[pyo3(signature = (member_id, channel, granted, *, now, idempotency_key=None))]
    fn set_consent(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        channel: &Bound<'_, PyAny>,
        granted: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::SetConsent {
            member_id: self::member_id(member_id, "member_id")?,
            channel: string(channel, "channel")?,
            granted: convert::boolean(granted, "granted")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Merge member `merged` into `survivor` (lots, orders and identities move).
    #[pyo3(signature = (survivor, merged, *, now, idempotency_key=None))]
    fn merge(
        &self,
        py: Python<'_>,
        survivor: &Bound<'_, PyAny>,
        merged: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::Merge {
            survivor: self::member_id(survivor, "survivor")?,
            merged: self::member_id(merged, "merged")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Erase a member's personal data (the anonymised ledger stays).
    #[pyo3(signature = (member_id, *, now, idempotency_key=None))]
    fn erase(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::Erase { member_id: self::member_id(member_id, "member_id")? };
        self.submit(py, idempotency_key, command, now)
    }

    // ----- facts ----------------------------------------------------------

    /// Record an order, given as a dict (`order`) or as keyword fields.
    /// Fields: `id`, `member_id`, `amount`, `placed_at` (required), `paid_at`,
    /// `status` (`"placed"`, `"paid"` (default), `"completed"`, `"cancelled"`),
    /// `channel`, `store`, `currency`, `items` (dicts with `sku`, `qty`,
    /// `price`, optional `category`). Default key: `order:<id>`.
    #[pyo3(signature = (order=None, *, now, idempotency_key=None, id=None, member_id=None, amount=None, placed_at=None, paid_at=None, status=None, channel=None, store=None, currency=None, items=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_order(
        &self,
        py: Python<'_>,
        order: Option<&Bound<'_, PyAny>>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
        id: Option<&Bound<'_, PyAny>>,
        member_id: Option<&Bound<'_, PyAny>>,
        amount: Option<&Bound<'_, PyAny>>,
        placed_at: Option<&Bound<'_, PyAny>>,
        paid_at: Option<&Bound<'_, PyAny>>,
        status: Option<&Bound<'_, PyAny>>,
        channel: Option<&Bound<'_, PyAny>>,
        store: Option<&Bound<'_, PyAny>>,
        currency: Option<&Bound<'_, PyAny>>,
        items: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let fields = [
            ("id", id),
            ("member_id", member_id),
            ("amount", amount),
            ("placed_at", placed_at),
            ("paid_at", paid_at),
            ("status", status),
            ("channel", channel),
            ("store", store),
            ("currency", currency),
            ("items", items),
        ];
        let given = fields.iter().any(|(_, v)| v.is_some());
        let order = match order.filter(|o| !o.is_none()) {
            Some(o) if given => {
                let _ = o;
                return Err(invalid(py, "order", "pass either an order dict or keyword fields, not both"));
            }
            Some(o) => self.order_from_dict(dict(o, "order")?)?,
            None => {
                let d = PyDict::new(py);
                for (k, v) in fields {
                    if let Some(v) = v {
                        d.set_item(k, v)?;
                    }
                }
                self.order_from_dict(&d)?
            }
        };
        self.submit(py, idempotency_key, Command::RecordOrder { order }, now)
    }

    /// Change an order's status (`placed` -> `paid` earns, cancelling a paid
    /// order claws back). `at` is the effective time (default `now`).
    #[pyo3(signature = (order_id, status, *, now, at=None, idempotency_key=None))]
    fn set_order_status(
        &self,
        py: Python<'_>,
        order_id: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let status: OrderStatus = convert::from_json(py, Value::String(string(status, "status")?), "status")?;
        let command =
            Command::SetOrderStatus { order_id: string(order_id, "order_id")?, status, at: opt_datetime(at, "at")? };
        self.submit(py, idempotency_key, command, now)
    }

    /// Record a refund: `amount` (money) or `items` (list of `(sku, qty)`
    /// tuples or `{"sku", "qty"}` dicts), or neither for a full refund.
    /// Default key: `refund:<refund_id>`.
    #[pyo3(signature = (refund_id, order_id, *, at, now, amount=None, items=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_refund(
        &self,
        py: Python<'_>,
        refund_id: &Bound<'_, PyAny>,
        order_id: &Bound<'_, PyAny>,
        at: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        amount: Option<&Bound<'_, PyAny>>,
        items: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let amount = amount.filter(|a| !a.is_none());
        let items = items.filter(|a| !a.is_none());
        let scope = match (amount, items) {
            (Some(_), Some(_)) => return Err(invalid(py, "items", "give either amount or items, not both")),
            (Some(a), None) => RefundScope::Amount { amount: money(a, self.currency(), "amount")? },
            (None, Some(list)) => {
                let iter = list.try_iter().map_err(|_| invalid(py, "items", "must be a list"))?;
                let mut out = Vec::new();
                for (i, item) in iter.enumerate() {
                    let item = item?;
                    let at = format!("items[{i}]");
                    let (sku, qty) = if let Ok(d) = item.cast::<PyDict>() {
                        let sku = d.get_item("sku")?.ok_or_else(|| invalid(py, &format!("{at}.sku"), "is required"))?;
                        let qty = d.get_item("qty")?.ok_or_else(|| invalid(py, &format!("{at}.qty"), "is required"))?;
                        (sku, qty)
                    } else if (item.is_instance_of::<PyTuple>() || item.is_instance_of::<PyList>()) && item.len()? == 2
                    {
                        (item.get_item(0)?, item.get_item(1)?)
                    } else {
                        return Err(invalid(py, &at, "must be a (sku, qty) tuple or a dict"));
                    };
                    out.push(ReturnedItem {
                        sku: string(&sku, &format!("{at}.sku"))?,
                        qty: convert::count(&qty, &format!("{at}.qty"), u64::from(u32::MAX))? as u32,
                    });
                }
                RefundScope::Items { items: out }
            }
            (None, None) => RefundScope::Full,
        };
        let refund = Refund {
            id: string(refund_id, "refund_id")?,
            order_id: string(order_id, "order_id")?,
            at: datetime(at, "at")?,
            scope,
        };
        self.submit(py, idempotency_key, Command::RecordRefund { refund }, now)
    }

    /// Report an action that may earn a bonus (`"review"`, `"sign_up"`,
    /// `"first_order"`, `"profile_completed"` or a custom name); `reference`
    /// identifies the occurrence (e.g. the review id).
    #[pyo3(signature = (member_id, action, reference, *, now, idempotency_key=None))]
    fn record_action(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        action: &Bound<'_, PyAny>,
        reference: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let action: Action = convert::from_json(py, Value::String(string(action, "action")?), "action")?;
        let command = Command::RecordAction {
            member_id: self::member_id(member_id, "member_id")?,
            action,
            reference: string(reference, "reference")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Record an engagement event: a browse, favourite, add-to-cart (`kind`
    /// `"browse"`, `"favourite"`, `"add_to_cart"`, or a host-defined kind)
    /// for cart-abandonment outreach and segments. `at` is the effective time
    /// (default `now`); `sku` and `reference` are optional references.
    /// Outcome type `member`. Default key: a hash of the content.
    #[pyo3(signature = (member_id, kind, *, now, at=None, sku=None, reference=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_engagement(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        sku: Option<&Bound<'_, PyAny>>,
        reference: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::RecordEngagement {
            member_id: self::member_id(member_id, "member_id")?,
            kind: string(kind, "kind")?,
            at: opt_datetime(at, "at")?,
            sku: opt_string(sku, "sku")?,
            reference: opt_string(reference, "reference")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    // ----- coupons --------------------------------------------------------

    /// Issue a coupon of the programme's template `template` to the member,
    /// under a fresh code from the operating system's random source. With
    /// `for_points=True` the template's points price is redeemed in the same
    /// atomic command (`InsufficientPointsError` when short). Outcome type
    /// `coupon_issued` (`.code`, `.template`, `.valid_from`, `.expires_at`,
    /// `.points`, `.redemption_id`). Default key `coupon:<code>`; a retry under
    /// the same `idempotency_key` returns the first coupon.
    #[pyo3(signature = (member_id, template, *, now, for_points=false, reason=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn issue_coupon(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        template: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        for_points: bool,
        reason: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let id = self::member_id(member_id, "member_id")?;
        let template = string(template, "template")?;
        let reason = opt_string(reason, "reason")?;
        let key = opt_string(idempotency_key, "idempotency_key")?;
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        detached(py, move || engine.issue_coupon(key.as_deref(), &id, &template, for_points, reason, now))
            .map(PyOutcome::new)
    }

    /// Use the member's coupon `code` (as typed: case, spaces and dashes do
    /// not matter) on their recorded order `order_id`: checks validity,
    /// channel, categories and minimum spend, and computes the discount.
    /// One coupon per order; the same coupon on the same order again returns
    /// the first result. Outcome type `coupon_redeemed` (`.discount`, `.cost`
    /// as `Decimal`). Default key `coupon_order:<order_id>`.
    #[pyo3(signature = (member_id, code, order_id, *, now, idempotency_key=None))]
    fn redeem_coupon(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        code: &Bound<'_, PyAny>,
        order_id: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::RedeemCoupon {
            member_id: self::member_id(member_id, "member_id")?,
            code: string(code, "code")?,
            order_id: string(order_id, "order_id")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Withdraw an unused coupon; points paid for it go back to the member.
    /// Outcome type `coupon_revoked` (`.points` returned).
    #[pyo3(signature = (member_id, code, *, reason, now, idempotency_key=None))]
    fn revoke_coupon(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        code: &Bound<'_, PyAny>,
        reason: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::RevokeCoupon {
            member_id: self::member_id(member_id, "member_id")?,
            code: string(code, "code")?,
            reason: string(reason, "reason")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// The member's coupons, soonest expiry first: dicts with `code`,
    /// `template`, `status` (`"issued"`, `"redeemed"`, `"expired"`,
    /// `"revoked"` at `now`), `issued_at`, `valid_from`, `expires_at`, and
    /// `redeemed` (`order_id`, `at`, `discount`) / `revoked` when so.
    #[pyo3(signature = (member_id, *, now))]
    fn coupons<'py>(
        &self,
        py: Python<'py>,
        member_id: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::member_id(member_id, "member_id")?;
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        let list = detached(py, move || engine.coupons(&id, now))?;
        let value = serde_json::to_value(&list).map_err(|e| crate::errors::internal(py, e))?;
        report_to_py(py, None, &value)
    }

    /// What checkout can offer for `cart` (a dict: `amount`, optional
    /// `channel`, optional `items` with `sku`, `category`, `qty`, `price`):
    /// `coupons` that apply, best first (`code`, `template`, `discount`,
    /// `benefit`, `expires_at`), `not_applicable` with the reason, `best`
    /// (a code or None), `amount_after_coupon`, and `points` (`point_type`,
    /// `available`, `max_points`, `value`): at most the programme's share of
    /// the amount after the coupon, at `value_per_point`.
    #[pyo3(signature = (member_id, cart, *, now))]
    fn quote<'py>(
        &self,
        py: Python<'py>,
        member_id: &Bound<'py, PyAny>,
        cart: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = self::member_id(member_id, "member_id")?;
        let cart: crm_core::coupon::Cart =
            crate::convert::from_json(py, crate::convert::to_json(cart, "cart")?, "cart")?;
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        let quote = detached(py, move || engine.quote(&id, &cart, now))?;
        let value = serde_json::to_value(&quote).map_err(|e| crate::errors::internal(py, e))?;
        report_to_py(py, None, &value)
    }

    /// Issue one coupon of `template` to every member matching `rule` at
    /// `now`. Each member's issue is keyed by `batch` and the member, so a
    /// re-run of the same batch issues nothing twice. Returns `{"issued":
    /// [(member_id, code), ...], "skipped": n, "exhausted": bool}` (skipped:
    /// over the template's per-member limit; exhausted: the template's total
    /// limit or budget ran out and the remaining members got none).
    #[pyo3(signature = (batch, rule, template, *, now))]
    fn issue_coupons_to_segment<'py>(
        &self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
        rule: &Bound<'py, PyAny>,
        template: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let batch = string(batch, "batch")?;
        let rule = crate::analytics::rule_arg(rule, "rule")?;
        let template = string(template, "template")?;
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        let done = detached(py, move || engine.issue_coupons_to_segment(&batch, &rule, &template, now))?;
        let d = PyDict::new(py);
        let issued: Vec<(String, String)> = done.issued.into_iter().map(|(m, c)| (m.0, c)).collect();
        d.set_item("issued", issued)?;
        d.set_item("skipped", done.skipped)?;
        d.set_item("exhausted", done.exhausted)?;
        Ok(d)
    }

    /// How much of coupon template `template`'s programme-wide stock and
    /// budget is taken: a dict with `template`, `issued` (issued and not
    /// revoked), `total_limit`, `remaining`, `committed` (their face value,
    /// `Decimal`), `budget`, `budget_remaining` (None where the template has
    /// no such limit).
    #[pyo3(signature = (template))]
    fn coupon_usage<'py>(&self, py: Python<'py>, template: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let template = string(template, "template")?;
        let engine = self.inner.clone();
        let usage = detached(py, move || engine.coupon_usage(&template))?;
        let value = serde_json::to_value(&usage).map_err(|e| crate::errors::internal(py, e))?;
        report_to_py(py, None, &value)
    }

    // ----- service and feedback records ----------------------------------

    /// Record a contact with customer service: `channel` (`"phone"`,
    /// `"chat"`, ...), the host's `topic` code (not free text), when it
    /// started and (optionally) ended. Idempotent by `contact_id`: the same
    /// contact again returns the first result, other content under the same
    /// id raises `ConflictError`. Outcome type `contact_recorded`. Default
    /// key `contact:<contact_id>`.
    #[pyo3(signature = (member_id, contact_id, *, channel, topic, started_at, now, ended_at=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_contact(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        contact_id: &Bound<'_, PyAny>,
        channel: &Bound<'_, PyAny>,
        topic: &Bound<'_, PyAny>,
        started_at: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        ended_at: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::RecordContact {
            member_id: self::member_id(member_id, "member_id")?,
            contact_id: string(contact_id, "contact_id")?,
            channel: string(channel, "channel")?,
            topic: string(topic, "topic")?,
            started_at: datetime(started_at, "started_at")?,
            ended_at: opt_datetime(ended_at, "ended_at")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Open an after-sales ticket of `kind` (the host's code: `"return"`,
    /// `"complaint"`, ...) at `at` (default `now`), optionally for an order
    /// and with a free-text `subject` (removed on erasure). Outcome type
    /// `ticket` (`.status`, `.resolution_minutes`). Default key `ticket:<id>`.
    #[pyo3(signature = (member_id, ticket_id, kind, *, now, at=None, order_id=None, subject=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_ticket(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        ticket_id: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        order_id: Option<&Bound<'_, PyAny>>,
        subject: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::OpenTicket {
            member_id: self::member_id(member_id, "member_id")?,
            ticket_id: string(ticket_id, "ticket_id")?,
            kind: string(kind, "kind")?,
            at: opt_datetime(at, "at")?,
            order_id: opt_string(order_id, "order_id")?,
            subject: opt_string(subject, "subject")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Move a ticket to `status` (`"open"`, `"in_progress"`,
    /// `"waiting_customer"`, `"resolved"`, `"closed"`) at `at` (default
    /// `now`). A move the status table does not allow raises
    /// `ValidationError` on `status`; a time before the ticket's last change
    /// on `at`; the status it already has changes nothing. Reopening (to
    /// `"open"`) clears the resolution. Outcome type `ticket` with
    /// `.resolution_minutes` once resolved or closed.
    #[pyo3(signature = (member_id, ticket_id, status, *, now, at=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn update_ticket(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        ticket_id: &Bound<'_, PyAny>,
        status: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let status = convert::from_json(py, Value::String(string(status, "status")?), "status")?;
        let command = Command::UpdateTicket {
            member_id: self::member_id(member_id, "member_id")?,
            ticket_id: string(ticket_id, "ticket_id")?,
            status,
            at: opt_datetime(at, "at")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Record a review rated 1-5 (`text` is removed on erasure). It earns
    /// the programme's `review` bonuses (`.awarded` per point type).
    /// Idempotent by `review_id`. Outcome type `review_recorded`. Default key
    /// `review:<review_id>`.
    #[pyo3(signature = (member_id, review_id, rating, *, now, text=None, sku=None, order_id=None, at=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_review(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        review_id: &Bound<'_, PyAny>,
        rating: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        text: Option<&Bound<'_, PyAny>>,
        sku: Option<&Bound<'_, PyAny>>,
        order_id: Option<&Bound<'_, PyAny>>,
        at: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::RecordReview {
            member_id: self::member_id(member_id, "member_id")?,
            review_id: string(review_id, "review_id")?,
            rating: integer(rating, "rating")?,
            text: opt_string(text, "text")?,
            sku: opt_string(sku, "sku")?,
            order_id: opt_string(order_id, "order_id")?,
            at: opt_datetime(at, "at")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// Record a survey answer: `kind` `"csat"` (score 1-5) or `"nps"`
    /// (0-10), optionally for a ticket, with a `comment` (removed on
    /// erasure). Idempotent by `survey_id`. Outcome type `survey_recorded`.
    /// Default key `survey:<survey_id>`.
    #[pyo3(signature = (member_id, survey_id, kind, score, *, now, at=None, ticket_id=None, comment=None, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn record_survey(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        survey_id: &Bound<'_, PyAny>,
        kind: &Bound<'_, PyAny>,
        score: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        ticket_id: Option<&Bound<'_, PyAny>>,
        comment: Option<&Bound<'_, PyAny>>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let kind = convert::from_json(py, Value::String(string(kind, "kind")?), "kind")?;
        let command = Command::RecordSurvey {
            member_id: self::member_id(member_id, "member_id")?,
            survey_id: string(survey_id, "survey_id")?,
            kind,
            score: integer(score, "score")?,
            at: opt_datetime(at, "at")?,
            ticket_id: opt_string(ticket_id, "ticket_id")?,
            comment: opt_string(comment, "comment")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    /// The member's records (following merges): a dict of `contacts`,
    /// `tickets` (with `status`, `history`, `resolved_at`, `closed_at`,
    /// `reopened`), `reviews` and `surveys`, each keyed by id; times are
    /// aware datetimes.
    fn feedback<'py>(&self, py: Python<'py>, member_id: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let id = self::member_id(member_id, "member_id")?;
        let engine = self.inner.clone();
        let f = detached(py, move || engine.feedback(&id))?;
        let value = serde_json::to_value(&f).map_err(|e| crate::errors::internal(py, e))?;
        feedback_to_py(py, &value)
    }

    /// Service quality from the facts up to `at`: CSAT, NPS and review
    /// ratings `overall` and `by_tier`, `by_stage`, `by_segment` (one row per
    /// entry of `segments`, a dict of name -> rule: a `crm.Rule`, its text or
    /// JSON), and ticket resolution times (`tickets_overall`,
    /// `tickets_by_kind`). Answers, reviews and resolutions count in
    /// `(from_, at]`. Rows are flat dicts with `Decimal` figures, so
    /// `pandas.DataFrame(report["by_tier"])` is a table.
    #[pyo3(signature = (*, at, from_=None, segments=None))]
    fn feedback_report<'py>(
        &self,
        py: Python<'py>,
        at: &Bound<'py, PyAny>,
        from_: Option<&Bound<'py, PyAny>>,
        segments: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let at = datetime(at, "at")?;
        let from = opt_datetime(from_, "from")?;
        let mut named = Vec::new();
        if let Some(seg) = segments.filter(|s| !s.is_none()) {
            for (name, rule) in dict(seg, "segments")?.iter() {
                let name = string(&name, "segments")?;
                let rule = crate::analytics::rule_arg(&rule, &format!("segments.{name}"))?;
                named.push((name, rule));
            }
        }
        let engine = self.inner.clone();
        let report = detached(py, move || engine.feedback_report(from, at, &named))?;
        let value = serde_json::to_value(&report).map_err(|e| crate::errors::internal(py, e))?;
        report_to_py(py, None, &value)
    }

    // ----- tiers ----------------------------------------------------------

    /// Put a member in tier `tier` by hand until `until` (after `now`); then
    /// the metric decides again. Upgrades above it still apply. `reason` and
    /// `actor` (1-500 characters) are recorded in the tier history. Outcome
    /// type `tier` (`.member_id`, `.tier`, `.until`). Default key: a hash of
    /// the content. Raises `ValidationError` with field `tier` for a tier the
    /// ladder does not have (or a programme without tiers), `until` when it
    /// is not after `now`.
    #[pyo3(signature = (member_id, tier, *, until, reason, actor, now, idempotency_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn assign_tier(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        tier: &Bound<'_, PyAny>,
        until: &Bound<'_, PyAny>,
        reason: &Bound<'_, PyAny>,
        actor: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        let command = Command::AssignTier {
            member_id: self::member_id(member_id, "member_id")?,
            tier: string(tier, "tier")?,
            until: datetime(until, "until")?,
            reason: string(reason, "reason")?,
            actor: string(actor, "actor")?,
        };
        self.submit(py, idempotency_key, command, now)
    }

    // ----- points ---------------------------------------------------------

    /// Spend points. The idempotency key is required and is also the
    /// redemption id.
    #[pyo3(signature = (member_id, points, *, point_type, now, idempotency_key, reason=None))]
    #[allow(clippy::too_many_arguments)]
    fn redeem(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        points: &Bound<'_, PyAny>,
        point_type: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: &Bound<'_, PyAny>,
        reason: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        string(idempotency_key, "idempotency_key")?;
        let command = Command::Redeem {
            member_id: self::member_id(member_id, "member_id")?,
            point_type: string(point_type, "point_type")?,
            points: integer(points, "points")?,
            reason: opt_string(reason, "reason")?,
        };
        self.submit(py, Some(idempotency_key), command, now)
    }

    /// Put back the points of a redemption (key required).
    #[pyo3(signature = (member_id, redemption_id, *, now, idempotency_key))]
    fn reverse_redemption(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        redemption_id: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: &Bound<'_, PyAny>,
    ) -> PyResult<PyOutcome> {
        string(idempotency_key, "idempotency_key")?;
        let command = Command::ReverseRedemption {
            member_id: self::member_id(member_id, "member_id")?,
            redemption_id: string(redemption_id, "redemption_id")?,
        };
        self.submit(py, Some(idempotency_key), command, now)
    }

    /// Manual adjustment: a positive `delta` grants a lot, a negative one
    /// takes points (key required; `reason` and `actor` are recorded).
    #[pyo3(signature = (member_id, point_type, delta, *, reason, actor, now, idempotency_key))]
    #[allow(clippy::too_many_arguments)]
    fn adjust(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        point_type: &Bound<'_, PyAny>,
        delta: &Bound<'_, PyAny>,
        reason: &Bound<'_, PyAny>,
        actor: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        idempotency_key: &Bound<'_, PyAny>,
    ) -> PyResult<PyOutcome> {
        string(idempotency_key, "idempotency_key")?;
        let command = Command::Adjust {
            member_id: self::member_id(member_id, "member_id")?,
            point_type: string(point_type, "point_type")?,
            delta: integer(delta, "delta")?,
            reason: string(reason, "reason")?,
            actor: string(actor, "actor")?,
        };
        self.submit(py, Some(idempotency_key), command, now)
    }

    /// Scheduled work due at `now`, for every member: activate pending lots,
    /// expire lots, tier reviews (and ends of grace periods and manual
    /// assignments), lifecycle stage changes, then triggered outreach.
    /// The outcome (type `due`) has `members`, `activated`, `expired`,
    /// `tier_changes`, `stage_changes`, `outreach` (a list of `OutreachItem`s
    /// for the host to send), `outreach_count` and `suppressed`. Default key
    /// `run_due:<now>`; idempotent: a repeated run for the same `now` returns
    /// the stored counts with `outreach == []`, so nothing is handed out twice.
    /// The first run under a changed programme first derives every member's
    /// next wake-up again under it (see `reschedule`).
    #[pyo3(signature = (now, *, idempotency_key=None))]
    fn run_due(
        &self,
        py: Python<'_>,
        now: &Bound<'_, PyAny>,
        idempotency_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyOutcome> {
        self.submit(py, idempotency_key, Command::run_due(), now)
    }

    /// Derive every member's next wake-up again under this engine's
    /// programme and write the members whose next due instant changes; returns
    /// how many were written. The store does not keep the programme, so after
    /// a change (a trigger added, other stage thresholds) the wake-ups in it
    /// were derived under the old one: `run_due` calls this by itself at its
    /// first run under a changed programme. Call it right after a deploy so
    /// that run does not pay for the scan of every member. Under a changed
    /// tier ladder, members who qualify for a higher tier move up now, and
    /// those in a tier the ladder no longer has go to the one they qualify
    /// for (downgrades wait for the review).
    #[pyo3(signature = (now))]
    fn reschedule(&self, py: Python<'_>, now: &Bound<'_, PyAny>) -> PyResult<u64> {
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        detached(py, move || engine.reschedule(now))
    }

    // ----- bulk -----------------------------------------------------------

    /// Record many orders (dicts, as for `record_order`) in one atomic
    /// commit. Returns one entry per order, in order: an `Outcome`, or the
    /// `CrmError` instance that order raised (a bad order does not stop the others).
    #[pyo3(signature = (orders, *, now))]
    fn record_orders<'py>(
        &self,
        py: Python<'py>,
        orders: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let now = datetime(now, "now")?;
        if orders.is_instance_of::<PyString>() || orders.is_instance_of::<PyDict>() {
            return Err(invalid(py, "orders", "must be a list of dicts"));
        }
        let iter = orders.try_iter().map_err(|_| invalid(py, "orders", "must be a list of dicts"))?;
        let mut slots: Vec<Result<usize, PyErr>> = Vec::new();
        let mut batch = Vec::new();
        for (i, item) in iter.enumerate() {
            let item = item?;
            match dict(&item, &format!("orders[{i}]")).and_then(|d| self.order_from_dict(d)) {
                Ok(o) => {
                    slots.push(Ok(batch.len()));
                    batch.push(o);
                }
                Err(e) => slots.push(Err(e)),
            }
        }
        let engine = self.inner.clone();
        let results = detached(py, move || engine.record_orders(&batch, now))?;
        let out = PyList::empty(py);
        for slot in slots {
            match slot {
                Ok(i) => match &results[i] {
                    Ok(o) => out.append(Py::new(py, PyOutcome::new(o.clone()))?)?,
                    Err(e) => out.append(to_py(py, e).value(py))?,
                },
                Err(e) => out.append(e.value(py))?,
            }
        }
        Ok(out)
    }

    /// Import orders from a DataFrame: pandas, polars, a pyarrow Table, any
    /// object with the Arrow C stream interface (`__arrow_c_stream__`), or a
    /// dict of equal-length column lists.
    ///
    /// Columns: `member_id`, `order_id`, `placed_at`, `amount` (required);
    /// `paid_at`, `status`, `channel`, `store`, `currency` (optional); other
    /// columns are ignored. `columns` maps these names to the frame's own
    /// (e.g. `{"order_id": "InvoiceNo"}`). Times: timezone-aware timestamp
    /// columns, or aware `datetime`s / RFC 3339 strings; a naive timestamp
    /// column raises `ValidationError` (field = the column) before anything
    /// is imported. Amounts follow the single-call money rule (floats are
    /// rounded half away from zero to the currency's minor unit; NaN and
    /// infinities reject the row). Rows are imported in atomic batches of
    /// `batch_size` orders (default 100: the fastest in measurements
    /// with the in-memory store); a bad row is rejected with its position, code,
    /// field and message and does not stop the others.
    #[pyo3(signature = (frame, *, now, batch_size=None, columns=None))]
    fn import_orders(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        batch_size: Option<&Bound<'_, PyAny>>,
        columns: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<crate::frames::PyImportResult> {
        let now = datetime(now, "now")?;
        let batch_size = match batch_size.filter(|b| !b.is_none()) {
            Some(b) => convert::count(b, "batch_size", 1_000_000)?,
            None => 100,
        };
        if batch_size == 0 {
            return Err(invalid(py, "batch_size", "must be 1-1000000"));
        }
        crate::errors::guarded(py, || crate::frames::import_orders(self, py, frame, now, batch_size as usize, columns))
    }

    /// Balances of one point type for every member that is not merged away
    /// (sorted by member id) at `at`, as a DataFrame with columns
    /// `member_id`, `status` (`"active"` or `"erased"`), `available`,
    /// `pending`, `debt`, `total`. `backend`: `"pandas"` (default),
    /// `"polars"`, `"pyarrow"` or `"dict"`; `None` means `"pandas"`.
    #[pyo3(signature = (point_type, *, at, backend=None))]
    fn balances_frame<'py>(
        &self,
        py: Python<'py>,
        point_type: &Bound<'py, PyAny>,
        at: &Bound<'py, PyAny>,
        backend: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let point_type = string(point_type, "point_type")?;
        let at = datetime(at, "at")?;
        crate::errors::guarded(py, || crate::frames::balances_frame(self, py, point_type, at, backend))
    }

    // ----- queries --------------------------------------------------------

    /// The stored member record (merged and erased members included).
    fn member(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>) -> PyResult<PyMember> {
        let id = self::member_id(member_id, "member_id")?;
        let engine = self.inner.clone();
        detached(py, move || engine.member(&id)).map(PyMember)
    }

    /// The member that now owns `member_id` (following merges).
    fn resolve(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>) -> PyResult<PyMember> {
        let id = self::member_id(member_id, "member_id")?;
        let engine = self.inner.clone();
        detached(py, move || engine.resolve(&id)).map(PyMember)
    }

    /// The member's state as of instant `at`, rebuilt from its events.
    fn member_as_of(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>, at: &Bound<'_, PyAny>) -> PyResult<PyMember> {
        let id = self::member_id(member_id, "member_id")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.member_as_of(&id, at)).map(PyMember)
    }

    /// The member id an identity belongs to, or `None`.
    fn find_by_identity(
        &self,
        py: Python<'_>,
        channel: &Bound<'_, PyAny>,
        external_id: &Bound<'_, PyAny>,
    ) -> PyResult<Option<String>> {
        let identity =
            Identity { channel: string(channel, "channel")?, external_id: string(external_id, "external_id")? };
        let engine = self.inner.clone();
        detached(py, move || engine.find_by_identity(&identity)).map(|o| o.map(|m| m.0))
    }

    /// Balance of a point type at `at` (now or any past instant; follows merges).
    #[pyo3(signature = (member_id, point_type, *, at))]
    fn balance(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        point_type: &Bound<'_, PyAny>,
        at: &Bound<'_, PyAny>,
    ) -> PyResult<PyBalance> {
        let id = self::member_id(member_id, "member_id")?;
        let point_type = string(point_type, "point_type")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.balance(&id, &point_type, at)).map(PyBalance)
    }

    /// Open lots of a member (all point types), soonest expiry first; with
    /// `at`, as of that instant (from the events up to it).
    #[pyo3(signature = (member_id, *, at=None))]
    fn lots(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<PyLot>> {
        let id = self::member_id(member_id, "member_id")?;
        let at = opt_datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || match at {
            Some(at) => engine.lots_at(&id, at),
            None => engine.lots(&id),
        })
        .map(|v| v.into_iter().map(PyLot).collect())
    }

    /// One page of the member's statement for a point type, oldest first.
    /// The page is iterable; `next_offset` is `None` on the last page.
    #[pyo3(signature = (member_id, point_type, *, offset=None, limit=None))]
    fn statement(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        point_type: &Bound<'_, PyAny>,
        offset: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyStatementPage> {
        let id = self::member_id(member_id, "member_id")?;
        let point_type = string(point_type, "point_type")?;
        let offset = match offset {
            Some(o) if !o.is_none() => convert::count(o, "offset", u64::from(u32::MAX))? as usize,
            _ => 0,
        };
        let limit = match limit {
            Some(l) if !l.is_none() => convert::count(l, "limit", u64::from(u32::MAX))? as usize,
            _ => 100,
        };
        let engine = self.inner.clone();
        detached(py, move || engine.statement(&id, &point_type, offset, limit)).map(PyStatementPage)
    }

    /// Iterate the whole statement, fetching `page_size` entries at a time.
    #[pyo3(signature = (member_id, point_type, *, page_size=None))]
    fn iter_statement(
        &self,
        member_id: &Bound<'_, PyAny>,
        point_type: &Bound<'_, PyAny>,
        page_size: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<StatementIterator> {
        let page_size = match page_size {
            Some(p) if !p.is_none() => convert::count(p, "page_size", 10_000)? as usize,
            _ => 1000,
        };
        if page_size == 0 {
            return Err(invalid(member_id.py(), "page_size", "must be 1-10000"));
        }
        Ok(StatementIterator {
            engine: self.inner.clone(),
            member_id: self::member_id(member_id, "member_id")?,
            point_type: string(point_type, "point_type")?,
            page_size,
            state: std::sync::Mutex::new((Some(0), VecDeque::new())),
        })
    }

    /// Points of a type expiring in `(now, now + days]`, bucketed by instant.
    #[pyo3(signature = (member_id, point_type, *, now, days))]
    fn expiring(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        point_type: &Bound<'_, PyAny>,
        now: &Bound<'_, PyAny>,
        days: &Bound<'_, PyAny>,
    ) -> PyResult<PyExpiring> {
        let id = self::member_id(member_id, "member_id")?;
        let point_type = string(point_type, "point_type")?;
        let now: DateTime<Utc> = datetime(now, "now")?;
        let days = convert::count(days, "days", u64::from(u32::MAX))? as u32;
        let engine = self.inner.clone();
        detached(py, move || engine.expiring(&id, &point_type, now, days)).map(PyExpiring)
    }

    /// Programme-wide outstanding points and their money value at `at`.
    #[pyo3(signature = (*, at))]
    fn liability(&self, py: Python<'_>, at: &Bound<'_, PyAny>) -> PyResult<PyLiability> {
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.liability(at)).map(PyLiability)
    }

    // ----- tiers and lifecycle stages ----------------------------------------

    /// The member's tier at `at` (follows merges) with its benefits, progress
    /// to the next tier (`.next`) and to keeping this one at the next review
    /// (`.retain`). Raises `ValidationError` (field `tiers`) when the
    /// programme has no tier ladder.
    #[pyo3(signature = (member_id, *, at))]
    fn tier(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>, at: &Bound<'_, PyAny>) -> PyResult<PyTierView> {
        let id = self::member_id(member_id, "member_id")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.tier(&id, at)).map(PyTierView)
    }

    /// Every tier change (and confirmation at a review) of the member, oldest
    /// first (follows merges).
    fn tier_history(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>) -> PyResult<Vec<PyTierChange>> {
        let id = self::member_id(member_id, "member_id")?;
        let engine = self.inner.clone();
        detached(py, move || engine.tier_history(&id)).map(|v| v.into_iter().map(PyTierChange).collect())
    }

    /// Members per tier at `at`, as a dict `{tier id: count}` in ladder order
    /// (every tier listed; merged-away records not counted). Raises
    /// `ValidationError` (field `tiers`) when the programme has no tier ladder.
    #[pyo3(signature = (*, at))]
    fn tier_distribution<'py>(&self, py: Python<'py>, at: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        let mut counts = detached(py, move || engine.tier_distribution(at))?;
        let d = PyDict::new(py);
        let ladder = self.inner.program().tiers.as_ref().map(|l| l.levels.as_slice()).unwrap_or_default();
        for t in ladder {
            if let Some(n) = counts.remove(&t.id) {
                d.set_item(&t.id, n)?;
            }
        }
        for (k, n) in counts {
            d.set_item(k, n)?;
        }
        Ok(d)
    }

    /// The member's lifecycle stage at `at` (follows merges). Works without
    /// `lifecycle` in the programme (default thresholds; `.since` is then `None`).
    #[pyo3(signature = (member_id, *, at))]
    fn stage(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>, at: &Bound<'_, PyAny>) -> PyResult<PyStageView> {
        let id = self::member_id(member_id, "member_id")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.stage(&id, at)).map(PyStageView)
    }

    /// The members matching a segment rule (a `crm.Rule`, its text or its
    /// JSON form) at `at`, sorted by id. Raises `RuleError` for a rule that
    /// cannot be read.
    #[pyo3(signature = (rule, *, at))]
    fn segment(&self, py: Python<'_>, rule: &Bound<'_, PyAny>, at: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let rule = crate::analytics::rule_arg(rule, "rule")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.segment(&rule, at)).map(|v| v.into_iter().map(|m| m.0).collect())
    }

    /// Does the member match the rule at `at`? Call it after a fact to react
    /// in real time.
    #[pyo3(signature = (member_id, rule, *, at))]
    fn matches(
        &self,
        py: Python<'_>,
        member_id: &Bound<'_, PyAny>,
        rule: &Bound<'_, PyAny>,
        at: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let id = self::member_id(member_id, "member_id")?;
        let rule = crate::analytics::rule_arg(rule, "rule")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        detached(py, move || engine.matches(&id, &rule, at))
    }

    /// Re-evaluate a saved segment (a dict `{"id", "rule", "members",
    /// "evaluated_at"}` as a previous call returned it; `members` empty the
    /// first time) at `at`. Returns `{"segment": <the dict to keep>,
    /// "changes": [{"segment_id", "member_id", "entered", "at"}]}`; each change
    /// is also recorded on the member for the `segment_entered` outreach
    /// trigger. Safe to repeat.
    #[pyo3(signature = (segment, *, at))]
    fn refresh_segment<'py>(
        &self,
        py: Python<'py>,
        segment: &Bound<'py, PyAny>,
        at: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let json = convert::to_json(segment, "segment")?;
        let mut seg: crm_core::segment::SavedSegment = convert::from_json(py, json, "segment")?;
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        let (seg, changes) = detached(py, move || {
            let changes = engine.refresh_segment(&mut seg, at)?;
            Ok((seg, changes))
        })?;
        convert::serde_to_py(py, &serde_json::json!({ "segment": seg, "changes": changes }))
    }

    /// Programme reports at `at`, as a dict: `members`, `buyers`,
    /// `repurchase_rate`, `liability` (outstanding points and value,
    /// `expiring` within 30/60/90 days, lifetime `earned`/`redeemed`/`expired`,
    /// `breakage_rate`, `breakage_points`, `breakage_value`), `cohorts`
    /// (retention by first-order month: `month`, `members`, `retained`,
    /// `rates`) and `channels` (single- vs multi-channel buyers and their
    /// spend, members per channel). Money and rates are `Decimal`, `at` an
    /// aware datetime.
    #[pyo3(signature = (*, at))]
    fn report<'py>(&self, py: Python<'py>, at: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        let report = detached(py, move || engine.report(at))?;
        let value = serde_json::to_value(&report).map_err(|e| crate::errors::internal(py, e))?;
        report_to_py(py, None, &value)
    }

    /// The outreach items the `run_due` at `now` emitted, again (with
    /// channel and payload): for a host that crashed after the run committed
    /// but before it sent them. A repeated `run_due` for the same `now`
    /// hands nothing out; this does. A full scan, meant for recovery.
    #[pyo3(signature = (*, now))]
    fn outreach_of_run(&self, py: Python<'_>, now: &Bound<'_, PyAny>) -> PyResult<Vec<PyOutreachItem>> {
        let now = datetime(now, "now")?;
        let engine = self.inner.clone();
        detached(py, move || engine.outreach_of_run(now)).map(|v| v.into_iter().map(PyOutreachItem).collect())
    }

    /// Every recorded stage transition of the member, oldest first (follows merges).
    fn stage_history(&self, py: Python<'_>, member_id: &Bound<'_, PyAny>) -> PyResult<Vec<PyStageChange>> {
        let id = self::member_id(member_id, "member_id")?;
        let engine = self.inner.clone();
        detached(py, move || engine.stage_history(&id)).map(|v| v.into_iter().map(PyStageChange).collect())
    }

    /// Members per lifecycle stage at `at`, as a dict `{stage: count}` with
    /// every stage listed, in the order `prospect`, `new`, `active`,
    /// `reactivated`, `at_risk`, `dormant`, `churned`.
    #[pyo3(signature = (*, at))]
    fn stage_distribution<'py>(&self, py: Python<'py>, at: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        let at = datetime(at, "at")?;
        let engine = self.inner.clone();
        let mut counts = detached(py, move || engine.stage_distribution(at))?;
        let d = PyDict::new(py);
        for stage in crm_core::lifecycle::Stage::ALL {
            d.set_item(stage.as_str(), counts.remove(&stage).unwrap_or(0))?;
        }
        for (stage, n) in counts {
            d.set_item(stage.as_str(), n)?;
        }
        Ok(d)
    }

    /// How members moved between lifecycle stages from instant `from_` to
    /// instant `to` (`from_` because `from` is a Python keyword; the result's
    /// `to_dict()` uses the core's `from`/`to`). Raises `ValidationError`
    /// (field `to`) when `to` is before `from_`.
    #[pyo3(signature = (*, from_, to))]
    fn stage_transitions(
        &self,
        py: Python<'_>,
        from_: &Bound<'_, PyAny>,
        to: &Bound<'_, PyAny>,
    ) -> PyResult<PyTransitionMatrix> {
        let from = datetime(from_, "from_")?;
        let to = datetime(to, "to")?;
        let engine = self.inner.clone();
        detached(py, move || engine.stage_transitions(from, to)).map(PyTransitionMatrix)
    }

    /// The data of the visual report at `at` (see `ReportPage`): stage
    /// flows from `flows_from` (default: 12 months before `flows_to`) to
    /// `flows_to` (default: `at`). Raises `ValidationError` (field
    /// `flows_to`) when the window ends before it starts.
    #[pyo3(signature = (*, at, flows_from = None, flows_to = None))]
    fn report_page(
        &self,
        py: Python<'_>,
        at: &Bound<'_, PyAny>,
        flows_from: Option<&Bound<'_, PyAny>>,
        flows_to: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<crate::report::PyReportPage> {
        let options = crate::report::page_options(at, flows_from, flows_to)?;
        let engine = self.inner.clone();
        detached(py, move || engine.report_page(&options)).map(crate::report::PyReportPage)
    }

    /// The visual report at `at` as one self-contained HTML document (inline
    /// SVG charts, no network access): `lang` `"en"` or `"zh"`; `whatif` a
    /// what-if comparison (dict or JSON text) adds its section.
    #[pyo3(signature = (*, at, lang = "en", flows_from = None, flows_to = None, whatif = None))]
    fn report_html(
        &self,
        py: Python<'_>,
        at: &Bound<'_, PyAny>,
        lang: &str,
        flows_from: Option<&Bound<'_, PyAny>>,
        flows_to: Option<&Bound<'_, PyAny>>,
        whatif: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let lang = crate::report::lang_arg(py, lang)?;
        let whatif = crate::report::whatif_arg(whatif)?;
        let options = crate::report::page_options(at, flows_from, flows_to)?;
        let engine = self.inner.clone();
        detached(py, move || {
            let page = engine.report_page(&options)?;
            Ok(crm_core::report::render_html(&page, lang, whatif.as_ref()))
        })
    }

    /// Write `report_html(...)` to `path` (UTF-8).
    #[pyo3(signature = (path, *, at, lang = "en", flows_from = None, flows_to = None, whatif = None))]
    #[allow(clippy::too_many_arguments)]
    fn write_report(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        at: &Bound<'_, PyAny>,
        lang: &str,
        flows_from: Option<&Bound<'_, PyAny>>,
        flows_to: Option<&Bound<'_, PyAny>>,
        whatif: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let path = convert::path(path, "path")?;
        let html = self.report_html(py, at, lang, flows_from, flows_to, whatif)?;
        py.detach(|| std::fs::write(&path, html)).map_err(PyErr::from)
    }

    /// Measure a campaign from the facts known at `at`; a `CampaignReport`
    /// (`to_frame()` / `uplift_frame()` give DataFrames). `campaign` is a
    /// dict: `id`, `audience` (`{"rule": text or JSON form}` or
    /// `{"segment": saved segment id}`), `seed` (int, 0 to 2**64-1),
    /// `holdout` (share held out, `Decimal` or `str` in [0, 1)), `starts_at`,
    /// `ends_at`, optional `attribution_days`, `repurchase_days` and `cost`
    /// (`points_per_member`, `points_reason`, `value_per_point`,
    /// `coupon_value`). Raises `ValidationError` naming the field
    /// (`campaign.holdout`, `at`, ...).
    #[pyo3(signature = (campaign, *, at))]
    fn campaign_report(
        &self,
        py: Python<'_>,
        campaign: &Bound<'_, PyAny>,
        at: &Bound<'_, PyAny>,
    ) -> PyResult<crate::campaign::PyCampaignReport> {
        crate::campaign::campaign_report(self, py, campaign, at)
    }

    /// The campaign's audience at its start split into `{"treatment": [...],
    /// "control": [...]}` (sorted member ids): whom to send to and whom to
    /// hold out, the split `campaign_report` measures.
    fn campaign_members<'py>(&self, py: Python<'py>, campaign: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        crate::campaign::campaign_members(self, py, campaign)
    }
}

/// Iterator over every entry of a statement, fetched page by page.
#[pyclass(frozen, module = "crm", name = "StatementIterator")]
pub struct StatementIterator {
    engine: Arc<CoreEngine>,
    member_id: MemberId,
    point_type: String,
    page_size: usize,
    /// Next offset to fetch (`None` after the last page) and buffered entries.
    state: std::sync::Mutex<(Option<usize>, VecDeque<crm_core::StatementEntry>)>,
}

#[pymethods]
impl StatementIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyStatementEntry>> {
        // Waiting for the lock releases the GIL, so a second thread iterating the
        // same iterator cannot deadlock with the detached fetch below.
        let mut state = self.state.lock_py_attached(py).unwrap_or_else(|p| p.into_inner());
        if state.1.is_empty() {
            let Some(offset) = state.0 else {
                return Ok(None);
            };
            let (engine, id, pt, limit) =
                (self.engine.clone(), self.member_id.clone(), self.point_type.clone(), self.page_size);
            let page = detached(py, move || engine.statement(&id, &pt, offset, limit))?;
            state.0 = page.next_offset;
            state.1.extend(page.entries);
        }
        Ok(state.1.pop_front().map(PyStatementEntry))
    }
}

/// A report's JSON as plain Python values, with money and rates as
/// `Decimal` and `at` as a datetime (the keys say which strings are which).
pub(crate) fn report_to_py<'py>(py: Python<'py>, key: Option<&str>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    values_to_py(py, key, v, &TIMES)
}

/// Feedback records: as [`report_to_py`], but `from`/`to` are the statuses
/// of a ticket's history, not instants.
fn feedback_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    values_to_py(py, None, v, &TIMES[2..])
}

// `from`/`to`: the stage-flow window of the report page; then coupons;
// `started_at` .. `closed_at`: feedback records.
const TIMES: [&str; 11] = [
    "from",
    "to",
    "at",
    "issued_at",
    "valid_from",
    "expires_at",
    "started_at",
    "ended_at",
    "opened_at",
    "resolved_at",
    "closed_at",
];

/// JSON to Python with `Decimal`s and aware datetimes by key (`times`).
fn values_to_py<'py>(py: Python<'py>, key: Option<&str>, v: &Value, times: &[&str]) -> PyResult<Bound<'py, PyAny>> {
    const DECIMALS: [&str; 23] = [
        "value",
        "breakage_rate",
        "breakage_value",
        "spend",
        "average_spend",
        "repurchase_rate",
        "rates",
        "active_share",
        "discount",
        "amount_after_coupon",
        "amount",
        "percent",
        "cap",
        "min_spend",
        "committed",
        "budget",
        "budget_remaining",
        "csat_mean",
        "csat_satisfied_pct",
        "nps",
        "rating_mean",
        "mean_minutes",
        "median_minutes",
    ];
    match v {
        Value::String(s) if key.is_some_and(|k| times.contains(&k)) => {
            let t: DateTime<Utc> = s.parse().map_err(|e| crate::errors::internal(py, e))?;
            convert::time_to_py(py, &t)
        }
        Value::String(s) if key.is_some_and(|k| DECIMALS.contains(&k)) => {
            let d: rust_decimal::Decimal = s.parse().map_err(|e| crate::errors::internal(py, e))?;
            convert::decimal_to_py(py, &d)
        }
        Value::Array(a) => {
            let list = PyList::empty(py);
            for item in a {
                list.append(values_to_py(py, key, item, times)?)?;
            }
            Ok(list.into_any())
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, item) in o {
                // `by_channel` is keyed by the host's channel names.
                d.set_item(k, values_to_py(py, Some(k.as_str()), item, times)?)?;
            }
            Ok(d.into_any())
        }
        other => convert::json_to_py(py, other),
    }
}
