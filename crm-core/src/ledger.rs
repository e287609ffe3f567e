//! The point ledger (积分): lots, their consumption order, balances and expiry.
//!
//! Earned points form *lots*. A lot is pending until `available_at` and
//! expired from `expires_at` on; in between it is spendable. Spending takes
//! lots soonest-expiry first (never-expiring lots last, then oldest first) and
//! records exactly which lots it took, so a reversal can put points back.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::program::ExpiryPolicy;
use crate::time::{first_of_month_after, local_date, start_of_day};

/// Where a lot came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LotSource {
    /// Earned on an order by an earn rule.
    Order { order_id: String, rule_id: String },
    /// A fixed action bonus; `order_id` names the order that triggered it
    /// (first-order bonus), so a full refund or cancellation can claw it back.
    Bonus {
        bonus_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order_id: Option<String>,
    },
    /// A manual adjustment.
    Adjustment,
    /// Points put back by a reversed redemption whose lot no longer exists.
    Restored,
}

/// A lot of earned points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// Unique within the member (`L1`, `L2`, …; merged lots are renumbered).
    pub id: String,
    pub point_type: String,
    /// Points granted; never changes.
    pub granted: i64,
    /// Points still open; `0 <= remaining <= granted`.
    pub remaining: i64,
    pub earned_at: DateTime<Utc>,
    pub available_at: DateTime<Utc>,
    /// First instant at which the lot is expired; `None` never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub source: LotSource,
    /// False for a lot earned with a pending period until `run_due` reports it
    /// as activated.
    pub activated: bool,
}

/// State of a lot at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LotPhase {
    Pending,
    Available,
    Expired,
}

impl Lot {
    /// Phase at `t`.
    pub fn phase(&self, t: DateTime<Utc>) -> LotPhase {
        if self.expires_at.is_some_and(|e| e <= t) {
            LotPhase::Expired
        } else if self.available_at > t {
            LotPhase::Pending
        } else {
            LotPhase::Available
        }
    }
}

/// Points taken from (or put back into) one lot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub lot_id: String,
    pub points: i64,
    /// The lot's expiry, so a reversal can restore a lot that was merged away.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Available and pending points of one type at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Balance {
    /// Spendable now (open, available lots minus any negative balance).
    pub available: i64,
    /// Earned but still in the pending period.
    pub pending: i64,
    /// Negative balance carried after a clawback of spent points.
    pub debt: i64,
}

impl Balance {
    /// Available plus pending.
    pub fn total(&self) -> i64 {
        self.available + self.pending
    }
}

/// Balance of `point_type` over `lots` at `t`, less `debt`.
pub fn balance<'a>(lots: impl IntoIterator<Item = &'a Lot>, point_type: &str, debt: i64, t: DateTime<Utc>) -> Balance {
    let mut b = Balance { debt, ..Balance::default() };
    for lot in lots.into_iter().filter(|l| l.point_type == point_type) {
        match lot.phase(t) {
            LotPhase::Available => b.available += lot.remaining,
            LotPhase::Pending => b.pending += lot.remaining,
            LotPhase::Expired => {}
        }
    }
    b.available -= debt;
    b
}

/// Order in which lots are spent: soonest expiry first, never-expiring last,
/// then oldest, then by id for determinism.
fn spend_order(a: &Lot, b: &Lot) -> std::cmp::Ordering {
    let key = |l: &Lot| (l.expires_at.is_none(), l.expires_at, l.earned_at, l.id.len(), l.id.clone());
    key(a).cmp(&key(b))
}

/// Choose lots to take up to `points` from the lots of `point_type` available
/// at `t`. Returns the allocations and the points actually found.
pub fn allocate<'a>(
    lots: impl IntoIterator<Item = &'a Lot>,
    point_type: &str,
    points: i64,
    t: DateTime<Utc>,
) -> (Vec<Allocation>, i64) {
    let mut open: Vec<&Lot> = lots
        .into_iter()
        .filter(|l| l.point_type == point_type && l.remaining > 0 && l.phase(t) == LotPhase::Available)
        .collect();
    open.sort_by(|a, b| spend_order(a, b));
    take(open, points)
}

/// Take up to `points` from the given lots in the given order.
pub fn take<'a>(lots: impl IntoIterator<Item = &'a Lot>, points: i64) -> (Vec<Allocation>, i64) {
    let mut need = points;
    let mut out = Vec::new();
    for lot in lots {
        if need == 0 {
            break;
        }
        let n = lot.remaining.min(need);
        if n > 0 {
            out.push(Allocation { lot_id: lot.id.clone(), points: n, expires_at: lot.expires_at });
            need -= n;
        }
    }
    (out, points - need)
}

/// Expiry instant of a lot earned at `earned_at` under `policy`.
/// `last_activity` is used by the inactivity policy.
pub fn expires_at(
    policy: ExpiryPolicy,
    tz: Tz,
    earned_at: DateTime<Utc>,
    last_activity: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match policy {
        ExpiryPolicy::None => None,
        ExpiryPolicy::DaysAfterEarning { days } => {
            let d = local_date(tz, earned_at) + chrono::Days::new(u64::from(days) + 1);
            Some(start_of_day(tz, d))
        }
        ExpiryPolicy::EndOfNthMonth { months } => {
            Some(start_of_day(tz, first_of_month_after(local_date(tz, earned_at), months + 1)))
        }
        ExpiryPolicy::EndOfFollowingYear => {
            let y = chrono::Datelike::year(&local_date(tz, earned_at));
            Some(start_of_day(tz, chrono::NaiveDate::from_ymd_opt(y + 2, 1, 1).expect("valid date")))
        }
        ExpiryPolicy::Inactivity { days } => {
            let d = local_date(tz, last_activity.max(earned_at)) + chrono::Days::new(u64::from(days) + 1);
            Some(start_of_day(tz, d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sh, utc};

    #[test]
    fn days_after_earning_ends_at_local_midnight() {
        // Earned 23:30 local on 31 Jan 2024 (15:30Z); 30 days -> valid through 1 March.
        let e = expires_at(
            ExpiryPolicy::DaysAfterEarning { days: 30 },
            sh(),
            utc("2024-01-31T15:30:00Z"),
            utc("2024-01-31T15:30:00Z"),
        );
        assert_eq!(e, Some(utc("2024-03-01T16:00:00Z")));
    }

    #[test]
    fn end_of_month_handles_leap_february() {
        let e = expires_at(
            ExpiryPolicy::EndOfNthMonth { months: 0 },
            sh(),
            utc("2024-02-29T03:00:00Z"),
            utc("2024-02-29T03:00:00Z"),
        );
        assert_eq!(e, Some(utc("2024-02-29T16:00:00Z")));
        let e = expires_at(
            ExpiryPolicy::EndOfNthMonth { months: 12 },
            sh(),
            utc("2024-02-29T03:00:00Z"),
            utc("2024-02-29T03:00:00Z"),
        );
        assert_eq!(e, Some(utc("2025-02-28T16:00:00Z")));
    }

    #[test]
    fn end_of_following_year_uses_local_year() {
        // 31 Dec 2023 20:00Z is already 1 Jan 2024 in Shanghai.
        let e = expires_at(
            ExpiryPolicy::EndOfFollowingYear,
            sh(),
            utc("2023-12-31T20:00:00Z"),
            utc("2023-12-31T20:00:00Z"),
        );
        assert_eq!(e, Some(utc("2025-12-31T16:00:00Z")));
    }

    #[test]
    fn inactivity_counts_from_last_activity() {
        let e = expires_at(
            ExpiryPolicy::Inactivity { days: 10 },
            Tz::UTC,
            utc("2024-01-01T10:00:00Z"),
            utc("2024-01-05T10:00:00Z"),
        );
        assert_eq!(e, Some(utc("2024-01-16T00:00:00Z")));
    }

    fn lot(id: &str, remaining: i64, avail: &str, exp: Option<&str>) -> Lot {
        Lot {
            id: id.into(),
            point_type: "reward".into(),
            granted: remaining,
            remaining,
            earned_at: utc("2024-01-01T00:00:00Z"),
            available_at: utc(avail),
            expires_at: exp.map(utc),
            source: LotSource::Adjustment,
            activated: true,
        }
    }

    #[test]
    fn phase_boundaries_are_half_open() {
        let l = lot("L", 10, "2024-03-01T00:00:00Z", Some("2024-03-31T16:00:00Z"));
        let ns = chrono::Duration::nanoseconds(1);
        assert_eq!(l.phase(utc("2024-03-01T00:00:00Z") - ns), LotPhase::Pending);
        assert_eq!(l.phase(utc("2024-03-01T00:00:00Z")), LotPhase::Available);
        assert_eq!(l.phase(utc("2024-03-31T16:00:00Z") - ns), LotPhase::Available);
        assert_eq!(l.phase(utc("2024-03-31T16:00:00Z")), LotPhase::Expired);
        // Expiry wins over pending: a lot can expire before it ever became available.
        let l = lot("L", 10, "2024-05-01T00:00:00Z", Some("2024-04-01T00:00:00Z"));
        assert_eq!(l.phase(utc("2024-04-15T00:00:00Z")), LotPhase::Expired);
    }

    #[test]
    fn days_after_earning_counts_the_local_day_earned_around_midnight() {
        // Earned at exactly local midnight (1 March 00:00 Shanghai): valid through 2 March.
        let at = utc("2024-02-29T16:00:00Z");
        let e = expires_at(ExpiryPolicy::DaysAfterEarning { days: 1 }, sh(), at, at);
        assert_eq!(e, Some(utc("2024-03-02T16:00:00Z")));
        // One second earlier it is still 29 February: valid through 1 March.
        let at = utc("2024-02-29T15:59:59Z");
        let e = expires_at(ExpiryPolicy::DaysAfterEarning { days: 1 }, sh(), at, at);
        assert_eq!(e, Some(utc("2024-03-01T16:00:00Z")));
    }

    #[test]
    fn days_after_earning_ends_at_local_midnight_across_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // Earned 30 March (CET); valid through 31 March, ends at midnight CEST.
        let at = utc("2024-03-30T12:00:00Z");
        let e = expires_at(ExpiryPolicy::DaysAfterEarning { days: 1 }, berlin, at, at);
        assert_eq!(e, Some(utc("2024-03-31T22:00:00Z")));
        // Earned 26 October (CEST); valid through 27 October, ends at midnight CET.
        let at = utc("2024-10-26T12:00:00Z");
        let e = expires_at(ExpiryPolicy::DaysAfterEarning { days: 1 }, berlin, at, at);
        assert_eq!(e, Some(utc("2024-10-27T23:00:00Z")));
    }

    #[test]
    fn end_of_nth_month_from_month_ends() {
        // 31 January + 1 month: valid through 29 February 2024 (leap year) ...
        let at = utc("2024-01-31T10:00:00Z");
        let e = expires_at(ExpiryPolicy::EndOfNthMonth { months: 1 }, sh(), at, at);
        assert_eq!(e, Some(utc("2024-02-29T16:00:00Z")));
        // ... and through 28 February 2025.
        let at = utc("2025-01-31T10:00:00Z");
        let e = expires_at(ExpiryPolicy::EndOfNthMonth { months: 1 }, sh(), at, at);
        assert_eq!(e, Some(utc("2025-02-28T16:00:00Z")));
        // 31 January 23:30 local is still January; 00:30 on 1 February is not.
        let e = expires_at(ExpiryPolicy::EndOfNthMonth { months: 0 }, sh(), utc("2024-01-31T15:30:00Z"), at);
        assert_eq!(e, Some(utc("2024-01-31T16:00:00Z")));
        let e = expires_at(ExpiryPolicy::EndOfNthMonth { months: 0 }, sh(), utc("2024-01-31T16:30:00Z"), at);
        assert_eq!(e, Some(utc("2024-02-29T16:00:00Z")));
    }

    #[test]
    fn end_of_following_year_from_a_leap_day() {
        let at = utc("2024-02-29T03:00:00Z");
        let e = expires_at(ExpiryPolicy::EndOfFollowingYear, sh(), at, at);
        assert_eq!(e, Some(utc("2025-12-31T16:00:00Z")));
        assert_eq!(expires_at(ExpiryPolicy::None, sh(), at, at), None);
    }

    #[test]
    fn inactivity_never_counts_from_before_the_lot_was_earned() {
        // A stale last activity does not shorten a new lot's life.
        let e = expires_at(
            ExpiryPolicy::Inactivity { days: 10 },
            Tz::UTC,
            utc("2024-02-20T10:00:00Z"),
            utc("2024-01-01T10:00:00Z"),
        );
        assert_eq!(e, Some(utc("2024-03-02T00:00:00Z"))); // 20 Feb + 10 days, through 1 March (leap year)
    }

    #[test]
    fn balance_subtracts_debt_from_available_only() {
        let lots = vec![
            lot("A", 30, "2024-01-01T00:00:00Z", None),
            lot("P", 20, "2024-02-01T00:00:00Z", None),
            lot("E", 50, "2024-01-01T00:00:00Z", Some("2024-01-05T00:00:00Z")),
        ];
        let b = balance(&lots, "reward", 40, utc("2024-01-10T00:00:00Z"));
        assert_eq!(b, Balance { available: -10, pending: 20, debt: 40 });
        assert_eq!(b.total(), 10);
        assert_eq!(balance(&lots, "growth", 0, utc("2024-01-10T00:00:00Z")), Balance::default());
    }

    #[test]
    fn allocation_of_zero_or_more_than_available() {
        let lots = vec![lot("A", 30, "2024-01-01T00:00:00Z", None), lot("B", 5, "2024-01-01T00:00:00Z", None)];
        let t = utc("2024-01-10T00:00:00Z");
        assert_eq!(allocate(&lots, "reward", 0, t), (vec![], 0));
        let (alloc, got) = allocate(&lots, "reward", 100, t);
        assert_eq!(got, 35);
        assert_eq!(alloc.iter().map(|a| a.points).sum::<i64>(), 35);
        // Ties on expiry and earning time fall back to the id, shortest first.
        let ids: Vec<_> = alloc.iter().map(|a| a.lot_id.as_str()).collect();
        assert_eq!(ids, vec!["A", "B"]);
    }

    #[test]
    fn allocation_takes_soonest_expiry_first_and_skips_pending() {
        let lot = |id: &str, rem: i64, avail: &str, exp: Option<&str>| Lot {
            id: id.into(),
            point_type: "reward".into(),
            granted: rem,
            remaining: rem,
            earned_at: utc("2024-01-01T00:00:00Z"),
            available_at: utc(avail),
            expires_at: exp.map(utc),
            source: LotSource::Adjustment,
            activated: true,
        };
        let lots = vec![
            lot("L1", 50, "2024-01-01T00:00:00Z", None),
            lot("L2", 30, "2024-01-01T00:00:00Z", Some("2024-06-01T00:00:00Z")),
            lot("L3", 20, "2024-01-01T00:00:00Z", Some("2024-03-01T00:00:00Z")),
            lot("L4", 99, "2024-05-01T00:00:00Z", Some("2024-02-01T00:00:00Z")),
        ];
        let (alloc, got) = allocate(&lots, "reward", 60, utc("2024-01-10T00:00:00Z"));
        assert_eq!(got, 60);
        let ids: Vec<_> = alloc.iter().map(|a| (a.lot_id.as_str(), a.points)).collect();
        assert_eq!(ids, vec![("L3", 20), ("L2", 30), ("L1", 10)]);
        let b = balance(&lots, "reward", 0, utc("2024-01-10T00:00:00Z"));
        assert_eq!((b.available, b.pending), (100, 99));
    }
}
