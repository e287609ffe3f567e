//! The member journey inside a transaction: tiers, lifecycle stages and
//! outreach, driven by facts (orders, refunds) and by time (`run_due`).
//! The rules themselves live in [`crate::tier`], [`crate::lifecycle`] and
//! [`crate::outreach`]; this module only decides when to apply them and
//! records the events.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::Tx;
use crate::error::{CrmError, Result};
use crate::lifecycle::Stage;
use crate::member::MemberId;
use crate::outreach::{self, OutreachConfig, OutreachItem};
use crate::program::Program;
use crate::shared::Shared;
use crate::state::{Engagement, Event, MemberState};
use crate::store::Store;
use crate::tier::{self, ManualTier, TierReason, TierState};

/// Reviews (or stage changes) one `run_due` may catch up on per member.
const MAX_CATCH_UP: usize = 400;

/// What one member's scheduled work did.
#[derive(Default)]
pub(super) struct Journey {
    pub tier_changes: u64,
    pub stage_changes: u64,
    pub outreach: Vec<OutreachItem>,
    pub suppressed: u64,
}

/// The zone a member's dates and quiet hours are in.
pub(crate) fn member_zone(program: &Program, st: &MemberState) -> Tz {
    st.profile.timezone.unwrap_or(program.timezone)
}

pub(super) fn joined(st: &MemberState) -> DateTime<Utc> {
    st.profile.joined_at.unwrap_or(st.created_at)
}

/// Where stage evaluation stands: the later of the last recorded
/// transition and the last of `orders` (the paid orders considered).
fn stage_cursor(st: &MemberState, orders: &[DateTime<Utc>]) -> DateTime<Utc> {
    let last_change = st.stage_history.last().map(|c| c.at);
    last_change.max(orders.last().copied()).unwrap_or(st.created_at)
}

/// Where the member's tier was last decided: its last change (a review
/// that kept it included), or when it entered it.
fn tier_decided(st: &MemberState, current: &TierState) -> DateTime<Utc> {
    st.tier_history.last().map_or(current.since, |c| c.at)
}

/// A reduction leaving a rolling window lifting the member
/// ([`tier::Standing::due_upgrade`]) after its tier was last decided, up to `until`.
/// Only members with a reduction have their activity read.
fn leaving_upgrade(
    ladder: &tier::TierLadder,
    tz: Tz,
    st: &MemberState,
    current: &TierState,
    until: Option<DateTime<Utc>>,
) -> Option<(TierState, TierReason, DateTime<Utc>)> {
    st.last_reduction()?;
    standing(ladder, tz, st, current).due_upgrade(tier_decided(st, current), until)
}

/// The member's tier as `ladder` sees it, holding `current`.
pub(super) fn standing<'a>(
    ladder: &'a tier::TierLadder,
    tz: Tz,
    st: &'a MemberState,
    current: &'a TierState,
) -> tier::Standing<'a> {
    tier::Standing { ladder, tz, joined: joined(st), current, activity: &st.activity }
}

/// The member's tier state, or the initial one of a member the ladder has
/// not placed yet (borrowed: most calls only read it).
pub(super) fn current_tier<'a>(ladder: &tier::TierLadder, tz: Tz, st: &'a MemberState) -> Cow<'a, TierState> {
    match &st.tier {
        Some(t) => Cow::Borrowed(&**t),
        None => Cow::Owned(tier::initial(ladder, tz, joined(st), st.created_at)),
    }
}

/// The member's tier view at `at` (programmes with tiers).
pub(crate) fn tier_view(program: &Program, st: &MemberState, at: DateTime<Utc>) -> Option<tier::TierView> {
    let ladder = program.tiers.as_ref()?;
    let current = current_tier(ladder, program.timezone, st);
    Some(standing(ladder, program.timezone, st, &current).view(at))
}

/// Whether any trigger looks at the tier (computing the view sums the metric).
fn needs_tier_view(cfg: &outreach::OutreachConfig) -> bool {
    cfg.triggers.iter().any(|t| matches!(t.when, outreach::TriggerKind::TierRetention { .. }))
}

/// The tier and retention deadline, when a trigger looks at the tier.
fn deadline_view(program: &Program, cfg: &OutreachConfig, st: &MemberState) -> Option<tier::TierView> {
    let ladder = program.tiers.as_ref().filter(|_| needs_tier_view(cfg))?;
    Some(tier::schedule_view(ladder, &current_tier(ladder, program.timezone, st)))
}

/// The next instant the programme needs this member, from its state.
pub(crate) fn wake_at(program: &Program, st: &MemberState) -> Option<DateTime<Utc>> {
    if !st.is_active() {
        return None;
    }
    let mut next: Option<DateTime<Utc>> = None;
    let mut take = |t: Option<DateTime<Utc>>| {
        if let Some(t) = t {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    };
    if let (Some(ladder), Some(t)) = (&program.tiers, &st.tier) {
        take(t.manual.as_ref().map(|m| m.until).or(t.grace_until).or(t.review_at));
        take(leaving_upgrade(ladder, program.timezone, st, t, None).map(|u| u.2));
    }
    if let Some(lc) = &program.lifecycle {
        let orders = st.order_times();
        take(lc.next_change(program.timezone, &orders, stage_cursor(st, &orders)).map(|c| c.0));
    }
    if let Some(cfg) = &program.outreach {
        let after = st.outreach_through.unwrap_or(st.created_at);
        // Scheduling reads the tier and its retention deadline only.
        let view = deadline_view(program, cfg, st);
        let ctx = outreach::Context {
            member: st,
            zone: member_zone(program, st),
            program_tz: program.timezone,
            tier: view.as_ref().map(|deadline| outreach::TierInfo { deadline, progress: &|| None }),
            now: after,
            checking: false,
        };
        take(cfg.next_due(&ctx, after));
        // Facts recorded behind the last run: the next run looks at them.
        take(Some(after).filter(|_| !st.outreach_behind.is_empty()));
    }
    next
}

impl<S: Store> Tx<'_, S> {
    /// A new member: the base tier and the `prospect` stage.
    pub(super) fn enrol(&mut self, id: &MemberId, at: DateTime<Utc>) {
        if let Some(ladder) = &self.program.tiers {
            let st = self.state(id);
            let state = tier::initial(ladder, self.program.timezone, joined(st), at);
            self.emit(id, Event::TierUpdated { at, tier: Shared::new(state), reason: TierReason::Joined, note: None });
        }
        if self.program.lifecycle.is_some() {
            let reason = "joined".to_string();
            self.emit(id, Event::StageChanged { at, from: None, to: Stage::Prospect, reason });
        }
    }

    /// After a fact at `t` (an order paid, a refund): upgrade, retention in
    /// grace, a refund taking an upgrade back; and the stage the fact puts
    /// the member in.
    pub(super) fn follow_up(&mut self, id: &MemberId, t: DateTime<Utc>, refund: bool) {
        let program = self.program;
        let tz = program.timezone;
        // Reviews and stage changes due before the fact happen first, so the
        // tier and stage are a function of the facts whatever the cadence of
        // `run_due`.
        self.catch_up(id, t, true);
        if program.tiers.is_some() {
            let last = self.state(id).activity.last().map_or(t, |a| a.at.max(t));
            self.weigh(id, t, last, refund);
        }
        if let Some(lc) = &program.lifecycle {
            let st = self.state(id);
            let orders = st.order_times();
            // Evaluated, and dated, where the stages stand when the fact is
            // older (recorded late): never before a transition already listed.
            let at = t.max(stage_cursor(st, &orders));
            let stage = lc.stage_at(tz, &orders, at);
            if st.stage != Some(stage) {
                let reason = lc.reason(tz, stage, &orders, at);
                let from = st.stage;
                self.emit(id, Event::StageChanged { at, from, to: stage, reason });
            }
        }
    }

    /// The tier after a fact at `t`, the member's last fact being at `last`
    /// (`t` itself unless the fact was recorded late). A fact in time is
    /// weighed at `t`. One recorded late (older than the tier's last
    /// decision or than `last`) changes nothing already decided, and nothing
    /// is dated before those decisions (the tier history is a timeline); the
    /// fact still counts. It is weighed at its own instant as a record in
    /// time would have weighed it (an upgrade, retention in grace, a refund
    /// taking an upgrade back), then for an upgrade only at each later fact
    /// whose window still counts it and at `last`, where the facts recorded
    /// before it add to it (an earlier order arriving after a later one, in
    /// a rolling window the peak it made before leaving; an upgrade the
    /// refund took back that later orders earn again), and at the first
    /// reduction leaving a rolling window between it and the tier's last
    /// decision where the metric qualifies for more. Reviews due before a
    /// decision dated after `t` happen first, as for a fact recorded in time
    /// (those up to `t` the caller has run). Before all that, a fact older
    /// than reviews already taken has them taken again: an order
    /// ([`tier::Standing::reviews_again`]) gives back what it would have
    /// kept; a refund ([`tier::Standing::reviews_again_with_refund`]), weighed
    /// at its instant there, takes what it would have cost (and then is not
    /// weighed again). Each later fact is weighed against the tier held at
    /// it ([`tier::Standing::after_late_fact_held`]).
    fn weigh(&mut self, id: &MemberId, t: DateTime<Utc>, last: DateTime<Utc>, refund: bool) {
        let Some(ladder) = &self.program.tiers else { return };
        let tz = self.program.timezone;
        // Reviews taken since a fact dated before them, taken again. A refund
        // is weighed at its instant there: not again below.
        let st = self.state(id);
        let current = current_tier(ladder, tz, st);
        let here = standing(ladder, tz, st, &current);
        let (again, weighed) = if refund {
            match here.reviews_again_with_refund(&st.tier_history, t, self.now) {
                tier::Retaken::No => (None, false),
                tier::Retaken::Same => (None, true),
                tier::Retaken::Changed(state, reason, at) => (Some((state, reason, at)), true),
            }
        } else {
            (here.reviews_again(&st.tier_history, t), false)
        };
        if let Some((state, reason, at)) = again {
            let note = Some(format!("reviews taken again with a fact of {} recorded late", t.format("%Y-%m-%d")));
            self.emit(id, Event::TierUpdated { at, tier: Shared::new(state), reason, note });
        }
        // At its own instant as the fact it is; then, only to move up, at each
        // later fact whose window counts it, and at `last`.
        let (mut c, mut refund) = (t, refund && !weighed);
        let mut taken_back: Option<String> = None;
        loop {
            let st = self.state(id);
            let at = c.max(tier_decided(st, &current_tier(ladder, tz, st)));
            if at > t {
                self.catch_up(id, at, true);
            }
            let st = self.state(id);
            let current = current_tier(ladder, tz, st);
            let at = at.max(tier_decided(st, &current));
            let here = standing(ladder, tz, st, &current);
            let outcome = here.after_late_fact_held(c, at, refund, &st.tier_history, taken_back.as_deref());
            if let Some((state, reason)) = outcome {
                if reason == TierReason::Refund {
                    taken_back = Some(state.tier.clone());
                }
                self.list_late(id, at, state, reason);
            }
            if c >= last {
                break;
            }
            let st = self.state(id);
            let later = st.activity[st.activity.partition_point(|a| a.at <= c)..].first().map(|a| a.at);
            let counts = |s: DateTime<Utc>| ladder.window_start(tz, joined(st), s).is_none_or(|w| w < t);
            c = later.filter(|&s| s < last && counts(s)).unwrap_or(last);
            refund = false;
        }
        // A reduction leaving a rolling window between the fact and the
        // tier's last decision lifts the metric with no fact there: weighed
        // in time when it left ([`leaving_upgrade`] looks only after the last
        // decision), but never with this fact known (a late refund's own
        // exit, or a late order's window when an earlier refund leaves it).
        let st = self.state(id);
        let current = current_tier(ladder, tz, st);
        let decided = tier_decided(st, &current);
        if t < decided && st.last_reduction().is_some() {
            let lifted = standing(ladder, tz, st, &current).missed_exit_upgrade(
                t,
                decided,
                &st.tier_history,
                taken_back.as_deref(),
            );
            if let Some((state, reason)) = lifted {
                self.list_late(id, decided, state, reason);
            }
        }
    }

    /// List a change a late fact makes at `at` (the tier's last decision or
    /// later). An upgrade counted before `at` is reviewed on the schedule of
    /// a record in time ([`tier::TierLadder::entered_late`]): a review that
    /// falls at `at` itself is taken here (one: the next is a period later).
    fn list_late(&mut self, id: &MemberId, at: DateTime<Utc>, state: TierState, reason: TierReason) {
        let upgrade = reason == TierReason::Upgrade;
        self.emit(id, Event::TierUpdated { at, tier: Shared::new(state), reason, note: None });
        let Some(ladder) = self.program.tiers.as_ref().filter(|_| upgrade) else { return };
        let st = self.state(id);
        let current = current_tier(ladder, self.program.timezone, st);
        if let Some((state, reason, at)) = standing(ladder, self.program.timezone, st, &current).due_review(at) {
            self.emit(id, Event::TierUpdated { at, tier: Shared::new(state), reason, note: None });
        }
    }

    /// Put a member in a tier by hand.
    pub(super) fn assign_tier(
        &mut self,
        member_id: &MemberId,
        tier_id: &str,
        until: DateTime<Utc>,
        reason: &str,
        actor: &str,
    ) -> Result<MemberId> {
        let ladder =
            self.program.tiers.as_ref().ok_or_else(|| CrmError::invalid("tier", "the programme has no tier ladder"))?;
        if ladder.get(tier_id).is_none() {
            return Err(CrmError::invalid("tier", format!("unknown tier {tier_id:?}")));
        }
        if until <= self.now {
            return Err(CrmError::invalid("until", "must be after now"));
        }
        for (field, v) in [("reason", reason), ("actor", actor)] {
            if v.trim().is_empty() || v.len() > 500 {
                return Err(CrmError::invalid(field, "must be 1-500 characters"));
            }
        }
        let id = self.active(member_id, "member_id")?;
        let at = self.now;
        let st = self.state(&id);
        let current = current_tier(ladder, self.program.timezone, st).into_owned();
        let state = TierState {
            tier: tier_id.to_string(),
            since: at,
            manual: Some(ManualTier { until, reason: reason.into(), actor: actor.into() }),
            grace_until: None,
            ..current
        };
        self.emit(
            &id,
            Event::TierUpdated { at, tier: Shared::new(state), reason: TierReason::Manual, note: Some(reason.into()) },
        );
        Ok(id)
    }

    /// Record an engagement event.
    pub(super) fn engage(&mut self, member_id: &MemberId, engagement: Engagement) -> Result<MemberId> {
        crate::facts::check_ref(&engagement.kind, "kind")?;
        for (field, v) in [("sku", &engagement.sku), ("reference", &engagement.reference)] {
            if let Some(v) = v {
                crate::facts::check_ref(v, field)?;
            }
        }
        if engagement.at > self.now {
            return Err(CrmError::invalid("at", "is in the future"));
        }
        let id = self.active(member_id, "member_id")?;
        if engagement.at < self.state(&id).created_at {
            return Err(CrmError::invalid("at", "is before the member joined"));
        }
        self.emit(&id, Event::Engaged { at: engagement.at, engagement: Box::new(engagement) });
        Ok(id)
    }

    /// Scheduled work due at `now` for one member: tier reviews (and ends of
    /// grace and manual assignments), stage changes by elapsed time, then
    /// outreach.
    pub(super) fn journey_due(&mut self, id: &MemberId) -> Result<Journey> {
        let program = self.program;
        let tz = program.timezone;
        let now = self.now;
        if !self.state(id).is_active() {
            return Ok(Journey::default());
        }
        let mut done = self.catch_up(id, now, false);
        if let Some(cfg) = &program.outreach {
            let st = self.state(id);
            if st.outreach_through.unwrap_or(st.created_at) < now {
                let view = deadline_view(program, cfg, st);
                let progress = || tier_view(program, st, now);
                let ctx = outreach::Context {
                    member: st,
                    zone: member_zone(program, st),
                    program_tz: tz,
                    tier: view.as_ref().map(|deadline| outreach::TierInfo { deadline, progress: &progress }),
                    now,
                    checking: true,
                };
                let mut run = cfg.run(&ctx);
                self.hand_out_coupons(id, cfg, &mut run)?;
                done.suppressed += run.suppressed.len() as u64;
                // Kept in the event log for good: no spare room.
                run.suppressed.shrink_to_fit();
                done.outreach.extend(run.emitted.iter().cloned());
                self.emit(id, Event::OutreachRun { at: now, emitted: run.emitted, suppressed: run.suppressed });
            }
        }
        Ok(done)
    }

    /// Issue the coupon of each emitted message whose trigger has one (its
    /// code goes into `payload.coupon`); a message whose coupon cannot be
    /// issued is suppressed (`coupon_unavailable`).
    fn hand_out_coupons(&mut self, id: &MemberId, cfg: &OutreachConfig, run: &mut outreach::Run) -> Result<()> {
        let mut kept = Vec::with_capacity(run.emitted.len());
        for mut item in std::mem::take(&mut run.emitted) {
            let Some(template) = cfg.triggers.iter().find(|t| t.id == item.trigger).and_then(|t| t.coupon.as_ref())
            else {
                kept.push(item);
                continue;
            };
            match self.trigger_coupon(id, template, &item)? {
                Some(coupon) => {
                    if let serde_json::Value::Object(p) = &mut item.payload {
                        p.insert("coupon".into(), coupon);
                    } else {
                        item.payload = serde_json::json!({ "coupon": coupon });
                    }
                    kept.push(item);
                }
                None => run.suppressed.push(outreach::Suppressed {
                    trigger: item.trigger,
                    occurrence: item.occurrence,
                    due_at: item.due_at,
                    reason: outreach::SuppressReason::CouponUnavailable,
                }),
            }
        }
        run.emitted = kept;
        Ok(())
    }

    /// Tier reviews (ends of grace and manual assignments) and stage
    /// changes by elapsed time, each at its own instant, up to `until`.
    /// `before_fact`: called for a fact at `until`, which must not count yet
    /// (its order is already in the activity).
    fn catch_up(&mut self, id: &MemberId, until: DateTime<Utc>, before_fact: bool) -> Journey {
        let program = self.program;
        let tz = program.timezone;
        let mut done = Journey::default();
        if let Some(ladder) = &program.tiers {
            // A reduction leaving the window at the fact's instant is weighed
            // with the fact.
            let last = if before_fact { until - chrono::Duration::nanoseconds(1) } else { until };
            for _ in 0..MAX_CATCH_UP {
                let st = self.state(id);
                let Some(current) = st.tier.clone() else { break };
                let review = standing(ladder, tz, st, &current).due_review(until);
                let upgrade = leaving_upgrade(ladder, tz, st, &current, Some(last));
                // The earlier first; at the same instant the review (the first
                // of equal minima), as before a fact there.
                let Some((state, reason, at)) = [review, upgrade].into_iter().flatten().min_by_key(|c| c.2) else {
                    break;
                };
                if state.tier != current.tier {
                    done.tier_changes += 1;
                }
                self.emit(id, Event::TierUpdated { at, tier: Shared::new(state), reason, note: None });
            }
        }
        if let Some(lc) = &program.lifecycle {
            // Stage changes do not change the order times: read them once.
            let times = self.state(id).order_times();
            let orders = if before_fact { &times[..times.partition_point(|o| *o < until)] } else { &times[..] };
            for _ in 0..MAX_CATCH_UP {
                let st = self.state(id);
                let Some((at, to)) = lc
                    .next_change(tz, orders, stage_cursor(st, orders))
                    .filter(|c| c.0 <= until && !(before_fact && c.0 == until))
                else {
                    break;
                };
                let reason = lc.reason(tz, to, orders, at);
                let from = st.stage;
                done.stage_changes += 1;
                self.emit(id, Event::StageChanged { at, from, to, reason });
            }
        }
        done
    }
}
