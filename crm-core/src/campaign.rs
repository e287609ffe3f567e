//! Campaign measurement: who a campaign targeted, who was held out, and what
//! the offer changed.
//!
//! A [`Campaign`] is an audience (a segment rule or a saved segment), a
//! window, an attribution period and a control group: a random hold-out
//! share assigned *deterministically* from the member id and the campaign's
//! seed ([`assignment_hash`]), so every rerun, every language and every
//! machine puts each member in the same group, and the host can ask which
//! members to send to before the campaign starts.
//!
//! The statistics are a pure core over two groups of per-member outcomes
//! ([`measure`]), testable without an engine:
//!
//! * uplift in **conversion** is a difference of proportions with Newcombe's
//!   hybrid score interval (method 10 of Newcombe 1998, built from two Wilson
//!   intervals): unlike the Wald interval it stays inside [-1, 1] and keeps
//!   its coverage for small groups and rates near 0 or 1, so it needs no
//!   continuity correction;
//! * uplift in **revenue per member** is a difference of means with Welch's
//!   interval (unequal variances, Welch–Satterthwaite degrees of freedom,
//!   Student t quantile), since revenue is skewed and the groups differ in
//!   size and spread.
//!
//! Both intervals are at 95 %. Statistics are computed in `f64` (square
//! roots and quantiles have no exact decimal form) and reported as `Decimal`
//! with explicit rounding: rates to four places, money to the currency's
//! minor unit; interval bounds are rounded *outwards* so the reported
//! interval always contains the reported estimate.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::analytics::special::ln_beta;
use crate::error::{CrmError, Result};
use crate::member::MemberId;
use crate::segment::Rule;

/// Two-sided 95 % standard normal quantile (z at 0.975).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Places of rates and proportions in reports.
const RATE_DP: u32 = 4;

/// Who a campaign is aimed at, evaluated at the campaign start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Audience {
    /// Members matching a segment rule (text or JSON form) at the start.
    Rule(Rule),
    /// Members of a saved segment (as recorded by `Engine::refresh_segment`)
    /// at the start.
    Segment(String),
}

/// What a campaign cost. Points are valued at `value_per_point` (the
/// programme's when not given).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignCost {
    /// Points promised to every treatment member (a fixed grant).
    #[serde(default)]
    pub points_per_member: i64,
    /// Count the manual adjustments with exactly this reason credited to
    /// treatment members between the start and the end of attribution (the
    /// way a host grants campaign points through `adjust`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_reason: Option<String>,
    /// Money value of one point; `None`: the programme's `value_per_point`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_per_point: Option<Decimal>,
    /// Value of the coupons redeemed under the campaign, as the host counts
    /// it (the engine has no coupons yet).
    #[serde(default)]
    pub coupon_value: Decimal,
}

/// A campaign to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    pub id: String,
    pub audience: Audience,
    /// Seed of the hold-out assignment: another seed, another random split.
    pub seed: u64,
    /// Share of the audience held out as control, in `[0, 1)`.
    pub holdout: Decimal,
    /// The campaign window `[starts_at, ends_at)`: the audience is taken at
    /// `starts_at`, the offer or outreach goes out during the window.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Orders count towards the campaign until this many local days after
    /// `ends_at` (0: the window only).
    #[serde(default)]
    pub attribution_days: u32,
    /// A converted member repurchased if they paid another order within this
    /// many local days after the converting one (`None`: any time up to the
    /// report's instant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repurchase_days: Option<u32>,
    #[serde(default)]
    pub cost: CampaignCost,
}

/// Which group a member of the audience falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Receives the offer or outreach.
    Treatment,
    /// Held out: receives nothing, measures what would have happened anyway.
    Control,
}

/// The audience split into its two groups (each sorted).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CampaignMembers {
    pub treatment: Vec<MemberId>,
    pub control: Vec<MemberId>,
}

/// Platform-stable 64-bit hash of `(seed, member id)`: FNV-1a over the seed's
/// eight little-endian bytes followed by the id's UTF-8 bytes, then the
/// MurmurHash3 `fmix64` finaliser (FNV-1a alone mixes its last bytes poorly
/// into the high bits, which decide the group). Fixed here, not borrowed from
/// `std` (whose `DefaultHasher` may change between Rust versions): the split
/// must never change under a campaign that is running.
///
/// ```
/// use crm_core::campaign::assignment_hash;
/// assert_eq!(assignment_hash(0, ""), 0x7bd3_144f_29c0_cc9e);
/// assert_eq!(assignment_hash(42, "alice"), 0xa131_bfd8_35ca_abf2);
/// assert_ne!(assignment_hash(1, "alice"), assignment_hash(2, "alice"));
/// ```
pub fn assignment_hash(seed: u64, member: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(member.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The group of `member` under `seed` and hold-out share `holdout`: the top
/// 53 bits of [`assignment_hash`] read as a fraction `u` in `[0, 1)`, held
/// out when `u < holdout`. Integer arithmetic only (`floor(holdout × 2^53)`
/// as the threshold), so it is the same on every platform.
///
/// ```
/// use crm_core::campaign::{assign, Group};
/// use rust_decimal::Decimal;
/// assert_eq!(assign(7, "alice", Decimal::ZERO), Group::Treatment);
/// assert_eq!(assign(7, "alice", Decimal::new(1, 1)), assign(7, "alice", Decimal::new(1, 1)));
/// ```
pub fn assign(seed: u64, member: &str, holdout: Decimal) -> Group {
    let u = assignment_hash(seed, member) >> 11;
    if u < threshold(holdout) {
        Group::Control
    } else {
        Group::Treatment
    }
}

fn threshold(holdout: Decimal) -> u64 {
    let scaled = holdout.max(Decimal::ZERO) * Decimal::from(1u64 << 53);
    scaled.floor().to_u64().unwrap_or(0)
}

impl Campaign {
    /// Check every field; errors name it (`campaign.holdout`, …).
    pub fn validate(&self) -> Result<()> {
        crate::facts::check_ref(&self.id, "campaign.id")?;
        if let Audience::Segment(s) = &self.audience {
            crate::facts::check_ref(s, "campaign.audience.segment")?;
        }
        if self.holdout < Decimal::ZERO || self.holdout >= Decimal::ONE {
            return Err(CrmError::invalid("campaign.holdout", "must be at least 0 and less than 1"));
        }
        if self.ends_at <= self.starts_at {
            return Err(CrmError::invalid("campaign.ends_at", "must be after starts_at"));
        }
        if self.attribution_days > 3660 {
            return Err(CrmError::invalid("campaign.attribution_days", "must be at most 3660"));
        }
        if self.repurchase_days.is_some_and(|d| d == 0 || d > 3660) {
            return Err(CrmError::invalid("campaign.repurchase_days", "must be between 1 and 3660"));
        }
        let cost = &self.cost;
        if !(0..=1_000_000_000).contains(&cost.points_per_member) {
            return Err(CrmError::invalid("campaign.cost.points_per_member", "must be between 0 and 1000000000"));
        }
        if let Some(r) = &cost.points_reason {
            if r.trim().is_empty() {
                return Err(CrmError::invalid("campaign.cost.points_reason", "must not be empty"));
            }
        }
        if cost.value_per_point.is_some_and(|v| v < Decimal::ZERO) {
            return Err(CrmError::invalid("campaign.cost.value_per_point", "must not be negative"));
        }
        if cost.coupon_value < Decimal::ZERO {
            return Err(CrmError::invalid("campaign.cost.coupon_value", "must not be negative"));
        }
        Ok(())
    }

    /// The group of `member` in this campaign.
    pub fn group(&self, member: &MemberId) -> Group {
        assign(self.seed, member.as_str(), self.holdout)
    }

    /// Split members (any order, duplicates kept once) into the two groups,
    /// each sorted: the result does not depend on the input order.
    pub fn split<'a>(&self, members: impl IntoIterator<Item = &'a MemberId>) -> CampaignMembers {
        let mut out = CampaignMembers::default();
        for m in members {
            match self.group(m) {
                Group::Treatment => out.treatment.push(m.clone()),
                Group::Control => out.control.push(m.clone()),
            }
        }
        for v in [&mut out.treatment, &mut out.control] {
            v.sort();
            v.dedup();
        }
        out
    }

    /// End of attribution (exclusive): `attribution_days` local days after
    /// `ends_at` in zone `tz`.
    pub fn attribution_end(&self, tz: Tz) -> DateTime<Utc> {
        crate::time::add_local_days(tz, self.ends_at, self.attribution_days)
    }
}

// ----- statistics ---------------------------------------------------------------

/// What one member of a group did during attribution.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Paid at least one order (net of refunds) during attribution.
    pub converted: bool,
    /// Paid order amounts during attribution, net of refunds.
    pub revenue: Decimal,
    /// Converted, then paid another order within the repurchase window.
    pub repurchased: bool,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GroupResult {
    pub members: u64,
    pub converted: u64,
    /// `converted / members`, four places (0 for an empty group).
    pub conversion_rate: Decimal,
    /// Net revenue of the group during attribution.
    pub revenue: Decimal,
    /// `revenue / members`, to the currency's minor unit (half-even).
    pub revenue_per_member: Decimal,
    pub repurchased: u64,
    /// `repurchased / converted`, four places.
    pub repurchase_rate: Decimal,
}

/// A difference treatment − control with its 95 % interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Uplift {
    pub estimate: Decimal,
    /// `None` when the interval cannot be computed (an empty group, or fewer
    /// than two members in a group for a difference of means).
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
    /// The interval excludes 0.
    pub significant: bool,
}

/// Both groups and the uplifts between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub treatment: GroupResult,
    pub control: GroupResult,
    /// Difference in conversion rate (Newcombe hybrid score interval).
    pub conversion_uplift: Uplift,
    /// Difference in revenue per member (Welch interval).
    pub revenue_uplift: Uplift,
    /// Revenue the campaign caused: the uplift per member (unrounded) times
    /// the treatment members, to the minor unit. Only the treatment group
    /// got the offer, so only it can yield incremental revenue.
    pub incremental_revenue: Decimal,
    /// Conversions the campaign caused: conversion uplift × treatment members, two places.
    pub incremental_conversions: Decimal,
}

fn ratio(a: u64, b: u64) -> Decimal {
    if b == 0 {
        Decimal::ZERO
    } else {
        (Decimal::from(a) / Decimal::from(b)).round_dp(RATE_DP)
    }
}

fn group_result(outcomes: &[Outcome], money_dp: u32) -> GroupResult {
    let members = outcomes.len() as u64;
    let converted = outcomes.iter().filter(|o| o.converted).count() as u64;
    let repurchased = outcomes.iter().filter(|o| o.converted && o.repurchased).count() as u64;
    let revenue: Decimal = outcomes.iter().map(|o| o.revenue).sum();
    let revenue_per_member =
        if members == 0 { Decimal::ZERO } else { (revenue / Decimal::from(members)).round_dp(money_dp) };
    GroupResult {
        members,
        converted,
        conversion_rate: ratio(converted, members),
        revenue,
        revenue_per_member,
        repurchased,
        repurchase_rate: ratio(repurchased, converted),
    }
}

/// Measure a campaign from the outcomes of its two groups. Money is rounded
/// to `money_dp` places (the currency's minor unit).
pub fn measure(treatment: &[Outcome], control: &[Outcome], money_dp: u32) -> Measurement {
    let t = group_result(treatment, money_dp);
    let c = group_result(control, money_dp);
    let conversion_uplift = proportion_uplift(t.converted, t.members, c.converted, c.members);
    let rt: Vec<Decimal> = treatment.iter().map(|o| o.revenue).collect();
    let rc: Vec<Decimal> = control.iter().map(|o| o.revenue).collect();
    let revenue_uplift = mean_uplift(&rt, &rc, money_dp);
    let (incremental_revenue, incremental_conversions) = if t.members == 0 || c.members == 0 {
        (Decimal::ZERO, Decimal::ZERO)
    } else {
        let n = Decimal::from(t.members);
        let per_member = t.revenue / n - c.revenue / Decimal::from(c.members);
        let rate = Decimal::from(t.converted) / n - Decimal::from(c.converted) / Decimal::from(c.members);
        ((per_member * n).round_dp(money_dp), (rate * n).round_dp(2))
    };
    Measurement {
        treatment: t,
        control: c,
        conversion_uplift,
        revenue_uplift,
        incremental_revenue,
        incremental_conversions,
    }
}

/// Wilson score interval for `k` successes in `n` trials at [`Z_95`]
/// (`None` when `n` is 0).
///
/// ```
/// let (lo, hi) = crm_core::campaign::wilson(0, 10).unwrap();
/// assert_eq!(lo, 0.0);
/// assert!((hi - 0.2775).abs() < 1e-4);
/// ```
pub fn wilson(k: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (n, p, z2) = (n as f64, k as f64 / n as f64, Z_95 * Z_95);
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z_95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// Newcombe's hybrid score interval (95 %) for `k1/n1 − k2/n2`:
/// `(estimate, low, high)`, `None` when a group is empty.
///
/// ```
/// // Newcombe (1998), example (a): 56/70 − 48/80 gives 0.2000, −0.0524 … 0.3339
/// let (d, lo, hi) = crm_core::campaign::newcombe(56, 70, 48, 80).unwrap();
/// assert!((d - 0.2).abs() < 1e-12 && (lo - 0.0524).abs() < 1e-4 && (hi - 0.3339).abs() < 1e-4);
/// ```
pub fn newcombe(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<(f64, f64, f64)> {
    let (l1, u1) = wilson(k1, n1)?;
    let (l2, u2) = wilson(k2, n2)?;
    let (p1, p2) = (k1 as f64 / n1 as f64, k2 as f64 / n2 as f64);
    let d = p1 - p2;
    let lo = d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let hi = d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some((d, lo, hi))
}

/// Welch's 95 % interval for `mean(x) − mean(y)`: `(estimate, low, high,
/// degrees of freedom)`; `None` when a group has fewer than two values.
/// When both groups have no spread the interval is the estimate itself.
pub fn welch(x: &[f64], y: &[f64]) -> Option<(f64, f64, f64, f64)> {
    if x.len() < 2 || y.len() < 2 {
        return None;
    }
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (n, mean, var / n)
    };
    let (n1, m1, s1) = stats(x);
    let (n2, m2, s2) = stats(y);
    let d = m1 - m2;
    let se2 = s1 + s2;
    if se2 <= 0.0 {
        return Some((d, d, d, f64::INFINITY));
    }
    let df = se2 * se2 / (s1 * s1 / (n1 - 1.0) + s2 * s2 / (n2 - 1.0));
    let half = t_quantile_975(df) * se2.sqrt();
    Some((d, d - half, d + half, df))
}

/// Regularised incomplete beta function `I_x(a, b)` (continued fraction,
/// modified Lentz; Numerical Recipes §6.4).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (a * x.ln() + b * (1.0 - x).ln() - ln_beta(a, b)).exp();
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - inc_beta(b, a, 1.0 - x);
    }
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut f = d;
    for m in 1..=300 {
        let m = f64::from(m);
        for num in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + num * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + num / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            f *= c * d;
        }
        if (c * d - 1.0).abs() < 1e-15 {
            break;
        }
    }
    front * f / a
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (for a
/// two-sided 95 % interval), by bisection on the distribution function.
///
/// ```
/// use crm_core::campaign::t_quantile_975;
/// assert!((t_quantile_975(1.0) - 12.7062).abs() < 1e-3);
/// assert!((t_quantile_975(10.0) - 2.2281).abs() < 1e-4);
/// assert!((t_quantile_975(1e9) - 1.95996).abs() < 1e-4);
/// ```
pub fn t_quantile_975(df: f64) -> f64 {
    if !df.is_finite() || df > 1e7 {
        return Z_95;
    }
    let df = df.max(0.5);
    // Upper tail P(T > t) = I_{df/(df+t²)}(df/2, 1/2) / 2.
    let tail = |t: f64| 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while tail(hi) > 0.025 && hi < 1e12 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if tail(mid) > 0.025 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-12 * hi.max(1.0) {
            break;
        }
    }
    0.5 * (lo + hi)
}

fn dec(v: f64, dp: u32, strategy: RoundingStrategy) -> Decimal {
    Decimal::from_f64(v).unwrap_or(Decimal::ZERO).round_dp_with_strategy(dp, strategy)
}

/// Bounds rounded outwards, and never inside the (rounded) estimate.
fn uplift(estimate: Decimal, bounds: Option<(f64, f64)>, dp: u32) -> Uplift {
    match bounds {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() => {
            let low = dec(lo, dp, RoundingStrategy::ToNegativeInfinity).min(estimate);
            let high = dec(hi, dp, RoundingStrategy::ToPositiveInfinity).max(estimate);
            Uplift {
                estimate,
                low: Some(low),
                high: Some(high),
                significant: low > Decimal::ZERO || high < Decimal::ZERO,
            }
        }
        _ => Uplift { estimate, low: None, high: None, significant: false },
    }
}

/// Conversion uplift `k1/n1 − k2/n2` (four places) with Newcombe's interval.
pub fn proportion_uplift(k1: u64, n1: u64, k2: u64, n2: u64) -> Uplift {
    if n1 == 0 || n2 == 0 {
        return uplift(Decimal::ZERO, None, RATE_DP);
    }
    let exact = Decimal::from(k1) / Decimal::from(n1) - Decimal::from(k2) / Decimal::from(n2);
    uplift(exact.round_dp(RATE_DP), newcombe(k1, n1, k2, n2).map(|(_, l, h)| (l, h)), RATE_DP)
}

/// Uplift in the mean, `mean(x) − mean(y)` (exact, then `dp` places), with
/// Welch's interval.
pub fn mean_uplift(x: &[Decimal], y: &[Decimal], dp: u32) -> Uplift {
    if x.is_empty() || y.is_empty() {
        return uplift(Decimal::ZERO, None, dp);
    }
    let mean = |v: &[Decimal]| v.iter().sum::<Decimal>() / Decimal::from(v.len() as u64);
    let exact = (mean(x) - mean(y)).round_dp(dp);
    let f = |v: &[Decimal]| v.iter().map(|a| a.to_f64().unwrap_or(0.0)).collect::<Vec<_>>();
    uplift(exact, welch(&f(x), &f(y)).map(|(_, l, h, _)| (l, h)), dp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_published_values() {
        // Newcombe (1998) table I: 81/263 → 0.2553 … 0.3662.
        let (lo, hi) = wilson(81, 263).unwrap();
        assert!((lo - 0.2553).abs() < 1e-4 && (hi - 0.3662).abs() < 1e-4, "{lo} {hi}");
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn newcombe_matches_published_examples() {
        // Newcombe (1998) table II, method 10: (c) 5/56 − 0/29 → −0.0381 … 0.1926.
        let (_, lo, hi) = newcombe(5, 56, 0, 29).unwrap();
        assert!((lo + 0.0381).abs() < 1e-4 && (hi - 0.1926).abs() < 1e-4, "{lo} {hi}");
        // (b) 9/10 − 3/10 → 0.1705 … 0.8090.
        let (_, lo, hi) = newcombe(9, 10, 3, 10).unwrap();
        assert!((lo - 0.1705).abs() < 1e-4 && (hi - 0.8090).abs() < 1e-4, "{lo} {hi}");
    }

    #[test]
    fn t_quantiles_match_tables() {
        for (df, t) in [(2.0, 4.302_653), (5.0, 2.570_582), (30.0, 2.042_272), (120.0, 1.979_930)] {
            assert!((t_quantile_975(df) - t).abs() < 1e-5, "df {df}: {}", t_quantile_975(df));
        }
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // x: mean 2, var 1; y: mean 5, var 4 (n = 3 each): se² = 5/3, df = 2.9412.
        let (d, lo, hi, df) = welch(&[1.0, 2.0, 3.0], &[3.0, 5.0, 7.0]).unwrap();
        assert_eq!(d, -3.0);
        assert!((df - 2.941_176).abs() < 1e-5, "{df}");
        let half = t_quantile_975(df) * (5.0f64 / 3.0).sqrt();
        assert!((hi - lo - 2.0 * half).abs() < 1e-12);
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn the_threshold_is_exact_for_simple_shares() {
        assert_eq!(threshold(Decimal::new(5, 1)), 1 << 52);
        assert_eq!(threshold(Decimal::ZERO), 0);
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = Campaign {
            id: "c1".into(),
            audience: Audience::Rule("orders(365d) >= 1".parse().unwrap()),
            seed: 1,
            holdout: Decimal::ONE,
            starts_at: "2024-01-01T00:00:00Z".parse().unwrap(),
            ends_at: "2024-02-01T00:00:00Z".parse().unwrap(),
            attribution_days: 0,
            repurchase_days: None,
            cost: CampaignCost::default(),
        };
        assert_eq!(c.validate().unwrap_err().field(), Some("campaign.holdout"));
        c.holdout = Decimal::new(1, 1);
        c.ends_at = c.starts_at;
        assert_eq!(c.validate().unwrap_err().field(), Some("campaign.ends_at"));
        c.ends_at = "2024-02-01T00:00:00Z".parse().unwrap();
        c.cost.coupon_value = Decimal::NEGATIVE_ONE;
        assert_eq!(c.validate().unwrap_err().field(), Some("campaign.cost.coupon_value"));
        c.cost.coupon_value = Decimal::ZERO;
        assert!(c.validate().is_ok());
    }
}
