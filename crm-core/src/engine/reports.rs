//! Programme reports: points liability with expiry buckets and a breakage
//! estimate, cohort retention by first-order month, repurchase rate, and
//! single- versus multi-channel members. Each is one pass over the member
//! snapshots ([`Store::inspect_all`]) as of an instant.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::error::Result;
use crate::ledger::LotPhase;
use crate::store::Store;
use crate::time::local_date;

/// Outstanding spendable points and when they expire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiabilityReport {
    pub at: DateTime<Utc>,
    /// Available and pending spendable points, net of debt.
    pub outstanding: i64,
    pub value: Decimal,
    /// Points (and their value) expiring within 30, 60 and 90 days of `at`
    /// (cumulative: the 60-day bucket includes the 30-day one).
    pub expiring: Vec<ExpiringBucket>,
    /// Lifetime totals over spendable types.
    pub earned: i64,
    pub redeemed: i64,
    pub expired: i64,
    /// `expired / (expired + redeemed)`: the share of points whose fate is
    /// known that were never used (0 when none is known yet).
    pub breakage_rate: Decimal,
    /// Outstanding points expected never to be redeemed at that rate, and
    /// their value: the liability a finance team can release.
    pub breakage_points: i64,
    pub breakage_value: Decimal,
}

/// Points expiring within `days`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpiringBucket {
    pub days: u32,
    pub points: i64,
    pub value: Decimal,
}

/// One cohort: members whose first paid order fell in `month` (programme zone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortRow {
    /// `YYYY-MM`.
    pub month: String,
    pub members: u64,
    /// `retained[k]`: members of the cohort with a paid order in the k-th
    /// month after the first (k = 0 is the first month: everyone), up to `at`.
    pub retained: Vec<u64>,
    /// `retained[k] / members`, rounded to four places.
    pub rates: Vec<Decimal>,
}

/// Buyers by how many channels they ordered through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSplit {
    pub single_channel: ChannelGroup,
    pub multi_channel: ChannelGroup,
    /// Members per channel (a member counts once per channel used).
    pub by_channel: BTreeMap<String, u64>,
}

/// Members of one channel group and their spend.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelGroup {
    pub members: u64,
    pub spend: Decimal,
    /// `spend / members`, to the cent (half-even).
    pub average_spend: Decimal,
}

/// All reports at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub at: DateTime<Utc>,
    /// Members (merged-away and erased ones not counted).
    pub members: u64,
    /// Members with at least one paid order.
    pub buyers: u64,
    /// Buyers with two or more paid orders / buyers.
    pub repurchase_rate: Decimal,
    pub liability: LiabilityReport,
    pub cohorts: Vec<CohortRow>,
    pub channels: ChannelSplit,
}

const BUCKETS: [u32; 3] = [30, 60, 90];

fn ratio(a: u64, b: u64) -> Decimal {
    if b == 0 {
        Decimal::ZERO
    } else {
        (Decimal::from(a) / Decimal::from(b)).round_dp(4)
    }
}

fn month_index(d: chrono::NaiveDate) -> i32 {
    d.year() * 12 + d.month0() as i32
}

impl<S: Store> Engine<S> {
    /// Every report at `at`: members, repurchase rate, liability with
    /// expiry buckets and breakage, cohort retention, channel split.
    pub fn report(&self, at: DateTime<Utc>) -> Result<Report> {
        let program = &self.program;
        let tz = program.timezone;
        let spendable: BTreeSet<&str> =
            program.point_types.iter().filter(|t| t.spendable).map(|t| t.id.as_str()).collect();
        let (mut members, mut buyers, mut repeaters) = (0u64, 0u64, 0u64);
        let (mut outstanding, mut earned, mut redeemed, mut expired) = (0i64, 0i64, 0i64, 0i64);
        let mut expiring = [0i64; BUCKETS.len()];
        let mut cohorts: BTreeMap<i32, (u64, BTreeMap<i32, u64>)> = BTreeMap::new();
        let (mut single, mut multi) = (ChannelGroup::default(), ChannelGroup::default());
        let mut by_channel: BTreeMap<String, u64> = BTreeMap::new();
        self.store.inspect_all(&mut |st| {
            if !st.is_active() || st.created_at > at {
                return Ok(());
            }
            members += 1;
            for pt in &spendable {
                let b = st.balance(pt, at);
                outstanding += b.available + b.pending - b.debt;
                if let Some(t) = st.totals.get(*pt) {
                    earned += t.earned;
                    redeemed += t.redeemed;
                    expired += t.expired;
                }
                for l in st.lots.iter().filter(|l| l.point_type == *pt && l.phase(at) != LotPhase::Expired) {
                    if let Some(e) = l.expires_at {
                        for (i, days) in BUCKETS.iter().enumerate() {
                            if e <= at + Duration::days(i64::from(*days)) {
                                expiring[i] += l.remaining;
                            }
                        }
                    }
                }
            }
            let times = st.order_times();
            let orders = &times[..times.partition_point(|t| *t <= at)];
            let Some(first) = orders.first() else { return Ok(()) };
            buyers += 1;
            if orders.len() >= 2 {
                repeaters += 1;
            }
            let m0 = month_index(local_date(tz, *first));
            let cohort = cohorts.entry(m0).or_default();
            cohort.0 += 1;
            let months: BTreeSet<i32> = orders.iter().map(|t| month_index(local_date(tz, *t)) - m0).collect();
            for k in months {
                *cohort.1.entry(k).or_insert(0) += 1;
            }
            let mut channels = BTreeSet::new();
            let mut spend = Decimal::ZERO;
            for o in st.orders.values().filter(|o| o.order.status.earns() && o.order.earned_at() <= at) {
                channels.insert(o.order.channel.clone().unwrap_or_else(|| "unknown".into()));
                spend += o.order.amount - o.refunded;
            }
            let group = if channels.len() > 1 { &mut multi } else { &mut single };
            group.members += 1;
            group.spend += spend;
            for c in channels {
                *by_channel.entry(c).or_insert(0) += 1;
            }
            Ok(())
        })?;
        for g in [&mut single, &mut multi] {
            if g.members > 0 {
                g.average_spend = (g.spend / Decimal::from(g.members)).round_dp(2);
            }
        }
        // The last column is the month of `at`, unless `at` is that month's
        // very first instant: nothing of it has happened yet, and a column of
        // zeros would read as every cohort lost.
        let local = at.with_timezone(&tz);
        let month_start = chrono::Datelike::day(&local) == 1 && local.time() == chrono::NaiveTime::MIN;
        let last = month_index(local_date(tz, at)) - i32::from(month_start);
        let cohorts = cohorts
            .into_iter()
            .map(|(m0, (n, ret))| {
                let span = (last - m0).max(0) as usize + 1;
                let retained: Vec<u64> = (0..span).map(|k| ret.get(&(k as i32)).copied().unwrap_or(0)).collect();
                let rates = retained.iter().map(|r| ratio(*r, n)).collect();
                CohortRow {
                    month: format!("{:04}-{:02}", m0.div_euclid(12), m0.rem_euclid(12) + 1),
                    members: n,
                    retained,
                    rates,
                }
            })
            .collect();
        let vpp = program.value_per_point;
        let known = expired + redeemed;
        let breakage_rate =
            if known > 0 { (Decimal::from(expired) / Decimal::from(known)).round_dp(4) } else { Decimal::ZERO };
        // Rounded down: a release of liability is never overstated.
        let breakage_points = (Decimal::from(outstanding.max(0)) * breakage_rate).floor().to_i64().unwrap_or(0);
        let liability = LiabilityReport {
            at,
            outstanding,
            value: Decimal::from(outstanding) * vpp,
            expiring: BUCKETS
                .iter()
                .zip(expiring)
                .map(|(d, p)| ExpiringBucket { days: *d, points: p, value: Decimal::from(p) * vpp })
                .collect(),
            earned,
            redeemed,
            expired,
            breakage_rate,
            breakage_points,
            breakage_value: Decimal::from(breakage_points) * vpp,
        };
        Ok(Report {
            at,
            members,
            buyers,
            repurchase_rate: ratio(repeaters, buyers),
            liability,
            cohorts,
            channels: ChannelSplit { single_channel: single, multi_channel: multi, by_channel },
        })
    }
}
