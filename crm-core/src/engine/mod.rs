//! The façade a host calls: loads members from a [`Store`], decides, appends
//! the events and returns results. `now` is always an argument.
//!
//! # Refunds and cancellations
//!
//! A refund (or the full refund that cancelling a paid order implies) claws
//! back, per point type, a *target* of `floor(earned × refunded / amount)`,
//! where `refunded` is everything refunded on the order so far; a full refund
//! targets all of `earned` **plus the bonuses the order triggered** (the
//! first-order bonus), which partial refunds never touch. From the target it
//! subtracts what earlier refunds already clawed and **the order's own points
//! that expired unspent** (expired by `run_due`, or past their expiry at the
//! refund's `at` and not yet expired): the member already lost those to
//! expiry, and they are not taken twice. The balance therefore never ends
//! lower than if the expired points had been clawed back when they expired.
//! Only the rest is taken: from the order's own open lots (pending or
//! available; its bonus lots only on a full refund), then from other
//! available lots soonest expiry first, and what is still missing becomes
//! debt (`allow_negative`) or a written-off shortfall (`cap_at_zero`).
//!
//! A refund may not be dated before the order was paid (`refund.at`), and an
//! explicit `at` on a status change not before the order was placed — nor,
//! when cancelling a paid order, before it was paid (`at`): as-of views
//! would otherwise apply a clawback before the lot it takes from exists.
//!
//! ```
//! use crm_core::{Engine, MemoryStore, Program, Order};
//! use chrono::{TimeZone, Utc};
//! use rust_decimal::Decimal;
//!
//! let engine = Engine::new(Program::default_demo(), MemoryStore::new());
//! let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
//! let order = Order::paid("o-1", "alice", now, Decimal::new(12_999, 2)); // 129.99
//! engine.record_order(order, now).unwrap();
//! assert_eq!(engine.balance(&"alice".into(), "reward", now).unwrap().available, 129);
//! engine.redeem(&"alice".into(), "reward", 100, "redeem-1", now).unwrap();
//! assert_eq!(engine.balance(&"alice".into(), "reward", now).unwrap().available, 29);
//! ```

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::command::{Clawback, Command, Outcome};
use crate::error::{CrmError, Result};
use crate::facts::{check_amount, check_ref, Order, OrderStatus, Refund, RefundScope, ReturnedItem};
use crate::ledger::{self, Allocation, Balance, Lot, LotPhase, LotSource};
use crate::member::{Identity, MemberId, MemberStatus, Profile};
use crate::program::{Action, ClawbackPolicy, ExpiryPolicy, Program};
use crate::rules;
use crate::shared::Shared;
use crate::state::{
    DebtSettled, Event, MemberState, OrderLedger, OrderRefunded, PointsAdjusted, PointsClawedBack, RedemptionPoints,
};
use crate::store::{Commit, CommitError, MemberWrite, Receipt, Store, Tally, TallyWrite, Versioned, VersionedTally};
use crate::time::{add_local_days, local_date};

mod campaigns;
mod coupons;
mod feedback;
mod journey;
mod reports;
mod schedule;
mod scratch;
mod segments;
mod views;

pub use campaigns::{CampaignReport, CostBreakdown};
pub use coupons::BatchIssue;
pub use reports::{ChannelGroup, ChannelSplit, CohortRow, ExpiringBucket, LiabilityReport, Report};
pub(crate) use scratch::{HistoryStore, MemberReplay, Owners};
pub use segments::MemberFields;
pub(crate) use views::{StageCount, TierCount};
pub use views::{StageView, TransitionMatrix};

/// Largest number of points one command may move.
pub const MAX_POINTS: i64 = 1_000_000_000_000;
const MAX_ATTEMPTS: usize = 16;
const MAX_MERGE_DEPTH: usize = 32;

/// The loyalty engine over a store.
///
/// Record an order, read the balance, redeem — with the in-memory store and
/// the demo programme (1 point per full 1.00, rounded down per order):
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use crm_core::{CrmError, Engine, MemberId, MemoryStore, Order, Outcome, Program};
/// use rust_decimal::Decimal;
///
/// let engine = Engine::new(Program::default_demo(), MemoryStore::new());
/// let alice = MemberId::from("alice");
/// let now = Utc.with_ymd_and_hms(2024, 2, 29, 9, 30, 0).unwrap();
///
/// // 59.90 paid: 59 points (the member is enrolled on her first order).
/// let out = engine.record_order(Order::paid("o-1", "alice", now, Decimal::new(5_990, 2)), now)?;
/// assert!(matches!(&out, Outcome::Order { earned, .. } if earned["reward"] == 59));
///
/// let balance = engine.balance(&alice, "reward", now)?;
/// assert_eq!((balance.available, balance.pending), (59, 0));
///
/// // Spend 50 under an idempotency key; retrying the key returns the first outcome.
/// let later = now + Duration::hours(1);
/// let redeemed = engine.redeem(&alice, "reward", 50, "redeem-1", later)?;
/// assert_eq!(engine.redeem(&alice, "reward", 50, "redeem-1", later)?, redeemed);
/// assert_eq!(engine.balance(&alice, "reward", later)?.available, 9);
///
/// // More than is available is refused, and nothing changes.
/// let err = engine.redeem(&alice, "reward", 10, "redeem-2", later).unwrap_err();
/// assert!(matches!(err, CrmError::InsufficientPoints { requested: 10, available: 9 }));
///
/// // The balance as of any past instant comes from the stored events.
/// assert_eq!(engine.balance(&alice, "reward", now)?.available, 59);
/// # Ok::<(), CrmError>(())
/// ```
pub struct Engine<S: Store> {
    program: Program,
    store: S,
    /// The programme's fingerprint, kept by the store as the one its
    /// wake-ups were derived under (see the `schedule` module).
    schedule: i64,
}

/// Idempotency key used for an order.
pub fn order_key(order_id: &str) -> String {
    format!("order:{order_id}")
}

/// A page of a member's statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementPage {
    pub entries: Vec<StatementEntry>,
    /// Entries in the whole statement.
    pub total: usize,
    /// Offset of the next page, if there is one.
    pub next_offset: Option<usize>,
}

/// One line of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementEntry {
    /// Position in the member's event log (1-based).
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `earn`, `redeem`, `reverse`, `clawback`, `adjust`, `expire`, `merge_in`, `merge_out`.
    pub kind: String,
    pub points: i64,
    /// Outstanding points (available + pending − debt) after this entry.
    pub balance: i64,
    /// Order, redemption, bonus or member the entry refers to.
    pub reference: Option<String>,
    /// Who made the entry: the actor of a manual adjustment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// Points expiring within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiring {
    pub total: i64,
    /// `(expires_at, points)`, soonest first.
    pub buckets: Vec<(DateTime<Utc>, i64)>,
}

/// Outstanding points of one type across the programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointTypeLiability {
    pub point_type: String,
    pub spendable: bool,
    /// Members holding any outstanding points of this type.
    pub members: u64,
    pub available: i64,
    pub pending: i64,
    pub debt: i64,
    /// `available + pending` (debt already deducted from available).
    pub outstanding: i64,
    /// `outstanding × value_per_point` for spendable types, else zero.
    pub value: Decimal,
}

/// Programme-wide liability at an instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Liability {
    pub at: DateTime<Utc>,
    /// Member records that are not merged into another (erased members
    /// count: their anonymised ledger still holds points).
    pub members: u64,
    pub point_types: Vec<PointTypeLiability>,
    /// Sum of `value` over spendable types.
    pub value: Decimal,
}

/// The liability at an instant, counted one member at a time (for
/// [`Engine::liability`] and the what-if replay, which never holds every
/// member at once).
pub(crate) struct LiabilityCount<'p> {
    program: &'p Program,
    at: DateTime<Utc>,
    members: u64,
    by_type: Vec<PointTypeLiability>,
}

impl<'p> LiabilityCount<'p> {
    pub(crate) fn new(program: &'p Program, at: DateTime<Utc>) -> Self {
        let by_type = program
            .point_types
            .iter()
            .map(|t| PointTypeLiability {
                point_type: t.id.clone(),
                spendable: t.spendable,
                members: 0,
                available: 0,
                pending: 0,
                debt: 0,
                outstanding: 0,
                value: Decimal::ZERO,
            })
            .collect();
        LiabilityCount { program, at, members: 0, by_type }
    }

    /// Count a member's balances at the instant.
    pub(crate) fn add(&mut self, st: &MemberState) {
        // Merged-away records are the same person as their survivor.
        if !matches!(st.status, MemberStatus::Merged { .. }) {
            self.members += 1;
        }
        for l in self.by_type.iter_mut() {
            let b = st.balance(&l.point_type, self.at);
            if b.total() != 0 {
                l.members += 1;
            }
            l.available += b.available;
            l.pending += b.pending;
            l.debt += b.debt;
        }
    }

    /// Outstanding points and their value per type, and the total value.
    pub(crate) fn finish(self) -> Liability {
        let LiabilityCount { program, at, members, mut by_type } = self;
        let mut value = Decimal::ZERO;
        for l in by_type.iter_mut() {
            l.outstanding = l.available + l.pending;
            if l.spendable {
                l.value = Decimal::from(l.outstanding) * program.value_per_point;
                value += l.value;
            }
        }
        Liability { at, members, point_types: by_type, value }
    }
}

/// Fewest members due for `run_due` to decide on several threads (about
/// 5 ms of work in a release build; a thread costs tens of microseconds).
const RUN_DUE_PARALLEL_FROM: usize = 256;

/// Fewest due members `run_due` sorts on several threads.
const RUN_DUE_PARALLEL_SORT_FROM: usize = 1 << 16;

/// Most members per `run_due` transaction unless the store asks for fewer
/// ([`Store::due_chunk`]): each chunk is decided and committed on its own,
/// so memory stays bounded and chunks can be decided in parallel.
pub(crate) const RUN_DUE_CHUNK: usize = 1000;

/// One `run_due` chunk as decided (its commit, the coupon codes it drew and
/// its share of the outcome), or the running total of the committed ones.
#[derive(Default)]
struct DueChunk {
    commit: Commit,
    codes: BTreeMap<String, String>,
    members: u64,
    activated: i64,
    expired: i64,
    journey: journey::Journey,
    /// The running total's outreach, one vector per committed chunk, joined
    /// once at the end: appending each chunk's items to one growing vector
    /// copied the member day's half a million items again at every doubling.
    outreach_parts: Vec<Vec<crate::outreach::OutreachItem>>,
    /// The decision read no programme-wide tally and drew no coupon code:
    /// it depends on the chunk's own members alone, so it is the same
    /// whenever the chunk is decided and committed relative to the others.
    independent: bool,
}

/// What a `run_due` worker hands back for one chunk.
enum DueWork {
    /// Decided, for the calling thread to commit in chunk order.
    Decided(DueChunk),
    /// Independent, decided and committed by the worker.
    Committed(DueChunk),
    /// Independent, but refused as stale (another writer changed one of
    /// its members): the calling thread decides and commits it again.
    Stale,
}

impl DueChunk {
    /// Add a committed chunk's codes and counts.
    fn add(&mut self, c: DueChunk) {
        self.codes.extend(c.codes);
        self.members += c.members;
        self.activated += c.activated;
        self.expired += c.expired;
        self.journey.tier_changes += c.journey.tier_changes;
        self.journey.stage_changes += c.journey.stage_changes;
        self.journey.suppressed += c.journey.suppressed;
        self.outreach_parts.push(c.journey.outreach);
    }

    /// Every committed chunk's outreach items, in one vector sized once.
    fn take_outreach(&mut self) -> Vec<crate::outreach::OutreachItem> {
        let mut all = Vec::with_capacity(self.outreach_parts.iter().map(Vec::len).sum());
        for part in self.outreach_parts.drain(..) {
            all.extend(part);
        }
        all
    }
}

struct Working {
    state: MemberState,
    version: u64,
    events: Vec<Event>,
    /// The checkpoint epoch in which this member was last journaled.
    epoch: u64,
}

/// One decision in progress: the members it touched and what it will commit.
struct Tx<'a, S: Store> {
    program: &'a Program,
    store: &'a S,
    now: DateTime<Utc>,
    /// Boxed: a `Working` is about a kilobyte, moved on every rehash and by
    /// the sort in [`Tx::finish`] otherwise. Fx-hashed: looked up on every
    /// step of a command, and a transaction holds at most a batch of members
    /// (nothing for chosen keys to flood).
    members: FxHashMap<MemberId, Box<Working>>,
    commit: Commit,
    /// Current checkpoint epoch (0: no checkpoint taken, nothing journaled).
    epoch: u64,
    /// Undo journal since the last checkpoint: each member touched for the
    /// first time since then, with its event count at that moment (`None`:
    /// the member entered the transaction after the checkpoint).
    journal: Vec<(MemberId, Option<usize>)>,
    /// Programme-wide tallies read by this transaction (coupon limits).
    tallies: BTreeMap<String, TallyWork>,
    /// Undo journal of tallies since the last checkpoint: value before the
    /// first change.
    tally_journal: Vec<(String, Tally)>,
    /// Where coupons handed out by triggers get their codes (`run_due` only).
    codes: Option<CodeBook<'a>>,
    /// Whether recorded orders are listed in the commit for the store's
    /// order index. Off only for a what-if replay (`scratch`), which never
    /// commits and whose store knows every order's owner beforehand: the
    /// list cost three allocations per order there.
    lists_orders: bool,
}

/// Coupon codes of a `run_due`: those a replayed run was given, and those
/// drawn from the operating system's random source for the receipt.
struct CodeBook<'a> {
    given: &'a BTreeMap<String, String>,
    drawn: BTreeMap<String, String>,
}

/// A tally as read from the store and as changed by the transaction.
struct TallyWork {
    read: VersionedTally,
    now: Tally,
    epoch: u64,
}

/// Where a batch stood before a command: O(1) to take, the members a failed
/// command touched are in the transaction's undo journal.
struct Checkpoint {
    identities: usize,
    orders: usize,
    redact: usize,
}

impl<'a, S: Store> Tx<'a, S> {
    fn new(program: &'a Program, store: &'a S, now: DateTime<Utc>) -> Self {
        Tx {
            program,
            store,
            now,
            members: FxHashMap::default(),
            commit: Commit::default(),
            epoch: 0,
            journal: Vec::new(),
            tallies: BTreeMap::new(),
            tally_journal: Vec::new(),
            codes: None,
            lists_orders: true,
        }
    }

    fn tz(&self) -> chrono_tz::Tz {
        self.program.timezone
    }

    /// Load a member into the transaction; `false` when it does not exist.
    fn load(&mut self, id: &MemberId) -> Result<bool> {
        if self.members.contains_key(id) {
            return Ok(true);
        }
        match self.store.load(id)? {
            Some(v) => {
                self.insert_loaded(id, v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Add a member as the store holds it (no events of this transaction yet).
    fn insert_loaded(&mut self, id: &MemberId, Versioned { state, version }: Versioned) {
        self.insert(id, Working { state, version, events: Vec::new(), epoch: 0 });
    }

    /// Load the members not in the transaction yet in one store read
    /// ([`Store::load_many`]); members that do not exist are skipped.
    fn load_all(&mut self, ids: &[MemberId]) -> Result<()> {
        let missing: Vec<MemberId> = ids.iter().filter(|id| !self.members.contains_key(*id)).cloned().collect();
        for (id, loaded) in missing.iter().zip(self.store.load_many(&missing)?) {
            if let Some(v) = loaded {
                self.insert_loaded(id, v);
            }
        }
        Ok(())
    }

    fn state(&self, id: &MemberId) -> &MemberState {
        &self.members[id].state
    }

    /// Add a member to the transaction (journaled when a checkpoint is open).
    fn insert(&mut self, id: &MemberId, mut w: Working) {
        if self.epoch > 0 {
            w.epoch = self.epoch;
            self.journal.push((id.clone(), None));
        }
        self.members.insert(id.clone(), Box::new(w));
    }

    fn emit(&mut self, id: &MemberId, event: Event) {
        let w = self.members.get_mut(id).expect("member loaded before emitting");
        if w.epoch != self.epoch {
            // First change since the checkpoint: remember how to undo it.
            w.epoch = self.epoch;
            self.journal.push((id.clone(), Some(w.events.len())));
        }
        w.state.evolve(&event);
        w.events.push(event);
    }

    /// A programme-wide tally as this transaction sees it.
    fn tally(&mut self, key: &str) -> Result<Tally> {
        if let Some(t) = self.tallies.get(key) {
            return Ok(t.now);
        }
        let read = self.store.tally(key)?.unwrap_or_default();
        self.tallies.insert(key.to_string(), TallyWork { read, now: read.tally, epoch: 0 });
        Ok(read.tally)
    }

    /// Add to a tally (journaled when a checkpoint is open).
    fn add_to_tally(&mut self, key: &str, count: i64, amount: Decimal) -> Result<()> {
        self.tally(key)?;
        let epoch = self.epoch;
        let t = self.tallies.get_mut(key).expect("tally read above");
        if t.epoch != epoch {
            t.epoch = epoch;
            self.tally_journal.push((key.to_string(), t.now));
        }
        t.now.count += count;
        t.now.amount += amount;
        Ok(())
    }

    /// Follow merges to the surviving member; erased members take no commands.
    fn active(&mut self, id: &MemberId, field: &str) -> Result<MemberId> {
        let mut current = id.clone();
        for _ in 0..MAX_MERGE_DEPTH {
            if !self.load(&current)? {
                return Err(CrmError::NotFound { entity: "member", id: current.0 });
            }
            match &self.state(&current).status {
                MemberStatus::Active => return Ok(current),
                MemberStatus::Merged { into, .. } => current = into.clone(),
                MemberStatus::Erased { .. } => {
                    return Err(CrmError::invalid(field, format!("member {current} has been erased")));
                }
            }
        }
        Err(CrmError::conflict(format!("merge chain of {id} is too long")))
    }

    /// Start a new undo scope. O(1): nothing is copied; members are
    /// journaled on their first touch after it.
    fn checkpoint(&mut self) -> Checkpoint {
        self.epoch += 1;
        self.journal.clear();
        self.tally_journal.clear();
        Checkpoint {
            identities: self.commit.identities.len(),
            orders: self.commit.orders.len(),
            redact: self.commit.redact.len(),
        }
    }

    /// Undo everything since `cp` (a failed command inside a batch): only
    /// the members in the journal are touched.
    fn rollback(&mut self, cp: Checkpoint) -> Result<()> {
        for (id, before) in std::mem::take(&mut self.journal) {
            match before {
                None => {
                    self.members.remove(&id);
                }
                Some(n) => {
                    let Some(w) = self.members.get_mut(&id) else { continue };
                    if w.events.len() > n {
                        w.events.truncate(n);
                        let mut state = match self.store.load(&id)? {
                            Some(v) => v.state,
                            None => MemberState::new(id.clone(), w.events.first().map_or(self.now, Event::at)),
                        };
                        for e in &w.events {
                            state.evolve(e);
                        }
                        w.state = state;
                    }
                }
            }
        }
        for (key, before) in std::mem::take(&mut self.tally_journal) {
            if let Some(t) = self.tallies.get_mut(&key) {
                t.now = before;
            }
        }
        self.commit.identities.truncate(cp.identities);
        self.commit.orders.truncate(cp.orders);
        self.commit.redact.truncate(cp.redact);
        Ok(())
    }

    fn finish(mut self) -> Commit {
        let mut members: Vec<_> = self.members.into_values().filter(|w| !w.events.is_empty()).collect();
        members.sort_by(|a, b| a.state.id.cmp(&b.state.id));
        for w in &mut members {
            w.state.settle();
            w.state.wake_at = journey::wake_at(self.program, &w.state);
        }
        self.commit.members = members
            .into_iter()
            .map(|w| {
                let w = *w;
                MemberWrite { expected_version: w.version, events: w.events, state: w.state }
            })
            .collect();
        self.commit.tallies = self
            .tallies
            .into_iter()
            .filter(|(_, t)| t.now != t.read.tally)
            .map(|(key, t)| TallyWrite { key, expected_version: t.read.version, tally: t.now })
            .collect();
        self.commit
    }

    // ----- decisions -------------------------------------------------------

    fn apply(&mut self, key: &str, command: &Command) -> Result<(Outcome, Option<MemberId>)> {
        match command {
            Command::CreateMember { member_id, profile, identities, tags, consents } => {
                MemberId::parse(member_id.0.clone(), "member_id")?;
                profile.validate("profile", self.now)?;
                for (i, identity) in identities.iter().enumerate() {
                    identity.validate(&format!("identities[{i}]"))?;
                }
                for (i, tag) in tags.iter().enumerate() {
                    check_tag(tag, &format!("tags[{i}]"))?;
                }
                for channel in consents.keys() {
                    check_ref(channel, "consents")?;
                }
                if self.load(member_id)? {
                    return Err(CrmError::conflict(format!("member {member_id} already exists")));
                }
                for identity in identities {
                    if let Some(owner) = self.store.identity_owner(identity)? {
                        return Err(identity_taken(identity, &owner));
                    }
                }
                let mut profile = profile.clone();
                profile.joined_at.get_or_insert(self.now);
                let at = self.now;
                self.create(member_id, profile, at);
                for identity in identities {
                    self.emit(member_id, Event::IdentityLinked { at, identity: identity.clone() });
                    self.commit.identities.push((identity.clone(), Some(member_id.clone())));
                }
                for tag in tags {
                    self.emit(member_id, Event::TagAdded { at, tag: tag.clone() });
                }
                for (channel, granted) in consents {
                    self.emit(member_id, Event::ConsentChanged { at, channel: channel.clone(), granted: *granted });
                }
                self.award(member_id, &Action::SignUp, at)?;
                self.profile_bonus(member_id, at)?;
                Ok((Outcome::Member { member_id: member_id.clone() }, Some(member_id.clone())))
            }
            Command::UpdateProfile { member_id, patch } => {
                patch.validate(self.now)?;
                let id = self.active(member_id, "member_id")?;
                self.emit(&id, Event::ProfileUpdated { at: self.now, patch: Box::new(patch.clone()) });
                self.profile_bonus(&id, self.now)?;
                Ok((Outcome::Member { member_id: id.clone() }, Some(id)))
            }
            Command::LinkIdentity { member_id, identity } => {
                identity.validate("identity")?;
                let id = self.active(member_id, "member_id")?;
                match self.store.identity_owner(identity)? {
                    Some(owner) if owner == id => {}
                    Some(owner) => return Err(identity_taken(identity, &owner)),
                    None => {
                        self.emit(&id, Event::IdentityLinked { at: self.now, identity: identity.clone() });
                        self.commit.identities.push((identity.clone(), Some(id.clone())));
                    }
                }
                Ok((Outcome::Member { member_id: id.clone() }, Some(id)))
            }
            Command::UnlinkIdentity { member_id, identity } => {
                let id = self.active(member_id, "member_id")?;
                if !self.state(&id).identities.contains(identity) {
                    return Err(CrmError::NotFound {
                        entity: "identity",
                        id: format!("{}:{}", identity.channel, identity.external_id),
                    });
                }
                self.emit(&id, Event::IdentityUnlinked { at: self.now, identity: identity.clone() });
                self.commit.identities.push((identity.clone(), None));
                Ok((Outcome::Member { member_id: id.clone() }, Some(id)))
            }
            Command::AddTag { member_id, tag } | Command::RemoveTag { member_id, tag } => {
                check_tag(tag, "tag")?;
                let id = self.active(member_id, "member_id")?;
                let has = self.state(&id).tags.contains(tag);
                let at = self.now;
                match command {
                    Command::AddTag { .. } if !has => self.emit(&id, Event::TagAdded { at, tag: tag.clone() }),
                    Command::RemoveTag { .. } if has => self.emit(&id, Event::TagRemoved { at, tag: tag.clone() }),
                    _ => {}
                }
                Ok((Outcome::Member { member_id: id.clone() }, Some(id)))
            }
            Command::SetConsent { member_id, channel, granted } => {
                check_ref(channel, "channel")?;
                let id = self.active(member_id, "member_id")?;
                self.emit(&id, Event::ConsentChanged { at: self.now, channel: channel.clone(), granted: *granted });
                Ok((Outcome::Member { member_id: id.clone() }, Some(id)))
            }
            Command::RecordOrder { order } => self.record_order(order),
            Command::SetOrderStatus { order_id, status, at } => {
                let done = self.set_order_status(order_id, *status, *at)?;
                self.return_coupon(&done.1, order_id);
                Ok(done)
            }
            Command::RecordRefund { refund } => {
                let done = self.refund(refund)?;
                self.return_coupon(&done.1, &refund.order_id);
                Ok(done)
            }
            Command::RecordAction { member_id, action, reference } => {
                check_ref(reference, "reference")?;
                let id = self.active(member_id, "member_id")?;
                let awarded = self.award(&id, action, self.now)?;
                Ok((Outcome::Action { member_id: id.clone(), awarded }, Some(id)))
            }
            Command::Redeem { member_id, point_type, points, .. } => {
                let pt = self.program.require_point_type(point_type, "point_type")?;
                if !pt.spendable {
                    return Err(CrmError::invalid("point_type", format!("{point_type:?} points cannot be spent")));
                }
                check_points(*points, "points")?;
                if *points <= 0 {
                    return Err(CrmError::invalid("points", "must be positive"));
                }
                let id = self.active(member_id, "member_id")?;
                let st = self.state(&id);
                let available = st.balance(point_type, self.now).available;
                if available < *points {
                    return Err(CrmError::InsufficientPoints { requested: *points, available: available.max(0) });
                }
                let (allocations, _) = ledger::allocate(st.open_lots(), point_type, *points, self.now);
                let at = self.now;
                self.emit(
                    &id,
                    Event::PointsRedeemed(Box::new(RedemptionPoints {
                        at,
                        redemption_id: key.to_string(),
                        point_type: point_type.clone(),
                        points: *points,
                        allocations: allocations.clone(),
                    })),
                );
                self.extend_inactivity(&id, point_type, at);
                Ok((
                    Outcome::Redemption {
                        redemption_id: key.to_string(),
                        member_id: id.clone(),
                        point_type: point_type.clone(),
                        points: *points,
                        allocations,
                    },
                    Some(id),
                ))
            }
            Command::ReverseRedemption { member_id, redemption_id } => {
                let id = self.active(member_id, "member_id")?;
                let r = self
                    .state(&id)
                    .redemptions
                    .get(redemption_id)
                    .cloned()
                    .ok_or_else(|| CrmError::NotFound { entity: "redemption", id: redemption_id.clone() })?;
                if r.reversed {
                    return Err(CrmError::conflict(format!("redemption {redemption_id} was already reversed")));
                }
                self.emit(
                    &id,
                    Event::RedemptionReversed(Box::new(RedemptionPoints {
                        at: self.now,
                        redemption_id: redemption_id.clone(),
                        point_type: r.point_type.clone(),
                        points: r.points,
                        allocations: r.allocations,
                    })),
                );
                Ok((
                    Outcome::Reversal {
                        redemption_id: redemption_id.clone(),
                        member_id: id.clone(),
                        point_type: r.point_type,
                        points: r.points,
                    },
                    Some(id),
                ))
            }
            Command::Adjust { member_id, point_type, delta, reason, actor } => {
                self.adjust(member_id, point_type, *delta, reason, actor)
            }
            Command::Merge { survivor, merged } => self.merge(survivor, merged),
            Command::Erase { member_id } => {
                let id = self.active(member_id, "member_id")?;
                let st = self.state(&id).clone();
                for identity in &st.identities {
                    self.commit.identities.push((identity.clone(), None));
                }
                self.emit(&id, Event::Erased { at: self.now });
                self.commit.redact.push(id.clone());
                // Everyone merged into this member (transitively) is the same
                // person: their snapshots, events and commands lose it too.
                let mut lineage = st.merged_from.clone();
                let mut seen = std::collections::HashSet::new();
                while let Some(m) = lineage.pop() {
                    if !seen.insert(m.clone()) || !self.load(&m)? {
                        continue;
                    }
                    self.emit(&m, Event::ProfileErased { at: self.now });
                    lineage.extend(self.state(&m).merged_from.iter().cloned());
                    self.commit.redact.push(m);
                }
                Ok((Outcome::Erasure { member_id: id.clone() }, Some(id)))
            }
            Command::RunDue { .. } => Err(CrmError::invalid("command", "run_due is executed by Engine::run_due")),
            Command::AssignTier { member_id, tier, until, reason, actor } => {
                let id = self.assign_tier(member_id, tier, *until, reason, actor)?;
                Ok((Outcome::Tier { member_id: id.clone(), tier: tier.clone(), until: *until }, Some(id)))
            }
            Command::RecordEngagement { member_id, kind, at, sku, reference } => {
                let engagement = crate::state::Engagement {
                    at: at.unwrap_or(self.now),
                    kind: kind.clone(),
                    sku: sku.clone(),
                    reference: reference.clone(),
                };
                let id = self.engage(member_id, engagement)?;
                Ok((Outcome::Member { member_id: id.clone() }, Some(id)))
            }
            Command::IssueCoupon { member_id, template, code, for_points, reason } => {
                self.issue_coupon(key, member_id, template, code, *for_points, reason)
            }
            Command::RedeemCoupon { member_id, code, order_id } => self.redeem_coupon(member_id, code, order_id),
            Command::RevokeCoupon { member_id, code, reason } => self.revoke_coupon(member_id, code, reason),
            Command::RecordContact { member_id, contact_id, channel, topic, started_at, ended_at } => {
                self.record_contact(member_id, contact_id, channel, topic, *started_at, *ended_at)
            }
            Command::OpenTicket { member_id, ticket_id, kind, at, order_id, subject } => {
                self.open_ticket(member_id, ticket_id, kind, *at, order_id, subject)
            }
            Command::UpdateTicket { member_id, ticket_id, status, at } => {
                self.update_ticket(member_id, ticket_id, *status, *at)
            }
            Command::RecordReview { member_id, review_id, rating, text, sku, order_id, at } => {
                self.record_review(member_id, review_id, *rating, text, sku, order_id, *at)
            }
            Command::RecordSurvey { member_id, survey_id, kind, score, at, ticket_id, comment } => {
                self.record_survey(member_id, survey_id, *kind, *score, *at, ticket_id, comment)
            }
        }
    }

    fn create(&mut self, id: &MemberId, profile: Profile, at: DateTime<Utc>) {
        self.insert(id, Working { state: MemberState::new(id.clone(), at), version: 0, events: Vec::new(), epoch: 0 });
        self.emit(id, Event::MemberCreated { at, profile: Box::new(profile) });
        self.enrol(id, at);
    }

    fn record_order(&mut self, order: &Order) -> Result<(Outcome, Option<MemberId>)> {
        order.validate(&self.program.currency)?;
        if let Some(owner) = self.store.order_owner(&order.id)? {
            return Err(CrmError::conflict(format!("order {} was already recorded for member {owner}", order.id)));
        }
        let id = if self.load(&order.member_id)? {
            self.active(&order.member_id, "order.member_id")?
        } else if self.program.auto_enroll {
            let profile =
                Profile { joined_at: Some(order.placed_at), join_channel: order.channel.clone(), ..Profile::default() };
            self.create(&order.member_id, profile, order.placed_at);
            self.award(&order.member_id, &Action::SignUp, order.placed_at)?;
            order.member_id.clone()
        } else {
            return Err(CrmError::NotFound { entity: "member", id: order.member_id.0.clone() });
        };
        if self.state(&id).orders.contains_key(&order.id) {
            return Err(CrmError::conflict(format!("order {} was already recorded", order.id)));
        }
        // Copied once: the recorded order differs only when an alias was resolved.
        let stored =
            if id == order.member_id { order.clone() } else { Order { member_id: id.clone(), ..order.clone() } };
        self.emit(&id, Event::OrderRecorded { at: order.placed_at, order: Box::new(OrderLedger::new(stored)) });
        if self.lists_orders {
            self.commit.orders.push((order.id.clone(), id.clone()));
        }
        // The order as given: the one recorded differs only in `member_id`
        // (an alias resolved), which no earn rule reads.
        let (earned, lots) = if order.status.earns() { self.earn(&id, order)? } else { Default::default() };
        if order.status.earns() {
            self.follow_up(&id, order.earned_at(), false);
        }
        Ok((Outcome::Order { order_id: order.id.clone(), member_id: id.clone(), earned, lots }, Some(id)))
    }

    /// Award the earn rules (and the first-order bonus) for a paid order,
    /// recorded before.
    fn earn(&mut self, id: &MemberId, order: &Order) -> Result<(BTreeMap<String, i64>, Vec<String>)> {
        let order_id = order.id.as_str();
        let at = order.earned_at();
        let tz = self.tz();
        let day = local_date(tz, at);
        let mut earned = BTreeMap::new();
        let mut lots = Vec::new();
        for rule in &self.program.earn.rules {
            let st = self.state(id);
            let tier_factor = self
                .program
                .tiers
                .as_ref()
                .and_then(|l| l.benefits(st.tier.as_ref().map(|t| t.tier.as_str())).points_multiplier);
            let program = self.program;
            let segment = |r: &crate::segment::Rule, t: DateTime<Utc>| r.matches(&MemberFields::new(program, st, t));
            let mut points = rules::order_points_with(rule, order, st, tz, tier_factor, &segment);
            let capped = rule.per_day_cap.is_some() || rule.per_month_cap.is_some();
            if capped {
                let usage = st.rule_days.get(&rule.id);
                let used_day = usage.and_then(|u| u.get(&day)).copied().unwrap_or(0);
                let used_month = usage.map_or(0, |u| {
                    u.iter()
                        .filter(|(d, _)| {
                            chrono::Datelike::year(*d) == chrono::Datelike::year(&day)
                                && chrono::Datelike::month(*d) == chrono::Datelike::month(&day)
                        })
                        .map(|(_, p)| p)
                        .sum()
                });
                points = rules::apply_period_caps(rule, points, used_day, used_month);
            }
            if points > 0 {
                if capped {
                    self.emit(id, Event::RuleUsage { at, rule_id: rule.id.clone(), day, points });
                }
                let source = LotSource::Order { order_id: order_id.to_string(), rule_id: rule.id.clone() };
                lots.push(self.grant(id, &rule.point_type, points, at, source));
                *earned.entry(rule.point_type.clone()).or_insert(0) += points;
            }
        }
        if self.state(id).stats.orders == 1 {
            // The first-order bonus belongs to the order: its lot is listed
            // with the order's lots and a full refund or cancellation takes it back.
            for (pt, p) in self.award_for(id, &Action::FirstOrder, at, Some(order_id), &mut lots)? {
                *earned.entry(pt).or_insert(0) += p;
            }
        }
        Ok((earned, lots))
    }

    /// Credit a new lot; pays off debt first and pushes inactivity expiry.
    fn grant(&mut self, id: &MemberId, point_type: &str, points: i64, at: DateTime<Utc>, source: LotSource) -> String {
        let tz = self.tz();
        let pt = self.program.point_type(point_type).expect("validated point type");
        let st = self.state(id);
        let lot_id = st.next_lot_id();
        let pending = pt.pending_days > 0 && !matches!(source, LotSource::Adjustment);
        let available_at = if pending { add_local_days(tz, at, pt.pending_days) } else { at };
        let last = st.last_activity.get(point_type).copied().unwrap_or(at).max(at);
        let expires_at = ledger::expires_at(pt.expiry, tz, at, last);
        let debt = st.debt(point_type);
        let lot = Lot {
            id: lot_id.clone(),
            point_type: point_type.to_string(),
            granted: points,
            remaining: points,
            earned_at: at,
            available_at,
            expires_at,
            source,
            activated: !pending,
        };
        self.emit(id, Event::PointsEarned { at, lot: Shared::new(lot) });
        self.extend_inactivity(id, point_type, at);
        if debt > 0 {
            self.emit(
                id,
                Event::DebtSettled(Box::new(DebtSettled {
                    at,
                    point_type: point_type.to_string(),
                    lot_id: lot_id.clone(),
                    points: debt.min(points),
                })),
            );
        }
        lot_id
    }

    /// Under the inactivity policy, activity at `at` moves every open lot's expiry.
    fn extend_inactivity(&mut self, id: &MemberId, point_type: &str, at: DateTime<Utc>) {
        let pt = self.program.point_type(point_type).expect("validated point type");
        if let ExpiryPolicy::Inactivity { .. } = pt.expiry {
            let st = self.state(id);
            let last = st.last_activity.get(point_type).copied().unwrap_or(at);
            if at >= last && st.lots.iter().any(|l| l.point_type == point_type) {
                if let Some(expires_at) = ledger::expires_at(pt.expiry, self.tz(), at, last) {
                    self.emit(id, Event::ExpiryExtended { at, point_type: point_type.to_string(), expires_at });
                }
            }
        }
    }

    /// Award every bonus configured for `action` that the member may still get.
    fn award(&mut self, id: &MemberId, action: &Action, at: DateTime<Utc>) -> Result<BTreeMap<String, i64>> {
        self.award_for(id, action, at, None, &mut Vec::new())
    }

    /// Award the bonuses for `action`; `order_id` is the order that
    /// triggered them (its bonus lots are clawed back with it). The new lot
    /// ids are pushed onto `lots`.
    fn award_for(
        &mut self,
        id: &MemberId,
        action: &Action,
        at: DateTime<Utc>,
        order_id: Option<&str>,
        lots: &mut Vec<String>,
    ) -> Result<BTreeMap<String, i64>> {
        let mut awarded = BTreeMap::new();
        for bonus in self.program.earn.bonuses.iter().filter(|b| &b.action == action) {
            let once = matches!(action, Action::SignUp | Action::FirstOrder | Action::ProfileCompleted);
            let limit = bonus.max_per_member.unwrap_or(if once { 1 } else { u32::MAX });
            if self.state(id).bonus_counts.get(&bonus.id).copied().unwrap_or(0) >= limit {
                continue;
            }
            self.emit(id, Event::BonusCounted { at, bonus_id: bonus.id.clone() });
            let source = LotSource::Bonus { bonus_id: bonus.id.clone(), order_id: order_id.map(str::to_string) };
            lots.push(self.grant(id, &bonus.point_type, bonus.points, at, source));
            *awarded.entry(bonus.point_type.clone()).or_insert(0) += bonus.points;
        }
        Ok(awarded)
    }

    fn profile_bonus(&mut self, id: &MemberId, at: DateTime<Utc>) -> Result<()> {
        let p = &self.state(id).profile;
        let complete = p.name.is_some()
            && p.phone.is_some()
            && p.email.is_some()
            && p.birthday.is_some()
            && p.gender.is_some()
            && p.region.is_some();
        if complete {
            self.award(id, &Action::ProfileCompleted, at)?;
        }
        Ok(())
    }

    fn set_order_status(
        &mut self,
        order_id: &str,
        status: OrderStatus,
        explicit_at: Option<DateTime<Utc>>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(order_id, "order_id")?;
        let owner = self
            .store
            .order_owner(order_id)?
            .ok_or_else(|| CrmError::NotFound { entity: "order", id: order_id.into() })?;
        let id = self.active(&owner, "order_id")?;
        let order = &self.state(&id).orders[order_id].order;
        let current = order.status;
        // A change cannot take effect before the order exists, and cancelling
        // a paid order (a full refund) not before it was paid: as-of views
        // would otherwise apply the clawback before the lots it takes from.
        let not_before =
            if current.earns() && status == OrderStatus::Cancelled { order.earned_at() } else { order.placed_at };
        let what = if current.earns() && status == OrderStatus::Cancelled { "paid" } else { "placed" };
        let at = match explicit_at {
            Some(at) if current != status && at < not_before => {
                return Err(CrmError::invalid("at", format!("is before the order was {what} ({not_before})")));
            }
            Some(at) => at,
            // Without an explicit time the change happens now, but never
            // before the order was placed (or paid, when cancelling).
            None => self.now.max(not_before),
        };
        use OrderStatus::*;
        match (current, status) {
            (a, b) if a == b => Ok(nothing_earned(order_id, id)),
            (Placed, Paid | Completed) => {
                self.emit(&id, Event::OrderStatusChanged { at, order_id: order_id.into(), status });
                let order = self.state(&id).orders[order_id].order.clone();
                let (earned, lots) = self.earn(&id, &order)?;
                let paid_at = order.earned_at();
                self.follow_up(&id, paid_at, false);
                Ok((Outcome::Order { order_id: order_id.into(), member_id: id.clone(), earned, lots }, Some(id)))
            }
            (Paid, Completed) | (Placed, Cancelled) => {
                self.emit(&id, Event::OrderStatusChanged { at, order_id: order_id.into(), status });
                Ok(nothing_earned(order_id, id))
            }
            (Paid | Completed, Cancelled) => {
                self.emit(&id, Event::OrderStatusChanged { at, order_id: order_id.into(), status });
                let refund = Refund {
                    id: format!("cancel:{order_id}"),
                    order_id: order_id.into(),
                    at,
                    scope: RefundScope::Full,
                };
                let o = &self.state(&id).orders[order_id];
                // A zero-amount order still gives back the bonus it triggered.
                if o.refunded_in_full() {
                    return Ok(nothing_earned(order_id, id));
                }
                self.refund_order(&refund, true)
            }
            (from, to) => Err(CrmError::invalid("status", format!("cannot change an order from {from:?} to {to:?}"))),
        }
    }

    fn refund(&mut self, refund: &Refund) -> Result<(Outcome, Option<MemberId>)> {
        self.refund_order(refund, false)
    }

    /// A refund, or (`cancelling`) the full refund that cancelling a paid
    /// order implies, after its status has already become `Cancelled`.
    ///
    /// Per point type: target = `floor(earned × refunded / amount)` (a full
    /// refund: `earned` plus the order's bonuses); still to claw = target −
    /// already clawed − the order's own points that expired unspent (they
    /// count as already taken back); taken from the order's open lots, then
    /// other available lots, then debt or shortfall per the clawback policy.
    /// See the module docs.
    fn refund_order(&mut self, refund: &Refund, cancelling: bool) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(&refund.id, "refund.id")?;
        check_ref(&refund.order_id, "refund.order_id")?;
        let owner = self
            .store
            .order_owner(&refund.order_id)?
            .ok_or_else(|| CrmError::NotFound { entity: "order", id: refund.order_id.clone() })?;
        let id = self.active(&owner, "refund.order_id")?;
        let ledger = self.state(&id).orders[&refund.order_id].clone();
        // A cancelled order that was paid has been refunded in full when it was
        // cancelled; one with money still unrefunded was never paid.
        let never_paid = match ledger.order.status {
            OrderStatus::Placed => true,
            OrderStatus::Cancelled => !cancelling && ledger.refunded < ledger.order.amount,
            OrderStatus::Paid | OrderStatus::Completed => false,
        };
        if never_paid {
            return Err(CrmError::invalid("refund.order_id", "the order was never paid"));
        }
        // Money cannot come back before it was paid (the clawback would
        // precede the lots it takes from in as-of views).
        let paid_at = ledger.order.earned_at();
        if refund.at < paid_at {
            let field = if cancelling { "at" } else { "refund.at" };
            return Err(CrmError::invalid(field, format!("is before the order was paid ({paid_at})")));
        }
        let remaining = ledger.order.amount - ledger.refunded;
        let (amount, items) = if cancelling && remaining.is_zero() {
            (Decimal::ZERO, Vec::new())
        } else {
            refund_amount(&ledger, &refund.scope, remaining)?
        };
        let at = refund.at;
        self.emit(
            &id,
            Event::OrderRefunded(Box::new(OrderRefunded {
                at,
                refund_id: refund.id.clone(),
                order_id: refund.order_id.clone(),
                amount,
                items,
            })),
        );
        let refunded_after = ledger.refunded + amount;
        let full = refunded_after >= ledger.order.amount || ledger.order.amount.is_zero();
        let mut clawbacks = Vec::new();
        let mut point_types: Vec<&String> = ledger.earned.keys().collect();
        if full {
            point_types.extend(ledger.bonus.keys().filter(|k| !ledger.earned.contains_key(*k)));
        }
        for point_type in point_types {
            let get = |m: &crate::vec_map::VecMap<String, i64>| m.get(point_type).copied().unwrap_or(0);
            let earned = get(&ledger.earned);
            let share = if full {
                earned
            } else {
                let t = Decimal::from(earned) * refunded_after / ledger.order.amount;
                i64::try_from(t.floor()).unwrap_or(earned).min(earned)
            };
            // Bonuses the order triggered go back only with the whole order.
            let target = if full { share + get(&ledger.bonus) } else { share };
            let is_own = |l: &Lot, bonus: bool| match &l.source {
                LotSource::Order { order_id, .. } => !bonus && *order_id == refund.order_id,
                LotSource::Bonus { order_id: Some(order_id), .. } => bonus && *order_id == refund.order_id,
                _ => false,
            };
            let st = self.state(&id);
            // The order's own points that expired unspent were already taken
            // back by expiry: those expired by `run_due`, and those whose lot
            // is past its expiry at `at` but not yet expired by `run_due`.
            let overdue = |bonus: bool| -> i64 {
                st.lots
                    .iter()
                    .filter(|l| l.point_type == *point_type && is_own(l, bonus) && l.phase(at) == LotPhase::Expired)
                    .map(|l| l.remaining)
                    .sum()
            };
            let mut expired = get(&ledger.expired) + overdue(false);
            if full {
                expired += get(&ledger.bonus_expired) + overdue(true);
            }
            let claw = target - get(&ledger.clawed) - expired;
            if claw <= 0 {
                continue;
            }
            // The order's own lots first (earn-rule lots, then, on a full
            // refund, its bonus lots), whatever their phase short of expired…
            let own = st
                .open_lots()
                .filter(|l| l.point_type == *point_type && is_own(l, false) && l.phase(at) != LotPhase::Expired)
                .chain(st.open_lots().filter(|l| {
                    full && l.point_type == *point_type && is_own(l, true) && l.phase(at) != LotPhase::Expired
                }));
            let (mut allocations, got) = ledger::take(own, claw);
            // …then other available lots, soonest expiry first.
            if got < claw {
                // The handles are copied; a lot taken from above is copied alone.
                let mut rest = Vec::clone(&st.lots);
                for a in &allocations {
                    if let Some(l) = rest.iter_mut().find(|l| l.id == a.lot_id) {
                        l.remaining -= a.points;
                    }
                }
                let (more, _) = ledger::allocate(rest.iter().map(|l| &**l), point_type, claw - got, at);
                allocations.extend(more);
            }
            let taken: i64 = allocations.iter().map(|a| a.points).sum();
            let missing = claw - taken;
            let (debt, shortfall) = match self.program.refunds.clawback {
                ClawbackPolicy::AllowNegative => (missing, 0),
                ClawbackPolicy::CapAtZero => (0, missing),
            };
            self.emit(
                &id,
                Event::PointsClawedBack(Box::new(PointsClawedBack {
                    at,
                    refund_id: refund.id.clone(),
                    order_id: refund.order_id.clone(),
                    point_type: point_type.clone(),
                    allocations,
                    debt,
                    shortfall,
                })),
            );
            clawbacks.push(Clawback { point_type: point_type.clone(), taken, debt, shortfall });
        }
        self.follow_up(&id, at, true);
        Ok((
            Outcome::Refund {
                refund_id: refund.id.clone(),
                order_id: refund.order_id.clone(),
                member_id: id.clone(),
                amount,
                clawbacks,
            },
            Some(id),
        ))
    }

    fn adjust(
        &mut self,
        member_id: &MemberId,
        point_type: &str,
        delta: i64,
        reason: &str,
        actor: &str,
    ) -> Result<(Outcome, Option<MemberId>)> {
        self.program.require_point_type(point_type, "point_type")?;
        check_points(delta, "delta")?;
        if delta == 0 {
            return Err(CrmError::invalid("delta", "must not be zero"));
        }
        for (field, v) in [("reason", reason), ("actor", actor)] {
            if v.trim().is_empty() || v.len() > 500 {
                return Err(CrmError::invalid(field, "must be 1-500 characters"));
            }
        }
        let id = self.active(member_id, "member_id")?;
        let at = self.now;
        let (lot, allocations) = if delta > 0 {
            let st = self.state(&id);
            let pt = self.program.point_type(point_type).expect("checked");
            let last = st.last_activity.get(point_type).copied().unwrap_or(at).max(at);
            let lot = Lot {
                id: st.next_lot_id(),
                point_type: point_type.to_string(),
                granted: delta,
                remaining: delta,
                earned_at: at,
                available_at: at,
                expires_at: ledger::expires_at(pt.expiry, self.tz(), at, last),
                source: LotSource::Adjustment,
                activated: true,
            };
            (Some(lot), Vec::new())
        } else {
            let st = self.state(&id);
            let available = st.balance(point_type, at).available;
            if available < -delta {
                return Err(CrmError::InsufficientPoints { requested: -delta, available: available.max(0) });
            }
            (None, ledger::allocate(st.open_lots(), point_type, -delta, at).0)
        };
        let lot_id = lot.as_ref().map(|l| l.id.clone());
        let debt = self.state(&id).debt(point_type);
        self.emit(
            &id,
            Event::PointsAdjusted(Box::new(PointsAdjusted {
                at,
                point_type: point_type.into(),
                delta,
                reason: reason.into(),
                actor: actor.into(),
                lot: lot.map(Shared::new),
                allocations,
            })),
        );
        self.extend_inactivity(&id, point_type, at);
        if let (Some(lot_id), true) = (&lot_id, debt > 0) {
            self.emit(
                &id,
                Event::DebtSettled(Box::new(DebtSettled {
                    at,
                    point_type: point_type.into(),
                    lot_id: lot_id.clone(),
                    points: debt.min(delta),
                })),
            );
        }
        self.follow_up(&id, at, delta < 0);
        Ok((Outcome::Adjustment { member_id: id.clone(), point_type: point_type.into(), delta, lot_id }, Some(id)))
    }

    fn merge(&mut self, survivor: &MemberId, merged: &MemberId) -> Result<(Outcome, Option<MemberId>)> {
        if survivor == merged {
            return Err(CrmError::invalid("merged", "cannot merge a member into itself"));
        }
        if !self.load(merged)? {
            return Err(CrmError::NotFound { entity: "member", id: merged.0.clone() });
        }
        match &self.state(merged).status {
            MemberStatus::Merged { into, .. } if into == survivor => {
                return Ok((
                    Outcome::Merge { survivor: survivor.clone(), merged: merged.clone(), moved: BTreeMap::new() },
                    Some(survivor.clone()),
                ));
            }
            MemberStatus::Active => {}
            _ => return Err(CrmError::invalid("merged", format!("member {merged} is not active"))),
        }
        let s = self.active(survivor, "survivor")?;
        if &s != survivor {
            return Err(CrmError::invalid("survivor", format!("member {survivor} was merged into {s}")));
        }
        let from = self.state(merged).clone();
        let mut moved = BTreeMap::new();
        for pt in &self.program.point_types {
            let b = from.balance(&pt.id, self.now);
            let expired: i64 = from
                .lots
                .iter()
                .filter(|l| l.point_type == pt.id && l.phase(self.now) == LotPhase::Expired)
                .map(|l| l.remaining)
                .sum();
            let total = b.total() + expired;
            if total != 0 {
                moved.insert(pt.id.clone(), total);
            }
        }
        // Release, then claim: stores apply identity changes in order, and a
        // claim of an identity released in the same commit is not a conflict.
        for identity in &from.identities {
            self.commit.identities.push((identity.clone(), None));
            self.commit.identities.push((identity.clone(), Some(s.clone())));
        }
        for order_id in from.orders.keys() {
            self.commit.orders.push((order_id.clone(), s.clone()));
        }
        let at = self.now;
        self.emit(&s, Event::MergedIn { at, from: Box::new(from) });
        self.emit(merged, Event::MergedInto { at, into: s.clone(), moved: moved.clone() });
        self.follow_up(&s, at, false);
        Ok((Outcome::Merge { survivor: s.clone(), merged: merged.clone(), moved }, Some(s)))
    }
}

/// What one attempt of [`Engine::optimistically`] decided.
enum Attempt<T> {
    /// Nothing to write: the answer (a receipt found, say).
    Answered(T),
    /// Commit this, then answer.
    Commit(Commit, T),
}

/// A refused commit: `Ok` when another writer won the race (load again and
/// retry), the error to report otherwise.
fn retry_or_fail(e: CommitError) -> Result<()> {
    match e {
        CommitError::Stale { .. } | CommitError::StaleTally { .. } | CommitError::DuplicateKey { .. } => Ok(()),
        CommitError::IdentityTaken { identity, owner } => Err(identity_taken(&identity, &owner)),
        CommitError::Store(e) => Err(e),
    }
}

fn identity_taken(identity: &Identity, owner: &MemberId) -> CrmError {
    CrmError::conflict(format!(
        "identity {}:{} already belongs to member {owner}",
        identity.channel, identity.external_id
    ))
}

fn check_tag(tag: &str, field: &str) -> Result<()> {
    if tag.is_empty() || tag.len() > 64 || tag.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(CrmError::invalid(field, "must be 1-64 characters without spaces"));
    }
    Ok(())
}

fn check_points(points: i64, field: &str) -> Result<()> {
    if points.abs() > MAX_POINTS {
        return Err(CrmError::invalid(field, format!("must be at most {MAX_POINTS} in magnitude")));
    }
    Ok(())
}

/// Money value of a refund and the items it returns.
fn refund_amount(
    ledger: &OrderLedger,
    scope: &RefundScope,
    remaining: Decimal,
) -> Result<(Decimal, Vec<ReturnedItem>)> {
    if remaining <= Decimal::ZERO {
        return Err(CrmError::invalid("refund.order_id", "the order is already fully refunded"));
    }
    match scope {
        RefundScope::Full => Ok((remaining, Vec::new())),
        RefundScope::Amount { amount } => {
            check_amount(*amount, "refund.scope.amount")?;
            if amount.is_zero() {
                return Err(CrmError::invalid("refund.scope.amount", "must be positive"));
            }
            if *amount > remaining {
                return Err(CrmError::invalid("refund.scope.amount", format!("exceeds the refundable {remaining}")));
            }
            Ok((*amount, Vec::new()))
        }
        RefundScope::Items { items } => {
            if items.is_empty() {
                return Err(CrmError::invalid("refund.scope.items", "must not be empty"));
            }
            let order = &ledger.order;
            let mut value = Decimal::ZERO;
            let mut returned = ledger.returned.clone();
            for (i, r) in items.iter().enumerate() {
                let field = format!("refund.scope.items[{i}]");
                let lines: Vec<_> = order.items.iter().filter(|l| l.sku == r.sku).collect();
                if lines.is_empty() {
                    return Err(CrmError::invalid(format!("{field}.sku"), format!("{:?} is not in the order", r.sku)));
                }
                let bought: u32 = lines.iter().map(|l| l.qty).sum();
                let done = returned.entry(r.sku.clone()).or_insert(0);
                if r.qty == 0 || *done + r.qty > bought {
                    return Err(CrmError::invalid(format!("{field}.qty"), format!("must be 1..={}", bought - *done)));
                }
                *done += r.qty;
                let unit =
                    lines.iter().map(|l| l.price * Decimal::from(l.qty)).sum::<Decimal>() / Decimal::from(bought);
                value += unit * Decimal::from(r.qty);
            }
            let all_returned = order.items.iter().all(|l| {
                returned.get(&l.sku).copied().unwrap_or(0)
                    >= order.items.iter().filter(|x| x.sku == l.sku).map(|x| x.qty).sum()
            });
            let items_value = order.items_value();
            let amount = if all_returned || items_value.is_zero() {
                remaining
            } else {
                (value * order.amount / items_value)
                    .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
                    .min(remaining)
            };
            Ok((amount, items.clone()))
        }
    }
}

impl<S: Store> Engine<S> {
    /// An engine running `program` over `store`.
    pub fn new(program: Program, store: S) -> Self {
        let schedule = schedule::schedule_of(&program);
        Engine { program, store, schedule }
    }

    /// The programme.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Execute a command under an idempotency key. Repeating a key with the
    /// same command returns the first outcome; with another command it is a
    /// conflict. Concurrent writers are retried (optimistic concurrency).
    pub fn execute(&self, key: &str, command: Command, now: DateTime<Utc>) -> Result<Outcome> {
        check_ref(key, "idempotency_key")?;
        if let Command::RunDue { coupon_codes } = &command {
            return self.run_due_keyed(key, now, coupon_codes);
        }
        self.optimistically(|| {
            if let Some(r) = self.store.receipt(key)? {
                return same_or_conflict(r, &command).map(Attempt::Answered);
            }
            let mut tx = Tx::new(&self.program, &self.store, now);
            let (outcome, member_id) = tx.apply(key, &command)?;
            tx.commit.receipts.push(Receipt {
                key: key.to_string(),
                now,
                member_id,
                command: command.clone(),
                outcome: outcome.clone(),
            });
            Ok(Attempt::Commit(tx.finish(), outcome))
        })
    }

    /// Decide with `decide` from one read snapshot (where the store has
    /// them) and commit what it decided; decide again from fresh reads while
    /// the commit finds that another writer changed what was read
    /// (optimistic concurrency), up to [`MAX_ATTEMPTS`] times.
    fn optimistically<T>(&self, mut decide: impl FnMut() -> Result<Attempt<T>>) -> Result<T> {
        for _ in 0..MAX_ATTEMPTS {
            let reads = ReadScope::begin(&self.store);
            let (commit, value) = match decide()? {
                Attempt::Answered(value) => return Ok(value),
                Attempt::Commit(commit, value) => (commit, value),
            };
            drop(reads);
            match self.store.commit(commit) {
                Ok(()) => return Ok(value),
                Err(e) => retry_or_fail(e)?,
            }
        }
        Err(CrmError::conflict("too many concurrent writers; try again"))
    }

    /// Execute under the caller's key, or the command's default key
    /// ([`Command::default_key`]) when `key` is `None`.
    pub fn submit(&self, key: Option<&str>, command: Command, now: DateTime<Utc>) -> Result<Outcome> {
        match key {
            Some(k) => self.execute(k, command, now),
            None => {
                let k = command.default_key(now).ok_or_else(|| {
                    CrmError::invalid("idempotency_key", "is required for commands that move points on request")
                })?;
                self.execute(&k, command, now)
            }
        }
    }

    /// Import many orders in one atomic commit. Each order gets its own
    /// result; a bad order does not stop the others. Idempotent per order id.
    pub fn record_orders(&self, orders: &[Order], now: DateTime<Utc>) -> Result<Vec<Result<Outcome>>> {
        // The whole batch is decided from one read snapshot where the store has them.
        self.optimistically(|| {
            let mut tx = Tx::new(&self.program, &self.store, now);
            // One receipt per order at most: grown one push at a time, a
            // large batch's receipts would be copied into ever larger
            // (freshly faulted-in) blocks.
            tx.commit.receipts.reserve(orders.len());
            let mut results = Vec::with_capacity(orders.len());
            let mut in_batch: HashMap<String, usize> = HashMap::with_capacity(orders.len());
            for order in orders {
                let key = order_key(&order.id);
                let command = Command::RecordOrder { order: order.clone() };
                if let Some(&i) = in_batch.get(&key) {
                    results.push(same_or_conflict(tx.commit.receipts[i].clone(), &command));
                    continue;
                }
                if let Some(r) = self.store.receipt(&key)? {
                    results.push(same_or_conflict(r, &command));
                    continue;
                }
                let cp = tx.checkpoint();
                match tx.apply(&key, &command) {
                    Ok((outcome, member_id)) => {
                        in_batch.insert(key.clone(), tx.commit.receipts.len());
                        tx.commit.receipts.push(Receipt { key, now, member_id, command, outcome: outcome.clone() });
                        results.push(Ok(outcome));
                    }
                    Err(e) => {
                        tx.rollback(cp)?;
                        results.push(Err(e));
                    }
                }
            }
            Ok(Attempt::Commit(tx.finish(), results))
        })
    }

    /// Activate pending lots and expire lots due at `now`, for every member.
    /// Idempotent: running it again for the same `now` changes nothing.
    pub fn run_due(&self, now: DateTime<Utc>) -> Result<Outcome> {
        let key = Command::run_due().default_key(now).expect("run_due has a default key");
        self.run_due_keyed(&key, now, &BTreeMap::new())
    }

    /// `given`: coupon codes a replayed run hands out again (see
    /// [`Command::RunDue`]); codes not in it are drawn afresh.
    fn run_due_keyed(&self, key: &str, now: DateTime<Utc>, given: &BTreeMap<String, String>) -> Result<Outcome> {
        if let Some(r) = self.store.receipt(key)? {
            // The stored command carries the codes it drew: any run_due matches.
            return match r.command {
                Command::RunDue { .. } => Ok(r.outcome),
                _ => same_or_conflict(r, &Command::run_due()),
            };
        }
        // Wake-ups derived under another programme are derived again first
        // (and members placed under a changed tier ladder).
        let placed = self.ensure_schedule(now)?;
        // Only the members with something due are loaded (stores index
        // `MemberState::next_due_at`); sorted so runs are deterministic.
        let mut due = self.store.due_members(now)?;
        // A short run stays on this thread: starting threads would cost more
        // than its members.
        let workers = if due.len() < RUN_DUE_PARALLEL_FROM { 1 } else { self.store.decision_workers().max(1) };
        // A member day's million ids: sorted on the decision workers (at
        // most `decision_workers` threads).
        let sorters = if due.len() >= RUN_DUE_PARALLEL_SORT_FROM { workers } else { 1 };
        crate::threads::within(
            sorters,
            &mut due[..],
            rayon::slice::ParallelSliceMut::par_sort_unstable,
            <[MemberId]>::sort_unstable,
        );
        due.dedup();
        // With several workers, at least four chunks each (a short run still
        // shares out its work); the result does not depend on the split.
        let most = self.store.due_chunk().clamp(1, RUN_DUE_CHUNK);
        let size = if workers > 1 { due.len().div_ceil(workers * 4).clamp(1, most) } else { most };
        let chunks: Vec<&[MemberId]> = due.chunks(size).collect();
        let mut total = DueChunk::default();
        if workers <= 1 || chunks.len() <= 1 {
            for chunk in &chunks {
                let decided = self.decide_due_chunk(chunk, now, given)?;
                total.add(self.commit_due_chunk(chunk, decided, now, given)?);
            }
        } else {
            self.run_due_parallel(&chunks, workers, now, given, &mut total)?;
        }
        let outreach = total.take_outreach();
        let DueChunk { members, activated, expired, mut journey, codes: drawn, .. } = total;
        journey.outreach = outreach;
        journey.tier_changes += placed;
        journey
            .outreach
            .sort_by(|a, b| (a.due_at, &a.member_id, &a.trigger).cmp(&(b.due_at, &b.member_id, &b.trigger)));
        let outreach_count = journey.outreach.len() as u64;
        let due = |outreach| Outcome::Due {
            members,
            activated,
            expired,
            tier_changes: journey.tier_changes,
            stage_changes: journey.stage_changes,
            outreach,
            outreach_count,
            suppressed: journey.suppressed,
        };
        // The receipt keeps the counts, not the messages: a repeated run for
        // the same `now` hands nothing out again. (Built without them, not
        // cloned and cleared: a member day hands out one per member.)
        let stored = due(Vec::new());
        let outcome = due(journey.outreach);
        // Replayed, the codes it was given are the ones it handed out.
        let mut coupon_codes = given.clone();
        coupon_codes.extend(drawn);
        let receipt = Receipt {
            key: key.to_string(),
            now,
            member_id: None,
            command: Command::RunDue { coupon_codes },
            outcome: stored,
        };
        match self.store.commit(Commit { receipts: vec![receipt], ..Commit::default() }) {
            Ok(()) | Err(CommitError::DuplicateKey { .. }) => Ok(outcome),
            Err(CommitError::Store(e)) => Err(e),
            Err(_) => Err(CrmError::conflict("run_due receipt")),
        }
    }

    /// Decide the due work of one chunk of members in a fresh transaction
    /// (nothing is written): the commit and the chunk's share of the outcome.
    fn decide_due_chunk(
        &self,
        chunk: &[MemberId],
        now: DateTime<Utc>,
        given: &BTreeMap<String, String>,
    ) -> Result<DueChunk> {
        let reads = ReadScope::begin(&self.store);
        let mut tx = Tx::new(&self.program, &self.store, now);
        tx.members.reserve(chunk.len());
        tx.codes = Some(CodeBook { given, drawn: BTreeMap::new() });
        let mut d = DueChunk::default();
        // On a member day nearly every member gets one message.
        d.journey.outreach.reserve(chunk.len());
        tx.load_all(chunk)?;
        for id in chunk {
            let Some(MemberDue { activated, expired, journey: done, acted }) = tx.due(id)? else { continue };
            if acted {
                d.members += 1;
                d.activated += activated;
                d.expired += expired;
            }
            d.journey.tier_changes += done.tier_changes;
            d.journey.stage_changes += done.stage_changes;
            d.journey.suppressed += done.suppressed;
            d.journey.outreach.extend(done.outreach);
        }
        d.codes = tx.codes.take().map(|c| c.drawn).unwrap_or_default();
        d.independent = tx.tallies.is_empty() && d.codes.is_empty();
        d.commit = tx.finish();
        drop(reads);
        Ok(d)
    }

    /// Commit a chunk as decided and return it. A chunk refused because a
    /// member or tally changed since it was decided (another writer, or an
    /// earlier chunk of this run drawing on the same coupon tally) is
    /// decided again now, after every earlier chunk is committed, so the
    /// result is the one a run committing chunk after chunk gets.
    fn commit_due_chunk(
        &self,
        chunk: &[MemberId],
        mut decided: DueChunk,
        now: DateTime<Utc>,
        given: &BTreeMap<String, String>,
    ) -> Result<DueChunk> {
        for attempt in 0..MAX_ATTEMPTS {
            match self.store.commit(std::mem::take(&mut decided.commit)) {
                Ok(()) => return Ok(decided),
                Err(CommitError::Stale { .. } | CommitError::StaleTally { .. }) if attempt + 1 < MAX_ATTEMPTS => {
                    decided = self.decide_due_chunk(chunk, now, given)?;
                }
                Err(CommitError::Store(e)) => return Err(e),
                Err(_) => return Err(CrmError::conflict("run_due could not commit; try again")),
            }
        }
        Err(CrmError::conflict("run_due could not commit; try again"))
    }

    /// Decide a chunk on a worker thread, and commit it there too when
    /// its decision is independent of the other chunks (see
    /// [`DueChunk::independent`]): then when it is committed changes
    /// nothing, and the workers' commits overlap (their encoding, their
    /// share of a SQLite group commit, freeing the snapshots they replace)
    /// instead of queueing on the calling thread.
    fn work_due_chunk(
        &self,
        chunk: &[MemberId],
        now: DateTime<Utc>,
        given: &BTreeMap<String, String>,
    ) -> Result<DueWork> {
        let mut decided = self.decide_due_chunk(chunk, now, given)?;
        if !decided.independent {
            return Ok(DueWork::Decided(decided));
        }
        match self.store.commit(std::mem::take(&mut decided.commit)) {
            Ok(()) => Ok(DueWork::Committed(decided)),
            Err(CommitError::Stale { .. } | CommitError::StaleTally { .. }) => Ok(DueWork::Stale),
            Err(CommitError::Store(e)) => Err(e),
            Err(_) => Err(CrmError::conflict("run_due could not commit; try again")),
        }
    }

    /// `run_due` with chunks decided on `workers` threads: the calling thread
    /// and `workers - 1` jobs on rayon's pool, whose threads live on between
    /// runs (so do their allocator heaps, which the snapshots a run replaces
    /// go back to). Chunks hold disjoint members. A chunk whose decision read
    /// a programme-wide tally (or drew a coupon code) is committed on the
    /// calling thread in chunk order; if an earlier chunk changed that tally
    /// it fails its version check and is decided again (see
    /// [`Engine::commit_due_chunk`]). Every other chunk depends on its own
    /// members alone and is committed by whoever decided it. So outcomes,
    /// events and stored state are those of the one-thread run.
    ///
    /// The calling thread takes chunks too whenever none has come back, so
    /// the run finishes even if the pool is busy (or is the caller's own).
    fn run_due_parallel(
        &self,
        chunks: &[&[MemberId]],
        workers: usize,
        now: DateTime<Utc>,
        given: &BTreeMap<String, String>,
        total: &mut DueChunk,
    ) -> Result<()> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::mpsc::TryRecvError;
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        rayon::in_place_scope(|scope| {
            let (send, receive) = std::sync::mpsc::channel::<(usize, Result<DueWork>)>();
            for _ in 1..workers {
                let send = send.clone();
                let (next, stop) = (&next, &stop);
                scope.spawn(move |_| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks.len() || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if send.send((i, self.work_due_chunk(chunks[i], now, given))).is_err() {
                        break;
                    }
                });
            }
            drop(send);
            // Chunks come back in any order; take them in chunk order.
            let mut pending: BTreeMap<usize, Result<DueWork>> = BTreeMap::new();
            let result = (|| {
                for (i, chunk) in chunks.iter().enumerate() {
                    let work = loop {
                        if let Some(w) = pending.remove(&i) {
                            break w;
                        }
                        match receive.try_recv() {
                            Ok((j, w)) => {
                                pending.insert(j, w);
                            }
                            Err(TryRecvError::Empty) => {
                                let j = next.fetch_add(1, Ordering::Relaxed);
                                if j < chunks.len() {
                                    pending.insert(j, self.work_due_chunk(chunks[j], now, given));
                                } else if let Ok((j, w)) = receive.recv() {
                                    // Every chunk is taken: wait for the workers' ones.
                                    pending.insert(j, w);
                                }
                            }
                            // Every worker has ended without chunk `i`: decide it here.
                            Err(TryRecvError::Disconnected) => {
                                break self.decide_due_chunk(chunk, now, given).map(DueWork::Decided);
                            }
                        }
                    };
                    let committed = match work? {
                        DueWork::Committed(done) => done,
                        DueWork::Decided(decided) => self.commit_due_chunk(chunk, decided, now, given)?,
                        DueWork::Stale => {
                            let decided = self.decide_due_chunk(chunk, now, given)?;
                            self.commit_due_chunk(chunk, decided, now, given)?
                        }
                    };
                    total.add(committed);
                }
                Ok(())
            })();
            stop.store(true, Ordering::Relaxed);
            drop(receive);
            result
        })
    }

    // ----- convenience commands -------------------------------------------

    /// Record an order (idempotency key `order:<id>`).
    pub fn record_order(&self, order: Order, now: DateTime<Utc>) -> Result<Outcome> {
        let key = order_key(&order.id);
        self.execute(&key, Command::RecordOrder { order }, now)
    }

    /// Record a refund (idempotency key `refund:<id>`).
    pub fn record_refund(&self, refund: Refund, now: DateTime<Utc>) -> Result<Outcome> {
        let key = format!("refund:{}", refund.id);
        self.execute(&key, Command::RecordRefund { refund }, now)
    }

    /// Spend points; the idempotency key is also the redemption id.
    pub fn redeem(
        &self,
        member: &MemberId,
        point_type: &str,
        points: i64,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        self.execute(
            key,
            Command::Redeem { member_id: member.clone(), point_type: point_type.into(), points, reason: None },
            now,
        )
    }

    // ----- queries ----------------------------------------------------------

    /// The stored member record (merged and erased members included).
    pub fn member(&self, id: &MemberId) -> Result<MemberState> {
        self.store.load(id)?.map(|v| v.state).ok_or_else(|| CrmError::NotFound { entity: "member", id: id.0.clone() })
    }

    /// The member that now owns `id` (following merges).
    pub fn resolve(&self, id: &MemberId) -> Result<MemberState> {
        let mut st = self.member(id)?;
        for _ in 0..MAX_MERGE_DEPTH {
            match &st.status {
                MemberStatus::Merged { into, .. } => st = self.member(into)?,
                _ => return Ok(st),
            }
        }
        Err(CrmError::conflict(format!("merge chain of {id} is too long")))
    }

    /// The member an identity belongs to.
    pub fn find_by_identity(&self, identity: &Identity) -> Result<Option<MemberId>> {
        self.store.identity_owner(identity)
    }

    /// The member's state as of instant `at`, rebuilt from its events.
    pub fn member_as_of(&self, id: &MemberId, at: DateTime<Utc>) -> Result<MemberState> {
        MemberState::as_of(id, &self.store.events(id)?, at)
            .ok_or_else(|| CrmError::NotFound { entity: "member", id: id.0.clone() })
    }

    /// Balance of a point type at `at` — now or any past instant. Follows the
    /// merges made by `at`: before its merge, a merged member's balance is its own.
    pub fn balance(&self, id: &MemberId, point_type: &str, at: DateTime<Utc>) -> Result<Balance> {
        self.program.require_point_type(point_type, "point_type")?;
        // Follow merges that had happened by `at`; before its merge a member's
        // balance is its own. The snapshot is only looked at, not copied.
        enum Seen {
            MergedInto(MemberId),
            Current(Balance),
            AsOf,
        }
        let mut current = id.clone();
        for depth in 0.. {
            let mut seen = Seen::AsOf;
            let found = self.store.inspect(&current, &mut |st| {
                seen = match &st.status {
                    MemberStatus::Merged { into, at: merged_at } if *merged_at <= at => Seen::MergedInto(into.clone()),
                    _ if at >= st.last_event_at => Seen::Current(st.balance(point_type, at)),
                    _ => Seen::AsOf,
                }
            })?;
            if !found {
                return Err(CrmError::NotFound { entity: "member", id: current.0 });
            }
            match seen {
                Seen::MergedInto(into) => {
                    if depth >= MAX_MERGE_DEPTH {
                        return Err(CrmError::conflict(format!("merge chain of {id} is too long")));
                    }
                    current = into;
                }
                Seen::Current(b) => return Ok(b),
                Seen::AsOf => break,
            }
        }
        let st = self.member_as_of(&current, at)?;
        Ok(st.balance(point_type, at))
    }

    /// Open lots of a member (all point types), soonest expiry first.
    pub fn lots(&self, id: &MemberId) -> Result<Vec<Lot>> {
        self.lots_at(id, DateTime::<Utc>::MAX_UTC)
    }

    /// Points of a type that expire in `(now, now + days]`, bucketed by instant.
    pub fn expiring(&self, id: &MemberId, point_type: &str, now: DateTime<Utc>, days: u32) -> Result<Expiring> {
        self.program.require_point_type(point_type, "point_type")?;
        let until = now + chrono::Duration::days(i64::from(days));
        let st = self.resolve(id)?;
        let mut buckets: BTreeMap<DateTime<Utc>, i64> = BTreeMap::new();
        for lot in st.lots.iter().filter(|l| l.point_type == point_type && l.remaining > 0) {
            if let Some(e) = lot.expires_at.filter(|e| *e > now && *e <= until) {
                *buckets.entry(e).or_insert(0) += lot.remaining;
            }
        }
        Ok(Expiring { total: buckets.values().sum(), buckets: buckets.into_iter().collect() })
    }

    /// A page of the member's statement for one point type, oldest first.
    pub fn statement(&self, id: &MemberId, point_type: &str, offset: usize, limit: usize) -> Result<StatementPage> {
        self.program.require_point_type(point_type, "point_type")?;
        if limit == 0 || limit > 10_000 {
            return Err(CrmError::invalid("limit", "must be 1-10000"));
        }
        let id = self.resolve(id)?.id;
        let events = self.store.events(&id)?;
        let entries = statement_entries(&events, point_type);
        let total = entries.len();
        let page: Vec<_> = entries.into_iter().skip(offset).take(limit).collect();
        let next_offset = (offset + page.len() < total).then_some(offset + page.len());
        Ok(StatementPage { entries: page, total, next_offset })
    }

    /// Programme-wide outstanding points and their money value at `at`.
    pub fn liability(&self, at: DateTime<Utc>) -> Result<Liability> {
        let mut count = LiabilityCount::new(&self.program, at);
        self.store.inspect_all(&mut |st| {
            count.add(st);
            Ok(())
        })?;
        Ok(count.finish())
    }

    /// Re-execute this store's command log, in order, into another engine
    /// (replay, migration, what-if under another programme).
    pub fn replay_into<T: Store>(&self, target: &Engine<T>) -> Result<u64> {
        let mut n = 0;
        self.store.receipts(&mut |r| {
            n += 1;
            match target.execute(&r.key, r.command, r.now) {
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        Ok(n)
    }
}

/// What `run_due` did for one member.
struct MemberDue {
    activated: i64,
    expired: i64,
    journey: journey::Journey,
    /// Anything happened (points moved, a tier or stage changed, a message went out).
    acted: bool,
}

impl<S: Store> Tx<'_, S> {
    /// The scheduled work of one member at `now`: activations and expiries,
    /// then tier reviews, stage changes and outreach. `None` when the member
    /// does not exist or has nothing due (stores may over-report).
    fn due(&mut self, id: &MemberId) -> Result<Option<MemberDue>> {
        if !self.load(id)? || !has_due(self.state(id), self.now) {
            return Ok(None);
        }
        let (activated, expired) = self.due_events(id);
        let journey = self.journey_due(id)?;
        let acted =
            activated + expired > 0 || journey.tier_changes + journey.stage_changes > 0 || !journey.outreach.is_empty();
        Ok(Some(MemberDue { activated, expired, journey, acted }))
    }

    /// Emit activation and expiry events due at `now`; returns the points.
    fn due_events(&mut self, id: &MemberId) -> (i64, i64) {
        let now = self.now;
        let st = self.state(id);
        // Most members woken have nothing due from their lots (a message,
        // a stage change): known without reading every lot.
        if st.lots_quiet_until(now) {
            return (0, 0);
        }
        let activations: Vec<(String, i64)> = st
            .lots
            .iter()
            .filter(|l| !l.activated && l.available_at <= now && l.phase(now) != LotPhase::Expired)
            .map(|l| (l.id.clone(), l.remaining))
            .collect();
        let mut expiries: BTreeMap<(String, DateTime<Utc>), Vec<Allocation>> = BTreeMap::new();
        for l in st.lots.iter().filter(|l| l.remaining > 0 && l.phase(now) == LotPhase::Expired) {
            let at = l.expires_at.expect("expired lots have an expiry");
            expiries.entry((l.point_type.clone(), at)).or_default().push(Allocation {
                lot_id: l.id.clone(),
                points: l.remaining,
                expires_at: l.expires_at,
            });
        }
        let mut activated = 0;
        for (lot_id, points) in activations {
            activated += points;
            self.emit(id, Event::PointsActivated { at: now, lot_id, points });
        }
        let mut expired = 0;
        for ((point_type, at), allocations) in expiries {
            expired += allocations.iter().map(|a| a.points).sum::<i64>();
            self.emit(id, Event::PointsExpired { at, point_type, allocations });
        }
        (activated, expired)
    }
}

/// [`Store::begin_reads`] until dropped (also on an early return).
struct ReadScope<'a, S: Store>(&'a S);

impl<'a, S: Store> ReadScope<'a, S> {
    fn begin(store: &'a S) -> Self {
        store.begin_reads();
        ReadScope(store)
    }
}

impl<S: Store> Drop for ReadScope<'_, S> {
    fn drop(&mut self) {
        self.0.end_reads();
    }
}

/// `next_due_at() <= now`, reading as little as it can: the wake-up first.
fn has_due(st: &MemberState, now: DateTime<Utc>) -> bool {
    st.wake_at.is_some_and(|w| w <= now) || st.lots_due_by(now)
}

/// The outcome of an order status change that earns nothing (a repeat,
/// completion of a paid order, cancelling an unpaid or fully refunded one).
fn nothing_earned(order_id: &str, id: MemberId) -> (Outcome, Option<MemberId>) {
    let outcome =
        Outcome::Order { order_id: order_id.into(), member_id: id.clone(), earned: BTreeMap::new(), lots: vec![] };
    (outcome, Some(id))
}

fn same_or_conflict(r: Receipt, command: &Command) -> Result<Outcome> {
    if &r.command == command || r.command == command.redacted() {
        Ok(r.outcome)
    } else {
        Err(CrmError::conflict(format!("idempotency key {:?} was used for a different command", r.key)))
    }
}

/// Statement lines of one point type from a member's events.
pub fn statement_entries(events: &[Event], point_type: &str) -> Vec<StatementEntry> {
    let mut out = Vec::new();
    let mut balance = 0i64;
    let sum = |a: &[Allocation]| a.iter().map(|x| x.points).sum::<i64>();
    for (i, e) in events.iter().enumerate() {
        let mut actor = None;
        let (kind, points, reference) = match e {
            Event::PointsEarned { lot, .. } if lot.point_type == point_type => {
                let r = match &lot.source {
                    LotSource::Order { order_id, .. } => Some(order_id.clone()),
                    LotSource::Bonus { bonus_id, .. } => Some(bonus_id.clone()),
                    _ => None,
                };
                ("earn", lot.granted, r)
            }
            Event::PointsRedeemed(r) if r.point_type == point_type => {
                ("redeem", -r.points, Some(r.redemption_id.clone()))
            }
            Event::RedemptionReversed(r) if r.point_type == point_type => {
                ("reverse", r.points, Some(r.redemption_id.clone()))
            }
            Event::PointsClawedBack(c) if c.point_type == point_type => {
                ("clawback", -(sum(&c.allocations) + c.debt), Some(c.order_id.clone()))
            }
            Event::PointsAdjusted(a) if a.point_type == point_type => {
                actor = Some(a.actor.clone());
                ("adjust", a.delta, Some(a.reason.clone()))
            }
            Event::PointsExpired { point_type: pt, allocations, .. } if pt == point_type => {
                ("expire", -sum(allocations), None)
            }
            Event::MergedIn { from, .. } => {
                let p: i64 = from.lots.iter().filter(|l| l.point_type == point_type).map(|l| l.remaining).sum::<i64>()
                    - from.debt(point_type);
                if p == 0 {
                    continue;
                }
                ("merge_in", p, Some(from.id.0.clone()))
            }
            Event::MergedInto { into, moved, .. } => match moved.get(point_type) {
                Some(p) if *p != 0 => ("merge_out", -p, Some(into.0.clone())),
                _ => continue,
            },
            _ => continue,
        };
        balance += points;
        out.push(StatementEntry {
            seq: i as u64 + 1,
            at: e.at(),
            kind: kind.to_string(),
            points,
            balance,
            reference,
            actor,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, hour, 0, 0).unwrap()
    }

    fn order(id: &str, member: &str, at: DateTime<Utc>, amount: i64) -> Command {
        Command::RecordOrder { order: Order::paid(id, member, at, Decimal::from(amount)) }
    }

    /// A failed command after a checkpoint undoes exactly what it did, also
    /// to members the batch had already changed before the checkpoint.
    #[test]
    fn rollback_restores_members_touched_before_and_after_the_checkpoint() {
        let program = Program::default_demo();
        let store = MemoryStore::new();
        let engine = Engine::new(program.clone(), store);
        engine.record_order(Order::paid("o0", "a", t(1, 0), Decimal::from(5)), t(1, 0)).unwrap();
        let mut tx = Tx::new(&program, engine.store(), t(2, 0));
        tx.apply("order:o1", &order("o1", "a", t(2, 0), 10)).unwrap();
        tx.apply("order:o2", &order("o2", "b", t(2, 0), 20)).unwrap();
        let (a, b) = (MemberId::from("a"), MemberId::from("b"));
        let before_a = (tx.state(&a).clone(), tx.members[&a].events.len());
        let before_b = (tx.state(&b).clone(), tx.members[&b].events.len());
        let cp = tx.checkpoint();
        tx.apply("order:o3", &order("o3", "a", t(2, 1), 30)).unwrap();
        tx.apply("order:o4", &order("o4", "c", t(2, 1), 40)).unwrap();
        assert!(tx.members.contains_key(&MemberId::from("c")));
        tx.rollback(cp).unwrap();
        assert_eq!((tx.state(&a).clone(), tx.members[&a].events.len()), before_a);
        assert_eq!((tx.state(&b).clone(), tx.members[&b].events.len()), before_b);
        assert!(!tx.members.contains_key(&MemberId::from("c")));
        assert_eq!(tx.commit.orders.len(), 2);
        // A second scope after a rollback journals afresh.
        let cp = tx.checkpoint();
        tx.apply("order:o5", &order("o5", "b", t(2, 2), 50)).unwrap();
        tx.rollback(cp).unwrap();
        assert_eq!((tx.state(&b).clone(), tx.members[&b].events.len()), before_b);
    }

    /// `MemberState::next_due_at` (what stores index) agrees with `has_due`
    /// (what `run_due` acts on) at every instant.
    #[test]
    fn next_due_at_agrees_with_has_due() {
        let mut program = Program::default_demo();
        for pt in program.point_types.iter_mut() {
            pt.pending_days = 3;
        }
        let engine = Engine::new(program, MemoryStore::new());
        for (i, day) in [1u32, 5, 9].into_iter().enumerate() {
            engine.record_order(Order::paid(format!("o{i}"), "a", t(day, 6), Decimal::from(10)), t(day, 6)).unwrap();
        }
        let mut st = engine.member(&"a".into()).unwrap();
        let due = |st: &MemberState, now| st.next_due_at().is_some_and(|d| d <= now);
        let check = |st: &MemberState| {
            for day in 1..=28 {
                for hour in [0, 6, 12] {
                    let now = t(day, hour);
                    assert_eq!(has_due(st, now), due(st, now), "at {now}");
                }
            }
            for later in [t(1, 0) + chrono::Duration::days(366), t(1, 0) + chrono::Duration::days(400)] {
                assert_eq!(has_due(st, later), due(st, later), "at {later}");
            }
        };
        check(&st);
        assert_eq!(st.next_due_at(), Some(t(4, 6)), "the first pending lot becomes available");
        engine.run_due(t(20, 0)).unwrap();
        st = engine.member(&"a".into()).unwrap();
        check(&st);
        assert!(st.next_due_at().is_some_and(|d| d > t(20, 0)), "only expiries left");
        assert_eq!(engine.store().due_members(t(20, 0)).unwrap(), Vec::<MemberId>::new());
    }
}
