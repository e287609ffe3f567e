//! PostgreSQL store: one database shared by several application servers.
//!
//! Enabled by the `postgres` cargo feature. It keeps the same layout and the
//! same guarantees as the [SQLite store](super::sqlite): JSON snapshots and
//! events, identities, order owners and receipts, a member's version equal to
//! the number of its events, and every [`Commit`] applied in one transaction
//! or not at all.
//!
//! ```no_run
//! use crm_core::store::postgres::{PostgresOptions, PostgresStore};
//! use crm_core::{Engine, Program};
//!
//! // Tables live in the schema `crm` (created on first use).
//! let store = PostgresStore::connect("postgresql://app@db.internal:5432/shop").unwrap();
//! // Or in a schema of its own, with at most 16 pooled connections.
//! let store = PostgresStore::connect_with(
//!     "postgresql://app@db.internal:5432/shop",
//!     PostgresOptions::new().schema("loyalty_eu").pool_size(16),
//! )
//! .unwrap();
//! let engine = Engine::new(Program::default_demo(), store);
//! ```
//!
//! # Layout
//!
//! | table                   | key                      | holds                             |
//! |-------------------------|--------------------------|-----------------------------------|
//! | `members`               | `id`                     | version, JSON snapshot, `next_due` (indexed) |
//! | `events`                | `(member_id, seq)`       | the member's JSON events          |
//! | `identities`            | `(channel, external_id)` | owning member                     |
//! | `orders`                | `order_id`               | owning member                     |
//! | `receipts`              | `seq` (bigserial), `key` unique | the JSON [`Receipt`]       |
//! | `crm_schema_migrations` | `version`                | applied migrations                |
//!
//! JSON is kept as `text`, byte for byte what serde wrote, which every
//! PostgreSQL-compatible engine stores the same way.
//!
//! # Connections
//!
//! A [`PostgresStore`] owns a small pool of its own (at most
//! [`PostgresOptions::pool_size`] connections, opened on demand, each with its
//! prepared statements cached). A caller that finds every connection busy
//! waits for one. A connection that fails or is left inside a transaction
//! (a panic mid-commit) is closed instead of being reused, and the server
//! rolls its transaction back.
//!
//! Connections use TLS as the URL's `sslmode` and `sslrootcert` say, with
//! libpq's meanings: `prefer` (the default) encrypts when the server
//! offers it, `require` always, and neither checks the server's
//! certificate unless `sslrootcert` is given; `verify-ca` checks that the
//! certificate chains to `sslrootcert` (a PEM file, or `system` for the
//! operating system's trusted certificates) and `verify-full` also that it
//! names the host. `sslcert` and `sslkey` (PEM files, given together) are a
//! client certificate and its key, presented when the server asks for one.
//! A bad `sslmode` or an unreadable file is an invalid-input error naming
//! the setting. As in libpq, a Unix-domain socket (`host=/var/run/postgresql`,
//! or the directory percent-encoded as a URL's host) is never encrypted,
//! whatever `sslmode` says. For example
//! `postgresql://crm@db.example.com/shop?sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-ca.pem`.
//!
//! # Concurrency and durability
//!
//! Each commit is one `READ COMMITTED` transaction. The member writes come
//! first, as conditional statements (`UPDATE … WHERE version = expected`,
//! `INSERT … ON CONFLICT DO UPDATE … WHERE version = 0`): they take the row
//! locks, and a writer that waited for another one re-checks the version
//! against the committed row, so a stale decision changes nothing and the
//! commit is refused with [`CommitError::Stale`]. Identity claims lock the
//! identity row (or insert it) before comparing owners, so two members cannot
//! both claim one identity. Receipts go through the unique index on `key`
//! (`ON CONFLICT DO NOTHING`), which waits for a concurrent writer of the same
//! key and reports [`CommitError::DuplicateKey`]. A deadlock or serialisation
//! failure reported by the server is mapped to [`CommitError::Stale`], which
//! the engine retries.
//!
//! A commit returns only after the server's `COMMIT`; with the server's
//! default `synchronous_commit = on` the transaction is then flushed to the
//! server's WAL. A client killed mid-commit leaves nothing behind: the server
//! rolls the open transaction back.
//!
//! Large commits (an import through `Engine::record_orders`) are written with
//! one statement per table, passing the rows as arrays (`unnest`), so a batch
//! of a thousand orders costs a handful of round trips.
//!
//! # Schema versions
//!
//! Migrations are applied in order, in one transaction, under an advisory
//! lock per schema (so servers starting together do not race), and recorded
//! in `crm_schema_migrations`. A schema written by a newer build is refused.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

mod tls;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Commit, CommitError, Receipt, Store, Tally, Versioned, VersionedTally};
use crate::error::CrmError;
use crate::member::{Identity, MemberId};
use crate::state::{Event, MemberState};

/// Schema migrations, applied in order. Entry `i` moves the schema from
/// version `i` to `i + 1`. Never edit a shipped entry; append.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "
    CREATE TABLE members (
        id      text   NOT NULL PRIMARY KEY,
        version bigint NOT NULL CHECK (version >= 0),
        state   text   NOT NULL,
        -- MemberState::next_due_at in microseconds since the epoch.
        next_due bigint
    );
    CREATE INDEX members_by_next_due ON members (next_due) WHERE next_due IS NOT NULL;
    CREATE TABLE events (
        member_id text   NOT NULL REFERENCES members (id),
        seq       bigint NOT NULL CHECK (seq >= 1),
        event     text   NOT NULL,
        PRIMARY KEY (member_id, seq)
    );
    CREATE TABLE identities (
        channel     text NOT NULL,
        external_id text NOT NULL,
        member_id   text NOT NULL,
        PRIMARY KEY (channel, external_id)
    );
    CREATE TABLE orders (
        order_id  text NOT NULL PRIMARY KEY,
        member_id text NOT NULL
    );
    CREATE TABLE receipts (
        seq       bigserial PRIMARY KEY,
        key       text NOT NULL UNIQUE,
        member_id text,
        body      text NOT NULL
    );
    CREATE INDEX receipts_by_member ON receipts (member_id);
    ",
    // 2: programme-wide tallies (coupons of a template issued in total and
    // the face value they commit), versioned like members.
    "
    CREATE TABLE tallies (
        key     text   NOT NULL PRIMARY KEY,
        version bigint NOT NULL CHECK (version >= 1),
        count   bigint NOT NULL,
        amount  text   NOT NULL
    );
    ",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Rows fetched per connection checkout by [`Store::scan`] and [`Store::receipts`].
const CHUNK: i64 = 256;

/// How to connect a [`PostgresStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema holding the tables, created if missing (default `crm`).
    /// Letters, digits and `_`, not starting with a digit, at most 63 bytes.
    pub schema: String,
    /// At most this many connections (default 8).
    pub pool_size: usize,
    /// Timeout for opening a connection, unless the URL sets one (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { schema: "crm".into(), pool_size: 8, connect_timeout: Duration::from_secs(10) }
    }
}

impl PostgresOptions {
    /// The defaults: schema `crm`, 8 connections, 10 s connect timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the schema.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Set the maximum number of connections (at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Set the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// One pooled connection and its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
    /// Set while a transaction is open; a connection dropped in that state is
    /// closed rather than pooled.
    in_tx: bool,
}

impl Conn {
    /// The prepared statement for `sql`, prepared once per connection.
    fn stmt(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }

    fn query(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>, CrmError> {
        let s = self.stmt(sql).map_err(db)?;
        self.client.query(&s, params).map_err(db)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<postgres::Row>, CrmError> {
        let s = self.stmt(sql).map_err(db)?;
        self.client.query_opt(&s, params).map_err(db)
    }

    fn execute(&mut self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error> {
        let s = self.stmt(sql)?;
        self.client.execute(&s, params)
    }
}

struct PoolState {
    idle: Vec<Conn>,
    /// Connections in existence (idle or checked out).
    open: usize,
}

struct Pool {
    config: postgres::Config,
    /// Makes each connection's TLS session (see [`tls`]).
    tls: MakeRustlsConnect,
    schema: String,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

/// A checked-out connection, returned to the pool on drop.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<Conn>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("leased connection")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("leased connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let conn = self.conn.take();
        let mut state = self.pool.lock();
        match conn {
            Some(c) if !c.in_tx && !c.client.is_closed() => state.idle.push(c),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self) -> Result<Lease<'_>, CrmError> {
        let mut state = self.lock();
        loop {
            while let Some(c) = state.idle.pop() {
                if c.client.is_closed() {
                    state.open -= 1;
                    continue;
                }
                return Ok(Lease { pool: self, conn: Some(c) });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.open() {
                    Ok(c) => Ok(Lease { pool: self, conn: Some(c) }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.freed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn open(&self) -> Result<Conn, CrmError> {
        let mut client = self
            .config
            .connect(self.tls.clone())
            .map_err(|e| CrmError::Store(format!("postgres: cannot connect: {}", describe(&e))))?;
        client.batch_execute(&format!("SET search_path TO {}", quote(&self.schema))).map_err(db)?;
        Ok(Conn { client, statements: HashMap::new(), in_tx: false })
    }
}

/// A [`Store`] over one PostgreSQL schema (see the [module docs](self)).
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.pool.config.get_hosts())
            .field("dbname", &self.pool.config.get_dbname())
            .field("schema", &self.pool.schema)
            .field("pool_size", &self.pool.size)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect with the default options (schema `crm`), creating and
    /// migrating the schema as needed. `url` is a libpq-style URL
    /// (`postgresql://user:password@host:port/db`) or key/value string;
    /// its `sslmode` (`disable`, `prefer` — the default —, `require`,
    /// `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or
    /// `system`), `sslcert` and `sslkey` mean what they mean to libpq (see the module docs,
    /// "Connections").
    pub fn connect(url: &str) -> Result<PostgresStore, CrmError> {
        PostgresStore::connect_with(url, PostgresOptions::default())
    }

    /// Connect with the given options.
    pub fn connect_with(url: &str, options: PostgresOptions) -> Result<PostgresStore, CrmError> {
        check_schema_name(&options.schema)?;
        let (url, tls) = tls::split(url)?;
        let (ssl_mode, tls) = tls::connector(&tls)?;
        let mut config: postgres::Config =
            url.parse().map_err(|e| CrmError::Store(format!("postgres: invalid connection URL: {}", describe(&e))))?;
        config.ssl_mode(if only_unix_sockets(&config) { postgres::config::SslMode::Disable } else { ssl_mode });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("crm-core");
        }
        let store = PostgresStore {
            pool: Pool {
                config,
                tls,
                schema: options.schema,
                size: options.pool_size.max(1),
                state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
                freed: Condvar::new(),
            },
        };
        store.migrate()?;
        Ok(store)
    }

    /// The schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.pool.schema
    }

    /// Drop the schema with everything in it and close the connections.
    /// Meant for tests and tear-downs; the data is gone.
    pub fn drop_schema(self) -> Result<(), CrmError> {
        let mut conn = self.pool.get()?;
        conn.client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&self.pool.schema))).map_err(db)
    }

    /// Create the schema if needed and bring it up to [`SCHEMA_VERSION`].
    fn migrate(&self) -> Result<(), CrmError> {
        let mut conn = self.pool.get()?;
        let schema = quote(&self.pool.schema);
        let known = MIGRATIONS.len() as i32;
        let mut tx = conn.client.transaction().map_err(db)?;
        // Serialise migrations of this schema across processes; released at
        // the end of the transaction.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('crm-core migrate ' || $1))", &[&self.pool.schema])
            .map_err(db)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.crm_schema_migrations (
                 version    integer     NOT NULL PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .map_err(db)?;
        let current: i32 = tx
            .query_one(&format!("SELECT coalesce(max(version), 0) FROM {schema}.crm_schema_migrations"), &[])
            .map_err(db)?
            .get(0);
        if current > known {
            return Err(CrmError::Store(format!(
                "postgres: schema {} is at version {current}, newer than this build supports ({known}); \
                 upgrade crm-core to open it",
                self.pool.schema
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(&format!("SET LOCAL search_path TO {schema}; {sql}"))
                .map_err(|e| CrmError::Store(format!("postgres: migration {} failed: {}", i + 1, describe(&e))))?;
            tx.execute(
                &format!("INSERT INTO {schema}.crm_schema_migrations (version) VALUES ($1)"),
                &[&(i as i32 + 1)],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }
}

/// Schema names are spliced into SQL (they cannot be parameters), so only
/// plain identifiers are accepted.
fn check_schema_name(name: &str) -> Result<(), CrmError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(CrmError::invalid(
            "schema",
            format!("{name:?} is not a plain identifier (letters, digits and _, not starting with a digit, at most 63 bytes)"),
        ))
    }
}

/// Whether every host of `config` is a Unix-domain socket (a directory).
/// libpq never uses TLS on such a socket, whatever `sslmode` says (the
/// server does not offer it there): the store connects plainly too, where
/// rust-postgres would ask for TLS and, with `sslmode=require`, fail with
/// "server does not support TLS" on a URL that works with `psql`.
fn only_unix_sockets(config: &postgres::Config) -> bool {
    let hosts = config.get_hosts();
    #[cfg(unix)]
    let unix = |h: &postgres::config::Host| matches!(h, postgres::config::Host::Unix(_));
    #[cfg(not(unix))]
    let unix = |_: &postgres::config::Host| false;
    !hosts.is_empty() && hosts.iter().all(unix)
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The server's message and SQLSTATE, or the error with its causes: rust-postgres
/// says only "error performing TLS handshake" or "invalid connection string"
/// where the cause says which certificate check or which option failed.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            s
        }
    }
}

fn db(e: postgres::Error) -> CrmError {
    CrmError::Store(format!("postgres: {}", describe(&e)))
}

fn corrupt(table: &str, key: &dyn Display, why: impl Display) -> CrmError {
    CrmError::Store(format!("postgres: corrupt row in {table} ({key}): {why}"))
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<String, CrmError> {
    super::json::to_string(value).map_err(|e| CrmError::Store(format!("cannot encode {what}: {e}")))
}

fn decode<T: DeserializeOwned>(text: &str, table: &str, key: &dyn Display) -> Result<T, CrmError> {
    serde_json::from_str(text).map_err(|e| corrupt(table, key, e))
}

fn decode_u64(v: i64, table: &str, key: &dyn Display) -> Result<u64, CrmError> {
    u64::try_from(v).map_err(|_| corrupt(table, key, format_args!("expected a non-negative integer, found {v}")))
}

fn to_i64(v: u64, what: &str) -> Result<i64, CrmError> {
    i64::try_from(v).map_err(|_| CrmError::Store(format!("postgres: {what} {v} is out of range")))
}

/// Column `i` of a row, as a store error naming the table and key on a type mismatch.
fn col<'a, T: postgres::types::FromSql<'a>>(
    row: &'a postgres::Row,
    i: usize,
    table: &str,
    key: &dyn Display,
) -> Result<T, CrmError> {
    row.try_get(i).map_err(|e| corrupt(table, key, e))
}

/// The `next_due` column of a snapshot: [`MemberState::next_due_at`] in
/// microseconds since the epoch, rounded down (so `next_due <= now` in
/// microseconds holds whenever the instant itself is due).
fn next_due(state: &MemberState) -> Option<i64> {
    state.next_due_at().map(|t| t.timestamp_micros())
}

/// Names an event row in error messages.
struct EventKey<'a>(&'a MemberId, u64);

impl Display for EventKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "member {} seq {}", self.0, self.1)
    }
}

fn member_row(row: &postgres::Row, id: &dyn Display) -> Result<Versioned, CrmError> {
    let version = decode_u64(col(row, 0, "members", id)?, "members", id)?;
    let mut state: MemberState = decode(col(row, 1, "members", id)?, "members", id)?;
    // What the state keeps derived is not stored: worked out once here.
    state.settle();
    Ok(Versioned { state, version })
}

/// A commit encoded before a connection is taken.
struct Encoded {
    /// Members at `expected_version == 0`: ids, versions, states, list positions.
    new_ids: Vec<String>,
    new_versions: Vec<i64>,
    new_states: Vec<String>,
    new_due: Vec<Option<i64>>,
    /// Members with an expected version.
    upd_ids: Vec<String>,
    upd_expected: Vec<i64>,
    upd_versions: Vec<i64>,
    upd_states: Vec<String>,
    upd_due: Vec<Option<i64>>,
    /// Every member id in commit order (for reporting the first stale one).
    order: Vec<String>,
    ev_members: Vec<String>,
    ev_seqs: Vec<i64>,
    ev_bodies: Vec<String>,
    rc_keys: Vec<String>,
    rc_members: Vec<Option<String>>,
    rc_bodies: Vec<String>,
    /// Order owners, the last write of each order id winning.
    order_ids: Vec<String>,
    order_members: Vec<String>,
}

fn encode_commit(commit: &Commit) -> Result<Encoded, CrmError> {
    let mut e = Encoded {
        new_ids: Vec::new(),
        new_versions: Vec::new(),
        new_states: Vec::new(),
        new_due: Vec::new(),
        upd_ids: Vec::new(),
        upd_expected: Vec::new(),
        upd_versions: Vec::new(),
        upd_states: Vec::new(),
        upd_due: Vec::new(),
        order: Vec::with_capacity(commit.members.len()),
        ev_members: Vec::new(),
        ev_seqs: Vec::new(),
        ev_bodies: Vec::new(),
        rc_keys: Vec::with_capacity(commit.receipts.len()),
        rc_members: Vec::with_capacity(commit.receipts.len()),
        rc_bodies: Vec::with_capacity(commit.receipts.len()),
        order_ids: Vec::new(),
        order_members: Vec::new(),
    };
    // Lock rows in a stable order (by id) so writers touching the same
    // members queue instead of deadlocking.
    let mut members: Vec<_> = commit.members.iter().collect();
    members.sort_by(|a, b| a.state.id.0.cmp(&b.state.id.0));
    for w in members {
        let id = w.state.id.0.clone();
        let expected = to_i64(w.expected_version, "expected version")?;
        let version = to_i64(w.expected_version + w.events.len() as u64, "member version")?;
        let state = encode(&w.state, "member state")?;
        let due = next_due(&w.state);
        for (i, ev) in w.events.iter().enumerate() {
            e.ev_members.push(id.clone());
            e.ev_seqs.push(expected + 1 + i as i64);
            e.ev_bodies.push(encode(ev, "event")?);
        }
        if expected == 0 {
            e.new_ids.push(id);
            e.new_versions.push(version);
            e.new_states.push(state);
            e.new_due.push(due);
        } else {
            e.upd_ids.push(id);
            e.upd_expected.push(expected);
            e.upd_versions.push(version);
            e.upd_states.push(state);
            e.upd_due.push(due);
        }
    }
    e.order = commit.members.iter().map(|w| w.state.id.0.clone()).collect();
    for r in &commit.receipts {
        e.rc_keys.push(r.key.clone());
        e.rc_members.push(r.member_id.as_ref().map(|m| m.0.clone()));
        e.rc_bodies.push(encode(r, "receipt")?);
    }
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (order, member) in &commit.orders {
        match last.get(order.as_str()) {
            Some(&i) => e.order_members[i] = member.0.clone(),
            None => {
                last.insert(order, e.order_ids.len());
                e.order_ids.push(order.clone());
                e.order_members.push(member.0.clone());
            }
        }
    }
    Ok(e)
}

const INSERT_MEMBERS: &str = "INSERT INTO members (id, version, state, next_due) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[]) \
     ON CONFLICT (id) DO UPDATE SET version = excluded.version, state = excluded.state, next_due = excluded.next_due \
     WHERE members.version = 0 \
     RETURNING id";
const UPDATE_MEMBERS: &str = "UPDATE members AS m SET version = u.version, state = u.state, next_due = u.next_due \
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::text[], $5::int8[]) AS u(id, expected, version, state, next_due) \
     WHERE m.id = u.id AND m.version = u.expected \
     RETURNING m.id";
const INSERT_RECEIPTS: &str = "INSERT INTO receipts (key, member_id, body) \
     SELECT k, m, b FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(k, m, b, n) ORDER BY n \
     ON CONFLICT (key) DO NOTHING \
     RETURNING key";
const LOCK_IDENTITY: &str = "SELECT member_id FROM identities WHERE channel = $1 AND external_id = $2 FOR UPDATE";
const CLAIM_IDENTITY: &str = "INSERT INTO identities (channel, external_id, member_id) VALUES ($1, $2, $3) \
     ON CONFLICT (channel, external_id) DO NOTHING";
const INSERT_EVENTS: &str = "INSERT INTO events (member_id, seq, event) \
     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[])";
const UPSERT_IDENTITY: &str = "INSERT INTO identities (channel, external_id, member_id) VALUES ($1, $2, $3) \
     ON CONFLICT (channel, external_id) DO UPDATE SET member_id = excluded.member_id";
const DELETE_IDENTITY: &str = "DELETE FROM identities WHERE channel = $1 AND external_id = $2";
const UPSERT_ORDERS: &str = "INSERT INTO orders (order_id, member_id) \
     SELECT * FROM unnest($1::text[], $2::text[]) \
     ON CONFLICT (order_id) DO UPDATE SET member_id = excluded.member_id";

const INSERT_TALLY: &str =
    "INSERT INTO tallies (key, version, count, amount) VALUES ($1, 1, $2, $3) ON CONFLICT (key) DO NOTHING";
const UPDATE_TALLY: &str =
    "UPDATE tallies SET version = version + 1, count = $2, amount = $3 WHERE key = $1 AND version = $4";

fn db_msg(why: &str) -> CommitError {
    CommitError::Store(CrmError::Store(format!("postgres: {why}")))
}

/// A statement failure inside a commit: refusals the engine retries, or a
/// store error.
fn commit_err(e: postgres::Error, first_member: Option<&String>) -> CommitError {
    let retry = matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    );
    match (retry, first_member) {
        (true, Some(m)) => CommitError::Stale { member: MemberId(m.clone()) },
        _ => CommitError::Store(db(e)),
    }
}

/// The body of [`PostgresStore::commit`], inside the transaction.
fn apply(c: &mut Conn, commit: &Commit, e: &Encoded) -> Result<(), CommitError> {
    let first = e.order.first();
    let fail = |err: postgres::Error| commit_err(err, first);

    // 1. Members: conditional writes; a stale member returns no row.
    let mut written: HashSet<String> = HashSet::with_capacity(e.order.len());
    if !e.new_ids.is_empty() {
        let s = c.stmt(INSERT_MEMBERS).map_err(fail)?;
        for row in c.client.query(&s, &[&e.new_ids, &e.new_versions, &e.new_states, &e.new_due]).map_err(fail)? {
            written.insert(row.get(0));
        }
    }
    if !e.upd_ids.is_empty() {
        let s = c.stmt(UPDATE_MEMBERS).map_err(fail)?;
        for row in c
            .client
            .query(&s, &[&e.upd_ids, &e.upd_expected, &e.upd_versions, &e.upd_states, &e.upd_due])
            .map_err(fail)?
        {
            written.insert(row.get(0));
        }
    }
    if let Some(stale) = e.order.iter().find(|id| !written.contains(*id)) {
        return Err(CommitError::Stale { member: MemberId(stale.clone()) });
    }

    // 1b. Tallies: a conditional write each (the first inserts version 1);
    //     a concurrent writer makes the row count 0.
    for t in &commit.tallies {
        let amount = t.tally.amount.to_string();
        let changed = if t.expected_version == 0 {
            c.execute(INSERT_TALLY, &[&t.key, &t.tally.count, &amount]).map_err(fail)?
        } else {
            let expected = i64::try_from(t.expected_version).map_err(|_| db_msg("tally version out of range"))?;
            c.execute(UPDATE_TALLY, &[&t.key, &t.tally.count, &amount, &expected]).map_err(fail)?
        };
        if changed != 1 {
            return Err(CommitError::StaleTally { key: t.key.clone() });
        }
    }

    // 2. Receipts in order; a key already present (or repeated) is refused.
    if !e.rc_keys.is_empty() {
        let s = c.stmt(INSERT_RECEIPTS).map_err(fail)?;
        let rows = c.client.query(&s, &[&e.rc_keys, &e.rc_members, &e.rc_bodies]).map_err(fail)?;
        let mut inserted: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        for key in &e.rc_keys {
            if !inserted.remove(key) {
                return Err(CommitError::DuplicateKey { key: key.clone() });
            }
        }
    }

    // 3. Identity claims against the owners before this commit, with the
    //    identity row locked (or inserted) so no concurrent commit can claim
    //    it in between.
    let mut claimed_here: HashSet<&Identity> = HashSet::new();
    for (identity, claim) in &commit.identities {
        let Some(new) = claim else { continue };
        if commit.identities.iter().any(|(i, o)| i == identity && o.is_none()) || claimed_here.contains(identity) {
            continue;
        }
        let params: [&(dyn ToSql + Sync); 2] = [&identity.channel, &identity.external_id];
        let mut old: Option<String> = c.query_opt(LOCK_IDENTITY, &params)?.map(|r| r.get(0));
        if old.is_none() {
            let inserted =
                c.execute(CLAIM_IDENTITY, &[&identity.channel, &identity.external_id, &new.0]).map_err(fail)?;
            if inserted == 1 {
                claimed_here.insert(identity);
                continue;
            }
            // Claimed by a commit that finished while we waited.
            old = c.query_opt(LOCK_IDENTITY, &params)?.map(|r| r.get(0));
        }
        if let Some(old) = old {
            if old != new.0 {
                return Err(CommitError::IdentityTaken { identity: identity.clone(), owner: MemberId(old) });
            }
        }
    }

    // 4. Events, numbered on from the expected versions.
    if !e.ev_members.is_empty() {
        let s = c.stmt(INSERT_EVENTS).map_err(fail)?;
        c.client.execute(&s, &[&e.ev_members, &e.ev_seqs, &e.ev_bodies]).map_err(fail)?;
    }

    // 5. Identity claims and releases, in order.
    for (identity, claim) in &commit.identities {
        match claim {
            Some(m) => c.execute(UPSERT_IDENTITY, &[&identity.channel, &identity.external_id, &m.0]),
            None => c.execute(DELETE_IDENTITY, &[&identity.channel, &identity.external_id]),
        }
        .map_err(fail)?;
    }

    // 6. Order owners.
    if !e.order_ids.is_empty() {
        let s = c.stmt(UPSERT_ORDERS).map_err(fail)?;
        c.client.execute(&s, &[&e.order_ids, &e.order_members]).map_err(fail)?;
    }

    // 7. Erasure: rewrite stored events and receipt commands (including
    //    those written above).
    for id in &commit.redact {
        redact(c, id)?;
    }
    Ok(())
}

fn redact(c: &mut Conn, id: &MemberId) -> Result<(), CrmError> {
    let mut seqs = Vec::new();
    let mut bodies = Vec::new();
    for row in c.query("SELECT seq, event FROM events WHERE member_id = $1 ORDER BY seq", &[&id.0])? {
        let seq: i64 = row.get(0);
        let key = EventKey(id, seq as u64);
        let event: Event = decode(col(&row, 1, "events", &key)?, "events", &key)?;
        let redacted = event.redacted();
        if redacted != event {
            seqs.push(seq);
            bodies.push(encode(&redacted, "event")?);
        }
    }
    if !seqs.is_empty() {
        let s = c
            .stmt(
                "UPDATE events AS e SET event = u.event FROM unnest($2::int8[], $3::text[]) AS u(seq, event) \
                        WHERE e.member_id = $1 AND e.seq = u.seq",
            )
            .map_err(db)?;
        c.client.execute(&s, &[&id.0, &seqs, &bodies]).map_err(db)?;
    }
    seqs.clear();
    bodies.clear();
    for row in c.query("SELECT seq, key, body FROM receipts WHERE member_id = $1 ORDER BY seq", &[&id.0])? {
        let seq: i64 = row.get(0);
        let key: String = row.get(1);
        let mut receipt: Receipt = decode(col(&row, 2, "receipts", &key)?, "receipts", &key)?;
        let command = receipt.command.redacted();
        if command != receipt.command {
            receipt.command = command;
            seqs.push(seq);
            bodies.push(encode(&receipt, "receipt")?);
        }
    }
    if !seqs.is_empty() {
        let s = c
            .stmt(
                "UPDATE receipts AS r SET body = u.body FROM unnest($1::int8[], $2::text[]) AS u(seq, body) \
                   WHERE r.seq = u.seq",
            )
            .map_err(db)?;
        c.client.execute(&s, &[&seqs, &bodies]).map_err(db)?;
    }
    Ok(())
}

impl Store for PostgresStore {
    fn load(&self, id: &MemberId) -> Result<Option<Versioned>, CrmError> {
        let mut c = self.pool.get()?;
        let Some(row) = c.query_opt("SELECT version, state FROM members WHERE id = $1", &[&id.0])? else {
            return Ok(None);
        };
        let v = member_row(&row, id)?;
        if &v.state.id != id {
            return Err(corrupt("members", id, format_args!("snapshot belongs to member {}", v.state.id)));
        }
        Ok(Some(v))
    }

    fn identity_owner(&self, identity: &Identity) -> Result<Option<MemberId>, CrmError> {
        let mut c = self.pool.get()?;
        let row = c.query_opt(
            "SELECT member_id FROM identities WHERE channel = $1 AND external_id = $2",
            &[&identity.channel, &identity.external_id],
        )?;
        Ok(row.map(|r| MemberId(r.get(0))))
    }

    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>, CrmError> {
        let mut c = self.pool.get()?;
        let row = c.query_opt("SELECT member_id FROM orders WHERE order_id = $1", &[&order_id])?;
        Ok(row.map(|r| MemberId(r.get(0))))
    }

    fn receipt(&self, key: &str) -> Result<Option<Receipt>, CrmError> {
        let mut c = self.pool.get()?;
        match c.query_opt("SELECT body FROM receipts WHERE key = $1", &[&key])? {
            Some(row) => Ok(Some(decode(col(&row, 0, "receipts", &key)?, "receipts", &key)?)),
            None => Ok(None),
        }
    }

    fn tally(&self, key: &str) -> Result<Option<VersionedTally>, CrmError> {
        let mut c = self.pool.get()?;
        let Some(row) = c.query_opt("SELECT version, count, amount FROM tallies WHERE key = $1", &[&key])? else {
            return Ok(None);
        };
        let version: i64 = row.get(0);
        let amount: String = row.get(2);
        let amount = amount.parse().map_err(|e| corrupt("tallies", &key, format_args!("amount: {e}")))?;
        Ok(Some(VersionedTally { tally: Tally { count: row.get(1), amount }, version: version as u64 }))
    }

    /// One transaction: member version checks, receipts, identity checks,
    /// then the writes. Any refusal or error rolls everything back.
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        if commit.is_empty() && commit.redact.is_empty() {
            return Ok(());
        }
        let encoded = encode_commit(&commit)?;
        let mut c = self.pool.get()?;
        c.in_tx = true;
        c.client.batch_execute("BEGIN").map_err(db)?;
        match apply(&mut c, &commit, &encoded) {
            Ok(()) => {
                // On failure the outcome is unknown to us (the server may have
                // committed): the connection is closed, never reused.
                c.client.batch_execute("COMMIT").map_err(|e| commit_err(e, encoded.order.first()))?;
            }
            Err(refused) => {
                c.client.batch_execute("ROLLBACK").map_err(db)?;
                c.in_tx = false;
                return Err(refused);
            }
        }
        c.in_tx = false;
        Ok(())
    }

    fn events(&self, id: &MemberId) -> Result<Vec<Event>, CrmError> {
        let mut c = self.pool.get()?;
        let rows = c.query("SELECT seq, event FROM events WHERE member_id = $1 ORDER BY seq", &[&id.0])?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let expected = out.len() as u64 + 1;
            let key = EventKey(id, expected);
            if decode_u64(col(&row, 0, "events", &key)?, "events", &key)? != expected {
                return Err(corrupt("events", &key, "gap in the event sequence"));
            }
            out.push(decode(col(&row, 1, "events", &key)?, "events", &key)?);
        }
        Ok(out)
    }

    /// From the `next_due` index: no snapshot is decoded.
    fn due_members(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<MemberId>, CrmError> {
        let mut c = self.pool.get()?;
        let rows = c.query("SELECT id FROM members WHERE next_due <= $1", &[&now.timestamp_micros()])?;
        Ok(rows.into_iter().map(|r| MemberId(r.get(0))).collect())
    }

    /// Visits members in chunks (keyset by id), returning the connection
    /// between chunks so the visitor may call back into this store. Members
    /// written during the scan may or may not be visited; none twice.
    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let mut after: Option<String> = None;
        loop {
            let chunk = {
                let mut c = self.pool.get()?;
                let rows = match &after {
                    None => c.query("SELECT version, state, id FROM members ORDER BY id LIMIT $1", &[&CHUNK])?,
                    Some(a) => c.query(
                        "SELECT version, state, id FROM members WHERE id > $1 ORDER BY id LIMIT $2",
                        &[a, &CHUNK],
                    )?,
                };
                let mut chunk = Vec::with_capacity(rows.len());
                for row in &rows {
                    let id: String = row.get(2);
                    chunk.push(member_row(row, &id)?);
                    after = Some(id);
                }
                chunk
            };
            let last = (chunk.len() as i64) < CHUNK;
            for v in chunk {
                visit(v)?;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// Visits receipts in `seq` order, chunked like [`Store::scan`].
    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let mut after = 0i64;
        loop {
            let chunk = {
                let mut c = self.pool.get()?;
                let rows = c.query(
                    "SELECT seq, key, body FROM receipts WHERE seq > $1 ORDER BY seq LIMIT $2",
                    &[&after, &CHUNK],
                )?;
                let mut chunk = Vec::with_capacity(rows.len());
                for row in &rows {
                    after = row.get(0);
                    let key: String = row.get(1);
                    chunk.push(decode::<Receipt>(col(row, 2, "receipts", &key)?, "receipts", &key)?);
                }
                chunk
            };
            let last = (chunk.len() as i64) < CHUNK;
            for r in chunk {
                visit(r)?;
            }
            if last {
                return Ok(());
            }
        }
    }
}
