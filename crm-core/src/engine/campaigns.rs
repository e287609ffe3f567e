//! Campaign measurement over the engine's members: the audience at the
//! campaign start split into treatment and control, each member's outcome
//! from the facts known at the report's instant, and the statistics of
//! [`crate::campaign`].
//!
//! Definitions (also in the README):
//! * **audience**: members active now, created by `starts_at`, matching the
//!   rule as of `starts_at` (or recorded in the saved segment at that time);
//! * **attribution**: `[starts_at, attribution_end)`, where `attribution_end`
//!   is `attribution_days` local days after `ends_at`, and never past `at`;
//! * **conversion**: a paid (or completed) order whose payment time falls in
//!   attribution and whose amount is not wholly refunded (as of `at`);
//!   cancelled orders never count;
//! * **revenue**: the amounts of those orders less their refunds;
//! * **repurchase**: a converted member paid another (not wholly refunded)
//!   order after the first converting one, within `repurchase_days` local
//!   days of it (or by `at`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::segments::MemberFields;
use super::Engine;
use crate::campaign::{measure, Audience, Campaign, CampaignMembers, Group, GroupResult, Outcome, Uplift};
use crate::error::{CrmError, Result};
use crate::member::MemberId;
use crate::state::{Event, MemberState};
use crate::store::Store;
use crate::time::add_local_days;

/// What a campaign cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostBreakdown {
    /// Points granted to treatment members (fixed grant plus adjustments
    /// with the campaign's reason).
    pub points: i64,
    /// `points × value_per_point`, to the minor unit.
    pub points_value: Decimal,
    pub coupon_value: Decimal,
    /// `points_value + coupon_value`.
    pub total: Decimal,
}

/// A campaign's results as of an instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignReport {
    pub campaign_id: String,
    pub at: DateTime<Utc>,
    pub starts_at: DateTime<Utc>,
    /// End of attribution (exclusive).
    pub attribution_end: DateTime<Utc>,
    /// `at` is at or past the end of attribution: the figures are final.
    pub complete: bool,
    /// Audience size: `treatment.members + control.members`.
    pub targeted: u64,
    pub treatment: GroupResult,
    pub control: GroupResult,
    /// Treatment − control conversion rate (Newcombe hybrid score 95 % interval).
    pub conversion_uplift: Uplift,
    /// Treatment − control revenue per member (Welch 95 % interval).
    pub revenue_uplift: Uplift,
    pub incremental_conversions: Decimal,
    /// Revenue uplift per member × treatment members.
    pub incremental_revenue: Decimal,
    pub cost: CostBreakdown,
    /// `(incremental_revenue − cost) / cost`, four places; `None` when the
    /// campaign cost nothing.
    pub roi: Option<Decimal>,
}

/// Net amount of each counted order of `st`: `(paid at, amount − refunds)`,
/// for paid or completed orders with something left after refunds.
fn paid_orders(st: &MemberState, at: DateTime<Utc>) -> Vec<(DateTime<Utc>, Decimal)> {
    let mut v: Vec<_> = st
        .orders
        .values()
        .filter(|o| o.order.status.earns() && o.order.earned_at() <= at)
        .map(|o| (o.order.earned_at(), o.order.amount - o.refunded))
        .filter(|(_, net)| *net > Decimal::ZERO)
        .collect();
    v.sort();
    v
}

/// Was the member recorded in saved segment `id` at `t`? The last recorded
/// move at or before `t` says; with none, the first later move says the
/// opposite of what it records; with no moves at all, the current record.
fn in_saved_segment(st: &MemberState, id: &str, t: DateTime<Utc>) -> bool {
    let moves: Vec<_> = st.segment_changes.iter().filter(|m| m.segment == id).collect();
    if let Some(m) = moves.iter().rev().find(|m| m.at <= t) {
        return m.entered;
    }
    match moves.first() {
        Some(m) => !m.entered,
        None => st.segments.contains(id),
    }
}

impl<S: Store> Engine<S> {
    fn in_audience(&self, c: &Campaign, st: &MemberState) -> bool {
        if !st.is_active() || st.created_at > c.starts_at {
            return false;
        }
        match &c.audience {
            Audience::Rule(rule) => rule.matches(&MemberFields::new(&self.program, st, c.starts_at)),
            Audience::Segment(id) => in_saved_segment(st, id, c.starts_at),
        }
    }

    /// The members in the audience at the campaign's start. A member whose
    /// facts changed after the start (a tag, a profile field, a consent, an
    /// erasure) is judged on its state rebuilt from its events as of the
    /// start, so a campaign measured later sees the audience it was sent to.
    fn audience(&self, c: &Campaign) -> Result<BTreeSet<MemberId>> {
        let mut audience = BTreeSet::new();
        // Rebuilt after the scan: the store is not re-entered while it lends snapshots.
        let mut changed = Vec::new();
        self.store.inspect_all(&mut |st| {
            if st.created_at > c.starts_at {
                return Ok(());
            }
            if st.last_event_at > c.starts_at {
                changed.push(st.id.clone());
            } else if self.in_audience(c, st) {
                audience.insert(st.id.clone());
            }
            Ok(())
        })?;
        for id in changed {
            if self.in_audience(c, &self.member_as_of(&id, c.starts_at)?) {
                audience.insert(id);
            }
        }
        Ok(audience)
    }

    /// The campaign's audience at its start, split into the members to send
    /// to (`treatment`) and those to hold out (`control`), each sorted. The
    /// same split [`Engine::campaign_report`] measures.
    pub fn campaign_members(&self, c: &Campaign) -> Result<CampaignMembers> {
        c.validate()?;
        let audience: Vec<MemberId> = self.audience(c)?.into_iter().collect();
        Ok(c.split(&audience))
    }

    fn outcome(&self, c: &Campaign, st: &MemberState, end: DateTime<Utc>, at: DateTime<Utc>) -> Outcome {
        let orders = paid_orders(st, at);
        let window: Vec<_> = orders.iter().filter(|(t, _)| *t >= c.starts_at && *t < end).collect();
        let Some((first, _)) = window.first() else { return Outcome::default() };
        let until = c.repurchase_days.map_or(at, |d| add_local_days(self.program.timezone, *first, d).min(at));
        Outcome {
            converted: true,
            revenue: window.iter().map(|(_, net)| *net).sum(),
            repurchased: orders.iter().any(|(t, _)| t > first && *t <= until),
        }
    }

    /// Campaign points credited to `id` by adjustments with `reason` in `[from, to)`.
    fn reason_points(&self, id: &MemberId, reason: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<i64> {
        let mut points = 0;
        for e in self.store.events(id)? {
            if let Event::PointsAdjusted(a) = e {
                if a.reason == reason && a.at >= from && a.at < to {
                    points += a.delta;
                }
            }
        }
        Ok(points)
    }

    /// Measure campaign `c` from the facts known at `at` (at or after its
    /// start; before the end of attribution the figures are provisional and
    /// `complete` is false). See the module docs for the definitions.
    pub fn campaign_report(&self, c: &Campaign, at: DateTime<Utc>) -> Result<CampaignReport> {
        c.validate()?;
        if at < c.starts_at {
            return Err(CrmError::invalid("at", "is before the campaign starts"));
        }
        let tz = self.program.timezone;
        let end = c.attribution_end(tz);
        let (mut treatment, mut control) = (Vec::new(), Vec::new());
        let mut treated_ids = Vec::new();
        // Members changed after `at` are rebuilt from their events afterwards.
        let mut later: Vec<(MemberId, Group)> = Vec::new();
        let audience = self.audience(c)?;
        self.store.inspect_all(&mut |st| {
            if !audience.contains(&st.id) {
                return Ok(());
            }
            let group = c.group(&st.id);
            if group == Group::Treatment {
                treated_ids.push(st.id.clone());
            }
            if st.last_event_at > at {
                later.push((st.id.clone(), group));
                return Ok(());
            }
            let o = self.outcome(c, st, end, at);
            match group {
                Group::Treatment => treatment.push(o),
                Group::Control => control.push(o),
            }
            Ok(())
        })?;
        for (id, group) in later {
            let st = self.member_as_of(&id, at)?;
            let o = self.outcome(c, &st, end, at);
            match group {
                Group::Treatment => treatment.push(o),
                Group::Control => control.push(o),
            }
        }
        let money_dp = crate::money::minor_unit(&self.program.currency);
        let m = measure(&treatment, &control, money_dp);

        let mut points = c.cost.points_per_member * m.treatment.members as i64;
        if let Some(reason) = &c.cost.points_reason {
            let to = end.min(at + chrono::Duration::nanoseconds(1));
            for id in &treated_ids {
                points += self.reason_points(id, reason, c.starts_at, to)?;
            }
        }
        let vpp = c.cost.value_per_point.unwrap_or(self.program.value_per_point);
        let points_value = (Decimal::from(points) * vpp).round_dp(money_dp);
        let total = points_value + c.cost.coupon_value;
        let roi = (total > Decimal::ZERO).then(|| ((m.incremental_revenue - total) / total).round_dp(4));
        Ok(CampaignReport {
            campaign_id: c.id.clone(),
            at,
            starts_at: c.starts_at,
            attribution_end: end,
            complete: at >= end,
            targeted: m.treatment.members + m.control.members,
            treatment: m.treatment,
            control: m.control,
            conversion_uplift: m.conversion_uplift,
            revenue_uplift: m.revenue_uplift,
            incremental_conversions: m.incremental_conversions,
            incremental_revenue: m.incremental_revenue,
            cost: CostBreakdown { points, points_value, coupon_value: c.cost.coupon_value, total },
            roi,
        })
    }
}
