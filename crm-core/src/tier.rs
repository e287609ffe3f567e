//! Tier ladders (会员等级): ordered tiers with entry and retention (保级)
//! thresholds on a qualifying metric over a window, and the pure rules that
//! move a member up and down.
//!
//! The rules, in the order the engine applies them:
//!
//! * **Upgrade** on the fact that crosses a threshold: after every order,
//!   status change or refund the metric over the window *ending at the
//!   fact's time* is compared with every tier's entry threshold; the member
//!   moves to the highest tier qualified for, if higher than the current one.
//!   The order that crosses the threshold earns at the tier held before it.
//! * **Review** at the end of the qualification period (`review_at`): the
//!   metric over the window ending then must meet the tier's retention
//!   threshold (its entry threshold when none is set). If not, the member
//!   enters the grace period (`grace_days`, when configured) and is reviewed
//!   again at its end; then drops one step or to the tier actually qualified
//!   for (`downgrade`). A tier earned by upgrade is not reviewed before its
//!   minimum validity (`min_validity`) ends.
//! * **Manual** assignment holds until its end date whatever the metric
//!   (upgrades above it still apply); at its end the member gets the tier
//!   the metric qualifies for.
//! * **Refunds** reduce the metric. With `refunds = "immediate"` an upgrade
//!   that the refund undoes is taken back at once (never below the tier the
//!   member held at the start of the period); with `"next_review"` the
//!   reduced metric only counts at the next review.
//!
//! Windows: `rolling_days`/`rolling_months` end at the instant evaluated;
//! `calendar_year` and `membership_year` are the current year (in the
//! programme zone) for upgrades and the year just ended at a review;
//! `lifetime` is everything, and a lifetime ladder is never reviewed.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::state::Activity;
use crate::time::{add_local_months, local_date, start_of_day, sub_local_days, sub_local_months};

/// The tier ladder of a programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLadder {
    /// Tiers from lowest to highest. The first is the base tier every member
    /// starts in; its entry threshold is ignored.
    pub levels: Vec<Tier>,
    /// Over which period the qualifying metric is summed.
    pub window: Window,
    /// Point type whose earned points count as growth points (`points` thresholds).
    #[serde(default)]
    pub point_type: Option<String>,
    /// Where a member goes when a review fails.
    #[serde(default)]
    pub downgrade: Downgrade,
    /// Days the tier is kept after a failed review; the member can still
    /// meet the retention threshold during them.
    #[serde(default)]
    pub grace_days: u32,
    /// A tier earned by upgrade is not reviewed before this.
    #[serde(default)]
    pub min_validity: MinValidity,
    /// Whether refunds can take an upgrade back at once.
    #[serde(default)]
    pub refunds: RefundEffect,
}

/// One tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Identifier (`gold`).
    pub id: String,
    /// Display name (`Gold`); the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// What qualifies a member for this tier.
    #[serde(default)]
    pub entry: Threshold,
    /// What keeps a member in it at a review; `entry` when absent.
    #[serde(default)]
    pub retain: Option<Threshold>,
    /// What members of this tier get.
    #[serde(default)]
    pub benefits: Benefits,
}

impl Tier {
    /// Display name.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The retention threshold (entry when none is set).
    pub fn retention(&self) -> &Threshold {
        self.retain.as_ref().unwrap_or(&self.entry)
    }
}

/// A threshold on the qualifying metric: any of spend, order count and
/// growth points, combined with `all` (every one given must be met, the
/// default) or `any`. An empty threshold is always met.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(default)]
    pub combine: Combine,
}

/// How the parts of a threshold combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    #[default]
    All,
    Any,
}

impl Threshold {
    fn parts(&self) -> impl Iterator<Item = (Part, bool)> + '_ {
        [
            self.spend.map(|s| (Part::Spend(s), true)),
            self.orders.map(|o| (Part::Orders(o), true)),
            self.points.map(|p| (Part::Points(p), true)),
        ]
        .into_iter()
        .flatten()
    }

    /// Is the threshold met by `m`?
    pub fn met(&self, m: &Metric) -> bool {
        let mut results = self.parts().map(|(p, _)| p.met(m)).peekable();
        if results.peek().is_none() {
            return true;
        }
        match self.combine {
            Combine::All => results.all(|x| x),
            Combine::Any => results.any(|x| x),
        }
    }

    /// What is still missing to meet it (zero where met). With `any`, only
    /// the part closest to being met is reported.
    pub fn gap(&self, m: &Metric) -> Gap {
        let all = Gap {
            spend: self.spend.map(|s| (s - m.spend).max(Decimal::ZERO)),
            orders: self.orders.map(|o| (o - m.orders).max(0)),
            points: self.points.map(|p| (p - m.points).max(0)),
        };
        if self.combine == Combine::All || self.met(m) {
            return if self.met(m) { Gap::default() } else { all };
        }
        // `any`: report the part with the smallest relative shortfall.
        let rel = |need: f64, of: f64| if of <= 0.0 { 0.0 } else { need / of };
        let spend = all.spend.zip(self.spend).map(|(g, s)| rel(dec_f64(g), dec_f64(s)));
        let orders = all.orders.zip(self.orders).map(|(g, o)| rel(g as f64, o as f64));
        let points = all.points.zip(self.points).map(|(g, p)| rel(g as f64, p as f64));
        let best = [spend, orders, points]
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
        match best.map(|b| b.0) {
            Some(0) => Gap { spend: all.spend, ..Gap::default() },
            Some(1) => Gap { orders: all.orders, ..Gap::default() },
            Some(_) => Gap { points: all.points, ..Gap::default() },
            None => Gap::default(),
        }
    }
}

fn dec_f64(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

enum Part {
    Spend(Decimal),
    Orders(i64),
    Points(i64),
}

impl Part {
    fn met(&self, m: &Metric) -> bool {
        match self {
            Part::Spend(s) => m.spend >= *s,
            Part::Orders(o) => m.orders >= *o,
            Part::Points(p) => m.points >= *p,
        }
    }
}

/// What is missing to meet a threshold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Gap {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
}

impl Gap {
    /// Nothing missing.
    pub fn is_met(&self) -> bool {
        self.spend.is_none_or(|s| s.is_zero())
            && self.orders.is_none_or(|o| o == 0)
            && self.points.is_none_or(|p| p == 0)
    }

    /// "spend 120.00 more and 2 more orders".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.spend.filter(|s| !s.is_zero()) {
            parts.push(format!("spend {:.2} more", s));
        }
        if let Some(o) = self.orders.filter(|o| *o != 0) {
            parts.push(format!("{o} more order{}", if o == 1 { "" } else { "s" }));
        }
        if let Some(p) = self.points.filter(|p| *p != 0) {
            parts.push(format!("{p} more growth points"));
        }
        parts.join(" and ")
    }
}

/// The qualifying metric over a window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metric {
    pub spend: Decimal,
    pub orders: i64,
    pub points: i64,
}

/// Qualification window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Window {
    RollingDays { days: u32 },
    RollingMonths { months: u32 },
    CalendarYear,
    MembershipYear,
    Lifetime,
}

/// Where a failed review sends the member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Downgrade {
    /// One tier down (or the tier qualified for, if that is higher).
    #[default]
    OneStep,
    /// The highest tier whose entry threshold the metric meets.
    ToQualified,
}

/// How long a tier earned by upgrade holds at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MinValidity {
    /// Until the end of the period it was earned in.
    #[default]
    EndOfPeriod,
    /// `months` months after it was earned.
    Months { months: u32 },
    /// Until 31 December of the year after it was earned (programme zone).
    EndOfFollowingYear,
}

/// Whether a refund can take an upgrade back before the next review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundEffect {
    #[default]
    Immediate,
    NextReview,
}

/// What members of a tier get.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benefits {
    /// Factor on points earned by rate rules (`"1.5"`); 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_multiplier: Option<Decimal>,
    /// Discount rate the host applies at checkout (`"0.05"` = 5 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount_rate: Option<Decimal>,
    #[serde(default)]
    pub free_shipping: bool,
    /// Gift sent in the birthday month (host-defined reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday_gift: Option<String>,
    /// Anything else the host wants to attach.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, serde_json::Value>,
}

/// A member's tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierState {
    /// Current tier id.
    pub tier: String,
    /// When the member entered it.
    pub since: DateTime<Utc>,
    /// Next review (`None`: never, lifetime windows).
    pub review_at: Option<DateTime<Utc>>,
    /// The tier confirmed at the start of the current period: a refund can
    /// take upgrades back, never below this.
    pub floor: String,
    /// In grace after a failed review, until this instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<DateTime<Utc>>,
    /// A manual assignment in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualTier>,
}

/// A tier set by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualTier {
    pub until: DateTime<Utc>,
    pub reason: String,
    pub actor: String,
}

/// Why a tier changed (or was confirmed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierReason {
    /// The member joined (base tier).
    Joined,
    /// A threshold was crossed.
    Upgrade,
    /// A review found the retention threshold met.
    Retained,
    /// A review failed; the tier is kept during the grace period.
    Grace,
    /// A review (or the end of a grace period) failed.
    Downgrade,
    /// A refund took an upgrade back.
    Refund,
    /// Set by hand.
    Manual,
    /// A manual assignment ended.
    ManualExpired,
    /// The programme's ladder changed and the old tier no longer exists.
    LadderChanged,
    /// Reviews already taken, taken again with a fact recorded late after
    /// them: the member keeps (or gets back) a tier they took away
    /// ([`Standing::reviews_again`]).
    Reinstated,
}

/// One entry of a member's tier history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierChange {
    pub at: DateTime<Utc>,
    pub from: Option<String>,
    pub to: String,
    pub reason: TierReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Progress towards a threshold by a deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub tier: String,
    /// The metric so far over the window that counts.
    pub metric: Metric,
    /// What is still missing.
    pub missing: Gap,
    /// Deadline (the review), when there is one.
    pub by: Option<DateTime<Utc>>,
    /// Readable: "spend 120.00 more by 31 Dec 2024 to keep Gold".
    pub message: String,
}

/// A member's tier with progress, as answered by `Engine::tier`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierView {
    pub tier: String,
    pub name: String,
    pub since: DateTime<Utc>,
    pub review_at: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
    pub manual: Option<ManualTier>,
    pub benefits: Benefits,
    /// Progress to the next tier up (none at the top).
    pub next: Option<Progress>,
    /// Progress to keeping the current tier at the next review (none for the
    /// base tier and lifetime windows).
    pub retain: Option<Progress>,
}

impl TierLadder {
    /// Check the ladder; errors name the path under `tiers`.
    pub fn validate(&self, point_types: &[&str]) -> Result<()> {
        if self.levels.is_empty() {
            return Err(CrmError::config("tiers.levels", "must list at least one tier"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, t) in self.levels.iter().enumerate() {
            let at = format!("tiers.levels[{i}]");
            crate::program::check_id(&t.id, &format!("{at}.id"))?;
            if !seen.insert(t.id.as_str()) {
                return Err(CrmError::config(format!("{at}.id"), format!("duplicate tier {:?}", t.id)));
            }
            for (name, th) in [("entry", Some(&t.entry)), ("retain", t.retain.as_ref())] {
                let Some(th) = th else { continue };
                if th.spend.is_some_and(|s| s.is_sign_negative()) {
                    return Err(CrmError::config(format!("{at}.{name}.spend"), "must not be negative"));
                }
                if th.orders.is_some_and(|o| o < 0) {
                    return Err(CrmError::config(format!("{at}.{name}.orders"), "must not be negative"));
                }
                if th.points.is_some_and(|p| p < 0) {
                    return Err(CrmError::config(format!("{at}.{name}.points"), "must not be negative"));
                }
                if th.points.is_some() && self.point_type.is_none() {
                    return Err(CrmError::config(
                        format!("{at}.{name}.points"),
                        "a points threshold needs `tiers.point_type` (the growth point type)",
                    ));
                }
            }
            if let Some(m) = t.benefits.points_multiplier {
                if m <= Decimal::ZERO || m > Decimal::from(100) {
                    return Err(CrmError::config(
                        format!("{at}.benefits.points_multiplier"),
                        "must be greater than 0 and at most 100",
                    ));
                }
            }
            if let Some(r) = t.benefits.discount_rate {
                if r.is_sign_negative() || r > Decimal::ONE {
                    return Err(CrmError::config(format!("{at}.benefits.discount_rate"), "must be between 0 and 1"));
                }
            }
        }
        if let Some(pt) = &self.point_type {
            if !point_types.contains(&pt.as_str()) {
                return Err(CrmError::config("tiers.point_type", format!("unknown point type {pt:?}")));
            }
        }
        match self.window {
            Window::RollingDays { days: 0 } => return Err(CrmError::config("tiers.window.days", "must be at least 1")),
            Window::RollingMonths { months: 0 } => {
                return Err(CrmError::config("tiers.window.months", "must be at least 1"))
            }
            _ => {}
        }
        if let MinValidity::Months { months: 0 } = self.min_validity {
            return Err(CrmError::config("tiers.min_validity.months", "must be at least 1"));
        }
        Ok(())
    }

    /// Index of a tier id.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.levels.iter().position(|t| t.id == id)
    }

    /// The tier with this id.
    pub fn get(&self, id: &str) -> Option<&Tier> {
        self.levels.iter().find(|t| t.id == id)
    }

    /// The base tier.
    pub fn base(&self) -> &Tier {
        &self.levels[0]
    }

    /// Highest tier whose entry threshold `m` meets (the base tier at least).
    pub fn qualified(&self, m: &Metric) -> usize {
        (1..self.levels.len()).rev().find(|&i| self.levels[i].entry.met(m)).unwrap_or(0)
    }

    /// Sum the metric over `(from, to]` (`from = None`: since the beginning)
    /// of `activity` in time order (as [`MemberState::activity`] is kept).
    ///
    /// Why a range: the engine weighs the metric on every order, and a long
    /// history is mostly outside the window; only the window's own
    /// activity is read (property `the_window_is_summed_as_a_filter_would`).
    ///
    /// [`MemberState::activity`]: crate::state::MemberState::activity
    pub fn metric(&self, activity: &[Activity], from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Metric {
        // The activity is in time order: the window is a range of it.
        let end = activity.partition_point(|a| a.at <= to);
        let start = from.map_or(0, |f| activity[..end].partition_point(|a| a.at <= f));
        let mut m = Metric::default();
        for a in &activity[start..end] {
            // Points carry no spend, and a Decimal addition is not free.
            // A zero added to a sum that is not zero gives that sum, scale
            // and all (to a zero sum it gives the zero added, with its scale).
            if !a.spend.is_zero() || m.spend.is_zero() {
                m.spend += a.spend;
            }
            m.orders += a.orders;
            if a.point_type.is_some() && a.point_type == self.point_type {
                m.points += a.points;
            }
        }
        m
    }

    /// Start of the window that counts for a fact at `t` (exclusive bound).
    pub fn window_start(&self, tz: Tz, joined: DateTime<Utc>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.window {
            Window::RollingDays { days } => Some(sub_local_days(tz, t, days)),
            Window::RollingMonths { months } => Some(sub_local_months(tz, t, months)),
            Window::CalendarYear => {
                let y = local_date(tz, t).year();
                Some(start_of_day(tz, ymd(y, 1, 1)) - chrono::Duration::nanoseconds(1))
            }
            Window::MembershipYear => {
                let start = anniversary_on_or_before(tz, joined, t);
                Some(start - chrono::Duration::nanoseconds(1))
            }
            Window::Lifetime => None,
        }
    }

    /// Start of the window for a review at `review_at` (the period just ended).
    pub fn review_window_start(
        &self,
        tz: Tz,
        joined: DateTime<Utc>,
        review_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.window {
            // The N days or months before the review, the start excluded.
            Window::RollingDays { .. } | Window::RollingMonths { .. } => self.window_start(tz, joined, review_at),
            // The review instant is the first instant of the next year:
            // count the year that ends just before it.
            _ => self.window_start(tz, joined, review_at - chrono::Duration::nanoseconds(1)),
        }
    }

    /// Whether an activity lowers the metric while it is in the window (a
    /// refund, a clawback or a negative adjustment of the growth points):
    /// the metric rises when it leaves.
    fn reduces(&self, a: &Activity) -> bool {
        a.lowers_spend() || (a.points < 0 && a.point_type.is_some() && a.point_type == self.point_type)
    }

    /// The first instant at which an activity at `at` no longer counts (the
    /// window's start has reached it), for rolling windows; `None` for the
    /// others, whose windows start afresh at the period's end.
    ///
    /// The window at `t` starts at [`TierLadder::window_start`], the same
    /// wall-clock time N days or months earlier, so the activity leaves N
    /// days or months after it happened, except where that date does not
    /// exist the other way round (31 January + 1 month is 28 February, whose
    /// window starts on 28 January): then it leaves at the first instant
    /// whose window starts at or after it, found by bisection.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use crm_core::tier::TierLadder;
    ///
    /// let window = serde_json::json!({"type": "rolling_months", "months": 1});
    /// let ladder: TierLadder = serde_json::from_value(serde_json::json!({"window": window, "levels": [{"id": "member"}]}))?;
    /// let utc = |m, d, h| Utc.with_ymd_and_hms(2024, m, d, h, 0, 0).unwrap();
    /// let tz = chrono_tz::UTC;
    /// assert_eq!(ladder.window_exit(tz, utc(1, 1, 0), utc(1, 15, 9)), Some(utc(2, 15, 9)));
    /// // 31 January leaves when the window starts on 1 February: 1 March.
    /// assert_eq!(ladder.window_exit(tz, utc(1, 1, 0), utc(1, 31, 9)), Some(utc(3, 1, 0)));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn window_exit(&self, tz: Tz, joined: DateTime<Utc>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let guess = match self.window {
            Window::RollingDays { days } => crate::time::add_local_days(tz, at, days),
            Window::RollingMonths { months } => add_local_months(tz, at, months),
            _ => return None,
        };
        let out = |t: DateTime<Utc>| self.window_start(tz, joined, t).is_some_and(|s| s >= at);
        let tick = chrono::Duration::nanoseconds(1);
        if out(guess) && !out(guess - tick) {
            return Some(guess);
        }
        // Bisect between `at` (counted: its window starts before it) and the
        // guess moved on by whole days until it is out (a few at most).
        let mut hi = guess;
        for _ in 0..8 {
            if out(hi) {
                break;
            }
            hi += chrono::Duration::days(1);
        }
        if !out(hi) {
            return None;
        }
        let (mut lo, mut hi) = (at, hi);
        while hi - lo > tick {
            let mid = lo + (hi - lo) / 2;
            if out(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// The metric for a fact at `t`.
    pub fn metric_at(&self, activity: &[Activity], tz: Tz, joined: DateTime<Utc>, t: DateTime<Utc>) -> Metric {
        self.metric(activity, self.window_start(tz, joined, t), t)
    }

    /// The metric counted at a review at `review_at`.
    pub fn metric_for_review(
        &self,
        activity: &[Activity],
        tz: Tz,
        joined: DateTime<Utc>,
        review_at: DateTime<Utc>,
    ) -> Metric {
        // Facts exactly at the review instant belong to the next period.
        let end = review_at - chrono::Duration::nanoseconds(1);
        self.metric(activity, self.review_window_start(tz, joined, review_at), end)
    }

    /// End of the period containing `t` (the next review after `t`).
    pub fn period_end(
        &self,
        tz: Tz,
        joined: DateTime<Utc>,
        since: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.window {
            Window::Lifetime => None,
            Window::CalendarYear => Some(start_of_day(tz, ymd(local_date(tz, t).year() + 1, 1, 1))),
            Window::MembershipYear => {
                let start = anniversary_on_or_before(tz, joined, t);
                Some(add_years_local(tz, joined, years_between(tz, joined, start) + 1))
            }
            // Rolling windows: reviewed one window length after the tier
            // began, then every window length.
            Window::RollingDays { days } => {
                let mut end = crate::time::add_local_days(tz, since, days);
                while end <= t {
                    end = crate::time::add_local_days(tz, end, days);
                }
                Some(end)
            }
            Window::RollingMonths { months } => {
                let mut end = add_local_months(tz, since, months);
                while end <= t {
                    end = add_local_months(tz, end, months);
                }
                Some(end)
            }
        }
    }

    /// The first review of a tier earned by upgrade at `t`.
    pub fn first_review(&self, tz: Tz, joined: DateTime<Utc>, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let end = self.period_end(tz, joined, t, t)?;
        let valid = match self.min_validity {
            MinValidity::EndOfPeriod => end,
            MinValidity::Months { months } => add_local_months(tz, t, months),
            MinValidity::EndOfFollowingYear => start_of_day(tz, ymd(local_date(tz, t).year() + 2, 1, 1)),
        };
        // Reviews happen at period ends: the first one at or after the validity.
        let mut review = end;
        let mut guard = 0;
        while review < valid && guard < 1000 {
            review = self.period_end(tz, joined, t, review)?;
            guard += 1;
        }
        Some(review)
    }

    /// When a tier earned at `earned` by a fact recorded late, its change
    /// listed at `t` (at or after `earned`: the tier's last decision), is
    /// held from and first reviewed: from `earned`, at the review a record
    /// in time would have scheduled ([`Self::first_review`] at `earned`),
    /// when that review is not before `t`; otherwise from `t`, with a first
    /// review of its own, as an upgrade at `t`.
    ///
    /// Why: listed at the last decision, an upgrade reviewed a period from
    /// there falls on other days than in time (rolling six months, an
    /// order of 30 October recorded after a 1 January run: reviewed on
    /// 1 July, when the October order has left the window, instead of on
    /// 29 April, when it still counts), and the member's later tiers part
    /// from those of the same facts recorded in time. A review a record in
    /// time would have taken before `t` cannot be taken at its instant (the
    /// tier history is a timeline), and the tier it would have reviewed
    /// belongs to facts long past: the tier is entered anew at `t`.
    ///
    /// ```
    /// # use chrono::{TimeZone, Utc};
    /// # use crm_core::tier::TierLadder;
    /// let ladder: TierLadder = serde_json::from_value(serde_json::json!({
    ///     "window": {"type": "rolling_months", "months": 6},
    ///     "levels": [{"id": "member"}, {"id": "silver", "entry": {"spend": "500"}}]
    /// }))?;
    /// let (tz, joined) = (chrono_tz::UTC, Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
    /// let earned = Utc.with_ymd_and_hms(2024, 10, 30, 0, 0, 0).unwrap();
    /// let listed = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    /// let in_time = ladder.first_review(tz, joined, earned);
    /// assert_eq!(in_time, Some(Utc.with_ymd_and_hms(2025, 4, 30, 0, 0, 0).unwrap()));
    /// assert_eq!(ladder.entered_late(tz, joined, earned, listed), (earned, in_time));
    /// // Listed after that review: entered then, reviewed six months on.
    /// let much_later = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    /// assert_eq!(
    ///     ladder.entered_late(tz, joined, earned, much_later),
    ///     (much_later, Some(Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap()))
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn entered_late(
        &self,
        tz: Tz,
        joined: DateTime<Utc>,
        earned: DateTime<Utc>,
        t: DateTime<Utc>,
    ) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
        match self.first_review(tz, joined, earned) {
            Some(review) if review >= t => (earned, Some(review)),
            // No review (a lifetime window): held from when it was earned.
            None => (earned, None),
            Some(_) => (t, self.first_review(tz, joined, t)),
        }
    }

    /// The benefits of a tier (the base tier's when unknown).
    pub fn benefits(&self, id: Option<&str>) -> &Benefits {
        id.and_then(|i| self.get(i)).map_or(&self.base().benefits, |t| &t.benefits)
    }
}

/// What taking the reviews since a refund recorded late again gives
/// ([`Standing::reviews_again_with_refund`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Retaken {
    /// Not taken again: no review since the refund, or a decision other
    /// than a review (each decided on facts the reviews did not see).
    No,
    /// Taken again, the refund weighed at its instant with them: nothing
    /// changes.
    Same,
    /// Taken again: the member's tier becomes this state, for this reason,
    /// at this instant (the last review).
    Changed(TierState, TierReason, DateTime<Utc>),
}

/// A member's tier as the ladder sees it: everything a tier decision
/// reads. Each decision below is a function of these five and one instant,
/// so they travel together instead of as the same six parameters.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use crm_core::state::Activity;
/// use crm_core::tier::{initial, Standing, TierLadder, TierReason};
/// use rust_decimal::Decimal;
///
/// let ladder: TierLadder = serde_json::from_value(serde_json::json!({
///     "levels": [{"id": "member"}, {"id": "silver", "entry": {"spend": "1000"}}],
///     "window": {"type": "rolling_months", "months": 12},
/// }))?;
/// let tz = chrono_tz::Asia::Shanghai;
/// let joined = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
/// let paid = Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap();
/// let order = Activity { at: paid, spend: Decimal::new(1200, 0), orders: 1, point_type: None, points: 0 };
/// let current = initial(&ladder, tz, joined, joined);
/// let standing = Standing { ladder: &ladder, tz, joined, current: &current, activity: &[order] };
/// // The order crosses silver's threshold: an upgrade as of its instant.
/// let (silver, reason) = standing.after_fact(paid, false).expect("an upgrade");
/// assert_eq!((silver.tier.as_str(), reason), ("silver", TierReason::Upgrade));
/// // Its first review is a window later; nothing is due before.
/// assert_eq!(silver.review_at, Some(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()));
/// assert!(Standing { current: &silver, ..standing }.due_review(paid).is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Standing<'a> {
    pub ladder: &'a TierLadder,
    /// The programme's zone (windows and periods are local).
    pub tz: Tz,
    /// When the member joined (membership years start then).
    pub joined: DateTime<Utc>,
    /// The tier held.
    pub current: &'a TierState,
    /// What the metric counts, in time order.
    pub activity: &'a [Activity],
}

impl Standing<'_> {
    /// What the engine should do with a member's tier after a fact at `t`.
    /// `None`: nothing changes.
    pub fn after_fact(&self, t: DateTime<Utc>, refund: bool) -> Option<(TierState, TierReason)> {
        self.after_late_fact(t, t, refund)
    }

    /// [`Self::after_fact`] for a fact recorded late, after decisions dated
    /// later than it: the metric counted at `counted`, the change (if any)
    /// dated `t`, the tier's last decision or later.
    ///
    /// Why: decisions already taken (a review, an upgrade by a later order)
    /// were acted on and stay, and the tier history is a timeline, so a late
    /// fact's change is never dated before a change already listed. What it
    /// changes still counts the fact: the engine weighs it at its own instant
    /// (what a record in time would have seen, also in a window that has
    /// closed since), then at the member's last fact (with every fact known)
    /// for an upgrade.
    pub fn after_late_fact(
        &self,
        counted: DateTime<Utc>,
        t: DateTime<Utc>,
        refund: bool,
    ) -> Option<(TierState, TierReason)> {
        let Standing { ladder, tz, joined, current, activity } = *self;
        let m = ladder.metric_at(activity, tz, joined, counted);
        let q = ladder.qualified(&m);
        let cur = ladder.index(&current.tier).unwrap_or(0);
        if q > cur {
            // Reviewed on the schedule of a record in time while it is
            // still ahead (see `TierLadder::entered_late`).
            let (since, review_at) = ladder.entered_late(tz, joined, counted, t);
            let state = TierState {
                tier: ladder.levels[q].id.clone(),
                since,
                review_at,
                floor: current.floor.clone(),
                grace_until: None,
                manual: None,
            };
            return Some((state, TierReason::Upgrade));
        }
        if current.grace_until.is_some() && ladder.levels[cur].retention().met(&m) {
            let state = TierState {
                grace_until: None,
                review_at: ladder.period_end(tz, joined, current.since, t),
                ..current.clone()
            };
            return Some((state, TierReason::Retained));
        }
        if refund && ladder.refunds == RefundEffect::Immediate && current.manual.is_none() {
            let floor = ladder.index(&current.floor).unwrap_or(0);
            if cur > floor && !ladder.levels[cur].entry.met(&m) {
                let to = q.max(floor);
                if to < cur {
                    let state = TierState {
                        tier: ladder.levels[to].id.clone(),
                        since: t,
                        review_at: if to == floor {
                            ladder.period_end(tz, joined, current.since, t)
                        } else {
                            ladder.first_review(tz, joined, t)
                        },
                        floor: current.floor.clone(),
                        grace_until: None,
                        manual: None,
                    };
                    return Some((state, TierReason::Refund));
                }
            }
        }
        None
    }

    /// The first instant in `[from, until]` (no end when `until` is `None`)
    /// at which a reduction leaving a rolling window changes the tier as a fact
    /// there would ([`Self::after_fact`]: an upgrade, or retention met during grace):
    /// the new state, the reason and that instant.
    ///
    /// Why: a refund lowers the metric at its own instant (a December order
    /// refunded in January does not keep the tier it earned), and the order it
    /// refunds, being older, leaves a rolling window first; when the refund
    /// leaves too, the metric rises with no fact at all. Without this the
    /// member would stay below the tier it qualifies for until its next order,
    /// while its tier view already says "qualified". `from` is where the tier
    /// was last decided (its last change): reductions that left before it were
    /// weighed then.
    pub fn due_upgrade(
        &self,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Option<(TierState, TierReason, DateTime<Utc>)> {
        self.window_exits(from, until).into_iter().find_map(|e| self.after_fact(e, false).map(|(s, r)| (s, r, e)))
    }

    /// The upgrade a fact recorded late at `from` shows was missed before the
    /// tier's last decision at `decided`: at the first instant in between at
    /// which a reduction leaves a rolling window and the metric qualifies for
    /// more than the tier held then ([`Self::after_late_fact_held`]), the
    /// member moves up as a fact there would, dated `decided`.
    ///
    /// Why: the exit was weighed in time without the late fact (a late refund's
    /// own exit, or a late order's window when an earlier refund leaves it).
    /// Compared with the tier held at the exit, not the one held now: a tier
    /// the metric there already gave, and a review took since, is not given
    /// again.
    pub fn missed_exit_upgrade(
        &self,
        from: DateTime<Utc>,
        decided: DateTime<Utc>,
        history: &[TierChange],
        taken_back: Option<&str>,
    ) -> Option<(TierState, TierReason)> {
        self.window_exits(from, Some(decided))
            .into_iter()
            .find_map(|e| self.after_late_fact_held(e, decided, false, history, taken_back))
            .filter(|(_, r)| *r == TierReason::Upgrade)
    }

    /// [`Self::after_late_fact`], with an upgrade only to more than the tier
    /// held at `counted`: in `history` (the member's tier history), or
    /// `taken_back` when lower (the tier a refund recorded late took the
    /// member back to from before `counted`); a grace ended only by what is
    /// counted inside it (a late fact before it is weighed by taking the
    /// review again: [`Self::reviews_again`]).
    ///
    /// Why: the metric at `counted` was weighed in time against the tier held
    /// then. When that tier was already as high (and a review took it since),
    /// the late fact added nothing there an upgrade could be owed for; what
    /// it changes at the review is [`Self::reviews_again`]'s.
    pub fn after_late_fact_held(
        &self,
        counted: DateTime<Utc>,
        t: DateTime<Utc>,
        refund: bool,
        history: &[TierChange],
        taken_back: Option<&str>,
    ) -> Option<(TierState, TierReason)> {
        let ladder = self.ladder;
        let then = history[..history.partition_point(|c| c.at <= counted)].last().map(|h| h.to.as_str());
        let held = [then, taken_back].into_iter().flatten().filter_map(|tier| ladder.index(tier)).min();
        let decided = history.last().map(|c| c.at);
        self.after_late_fact(counted, t, refund).filter(|(s, r)| match r {
            TierReason::Upgrade => held.is_none_or(|h| ladder.index(&s.tier) > Some(h)),
            // Retention met in a grace ends it only when counted inside it:
            // it began at the last decision.
            TierReason::Retained => decided.is_none_or(|d| counted >= d),
            _ => true,
        })
    }

    /// The instants in `[from, until]` (no end when `until` is `None`), in
    /// order, at which a reduction of the metric leaves a rolling window
    /// (none for other windows).
    fn window_exits(&self, from: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Vec<DateTime<Utc>> {
        let Standing { ladder, tz, joined, activity, .. } = *self;
        if !matches!(ladder.window, Window::RollingDays { .. } | Window::RollingMonths { .. }) {
            return Vec::new();
        }
        // What was counted a week before the window at `from` began had left
        // before `from`. The week is a margin: a month-long window's start
        // jumps by up to three days at a month's first instant (from 28
        // January to 1 February as 28 February ends), and by an hour at a DST
        // change. The activity is in time order: the rest is the window's
        // length, not the member's history.
        let counted = ladder.window_start(tz, joined, from).map_or(from, |s| s - chrono::Duration::days(7));
        let mut exits: Vec<DateTime<Utc>> = activity[activity.partition_point(|a| a.at < counted)..]
            .iter()
            .filter(|a| ladder.reduces(a))
            .filter_map(|a| ladder.window_exit(tz, joined, a.at))
            .filter(|&e| e >= from && until.is_none_or(|u| e <= u))
            .collect();
        exits.sort_unstable();
        exits.dedup();
        exits
    }

    /// What a member's tier becomes at `now` when the ladder may have changed
    /// since it was decided (the engine runs another programme than the one
    /// the store's members were written under).
    ///
    /// Why: the engine moves a member up when a fact crosses a threshold, and
    /// down at a review. A ladder added or lowered between facts would leave a
    /// member who already qualifies where it is until its next order, and a
    /// tier taken off the ladder would stay until its review. So, at `now`:
    /// a tier no longer on the ladder becomes the one the member qualifies
    /// for ([`TierReason::LadderChanged`]); otherwise the member moves up as a
    /// fact at `now` would move it ([`Self::after_fact`]: an upgrade, or retention
    /// met during grace). A manual assignment stands until its end, and
    /// downgrades wait for the review: what a member earned under the old
    /// ladder is kept until then. `None`: nothing changes.
    pub fn after_ladder_change(&self, now: DateTime<Utc>) -> Option<(TierState, TierReason)> {
        let Standing { ladder, tz, joined, current, activity } = *self;
        if ladder.index(&current.tier).is_none() {
            let q = ladder.qualified(&ladder.metric_at(activity, tz, joined, now));
            return Some((self.placed(q, now), TierReason::LadderChanged));
        }
        if current.manual.is_some() {
            return None;
        }
        self.after_fact(now, false)
    }

    /// A member put in `ladder.levels[q]` at `now` other than by a review (the
    /// tier it held is off the ladder): in the base tier a new period starts;
    /// above it the tier runs to its first review, as after an upgrade.
    fn placed(&self, q: usize, now: DateTime<Utc>) -> TierState {
        let Standing { ladder, tz, joined, .. } = *self;
        TierState {
            tier: ladder.levels[q].id.clone(),
            since: now,
            review_at: if q == 0 {
                ladder.period_end(tz, joined, now, now)
            } else {
                ladder.first_review(tz, joined, now)
            },
            floor: ladder.base().id.clone(),
            grace_until: None,
            manual: None,
        }
    }

    /// The review (or end of grace, or end of a manual assignment) due at or
    /// before `now`, if any: the new state, the reason and the instant it
    /// happens at. Call repeatedly until `None` to catch up on missed reviews.
    pub fn due_review(&self, now: DateTime<Utc>) -> Option<(TierState, TierReason, DateTime<Utc>)> {
        let Standing { ladder, tz, joined, current, activity } = *self;
        let cur = ladder.index(&current.tier);
        if cur.is_none() {
            // The programme no longer has this tier (and no reschedule placed
            // the member under the new ladder): start again at the base.
            return Some((self.placed(0, now), TierReason::LadderChanged, now));
        }
        let cur = cur.unwrap_or(0);
        if let Some(manual) = current.manual.as_ref().filter(|m| m.until <= now) {
            let at = manual.until;
            let q = ladder.qualified(&ladder.metric_at(activity, tz, joined, at));
            let id = ladder.levels[q].id.clone();
            let state = TierState {
                tier: id.clone(),
                since: at,
                review_at: ladder.period_end(tz, joined, at, at),
                floor: id,
                grace_until: None,
                manual: None,
            };
            return Some((state, TierReason::ManualExpired, at));
        }
        if current.manual.is_some() {
            return None;
        }
        let at = match (current.grace_until, current.review_at) {
            (Some(g), _) if g <= now => g,
            (None, Some(r)) if r <= now => r,
            _ => return None,
        };
        let m = if current.grace_until.is_some() {
            ladder.metric_at(activity, tz, joined, at)
        } else {
            ladder.metric_for_review(activity, tz, joined, at)
        };
        let next_review = ladder.period_end(tz, joined, at, at);
        if cur == 0 || ladder.levels[cur].retention().met(&m) {
            let state =
                TierState { review_at: next_review, floor: current.tier.clone(), grace_until: None, ..current.clone() };
            return Some((state, TierReason::Retained, at));
        }
        if ladder.grace_days > 0 && current.grace_until.is_none() {
            let until = crate::time::add_local_days(tz, at, ladder.grace_days);
            let state = TierState { grace_until: Some(until), ..current.clone() };
            return Some((state, TierReason::Grace, at));
        }
        let q = ladder.qualified(&m);
        let to = match ladder.downgrade {
            Downgrade::OneStep => (cur - 1).max(q),
            Downgrade::ToQualified => q,
        }
        .min(cur);
        let id = ladder.levels[to].id.clone();
        let state = TierState {
            tier: id.clone(),
            since: at,
            review_at: next_review,
            floor: id,
            grace_until: None,
            manual: None,
        };
        Some((state, TierReason::Downgrade, at))
    }

    /// The tier the reviews taken since `t` give when taken again, if it is
    /// higher than the one held, or the same one out of the grace the held
    /// one is in ([`TierReason::Retained`]): what a fact at `t` recorded late
    /// (an order a till syncs after the year-end run) would have kept. `history` is the
    /// member's tier history, oldest first; the state and the instant of the
    /// last review are returned, with [`TierReason::Reinstated`] (or
    /// [`TierReason::Retained`] out of the grace).
    ///
    /// Why: a review is taken once, at its instant, with the facts recorded
    /// by then. An order of 30 December that reaches the engine on 2 January
    /// would have kept Silver at the review of 1 January; without this the
    /// member stays downgraded until they qualify again. Only when every
    /// decision after `t` is a review (retained, grace, downgrade): the state
    /// before the first of them is rebuilt from the history (the tier held and
    /// when it was entered; in grace when the review is a grace's end, and
    /// then the fact at `t`, inside the grace, weighed first as in time) and
    /// the reviews are taken again up to the last one, counting every fact
    /// known now. A manual assignment, an upgrade or a refund after `t` ends
    /// it (each was decided on facts the reviews did not see). Never lower:
    /// an order only adds to the metric; a late refund is
    /// [`Self::reviews_again_with_refund`]'s.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use crm_core::state::Activity;
    /// use crm_core::tier::{Standing, TierChange, TierLadder, TierReason, TierState};
    /// use rust_decimal::Decimal;
    ///
    /// let ladder: TierLadder = serde_json::from_value(serde_json::json!({
    ///     "levels": [{"id": "member"}, {"id": "silver", "entry": {"spend": "1000"}, "retain": {"spend": "800"}}],
    ///     "window": {"type": "calendar_year"},
    /// }))?;
    /// let tz = chrono_tz::UTC;
    /// let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
    /// let change = |t, from: Option<&str>, to: &str, reason| TierChange {
    ///     at: t, from: from.map(String::from), to: to.into(), reason, note: None,
    /// };
    /// // Silver since March 2023, kept at the start of 2024, lost at the start
    /// // of 2025 with 300 spent in 2024.
    /// let history = [
    ///     change(at(2023, 3, 1), None, "member", TierReason::Joined),
    ///     change(at(2023, 3, 1), Some("member"), "silver", TierReason::Upgrade),
    ///     change(at(2024, 1, 1), Some("silver"), "silver", TierReason::Retained),
    ///     change(at(2025, 1, 1), Some("silver"), "member", TierReason::Downgrade),
    /// ];
    /// let order = |t, spend| Activity { at: t, spend: Decimal::new(spend, 0), orders: 1, point_type: None, points: 0 };
    /// // An order of 600 placed on 30 December 2024 arrives after the review.
    /// let activity = [order(at(2023, 3, 1), 1200), order(at(2024, 6, 1), 300), order(at(2024, 12, 30), 600)];
    /// let current = TierState {
    ///     tier: "member".into(), since: at(2025, 1, 1), review_at: Some(at(2026, 1, 1)),
    ///     floor: "member".into(), grace_until: None, manual: None,
    /// };
    /// let standing = Standing { ladder: &ladder, tz, joined: at(2023, 3, 1), current: &current, activity: &activity };
    /// let (kept, reason, when) = standing.reviews_again(&history, at(2024, 12, 30)).expect("silver kept");
    /// assert_eq!((kept.tier.as_str(), reason, when), ("silver", TierReason::Reinstated, at(2025, 1, 1)));
    /// // Held since it was entered, reviewed next at the end of 2025.
    /// assert_eq!((kept.since, kept.review_at), (at(2023, 3, 1), Some(at(2026, 1, 1))));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn reviews_again(
        &self,
        history: &[TierChange],
        t: DateTime<Utc>,
    ) -> Option<(TierState, TierReason, DateTime<Utc>)> {
        let (state, at) = self.retaken(history, t, None)?;
        let (ladder, current) = (self.ladder, self.current);
        match ladder.index(&state.tier)?.cmp(&ladder.index(&current.tier)?) {
            std::cmp::Ordering::Greater => Some((state, TierReason::Reinstated, at)),
            // Kept at a review that gave a grace: the grace ends.
            std::cmp::Ordering::Equal if state.grace_until.is_none() && current.grace_until.is_some() => {
                Some((state, TierReason::Retained, at))
            }
            _ => None,
        }
    }

    /// [`Self::reviews_again`] for a refund at `t` recorded late: the state
    /// the reviews taken since give when taken again, when it is not the one
    /// held: a lower tier ([`TierReason::Downgrade`]); the same one in a
    /// grace ([`TierReason::Grace`]) or reviewed on another day (lost and
    /// earned again on the way, its period runs from then:
    /// [`TierReason::Retained`]); or a higher one ([`TierReason::Reinstated`]:
    /// a refund taking an upgrade back starts a period, and the review it
    /// makes the member miss may have cost more). Dated at the last review,
    /// as a reinstatement is, or at the last change the reviews taken again
    /// up to `now` (when the refund is recorded) make after it: with the
    /// refund the schedule can differ from the one held.
    ///
    /// Why: a review counts the refunds dated before it. A refund of 30
    /// December synced on 2 January, after the 1 January run kept Gold on
    /// the order it refunds, would have cost Gold there; without this the
    /// member keeps it a whole period (the next review's window no longer
    /// counts the refund in a calendar year), and a refund recorded in time
    /// and one recorded late would end apart. Between the reviews the facts
    /// after `t` move the member up again as in time (an order that earns
    /// back the tier the review took), which the tier held in the history,
    /// being higher, did not show.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use crm_core::state::Activity;
    /// use crm_core::tier::{Retaken, Standing, TierChange, TierLadder, TierReason, TierState};
    /// use rust_decimal::Decimal;
    ///
    /// let ladder: TierLadder = serde_json::from_value(serde_json::json!({
    ///     "levels": [{"id": "member"}, {"id": "silver", "entry": {"spend": "1000"}, "retain": {"spend": "800"}}],
    ///     "window": {"type": "calendar_year"},
    /// }))?;
    /// let tz = chrono_tz::UTC;
    /// let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
    /// let change = |t, from: Option<&str>, to: &str, reason| TierChange {
    ///     at: t, from: from.map(String::from), to: to.into(), reason, note: None,
    /// };
    /// // Silver since March 2023, kept at the start of 2025 with 900 spent in 2024.
    /// let history = [
    ///     change(at(2023, 3, 1), None, "member", TierReason::Joined),
    ///     change(at(2023, 3, 1), Some("member"), "silver", TierReason::Upgrade),
    ///     change(at(2024, 1, 1), Some("silver"), "silver", TierReason::Retained),
    ///     change(at(2025, 1, 1), Some("silver"), "silver", TierReason::Retained),
    /// ];
    /// let fact = |t, spend| Activity { at: t, spend: Decimal::new(spend, 0), orders: 1, point_type: None, points: 0 };
    /// // 200 of the 30 December order refunded that day, synced after the review.
    /// let refund = Activity { orders: 0, ..fact(at(2024, 12, 30), -200) };
    /// let activity = [fact(at(2023, 3, 1), 1200), fact(at(2024, 6, 1), 300), fact(at(2024, 12, 30), 600), refund];
    /// let current = TierState {
    ///     tier: "silver".into(), since: at(2023, 3, 1), review_at: Some(at(2026, 1, 1)),
    ///     floor: "silver".into(), grace_until: None, manual: None,
    /// };
    /// let standing = Standing { ladder: &ladder, tz, joined: at(2023, 3, 1), current: &current, activity: &activity };
    /// let Retaken::Changed(lost, reason, when) = standing.reviews_again_with_refund(&history, at(2024, 12, 30), at(2025, 1, 2)) else {
    ///     panic!("silver lost")
    /// };
    /// assert_eq!((lost.tier.as_str(), reason, when), ("member", TierReason::Downgrade, at(2025, 1, 1)));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn reviews_again_with_refund(&self, history: &[TierChange], t: DateTime<Utc>, now: DateTime<Utc>) -> Retaken {
        let Some((state, at)) = self.retaken(history, t, Some(now)) else { return Retaken::No };
        let (ladder, current) = (self.ladder, self.current);
        let (Some(to), Some(cur)) = (ladder.index(&state.tier), ladder.index(&current.tier)) else {
            return Retaken::No;
        };
        let grace = state.grace_until != current.grace_until;
        let reason = match to.cmp(&cur) {
            std::cmp::Ordering::Less => TierReason::Downgrade,
            std::cmp::Ordering::Greater => TierReason::Reinstated,
            _ if grace && state.grace_until.is_some() => TierReason::Grace,
            _ if grace || state.review_at != current.review_at => TierReason::Retained,
            _ => return Retaken::Same,
        };
        Retaken::Changed(state, reason, at)
    }

    /// The state the reviews taken since `t` (the changes in `history` after
    /// it, all reviews) give when taken again with every fact known now, and
    /// the instant it is dated at: the last of them. For a refund at `t`
    /// (`refund_now`: the instant it is recorded), the refund takes back at
    /// once what the programme says, the facts after it move the member on
    /// the way as in time ([`Self::after_fact`]), and the reviews run up to
    /// now: the schedule may differ from the one held (dated then at the last
    /// change, when after the last review).
    fn retaken(
        &self,
        history: &[TierChange],
        t: DateTime<Utc>,
        refund_now: Option<DateTime<Utc>>,
    ) -> Option<(TierState, DateTime<Utc>)> {
        use TierReason::{Downgrade, Grace, Retained};
        let Standing { ladder, activity, .. } = *self;
        let first = history.partition_point(|c| c.at <= t);
        let (before, taken) = history.split_at(first);
        let (opening, last) = (taken.first()?, taken.last()?);
        if !taken.iter().all(|c| matches!(c.reason, Retained | Grace | Downgrade)) {
            return None;
        }
        let held = opening.from.clone()?;
        // The tier held was entered by the last change into it from elsewhere.
        let since = before.iter().rev().find(|c| c.to == held && c.from.as_ref() != Some(&held))?.at;
        // A downgrade right after a grace given for the tier is that grace's end.
        let grace_end = opening.reason == Downgrade && before.last().is_some_and(|c| c.reason == Grace && c.to == held);
        // What a refund cannot take away: the tier the last decision other
        // than a move up (or a grace, a fact ending one, or a hand) left.
        let floor = (0..before.len()).rev().find_map(|i| match before[i].reason {
            TierReason::LadderChanged => Some(ladder.base().id.clone()),
            TierReason::Upgrade | TierReason::Refund | TierReason::Manual | Grace => None,
            Retained if i > 0 && before[i - 1].reason == Grace => None,
            _ => Some(before[i].to.clone()),
        });
        let mut state = TierState {
            tier: held.clone(),
            since,
            review_at: Some(opening.at),
            floor: floor.unwrap_or(held),
            grace_until: grace_end.then_some(opening.at),
            manual: None,
        };
        // A fact inside the grace keeps the tier at once when it meets the
        // retention (as `after_fact` does for a fact recorded in time), and
        // the next review is a period on: the grace's end measured a later
        // window, which in a rolling one may have let the fact's company go.
        // A refund takes back at once what the programme says it does.
        let refund = refund_now.is_some();
        match (Standing { current: &state, ..*self }).after_fact(t, refund) {
            Some((next, TierReason::Retained)) => state = next,
            Some((next, TierReason::Refund)) if refund => state = next,
            _ => {}
        }
        let until = refund_now.map_or(last.at, |now| now.max(last.at));
        let mut dated = last.at;
        // Each review is a period (or a grace) on from the one before: the
        // bound only keeps a malformed ladder from looping.
        let reviews_up_to = |state: &mut TierState, dated: &mut DateTime<Utc>, until: DateTime<Utc>| {
            for _ in 0..taken.len() * 2 + 64 {
                match (Standing { current: state, ..*self }).due_review(until) {
                    Some((next, _, at)) => (*state, *dated) = (next, at.max(*dated)),
                    None => break,
                }
            }
        };
        if refund {
            // The facts after `t` (a refund among them taking back at once),
            // and the reductions leaving a rolling window, in time order.
            let after = &activity[activity.partition_point(|a| a.at <= t)..];
            let facts = after.iter().take_while(|a| a.at <= until).map(|a| (a.at, ladder.reduces(a)));
            let exits = self.window_exits(t, Some(until)).into_iter().map(|e| (e, false));
            let mut moves: Vec<_> = facts.chain(exits).collect();
            moves.sort_by_key(|m| m.0);
            for (at, reduces) in moves {
                reviews_up_to(&mut state, &mut dated, at);
                if let Some((next, _)) = (Standing { current: &state, ..*self }).after_fact(at, reduces) {
                    (state, dated) = (next, at.max(dated));
                }
            }
        }
        reviews_up_to(&mut state, &mut dated, until);
        Some((state, dated))
    }

    /// The view of a member's tier with progress, at `at`.
    pub fn view(&self, at: DateTime<Utc>) -> TierView {
        let Standing { ladder, tz, joined, current, activity } = *self;
        let cur = ladder.index(&current.tier).unwrap_or(0);
        let tier = &ladder.levels[cur];
        let m_now = ladder.metric_at(activity, tz, joined, at);
        let next = ladder.levels.get(cur + 1).map(|up| {
            let missing = up.entry.gap(&m_now);
            let by = ladder.period_end(tz, joined, current.since, at);
            let message = if missing.is_met() {
                format!("qualified for {}", up.display_name())
            } else {
                format!("{} to reach {}", missing.describe(), up.display_name())
            };
            Progress { tier: up.id.clone(), metric: m_now.clone(), missing, by, message }
        });
        let retain = match retention_deadline(cur, current) {
            None => None,
            Some((review, deadline)) => {
                let m = if current.grace_until.is_some() {
                    m_now.clone()
                } else {
                    // What will count at the review, from the facts so far.
                    let start = ladder.review_window_start(tz, joined, review);
                    ladder.metric(activity, start, at.min(review))
                };
                let missing = tier.retention().gap(&m);
                let day = local_date(tz, deadline - chrono::Duration::nanoseconds(1));
                let message = if missing.is_met() {
                    format!("{} is kept at the review on {}", tier.display_name(), day.format("%-d %b %Y"))
                } else {
                    format!("{} by {} to keep {}", missing.describe(), day.format("%-d %b %Y"), tier.display_name())
                };
                Some(Progress { tier: tier.id.clone(), metric: m, missing, by: Some(deadline), message })
            }
        };
        TierView {
            tier: tier.id.clone(),
            name: tier.display_name().to_string(),
            since: current.since,
            review_at: current.review_at,
            grace_until: current.grace_until,
            manual: current.manual.clone(),
            benefits: tier.benefits.clone(),
            next,
            retain,
        }
    }
}

/// The base-tier state of a member joining at `at`.
pub fn initial(ladder: &TierLadder, tz: Tz, joined: DateTime<Utc>, at: DateTime<Utc>) -> TierState {
    let base = ladder.base().id.clone();
    TierState {
        tier: base.clone(),
        since: at,
        review_at: ladder.period_end(tz, joined, at, at).filter(|_| ladder.levels.len() > 1),
        floor: base,
        grace_until: None,
        manual: None,
    }
}

/// The review a tier above the base (ladder position `cur`) must pass, and
/// the deadline to meet its retention threshold by (the end of a grace
/// period, else the review); `None` for the base tier or without a review.
fn retention_deadline(cur: usize, current: &TierState) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    match (cur, current.review_at.or(current.grace_until)) {
        (0, _) | (_, None) => None,
        (_, Some(review)) => Some((review, current.grace_until.unwrap_or(review))),
    }
}

/// The instants of [`Standing::view`] alone: the tier and the retention deadline
/// (`retain.by`), without summing the metric or writing the messages
/// (`next` is `None`, `retain.metric` and `retain.missing` are empty).
/// Enough to schedule outreach, which reads nothing else when it only asks
/// when occurrences fall due; a run, which checks the gap, takes [`Standing::view`].
pub fn schedule_view(ladder: &TierLadder, current: &TierState) -> TierView {
    let cur = ladder.index(&current.tier).unwrap_or(0);
    let tier = &ladder.levels[cur];
    TierView {
        tier: tier.id.clone(),
        name: String::new(),
        since: current.since,
        review_at: current.review_at,
        grace_until: current.grace_until,
        manual: None,
        benefits: Benefits::default(),
        next: None,
        retain: retention_deadline(cur, current).map(|(_, by)| Progress {
            tier: tier.id.clone(),
            metric: Metric::default(),
            missing: Gap::default(),
            by: Some(by),
            message: String::new(),
        }),
    }
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MAX)
}

/// `joined` moved `years` years on, local wall clock (29 Feb -> 28 Feb).
fn add_years_local(tz: Tz, joined: DateTime<Utc>, years: u32) -> DateTime<Utc> {
    add_local_months(tz, joined, years.saturating_mul(12))
}

fn years_between(tz: Tz, joined: DateTime<Utc>, t: DateTime<Utc>) -> u32 {
    let mut n = 0;
    while n < 10_000 && add_years_local(tz, joined, n + 1) <= t {
        n += 1;
    }
    n
}

/// The last membership anniversary at or before `t` (`joined` itself in year one).
fn anniversary_on_or_before(tz: Tz, joined: DateTime<Utc>, t: DateTime<Utc>) -> DateTime<Utc> {
    if t < joined {
        return joined;
    }
    add_years_local(tz, joined, years_between(tz, joined, t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sh, utc};

    fn st<'a>(
        ladder: &'a TierLadder,
        tz: Tz,
        joined: DateTime<Utc>,
        current: &'a TierState,
        activity: &'a [Activity],
    ) -> Standing<'a> {
        Standing { ladder, tz, joined, current, activity }
    }

    fn ladder(window: Window) -> TierLadder {
        serde_json::from_value(serde_json::json!({
            "levels": [
                {"id": "member"},
                {"id": "silver", "entry": {"spend": "1000"}},
                {"id": "gold", "entry": {"spend": "5000"}, "retain": {"spend": "3000"}}
            ],
            "window": window,
        }))
        .unwrap()
    }
    fn spend(at: &str, amount: i64) -> Activity {
        Activity { at: utc(at), spend: Decimal::from(amount), orders: 1, point_type: None, points: 0 }
    }

    proptest::proptest! {
        /// The window summed as a range of the time-ordered activity is the
        /// sum of every entry the window holds, to the decimal scale
        /// (refunds of zero at two decimals, points with no spend, entries
        /// at the window's ends).
        #[test]
        fn the_window_is_summed_as_a_filter_would(
            mut entries in proptest::collection::vec(
                (0i64..40, proptest::prop_oneof![proptest::strategy::Just(0i64), -500i64..5_000], 0u32..3, -2i64..3, proptest::option::of(0u8..2), -50i64..200),
                0..40,
            ),
            from in proptest::option::of(-2i64..42),
            to in -2i64..42,
        ) {
            let day = |d: i64| utc("2025-01-01T00:00:00Z") + chrono::Duration::days(d);
            entries.sort_by_key(|e| e.0);
            let activity: Vec<Activity> = entries
                .iter()
                .map(|&(d, cents, scale, orders, pt, points)| Activity {
                    at: day(d),
                    spend: Decimal::new(if scale == 0 { cents / 100 } else { cents }, if scale == 0 { 0 } else { 2 }),
                    orders,
                    point_type: pt.map(|p| ["growth", "reward"][usize::from(p)].to_string()),
                    points,
                })
                .collect();
            let mut l = ladder(Window::Lifetime);
            l.point_type = Some("growth".into());
            let (from, to) = (from.map(day), day(to));
            let mut expected = Metric::default();
            for a in activity.iter().filter(|a| a.at <= to && from.is_none_or(|f| a.at > f)) {
                expected.spend += a.spend;
                expected.orders += a.orders;
                if a.point_type.as_deref() == Some("growth") {
                    expected.points += a.points;
                }
            }
            let got = l.metric(&activity, from, to);
            proptest::prop_assert_eq!(&got, &expected);
            proptest::prop_assert_eq!(got.spend.to_string(), expected.spend.to_string());
        }
    }

    #[test]
    fn thresholds_all_and_any() {
        let m = Metric { spend: Decimal::from(600), orders: 3, points: 0 };
        let all = Threshold { spend: Some(Decimal::from(500)), orders: Some(5), ..Threshold::default() };
        let any = Threshold { combine: Combine::Any, ..all.clone() };
        assert!(!all.met(&m) && any.met(&m));
        assert_eq!(all.gap(&m), Gap { spend: Some(Decimal::ZERO), orders: Some(2), points: None });
        assert!(Threshold::default().met(&Metric::default()));
    }

    #[test]
    fn a_changed_ladder_moves_members_up_and_out_of_removed_tiers_only() {
        let l = ladder(Window::CalendarYear);
        let joined = utc("2024-01-01T00:00:00Z");
        let now = utc("2024-06-01T00:00:00Z");
        let acts = [spend("2024-03-01T00:00:00Z", 1200)];
        let held =
            |tier: &str| TierState { tier: tier.into(), floor: tier.into(), ..initial(&l, sh(), joined, joined) };
        // 1,200 meets silver: a member still in the base tier moves up now.
        let (up, reason) = st(&l, sh(), joined, &held("member"), &acts).after_ladder_change(now).unwrap();
        assert_eq!((up.tier.as_str(), up.since, reason), ("silver", now, TierReason::Upgrade));
        // Gold is kept although 1,200 is short of it: downgrades wait for the review.
        assert_eq!(st(&l, sh(), joined, &held("gold"), &acts).after_ladder_change(now), None);
        // A tier the ladder no longer has: the one qualified for, at once.
        let (placed, reason) = st(&l, sh(), joined, &held("platinum"), &acts).after_ladder_change(now).unwrap();
        assert_eq!(
            (placed.tier.as_str(), placed.floor.as_str(), reason),
            ("silver", "member", TierReason::LadderChanged)
        );
        let (base, _) = st(&l, sh(), joined, &held("platinum"), &[]).after_ladder_change(now).unwrap();
        assert_eq!((base.tier.as_str(), base.review_at), ("member", l.period_end(sh(), joined, now, now)));
        // Found at a review instead (no reschedule placed it): the base tier, at once.
        let (found, reason, at) = st(&l, sh(), joined, &held("platinum"), &acts).due_review(now).unwrap();
        assert_eq!((found, reason, at), (base, TierReason::LadderChanged, now));
        // A manual assignment stands until its end.
        let manual = ManualTier { until: utc("2024-09-01T00:00:00Z"), reason: "vip".into(), actor: "ops".into() };
        let assigned = TierState { manual: Some(manual), ..held("member") };
        assert_eq!(st(&l, sh(), joined, &assigned, &acts).after_ladder_change(now), None);
    }

    #[test]
    fn a_late_fact_counts_where_it_was_placed_and_is_dated_at_the_last_decision() {
        let l = ladder(Window::CalendarYear);
        let tz = chrono_tz::UTC;
        let joined = utc("2024-03-01T10:00:00Z");
        let acts = [spend("2024-03-01T10:00:00Z", 300), spend("2024-12-30T10:00:00Z", 800)];
        // Reviewed (kept in the base tier) at the year's end, before the December order was known.
        let reviewed = TierState { since: utc("2025-01-01T00:00:00Z"), ..initial(&l, tz, joined, joined) };
        let member = st(&l, tz, joined, &reviewed, &acts);
        let (late, reason) =
            member.after_late_fact(utc("2024-12-30T10:00:00Z"), utc("2025-01-01T00:00:00Z"), false).unwrap();
        // 1,100 in 2024 reaches silver, entered on 30 December; its first
        // review is the one a record in time has (2024's end), due at once.
        assert_eq!(reason, TierReason::Upgrade);
        assert_eq!((late.tier.as_str(), late.since), ("silver", utc("2024-12-30T10:00:00Z")));
        assert_eq!(late.review_at, Some(utc("2025-01-01T00:00:00Z")));
        let upgraded = st(&l, tz, joined, &late, &acts);
        let (kept, reason, at) = upgraded.due_review(utc("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!((kept.tier.as_str(), reason, at), ("silver", TierReason::Retained, utc("2025-01-01T00:00:00Z")));
        assert_eq!(kept.review_at, Some(utc("2026-01-01T00:00:00Z")));
        // Counted in 2025, where the tier now stands, nothing has been spent yet.
        assert_eq!(member.after_late_fact(utc("2025-01-01T00:00:00Z"), utc("2025-01-01T00:00:00Z"), false), None);
        // In time, the same order upgrades at its own instant, reviewed when 2024 ends.
        let (in_time, _) = member.after_fact(utc("2024-12-30T10:00:00Z"), false).unwrap();
        assert_eq!(
            (in_time.since, in_time.review_at),
            (utc("2024-12-30T10:00:00Z"), Some(utc("2025-01-01T00:00:00Z")))
        );
    }

    #[test]
    fn an_activity_leaves_a_rolling_window_where_the_window_starts_at_it() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let joined = utc("2023-01-01T00:00:00Z");
        let days = ladder(Window::RollingDays { days: 30 });
        let months = ladder(Window::RollingMonths { months: 1 });
        // 13:00 CET on 15 March leaves at 13:00 CEST on 14 April: 30 local days, not 720 hours.
        assert_eq!(days.window_exit(berlin, joined, utc("2024-03-15T12:00:00Z")), Some(utc("2024-04-14T11:00:00Z")));
        // 31 January has no 31 February: it leaves when the window starts on 1 February.
        assert_eq!(months.window_exit(berlin, joined, utc("2024-01-31T09:00:00Z")), Some(utc("2024-02-29T23:00:00Z")));
        assert_eq!(ladder(Window::CalendarYear).window_exit(berlin, joined, utc("2024-01-31T09:00:00Z")), None);
        // Wherever it lands: out of the window there, in it an instant before.
        for l in [&days, &months, &ladder(Window::RollingMonths { months: 5 })] {
            for at in ["2024-01-29T23:30:00Z", "2024-03-30T01:30:00Z", "2024-09-30T00:30:00Z", "2024-10-27T00:30:00Z"] {
                let at = utc(at);
                let e = l.window_exit(berlin, joined, at).unwrap();
                let start = |t| l.window_start(berlin, joined, t).unwrap();
                assert!(start(e) >= at && start(e - chrono::Duration::nanoseconds(1)) < at, "{at} leaves at {e}");
            }
        }
    }

    #[test]
    fn a_refund_leaving_a_rolling_window_upgrades_where_it_leaves() {
        let l = ladder(Window::RollingDays { days: 30 });
        let tz = chrono_tz::UTC;
        let joined = utc("2024-01-01T10:00:00Z");
        let refund = Activity { spend: Decimal::from(-900), orders: 0, ..spend("2024-01-20T10:00:00Z", 0) };
        // 999 (no silver), 900 of it refunded, 700, 400: never 1,000 at a fact,
        // but 1,100 once the refund has left on 19 February (the 999 left on 31 January).
        let acts = [
            spend("2024-01-01T10:00:00Z", 999),
            refund,
            spend("2024-01-25T10:00:00Z", 700),
            spend("2024-02-09T10:00:00Z", 400),
        ];
        for (i, a) in acts.iter().enumerate() {
            assert_eq!(l.qualified(&l.metric_at(&acts[..=i], tz, joined, a.at)), 0);
        }
        let member = initial(&l, tz, joined, joined);
        let left = utc("2024-02-19T10:00:00Z");
        let before = left - chrono::Duration::nanoseconds(1);
        assert_eq!(st(&l, tz, joined, &member, &acts).due_upgrade(joined, Some(before)), None);
        let (up, reason, at) = st(&l, tz, joined, &member, &acts).due_upgrade(joined, None).unwrap();
        assert_eq!((up.tier.as_str(), up.since, reason, at), ("silver", left, TierReason::Upgrade, left));
        assert_eq!(st(&l, tz, joined, &member, &acts).due_upgrade(joined, Some(left)).map(|u| u.2), Some(left));
        // Decided since (silver held): nothing more; a calendar year starts afresh instead.
        assert_eq!(st(&l, tz, joined, &up, &acts).due_upgrade(left, None), None);
        assert_eq!(st(&ladder(Window::CalendarYear), tz, joined, &member, &acts).due_upgrade(joined, None), None);
        // A month-long window's start jumps from 28 January to 1 February
        // when 2023's February ends: a refund of 30 January leaves then,
        // found when the tier was last decided at that very instant.
        let l = ladder(Window::RollingMonths { months: 1 });
        let refund = Activity { at: utc("2023-01-30T10:00:00Z"), ..acts[1].clone() };
        let acts = [refund, spend("2023-02-25T10:00:00Z", 1000)];
        let march = utc("2023-03-01T00:00:00Z");
        let (up, _, at) = st(&l, tz, joined, &member, &acts).due_upgrade(march, None).unwrap();
        assert_eq!((up.tier.as_str(), at), ("silver", march));
    }

    #[test]
    fn calendar_year_period_ends_at_local_new_year() {
        let l = ladder(Window::CalendarYear);
        let t = utc("2024-06-01T00:00:00Z");
        assert_eq!(l.period_end(sh(), t, t, t), Some(utc("2024-12-31T16:00:00Z")));
        // The review counts the year just ended, not a fact at the review instant.
        let acts =
            [spend("2023-12-31T15:59:59Z", 1), spend("2024-05-01T00:00:00Z", 10), spend("2024-12-31T16:00:00Z", 100)];
        let m = l.metric_for_review(&acts, sh(), t, utc("2024-12-31T16:00:00Z"));
        assert_eq!(m.spend, Decimal::from(10));
    }

    #[test]
    fn membership_year_from_leap_day() {
        let l = ladder(Window::MembershipYear);
        let joined = utc("2024-02-29T02:00:00Z"); // 10:00 local
        let t = utc("2025-03-01T00:00:00Z");
        // Anniversary in 2025 is 28 Feb (10:00 local); the next is 28 Feb 2026... then 29 Feb 2028.
        assert_eq!(l.period_end(sh(), joined, joined, t), Some(utc("2026-02-28T02:00:00Z")));
    }

    #[test]
    fn review_keeps_drops_one_step_or_to_qualified() {
        let mut l = ladder(Window::CalendarYear);
        let joined = utc("2023-01-01T00:00:00Z");
        let gold = TierState {
            tier: "gold".into(),
            since: utc("2023-03-01T00:00:00Z"),
            review_at: Some(utc("2023-12-31T16:00:00Z")),
            floor: "member".into(),
            grace_until: None,
            manual: None,
        };
        let now = utc("2024-01-02T00:00:00Z");
        let kept = [spend("2023-05-01T00:00:00Z", 3000)];
        let (s, r, at) = st(&l, sh(), joined, &gold, &kept).due_review(now).unwrap();
        assert_eq!((s.tier.as_str(), r, at), ("gold", TierReason::Retained, utc("2023-12-31T16:00:00Z")));
        assert_eq!(s.review_at, Some(utc("2024-12-31T16:00:00Z")));
        let low = [spend("2023-05-01T00:00:00Z", 200)];
        let (s, r, _) = st(&l, sh(), joined, &gold, &low).due_review(now).unwrap();
        assert_eq!((s.tier.as_str(), r), ("silver", TierReason::Downgrade));
        l.downgrade = Downgrade::ToQualified;
        let (s, _, _) = st(&l, sh(), joined, &gold, &low).due_review(now).unwrap();
        assert_eq!(s.tier, "member");
        l.grace_days = 30;
        let (s, r, _) = st(&l, sh(), joined, &gold, &low).due_review(now).unwrap();
        assert_eq!((s.tier.as_str(), r), ("gold", TierReason::Grace));
        assert_eq!(s.grace_until, Some(utc("2024-01-30T16:00:00Z")));
        assert!(st(&l, sh(), joined, &s, &low).due_review(now).is_none());
    }

    #[test]
    fn schedule_view_has_the_tier_and_deadline_of_the_full_view() {
        let l = ladder(Window::CalendarYear);
        let joined = utc("2023-01-01T00:00:00Z");
        let at = utc("2023-06-01T00:00:00Z");
        let acts = [spend("2023-05-01T00:00:00Z", 200)];
        let gold = |review: Option<&str>, grace: Option<&str>| TierState {
            tier: "gold".into(),
            since: utc("2023-03-01T00:00:00Z"),
            review_at: review.map(utc),
            floor: "member".into(),
            grace_until: grace.map(utc),
            manual: None,
        };
        let base = TierState { tier: "member".into(), ..gold(Some("2023-12-31T16:00:00Z"), None) };
        let states = [
            gold(Some("2023-12-31T16:00:00Z"), None),
            gold(Some("2023-12-31T16:00:00Z"), Some("2024-01-30T16:00:00Z")),
            gold(None, Some("2024-01-30T16:00:00Z")),
            gold(None, None),
            base,
        ];
        let mut deadlines = 0;
        for current in &states {
            let (full, quick) = (st(&l, sh(), joined, current, &acts).view(at), schedule_view(&l, current));
            assert_eq!(full.tier, quick.tier);
            assert_eq!(full.retain.as_ref().map(|r| r.by), quick.retain.as_ref().map(|r| r.by));
            deadlines += usize::from(quick.retain.is_some());
        }
        assert_eq!(deadlines, 3, "gold with a review or a grace period has a deadline; the base tier has none");
    }

    #[test]
    fn reviews_taken_again_end_a_grace_with_the_late_order_and_stop_at_other_decisions() {
        let mut l = ladder(Window::CalendarYear);
        l.grace_days = 30;
        let tz = chrono_tz::UTC;
        let joined = utc("2023-02-01T00:00:00Z");
        let change = |at: &str, from: &str, to: &str, reason| TierChange {
            at: utc(at),
            from: Some(from.into()),
            to: to.into(),
            reason,
            note: None,
        };
        // Gold since February 2023, kept at the start of 2024; 1,000 in 2024
        // gives a grace at the start of 2025, which ends on 31 January.
        let mut history = vec![
            TierChange { from: None, ..change("2023-02-01T00:00:00Z", "", "member", TierReason::Joined) },
            change("2023-02-01T00:00:00Z", "member", "gold", TierReason::Upgrade),
            change("2024-01-01T00:00:00Z", "gold", "gold", TierReason::Retained),
            change("2025-01-01T00:00:00Z", "gold", "gold", TierReason::Grace),
            change("2025-01-31T00:00:00Z", "gold", "silver", TierReason::Downgrade),
        ];
        // Out of grace, reviewed at the end of 2025.
        let held = |tier: &str, since: &str| TierState {
            tier: tier.into(),
            since: utc(since),
            review_at: Some(utc("2026-01-01T00:00:00Z")),
            floor: tier.into(),
            grace_until: None,
            manual: None,
        };
        let silver = held("silver", "2025-01-31T00:00:00Z");
        // 3,000 on 20 January, within the grace, synced on 2 February.
        let activity = [
            spend("2023-02-01T00:00:00Z", 6000),
            spend("2024-05-01T00:00:00Z", 1000),
            spend("2025-01-20T12:00:00Z", 3000),
        ];
        let late = utc("2025-01-20T12:00:00Z");
        let standing = st(&l, tz, joined, &silver, &activity);
        let (gold, reason, at) = standing.reviews_again(&history, late).expect("the grace ends retained");
        assert_eq!((reason, at), (TierReason::Reinstated, utc("2025-01-31T00:00:00Z")));
        // As the end of the grace would have decided with the order known:
        // kept, out of grace, reviewed at the end of 2025, held since 2023.
        assert_eq!(gold, held("gold", "2023-02-01T00:00:00Z"));
        // Short of the retention threshold, the downgrade stands.
        let short = [activity[0].clone(), activity[1].clone(), spend("2025-01-20T12:00:00Z", 2000)];
        assert!(st(&l, tz, joined, &silver, &short).reviews_again(&history, late).is_none());
        // A fact no later than every decision takes nothing again.
        assert!(standing.reviews_again(&history, utc("2025-01-31T00:00:00Z")).is_none());
        // A decision after the order other than a review ends it: taken on
        // facts the reviews did not see.
        history.push(change("2025-01-31T00:00:00Z", "silver", "silver", TierReason::Manual));
        assert!(standing.reviews_again(&history, late).is_none());
    }
}
