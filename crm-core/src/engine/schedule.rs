//! Wake-ups derived under the programme the engine runs.
//!
//! Why: a member's wake-up ([`MemberState::wake_at`]) is derived from the
//! programme whenever the engine writes the member, and stores index it
//! ([`MemberState::next_due_at`]) so that `run_due` loads only the members
//! with something due. The store does not keep the programme, though. A
//! host that starts the engine with a changed programme (a birthday trigger
//! added, shorter stage thresholds, a member day moved) would find every
//! member's wake-up still derived under the old one, and `run_due` would
//! not wake a member for the new rules until some command wrote it: the new
//! birthday greeting would reach nobody who does not order.
//!
//! So the store keeps a fingerprint of the programme the wake-ups were
//! derived under, and of the rules that derived them (the tally
//! [`SCHEDULE_TALLY`]), and [`Engine::run_due`]
//! under another programme first calls [`Engine::reschedule`]: every
//! member's wake-up is derived again and the members whose next due instant
//! changes are written, each with an [`Event::Rescheduled`] (a write is a
//! new version in every store).
//!
//! Tiers are decided at facts (upgrades) and reviews (downgrades), not
//! derived, so a new or lowered ladder would leave a member who already
//! qualifies where it is until its next order, and a tier taken off the
//! ladder until its review. The store also keeps a fingerprint of the ladder
//! (the tally [`LADDER_TALLY`]); when it differs, `reschedule` places every
//! member as [`crate::tier::Standing::after_ladder_change`] says, at `now` (up, or out of a
//! removed tier; downgrades wait for the review), with a
//! [`Event::TierUpdated`] noted "the tier ladder changed". With no ladder
//! recorded yet (a store no run has scheduled), tiers stand as decided.
//!
//! A changed programme zone (one set up in UTC by mistake, corrected to
//! Asia/Shanghai) moves every local-hour message of the members without a
//! zone of their own: a member day at 10:00 moves eight hours earlier, to
//! before the last run for a member that run had passed. The store keeps a
//! fingerprint of the zone's name too (the tally [`ZONE_TALLY`]); when it
//! differs, `reschedule` writes each such member the scheduler had run for
//! with a [`Event::Rescheduled`] naming the zone before, which lists it
//! behind the scheduler (`FactKind::Zone`), so the next run looks at the
//! messages the move brought before the last one, as after a member's own
//! change of zone. With no zone recorded yet, nothing is known to have moved.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::{journey, Engine, Tx, MAX_ATTEMPTS, RUN_DUE_CHUNK};
use crate::error::{CrmError, Result};
use crate::member::MemberId;
use crate::program::Program;
use crate::shared::Shared;
use crate::state::{Event, MemberState};
use crate::store::{Commit, CommitError, Store, Tally, TallyWrite, VersionedTally};
use crate::tier::{TierReason, TierState};

/// The tally whose `count` is the fingerprint of the programme the stored
/// wake-ups were derived under ([`fingerprint`]).
pub(crate) const SCHEDULE_TALLY: &str = "schedule:programme";

/// The tally whose `count` is the fingerprint of the tier ladder the
/// stored tiers were decided under ([`fingerprint`] of `program.tiers`).
pub(crate) const LADDER_TALLY: &str = "schedule:ladder";

/// The tally whose `count` is the fingerprint of the name of the
/// programme's zone the stored wake-ups were derived in ([`zone_print`]).
pub(crate) const ZONE_TALLY: &str = "schedule:zone";

/// The fingerprint of a zone's IANA name, as [`ZONE_TALLY`] keeps it.
fn zone_print(zone: Tz) -> i64 {
    fingerprint(zone.name())
}

/// The zone whose name has the fingerprint `print`, among the IANA zones
/// this build knows (a tally holds a number, not the name).
fn zone_by_print(print: i64) -> Option<Tz> {
    chrono_tz::TZ_VARIANTS.iter().copied().find(|z| zone_print(*z) == print)
}

/// A stable fingerprint of a programme or a part of it (its ladder): 64
/// bits of the FNV-1a hash of its JSON form (the same across builds,
/// platforms and processes: the programme serialises its maps in key order).
pub(crate) fn fingerprint<T: serde::Serialize + ?Sized>(part: &T) -> i64 {
    let json = serde_json::to_string(part).unwrap_or_default();
    // The low 64 bits, as the tally's signed count.
    crate::command::fnv1a_128(json.as_bytes()) as u64 as i64
}

/// The version of the rules [`journey::wake_at`] derives wake-ups by,
/// hashed with the programme: a library whose rules changed derives the
/// stored wake-ups again at its first run, as a changed programme does.
/// Version 2: a refund leaving a rolling tier window wakes the member.
const WAKE_RULES: u32 = 2;

/// The fingerprint of the wake-ups `program` gives under these rules.
pub(crate) fn schedule_of(program: &Program) -> i64 {
    fingerprint(&(WAKE_RULES, program))
}

/// What [`Engine::reschedule`] wrote.
#[derive(Default)]
struct Rescheduled {
    /// Members written.
    written: u64,
    /// Of them, members placed in another tier (a changed ladder).
    tier_changes: u64,
}

/// Whether `st`'s next due instant under `program` differs from the one it
/// was stored with (the instant stores index).
fn needs_rescheduling(program: &Program, st: &MemberState) -> bool {
    let wake = journey::wake_at(program, st);
    wake != st.wake_at && st.next_due_with(wake) != st.next_due_at()
}

/// The tier `program`'s ladder puts the member in at `now`, when it differs
/// from the one decided before ([`crate::tier::Standing::after_ladder_change`]).
fn ladder_change(program: &Program, st: &MemberState, now: DateTime<Utc>) -> Option<(TierState, TierReason)> {
    let ladder = program.tiers.as_ref().filter(|_| st.is_active())?;
    let tz = program.timezone;
    let current = journey::current_tier(ladder, tz, st);
    journey::standing(ladder, tz, st, &current).after_ladder_change(now)
}

/// What [`Engine::reschedule`] writes for `st` at `now`: the tier a
/// changed ladder places it in (`place`, see [`Engine::reschedule`]); a
/// [`Event::Rescheduled`] when its next due instant changes (any write
/// derives the wake-up again), or when the programme's zone moved from
/// `moved_from` under a member in it whom the scheduler had run for (the
/// next run looks at the messages the move brought before the last one).
fn write_for(
    program: &Program,
    st: &MemberState,
    now: DateTime<Utc>,
    place: bool,
    moved_from: Option<Tz>,
) -> Vec<Event> {
    let mut events = Vec::new();
    // Only a changed ladder is read: placing costs a metric per member.
    if let Some((state, reason)) = place.then(|| ladder_change(program, st, now)).flatten() {
        let note = Some("the tier ladder changed".to_string());
        events.push(Event::TierUpdated { at: now, tier: Shared::new(state), reason, note });
    }
    let in_it = st.is_active() && st.profile.timezone.is_none() && st.outreach_through.is_some();
    let zone_before = moved_from.filter(|_| in_it && program.outreach.is_some()).map(|z| z.name().to_string());
    if zone_before.is_some() || (events.is_empty() && needs_rescheduling(program, st)) {
        events.push(Event::Rescheduled { at: now, zone_before });
    }
    events
}

impl<S: Store + Clone> Engine<S> {
    /// An engine over this engine's store under another programme: what a
    /// host gets by opening its store again with a changed programme,
    /// without closing it (an in-memory store cannot be opened again). The
    /// new engine's first [`Engine::run_due`] derives the wake-ups again
    /// under `program` (see [`Engine::reschedule`]).
    ///
    /// Drop the old engine, or stop running `run_due` on it: two engines
    /// under different programmes on one store would each derive the
    /// wake-ups again at every run.
    ///
    /// ```
    /// use chrono::{Duration, TimeZone, Utc};
    /// use crm_core::{Engine, MemoryStore, Order, Outcome, Program};
    /// use rust_decimal::Decimal;
    /// use std::sync::Arc;
    ///
    /// let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    /// let engine = Engine::new(Program::default_demo(), Arc::new(MemoryStore::new()));
    /// engine.record_order(Order::paid("o-1", "ann", t, Decimal::new(12_999, 2)), t)?;
    /// // The programme gains lifecycle stages: ann, who ordered on 1 March,
    /// // is at risk 90 days later.
    /// let mut stages = engine.program().clone();
    /// let thresholds = serde_json::json!({"at_risk_days": 90, "dormant_days": 180});
    /// stages.lifecycle = Some(serde_json::from_value(thresholds).expect("lifecycle thresholds"));
    /// let engine = engine.with_program(stages);
    /// let Outcome::Due { stage_changes, .. } = engine.run_due(t + Duration::days(91))? else { unreachable!() };
    /// assert_eq!(stage_changes, 2); // new, then at_risk
    /// assert_eq!(engine.balance(&"ann".into(), "reward", t)?.available, 129);
    /// # Ok::<(), crm_core::CrmError>(())
    /// ```
    pub fn with_program(&self, program: Program) -> Engine<S> {
        Engine::new(program, self.store.clone())
    }
}

impl<S: Store> Engine<S> {
    /// Derive every member's wake-up again under this engine's programme,
    /// write the members whose next due instant changes (an
    /// [`Event::Rescheduled`] at `now` each) and record the programme as the
    /// one the store's wake-ups follow. When the tier ladder differs from the
    /// one recorded, members are also placed under it at `now` (see the
    /// module documentation). Returns how many members were written.
    ///
    /// [`Engine::run_due`] does this by itself when the store's wake-ups were
    /// derived under another programme (or before this was recorded), so a
    /// changed programme takes effect at the next run. A host may call it
    /// right after deploying a changed programme, so that the next run does
    /// not pay for the scan of every member.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use crm_core::{Engine, MemoryStore, Order, Outcome, Program};
    /// use rust_decimal::Decimal;
    /// use std::sync::Arc;
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let t = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    /// let before = Engine::new(Program::default_demo(), store.clone());
    /// before.record_order(Order::paid("o-1", "ann", t, Decimal::new(12_999, 2)), t)?;
    /// // The same store under a programme with lifecycle stages: ann's stage
    /// // changes are due now, where before nothing was.
    /// let mut stages = Program::default_demo();
    /// let thresholds = serde_json::json!({"at_risk_days": 90, "dormant_days": 180});
    /// stages.lifecycle = Some(serde_json::from_value(thresholds).expect("lifecycle thresholds"));
    /// let after = Engine::new(stages, store.clone());
    /// assert_eq!(after.reschedule(t)?, 1);
    /// assert_eq!(after.reschedule(t)?, 0);
    /// # Ok::<(), crm_core::CrmError>(())
    /// ```
    pub fn reschedule(&self, now: DateTime<Utc>) -> Result<u64> {
        self.rescheduled(now).map(|done| done.written)
    }

    /// [`Engine::reschedule`], with the tier changes it made.
    fn rescheduled(&self, now: DateTime<Utc>) -> Result<Rescheduled> {
        let recorded = self.store.tally(SCHEDULE_TALLY)?;
        let ladder = fingerprint(&self.program.tiers);
        let recorded_ladder = self.store.tally(LADDER_TALLY)?;
        // Only a ladder known to have changed moves tiers: with none recorded
        // (a store no run has scheduled yet) the tiers stand as decided.
        let place = recorded_ladder.is_some_and(|t| t.tally.count != ladder);
        // The programme's zone the wake-ups were derived in, when it is
        // another (with none recorded, nothing is known to have moved).
        let zone = zone_print(self.program.timezone);
        let recorded_zone = self.store.tally(ZONE_TALLY)?;
        let moved_from =
            recorded_zone.as_ref().filter(|t| t.tally.count != zone).and_then(|t| zone_by_print(t.tally.count));
        let mut stale: Vec<MemberId> = Vec::new();
        self.store.scan(&mut |v| {
            if !write_for(&self.program, &v.state, now, place, moved_from).is_empty() {
                stale.push(v.state.id.clone());
            }
            Ok(())
        })?;
        let mut done = Rescheduled::default();
        for chunk in stale.chunks(RUN_DUE_CHUNK) {
            let chunk = self.reschedule_chunk(chunk, now, place, moved_from)?;
            done.written += chunk.written;
            done.tier_changes += chunk.tier_changes;
        }
        let write = |key: &str, count: i64, recorded: Option<VersionedTally>| TallyWrite {
            key: key.to_string(),
            expected_version: recorded.map_or(0, |t| t.version),
            tally: Tally { count, amount: Decimal::ZERO },
        };
        let tallies = vec![
            write(SCHEDULE_TALLY, self.schedule, recorded),
            write(LADDER_TALLY, ladder, recorded_ladder),
            write(ZONE_TALLY, zone, recorded_zone),
        ];
        match self.store.commit(Commit { tallies, ..Commit::default() }) {
            // Another engine recorded a programme meanwhile: the next run
            // compares again.
            Ok(()) | Err(CommitError::StaleTally { .. }) => Ok(done),
            Err(CommitError::Store(e)) => Err(e),
            Err(_) => Err(CrmError::conflict("reschedule could not commit; try again")),
        }
    }

    /// Write the members of `chunk` that still need it.
    fn reschedule_chunk(
        &self,
        chunk: &[MemberId],
        now: DateTime<Utc>,
        place: bool,
        moved_from: Option<Tz>,
    ) -> Result<Rescheduled> {
        for _ in 0..MAX_ATTEMPTS {
            let mut tx = Tx::new(&self.program, &self.store, now);
            tx.load_all(chunk)?;
            let mut done = Rescheduled::default();
            for id in chunk {
                // Written by another command since the scan: derived then.
                let Some(w) = tx.members.get(id) else { continue };
                let events = write_for(&self.program, &w.state, now, place, moved_from);
                if events.is_empty() {
                    continue;
                }
                for event in events {
                    if let Event::TierUpdated { tier, .. } = &event {
                        let st = &tx.members[id].state;
                        if st.tier.as_ref().is_none_or(|t| t.tier != tier.tier) {
                            done.tier_changes += 1;
                        }
                    }
                    tx.emit(id, event);
                }
                done.written += 1;
            }
            match self.store.commit(tx.finish()) {
                Ok(()) => return Ok(done),
                Err(CommitError::Stale { .. }) => continue,
                Err(CommitError::Store(e)) => return Err(e),
                Err(_) => break,
            }
        }
        Err(CrmError::conflict("reschedule could not commit; try again"))
    }

    /// [`Engine::reschedule`] unless the store's wake-ups were derived under
    /// this engine's programme; the tier changes it made (a changed ladder),
    /// which the run reports with its own.
    pub(super) fn ensure_schedule(&self, now: DateTime<Utc>) -> Result<u64> {
        if self.store.tally(SCHEDULE_TALLY)?.is_some_and(|t| t.tally.count == self.schedule) {
            return Ok(0);
        }
        self.rescheduled(now).map(|done| done.tier_changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zone tally keeps a number: every zone this build knows must be
    /// found again from it, and no two share one.
    #[test]
    fn every_zone_is_found_again_by_its_fingerprint() {
        for zone in chrono_tz::TZ_VARIANTS {
            assert_eq!(zone_by_print(zone_print(zone)), Some(zone), "{}", zone.name());
        }
        assert_eq!(zone_by_print(fingerprint("Mars/Olympus_Mons")), None);
    }
}
