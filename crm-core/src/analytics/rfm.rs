//! RFM: recency, frequency and monetary value per member, their 1..=5 scores
//! and the named RFM groups.
//!
//! Scores are ranks, not quantile bins, so they are exact and reproducible in
//! any tool: with `n` members,
//!
//! - frequency and monetary: `score = 1 + floor(5 · #{members with a strictly smaller value} / n)`;
//! - recency: `score = 1 + floor(5 · #{members with a strictly larger recency} / n)`
//!   (recent buyers score high).
//!
//! Members with equal values share a score. Computing them is one sort per
//! metric, O(n log n).
//!
//! ```
//! use crm_core::analytics::rfm::{scores_ascending, scores_descending};
//! // Five members: the two with one order tie at the bottom.
//! assert_eq!(scores_ascending(&[1, 1, 2, 5, 9]), [1, 1, 3, 4, 5]);
//! // Recency in days: fewer days since the last order scores higher.
//! assert_eq!(scores_descending(&[0, 30, 30, 90, 400]), [5, 3, 3, 2, 1]);
//! ```

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::orders::{check_columns, Day, Orders};
use crate::error::{CrmError, Result};

/// The score of a member with `beaten` members strictly worse, out of `n`.
fn score(beaten: usize, n: usize) -> u8 {
    // beaten < n, so 5·beaten/n ≤ 4; u64 keeps 5·beaten exact for any slice length.
    1 + (5 * beaten as u64 / n as u64) as u8
}

/// Scores where a larger value is better (frequency, monetary): `1 + floor(5 · #smaller / n)`.
pub fn scores_ascending<T: Ord + Copy>(values: &[T]) -> Vec<u8> {
    rank_scores(values, false)
}

/// Scores where a smaller value is better (recency): `1 + floor(5 · #larger / n)`.
pub fn scores_descending<T: Ord + Copy>(values: &[T]) -> Vec<u8> {
    rank_scores(values, true)
}

fn rank_scores<T: Ord + Copy>(values: &[T], descending: bool) -> Vec<u8> {
    let n = values.len();
    let mut sorted: Vec<(T, usize)> = values.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    let mut out = vec![0u8; n];
    let mut start = 0;
    while start < n {
        let value = sorted[start].0;
        let end = start + sorted[start..].iter().take_while(|(v, _)| *v == value).count();
        // sorted[..start] are strictly smaller, sorted[end..] strictly larger.
        let s = score(if descending { n - end } else { start }, n);
        for &(_, i) in &sorted[start..end] {
            out[i] = s;
        }
        start = end;
    }
    out
}

/// The RFM table: one row per member with at least one counted order, in
/// member-index order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RfmTable {
    /// Member index (into the order history's ids).
    pub member: Vec<u32>,
    /// Whole days from the last order day to the as-of day.
    pub recency: Vec<u32>,
    /// Number of orders.
    pub frequency: Vec<u32>,
    /// Sum of the amounts in minor units (see [`RfmTable::monetary`]).
    pub monetary_minor: Vec<i64>,
    /// Digits after the decimal point of `monetary_minor`.
    pub scale: u32,
    pub r_score: Vec<u8>,
    pub f_score: Vec<u8>,
    pub m_score: Vec<u8>,
}

impl RfmTable {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.member.len()
    }

    /// True when no member has a counted order.
    pub fn is_empty(&self) -> bool {
        self.member.is_empty()
    }

    /// Monetary value of row `i` as an exact decimal.
    pub fn monetary(&self, i: usize) -> Decimal {
        Decimal::new(self.monetary_minor[i], self.scale)
    }

    /// RFM group of row `i`.
    pub fn group(&self, i: usize) -> RfmGroup {
        RfmGroup::of(self.r_score[i], self.f_score[i], self.m_score[i])
    }
}

/// Compute the RFM table of an order history in columns (see [`Orders`]):
/// `member[i]` (index below `members`) ordered on day `day[i]` for `amount[i]`
/// minor units at `scale` decimals. Orders after `as_of` are ignored; an order on
/// the `as_of` day has recency 0. Members without a counted order get no row.
///
/// One pass over the orders into a dense per-member accumulator, then one sort
/// per score: O(orders + members log members), three columns of memory per member.
pub fn rfm(member: &[u32], day: &[Day], amount: &[i64], members: usize, scale: u32, as_of: Day) -> Result<RfmTable> {
    check_columns(member, day, amount, members)?;
    if scale > 28 {
        return Err(CrmError::invalid("scale", "at most 28 decimal places"));
    }
    #[derive(Clone, Copy)]
    struct Acc {
        last: Day,
        count: u32,
        sum: i64,
    }
    let mut acc = vec![Acc { last: Day::MIN, count: 0, sum: 0 }; members];
    for i in 0..member.len() {
        if day[i] > as_of {
            continue;
        }
        let a = &mut acc[member[i] as usize];
        a.last = a.last.max(day[i]);
        a.count += 1;
        a.sum = a.sum.checked_add(amount[i]).ok_or_else(|| {
            CrmError::invalid(format!("amount[{i}]"), "the member's total overflows 64-bit minor units")
        })?;
    }
    let mut t = RfmTable { scale, ..RfmTable::default() };
    for (m, a) in acc.iter().enumerate() {
        if a.count > 0 {
            t.member.push(m as u32);
            t.recency.push((i64::from(as_of) - i64::from(a.last)) as u32);
            t.frequency.push(a.count);
            t.monetary_minor.push(a.sum);
        }
    }
    drop(acc);
    t.r_score = scores_descending(&t.recency);
    t.f_score = scores_ascending(&t.frequency);
    t.m_score = scores_ascending(&t.monetary_minor);
    Ok(t)
}

/// [`rfm`] over an [`Orders`] history.
pub fn rfm_orders(orders: &Orders, as_of: Day) -> Result<RfmTable> {
    rfm(&orders.member, &orders.day, &orders.amount, orders.ids.len(), orders.scale, as_of)
}

/// Named RFM groups. Every `(r, f, m)` score triple belongs to exactly one
/// group; the boxes (inclusive score ranges) are [`RFM_GROUP_BOXES`]:
///
/// | group               | R   | F   | M   |
/// |---------------------|-----|-----|-----|
/// | champions           | 5   | 4-5 | 1-5 |
/// | loyal               | 3-4 | 4-5 | 1-5 |
/// | potential loyalists | 4-5 | 2-3 | 1-5 |
/// | new                 | 5   | 1   | 1-5 |
/// | promising           | 4   | 1   | 1-5 |
/// | need attention      | 3   | 3   | 1-5 |
/// | about to sleep      | 3   | 1-2 | 1-5 |
/// | cannot lose         | 1-2 | 5   | 1-5 |
/// | at risk             | 1-2 | 3-4 | 1-5 |
/// | hibernating         | 2   | 1-2 | 1-5 |
/// | hibernating         | 1   | 1-2 | 3-5 |
/// | lost                | 1   | 1-2 | 1-2 |
///
/// This is the widely used recency × frequency grid (monetary value follows
/// frequency closely, so it rarely changes the group); monetary value only
/// splits the least recent, least frequent corner: those who spent little are
/// lost, those who spent more are still worth a win-back (hibernating).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RfmGroup {
    Champions,
    Loyal,
    PotentialLoyalists,
    New,
    Promising,
    NeedAttention,
    AboutToSleep,
    CannotLose,
    AtRisk,
    Hibernating,
    Lost,
}

/// An inclusive range of scores.
pub type ScoreRange = (u8, u8);

/// The documented boxes of [`RfmGroup`]: `(group, r range, f range, m range)`.
/// They partition 1..=5³ (a test checks it).
pub const RFM_GROUP_BOXES: [(RfmGroup, ScoreRange, ScoreRange, ScoreRange); 12] = [
    (RfmGroup::Champions, (5, 5), (4, 5), (1, 5)),
    (RfmGroup::Loyal, (3, 4), (4, 5), (1, 5)),
    (RfmGroup::PotentialLoyalists, (4, 5), (2, 3), (1, 5)),
    (RfmGroup::New, (5, 5), (1, 1), (1, 5)),
    (RfmGroup::Promising, (4, 4), (1, 1), (1, 5)),
    (RfmGroup::NeedAttention, (3, 3), (3, 3), (1, 5)),
    (RfmGroup::AboutToSleep, (3, 3), (1, 2), (1, 5)),
    (RfmGroup::CannotLose, (1, 2), (5, 5), (1, 5)),
    (RfmGroup::AtRisk, (1, 2), (3, 4), (1, 5)),
    (RfmGroup::Hibernating, (2, 2), (1, 2), (1, 5)),
    (RfmGroup::Hibernating, (1, 1), (1, 2), (3, 5)),
    (RfmGroup::Lost, (1, 1), (1, 2), (1, 2)),
];

impl RfmGroup {
    /// Every group, in the table's order.
    pub const ALL: [RfmGroup; 11] = [
        RfmGroup::Champions,
        RfmGroup::Loyal,
        RfmGroup::PotentialLoyalists,
        RfmGroup::New,
        RfmGroup::Promising,
        RfmGroup::NeedAttention,
        RfmGroup::AboutToSleep,
        RfmGroup::CannotLose,
        RfmGroup::AtRisk,
        RfmGroup::Hibernating,
        RfmGroup::Lost,
    ];

    /// The group of a score triple; scores outside 1..=5 are clamped into it.
    pub fn of(r: u8, f: u8, m: u8) -> RfmGroup {
        let (r, f, m) = (r.clamp(1, 5), f.clamp(1, 5), m.clamp(1, 5));
        let inside = |(lo, hi): ScoreRange, v: u8| lo <= v && v <= hi;
        RFM_GROUP_BOXES
            .iter()
            .find(|(_, rr, fr, mr)| inside(*rr, r) && inside(*fr, f) && inside(*mr, m))
            .map_or(RfmGroup::Lost, |b| b.0)
    }

    /// Stable snake_case name (`"potential_loyalists"`), as serialised.
    pub fn name(self) -> &'static str {
        match self {
            RfmGroup::Champions => "champions",
            RfmGroup::Loyal => "loyal",
            RfmGroup::PotentialLoyalists => "potential_loyalists",
            RfmGroup::New => "new",
            RfmGroup::Promising => "promising",
            RfmGroup::NeedAttention => "need_attention",
            RfmGroup::AboutToSleep => "about_to_sleep",
            RfmGroup::CannotLose => "cannot_lose",
            RfmGroup::AtRisk => "at_risk",
            RfmGroup::Hibernating => "hibernating",
            RfmGroup::Lost => "lost",
        }
    }
}
