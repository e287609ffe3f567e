//! Read-side views of the member journey: tier with progress, tier and
//! stage distributions, the stage transition matrix. Each takes an instant
//! and answers from the facts up to it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{journey, Engine};
use crate::error::{CrmError, Result};
use crate::lifecycle::{LifecycleConfig, Stage, StageChange};
use crate::member::MemberId;
use crate::outreach::OutreachItem;
use crate::program::Program;
use crate::shared::Shared;
use crate::state::Event;
use crate::state::MemberState;
use crate::store::Store;
use crate::tier::{TierChange, TierLadder, TierView};

/// A member's lifecycle stage at an instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageView {
    pub stage: Stage,
    /// When the member entered it (recorded transitions; `None` when the
    /// programme does not record stages).
    pub since: Option<DateTime<Utc>>,
    pub last_order_at: Option<DateTime<Utc>>,
    /// Whole days since the last paid order.
    pub days_since_last_order: Option<i64>,
    /// Paid orders up to the instant.
    pub orders: u64,
}

/// Members by stage at `from` (rows) and at `to` (columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionMatrix {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `counts[a][b]`: members in stage `a` at `from` and `b` at `to`.
    /// Members who joined after `from` count as `prospect` at `from`.
    pub counts: BTreeMap<Stage, BTreeMap<Stage, u64>>,
}

impl<S: Store> Engine<S> {
    /// The member (following merges) as of `at`.
    fn state_at(&self, id: &MemberId, at: DateTime<Utc>) -> Result<MemberState> {
        let st = self.resolve(id)?;
        if at >= st.last_event_at {
            Ok(st)
        } else {
            let id = st.id.clone();
            self.member_as_of(&id, at)
        }
    }

    /// The member's open lots as of `at` (following merges), soonest expiry
    /// first: from the events up to `at` when `at` is in the past.
    pub fn lots_at(&self, id: &MemberId, at: DateTime<Utc>) -> Result<Vec<crate::ledger::Lot>> {
        let lots = Shared::into_inner(self.state_at(id, at)?.lots);
        let mut lots: Vec<crate::ledger::Lot> = lots.into_iter().map(Shared::into_inner).collect();
        lots.sort_by_key(|l| (l.expires_at.is_none(), l.expires_at, l.earned_at));
        Ok(lots)
    }

    /// The member's tier at `at` with its benefits, progress to the next
    /// tier and to keeping this one ("spend 120.00 more by 31 Dec 2024 to
    /// keep Gold").
    pub fn tier(&self, id: &MemberId, at: DateTime<Utc>) -> Result<TierView> {
        if self.program.tiers.is_none() {
            return Err(CrmError::invalid("tiers", "the programme has no tier ladder"));
        }
        let st = self.state_at(id, at)?;
        journey::tier_view(&self.program, &st, at).ok_or_else(|| CrmError::invalid("tiers", "no tier ladder"))
    }

    /// Every tier change of the member, oldest first.
    pub fn tier_history(&self, id: &MemberId) -> Result<Vec<TierChange>> {
        Ok(Shared::into_inner(self.resolve(id)?.tier_history))
    }

    /// Members per tier at `at` (every tier listed; merged-away and erased
    /// members not counted).
    pub fn tier_distribution(&self, at: DateTime<Utc>) -> Result<BTreeMap<String, u64>> {
        let ladder = self
            .program
            .tiers
            .as_ref()
            .ok_or_else(|| CrmError::invalid("tiers", "the programme has no tier ladder"))?;
        let mut count = TierCount::new(ladder, at);
        self.store.inspect_all(&mut |st| {
            count.add(st);
            Ok(())
        })?;
        Ok(count.finish())
    }

    /// The member's lifecycle stage at `at`.
    pub fn stage(&self, id: &MemberId, at: DateTime<Utc>) -> Result<StageView> {
        let st = self.resolve(id)?;
        Ok(self.stage_view(&st, at))
    }

    fn stage_view(&self, st: &MemberState, at: DateTime<Utc>) -> StageView {
        let lc = self.program.lifecycle_or_default();
        let times = st.order_times();
        let orders = &times[..times.partition_point(|o| *o <= at)];
        let stage = lc.stage_at(self.program.timezone, orders, at);
        let since = st.stage_history.iter().rev().find(|c| c.at <= at).filter(|c| c.to == stage).map(|c| c.at);
        let last = orders.last().copied();
        StageView {
            stage,
            since,
            last_order_at: last,
            days_since_last_order: last.map(|l| (at - l).num_days()),
            orders: orders.len() as u64,
        }
    }

    /// The outreach items the `run_due` at `now` emitted, again (with their
    /// channel and payload), in the order `run_due` returned them: for a
    /// host that crashed after the run committed but before it sent them.
    /// A full scan; meant for recovery, not for every run.
    pub fn outreach_of_run(&self, now: DateTime<Utc>) -> Result<Vec<OutreachItem>> {
        let mut ids = Vec::new();
        self.store.inspect_all(&mut |st| {
            if st.outreach.iter().any(|s| s.run_at == Some(now)) {
                ids.push(st.id.clone());
            }
            Ok(())
        })?;
        let mut items = Vec::new();
        for id in ids {
            for e in self.store.events(&id)? {
                if let Event::OutreachRun { at, emitted, .. } = e {
                    if at == now {
                        items.extend(emitted);
                    }
                }
            }
        }
        items.sort_by(|a, b| (a.due_at, &a.member_id, &a.trigger).cmp(&(b.due_at, &b.member_id, &b.trigger)));
        Ok(items)
    }

    /// Every recorded stage transition of the member, oldest first.
    pub fn stage_history(&self, id: &MemberId) -> Result<Vec<StageChange>> {
        Ok(Shared::into_inner(self.resolve(id)?.stage_history))
    }

    /// Members per stage at `at` (every stage listed; merged-away and erased
    /// members not counted).
    pub fn stage_distribution(&self, at: DateTime<Utc>) -> Result<BTreeMap<Stage, u64>> {
        let mut count = StageCount::new(&self.program, at);
        self.store.inspect_all(&mut |st| {
            count.add(st);
            Ok(())
        })?;
        Ok(count.finish())
    }

    /// How members moved between stages from `from` to `to`.
    pub fn stage_transitions(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<TransitionMatrix> {
        if to < from {
            return Err(CrmError::invalid("to", "must not be before `from`"));
        }
        let lc = self.program.lifecycle_or_default();
        let tz = self.program.timezone;
        let mut counts: BTreeMap<Stage, BTreeMap<Stage, u64>> = BTreeMap::new();
        self.store.inspect_all(&mut |st| {
            if !st.is_active() || st.created_at > to {
                return Ok(());
            }
            let orders = st.order_times();
            let a = lc.stage_at(tz, &orders, from);
            let b = lc.stage_at(tz, &orders, to);
            *counts.entry(a).or_default().entry(b).or_insert(0) += 1;
            Ok(())
        })?;
        Ok(TransitionMatrix { from, to, counts })
    }
}

/// Members per tier at an instant, counted one member at a time (for
/// [`Engine::tier_distribution`] and the what-if replay, which never holds
/// every member at once).
pub(crate) struct TierCount<'p> {
    ladder: &'p TierLadder,
    at: DateTime<Utc>,
    /// Per ladder position (no string copy per member).
    counts: Vec<u64>,
    /// Tiers no longer on the ladder, by name.
    others: BTreeMap<String, u64>,
}

impl<'p> TierCount<'p> {
    pub(crate) fn new(ladder: &'p TierLadder, at: DateTime<Utc>) -> Self {
        TierCount { ladder, at, counts: vec![0; ladder.levels.len()], others: BTreeMap::new() }
    }

    /// Count a member (merged-away, erased and later members are not counted).
    pub(crate) fn add(&mut self, st: &MemberState) {
        if !st.is_active() || st.created_at > self.at {
            return;
        }
        let base = &self.ladder.base().id;
        let tier = st.tier_history.iter().rev().find(|c| c.at <= self.at).map_or(base, |c| &c.to);
        match self.ladder.levels.iter().position(|l| &l.id == tier) {
            Some(i) => self.counts[i] += 1,
            None => *self.others.entry(tier.clone()).or_insert(0) += 1,
        }
    }

    /// Every tier of the ladder listed, with the tiers no longer on it.
    pub(crate) fn finish(self) -> BTreeMap<String, u64> {
        let mut out = self.others;
        out.extend(self.ladder.levels.iter().zip(self.counts).map(|(l, n)| (l.id.clone(), n)));
        out
    }
}

/// Members per lifecycle stage at an instant, counted one member at a time
/// (for [`Engine::stage_distribution`] and the what-if replay).
pub(crate) struct StageCount {
    lifecycle: LifecycleConfig,
    tz: chrono_tz::Tz,
    at: DateTime<Utc>,
    out: BTreeMap<Stage, u64>,
}

impl StageCount {
    pub(crate) fn new(program: &Program, at: DateTime<Utc>) -> Self {
        StageCount {
            lifecycle: program.lifecycle_or_default(),
            tz: program.timezone,
            at,
            out: Stage::ALL.iter().map(|s| (*s, 0)).collect(),
        }
    }

    /// Count a member (merged-away, erased and later members are not counted).
    pub(crate) fn add(&mut self, st: &MemberState) {
        if !st.is_active() || st.created_at > self.at {
            return;
        }
        let stage = self.lifecycle.stage_at(self.tz, &st.order_times(), self.at);
        *self.out.entry(stage).or_insert(0) += 1;
    }

    /// Every stage listed.
    pub(crate) fn finish(self) -> BTreeMap<Stage, u64> {
        self.out
    }
}
