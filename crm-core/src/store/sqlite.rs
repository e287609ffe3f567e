//! SQLite store: one file, durable, shareable between processes.
//!
//! ```
//! use crm_core::{Engine, Order, Program, SqliteStore};
//! use chrono::{TimeZone, Utc};
//! use rust_decimal::Decimal;
//!
//! let store = SqliteStore::open_in_memory().unwrap();
//! let engine = Engine::new(Program::default_demo(), store);
//! let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
//! engine
//!     .record_order(Order::paid("o-1", "alice", now, Decimal::new(4_250, 2)), now)
//!     .unwrap();
//! assert_eq!(engine.balance(&"alice".into(), "reward", now).unwrap().available, 42);
//! ```
//!
//! # Layout
//!
//! | table        | key                    | holds                                   |
//! |--------------|------------------------|-----------------------------------------|
//! | `members`    | `id`                   | version, the JSON snapshot as of `snapshot_version`, `next_due` (indexed) |
//! | `events`     | `(member_id, seq)`     | a commit's JSON events of one member, numbered `seq..=last` (1-based) |
//! | `identities` | `(channel, external_id)` | owning member                         |
//! | `orders`     | `order_id`             | owning member                           |
//! | `receipts`   | `seq` (rowid, commit order), `key` unique | the JSON [`Receipt`] |
//!
//! A member's version is the number of its events, exactly as in the
//! in-memory store, so the member's event rows number `1..=version`, one
//! row (a JSON array) per member per commit. The snapshot is
//! rewritten only every [`SqliteOptions::snapshot_every`] events: a read
//! folds the events after `snapshot_version` into it (0: no snapshot yet,
//! the member is the fold of all its events).
//!
//! # Durability
//!
//! File databases run in WAL mode. With [`Synchronous::Full`] (the default)
//! every commit fsyncs the WAL before `commit` returns, so an acknowledged
//! commit survives power loss. [`Synchronous::Normal`] only fsyncs at WAL
//! checkpoints: a commit survives a crash of the process but the last few may
//! be lost if the machine loses power (the database itself stays consistent).
//!
//! A file database copies its WAL into the database file on a background
//! thread of the handle (`PASSIVE` checkpoints every ~4 MB committed), so
//! no commit waits for a checkpoint; that changes when pages reach the
//! database file, not when a commit is durable. A writer faster than those
//! checkpoints would grow the WAL without end (it starts over only after a
//! checkpoint that copied all of it), so when one leaves more than four
//! times that much behind, the writer copies the WAL itself after its next
//! commit, as SQLite's own automatic checkpoint does.
//!
//! # Concurrency
//!
//! A [`SqliteStore`] of a file owns two connections (besides the checkpoint
//! thread's), each behind a mutex: one
//! that writes and one (`query_only`) that reads, so one handle serialises its
//! own writers and its own readers, but a read never waits for a commit (an
//! in-memory database has a single connection for both). Several handles — in one process or several —
//! may share a file: every commit runs in `BEGIN IMMEDIATE`, which takes the
//! database write lock up front, so writers queue (for at most the busy
//! timeout) instead of failing half way, and the version checks inside the
//! transaction make optimistic concurrency hold across processes. Readers
//! never block writers in WAL mode.
//!
//! # Group commit
//!
//! Threads sharing one handle queue their commits. Whoever takes the
//! connection next writes every queued commit in one transaction, each inside
//! its own savepoint, and fsyncs once: a commit refused by its version or key
//! checks rolls back to its savepoint alone and the others go on. Each caller
//! is answered only after that transaction is durable, so an acknowledged
//! commit is exactly as safe as before; what changes is that *N* concurrent
//! writers (a storefront's request handlers) pay for one fsync instead of *N*.
//! A single writer sees no difference: its group is its own commit. If the
//! shared transaction fails as a whole (an I/O error, a full disk), every
//! commit of the group is retried in a transaction of its own, so each caller
//! gets the answer its commit alone would have got.
//!
//! # Snapshot cache
//!
//! Decoding a member's JSON snapshot costs more than everything else a
//! read does, so each handle keeps the snapshots it has written or decoded
//! in memory, keyed by member and version ([`SqliteOptions::member_cache`]).
//! A read still asks the database for the member's `version` — one indexed
//! lookup — and decodes the `state` column only when the cache does not
//! hold that version. That is exact because a version names one snapshot:
//! versions only move forward, each under the optimistic check of a commit,
//! so whatever another handle or process writes has a new version and
//! misses. The cache changes only after a commit is durable (a refused or
//! failed commit leaves it as it was), members in [`Commit::redact`] are
//! dropped from it, and it starts empty whenever a store is opened. (A
//! handle that cached a member before *another* handle erased it still
//! holds the old snapshot in memory — never returned, its version no longer
//! matches — until it next reads that member or evicts the entry.)
//!
//! The one assumption: while a handle is open, nobody gives a member's
//! *existing* version different content — by restoring an older copy of the
//! file in place and writing on from it, or by editing `members.state` by
//! hand. Reopen the store after doing that, or call
//! [`SqliteStore::clear_member_cache`].
//!
//! # Schema versions
//!
//! The schema is a list of migrations applied in order inside one
//! transaction and tracked in `PRAGMA user_version`. Opening a database
//! written by a newer version of this crate is refused rather than guessed at.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Commit, CommitError, Receipt, Store, Tally, Versioned, VersionedTally};
use crate::error::CrmError;
use crate::member::{Identity, MemberId};
use crate::state::{Event, MemberState};

/// Schema migrations, applied in order. Entry `i` moves the schema from
/// `user_version = i` to `i + 1`. Never edit a shipped entry; append.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "
    CREATE TABLE members (
        id      TEXT    NOT NULL PRIMARY KEY,
        version INTEGER NOT NULL CHECK (version >= 0),
        state   TEXT    NOT NULL
    ) STRICT;
    CREATE TABLE events (
        member_id TEXT    NOT NULL REFERENCES members (id),
        seq       INTEGER NOT NULL CHECK (seq >= 1),
        event     TEXT    NOT NULL,
        PRIMARY KEY (member_id, seq)
    ) STRICT;
    CREATE TABLE identities (
        channel     TEXT NOT NULL,
        external_id TEXT NOT NULL,
        member_id   TEXT NOT NULL,
        PRIMARY KEY (channel, external_id)
    ) WITHOUT ROWID, STRICT;
    CREATE TABLE orders (
        order_id  TEXT NOT NULL PRIMARY KEY,
        member_id TEXT NOT NULL
    ) WITHOUT ROWID, STRICT;
    CREATE TABLE receipts (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        key       TEXT    NOT NULL UNIQUE,
        member_id TEXT,
        body      TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX receipts_by_member ON receipts (member_id);
    ",
    // 2: when something is next due for a member (`MemberState::next_due_at`
    // in microseconds since the epoch, rounded down; NULL: nothing), indexed
    // so `run_due` loads only those members. Existing rows are backfilled
    // from their snapshots by `backfill_next_due` in the same transaction.
    "
    ALTER TABLE members ADD COLUMN next_due INTEGER;
    CREATE INDEX members_by_next_due ON members (next_due) WHERE next_due IS NOT NULL;
    ",
    // 3: receipts without AUTOINCREMENT (receipts are never deleted, so a
    // plain rowid key keeps commit order) — one page less per commit: no
    // `sqlite_sequence` update.
    "
    CREATE TABLE receipts_v3 (
        seq       INTEGER PRIMARY KEY,
        key       TEXT    NOT NULL UNIQUE,
        member_id TEXT,
        body      TEXT    NOT NULL
    ) STRICT;
    INSERT INTO receipts_v3 (seq, key, member_id, body) SELECT seq, key, member_id, body FROM receipts ORDER BY seq;
    DROP TABLE receipts;
    ALTER TABLE receipts_v3 RENAME TO receipts;
    CREATE INDEX receipts_by_member ON receipts (member_id);
    ",
    // 4: programme-wide tallies (coupons of a template issued in total and
    // the face value they commit), versioned like members.
    "
    CREATE TABLE tallies (
        key     TEXT    NOT NULL PRIMARY KEY,
        version INTEGER NOT NULL CHECK (version >= 1),
        count   INTEGER NOT NULL,
        amount  TEXT    NOT NULL
    ) WITHOUT ROWID, STRICT;
    ",
    // 5: snapshots every so many events (`SqliteOptions::snapshot_every`)
    // instead of on every commit: `state` holds the member as of
    // `snapshot_version` (0: no snapshot yet, `state` is empty) and a read
    // folds the events after it. Every existing snapshot is current.
    "
    ALTER TABLE members ADD COLUMN snapshot_version INTEGER NOT NULL DEFAULT 0 CHECK (snapshot_version >= 0);
    UPDATE members SET snapshot_version = version;
    ",
    // 6: one event row per member per commit (a JSON array of its events,
    // numbered `seq..=last`) instead of one per event: a bulk import writes
    // a member's commit as one row, not one per event.
    "
    CREATE TABLE events_v6 (
        member_id TEXT    NOT NULL REFERENCES members (id),
        seq       INTEGER NOT NULL CHECK (seq >= 1),
        last      INTEGER NOT NULL CHECK (last >= seq),
        body      TEXT    NOT NULL,
        PRIMARY KEY (member_id, seq)
    ) STRICT;
    INSERT INTO events_v6 (member_id, seq, last, body)
        SELECT member_id, seq, seq, '[' || event || ']' FROM events ORDER BY member_id, seq;
    DROP TABLE events;
    ALTER TABLE events_v6 RENAME TO events;
    ",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Rows fetched per lock acquisition by [`Store::scan`] and [`Store::receipts`].
const CHUNK: i64 = 256;

/// How hard a commit pushes data to stable storage (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Fsync the WAL on every commit: an acknowledged commit survives power
    /// loss. The safe default for a ledger.
    #[default]
    Full,
    /// Fsync only at checkpoints: a commit survives a process crash, but the
    /// most recent commits can be lost on power loss or an OS crash. Several
    /// times faster for small commits; choose it when the host can re-send
    /// recent commands (they are idempotent) after such a failure.
    Normal,
}

impl Synchronous {
    /// `"full"` or `"normal"`, as hosts spell it in configuration and the
    /// Python and Node bindings; anything else is a validation error
    /// naming `field`.
    ///
    /// ```
    /// use crm_core::store::sqlite::Synchronous;
    /// assert_eq!(Synchronous::parse("normal", "synchronous").unwrap(), Synchronous::Normal);
    /// assert!(Synchronous::parse("sometimes", "synchronous").is_err());
    /// ```
    pub fn parse(value: &str, field: &str) -> Result<Synchronous, CrmError> {
        match value {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            other => Err(CrmError::Validation {
                field: field.into(),
                reason: format!("must be \"full\" or \"normal\", got {other:?}"),
            }),
        }
    }
}

/// [`SqliteOptions`] as a host passes them by name, each optional (unset:
/// the default), with integers as the host's language has them. The Python
/// and Node bindings fill this and call [`SqliteSettings::options`], so the
/// ranges are checked once, here, and a bad value names its field
/// (`member_cache`, ...).
///
/// ```
/// use crm_core::store::sqlite::SqliteSettings;
/// let options = SqliteSettings { member_cache: Some(50_000), ..SqliteSettings::default() }.options().unwrap();
/// assert_eq!(options.member_cache, 50_000);
/// let bad = SqliteSettings { snapshot_every: Some(-1), ..SqliteSettings::default() }.options();
/// assert!(bad.unwrap_err().to_string().contains("snapshot_every"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqliteSettings {
    /// `"full"` or `"normal"` ([`SqliteOptions::synchronous`]).
    pub synchronous: Option<String>,
    /// Milliseconds, at least 0 ([`SqliteOptions::busy_timeout`]).
    pub busy_timeout_ms: Option<i64>,
    /// Members, at least 0 ([`SqliteOptions::member_cache`]).
    pub member_cache: Option<i64>,
    /// Events, at least 1 ([`SqliteOptions::snapshot_every`]).
    pub snapshot_every: Option<i64>,
    /// Bytes, at least 65,536 ([`SqliteOptions::checkpoint_bytes`]).
    pub checkpoint_bytes: Option<i64>,
}

impl SqliteSettings {
    /// The options, or a validation error naming the first bad field.
    pub fn options(&self) -> Result<SqliteOptions, CrmError> {
        fn at_least(value: i64, min: i64, field: &str, unit: &str) -> Result<u64, CrmError> {
            if value < min {
                return Err(CrmError::Validation {
                    field: field.into(),
                    reason: format!("must be at least {min} {unit}, got {value}"),
                });
            }
            Ok(value as u64)
        }
        let mut options = SqliteOptions::new();
        if let Some(s) = &self.synchronous {
            options = options.synchronous(Synchronous::parse(s, "synchronous")?);
        }
        if let Some(ms) = self.busy_timeout_ms {
            options = options.busy_timeout(Duration::from_millis(at_least(ms, 0, "busy_timeout_ms", "milliseconds")?));
        }
        if let Some(n) = self.member_cache {
            let n = at_least(n, 0, "member_cache", "members")?;
            options = options.member_cache(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(n) = self.snapshot_every {
            options = options.snapshot_every(at_least(n, 1, "snapshot_every", "events")?);
        }
        if let Some(n) = self.checkpoint_bytes {
            options = options.checkpoint_bytes(at_least(n, 64 << 10, "checkpoint_bytes", "bytes")?);
        }
        Ok(options)
    }
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of commits (default [`Synchronous::Full`]).
    pub synchronous: Synchronous,
    /// How long to wait for another connection's write lock before failing
    /// with a store error (default 5 s).
    pub busy_timeout: Duration,
    /// How many decoded member snapshots the handle keeps (default
    /// [`DEFAULT_MEMBER_CACHE`]; 0 disables the cache). See
    /// [`SqliteOptions::member_cache`].
    pub member_cache: usize,
    /// A commit rewrites a member's stored snapshot only when the member's
    /// version passes a multiple of this (default [`DEFAULT_SNAPSHOT_EVERY`];
    /// 1: on every commit). See [`SqliteOptions::snapshot_every`].
    pub snapshot_every: u64,
    /// WAL bytes, roughly, written between two checkpoints of a file
    /// database (default [`DEFAULT_CHECKPOINT_BYTES`]). See
    /// [`SqliteOptions::checkpoint_bytes`].
    pub checkpoint_bytes: u64,
}

/// Default of [`SqliteOptions::snapshot_every`], in events. A member's
/// snapshot (2 KB of JSON for a member with three orders) costs as much to
/// encode and write as ten of its events, and a read that misses the cache
/// decodes the snapshot plus fewer than this many events: 16 keeps such a
/// read within about twice the cost of decoding a snapshot alone.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 16;

/// Default capacity of the snapshot cache, in members. A cached member
/// costs its decoded [`MemberState`] plus ~100 bytes of bookkeeping, about
/// twice its JSON snapshot: measured 4.5 KB on average for the CDNOW
/// replay's members (2.2 KB of JSON, three orders each; 23,570 members
/// raise the peak RSS from 88 MB to 195 MB). So the default costs up to
/// ~45 MB for such members, more for members with long histories: enough
/// for the members a storefront is busy with; raise it where the whole
/// programme should stay decoded (a daily `run_due` over every member), or
/// set 0 where memory is tight.
pub const DEFAULT_MEMBER_CACHE: usize = 10_000;

/// Default of [`SqliteOptions::checkpoint_bytes`]: 4 MB, SQLite's own
/// automatic checkpoint (1,000 pages at the default page size).
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 4 << 20;

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            member_cache: DEFAULT_MEMBER_CACHE,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Synchronous::Full`], 5 s busy timeout, a snapshot
    /// cache of [`DEFAULT_MEMBER_CACHE`] members.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep up to `members` decoded snapshots in memory (0: none), so reads
    /// of a member whose stored version the handle has already written or
    /// decoded skip JSON decoding (see the [module docs](self#snapshot-cache)).
    /// When full, the entry cached longest ago makes room (first in, first
    /// out: no bookkeeping on reads); a scan of more members than fit cycles
    /// through the cache and decodes every snapshot, as without one.
    pub fn member_cache(mut self, members: usize) -> Self {
        self.member_cache = members;
        self
    }

    /// Rewrite a member's stored snapshot only when its version passes a
    /// multiple of `events` (0 and 1: on every commit). A member's events
    /// are its record and are always written; the snapshot is a cache of
    /// their fold, so it need not be rewritten by every commit. Between
    /// snapshots, a read that misses the [snapshot cache](Self::member_cache)
    /// decodes the last snapshot and folds the fewer than `events` events
    /// written after it ([`MemberState::evolve`]); a member whose first
    /// commits stay below `events` is read from its events alone. An
    /// erasure always rewrites the snapshot, so no personal data outlives
    /// it there. Larger values make writes cheaper (a bulk import writes
    /// each member's snapshot rarely or never) and cold reads dearer.
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_every = events.max(1);
        self
    }

    /// Ask the checkpoint thread to copy the WAL into the database after
    /// about `bytes` of commits (minimum 64 KB). A checkpoint copies the
    /// newest version of each page the WAL holds, so a page that many
    /// commits rewrite (an index's last page, a busy member's row) is copied
    /// once per checkpoint, not once per commit: a larger value copies less
    /// in all, at the cost of a WAL file of about that size and reads that
    /// look through a longer WAL index. A bulk import gains from it: on a
    /// two-core machine the checkpoint thread takes the CPU the importing
    /// threads need (the CDNOW replay imports in 0.78-0.85 s with 32 MB
    /// against 0.93-1.07 s with 4 MB; README "Replay of CDNOW_master").
    /// Whatever is left in the WAL is copied when the last connection closes.
    pub fn checkpoint_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_bytes = bytes.max(64 << 10);
        self
    }

    /// Set the durability level.
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Set the busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// A [`Store`] over one SQLite database (see the [module docs](self)).
pub struct SqliteStore {
    /// The connection commits are written on (and, for an in-memory
    /// database, the only one).
    conn: Mutex<Connection>,
    /// File databases read on a second connection, so that reads never wait
    /// for a commit's fsync: while one group is being made durable, the
    /// next commands can load their members and queue their commits, which
    /// is what gives group commit its groups. WAL lets it read the last
    /// committed state while the writer writes.
    reader: Option<Mutex<Connection>>,
    path: Option<PathBuf>,
    /// A read transaction opened by [`Store::begin_reads`] is open on the
    /// reading connection (only changed while that connection's mutex is held).
    reading: AtomicBool,
    /// Commits waiting for the connection (group commit, see the module
    /// docs). Only a thread holding the connection mutex takes from it.
    queue: Mutex<Vec<Arc<Job>>>,
    /// Decoded snapshots by member and version. Locked briefly by readers
    /// (holding the reading connection) and by the writer after a commit
    /// (holding the writing one); every entry is keyed by the exact version
    /// its snapshot was stored under, so whichever order they come in, a
    /// read never gets a snapshot other than the stored one.
    cache: Mutex<MemberCache>,
    /// [`SqliteOptions::snapshot_every`], at least 1.
    snapshot_every: u64,
    /// Checkpoints the WAL of a file database in the background.
    checkpointer: Option<Checkpointer>,
}

/// Copies the WAL of a file database into the database on a thread of its
/// own, with its own connection, instead of at the end of whichever commit
/// passes SQLite's automatic checkpoint threshold. A checkpoint rewrites
/// every page the WAL holds (and fsyncs the database file under
/// [`Synchronous::Full`]): in a bulk import that is a commit in ten paying
/// for the nine before it, on the thread that writes. Durability does not
/// change (a commit is durable once its WAL frames are), and the
/// checkpoints are `PASSIVE`: they never wait for, nor block, a reader or
/// the writer. Requests that come while one runs are folded into the next.
struct Checkpointer {
    signal: Arc<(Mutex<CheckpointRequests>, std::sync::Condvar)>,
    /// [`SqliteOptions::checkpoint_bytes`].
    every: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct CheckpointRequests {
    /// Encoded bytes committed since the last request.
    written: u64,
    requested: bool,
    stop: bool,
    /// The last checkpoint left more than [`Checkpointer::behind_at`] in
    /// the WAL: the writer copies it itself after its next commit.
    behind: bool,
    /// A checkpoint is running on the checkpoint thread.
    running: bool,
}

impl Checkpointer {
    fn start(path: &Path, options: &SqliteOptions) -> Result<Checkpointer, CrmError> {
        let conn = Connection::open(path)
            .map_err(|e| CrmError::Store(format!("sqlite: cannot open {} to checkpoint: {e}", path.display())))?;
        conn.busy_timeout(options.busy_timeout).map_err(db)?;
        let page: u64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0)).map_err(db)?;
        let behind_at = Checkpointer::behind_at(options.checkpoint_bytes);
        let signal = Arc::new((Mutex::new(CheckpointRequests::default()), std::sync::Condvar::new()));
        let shared = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("crm-sqlite-checkpoint".into())
            .spawn(move || {
                let (requests, wake) = &*shared;
                loop {
                    let mut r = requests.lock().unwrap_or_else(PoisonError::into_inner);
                    while !r.requested && !r.stop {
                        r = wake.wait(r).unwrap_or_else(PoisonError::into_inner);
                    }
                    if r.stop {
                        return;
                    }
                    r.requested = false;
                    r.running = true;
                    drop(r);
                    // What a busy reader keeps it from copying now, the next
                    // request copies; an error (a full disk) leaves the WAL
                    // as it is, still read and written correctly. The second
                    // column: the pages in the WAL since it last started over.
                    let frames = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, u64>(1));
                    let mut r = requests.lock().unwrap_or_else(PoisonError::into_inner);
                    r.running = false;
                    r.behind |= frames.is_ok_and(|frames| frames.saturating_mul(page) > behind_at);
                    // A writer may be waiting for this checkpoint to end.
                    wake.notify_all();
                }
            })
            .map_err(|e| CrmError::Store(format!("sqlite: cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer { signal, every: options.checkpoint_bytes, thread: Some(thread) })
    }

    /// WAL bytes past which the background checkpoints count as behind:
    /// four times [`SqliteOptions::checkpoint_bytes`].
    ///
    /// Why: the WAL starts over (is written from its start again) only after
    /// a checkpoint that copied all of it. A checkpoint on this thread runs
    /// beside the writer, which keeps appending while it copies, so when the
    /// writer is faster (a bulk import in a release build) no checkpoint
    /// ever copies all of it and the WAL grows with everything written.
    fn behind_at(every: u64) -> u64 {
        every.saturating_mul(4)
    }

    /// A commit of about `bytes` is durable: ask for a checkpoint every
    /// [`SqliteOptions::checkpoint_bytes`]. Returns whether the background
    /// checkpoints have fallen behind (see [`Checkpointer::behind_at`]): the
    /// caller, which holds the writing connection, then copies the WAL itself
    /// before it writes again, as SQLite's own automatic checkpoint would, so
    /// the next commit can start the WAL over.
    #[must_use]
    fn wrote(&self, bytes: u64) -> bool {
        let (requests, wake) = &*self.signal;
        let mut r = requests.lock().unwrap_or_else(PoisonError::into_inner);
        r.written += bytes;
        if r.written >= self.every {
            r.written = 0;
            r.requested = true;
            wake.notify_all();
        }
        std::mem::take(&mut r.behind)
    }

    /// Wait until no checkpoint runs on the checkpoint thread (the writer's
    /// own would find the WAL busy), and keep it from starting one until the
    /// next commit asks.
    fn pause(&self) {
        let (requests, wake) = &*self.signal;
        let mut r = requests.lock().unwrap_or_else(PoisonError::into_inner);
        while r.running {
            r = wake.wait(r).unwrap_or_else(PoisonError::into_inner);
        }
        r.requested = false;
        r.behind = false;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (requests, wake) = &*self.signal;
        requests.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A commit waiting in the group-commit queue, and its answer once written.
struct Job {
    commit: Commit,
    encoded: Encoded,
    /// The written snapshots with their new versions, for the cache once
    /// the commit is durable (taken out of `commit`: writing uses `encoded`).
    snapshots: Vec<(u64, Arc<MemberState>)>,
    answer: Mutex<Option<Result<(), CommitError>>>,
}

impl Job {
    fn settle(&self, result: Result<(), CommitError>) {
        *self.answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
    }

    fn answer(&self) -> Option<Result<(), CommitError>> {
        self.answer.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// A commit's JSON, encoded before any lock is taken so that concurrent
/// callers overlap their encoding with another's write.
struct Encoded {
    writes: Vec<EncodedWrite>,
    receipts: Vec<String>,
}

impl Encoded {
    /// Encodes the events and receipts of `commit`, and the snapshot of each
    /// member whose version passes a multiple of `snapshot_every` (or who is
    /// being erased).
    fn new(commit: &Commit, snapshot_every: u64) -> Result<Encoded, CrmError> {
        let mut writes = Vec::with_capacity(commit.members.len());
        for w in &commit.members {
            let new_version = w.expected_version + w.events.len() as u64;
            let snapshot = w.expected_version / snapshot_every != new_version / snapshot_every
                || commit.redact.contains(&w.state.id);
            writes.push(EncodedWrite {
                id: w.state.id.0.clone(),
                expected: to_i64(w.expected_version, "expected version")?,
                version: to_i64(new_version, "member version")?,
                state: if snapshot { Some(encode(&w.state, "member state")?) } else { None },
                next_due: next_due(&w.state),
                events: if w.events.is_empty() { None } else { Some(encode(&w.events, "events")?) },
            });
        }
        let mut receipts = Vec::with_capacity(commit.receipts.len());
        for r in &commit.receipts {
            receipts.push(encode(r, "receipt")?);
        }
        Ok(Encoded { writes, receipts })
    }

    /// The encoded size: about what the commit adds to the WAL.
    fn bytes(&self) -> u64 {
        let writes: usize = self
            .writes
            .iter()
            .map(|w| w.state.as_ref().map_or(0, String::len) + w.events.as_ref().map_or(0, String::len) + 64)
            .sum();
        (writes + self.receipts.iter().map(|r| r.len() + 64).sum::<usize>()) as u64
    }
}

/// Decoded member snapshots, each with the version it was stored under.
///
/// First in, first out once full: `hand` walks the slots and the oldest
/// entry makes room, so a hit costs a hash lookup and nothing else (no
/// recency to update). Snapshots are shared (`Arc`) so a reader can use one
/// after the locks are released while a commit replaces it.
#[derive(Debug, Default)]
struct MemberCache {
    capacity: usize,
    slots: Vec<(u64, Arc<MemberState>)>,
    /// Slot of each member, by id (a `String` key so a row's id text can be
    /// looked up without building a [`MemberId`]).
    index: HashMap<String, usize>,
    hand: usize,
}

impl MemberCache {
    fn new(capacity: usize) -> Self {
        MemberCache { capacity, ..MemberCache::default() }
    }

    /// The snapshot of `id` at exactly `version`. The id is compared too:
    /// a string comparison buys that no bookkeeping slip (or a panic that
    /// poisoned the lock half way through `put`) can ever hand out another
    /// member's snapshot.
    fn get(&self, id: &str, version: u64) -> Option<Arc<MemberState>> {
        let (v, state) = self.slots.get(*self.index.get(id)?)?;
        (*v == version && state.id.as_str() == id).then(|| state.clone())
    }

    /// Remember `state` as the member's snapshot at `version`.
    fn put(&mut self, version: u64, state: Arc<MemberState>) {
        if self.capacity == 0 {
            return;
        }
        if let Some(&i) = self.index.get(state.id.as_str()) {
            self.slots[i] = (version, state);
        } else if self.slots.len() < self.capacity {
            self.index.insert(state.id.0.clone(), self.slots.len());
            self.slots.push((version, state));
        } else {
            let i = self.hand % self.slots.len();
            self.hand = i + 1;
            let (_, old) = std::mem::replace(&mut self.slots[i], (version, state));
            self.index.remove(old.id.as_str());
            self.index.insert(self.slots[i].1.id.0.clone(), i);
        }
    }

    fn remove(&mut self, id: &str) {
        let Some(i) = self.index.remove(id) else { return };
        self.slots.swap_remove(i);
        if let Some((_, moved)) = self.slots.get(i) {
            if let Some(slot) = self.index.get_mut(moved.id.as_str()) {
                *slot = i;
            }
        }
    }

    fn clear(&mut self) {
        self.slots = Vec::new();
        self.index = HashMap::new();
        self.hand = 0;
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (or create) a database file with the default options.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, CrmError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Open (or create) a database file.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, CrmError> {
        let path = path.as_ref();
        let conn = Connection::open(path)
            .map_err(|e| CrmError::Store(format!("sqlite: cannot open {}: {e}", path.display())))?;
        SqliteStore::init(conn, Some(path.to_path_buf()), &options)
    }

    /// A private database in memory (gone when the store is dropped).
    pub fn open_in_memory() -> Result<SqliteStore, CrmError> {
        SqliteStore::open_in_memory_with(SqliteOptions::default())
    }

    /// A private database in memory with options (`synchronous` and
    /// `busy_timeout` have no effect on it).
    pub fn open_in_memory_with(options: SqliteOptions) -> Result<SqliteStore, CrmError> {
        let conn = Connection::open_in_memory().map_err(db)?;
        SqliteStore::init(conn, None, &options)
    }

    /// The database file, `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn init(mut conn: Connection, path: Option<PathBuf>, options: &SqliteOptions) -> Result<SqliteStore, CrmError> {
        // The busy timeout first: switching to WAL and migrating take locks
        // that another process may hold for a moment.
        conn.busy_timeout(options.busy_timeout).map_err(db)?;
        if path.is_some() {
            let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(db)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(CrmError::Store(format!("sqlite: cannot switch to WAL journal mode (got {mode})")));
            }
        }
        let sync = match options.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        // 16 MiB of page cache per connection.
        conn.pragma_update(None, "cache_size", -16_384).map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        migrate(&mut conn)?;
        let reader = match &path {
            Some(path) => Some(Mutex::new(SqliteStore::open_reader(path, options)?)),
            None => None,
        };
        // File databases copy the WAL into the database on a thread of
        // their own; the writer stops doing it at the end of its commits.
        let checkpointer = match &path {
            Some(path) => {
                let checkpointer = Checkpointer::start(path, options)?;
                conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(db)?;
                Some(checkpointer)
            }
            None => None,
        };
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            reader,
            path,
            reading: AtomicBool::new(false),
            queue: Mutex::new(Vec::new()),
            cache: Mutex::new(MemberCache::new(options.member_cache)),
            snapshot_every: options.snapshot_every.max(1),
            checkpointer,
        })
    }

    /// The reading connection of a file database (after the writer has
    /// switched it to WAL and migrated it); `query_only` so that no code
    /// path can ever write through it.
    fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection, CrmError> {
        let conn = Connection::open(path)
            .map_err(|e| CrmError::Store(format!("sqlite: cannot open {} for reading: {e}", path.display())))?;
        conn.busy_timeout(options.busy_timeout).map_err(db)?;
        conn.pragma_update(None, "query_only", "ON").map_err(db)?;
        conn.pragma_update(None, "cache_size", -16_384).map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(conn)
    }

    /// The connection reads go to.
    fn reads(&self) -> &Mutex<Connection> {
        self.reader.as_ref().unwrap_or(&self.conn)
    }

    /// End the read scope opened by [`Store::begin_reads`], if any, so the
    /// next read sees everything committed so far.
    fn end_read_scope(&self) {
        let conn = self.reads().lock().unwrap_or_else(PoisonError::into_inner);
        self.reading.store(false, Ordering::Relaxed);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }

    /// Forget every cached snapshot (see the [module docs](self#snapshot-cache)):
    /// for a host that restored or edited the database file underneath an
    /// open handle. Reads decode from the file again.
    pub fn clear_member_cache(&self) {
        let _conn = self.lock();
        self.cache().clear();
    }

    /// The snapshot cache (callers hold one of the connection locks).
    fn cache(&self) -> MutexGuard<'_, MemberCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The member of the row `row` (whose `version` is `version`): the
    /// cached one when the cache holds that version, otherwise the stored
    /// snapshot (columns `snapshot_version`, at index `columns`, then
    /// `state` and `next_due`) with the events written since folded in, its
    /// derived figures settled and, after a fold, its wake-up taken from
    /// `next_due` ([`MemberState::wake_from_next_due`]), checked and — with
    /// `keep` — cached. The snapshot is not read on a hit, so its pages
    /// are not either. Reads that hand the caller its own copy to change
    /// (`load`, `scan`) do not keep a miss: the copy would cost what the
    /// cache saves, and the commit that follows caches the new version anyway.
    fn snapshot(
        &self,
        conn: &Connection,
        row: &rusqlite::Row<'_>,
        id: &str,
        version: u64,
        columns: usize,
        keep: bool,
    ) -> Result<Arc<MemberState>, CrmError> {
        if let Some(hit) = self.cache().get(id, version) {
            return Ok(hit);
        }
        let snapshot_version = decode_u64(row.get_ref(columns).map_err(db)?, "members", &id)?;
        if snapshot_version > version {
            return Err(corrupt("members", &id, format_args!("snapshot version {snapshot_version} > {version}")));
        }
        let mut state: Option<MemberState> = None;
        if snapshot_version > 0 {
            let decoded: MemberState = decode(row.get_ref(columns + 1).map_err(db)?, "members", &id)?;
            if decoded.id.as_str() != id {
                return Err(corrupt("members", &id, format_args!("snapshot belongs to member {}", decoded.id)));
            }
            state = Some(decoded);
        }
        if snapshot_version < version {
            let folded = each_event(conn, id, snapshot_version, version, &mut |event| {
                state.get_or_insert_with(|| MemberState::new(MemberId(id.into()), event.at())).evolve(&event);
                Ok(())
            })?;
            if folded != version {
                return Err(corrupt("members", &id, format_args!("version {version} but events end at {folded}")));
            }
        }
        let mut state = state.ok_or_else(|| corrupt("members", &id, "version 0"))?;
        // What the state keeps derived is not stored: worked out once here,
        // so that `run_due` finds it on every member it reads.
        state.settle();
        if snapshot_version < version {
            // The wake-up is derived by the engine at each write, not folded
            // from events: the older snapshot's (or a new state's `None`) is
            // stale. The row's `next_due` is what the last write derived.
            let next_due = match row.get_ref(columns + 2).map_err(db)? {
                ValueRef::Null => None,
                ValueRef::Integer(micros) => Some(
                    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros)
                        .ok_or_else(|| corrupt("members", &id, format_args!("next_due {micros} is out of range")))?,
                ),
                other => return Err(corrupt("members", &id, format_args!("next_due is {}", other.data_type()))),
            };
            state.wake_from_next_due(next_due);
        }
        let state = Arc::new(state);
        if keep {
            self.cache().put(version, state.clone());
        }
        Ok(state)
    }

    /// The member's snapshot and version, shared with the cache.
    fn shared(&self, id: &MemberId, keep: bool) -> Result<Option<(Arc<MemberState>, u64)>, CrmError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT version, snapshot_version, state, next_due FROM members WHERE id = ?1")
            .map_err(db)?;
        let mut rows = stmt.query([id.as_str()]).map_err(db)?;
        let Some(row) = rows.next().map_err(db)? else {
            return Ok(None);
        };
        let version = decode_u64(row.get_ref(0).map_err(db)?, "members", id)?;
        Ok(Some((self.snapshot(&conn, row, id.as_str(), version, 1, keep)?, version)))
    }

    /// Visits every member's snapshot and version in chunks of [`CHUNK`]
    /// rows, releasing the lock between chunks so the visitor may call back
    /// into this store (even commit). Members written during the scan may or
    /// may not be visited; none is visited twice.
    fn chunks(
        &self,
        keep: bool,
        visit: &mut dyn FnMut(Arc<MemberState>, u64) -> Result<(), CrmError>,
    ) -> Result<(), CrmError> {
        let mut after = 0i64;
        loop {
            let chunk = {
                let conn = self.lock();
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT version, rowid, id, snapshot_version, state, next_due FROM members \
                         WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                    )
                    .map_err(db)?;
                let mut rows = stmt.query([after, CHUNK]).map_err(db)?;
                let mut chunk = Vec::with_capacity(CHUNK as usize);
                while let Some(row) = rows.next().map_err(db)? {
                    after = row.get(1).map_err(db)?;
                    let id = decode_str(row.get_ref(2).map_err(db)?, "members", &after)?;
                    let version = decode_u64(row.get_ref(0).map_err(db)?, "members", &id)?;
                    chunk.push((self.snapshot(&conn, row, id, version, 3, keep)?, version));
                }
                chunk
            };
            let last = (chunk.len() as i64) < CHUNK;
            for (state, version) in chunk {
                visit(state, version)?;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// The connection. Poison-tolerant: a panic in another caller cannot have
    /// left a half-applied commit behind (the transaction rolls back when it
    /// is dropped during unwinding), and the rollback below is a second line
    /// of defence should a transaction ever be left open.
    ///
    /// A read transaction opened by [`Store::begin_reads`] is kept open for
    /// the reads that follow it.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        let conn = self.reads().lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.is_autocommit() && !self.reading.load(Ordering::Relaxed) {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn
    }

    /// The writing connection with no transaction open (when it is also the
    /// reading one, this ends a read scope).
    fn lock_for_write(&self) -> MutexGuard<'_, Connection> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if self.reader.is_none() {
            self.reading.store(false, Ordering::Relaxed);
        }
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn
    }
}

/// Bring the schema up to [`SCHEMA_VERSION`], refusing newer databases.
fn migrate(conn: &mut Connection) -> Result<(), CrmError> {
    let known = MIGRATIONS.len() as i64;
    let check = |v: i64| {
        if v > known || v < 0 {
            Err(CrmError::Store(format!(
                "sqlite: database schema version {v} is newer than this build supports \
                 ({known}); upgrade crm-core to open it"
            )))
        } else {
            Ok(v)
        }
    };
    let read = |c: &Connection| -> Result<i64, CrmError> {
        c.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)
    };
    if check(read(conn)?)? == known {
        return Ok(());
    }
    // Re-read under the write lock: another process may have migrated while
    // we were waiting for it.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let current = check(read(&tx)?)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(|e| CrmError::Store(format!("sqlite: migration {} failed: {e}", i + 1)))?;
        if i + 1 == 2 {
            backfill_next_due(&tx)?;
        }
    }
    tx.pragma_update(None, "user_version", known).map_err(db)?;
    tx.commit().map_err(db)
}

/// Migration 2: compute `next_due` for the snapshots written before it.
fn backfill_next_due(tx: &Connection) -> Result<(), CrmError> {
    let mut updates = Vec::new();
    {
        let mut select = tx.prepare("SELECT id, state FROM members").map_err(db)?;
        let mut rows = select.query([]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let id = decode_text(row.get_ref(0).map_err(db)?, "members", &"?")?;
            let state: MemberState = decode(row.get_ref(1).map_err(db)?, "members", &id)?;
            updates.push((id, next_due(&state)));
        }
    }
    let mut update = tx.prepare("UPDATE members SET next_due = ?2 WHERE id = ?1").map_err(db)?;
    for (id, due) in updates {
        update.execute(params![id, due]).map_err(db)?;
    }
    Ok(())
}

/// The `next_due` column of a snapshot: [`MemberState::next_due_at`] in
/// microseconds since the epoch, rounded down (so `next_due <= now` in
/// microseconds never misses a member that is due).
fn next_due(state: &MemberState) -> Option<i64> {
    state.next_due_at().map(|t| t.timestamp_micros())
}

fn db(e: rusqlite::Error) -> CrmError {
    CrmError::Store(format!("sqlite: {e}"))
}

fn corrupt(table: &str, key: &dyn Display, why: impl Display) -> CrmError {
    CrmError::Store(format!("sqlite: corrupt row in {table} ({key}): {why}"))
}

fn encode<T: Serialize>(value: &T, what: &str) -> Result<String, CrmError> {
    super::json::to_string(value).map_err(|e| CrmError::Store(format!("cannot encode {what}: {e}")))
}

/// Decode a JSON column, naming the table and key when it is not valid.
fn decode<T: DeserializeOwned>(v: ValueRef<'_>, table: &str, key: &dyn Display) -> Result<T, CrmError> {
    let bytes = match v {
        ValueRef::Text(b) | ValueRef::Blob(b) => b,
        other => return Err(corrupt(table, key, format_args!("expected JSON text, found {}", other.data_type()))),
    };
    serde_json::from_slice(bytes).map_err(|e| corrupt(table, key, e))
}

fn decode_u64(v: ValueRef<'_>, table: &str, key: &dyn Display) -> Result<u64, CrmError> {
    match v {
        ValueRef::Integer(n) if n >= 0 => Ok(n as u64),
        other => Err(corrupt(table, key, format_args!("expected a non-negative integer, found {other:?}"))),
    }
}

fn decode_text(v: ValueRef<'_>, table: &str, key: &dyn Display) -> Result<String, CrmError> {
    decode_str(v, table, key).map(str::to_owned)
}

/// A text column, borrowed from the row.
fn decode_str<'a>(v: ValueRef<'a>, table: &str, key: &dyn Display) -> Result<&'a str, CrmError> {
    match v {
        ValueRef::Text(b) => std::str::from_utf8(b).map_err(|e| corrupt(table, key, e)),
        other => Err(corrupt(table, key, format_args!("expected text, found {}", other.data_type()))),
    }
}

fn to_i64(v: u64, what: &str) -> Result<i64, CrmError> {
    i64::try_from(v).map_err(|_| CrmError::Store(format!("sqlite: {what} {v} is out of range")))
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == ErrorCode::ConstraintViolation
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Names an event row in error messages without allocating on the happy path.
struct EventKey<'a>(&'a str, u64);

impl Display for EventKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "member {} seq {}", self.0, self.1)
    }
}

/// Visits the events of member `id` numbered `after + 1 ..= upto`, in
/// order, refusing a gap; returns the number of the last one (`after` when
/// there are none). Starts at the row holding event `after + 1` (the last
/// row numbered from at most there), so a read after a snapshot skips the
/// rows before it in the index.
fn each_event(
    conn: &Connection,
    id: &str,
    after: u64,
    upto: u64,
    visit: &mut dyn FnMut(Event) -> Result<(), CrmError>,
) -> Result<u64, CrmError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, last, body FROM events WHERE member_id = ?1 AND seq <= ?3 \
             AND seq >= (SELECT coalesce(max(seq), 1) FROM events WHERE member_id = ?1 AND seq <= ?2 + 1) \
             ORDER BY seq",
        )
        .map_err(db)?;
    let mut rows =
        stmt.query(params![id, to_i64(after, "event number")?, to_i64(upto, "event number")?]).map_err(db)?;
    // The number of the last event visited or skipped.
    let mut seq = None::<u64>;
    while let Some(row) = rows.next().map_err(db)? {
        let first = decode_u64(row.get_ref(0).map_err(db)?, "events", &EventKey(id, 0))?;
        let key = EventKey(id, first);
        let last = decode_u64(row.get_ref(1).map_err(db)?, "events", &key)?;
        let events: Vec<Event> = decode(row.get_ref(2).map_err(db)?, "events", &key)?;
        let expected_first = seq.map_or(first.min(after + 1), |s| s + 1);
        if first != expected_first {
            return Err(corrupt("events", &key, "gap in the event sequence"));
        }
        if last < first || events.len() as u64 != last - first + 1 {
            return Err(corrupt("events", &key, format_args!("{} events numbered {first}..={last}", events.len())));
        }
        for (n, event) in (first..).zip(events) {
            if n > after && n <= upto {
                visit(event)?;
            }
        }
        seq = Some(last);
    }
    Ok(seq.map_or(after, |s| s.clamp(after, upto)))
}

/// One member write, encoded before the lock is taken.
struct EncodedWrite {
    id: String,
    expected: i64,
    version: i64,
    /// The snapshot at `version`, when this commit rewrites it.
    state: Option<String>,
    next_due: Option<i64>,
    /// The commit's events of this member, as one JSON array.
    events: Option<String>,
}

impl Store for SqliteStore {
    /// Reads the version, and the snapshot only when the cache misses.
    fn load(&self, id: &MemberId) -> Result<Option<Versioned>, CrmError> {
        Ok(self.shared(id, false)?.map(|(state, version)| Versioned { state: Arc::unwrap_or_clone(state), version }))
    }

    /// Lends the cached (or freshly decoded) snapshot without copying it,
    /// after the locks are released (so `view` may call the store).
    fn inspect(&self, id: &MemberId, view: &mut dyn FnMut(&MemberState)) -> Result<bool, CrmError> {
        Ok(self.shared(id, true)?.map(|(state, _)| view(&state)).is_some())
    }

    /// Lends every snapshot like [`Store::inspect`], chunked like [`Store::scan`].
    fn inspect_all(&self, view: &mut dyn FnMut(&MemberState) -> Result<(), CrmError>) -> Result<(), CrmError> {
        self.chunks(true, &mut |state, _| view(&state))
    }

    fn identity_owner(&self, identity: &Identity) -> Result<Option<MemberId>, CrmError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT member_id FROM identities WHERE channel = ?1 AND external_id = ?2")
            .map_err(db)?;
        stmt.query_row(params![identity.channel, identity.external_id], |r| r.get::<_, String>(0))
            .optional()
            .map(|o| o.map(MemberId))
            .map_err(db)
    }

    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>, CrmError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT member_id FROM orders WHERE order_id = ?1").map_err(db)?;
        stmt.query_row([order_id], |r| r.get::<_, String>(0)).optional().map(|o| o.map(MemberId)).map_err(db)
    }

    fn receipt(&self, key: &str) -> Result<Option<Receipt>, CrmError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT body FROM receipts WHERE key = ?1").map_err(db)?;
        let mut rows = stmt.query([key]).map_err(db)?;
        match rows.next().map_err(db)? {
            Some(row) => Ok(Some(decode(row.get_ref(0).map_err(db)?, "receipts", &key)?)),
            None => Ok(None),
        }
    }

    fn tally(&self, key: &str) -> Result<Option<VersionedTally>, CrmError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT version, count, amount FROM tallies WHERE key = ?1").map_err(db)?;
        let mut rows = stmt.query([key]).map_err(db)?;
        let Some(row) = rows.next().map_err(db)? else { return Ok(None) };
        let version = decode_u64(row.get_ref(0).map_err(db)?, "tallies", &key)?;
        let count: i64 = row.get(1).map_err(db)?;
        let amount = decode_text(row.get_ref(2).map_err(db)?, "tallies", &key)?
            .parse()
            .map_err(|e| corrupt("tallies", &key, format!("amount: {e}")))?;
        Ok(Some(VersionedTally { tally: Tally { count, amount }, version }))
    }

    /// One `BEGIN IMMEDIATE` transaction: version checks, receipts (which
    /// detect duplicate keys through the unique index), identity checks,
    /// then the writes. Any refusal or error rolls everything back.
    /// Commits queued by other threads meanwhile share the transaction and
    /// its fsync (group commit, see the module docs). Once a commit is
    /// durable, its snapshots replace the cached ones and its redacted
    /// members leave the cache.
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        if commit.is_empty() && commit.redact.is_empty() {
            return Ok(());
        }
        // Serialise before taking the lock so concurrent callers overlap.
        let mut commit = commit;
        let encoded = Encoded::new(&commit, self.snapshot_every)?;
        let snapshots = std::mem::take(&mut commit.members)
            .into_iter()
            .map(|w| (w.expected_version + w.events.len() as u64, Arc::new(w.state)))
            .collect();
        let job = Arc::new(Job { commit, encoded, snapshots, answer: Mutex::new(None) });
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&job));
        let mut conn = self.lock_for_write();
        // Written by the thread that held the connection before us?
        let answer = match job.answer() {
            Some(answer) => answer,
            None => {
                // Our job is still queued (only a connection holder
                // dequeues), so this group holds it, with everything queued
                // behind it so far.
                let group = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
                let written = write_group(&mut conn, &group);
                // Still under the writing connection's lock, so the cache
                // sees this handle's commits in order; refused or failed
                // commits leave it untouched.
                if let Some(checkpointer) = &self.checkpointer {
                    if checkpointer.wrote(group.iter().map(|job| job.encoded.bytes()).sum()) {
                        // Nothing is written while this connection is held:
                        // once the background checkpoint ends, this one can
                        // copy all of the WAL (passive: it waits for no
                        // reader; one reading an older snapshot leaves the
                        // rest to the next report of falling behind).
                        checkpointer.pause();
                        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    }
                }
                let mut cache = self.cache();
                for (job, _) in group.iter().zip(written).filter(|(_, ok)| *ok) {
                    for (version, state) in &job.snapshots {
                        cache.put(*version, Arc::clone(state));
                    }
                    for id in &job.commit.redact {
                        cache.remove(id.as_str());
                    }
                }
                job.answer()
                    .unwrap_or_else(|| Err(CrmError::Store("sqlite: a queued commit was not written".into()).into()))
            }
        };
        drop(conn);
        // A commit ends the caller's read scope: what it reads next includes
        // what it has just written.
        if self.reader.is_some() {
            self.end_read_scope();
        }
        answer
    }

    fn events(&self, id: &MemberId) -> Result<Vec<Event>, CrmError> {
        let conn = self.lock();
        let mut out = Vec::new();
        each_event(&conn, id.as_str(), 0, i64::MAX as u64, &mut |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// Visits members in chunks, releasing the lock between chunks, so the
    /// visitor may call back into this store (even commit). Members written
    /// during the scan may or may not be visited; none is visited twice.
    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> Result<(), CrmError>) -> Result<(), CrmError> {
        self.chunks(false, &mut |state, version| visit(Versioned { state: Arc::unwrap_or_clone(state), version }))
    }

    /// Opens a read transaction (`BEGIN DEFERRED`), so a batch's many
    /// lookups share one WAL read snapshot instead of each taking and
    /// releasing the shared-memory locks. Ended by [`Store::end_reads`] or
    /// by the next commit, which re-checks every version it relies on.
    fn begin_reads(&self) {
        let conn = self.reads().lock().unwrap_or_else(PoisonError::into_inner);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        self.reading.store(conn.execute_batch("BEGIN DEFERRED").is_ok(), Ordering::Relaxed);
    }

    fn end_reads(&self) {
        self.end_read_scope();
    }

    /// A file database decides `run_due` chunks on every core: the
    /// deciding threads read on the reading connection (and mostly from the
    /// snapshot cache) while commits go through the writing one (group
    /// commit). An in-memory database has one connection for both, so it
    /// keeps one.
    fn decision_workers(&self) -> usize {
        match self.reader {
            Some(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
            None => 1,
        }
    }

    /// From the `next_due` index: no snapshot is decoded.
    fn due_members(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<MemberId>, CrmError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT id FROM members WHERE next_due <= ?1").map_err(db)?;
        let rows = stmt.query_map([now.timestamp_micros()], |r| r.get::<_, String>(0)).map_err(db)?;
        rows.map(|r| r.map(MemberId).map_err(db)).collect()
    }

    /// Visits receipts in commit order, chunked like [`Store::scan`].
    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let mut after = 0i64;
        loop {
            let chunk = {
                let conn = self.lock();
                let mut stmt = conn
                    .prepare_cached("SELECT seq, key, body FROM receipts WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                    .map_err(db)?;
                let mut rows = stmt.query([after, CHUNK]).map_err(db)?;
                let mut chunk = Vec::with_capacity(CHUNK as usize);
                while let Some(row) = rows.next().map_err(db)? {
                    after = row.get(0).map_err(db)?;
                    let key = match row.get_ref(1).map_err(db)? {
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        _ => format!("seq {after}"),
                    };
                    chunk.push(decode::<Receipt>(row.get_ref(2).map_err(db)?, "receipts", &key)?);
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

/// Write queued commits and settle each one's answer: alone when there is one,
/// otherwise in one transaction with a savepoint per commit. A refusal (stale
/// version, duplicate key, identity taken) undoes that commit's savepoint
/// only; a store error fails the shared transaction, after which each commit
/// is written again on its own so that no caller gets another's error.
/// Returns which commits were written.
fn write_group(conn: &mut Connection, group: &[Arc<Job>]) -> Vec<bool> {
    let settle = |job: &Job, answer: Result<(), CommitError>| {
        let ok = answer.is_ok();
        job.settle(answer);
        ok
    };
    if let [job] = group {
        return vec![settle(job, write_alone(conn, job))];
    }
    let shared = (|| -> Result<Vec<Result<(), CommitError>>, CrmError> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let mut answers = Vec::with_capacity(group.len());
        for job in group {
            let savepoint = tx.savepoint().map_err(db)?;
            match apply(&savepoint, &job.commit, &job.encoded.writes, &job.encoded.receipts) {
                Ok(()) => {
                    savepoint.commit().map_err(db)?;
                    answers.push(Ok(()));
                }
                // Dropping the savepoint rolls back to it.
                Err(CommitError::Store(e)) => return Err(e),
                Err(refused) => answers.push(Err(refused)),
            }
        }
        tx.commit().map_err(db)?;
        Ok(answers)
    })();
    match shared {
        Ok(answers) => group.iter().zip(answers).map(|(job, answer)| settle(job, answer)).collect(),
        Err(_) => group.iter().map(|job| settle(job, write_alone(conn, job))).collect(),
    }
}

/// One commit in a transaction of its own.
fn write_alone(conn: &mut Connection, job: &Job) -> Result<(), CommitError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    apply(&tx, &job.commit, &job.encoded.writes, &job.encoded.receipts)?;
    tx.commit().map_err(db)?;
    Ok(())
    // On any early return `tx` is dropped, which rolls back.
}

/// The body of a commit, inside its transaction (or savepoint).
fn apply(tx: &Connection, commit: &Commit, writes: &[EncodedWrite], receipts: &[String]) -> Result<(), CommitError> {
    // 1. Members: the version check and the write are one statement each,
    //    so a stale write changes no row. A member without a snapshot yet
    //    has `snapshot_version` 0 and an empty `state`.
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO members (id, version, state, snapshot_version, next_due) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version, state = excluded.state, \
                 snapshot_version = excluded.snapshot_version, next_due = excluded.next_due \
                 WHERE members.version = 0",
            )
            .map_err(db)?;
        let mut update = tx
            .prepare_cached(
                "UPDATE members SET version = ?2, state = ?3, snapshot_version = ?2, next_due = ?5 \
                 WHERE id = ?1 AND version = ?4",
            )
            .map_err(db)?;
        let mut bump = tx
            .prepare_cached("UPDATE members SET version = ?2, next_due = ?4 WHERE id = ?1 AND version = ?3")
            .map_err(db)?;
        for w in writes {
            let changed = match (&w.state, w.expected) {
                (Some(state), 0) => insert.execute(params![w.id, w.version, state, w.version, w.next_due]),
                (None, 0) => insert.execute(params![w.id, w.version, "", 0, w.next_due]),
                (Some(state), _) => update.execute(params![w.id, w.version, state, w.expected, w.next_due]),
                (None, _) => bump.execute(params![w.id, w.version, w.expected, w.next_due]),
            }
            .map_err(db)?;
            if changed != 1 {
                return Err(CommitError::Stale { member: MemberId(w.id.clone()) });
            }
        }
    }

    // 1b. Tallies: versioned like members (first write inserts version 1).
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO tallies (key, version, count, amount) VALUES (?1, 1, ?2, ?3) ON CONFLICT (key) DO NOTHING",
            )
            .map_err(db)?;
        let mut update = tx
            .prepare_cached(
                "UPDATE tallies SET version = version + 1, count = ?2, amount = ?3 WHERE key = ?1 AND version = ?4",
            )
            .map_err(db)?;
        for t in &commit.tallies {
            let amount = t.tally.amount.to_string();
            let changed = if t.expected_version == 0 {
                insert.execute(params![t.key, t.tally.count, amount])
            } else {
                update.execute(params![t.key, t.tally.count, amount, to_i64(t.expected_version, "tally version")?])
            }
            .map_err(db)?;
            if changed != 1 {
                return Err(CommitError::StaleTally { key: t.key.clone() });
            }
        }
    }

    // 2. Receipts, in order; the unique index on `key` reports duplicates.
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO receipts (key, member_id, body) VALUES (?1, ?2, ?3)").map_err(db)?;
        for (r, body) in commit.receipts.iter().zip(receipts) {
            match insert.execute(params![r.key, r.member_id.as_ref().map(MemberId::as_str), body]) {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Err(CommitError::DuplicateKey { key: r.key.clone() }),
                Err(e) => return Err(db(e).into()),
            }
        }
    }

    // 3. Identity claims against the identities as they were before.
    {
        let mut owner = tx
            .prepare_cached("SELECT member_id FROM identities WHERE channel = ?1 AND external_id = ?2")
            .map_err(db)?;
        for (identity, claim) in &commit.identities {
            let Some(new) = claim else { continue };
            let old: Option<String> = owner
                .query_row(params![identity.channel, identity.external_id], |r| r.get(0))
                .optional()
                .map_err(db)?;
            if let Some(old) = old {
                let released = commit.identities.iter().any(|(i, o)| i == identity && o.is_none());
                if old != new.0 && !released {
                    return Err(CommitError::IdentityTaken { identity: identity.clone(), owner: MemberId(old) });
                }
            }
        }
    }

    // 4. Events, numbered on from the expected version.
    {
        let mut insert =
            tx.prepare_cached("INSERT INTO events (member_id, seq, last, body) VALUES (?1, ?2, ?3, ?4)").map_err(db)?;
        for w in writes {
            if let Some(events) = &w.events {
                insert.execute(params![w.id, w.expected + 1, w.version, events]).map_err(db)?;
            }
        }
    }

    // 5. Identity claims and releases, in order.
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO identities (channel, external_id, member_id) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (channel, external_id) DO UPDATE SET member_id = excluded.member_id",
            )
            .map_err(db)?;
        let mut delete =
            tx.prepare_cached("DELETE FROM identities WHERE channel = ?1 AND external_id = ?2").map_err(db)?;
        for (identity, claim) in &commit.identities {
            match claim {
                Some(m) => upsert.execute(params![identity.channel, identity.external_id, m.0]),
                None => delete.execute(params![identity.channel, identity.external_id]),
            }
            .map_err(db)?;
        }
    }

    // 6. Order owners.
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO orders (order_id, member_id) VALUES (?1, ?2) \
                 ON CONFLICT (order_id) DO UPDATE SET member_id = excluded.member_id",
            )
            .map_err(db)?;
        for (order, member) in &commit.orders {
            upsert.execute(params![order, member.0]).map_err(db)?;
        }
    }

    // 7. Erasure: rewrite stored events and receipt commands (including
    //    those written above).
    for id in &commit.redact {
        redact(tx, id)?;
    }
    Ok(())
}

fn redact(tx: &Connection, id: &MemberId) -> Result<(), CrmError> {
    let mut rewrites: Vec<(i64, String)> = Vec::new();
    {
        let mut select = tx.prepare_cached("SELECT seq, body FROM events WHERE member_id = ?1").map_err(db)?;
        let mut rows = select.query([id.as_str()]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let seq: i64 = row.get(0).map_err(db)?;
            let events: Vec<Event> = decode(row.get_ref(1).map_err(db)?, "events", &EventKey(id.as_str(), seq as u64))?;
            let redacted: Vec<Event> = events.iter().map(Event::redacted).collect();
            if redacted != events {
                rewrites.push((seq, encode(&redacted, "events")?));
            }
        }
    }
    {
        let mut update =
            tx.prepare_cached("UPDATE events SET body = ?3 WHERE member_id = ?1 AND seq = ?2").map_err(db)?;
        for (seq, event) in rewrites.drain(..) {
            update.execute(params![id.as_str(), seq, event]).map_err(db)?;
        }
    }
    {
        let mut select = tx.prepare_cached("SELECT seq, key, body FROM receipts WHERE member_id = ?1").map_err(db)?;
        let mut rows = select.query([id.as_str()]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let seq: i64 = row.get(0).map_err(db)?;
            let key: String = row.get(1).map_err(db)?;
            let mut receipt: Receipt = decode(row.get_ref(2).map_err(db)?, "receipts", &key)?;
            let command = receipt.command.redacted();
            if command != receipt.command {
                receipt.command = command;
                rewrites.push((seq, encode(&receipt, "receipt")?));
            }
        }
    }
    let mut update = tx.prepare_cached("UPDATE receipts SET body = ?2 WHERE seq = ?1").map_err(db)?;
    for (seq, body) in rewrites {
        update.execute(params![seq, body]).map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Order, Outcome, Program};
    use chrono::{Duration, TimeZone, Utc};
    use rust_decimal::Decimal;

    /// A database written at schema version 1 (no `next_due`, receipts with
    /// AUTOINCREMENT) is upgraded: the column is backfilled from the
    /// snapshots, so `run_due` still finds every member with something due,
    /// and the receipts keep their order; the tallies table arrives empty;
    /// every snapshot is marked current (migration 5) and the events move to
    /// one-row-per-commit runs (migration 6) that read back the same.
    #[test]
    fn migrations_2_to_6_upgrade_a_version_1_file() {
        let dir = fresh_dir("mig2");
        let path = dir.join("v1.db");
        let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        let ids: Vec<MemberId> = (0..3).map(|i| MemberId(format!("m{i}"))).collect();
        let events_before: Vec<Vec<Event>> = {
            let e = Engine::new(
                Program::default_demo(),
                SqliteStore::open_with(&path, SqliteOptions::new().snapshot_every(1)).unwrap(),
            );
            for i in 0..3 {
                let o = Order::paid(format!("o{i}"), format!("m{i}"), t0, Decimal::from(10 + i));
                e.record_order(o, t0).unwrap();
            }
            ids.iter().map(|id| e.store().events(id).unwrap()).collect()
        };
        assert!(events_before.iter().all(|e| e.len() > 1), "{events_before:?}");
        {
            // Turn the file back into a version-1 database.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE e1 (member_id TEXT NOT NULL REFERENCES members (id), seq INTEGER NOT NULL,
                                  event TEXT NOT NULL, PRIMARY KEY (member_id, seq)) STRICT;
                 INSERT INTO e1 SELECT member_id, seq + j.key, j.value FROM events, json_each(events.body) AS j;
                 DROP TABLE events; ALTER TABLE e1 RENAME TO events;
                 ALTER TABLE members DROP COLUMN snapshot_version;
                 DROP TABLE tallies;
                 DROP INDEX members_by_next_due; ALTER TABLE members DROP COLUMN next_due;
                 CREATE TABLE r1 (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
                                  member_id TEXT, body TEXT NOT NULL) STRICT;
                 INSERT INTO r1 SELECT * FROM receipts ORDER BY seq;
                 DROP TABLE receipts; ALTER TABLE r1 RENAME TO receipts;
                 CREATE INDEX receipts_by_member ON receipts (member_id);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        {
            let conn = store.lock();
            let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(v, SCHEMA_VERSION);
            let nulls: i64 =
                conn.query_row("SELECT count(*) FROM members WHERE next_due IS NULL", [], |r| r.get(0)).unwrap();
            assert_eq!(nulls, 0);
            let stale: i64 = conn
                .query_row("SELECT count(*) FROM members WHERE snapshot_version != version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(stale, 0, "every pre-5 snapshot is current");
        }
        let events_after: Vec<Vec<Event>> = ids.iter().map(|id| store.events(id).unwrap()).collect();
        assert_eq!(events_after, events_before);
        assert_eq!(store.tally("coupon_template:any").unwrap(), None);
        assert_eq!(store.due_members(t0).unwrap(), Vec::<MemberId>::new());
        let later = t0 + Duration::days(400);
        assert_eq!(store.due_members(later).unwrap().len(), 3);
        let e = Engine::new(Program::default_demo(), store);
        match e.run_due(later).unwrap() {
            Outcome::Due { members, expired, .. } => assert_eq!((members, expired), (3, 10 + 11 + 12)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.store().due_members(later).unwrap(), Vec::<MemberId>::new());
        let mut keys = Vec::new();
        e.store()
            .receipts(&mut |r| {
                keys.push(r.key);
                Ok(())
            })
            .unwrap();
        assert_eq!(keys[..3], ["order:o0", "order:o1", "order:o2"]);
        assert!(keys[3].starts_with("run_due:"), "{keys:?}");
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An empty directory of this process under the system's temp dir.
    fn fresh_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crm-sqlite-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Batch `batch` of 500 paid orders, each by a new member, at `t0`.
    fn record_batch<S: Store>(e: &Engine<S>, batch: usize, t0: chrono::DateTime<Utc>) {
        let orders: Vec<Order> = (0..500)
            .map(|i| Order::paid(format!("o{batch}-{i}"), format!("m{batch}-{i}"), t0, Decimal::from(10 + i)))
            .collect();
        assert!(e.record_orders(&orders, t0).unwrap().iter().all(Result::is_ok));
    }

    /// Every stored member with its version, by id.
    fn stored_members<S: Store>(store: &S) -> Vec<(u64, MemberState)> {
        let mut all = Vec::new();
        store
            .scan(&mut |v| {
                all.push((v.version, v.state));
                Ok(())
            })
            .unwrap();
        all.sort_by(|x, y| x.1.id.cmp(&y.1.id));
        all
    }

    fn job(commit: Commit) -> Arc<Job> {
        let encoded = Encoded::new(&commit, 1).unwrap();
        Arc::new(Job { commit, encoded, snapshots: Vec::new(), answer: Mutex::new(None) })
    }

    /// A commit adding tag `tag` to `id` on top of `before`, with receipt `key`.
    fn tag_commit(before: Option<&Versioned>, id: &str, tag: &str, key: &str) -> Commit {
        let at = Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap();
        let (mut state, expected_version) = match before {
            Some(v) => (v.state.clone(), v.version),
            None => (MemberState::new(MemberId(id.into()), at), 0),
        };
        let event = Event::TagAdded { at, tag: tag.into() };
        state.evolve(&event);
        let command = crate::Command::AddTag { member_id: MemberId(id.into()), tag: tag.into() };
        let receipt = Receipt {
            key: key.into(),
            now: at,
            member_id: Some(MemberId(id.into())),
            command,
            outcome: Outcome::Member { member_id: MemberId(id.into()) },
        };
        Commit {
            members: vec![super::super::MemberWrite { expected_version, events: vec![event], state }],
            receipts: vec![receipt],
            ..Commit::default()
        }
    }

    /// The WAL reaches the database file while the store stays open and
    /// writes, although the writing connection never checkpoints (the
    /// background checkpointer does), and the WAL stops growing.
    #[test]
    fn the_checkpointer_copies_the_wal_while_the_store_writes() {
        let dir = fresh_dir("ckpt");
        let path = dir.join("c.db");
        let options = SqliteOptions::new().synchronous(Synchronous::Normal);
        let e = Engine::new(Program::default_demo(), SqliteStore::open_with(&path, options).unwrap());
        let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal = dir.join("c.db-wal");
        let mut wal_peak = 0;
        for batch in 0..40 {
            record_batch(&e, batch, t0);
            wal_peak = wal_peak.max(size(&wal));
        }
        // About 40 MB of JSON went through the WAL; the checkpoint thread
        // copies it behind the writer, so the database file grows now.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while size(&path) < 8 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(size(&path) >= 8 << 20, "database {} bytes, WAL {} bytes", size(&path), size(&wal));
        assert!(wal_peak < size(&path), "WAL peak {wal_peak} bytes vs database {} bytes", size(&path));
        assert_eq!(e.store().due_members(t0 + Duration::days(400)).unwrap().len(), 20_000);
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A larger `checkpoint_bytes` leaves the commits in the WAL until that
    /// much is written (here never), and closing the store copies them in.
    #[test]
    fn checkpoint_bytes_defers_the_copy_until_close() {
        let dir = fresh_dir("ckpt-late");
        let path = dir.join("c.db");
        let options = SqliteOptions::new().synchronous(Synchronous::Normal).checkpoint_bytes(1 << 30);
        let e = Engine::new(Program::default_demo(), SqliteStore::open_with(&path, options).unwrap());
        let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        for batch in 0..12 {
            record_batch(&e, batch, t0);
        }
        // ~12 MB of commits, three times the default threshold: with it,
        // the checkpoint thread would have copied them by now.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let wal = dir.join("c.db-wal");
        assert!(size(&wal) >= 8 << 20, "WAL {} bytes", size(&wal));
        assert!(size(&path) < 1 << 20, "database {} bytes: checkpointed early", size(&path));
        drop(e);
        assert!(size(&path) >= 8 << 20, "database {} bytes after close", size(&path));
        let e = Engine::new(Program::default_demo(), SqliteStore::open(&path).unwrap());
        assert_eq!(e.store().due_members(t0 + Duration::days(400)).unwrap().len(), 6_000);
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `run_due` on a file database decides (and, with no coupon tally
    /// involved, commits) its chunks on every core, the reading connection
    /// and the cache serving the deciding threads: the outcome and every
    /// stored member are those of the one-thread run on the memory store.
    #[test]
    fn run_due_on_several_threads_matches_one_thread() {
        let dir = fresh_dir("due");
        let options = SqliteOptions::new().synchronous(Synchronous::Normal).member_cache(100);
        let file = Engine::new(Program::default_demo(), SqliteStore::open_with(dir.join("d.db"), options).unwrap());
        let memory = Engine::new(Program::default_demo(), crate::MemoryStore::with_decision_workers(1));
        let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap();
        let orders: Vec<Order> = (0..1_500)
            .map(|i| {
                let at = t0 + Duration::days(i % 90);
                Order::paid(format!("o{i}"), format!("m{}", i % 700), at, Decimal::new(1_000 + i * 37, 2))
            })
            .collect();
        let later = t0 + Duration::days(420);
        let imported = t0 + Duration::days(90);
        assert!(file.record_orders(&orders, imported).unwrap().iter().all(Result::is_ok));
        assert!(memory.record_orders(&orders, imported).unwrap().iter().all(Result::is_ok));
        assert!(file.store().decision_workers() >= 1);
        let (a, b) = (file.run_due(later).unwrap(), memory.run_due(later).unwrap());
        assert_eq!(a, b);
        match a {
            Outcome::Due { members, expired, .. } => assert!(members > 500 && expired > 0, "{members} {expired}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(stored_members(file.store()) == stored_members(memory.store()), "stored members differ");
        drop(file);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// One group with commits that succeed and commits that are refused: each
    /// refused one is undone alone (its savepoint), the others are written,
    /// and every caller gets its own answer. Later commits of a group see the
    /// earlier ones (the group is a serial order).
    #[test]
    fn a_group_writes_its_good_commits_and_refuses_the_others_alone() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.commit(tag_commit(None, "alice", "seed", "k0")).unwrap();
        let alice = store.load(&MemberId("alice".into())).unwrap().unwrap();
        let group = [
            job(tag_commit(Some(&alice), "alice", "a", "k1")), // ok: alice v1 -> v2
            job(tag_commit(None, "bob", "b", "k1")),           // duplicate key k1 (written just before)
            job(tag_commit(None, "carol", "c", "k2")),         // ok
            job(tag_commit(Some(&alice), "alice", "stale", "k3")), // stale: alice is v2 by now
            job(tag_commit(None, "dave", "d", "k4")),          // ok
        ];
        {
            let mut conn = store.lock_for_write();
            write_group(&mut conn, &group);
        }
        let answers: Vec<_> = group.iter().map(|j| j.answer().expect("settled")).collect();
        assert_eq!(answers[0], Ok(()));
        assert_eq!(answers[1], Err(CommitError::DuplicateKey { key: "k1".into() }));
        assert_eq!(answers[2], Ok(()));
        assert_eq!(answers[3], Err(CommitError::Stale { member: MemberId("alice".into()) }));
        assert_eq!(answers[4], Ok(()));
        let load = |id: &str| store.load(&MemberId(id.into())).unwrap();
        assert_eq!(load("alice").unwrap().version, 2);
        assert!(load("alice").unwrap().state.tags.contains("a"));
        assert!(!load("alice").unwrap().state.tags.contains("stale"));
        assert_eq!(load("bob"), None);
        assert_eq!(load("carol").unwrap().version, 1);
        assert_eq!(load("dave").unwrap().version, 1);
        let mut keys = Vec::new();
        store
            .receipts(&mut |r| {
                keys.push((r.key, r.member_id.map(|m| m.0)));
                Ok(())
            })
            .unwrap();
        let keys: Vec<_> = keys.iter().map(|(k, m)| format!("{k}:{}", m.as_deref().unwrap_or("-"))).collect();
        assert_eq!(keys, ["k0:alice", "k1:alice", "k2:carol", "k4:dave"]);
        assert_eq!(store.events(&MemberId("alice".into())).unwrap().len(), 2);
        assert!(store.events(&MemberId("bob".into())).unwrap().is_empty());
    }

    /// Many threads on one handle: every acknowledged order is there, none
    /// twice, and the concurrent spenders of one member never overspend,
    /// whatever groups the commits happened to form.
    #[test]
    fn concurrent_writers_on_one_handle_lose_nothing_and_never_overspend() {
        let dir = std::env::temp_dir().join(format!("crm-sqlite-group-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(dir.join("g.db")).unwrap();
        let e = Engine::new(Program::default_demo(), store);
        let t = Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap();
        // 100.00 for the shared member: 100 points to fight over.
        e.record_order(Order::paid("seed", "shared", t, Decimal::new(10_000, 2)), t).unwrap();
        let threads = 8;
        let per_thread = 25;
        let spent: Vec<i64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|th| {
                    let e = &e;
                    scope.spawn(move || {
                        let mut spent = 0;
                        for i in 0..per_thread {
                            let at = t + Duration::minutes(i as i64);
                            let order = Order::paid(format!("o{th}-{i}"), format!("m{th}"), at, Decimal::new(1_000, 2));
                            match e.record_order(order.clone(), at).unwrap() {
                                Outcome::Order { .. } => {}
                                other => panic!("{other:?}"),
                            }
                            // The same order again: the first result, nothing new.
                            e.record_order(order, at).unwrap();
                            if e.redeem(&MemberId("shared".into()), "reward", 3, &format!("r{th}-{i}"), at).is_ok() {
                                spent += 3;
                            }
                        }
                        spent
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let spent: i64 = spent.iter().sum();
        let at = t + Duration::hours(1);
        assert_eq!(spent, 99, "33 redemptions of 3 fit in 100 points");
        assert_eq!(e.balance(&MemberId("shared".into()), "reward", at).unwrap().available, 1);
        for th in 0..threads {
            let id = MemberId(format!("m{th}"));
            assert_eq!(e.balance(&id, "reward", at).unwrap().available, 10 * per_thread as i64, "member m{th}");
            assert_eq!(e.member(&id).unwrap().orders.len(), per_thread);
        }
        drop(e);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
