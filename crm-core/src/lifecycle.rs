//! Lifecycle stages: where a member stands, from the time since their last
//! paid order.
//!
//! The stage at an instant `t` is a pure function of the member's paid
//! order times up to `t` (so "stage as of any date" needs no stored
//! history, and the recorded transitions agree with it):
//!
//! | stage | when |
//! |-------|------|
//! | `prospect` | no paid order yet |
//! | `churned` | no order for `churned_days` |
//! | `dormant` | no order for `dormant_days` |
//! | `at_risk` | no order for `at_risk_days` |
//! | `new` | first order less than `new_days` ago |
//! | `reactivated` | the last order ended a gap of at least `dormant_days` and was less than `reactivated_days` ago |
//! | `active` | otherwise |
//!
//! "N days" are calendar days in the programme zone at the same wall-clock
//! time (DST-aware), so a member who ordered at 14:00 becomes `at_risk` at
//! 14:00 sixty days later. With `scaling = purchase_interval` and at least
//! `min_orders` orders, the three inactivity thresholds are the member's own
//! mean interval between orders times a factor (never below one day): a
//! weekly buyer is at risk much sooner than a yearly one. With `scaling =
//! p_alive` they are where a fitted BG/NBD model's probability that the
//! member is still alive falls to given levels (the model is the one
//! [`crate::analytics::bgnbd`] fits; members with one order keep the fixed
//! thresholds, as the model never counts them as gone).

use std::cell::OnceCell;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::analytics::bgnbd::BgNbd;
use crate::error::{CrmError, Result};
use crate::time::{add_local_days, local_date};

/// A lifecycle stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Prospect,
    New,
    Active,
    AtRisk,
    Dormant,
    Churned,
    Reactivated,
}

impl Stage {
    /// Every stage, in display order.
    pub const ALL: [Stage; 7] =
        [Stage::Prospect, Stage::New, Stage::Active, Stage::Reactivated, Stage::AtRisk, Stage::Dormant, Stage::Churned];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Prospect => "prospect",
            Stage::New => "new",
            Stage::Active => "active",
            Stage::AtRisk => "at_risk",
            Stage::Dormant => "dormant",
            Stage::Churned => "churned",
            Stage::Reactivated => "reactivated",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stage thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    #[serde(default = "d30")]
    pub new_days: u32,
    #[serde(default = "d60")]
    pub at_risk_days: u32,
    #[serde(default = "d120")]
    pub dormant_days: u32,
    #[serde(default = "d365")]
    pub churned_days: u32,
    #[serde(default = "d30")]
    pub reactivated_days: u32,
    #[serde(default)]
    pub scaling: Scaling,
}

fn d30() -> u32 {
    30
}
fn d60() -> u32 {
    60
}
fn d120() -> u32 {
    120
}
fn d365() -> u32 {
    365
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            new_days: 30,
            at_risk_days: 60,
            dormant_days: 120,
            churned_days: 365,
            reactivated_days: 30,
            scaling: Scaling::Fixed,
        }
    }
}

/// Whether inactivity thresholds are fixed or scaled per member.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scaling {
    #[default]
    Fixed,
    /// Thresholds = the member's mean days between orders × these factors,
    /// for members with at least `min_orders` orders.
    PurchaseInterval { at_risk: Decimal, dormant: Decimal, churned: Decimal, min_orders: u32 },
    /// Thresholds where the member's probability of being still alive
    /// under a fitted BG/NBD model (`r`, `alpha`, `a`, `b`, in periods of
    /// `period_days` days: 7 for a model fitted in weeks) falls to
    /// `at_risk`, `dormant` and `churned` (say 0.6, 0.3, 0.1) if no order
    /// comes. It falls faster for a frequent buyer than for an occasional
    /// one. Purchases are counted per day in the programme's zone, as the
    /// models of [`crate::analytics`] are fitted (several orders on one day
    /// are one transaction): the frequency is the distinct purchase days
    /// after the first, the recency runs from the first purchase day to
    /// the last. For members who bought on one day only the model never
    /// lets P(alive) fall, so the fixed day thresholds apply to them.
    PAlive {
        r: f64,
        alpha: f64,
        a: f64,
        b: f64,
        #[serde(default = "week")]
        period_days: f64,
        at_risk: f64,
        dormant: f64,
        churned: f64,
    },
}

fn week() -> f64 {
    7.0
}

/// A recorded stage transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageChange {
    pub at: DateTime<Utc>,
    pub from: Option<Stage>,
    pub to: Stage,
    pub reason: String,
}

/// Inactivity thresholds in days for one member.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Limits {
    at_risk: f64,
    dormant: f64,
    churned: f64,
}

impl LifecycleConfig {
    /// Check the thresholds (paths under `lifecycle`).
    pub fn validate(&self) -> Result<()> {
        if !(self.at_risk_days < self.dormant_days && self.dormant_days < self.churned_days) {
            return Err(CrmError::config(
                "lifecycle.dormant_days",
                "thresholds must grow: at_risk_days < dormant_days < churned_days",
            ));
        }
        for (name, v) in [("new_days", self.new_days), ("at_risk_days", self.at_risk_days)] {
            if v == 0 {
                return Err(CrmError::config(format!("lifecycle.{name}"), "must be at least 1"));
            }
        }
        if let Scaling::PurchaseInterval { at_risk, dormant, churned, min_orders } = &self.scaling {
            if !(Decimal::ZERO < *at_risk && at_risk < dormant && dormant < churned) {
                return Err(CrmError::config("lifecycle.scaling", "factors must be positive and grow"));
            }
            if *min_orders < 2 {
                return Err(CrmError::config("lifecycle.scaling.min_orders", "must be at least 2"));
            }
        }
        if let Scaling::PAlive { r, alpha, a, b, period_days, at_risk, dormant, churned } = &self.scaling {
            let params = [("r", r), ("alpha", alpha), ("a", a), ("b", b), ("period_days", period_days)];
            for (name, v) in params {
                if !(v.is_finite() && *v > 0.0) {
                    return Err(CrmError::config(format!("lifecycle.scaling.{name}"), "must be a positive number"));
                }
            }
            if !(1.0 > *at_risk && at_risk > dormant && dormant > churned && *churned > 0.0) {
                return Err(CrmError::config(
                    "lifecycle.scaling",
                    "probabilities must fall between 1 and 0: 1 > at_risk > dormant > churned > 0",
                ));
            }
        }
        Ok(())
    }

    fn limits(&self, tz: Tz, orders: &[DateTime<Utc>]) -> Limits {
        let fixed = Limits {
            at_risk: f64::from(self.at_risk_days),
            dormant: f64::from(self.dormant_days),
            churned: f64::from(self.churned_days),
        };
        match &self.scaling {
            Scaling::PurchaseInterval { at_risk, dormant, churned, min_orders }
                if orders.len() >= *min_orders as usize =>
            {
                let span = (orders[orders.len() - 1] - orders[0]).num_seconds() as f64 / 86_400.0;
                let mean = span / (orders.len() - 1) as f64;
                let f = |x: &Decimal| (mean * x.to_f64().unwrap_or(1.0)).max(1.0);
                Limits { at_risk: f(at_risk), dormant: f(dormant), churned: f(churned) }
            }
            Scaling::PAlive { r, alpha, a, b, period_days, at_risk, dormant, churned } if orders.len() >= 2 => {
                let (repeat_days, span_days) = purchase_days(tz, orders);
                if repeat_days == 0 {
                    return fixed;
                }
                let model = BgNbd { r: *r, alpha: *alpha, a: *a, b: *b };
                let x = repeat_days as f64;
                let t_x = span_days as f64 / period_days;
                // Days from the last purchase day to where P(alive) falls to `p`.
                let f = |p: &f64| {
                    // Validated: a probability in (0, 1); x >= 1.
                    let t = model.alive_until(x, t_x, *p).ok().flatten().unwrap_or(t_x);
                    ((t - t_x) * period_days).max(1.0)
                };
                Limits { at_risk: f(at_risk), dormant: f(dormant), churned: f(churned) }
            }
            _ => fixed,
        }
    }

    /// The stage at `t` given the paid order times up to `t` (sorted).
    pub fn stage_at(&self, tz: Tz, orders: &[DateTime<Utc>], t: DateTime<Utc>) -> Stage {
        let n = orders.partition_point(|o| *o <= t);
        Marks::new(self, tz, &orders[..n]).map_or(Stage::Prospect, |m| m.stage(t))
    }

    /// The next instant after `t` at which the stage changes if no order
    /// comes, and the stage it changes to.
    pub fn next_change(&self, tz: Tz, orders: &[DateTime<Utc>], t: DateTime<Utc>) -> Option<(DateTime<Utc>, Stage)> {
        let n = orders.partition_point(|o| *o <= t);
        Marks::new(self, tz, &orders[..n])?.next_change(t)
    }

    /// Why a member is in `stage` (for the transition record).
    pub fn reason(&self, tz: Tz, stage: Stage, orders: &[DateTime<Utc>], t: DateTime<Utc>) -> String {
        let n = orders.partition_point(|o| *o <= t);
        let lim = self.limits(tz, &orders[..n]);
        match stage {
            Stage::Prospect => "no paid order".into(),
            Stage::New => "first order".into(),
            Stage::Active => "ordered recently".into(),
            Stage::Reactivated => "ordered again after a long gap".into(),
            Stage::AtRisk => format!("no order for {} days", lim.at_risk.round()),
            Stage::Dormant => format!("no order for {} days", lim.dormant.round()),
            Stage::Churned => format!("no order for {} days", lim.churned.round()),
        }
    }
}

/// Repeat purchase days and the days from the first purchase day to the
/// last, in `tz`, of sorted order times: the frequency and recency of the
/// value models ([`crate::analytics::summary`]), which count several orders
/// on one day as one transaction.
///
/// Two orders more than 48 hours apart fall on different local days in any
/// zone (no offset has changed by a day backwards since tz records begin),
/// so only closer neighbours are converted: a member's orders are mostly
/// days apart, and this runs each time the member's stage is looked at.
fn purchase_days(tz: Tz, orders: &[DateTime<Utc>]) -> (u64, i64) {
    let (Some(&first), Some(&last)) = (orders.first(), orders.last()) else { return (0, 0) };
    let far = chrono::Duration::hours(48);
    let repeat =
        orders.windows(2).filter(|w| w[1] - w[0] > far || local_date(tz, w[0]) != local_date(tz, w[1])).count() as u64;
    (repeat, (local_date(tz, last) - local_date(tz, first)).num_days())
}

/// The instants at which a member's stage can change, given the paid orders
/// so far (none after the instants asked about). Each is a time-zone
/// conversion, so each is computed at most once and only when asked:
/// `stage` usually needs one to three of them, `next_change` all of them
/// (once, however many candidates it tries).
struct Marks<'a> {
    cfg: &'a LifecycleConfig,
    tz: Tz,
    orders: &'a [DateTime<Utc>],
    /// Time of the last order: before it nothing here applies.
    last: DateTime<Utc>,
    lim: Limits,
    /// `at_risk <= dormant <= churned` is known without computing them:
    /// the limits grow (validated) and are whole days, which
    /// [`add_local_days`] keeps in order. (A fraction of a day is added in
    /// seconds, which across a DST change can overtake the next whole day.)
    ordered: bool,
    new_until: OnceCell<DateTime<Utc>>,
    /// Whether the last order came after a gap of at least the dormant limit.
    returned: OnceCell<bool>,
    reactivated_until: OnceCell<DateTime<Utc>>,
    at_risk: OnceCell<DateTime<Utc>>,
    dormant: OnceCell<DateTime<Utc>>,
    churned: OnceCell<DateTime<Utc>>,
}

impl<'a> Marks<'a> {
    fn new(cfg: &'a LifecycleConfig, tz: Tz, orders: &'a [DateTime<Utc>]) -> Option<Marks<'a>> {
        let &last = orders.last()?;
        let lim = cfg.limits(tz, orders);
        let whole = |d: f64| d.fract() == 0.0;
        Some(Marks {
            cfg,
            tz,
            orders,
            last,
            lim,
            ordered: whole(lim.at_risk) && whole(lim.dormant) && whole(lim.churned),
            new_until: OnceCell::new(),
            returned: OnceCell::new(),
            reactivated_until: OnceCell::new(),
            at_risk: OnceCell::new(),
            dormant: OnceCell::new(),
            churned: OnceCell::new(),
        })
    }

    fn new_until(&self) -> DateTime<Utc> {
        *self.new_until.get_or_init(|| add_local_days(self.tz, self.orders[0], self.cfg.new_days))
    }

    fn returned(&self) -> bool {
        *self.returned.get_or_init(|| {
            let n = self.orders.len();
            n >= 2 && {
                let before = &self.orders[..n - 1];
                self.last >= add_days(self.tz, before[n - 2], self.cfg.limits(self.tz, before).dormant)
            }
        })
    }

    fn reactivated_until(&self) -> DateTime<Utc> {
        *self.reactivated_until.get_or_init(|| add_local_days(self.tz, self.last, self.cfg.reactivated_days))
    }

    fn at_risk(&self) -> DateTime<Utc> {
        *self.at_risk.get_or_init(|| add_days(self.tz, self.last, self.lim.at_risk))
    }

    fn dormant(&self) -> DateTime<Utc> {
        *self.dormant.get_or_init(|| add_days(self.tz, self.last, self.lim.dormant))
    }

    fn churned(&self) -> DateTime<Utc> {
        *self.churned.get_or_init(|| add_days(self.tz, self.last, self.lim.churned))
    }

    /// The first instant after `t` (at or after the last order) where the
    /// stage changes: the earliest mark after `t` with another stage.
    fn next_change(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, Stage)> {
        let now = self.stage(t);
        let first_change = |candidates: &mut [DateTime<Utc>]| {
            candidates.sort();
            candidates.iter().filter(|c| **c > t).map(|&c| (c, self.stage(c))).find(|(_, s)| *s != now)
        };
        if self.ordered && t < self.at_risk() {
            // Not inactive yet: the member is at risk by `at_risk` at the
            // latest (a stage other than `now`), so the later marks cannot
            // come first and are not computed.
            first_change(&mut [self.new_until(), self.reactivated_until(), self.at_risk()])
        } else {
            first_change(&mut [
                self.new_until(),
                self.reactivated_until(),
                self.at_risk(),
                self.dormant(),
                self.churned(),
            ])
        }
    }

    /// The stage at `t` (not before the last order).
    fn stage(&self, t: DateTime<Utc>) -> Stage {
        debug_assert!(t >= self.last);
        // Before `at_risk`, when the marks are ordered, the later two need
        // not be computed: the member is not inactive.
        let inactive = !(self.ordered && t < self.at_risk());
        if inactive && t >= self.churned() {
            Stage::Churned
        } else if inactive && t >= self.dormant() {
            Stage::Dormant
        } else if t >= self.at_risk() {
            Stage::AtRisk
        } else if t < self.new_until() {
            Stage::New
        } else if self.returned() && t < self.reactivated_until() {
            Stage::Reactivated
        } else {
            Stage::Active
        }
    }
}

/// `t` plus a possibly fractional number of days: whole local days, then
/// the fraction as elapsed time.
fn add_days(tz: Tz, t: DateTime<Utc>, days: f64) -> DateTime<Utc> {
    let whole = days.floor().clamp(0.0, 1_000_000.0);
    let at = add_local_days(tz, t, whole as u32);
    // Whole days (every fixed threshold) need no seconds added.
    match ((days - whole) * 86_400.0).round() as i64 {
        0 => at,
        seconds => at + chrono::Duration::seconds(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::utc;

    #[test]
    fn stages_follow_days_since_last_order() {
        let c = LifecycleConfig::default();
        let tz = Tz::UTC;
        let o = [utc("2024-01-01T12:00:00Z")];
        assert_eq!(c.stage_at(tz, &[], utc("2024-01-01T00:00:00Z")), Stage::Prospect);
        assert_eq!(c.stage_at(tz, &o, utc("2024-01-30T12:00:00Z")), Stage::New);
        assert_eq!(c.stage_at(tz, &o, utc("2024-01-31T12:00:00Z")), Stage::Active);
        assert_eq!(c.stage_at(tz, &o, utc("2024-03-01T11:59:59Z")), Stage::Active);
        assert_eq!(c.stage_at(tz, &o, utc("2024-03-01T12:00:00Z")), Stage::AtRisk);
        assert_eq!(
            c.next_change(tz, &o, utc("2024-01-01T12:00:00Z")),
            Some((utc("2024-01-31T12:00:00Z"), Stage::Active))
        );
        assert_eq!(
            c.next_change(tz, &o, utc("2024-01-31T12:00:00Z")),
            Some((utc("2024-03-01T12:00:00Z"), Stage::AtRisk))
        );
        let back = [o[0], utc("2024-06-01T00:00:00Z")];
        assert_eq!(c.stage_at(tz, &back, utc("2024-06-02T00:00:00Z")), Stage::Reactivated);
        assert_eq!(c.stage_at(tz, &back, utc("2024-07-01T00:00:00Z")), Stage::Active);
        assert_eq!(c.stage_at(tz, &o, utc("2024-12-31T12:00:00Z")), Stage::Churned);
    }

    /// The shortcuts taken when the marks are known to be ordered give the
    /// stages and changes of computing every mark, in zones with and
    /// without DST, with fixed and personal (fractional) thresholds.
    #[test]
    fn ordered_marks_shortcut_changes_nothing() {
        use proptest::prelude::*;
        let zones = [Tz::UTC, Tz::America__New_York, Tz::Europe__London, Tz::Asia__Shanghai, Tz::Australia__Lord_Howe];
        let config = (1u32..60, 1u32..100, 1u32..100, 1u32..200, 1u32..60, 0u8..3, 1u32..40);
        let orders = proptest::collection::vec(0i64..1_500 * 86_400, 1..8);
        let runner_config = ProptestConfig { cases: 2_000, ..ProptestConfig::default() };
        proptest!(runner_config, |(c in config, zone in 0..zones.len(), mut offsets in orders, after in 0i64..800 * 86_400)| {
            let (new_days, gap1, gap2, gap3, reactivated_days, scaled, factor) = c;
            let cfg = LifecycleConfig {
                new_days,
                at_risk_days: gap1,
                dormant_days: gap1 + gap2,
                churned_days: gap1 + gap2 + gap3,
                reactivated_days,
                scaling: match scaled {
                    0 => Scaling::Fixed,
                    1 => Scaling::PurchaseInterval {
                        at_risk: Decimal::new(i64::from(factor), 1),
                        dormant: Decimal::new(i64::from(factor) + 7, 1),
                        churned: Decimal::new(i64::from(factor) + 15, 1),
                        min_orders: 2,
                    },
                    _ => Scaling::PAlive {
                        r: 0.243, alpha: 4.414, a: 0.793, b: 2.426, period_days: 7.0,
                        at_risk: 0.9 - f64::from(factor) / 100.0,
                        dormant: 0.45 - f64::from(factor) / 100.0,
                        churned: 0.05,
                    },
                },
            };
            cfg.validate().unwrap();
            offsets.sort_unstable();
            let start = utc("2021-01-01T00:00:00Z");
            let orders: Vec<_> = offsets.iter().map(|s| start + chrono::Duration::seconds(*s)).collect();
            let t = *orders.last().unwrap() + chrono::Duration::seconds(after);
            let tz = zones[zone];
            let fast = Marks::new(&cfg, tz, &orders).unwrap();
            let mut full = Marks::new(&cfg, tz, &orders).unwrap();
            full.ordered = false;
            prop_assert_eq!(fast.stage(t), full.stage(t));
            prop_assert_eq!(fast.next_change(t), full.next_change(t));
            prop_assert_eq!(fast.next_change(*orders.last().unwrap()), full.next_change(*orders.last().unwrap()));
        });
    }

    /// The 48-hour shortcut of [`purchase_days`] counts what converting
    /// every order counts: distinct local days, in zones with DST (Lord
    /// Howe's is half an hour) and without, with orders close enough that
    /// many share a day.
    #[test]
    fn purchase_days_are_distinct_local_days() {
        use proptest::prelude::*;
        let zones =
            [Tz::UTC, Tz::America__New_York, Tz::Asia__Shanghai, Tz::Australia__Lord_Howe, Tz::Pacific__Kiritimati];
        let orders = proptest::collection::vec(0i64..20 * 86_400, 1..12);
        proptest!(ProptestConfig { cases: 2_000, ..ProptestConfig::default() }, |(zone in 0..zones.len(), mut offsets in orders, start in 0i64..400)| {
            offsets.sort_unstable();
            // Around the DST changes of the zones' years.
            let base = utc("2024-03-01T00:00:00Z") + chrono::Duration::days(start);
            let orders: Vec<_> = offsets.iter().map(|s| base + chrono::Duration::seconds(*s)).collect();
            let tz = zones[zone];
            let mut days: Vec<_> = orders.iter().map(|o| local_date(tz, *o)).collect();
            days.dedup();
            let span = (days[days.len() - 1] - days[0]).num_days();
            prop_assert_eq!(purchase_days(tz, &orders), (days.len() as u64 - 1, span));
        });
    }

    #[test]
    fn p_alive_counts_the_orders_of_one_day_once() {
        let c = cdnow_p_alive();
        let weekly: Vec<_> = (0..6).map(|w| utc("2024-01-01T00:00:00Z") + chrono::Duration::weeks(w)).collect();
        // Two more orders on days already bought on: the same purchase days.
        let mut busy = weekly.clone();
        busy.extend([utc("2024-01-15T10:00:00Z"), utc("2024-01-22T23:59:59Z")]);
        busy.sort();
        assert_eq!(c.limits(Tz::UTC, &busy), c.limits(Tz::UTC, &weekly));
        // Two orders on one day: no repeat day, so the fixed thresholds.
        let one_day = [utc("2024-01-01T00:00:00Z"), utc("2024-01-01T15:00:00Z")];
        let fixed = LifecycleConfig::default().limits(Tz::UTC, &one_day);
        assert_eq!(c.limits(Tz::UTC, &one_day), fixed);
        // ... which are two days in Shanghai (08:00 and 23:00, then 01:00 the next day).
        let shanghai = [utc("2024-01-01T00:00:00Z"), utc("2024-01-01T17:00:00Z")];
        assert_eq!(c.limits(Tz::UTC, &shanghai), fixed);
        assert_ne!(c.limits(Tz::Asia__Shanghai, &shanghai), fixed);
        assert_eq!(purchase_days(Tz::Asia__Shanghai, &shanghai), (1, 1));
    }

    /// CDNOW's published BG/NBD estimates (weeks).
    fn cdnow_p_alive() -> LifecycleConfig {
        LifecycleConfig {
            scaling: Scaling::PAlive {
                r: 0.243,
                alpha: 4.414,
                a: 0.793,
                b: 2.426,
                period_days: 7.0,
                at_risk: 0.6,
                dormant: 0.3,
                churned: 0.1,
            },
            ..LifecycleConfig::default()
        }
    }

    #[test]
    fn p_alive_thresholds_fall_where_the_model_says() {
        let c = cdnow_p_alive();
        c.validate().unwrap();
        let model = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };
        let weekly: Vec<_> = (0..6).map(|w| utc("2024-01-01T00:00:00Z") + chrono::Duration::weeks(w)).collect();
        let Scaling::PAlive { .. } = c.scaling else { unreachable!() };
        let lim = c.limits(Tz::UTC, &weekly);
        // At each threshold the model's P(alive) is the level asked for.
        let (x, t_x) = (5.0, 5.0);
        for (days, p) in [(lim.at_risk, 0.6), (lim.dormant, 0.3), (lim.churned, 0.1)] {
            assert!((model.p_alive(x, t_x, t_x + days / 7.0) - p).abs() < 1e-9, "{days} days: {p}");
        }
        // A weekly buyer lapses sooner than a monthly one with as many orders.
        let monthly: Vec<_> = (0..6).map(|m| utc("2024-01-01T00:00:00Z") + chrono::Duration::days(30 * m)).collect();
        assert!(lim.at_risk < c.limits(Tz::UTC, &monthly).at_risk);
        let at_risk = add_days(Tz::UTC, weekly[5], lim.at_risk);
        assert_eq!(c.stage_at(Tz::UTC, &weekly, at_risk - chrono::Duration::seconds(1)), Stage::Active);
        assert_eq!(c.stage_at(Tz::UTC, &weekly, at_risk), Stage::AtRisk);
        assert_eq!(
            c.next_change(Tz::UTC, &weekly, weekly[5] + chrono::Duration::days(1)),
            Some((at_risk, Stage::AtRisk))
        );
        // One order: the model never lets go, so the fixed 60 days apply.
        let once = [weekly[0]];
        assert_eq!(c.stage_at(Tz::UTC, &once, utc("2024-03-01T00:00:00Z")), Stage::AtRisk);
        assert_eq!(c.stage_at(Tz::UTC, &once, utc("2024-02-29T23:59:59Z")), Stage::Active);
    }

    #[test]
    fn p_alive_thresholds_are_checked() {
        let with = |f: &dyn Fn(&mut Scaling)| {
            let mut c = cdnow_p_alive();
            f(&mut c.scaling);
            c.validate().map_err(|e| e.field().map(str::to_string))
        };
        assert!(with(&|_| {}).is_ok());
        let set_alpha = |s: &mut Scaling| {
            if let Scaling::PAlive { alpha, .. } = s {
                *alpha = 0.0;
            }
        };
        assert_eq!(with(&set_alpha), Err(Some("lifecycle.scaling.alpha".into())));
        let swap = |s: &mut Scaling| {
            if let Scaling::PAlive { dormant, .. } = s {
                *dormant = 0.7;
            }
        };
        assert_eq!(with(&swap), Err(Some("lifecycle.scaling".into())));
        let nan = |s: &mut Scaling| {
            if let Scaling::PAlive { period_days, .. } = s {
                *period_days = f64::NAN;
            }
        };
        assert_eq!(with(&nan), Err(Some("lifecycle.scaling.period_days".into())));
    }

    #[test]
    fn personal_interval_scales_thresholds() {
        let c = LifecycleConfig {
            scaling: Scaling::PurchaseInterval {
                at_risk: Decimal::from(2),
                dormant: Decimal::from(4),
                churned: Decimal::from(8),
                min_orders: 3,
            },
            ..LifecycleConfig::default()
        };
        // Weekly buyer: at risk 14 days after the last order.
        let o = [utc("2024-01-01T00:00:00Z"), utc("2024-01-08T00:00:00Z"), utc("2024-01-15T00:00:00Z")];
        assert_eq!(c.stage_at(Tz::UTC, &o, utc("2024-01-28T23:59:59Z")), Stage::New);
        assert_eq!(c.stage_at(Tz::UTC, &o, utc("2024-01-29T00:00:00Z")), Stage::AtRisk);
    }
}
