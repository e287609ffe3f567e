//! One member's history at a time, in a transaction that is never
//! committed: the fast path of the what-if replay ([`crate::whatif`]).
//!
//! Why: a what-if replays a whole history under several programmes and
//! keeps only figures. Through [`Engine`](super::Engine) every order pays
//! for a receipt and a store commit (events appended, the snapshot
//! replaced, the order and due indexes updated), the members of an import
//! batch are scattered through memory, and each monthly `run_due` looks
//! them up again. In a replayed history members do not meet, though: there
//! are no merges, and no programme-wide tally when no coupon a trigger hands
//! out has a stock or a budget. So each member's facts can be applied in
//! time order, with the programme's scheduled work at the same instants in
//! between, by the same [`Tx`] methods the engine runs (the rules are the
//! same code), and the member dropped when its history ends. The property
//! test `fast_path_matches_the_engine` (`tests/it/whatif.rs`) holds both
//! replays to the same figures.

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::{journey, Tx};
use crate::command::{Command, Outcome};
use crate::error::{CrmError, Result};
use crate::facts::{Order, Refund};
use crate::ledger::Balance;
use crate::member::{Identity, MemberId};
use crate::program::Program;
use crate::state::{Event, MemberState};
use crate::store::{Commit, CommitError, Receipt, Store, Versioned, VersionedTally};

/// Who owns the order ids of a replayed history: the member of the first
/// order with an id the engine accepts, and that order's position in the
/// replay order.
#[derive(Default)]
pub(crate) struct Owners<'h> {
    /// The ids looked up by id: those of several orders and those of
    /// refunded orders (an order alone with its id needs no lookup, see
    /// `owning`).
    pub(crate) by_id: FxHashMap<&'h str, (&'h str, usize)>,
    /// By position in the replay order: the order there owns its id (nearly
    /// every order does, and then no earlier one was recorded: no lookup).
    pub(crate) owning: Vec<bool>,
}

/// The store a [`MemberReplay`] reads: empty, except that it knows the
/// owner of every order recorded before the fact being applied (the
/// engine refuses an order id recorded before, and finds a refund's member
/// by its order). Never written to.
pub(crate) struct HistoryStore<'h> {
    owners: &'h Owners<'h>,
    /// Position of the fact being applied in the replay order.
    position: AtomicUsize,
}

impl<'h> HistoryStore<'h> {
    pub(crate) fn new(owners: &'h Owners<'h>) -> Self {
        HistoryStore { owners, position: AtomicUsize::new(0) }
    }
}

impl Store for HistoryStore<'_> {
    fn load(&self, _: &MemberId) -> Result<Option<Versioned>> {
        Ok(None)
    }
    fn identity_owner(&self, _: &Identity) -> Result<Option<MemberId>> {
        Ok(None)
    }
    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>> {
        let now = self.position.load(Ordering::Relaxed);
        if self.owners.owning.get(now).copied().unwrap_or(false) {
            // The fact being applied is the first order with this id.
            return Ok(None);
        }
        Ok(self.owners.by_id.get(order_id).filter(|(_, at)| *at < now).map(|(m, _)| MemberId::from(*m)))
    }
    fn receipt(&self, _: &str) -> Result<Option<Receipt>> {
        Ok(None)
    }
    fn commit(&self, _: Commit) -> std::result::Result<(), CommitError> {
        Err(CommitError::Store(CrmError::Store("a what-if replay is never committed".into())))
    }
    fn tally(&self, _: &str) -> Result<Option<VersionedTally>> {
        Ok(None)
    }
    fn events(&self, _: &MemberId) -> Result<Vec<Event>> {
        Ok(Vec::new())
    }
    fn scan(&self, _: &mut dyn FnMut(Versioned) -> Result<()>) -> Result<()> {
        Ok(())
    }
    fn receipts(&self, _: &mut dyn FnMut(Receipt) -> Result<()>) -> Result<()> {
        Ok(())
    }
}

/// Replays members one after the other: [`MemberReplay::clear`], then the
/// member's facts and `run_due` instants in time order; each call returns
/// the [`Outcome`] the engine's command would. A refused fact leaves the
/// member as it was, as a refused command does.
pub(crate) struct MemberReplay<'a> {
    tx: Tx<'a, HistoryStore<'a>>,
    /// The member's event count when its wake-up time was last derived
    /// (`usize::MAX`: not since it was loaded or rolled back).
    woken: usize,
}

impl<'a> MemberReplay<'a> {
    pub(crate) fn new(program: &'a Program, store: &'a HistoryStore<'a>) -> Self {
        let mut tx = Tx::new(program, store, DateTime::<Utc>::MIN_UTC);
        tx.lists_orders = false;
        MemberReplay { tx, woken: usize::MAX }
    }

    /// Forget the members replayed so far.
    pub(crate) fn clear(&mut self) {
        self.tx.members.clear();
        self.woken = usize::MAX;
    }

    /// Apply one fact at `position` in the replay order, at `now`, as one
    /// command: all of it or (refused) none of it.
    fn command(
        &mut self,
        position: usize,
        now: DateTime<Utc>,
        apply: impl FnOnce(&mut Tx<'a, HistoryStore<'a>>) -> Result<(Outcome, Option<MemberId>)>,
    ) -> Result<Outcome> {
        self.tx.store.position.store(position, Ordering::Relaxed);
        self.tx.now = now;
        let cp = self.tx.checkpoint();
        let done = apply(&mut self.tx);
        // What a commit would write is not kept.
        self.tx.commit = Commit::default();
        match done {
            Ok((outcome, _)) => Ok(outcome),
            Err(e) => {
                self.tx.rollback(cp)?;
                self.woken = usize::MAX;
                Err(e)
            }
        }
    }

    /// `Engine::record_order`, which does not depend on `now` (the order's
    /// own times count).
    pub(crate) fn order(&mut self, position: usize, order: &Order) -> Result<Outcome> {
        self.command(position, order.placed_at, |tx| tx.record_order(order))
    }

    /// `Engine::record_refund` at the refund's time.
    pub(crate) fn refund(&mut self, position: usize, refund: &Refund) -> Result<Outcome> {
        let command = Command::RecordRefund { refund: refund.clone() };
        self.command(position, refund.at, |tx| tx.apply(&format!("refund:{}", refund.id), &command))
    }

    /// `Engine::redeem` under `key` at `now`.
    pub(crate) fn redeem(
        &mut self,
        position: usize,
        key: &str,
        member: &MemberId,
        point_type: &str,
        points: i64,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let command =
            Command::Redeem { member_id: member.clone(), point_type: point_type.into(), points, reason: None };
        self.command(position, now, |tx| tx.apply(key, &command))
    }

    /// `Engine::balance` (no merges in a replay); `None` for a member not
    /// replayed yet.
    pub(crate) fn balance(&self, member: &MemberId, point_type: &str, at: DateTime<Utc>) -> Option<Balance> {
        let w = self.tx.members.get(member)?;
        let past;
        let st = if at >= w.state.last_event_at {
            &w.state
        } else {
            past = MemberState::as_of(member, &w.events, at)?;
            &past
        };
        Some(st.balance(point_type, at))
    }

    /// The member's part of `Engine::run_due(now)`: `None` when it does not
    /// exist or has nothing due, else the outcome of a run that found only it.
    pub(crate) fn run_due(&mut self, member: &MemberId, now: DateTime<Utc>) -> Result<Option<Outcome>> {
        let program = self.tx.program;
        let Some(w) = self.tx.members.get_mut(member) else { return Ok(None) };
        // Derived on every commit in the engine; here only when asked, and
        // only if the member changed since.
        if self.woken != w.events.len() {
            w.state.wake_at = journey::wake_at(program, &w.state);
            self.woken = w.events.len();
        }
        self.tx.now = now;
        let Some(due) = self.tx.due(member)? else { return Ok(None) };
        self.tx.commit = Commit::default();
        let outreach_count = due.journey.outreach.len() as u64;
        Ok(Some(Outcome::Due {
            members: u64::from(due.acted),
            activated: due.activated,
            expired: due.expired,
            tier_changes: due.journey.tier_changes,
            stage_changes: due.journey.stage_changes,
            outreach: due.journey.outreach,
            outreach_count,
            suppressed: due.journey.suppressed,
        }))
    }

    /// The member as replayed so far.
    pub(crate) fn state(&self, member: &MemberId) -> Option<&MemberState> {
        self.tx.members.get(member).map(|w| &w.state)
    }
}
