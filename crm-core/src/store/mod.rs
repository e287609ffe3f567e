//! Storage traits and their adapters.
//!
//! A store is deliberately small so a host can implement it over its own
//! database: load a member snapshot with its version, commit a batch of
//! member writes atomically with optimistic concurrency, look up identities,
//! order owners and idempotency receipts, and scan members for batch work.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::command::{Command, Outcome};
use crate::error::CrmError;
use crate::member::{Identity, MemberId};
use crate::state::{Event, MemberState};

mod json;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// A member snapshot and the number of events it folds.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub state: MemberState,
    pub version: u64,
}

/// New events of one member, the resulting snapshot, and the version the
/// decision was based on (0 for a new member).
#[derive(Debug, Clone)]
pub struct MemberWrite {
    pub expected_version: u64,
    pub events: Vec<Event>,
    pub state: MemberState,
}

/// The record of an executed command, kept under its idempotency key.
/// Receipts in commit order are the command log that replay re-executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub key: String,
    pub now: DateTime<Utc>,
    /// The member the command was about (for erasure of personal data).
    pub member_id: Option<MemberId>,
    pub command: Command,
    pub outcome: Outcome,
}

/// A programme-wide running total that several members' commands draw on
/// (coupons of a template issued so far and the face value they commit), so
/// a limit over all members holds even when two writers race for the last
/// unit: each tally carries a version and is written under the same
/// optimistic check as a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tally {
    pub count: i64,
    pub amount: Decimal,
}

/// A tally as stored and the number of writes it has seen (0: never written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VersionedTally {
    pub tally: Tally,
    pub version: u64,
}

/// A new value for a tally, refused unless the stored version is still
/// `expected_version` (the written version is `expected_version + 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyWrite {
    pub key: String,
    pub expected_version: u64,
    pub tally: Tally,
}

/// Everything one command (or one import batch) changes, committed atomically.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub members: Vec<MemberWrite>,
    /// Identities to point at a member (`Some`) or release (`None`).
    pub identities: Vec<(Identity, Option<MemberId>)>,
    /// Order ids to point at their owning member.
    pub orders: Vec<(String, MemberId)>,
    pub receipts: Vec<Receipt>,
    /// Members whose stored events and receipts must lose their personal data.
    pub redact: Vec<MemberId>,
    /// Programme-wide tallies to write (coupon limits and budgets).
    pub tallies: Vec<TallyWrite>,
}

impl Commit {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
            && self.identities.is_empty()
            && self.orders.is_empty()
            && self.receipts.is_empty()
            && self.tallies.is_empty()
    }
}

/// Why a commit was refused. Nothing of a refused commit is written.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitError {
    /// Another writer changed this member since it was loaded.
    Stale { member: MemberId },
    /// Another writer changed this programme-wide tally since it was read.
    StaleTally { key: String },
    /// A receipt with this key already exists.
    DuplicateKey { key: String },
    /// The identity already belongs to another member.
    IdentityTaken { identity: Identity, owner: MemberId },
    /// The store itself failed.
    Store(CrmError),
}

impl From<CrmError> for CommitError {
    fn from(e: CrmError) -> Self {
        CommitError::Store(e)
    }
}

/// The storage contract. Implementations must make `commit` atomic: either
/// every part of it is durable, or none is.
pub trait Store: Send + Sync {
    /// The member's snapshot, if it exists.
    fn load(&self, id: &MemberId) -> Result<Option<Versioned>, CrmError>;
    /// The snapshots of several members, in the order asked (`None`: no
    /// such member). The default loads them one by one; the memory store
    /// reads them all under one hold of its lock, so a `run_due` chunk
    /// decided on one thread is not held up member after member by the
    /// commits of another.
    fn load_many(&self, ids: &[MemberId]) -> Result<Vec<Option<Versioned>>, CrmError> {
        ids.iter().map(|id| self.load(id)).collect()
    }
    /// The member an identity belongs to.
    fn identity_owner(&self, identity: &Identity) -> Result<Option<MemberId>, CrmError>;
    /// The member an order was recorded for.
    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>, CrmError>;
    /// The receipt stored under an idempotency key.
    fn receipt(&self, key: &str) -> Result<Option<Receipt>, CrmError>;
    /// Atomically apply a commit (see [`CommitError`]).
    fn commit(&self, commit: Commit) -> Result<(), CommitError>;
    /// A programme-wide tally and its version; `None` if never written.
    fn tally(&self, key: &str) -> Result<Option<VersionedTally>, CrmError>;
    /// All events of a member, oldest first.
    fn events(&self, id: &MemberId) -> Result<Vec<Event>, CrmError>;
    /// Visit every member snapshot (order unspecified).
    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> Result<(), CrmError>) -> Result<(), CrmError>;
    /// Visit every receipt in commit order (the command log).
    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> Result<(), CrmError>) -> Result<(), CrmError>;
    /// Members that may have something due at `now`: at least every member
    /// whose [`MemberState::next_due_at`] is at or before `now` (the engine
    /// re-checks each one, so extra members are harmless, missing ones are
    /// not). The default scans every snapshot; a store should answer from an
    /// index (the SQLite store keeps an indexed `next_due` column).
    fn due_members(&self, now: DateTime<Utc>) -> Result<Vec<MemberId>, CrmError> {
        let mut due = Vec::new();
        self.scan(&mut |v| {
            if v.state.next_due_at().is_some_and(|d| d <= now) {
                due.push(v.state.id);
            }
            Ok(())
        })?;
        Ok(due)
    }
    /// Call `view` with the member's snapshot without handing out a copy;
    /// `false` when the member does not exist. The default loads (copies) it;
    /// the memory store lends its own. For read-only queries.
    fn inspect(&self, id: &MemberId, view: &mut dyn FnMut(&MemberState)) -> Result<bool, CrmError> {
        Ok(self.load(id)?.map(|v| view(&v.state)).is_some())
    }
    /// Call `view` with every member snapshot without handing out copies
    /// (programme-wide reports: liability, tier and stage distributions).
    /// The default copies through [`Store::scan`]; the memory store lends
    /// its own under its read lock, so `view` must not call the store.
    fn inspect_all(&self, view: &mut dyn FnMut(&MemberState) -> Result<(), CrmError>) -> Result<(), CrmError> {
        self.scan(&mut |v| view(&v.state))
    }
    /// Threads that may decide `run_due` chunks at once: each calls
    /// [`Store::begin_reads`], `load` and `tally` on its own while the calling
    /// thread commits the chunks in order. The default, 1, keeps everything on
    /// the calling thread (a store whose reads share one connection gains
    /// nothing from more); the memory store answers with the machine's cores.
    fn decision_workers(&self) -> usize {
        1
    }
    /// Most members per `run_due` transaction (at most 1,000, the default).
    /// A durable store commits each chunk with a sync, so it wants them large;
    /// the memory store wants them small (see its answer).
    fn due_chunk(&self) -> usize {
        crate::engine::RUN_DUE_CHUNK
    }
    /// A hint that many reads for one decision follow (a batch import): the
    /// store may serve them from one read snapshot until [`Store::end_reads`]
    /// or the next [`Store::commit`] (which must still check every version,
    /// as always). The default does nothing.
    fn begin_reads(&self) {}
    /// Ends what [`Store::begin_reads`] started. The default does nothing.
    fn end_reads(&self) {}
}

impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn load(&self, id: &MemberId) -> Result<Option<Versioned>, CrmError> {
        (**self).load(id)
    }
    fn load_many(&self, ids: &[MemberId]) -> Result<Vec<Option<Versioned>>, CrmError> {
        (**self).load_many(ids)
    }
    fn identity_owner(&self, identity: &Identity) -> Result<Option<MemberId>, CrmError> {
        (**self).identity_owner(identity)
    }
    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>, CrmError> {
        (**self).order_owner(order_id)
    }
    fn receipt(&self, key: &str) -> Result<Option<Receipt>, CrmError> {
        (**self).receipt(key)
    }
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        (**self).commit(commit)
    }
    fn tally(&self, key: &str) -> Result<Option<VersionedTally>, CrmError> {
        (**self).tally(key)
    }
    fn events(&self, id: &MemberId) -> Result<Vec<Event>, CrmError> {
        (**self).events(id)
    }
    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> Result<(), CrmError>) -> Result<(), CrmError> {
        (**self).scan(visit)
    }
    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> Result<(), CrmError>) -> Result<(), CrmError> {
        (**self).receipts(visit)
    }
    fn due_members(&self, now: DateTime<Utc>) -> Result<Vec<MemberId>, CrmError> {
        (**self).due_members(now)
    }
    fn inspect_all(&self, view: &mut dyn FnMut(&MemberState) -> Result<(), CrmError>) -> Result<(), CrmError> {
        (**self).inspect_all(view)
    }
    fn inspect(&self, id: &MemberId, view: &mut dyn FnMut(&MemberState)) -> Result<bool, CrmError> {
        (**self).inspect(id, view)
    }
    fn decision_workers(&self) -> usize {
        (**self).decision_workers()
    }
    fn due_chunk(&self) -> usize {
        (**self).due_chunk()
    }
    fn begin_reads(&self) {
        (**self).begin_reads()
    }
    fn end_reads(&self) {
        (**self).end_reads()
    }
}
