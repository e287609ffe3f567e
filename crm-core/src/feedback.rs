//! Service and feedback records (服务与评价): contacts with customer
//! service, after-sales tickets (售后工单), product reviews and satisfaction
//! surveys (CSAT 1–5, NPS 0–10).
//!
//! They belong to the member, so they live in the member's state and every
//! change commits under the member's optimistic concurrency. The decisions
//! here are pure (validation, the ticket status machine, the aggregates the
//! rule language and the reports read); the engine turns commands into
//! events (`ContactRecorded`, `TicketOpened`, `TicketStatusChanged`,
//! `ReviewRecorded`, `SurveyRecorded`).
//!
//! # Ticket status machine
//!
//! | from \ to          | open | in_progress | waiting_customer | resolved | closed |
//! |--------------------|------|-------------|------------------|----------|--------|
//! | `open`             |      | ✓           | ✓                | ✓        | ✓      |
//! | `in_progress`      |      |             | ✓                | ✓        | ✓      |
//! | `waiting_customer` |      | ✓           |                  | ✓        | ✓      |
//! | `resolved`         | ✓    |             |                  |          | ✓      |
//! | `closed`           | ✓    |             |                  |          |        |
//!
//! Moving back to `open` is a reopening: it clears the resolution, so a
//! reopened ticket counts as open again and its resolution time runs until
//! it is resolved (or closed) once more. Closing without resolving is allowed
//! (a duplicate, a customer who went silent); then the resolution time ends
//! at the closing.
//!
//! ```
//! use crm_core::feedback::TicketStatus::*;
//!
//! assert!(Open.can_move_to(InProgress) && Resolved.can_move_to(Open));
//! assert!(!Closed.can_move_to(Resolved) && !InProgress.can_move_to(Open));
//! ```
//!
//! # Personal data
//!
//! Review text, survey comments and ticket subjects are free text a customer
//! or an agent wrote: erasure removes them ([`Feedback::erase_text`]) and
//! keeps ratings, scores, statuses and times, so reports stay right.
//! Contact topics and ticket kinds are the host's category codes and stay.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::error::{CrmError, Result};
use crate::facts::check_ref;

/// Longest review text, survey comment or ticket subject, in characters.
pub const MAX_TEXT: usize = 4000;

/// Where an after-sales ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Open,
    InProgress,
    WaitingCustomer,
    Resolved,
    Closed,
}

impl TicketStatus {
    /// Every status, in flow order.
    pub const ALL: [TicketStatus; 5] = [
        TicketStatus::Open,
        TicketStatus::InProgress,
        TicketStatus::WaitingCustomer,
        TicketStatus::Resolved,
        TicketStatus::Closed,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::InProgress => "in_progress",
            TicketStatus::WaitingCustomer => "waiting_customer",
            TicketStatus::Resolved => "resolved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Resolved or closed: the customer is no longer waiting (`open_tickets`
    /// does not count it).
    pub fn is_done(self) -> bool {
        matches!(self, TicketStatus::Resolved | TicketStatus::Closed)
    }

    /// The transition table of the module docs. Staying in the same status
    /// is not a transition (the engine treats it as a repeat).
    pub fn can_move_to(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (Open, InProgress | WaitingCustomer | Resolved | Closed)
                | (InProgress, WaitingCustomer | Resolved | Closed)
                | (WaitingCustomer, InProgress | Resolved | Closed)
                | (Resolved, Open | Closed)
                | (Closed, Open)
        )
    }
}

impl std::fmt::Display for TicketStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conversation with customer service (chat, hotline, in store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    /// Where it happened (`phone`, `chat`, `store`, `wechat`, ...).
    pub channel: String,
    /// The host's topic code (`delivery`, `size_exchange`); not free text.
    pub topic: String,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// A ticket's move from one status to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketChange {
    pub at: DateTime<Utc>,
    pub from: TicketStatus,
    pub to: TicketStatus,
}

/// An after-sales ticket (return, exchange, complaint, repair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    /// The host's kind code (`return`, `complaint`, `repair`): reports group by it.
    pub kind: String,
    pub status: TicketStatus,
    pub opened_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Free text (removed on erasure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Every status change, oldest first.
    #[serde(default)]
    pub history: Vec<TicketChange>,
    /// When it was last resolved (cleared by a reopening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was last closed (cleared by a reopening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Times it was reopened.
    #[serde(default)]
    pub reopened: u32,
}

impl Ticket {
    /// A newly opened ticket.
    pub fn new(id: &str, kind: &str, opened_at: DateTime<Utc>) -> Ticket {
        Ticket {
            id: id.into(),
            kind: kind.into(),
            status: TicketStatus::Open,
            opened_at,
            order_id: None,
            subject: None,
            history: Vec::new(),
            resolved_at: None,
            closed_at: None,
            reopened: 0,
        }
    }

    /// Apply a status change the engine has checked (`can_move_to`, time order).
    pub fn apply(&mut self, at: DateTime<Utc>, to: TicketStatus) {
        let from = self.status;
        match to {
            TicketStatus::Resolved => self.resolved_at = Some(at),
            TicketStatus::Closed => self.closed_at = Some(at),
            TicketStatus::Open if from.is_done() => {
                self.resolved_at = None;
                self.closed_at = None;
                self.reopened += 1;
            }
            _ => {}
        }
        self.status = to;
        self.history.push(TicketChange { at, from, to });
    }

    /// The ticket as it stood at `at` (its changes up to `at` replayed);
    /// `None` before it was opened.
    pub fn as_of(&self, at: DateTime<Utc>) -> Option<Ticket> {
        if self.opened_at > at {
            return None;
        }
        if self.history.last().is_none_or(|c| c.at <= at) {
            return Some(self.clone());
        }
        let mut t = Ticket { history: Vec::new(), ..Ticket::new(&self.id, &self.kind, self.opened_at) };
        t.order_id.clone_from(&self.order_id);
        t.subject.clone_from(&self.subject);
        for c in self.history.iter().take_while(|c| c.at <= at) {
            t.apply(c.at, c.to);
        }
        Some(t)
    }

    /// When the customer stopped waiting: the resolution, or the closing of
    /// a ticket closed without one. `None` while it is not done.
    pub fn done_at(&self) -> Option<DateTime<Utc>> {
        if !self.status.is_done() {
            return None;
        }
        self.resolved_at.or(self.closed_at)
    }

    /// Whole minutes from opening to [`Ticket::done_at`].
    pub fn resolution_minutes(&self) -> Option<i64> {
        self.done_at().map(|d| (d - self.opened_at).num_minutes())
    }
}

/// A product (or order) review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub id: String,
    /// 1 (worst) to 5 (best).
    pub rating: u8,
    /// Free text (removed on erasure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub at: DateTime<Utc>,
    /// Points the review earned (the programme's `review` bonuses), per point type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub awarded: BTreeMap<String, i64>,
}

/// Which question a survey asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurveyKind {
    /// Customer satisfaction, 1 (very unsatisfied) to 5 (very satisfied).
    Csat,
    /// Net promoter: how likely to recommend, 0 to 10.
    Nps,
}

impl SurveyKind {
    /// The valid scores.
    pub fn range(self) -> std::ops::RangeInclusive<i64> {
        match self {
            SurveyKind::Csat => 1..=5,
            SurveyKind::Nps => 0..=10,
        }
    }
}

/// A survey answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Survey {
    pub id: String,
    pub kind: SurveyKind,
    pub score: u8,
    pub at: DateTime<Utc>,
    /// The ticket it was sent for (a closed ticket's survey).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// Free text (removed on erasure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Where an NPS answer falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NpsGroup {
    /// 0–6.
    Detractor,
    /// 7–8.
    Passive,
    /// 9–10.
    Promoter,
}

/// The NPS group of a score.
pub fn nps_group(score: u8) -> NpsGroup {
    match score {
        0..=6 => NpsGroup::Detractor,
        7..=8 => NpsGroup::Passive,
        _ => NpsGroup::Promoter,
    }
}

/// A member's service and feedback records, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Feedback {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contacts: BTreeMap<String, Contact>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tickets: BTreeMap<String, Ticket>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reviews: BTreeMap<String, Review>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub surveys: BTreeMap<String, Survey>,
}

/// `lo < t <= hi`, with no lower bound when `lo` is `None`.
fn within(t: DateTime<Utc>, lo: Option<DateTime<Utc>>, hi: DateTime<Utc>) -> bool {
    t <= hi && lo.is_none_or(|l| t > l)
}

/// Exact mean of small whole numbers (`None` for none).
fn mean(values: impl Iterator<Item = u8>) -> Option<Decimal> {
    let (mut sum, mut n) = (0i64, 0i64);
    for v in values {
        sum += i64::from(v);
        n += 1;
    }
    (n > 0).then(|| Decimal::from(sum) / Decimal::from(n))
}

impl Feedback {
    /// No records at all (snapshots leave the field out).
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.tickets.is_empty() && self.reviews.is_empty() && self.surveys.is_empty()
    }

    /// Remove the free text (erasure); ratings, scores and times stay.
    pub fn erase_text(&mut self) {
        for t in self.tickets.values_mut() {
            t.subject = None;
        }
        for r in self.reviews.values_mut() {
            r.text = None;
        }
        for s in self.surveys.values_mut() {
            s.comment = None;
        }
    }

    /// Take over a merged member's records; on an id both hold, the survivor's wins.
    pub fn absorb(&mut self, other: &Feedback) {
        fn fill<T: Clone>(mine: &mut BTreeMap<String, T>, theirs: &BTreeMap<String, T>) {
            for (k, v) in theirs {
                mine.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        fill(&mut self.contacts, &other.contacts);
        fill(&mut self.tickets, &other.tickets);
        fill(&mut self.reviews, &other.reviews);
        fill(&mut self.surveys, &other.surveys);
    }

    /// Mean CSAT score of the answers in `(from, to]` (exact, not rounded).
    pub fn csat_mean(&self, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Option<Decimal> {
        mean(self.surveys.values().filter(|s| s.kind == SurveyKind::Csat && within(s.at, from, to)).map(|s| s.score))
    }

    /// Mean review rating of the reviews in `(from, to]` (exact, not rounded).
    pub fn rating_mean(&self, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> Option<Decimal> {
        mean(self.reviews.values().filter(|r| within(r.at, from, to)).map(|r| r.rating))
    }

    /// The latest NPS answer at or before `at` (the greater id on a tie).
    pub fn nps_last(&self, at: DateTime<Utc>) -> Option<u8> {
        self.surveys
            .values()
            .filter(|s| s.kind == SurveyKind::Nps && s.at <= at)
            .max_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)))
            .map(|s| s.score)
    }

    /// Tickets opened by `at` and not resolved or closed at `at`.
    pub fn open_tickets(&self, at: DateTime<Utc>) -> i64 {
        self.tickets.values().filter_map(|t| t.as_of(at)).filter(|t| !t.status.is_done()).count() as i64
    }

    /// Reviews in `(from, to]`.
    pub fn reviews_in(&self, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> i64 {
        self.reviews.values().filter(|r| within(r.at, from, to)).count() as i64
    }

    /// Tickets opened in `(from, to]`.
    pub fn tickets_in(&self, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> i64 {
        self.tickets.values().filter(|t| within(t.opened_at, from, to)).count() as i64
    }

    /// Contacts started in `(from, to]`.
    pub fn contacts_in(&self, from: Option<DateTime<Utc>>, to: DateTime<Utc>) -> i64 {
        self.contacts.values().filter(|c| within(c.started_at, from, to)).count() as i64
    }
}

// ----- validation ---------------------------------------------------------------------

/// A rating or score in its range, or a typed error naming `field`.
pub fn check_score(score: i64, range: std::ops::RangeInclusive<i64>, field: &str) -> Result<u8> {
    if !range.contains(&score) {
        return Err(CrmError::invalid(field, format!("must be {}-{}, got {score}", range.start(), range.end())));
    }
    u8::try_from(score).map_err(|_| CrmError::invalid(field, "out of range"))
}

/// Optional free text: at most [`MAX_TEXT`] characters (`None` when blank).
pub fn check_text(text: &Option<String>, field: &str) -> Result<Option<String>> {
    match text {
        Some(t) if t.chars().count() > MAX_TEXT => {
            Err(CrmError::invalid(field, format!("must be at most {MAX_TEXT} characters")))
        }
        Some(t) if t.trim().is_empty() => Ok(None),
        other => Ok(other.clone()),
    }
}

/// An optional reference (sku, order id, ticket id).
pub fn check_opt_ref(v: &Option<String>, field: &str) -> Result<()> {
    v.as_deref().map_or(Ok(()), |v| check_ref(v, field))
}

// ----- report arithmetic --------------------------------------------------------------

/// `d` rounded half away from zero to exactly `dp` places (`50` -> `50.0`),
/// so every figure of a report column prints alike.
pub fn round(d: Decimal, dp: u32) -> Decimal {
    let mut r = d.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(dp);
    r
}

/// `part / whole × 100`, one place (`None` for an empty whole).
pub fn percent(part: u64, whole: u64) -> Option<Decimal> {
    (whole > 0).then(|| round(Decimal::from(part) * Decimal::ONE_HUNDRED / Decimal::from(whole), 1))
}

/// NPS: % promoters − % detractors over all answers, one place, −100 to 100.
pub fn nps_score(promoters: u64, detractors: u64, answers: u64) -> Option<Decimal> {
    (answers > 0).then(|| {
        let diff = Decimal::from(promoters) - Decimal::from(detractors);
        round(diff * Decimal::ONE_HUNDRED / Decimal::from(answers), 1)
    })
}

/// Median of sorted values (the mean of the middle two for an even count), one place.
pub fn median(sorted: &[i64]) -> Option<Decimal> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let mid = if n % 2 == 1 {
        Decimal::from(sorted[n / 2])
    } else {
        (Decimal::from(sorted[n / 2 - 1]) + Decimal::from(sorted[n / 2])) / Decimal::TWO
    };
    Some(round(mid, 1))
}

/// The 90th percentile of sorted values by nearest rank: the value at rank ⌈0.9 n⌉.
pub fn p90(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    (n > 0).then(|| sorted[(9 * n).div_ceil(10) - 1])
}

// ----- reports ------------------------------------------------------------------------

/// CSAT, NPS and review figures of a group of members (one row of
/// [`FeedbackReport`]; flat, so a list of rows is a table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreRow {
    /// The tier, stage or segment name (`all` for the overall row).
    pub group: String,
    /// Members in the group at the report's instant.
    pub members: u64,
    pub csat_responses: u64,
    /// Mean CSAT score, two places.
    pub csat_mean: Option<Decimal>,
    /// Share of CSAT answers of 4 or 5, in %, one place.
    pub csat_satisfied_pct: Option<Decimal>,
    pub nps_responses: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    /// % promoters − % detractors, one place.
    pub nps: Option<Decimal>,
    pub reviews: u64,
    /// Mean review rating, two places.
    pub rating_mean: Option<Decimal>,
}

/// Running sums behind a [`ScoreRow`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScoreTally {
    pub members: u64,
    pub csat: u64,
    pub csat_sum: u64,
    pub csat_satisfied: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub reviews: u64,
    pub rating_sum: u64,
}

impl ScoreTally {
    /// Count one member and their answers and reviews in `(from, to]`.
    pub fn add(&mut self, f: &Feedback, from: Option<DateTime<Utc>>, to: DateTime<Utc>) {
        self.members += 1;
        for s in f.surveys.values().filter(|s| within(s.at, from, to)) {
            match s.kind {
                SurveyKind::Csat => {
                    self.csat += 1;
                    self.csat_sum += u64::from(s.score);
                    self.csat_satisfied += u64::from(s.score >= 4);
                }
                SurveyKind::Nps => match nps_group(s.score) {
                    NpsGroup::Promoter => self.promoters += 1,
                    NpsGroup::Passive => self.passives += 1,
                    NpsGroup::Detractor => self.detractors += 1,
                },
            }
        }
        for r in f.reviews.values().filter(|r| within(r.at, from, to)) {
            self.reviews += 1;
            self.rating_sum += u64::from(r.rating);
        }
    }

    /// The figures, rounded as documented on [`ScoreRow`].
    pub fn row(&self, group: &str) -> ScoreRow {
        let avg = |sum: u64, n: u64| (n > 0).then(|| round(Decimal::from(sum) / Decimal::from(n), 2));
        let nps_n = self.promoters + self.passives + self.detractors;
        ScoreRow {
            group: group.to_string(),
            members: self.members,
            csat_responses: self.csat,
            csat_mean: avg(self.csat_sum, self.csat),
            csat_satisfied_pct: percent(self.csat_satisfied, self.csat),
            nps_responses: nps_n,
            promoters: self.promoters,
            passives: self.passives,
            detractors: self.detractors,
            nps: nps_score(self.promoters, self.detractors, nps_n),
            reviews: self.reviews,
            rating_mean: avg(self.rating_sum, self.reviews),
        }
    }
}

/// Ticket figures for one kind of ticket (or `all`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketRow {
    pub kind: String,
    /// Opened in the window.
    pub opened: u64,
    /// Not resolved or closed at the report's instant (whenever opened).
    pub open: u64,
    /// Resolved (or closed unresolved) in the window: the resolution times below.
    pub resolved: u64,
    /// Mean resolution time in minutes, one place.
    pub mean_minutes: Option<Decimal>,
    /// Median resolution time in minutes (mean of the middle two), one place.
    pub median_minutes: Option<Decimal>,
    /// 90th percentile by nearest rank, whole minutes.
    pub p90_minutes: Option<i64>,
}

/// Running figures behind a [`TicketRow`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketTally {
    pub opened: u64,
    pub open: u64,
    /// Resolution times in whole minutes.
    pub minutes: Vec<i64>,
}

impl TicketTally {
    /// Count a ticket as it stood at `to` ([`Ticket::as_of`]).
    pub fn add(&mut self, t: &Ticket, from: Option<DateTime<Utc>>, to: DateTime<Utc>) {
        self.opened += u64::from(within(t.opened_at, from, to));
        match t.done_at() {
            None => self.open += 1,
            Some(done) if within(done, from, to) => self.minutes.push((done - t.opened_at).num_minutes()),
            Some(_) => {}
        }
    }

    /// The figures, rounded as documented on [`TicketRow`].
    pub fn row(&self, kind: &str) -> TicketRow {
        let mut m = self.minutes.clone();
        m.sort_unstable();
        let n = m.len() as u64;
        TicketRow {
            kind: kind.to_string(),
            opened: self.opened,
            open: self.open,
            resolved: n,
            mean_minutes: (n > 0).then(|| round(Decimal::from(m.iter().sum::<i64>()) / Decimal::from(n), 1)),
            median_minutes: median(&m),
            p90_minutes: p90(&m),
        }
    }
}

/// Service quality across the programme ([`crate::Engine::feedback_report`]):
/// CSAT, NPS and ratings overall and by tier, stage and segment, and ticket
/// resolution times overall and by kind. Answers, reviews and resolutions
/// count when they fall in `(from, at]` (everything up to `at` without
/// `from`); members are grouped by their tier, stage and segments at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackReport {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    pub overall: ScoreRow,
    /// Every tier of the ladder, lowest first (empty without tiers).
    pub by_tier: Vec<ScoreRow>,
    /// Every lifecycle stage, in display order.
    pub by_stage: Vec<ScoreRow>,
    /// The requested segments, in the order given.
    pub by_segment: Vec<ScoreRow>,
    /// Ticket figures over every kind (`kind` = `all`).
    pub tickets_overall: TicketRow,
    /// One row per ticket kind, by kind.
    pub tickets_by_kind: Vec<TicketRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + h * 3600, 0).unwrap()
    }

    #[test]
    fn reopening_clears_the_resolution_and_as_of_replays_it() {
        let mut k = Ticket::new("t1", "return", t(0));
        k.apply(t(1), TicketStatus::InProgress);
        k.apply(t(3), TicketStatus::Resolved);
        assert_eq!(k.resolution_minutes(), Some(180));
        k.apply(t(5), TicketStatus::Open);
        assert_eq!((k.done_at(), k.reopened), (None, 1));
        k.apply(t(9), TicketStatus::Closed);
        assert_eq!(k.resolution_minutes(), Some(540), "closed without a new resolution");
        let then = k.as_of(t(4)).unwrap();
        assert_eq!((then.status, then.resolved_at, then.reopened), (TicketStatus::Resolved, Some(t(3)), 0));
        assert_eq!(k.as_of(t(2)).unwrap().status, TicketStatus::InProgress);
        assert!(k.as_of(t(-1)).is_none());
        assert_eq!(k.as_of(t(10)).unwrap(), k);
    }

    #[test]
    fn percentiles_and_scores_round_half_away_from_zero() {
        assert_eq!(median(&[1, 2, 4, 7]), Some(Decimal::new(30, 1)));
        assert_eq!(median(&[5]).map(|d| d.to_string()), Some("5.0".into()));
        assert_eq!(p90(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), Some(9));
        assert_eq!(p90(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), Some(10));
        assert_eq!(p90(&[3]), Some(3));
        assert_eq!(nps_score(1, 2, 3), Some(Decimal::new(-333, 1)));
        assert_eq!(percent(2, 3), Some(Decimal::new(667, 1)));
        assert_eq!(nps_score(0, 0, 0), None);
    }

    #[test]
    fn scores_and_text_are_checked_with_the_field() {
        assert_eq!(check_score(0, SurveyKind::Nps.range(), "score").unwrap(), 0);
        let e = check_score(6, 1..=5, "rating").unwrap_err();
        assert_eq!((e.field(), e.to_string().contains("must be 1-5, got 6")), (Some("rating"), true));
        assert!(check_text(&Some("x".repeat(MAX_TEXT + 1)), "text").is_err());
        assert_eq!(check_text(&Some("  ".into()), "text").unwrap(), None);
    }
}
