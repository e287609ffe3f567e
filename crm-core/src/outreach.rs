//! Triggered outreach: which messages are due for a member, under which
//! guards. The host sends them; the engine records what it handed out.
//!
//! Every trigger produces *occurrences*, each with a stable key (a member's
//! birthday in 2025, the unpaid order `o-17`) and a due instant. A run over
//! `(through, now]` — `through` being where the member's previous run
//! stopped — looks at every occurrence whose (deferred) due instant falls in
//! it, so each occurrence is considered exactly once, and the emitted keys
//! are kept as a second guard. Then, in due order:
//!
//! 1. **Quiet hours** in the member's zone (programme zone when the member
//!    has none) defer the due instant to the first minute after them.
//! 2. **Staleness**: an occurrence more than `max_delay_hours` overdue is
//!    dropped (a birthday greeting a week late is worse than none; replaying
//!    years of history does not flood anyone).
//! 3. **Conditions** are checked as of the run: the unpaid order is still
//!    unpaid, the points still unspent, the cart not followed by an order,
//!    the retention threshold still not met, the closed ticket still closed
//!    and not yet surveyed.
//! 4. **Consent**: the first of the trigger's channels the member has
//!    granted; none means the occurrence is suppressed (`no_consent`).
//!    Service triggers (`marketing = false`) use the first channel listed.
//! 5. **Frequency cap**: at most `max` messages per member within any
//!    `days` days (counting earlier runs); beyond it `frequency_cap`. With
//!    `applies_to = "marketing"` the cap counts and holds back marketing
//!    messages only.
//!
//! Segment entries (`segment_entered`) come from `Engine::refresh_segment`,
//! which records them on each member.
//!
//! Date triggers (birthday, anniversary, member day) fire at `send_hour`
//! local time. A 29 February birthday is celebrated on 28 February in
//! other years.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::behind::{Behind, FactKind};
use crate::error::{CrmError, Result};
use crate::facts::OrderStatus;
use crate::feedback::{SurveyKind, TicketStatus};
use crate::lifecycle::Stage;
use crate::member::MemberId;
use crate::state::MemberState;
use crate::tier::TierView;
use crate::time::{local_date, resolve_local, resolve_local_after, same_day_in_year};

/// Outreach configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutreachConfig {
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// No messages inside these windows of the member's local time (each
    /// may span midnight): the night, and perhaps the commute or lunch. In
    /// JSON one window (`{"start", "end"}`), a list of them, or `null`.
    #[serde(default, with = "one_or_many")]
    pub quiet_hours: Vec<QuietHours>,
    /// At most `max` messages per member within any `days` days; one cap
    /// or several (one a day and three a week), each held to.
    #[serde(default, with = "one_or_many")]
    pub frequency_cap: Vec<FrequencyCap>,
    /// Local hour (0-23) at which date triggers fire.
    #[serde(default = "ten")]
    pub send_hour: u32,
    /// Occurrences more overdue than this are dropped.
    #[serde(default = "three_days")]
    pub max_delay_hours: u32,
}

fn ten() -> u32 {
    10
}
fn three_days() -> u32 {
    72
}

/// A window of quiet hours, local wall clock: from `start` (inclusive) to
/// `end` (exclusive), across midnight when `end` comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Is the wall-clock time `t` inside the window?
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

/// `quiet_hours` and `frequency_cap` in JSON: `null`, one object or a list
/// of them. One is written back as one object (programmes stored before
/// several were allowed read and write as they did).
mod one_or_many {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(items: &[T], s: S) -> Result<S::Ok, S::Error> {
        match items {
            [] => s.serialize_none(),
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    /// Read by hand rather than as an untagged enum, so that a bad item
    /// says what is wrong with it (`input is out of range`, `missing field
    /// end`) and where, instead of only that no form matched.
    struct Items<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object, a list of them, or null")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Ok(vec![T::deserialize(de::value::MapAccessDeserializer::new(map))?])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<T>()? {
                items.push(item);
            }
            Ok(items)
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_any(Items(PhantomData))
    }

    /// The path of item `i` as written: the field itself when it holds one.
    pub fn field(name: &str, len: usize, i: usize) -> String {
        match len {
            1 => name.to_string(),
            _ => format!("{name}[{i}]"),
        }
    }
}

/// Frequency cap per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCap {
    pub max: u32,
    pub days: u32,
    /// Which messages the cap counts and holds back.
    #[serde(default)]
    pub applies_to: CapScope,
}

impl FrequencyCap {
    /// Does the cap count (and hold back) a message, marketing or not?
    pub fn counts(&self, marketing: bool) -> bool {
        marketing || self.applies_to == CapScope::All
    }
}

/// Which messages a [`FrequencyCap`] counts and holds back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapScope {
    /// Every message (the default).
    #[default]
    All,
    /// Marketing messages only: service messages (`marketing = false`: an
    /// unpaid-order reminder, order care) are neither held back by the cap
    /// nor counted in it, so a member-day promotion never blocks a payment
    /// reminder.
    Marketing,
}

/// One configured trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Identifier, unique in the programme (`birthday_sms`).
    pub id: String,
    /// What fires it.
    pub when: TriggerKind,
    /// Channels in order of preference; the first one with consent is used.
    pub channels: Vec<String>,
    /// Static data merged into every item's payload (template ids…).
    #[serde(default)]
    pub payload: BTreeMap<String, serde_json::Value>,
    /// Marketing messages need the member's consent on the channel; service
    /// messages (`marketing = false`: an unpaid order, expiring points) go
    /// to the first channel listed. A frequency cap applies to both unless
    /// it `applies_to = "marketing"`.
    #[serde(default = "yes")]
    pub marketing: bool,
    /// A coupon template handed out with every message (a birthday gift, a
    /// win-back offer, a service-recovery voucher): issued in the same
    /// commit as the message, its code in the item's `payload.coupon`. When
    /// the member's limit, the template's stock or budget, or its validity
    /// rules it out, the message is suppressed (`coupon_unavailable`) rather
    /// than sent without what it promises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
}

fn yes() -> bool {
    true
}

/// What fires a trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TriggerKind {
    /// `days_before` days before the birthday (0: on the day), member's zone.
    Birthday {
        #[serde(default)]
        days_before: u32,
    },
    /// The anniversary of joining (years 1, 2, …).
    Anniversary {
        #[serde(default)]
        days_before: u32,
    },
    /// Every month on this day (31: the last day of short months).
    MemberDay { day: u32 },
    /// Points of `point_type` that expire within `days` days.
    PointsExpiring { point_type: String, days: u32 },
    /// `days` before a tier review that would not be passed today.
    TierRetention { days: u32 },
    /// The member entered a lifecycle stage (win-back on `dormant`).
    StageEntered { stage: Stage },
    /// An order still unpaid `minutes` after it was placed (催付).
    UnpaidOrder { minutes: u32 },
    /// An engagement event (`add_to_cart`) not followed by another one or an
    /// order within `minutes`.
    CartAbandoned {
        minutes: u32,
        #[serde(default = "add_to_cart")]
        event: String,
    },
    /// `days` after an order was completed (order care, review request),
    /// unless it was cancelled or refunded in full by then.
    OrderCare { days: u32 },
    /// The member entered a saved segment (recorded by `Engine::refresh_segment`).
    SegmentEntered { segment: String },
    /// Service recovery: a review rated, or a CSAT survey scored, at or
    /// below `max_rating` (1-5) and, with `max_nps`, an NPS answer at or
    /// below it (0-10); `delay_minutes` after the answer. One occurrence per
    /// review or survey (`review:<id>`, `survey:<id>`).
    LowRating {
        max_rating: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_nps: Option<u32>,
        #[serde(default)]
        delay_minutes: u32,
    },
    /// A satisfaction survey `delay_minutes` after a ticket was closed,
    /// while it is still closed and no survey for it has been answered. One
    /// occurrence per ticket (a ticket reopened and closed again is not
    /// surveyed twice).
    TicketClosed {
        #[serde(default)]
        delay_minutes: u32,
    },
}

/// Longest delay of a feedback trigger: 30 days.
const MAX_DELAY_MINUTES: u32 = 30 * 24 * 60;

fn add_to_cart() -> String {
    "add_to_cart".into()
}

/// A message the host should send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutreachItem {
    /// Stable id: `member:trigger:occurrence` (use it to deduplicate sends).
    pub id: String,
    pub member_id: MemberId,
    pub trigger: String,
    /// Occurrence key within the trigger (`2025`, `o-17`, `2025-03`).
    pub occurrence: String,
    pub channel: String,
    /// When it is due (after quiet-hours deferral).
    pub due_at: DateTime<Utc>,
    pub payload: serde_json::Value,
}

/// An occurrence that was not sent, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppressed {
    pub trigger: String,
    pub occurrence: String,
    pub due_at: DateTime<Utc>,
    pub reason: SuppressReason,
}

/// Why an occurrence was not sent. Stored as its snake_case name
/// (`no_consent`, `frequency_cap`, `coupon_unavailable`), as the reason
/// string was before; a type, not a string, so no other reason can be
/// written (and none is allocated for each suppressed occurrence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    /// No channel of the trigger has the member's consent.
    NoConsent,
    /// The member had the frequency cap's number of messages in its window.
    FrequencyCap,
    /// The trigger's coupon could not be issued (stock, budget or limits).
    CouponUnavailable,
}

impl SuppressReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::NoConsent => "no_consent",
            SuppressReason::FrequencyCap => "frequency_cap",
            SuppressReason::CouponUnavailable => "coupon_unavailable",
        }
    }
}

impl std::fmt::Display for SuppressReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a member remembers of an emitted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub trigger: String,
    pub occurrence: String,
    pub due_at: DateTime<Utc>,
    /// The `run_due` that emitted it (`Engine::outreach_of_run` finds the
    /// full items again by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
}

/// The result of one member's run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Run {
    pub emitted: Vec<OutreachItem>,
    pub suppressed: Vec<Suppressed>,
}

struct Occurrence {
    trigger: usize,
    key: String,
    due: DateTime<Utc>,
    payload: serde_json::Value,
}

impl OutreachConfig {
    /// Check triggers, channels and guards (paths under `outreach`).
    /// `coupon_templates`: the programme's coupon template ids.
    pub fn validate(&self, point_types: &[&str], has_tiers: bool, coupon_templates: &[&str]) -> Result<()> {
        let mut ids = std::collections::BTreeSet::new();
        for (i, t) in self.triggers.iter().enumerate() {
            let at = format!("outreach.triggers[{i}]");
            crate::program::check_id(&t.id, &format!("{at}.id"))?;
            if !ids.insert(t.id.as_str()) {
                return Err(CrmError::config(format!("{at}.id"), format!("duplicate trigger {:?}", t.id)));
            }
            if t.channels.is_empty() {
                return Err(CrmError::config(format!("{at}.channels"), "must list at least one channel"));
            }
            if let Some(c) = &t.coupon {
                if !coupon_templates.contains(&c.as_str()) {
                    return Err(CrmError::config(format!("{at}.coupon"), format!("no coupon template {c:?}")));
                }
            }
            match &t.when {
                TriggerKind::MemberDay { day } if !(1..=31).contains(day) => {
                    return Err(CrmError::config(format!("{at}.when.day"), "must be between 1 and 31"));
                }
                TriggerKind::PointsExpiring { point_type, .. } if !point_types.contains(&point_type.as_str()) => {
                    return Err(CrmError::config(
                        format!("{at}.when.point_type"),
                        format!("unknown point type {point_type:?}"),
                    ));
                }
                TriggerKind::TierRetention { .. } if !has_tiers => {
                    return Err(CrmError::config(format!("{at}.when"), "tier_retention needs a tier ladder (`tiers`)"));
                }
                TriggerKind::Birthday { days_before } | TriggerKind::Anniversary { days_before }
                    if *days_before > 300 =>
                {
                    return Err(CrmError::config(format!("{at}.when.days_before"), "must be at most 300"));
                }
                TriggerKind::LowRating { max_rating, .. } if !(1..=5).contains(max_rating) => {
                    return Err(CrmError::config(format!("{at}.when.max_rating"), "must be between 1 and 5"));
                }
                TriggerKind::LowRating { max_nps: Some(n), .. } if *n > 10 => {
                    return Err(CrmError::config(format!("{at}.when.max_nps"), "must be between 0 and 10"));
                }
                TriggerKind::LowRating { delay_minutes, .. } | TriggerKind::TicketClosed { delay_minutes }
                    if *delay_minutes > MAX_DELAY_MINUTES =>
                {
                    return Err(CrmError::config(
                        format!("{at}.when.delay_minutes"),
                        format!("must be at most {MAX_DELAY_MINUTES} (30 days)"),
                    ));
                }
                _ => {}
            }
        }
        if self.send_hour > 23 {
            return Err(CrmError::config("outreach.send_hour", "must be 0-23"));
        }
        for (i, c) in self.frequency_cap.iter().enumerate() {
            if c.max == 0 || c.days == 0 {
                let field = one_or_many::field("outreach.frequency_cap", self.frequency_cap.len(), i);
                return Err(CrmError::config(field, "max and days must be at least 1"));
            }
        }
        for (i, q) in self.quiet_hours.iter().enumerate() {
            if q.start == q.end {
                let field = one_or_many::field("outreach.quiet_hours", self.quiet_hours.len(), i);
                return Err(CrmError::config(field, "start and end must differ"));
            }
        }
        // Some minute of the day must be open, or nothing is ever sent: it
        // is, exactly when some window's end lies outside every window.
        let ends_open = self.quiet_hours.iter().any(|q| !self.quiet_hours.iter().any(|w| w.contains(q.end)));
        if !self.quiet_hours.is_empty() && !ends_open {
            return Err(CrmError::config("outreach.quiet_hours", "the windows cover the whole day"));
        }
        Ok(())
    }

    /// Is the local wall-clock time of `t` inside quiet hours?
    pub fn is_quiet(&self, zone: Tz, t: DateTime<Utc>) -> bool {
        if self.quiet_hours.is_empty() {
            return false;
        }
        let local = crate::time::wall_clock(zone, t).time();
        self.quiet_hours.iter().any(|q| q.contains(local))
    }

    /// `t`, or the first instant after quiet hours when `t` is inside them
    /// (past every window that begins before the one it is in ends).
    pub fn defer(&self, zone: Tz, t: DateTime<Utc>) -> DateTime<Utc> {
        let mut at = t;
        // Each step leaves one window, or stops where the clocks are turned
        // back inside it (see below). Windows that overlap or touch are left
        // one after the other, and `validate` leaves a minute open, so one
        // step per window reaches it on an ordinary day. A DST gap can
        // swallow that open minute (and move the end of one window into
        // another), and turning the clocks back can bring a window back:
        // the windows are then left again, one step each. Every step moves
        // `at` forward.
        for _ in 0..4 * (self.quiet_hours.len() + 1) {
            let local = crate::time::wall_clock(zone, at);
            let Some(q) = self.quiet_hours.iter().find(|q| q.contains(local.time())) else { return at };
            let mut day = local.date();
            if q.start > q.end && local.time() >= q.start {
                day = day.succ_opt().unwrap_or(day);
            }
            // The end's first instant after `at`: when the clocks go back,
            // its earlier reading may be behind us. A DST gap can swallow
            // the end: it resolves past the gap, outside the window by
            // construction.
            let end = resolve_local_after(zone, day.and_time(q.end), at);
            if end <= at {
                return at;
            }
            // Clocks turned back before the end re-read earlier times, which
            // may be open (windows 00:15-01:00 when 01:00 becomes 00:00):
            // look again from there.
            at = crate::time::clock_turned_back(zone, at, end).filter(|back| *back < end).unwrap_or(end);
        }
        at
    }

    fn date_at(&self, zone: Tz, d: NaiveDate) -> DateTime<Utc> {
        resolve_local(zone, d.and_hms_opt(self.send_hour, 0, 0).unwrap_or_default())
    }

    /// Raw occurrences of trigger `i` whose raw due instant is in `[lo, hi]`
    /// (`scheduling`: only their instants and whether they were sent matter).
    fn occurrences(
        &self,
        i: usize,
        ctx: &Context<'_>,
        (lo, hi): (DateTime<Utc>, DateTime<Utc>),
        scheduling: bool,
        out: &mut Vec<Occurrence>,
    ) {
        let t = &self.triggers[i];
        let st = ctx.member;
        let zone = ctx.zone;
        // Payloads are built only in runs (scheduling needs the instants only).
        let checking = ctx.checking;
        // Keys and payloads are built only for occurrences inside the window;
        // when scheduling, a key only tells occurrences already sent apart,
        // so none is built for a trigger that has sent this member nothing.
        let keyed = !scheduling || st.outreach.iter().any(|s| s.trigger == t.id);
        let mut push = |key: &dyn Fn() -> String, due: DateTime<Utc>, payload: &dyn Fn() -> serde_json::Value| {
            if lo <= due && due <= hi {
                let payload = if checking { payload() } else { serde_json::Value::Null };
                let key = if keyed { key() } else { String::new() };
                out.push(Occurrence { trigger: i, key, due, payload });
            }
        };
        let years = || local_date(zone, lo).year() - 1..=local_date(zone, hi).year() + 1;
        match &t.when {
            TriggerKind::Birthday { days_before } => {
                let Some(b) = st.profile.birthday else { return };
                for y in years() {
                    let day = same_day_in_year(b, y);
                    let due = self.date_at(zone, day - chrono::Days::new(u64::from(*days_before)));
                    push(&|| y.to_string(), due, &|| serde_json::json!({ "birthday": day.to_string() }));
                }
            }
            TriggerKind::Anniversary { days_before } => {
                let joined = st.profile.joined_at.unwrap_or(st.created_at);
                let first = local_date(zone, joined);
                for y in years().filter(|y| *y > first.year()) {
                    let day = same_day_in_year(first, y);
                    let due = self.date_at(zone, day - chrono::Days::new(u64::from(*days_before)));
                    let n = y - first.year();
                    push(&|| y.to_string(), due, &|| serde_json::json!({ "years": n, "anniversary": day.to_string() }));
                }
            }
            TriggerKind::MemberDay { day } => {
                let mut m = crate::time::first_of_month_after(local_date(zone, lo), 0);
                let last = local_date(zone, hi);
                m = m.pred_opt().map_or(m, |p| crate::time::first_of_month_after(p, 0));
                while m <= last {
                    let next = crate::time::first_of_month_after(m, 1);
                    let dim = (next - m).num_days() as u32;
                    let d = m.with_day((*day).min(dim)).unwrap_or(m);
                    push(&|| format!("{:04}-{:02}", m.year(), m.month()), self.date_at(zone, d), &|| {
                        serde_json::json!({})
                    });
                    m = next;
                }
            }
            TriggerKind::PointsExpiring { point_type, days } => {
                let floor = ctx.now.min(hi);
                // Only expiries whose warning can fall in `[lo, hi]` are
                // looked at further (see `warned_within`): the others cost a
                // comparison each, where a member's every open lot went
                // through its point type and the zone's calendar on every
                // wake-up (with thousands of lots, most of what an order cost).
                let (first, last) = warned_within(*days, (lo, hi));
                // No lot expires before the member's earliest lot activation
                // or expiry: when that is later, no lot is read at all.
                if st.lots_quiet_until(last) {
                    return;
                }
                let expiring = st
                    .lots
                    .iter()
                    .filter(|l| l.remaining > 0)
                    .filter_map(|l| l.expires_at.filter(|e| *e > floor && first <= *e && *e <= last).map(|e| (e, l)))
                    .filter(|(_, l)| &l.point_type == point_type)
                    .map(|(e, l)| (e, l.remaining));
                by_instant(expiring, |e, points| {
                    let due = crate::time::sub_local_days(ctx.program_tz, e, *days);
                    push(
                        &|| crate::time::instant_key(point_type, e),
                        due,
                        &|| serde_json::json!({ "point_type": point_type, "points": points, "expires_at": e }),
                    );
                });
            }
            TriggerKind::TierRetention { days } => {
                let Some(tier) = ctx.tier else { return };
                let Some(by) = tier.deadline.retain.as_ref().and_then(|r| r.by) else { return };
                let due = crate::time::sub_local_days(ctx.program_tz, by, *days);
                let key = || crate::time::instant_key(&tier.deadline.tier, by);
                if !ctx.checking {
                    push(&key, due, &|| serde_json::Value::Null);
                    return;
                }
                if !(lo <= due && due <= hi) {
                    return;
                }
                // Only now the metric is summed (the message says what is missing).
                let Some(view) = (tier.progress)() else { return };
                let Some(retain) = view.retain.as_ref().filter(|r| !r.missing.is_met()) else { return };
                push(
                    &key,
                    due,
                    &|| serde_json::json!({ "tier": view.tier, "by": by, "missing": retain.missing, "message": retain.message }),
                );
            }
            TriggerKind::StageEntered { stage } => {
                for c in st.stage_history.iter().filter(|c| c.to == *stage) {
                    push(
                        &|| crate::time::instant_key(stage.as_str(), c.at),
                        c.at,
                        &|| serde_json::json!({ "stage": stage, "from": c.from.map(Stage::as_str), "reason": c.reason }),
                    );
                }
            }
            TriggerKind::UnpaidOrder { minutes } => {
                if !st.may_have_unpaid_orders() {
                    return;
                }
                for o in st.orders.values() {
                    // Also when scheduling: a paid order never becomes
                    // unpaid again, and paying it is a command, which
                    // derives the wake-up anew. (Scheduling every order
                    // woke each buyer once, `minutes` after paying, for
                    // nothing.)
                    if o.order.status != OrderStatus::Placed {
                        continue;
                    }
                    let due = o.order.placed_at + Duration::minutes(i64::from(*minutes));
                    push(
                        &|| o.order.id.clone(),
                        due,
                        &|| serde_json::json!({ "order_id": o.order.id, "amount": o.order.amount.to_string() }),
                    );
                }
            }
            TriggerKind::CartAbandoned { minutes, event } => {
                let wait = Duration::minutes(i64::from(*minutes));
                let carts: Vec<_> = st.engagements.iter().filter(|e| &e.kind == event).collect();
                for (k, e) in carts.iter().enumerate() {
                    let due = e.at + wait;
                    if ctx.checking {
                        // A later cart event within the wait restarts it; an order ends it.
                        let again = carts.get(k + 1).is_some_and(|n| n.at <= due);
                        let ordered = st.orders.values().any(|o| o.order.placed_at > e.at && o.order.placed_at <= due);
                        if again || ordered {
                            continue;
                        }
                    }
                    push(
                        &|| crate::time::rfc3339(e.at),
                        due,
                        &|| serde_json::json!({ "event": event, "sku": e.sku, "reference": e.reference }),
                    );
                }
            }
            TriggerKind::SegmentEntered { segment } => {
                for c in st.segment_changes.iter().filter(|c| c.entered && &c.segment == segment) {
                    push(
                        &|| crate::time::instant_key(segment, c.at),
                        c.at,
                        &|| serde_json::json!({ "segment": segment }),
                    );
                }
            }
            TriggerKind::OrderCare { days } => {
                for o in st.orders.values() {
                    let Some(done) = o.completed_at else { continue };
                    // A completed order cancelled since is never
                    // completed again, and one refunded in full was given
                    // back (asking how it went would jar): no care for
                    // either, and scheduling skips them too (refunds are
                    // never undone).
                    if o.order.status != OrderStatus::Completed || o.refunded_in_full() {
                        continue;
                    }
                    push(
                        &|| o.order.id.clone(),
                        crate::time::add_local_days(zone, done, *days),
                        &|| serde_json::json!({ "order_id": o.order.id }),
                    );
                }
            }
            TriggerKind::LowRating { max_rating, max_nps, delay_minutes } => {
                let wait = Duration::minutes(i64::from(*delay_minutes));
                let f = &st.feedback;
                for r in f.reviews.values().filter(|r| u32::from(r.rating) <= *max_rating) {
                    push(&|| Behind::fact(FactKind::Review, &r.id).to_string(), r.at + wait, &|| {
                        serde_json::json!({ "source": "review", "review_id": r.id, "rating": r.rating,
                                            "sku": r.sku, "order_id": r.order_id })
                    });
                }
                let low = |s: &crate::feedback::Survey| match s.kind {
                    SurveyKind::Csat => u32::from(s.score) <= *max_rating,
                    SurveyKind::Nps => max_nps.is_some_and(|m| u32::from(s.score) <= m),
                };
                for s in f.surveys.values().filter(|s| low(s)) {
                    push(&|| Behind::fact(FactKind::Survey, &s.id).to_string(), s.at + wait, &|| {
                        serde_json::json!({ "source": s.kind, "survey_id": s.id, "score": s.score,
                                            "ticket_id": s.ticket_id })
                    });
                }
            }
            TriggerKind::TicketClosed { delay_minutes } => {
                let wait = Duration::minutes(i64::from(*delay_minutes));
                let f = &st.feedback;
                for t in f.tickets.values() {
                    let Some(closed) = t.closed_at.filter(|_| t.status == TicketStatus::Closed) else { continue };
                    // Checked as of the run: an answered survey for the ticket ends it.
                    if ctx.checking && f.surveys.values().any(|s| s.ticket_id.as_deref() == Some(t.id.as_str())) {
                        continue;
                    }
                    push(&|| t.id.clone(), closed + wait, &|| {
                        serde_json::json!({ "ticket_id": t.id, "kind": t.kind, "order_id": t.order_id,
                                            "resolution_minutes": t.resolution_minutes() })
                    });
                }
            }
        }
    }

    /// The occurrences (trigger, key) the runs up to `from` had reached with
    /// the member in `zone`: due (after deferral there) by `from`, from two
    /// days before `lo` (no two zones are more than 26 hours apart).
    ///
    /// Why: after a change of zone, an occurrence due before `from` in the
    /// new zone was looked at by an earlier run only if it was due by then
    /// in the old one too; the others (a member day at 10:00 in Shanghai
    /// when the runs had waited for 10:00 in Los Angeles) are looked at now,
    /// and nothing a run had already decided (sent, or suppressed) is, also
    /// when the new zone puts it after `from` (a move west).
    fn reached(
        &self,
        ctx: &Context<'_>,
        zone: Tz,
        lo: DateTime<Utc>,
        from: DateTime<Utc>,
    ) -> std::collections::BTreeSet<(usize, String)> {
        let before = Context { zone, now: from, checking: false, ..*ctx };
        let mut occ = Vec::new();
        for i in 0..self.triggers.len() {
            self.occurrences(i, &before, (lo - Duration::days(2), from), false, &mut occ);
        }
        occ.into_iter().filter(|o| self.defer(zone, o.due) <= from).map(|o| (o.trigger, o.key)).collect()
    }

    /// Run the triggers for one member over `(member.outreach_through, now]`.
    pub fn run(&self, ctx: &Context<'_>) -> Run {
        let st = ctx.member;
        let from = st.outreach_through.unwrap_or(st.created_at);
        let mut run = Run::default();
        if ctx.now <= from || !st.is_active() {
            return run;
        }
        let stale = ctx.now - Duration::hours(i64::from(self.max_delay_hours));
        // Facts recorded behind the last run: their messages due before it
        // count too, unless stale (see `MemberState::outreach_behind`).
        let start = if st.outreach_behind.is_empty() { from.max(stale) } else { stale };
        // Raw instants up to a day before `start` can be deferred into the range.
        let lo = start - Duration::days(1);
        // After a change of zone, what the runs before it had reached.
        let reached = st.zone_behind().map(|zone| self.reached(ctx, zone.unwrap_or(ctx.program_tz), lo, from));
        let decided = |o: &Occurrence| reached.as_ref().is_some_and(|r| r.contains(&(o.trigger, o.key.clone())));
        let moved = |o: &Occurrence| reached.is_some() && !decided(o);
        let behind = |due: DateTime<Utc>, o: &Occurrence| {
            moved(o)
                || match self.triggers[o.trigger].when {
                    TriggerKind::UnpaidOrder { .. } | TriggerKind::OrderCare { .. } => {
                        st.is_behind(FactKind::Order, &o.key)
                    }
                    TriggerKind::CartAbandoned { .. } => st.is_behind(FactKind::Engagement, &o.key),
                    TriggerKind::TicketClosed { .. } => st.is_behind(FactKind::Ticket, &o.key),
                    // Keyed by point type and expiry instant, as the lots are noted.
                    TriggerKind::PointsExpiring { .. } => st.is_behind(FactKind::Expiry, &o.key),
                    // A birthday set since the last run: its greeting, whenever due.
                    TriggerKind::Birthday { .. } => st.is_kind_behind(FactKind::Birthday),
                    // Keyed `review:<id>` or `survey:<id>` already.
                    TriggerKind::LowRating { .. } => o
                        .key
                        .split_once(':')
                        .and_then(|(kind, id)| Some((FactKind::parse(kind)?, id)))
                        .is_some_and(|(kind, id)| st.is_behind(kind, id)),
                    // A reduction dated at or before the warning's (deferred) due
                    // instant: a run reaching it would have found the threshold missed.
                    TriggerKind::TierRetention { .. } => st.reduced_behind().is_some_and(|r| r <= due),
                    _ => false,
                }
        };
        let mut occ = Vec::new();
        for i in 0..self.triggers.len() {
            self.occurrences(i, ctx, (lo, ctx.now), false, &mut occ);
        }
        let mut due: Vec<(DateTime<Utc>, Occurrence)> = occ
            .into_iter()
            .map(|o| (self.defer(ctx.zone, o.due), o))
            // After a change of zone, one a run had decided in the old zone is
            // not decided again, wherever the new one puts it.
            .filter(|(d, o)| {
                ((*d > from && !decided(o)) || behind(*d, o)) && *d <= ctx.now && *d >= stale && *d >= st.created_at
            })
            .collect();
        due.sort_by(|a, b| (a.0, a.1.trigger, &a.1.key).cmp(&(b.0, b.1.trigger, &b.1.key)));
        // What went out before and a cap can still count (every item below
        // is due after `lo`, so its windows start after `lo` less the longest
        // cap), and whether it was marketing (a trigger no longer in the
        // programme counts as marketing).
        let marketing = |trigger: &str| self.triggers.iter().find(|t| t.id == trigger).is_none_or(|t| t.marketing);
        let mut sent: Vec<(DateTime<Utc>, bool)> = match self.frequency_cap.iter().map(|c| c.days).max() {
            None => Vec::new(),
            Some(days) => {
                let horizon = lo - Duration::days(i64::from(days));
                st.outreach.iter().filter(|s| s.due_at > horizon).map(|s| (s.due_at, marketing(&s.trigger))).collect()
            }
        };
        for (at, o) in due {
            let t = &self.triggers[o.trigger];
            if st.outreach.iter().any(|s| s.trigger == t.id && s.occurrence == o.key) {
                continue;
            }
            let suppress = |reason| Suppressed { trigger: t.id.clone(), occurrence: o.key.clone(), due_at: at, reason };
            let consented = |c: &&String| !t.marketing || st.consents.get(*c).is_some_and(|c| c.granted);
            let Some(channel) = t.channels.iter().find(consented) else {
                run.suppressed.push(suppress(SuppressReason::NoConsent));
                continue;
            };
            let full = |cap: &FrequencyCap| {
                let window = Duration::days(i64::from(cap.days));
                let recent = sent.iter().filter(|(s, m)| *s > at - window && *s <= at && cap.counts(*m));
                recent.count() >= cap.max as usize
            };
            if self.frequency_cap.iter().any(|cap| cap.counts(t.marketing) && full(cap)) {
                run.suppressed.push(suppress(SuppressReason::FrequencyCap));
                continue;
            }
            let mut payload = o.payload;
            if let serde_json::Value::Object(map) = &mut payload {
                for (k, v) in &t.payload {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            if !self.frequency_cap.is_empty() {
                sent.push((at, t.marketing));
            }
            run.emitted.push(OutreachItem {
                id: format!("{}:{}:{}", st.id, t.id, o.key),
                member_id: st.id.clone(),
                trigger: t.id.clone(),
                occurrence: o.key,
                channel: channel.clone(),
                due_at: at,
                payload,
            });
        }
        run
    }

    /// The earliest instant after `after` at which a run could emit
    /// something for this member (conditions are re-checked then).
    pub fn next_due(&self, ctx: &Context<'_>, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !ctx.member.is_active() || self.triggers.is_empty() {
            return None;
        }
        let ctx = Context { checking: false, now: after, ..*ctx };
        // Most members have something within weeks (a monthly member day, an
        // expiry warning): look five weeks ahead first, which computes a
        // fraction of the occurrences. Deferral only moves an instant later,
        // so an answer inside the short window is also the answer of the
        // whole 400-day window; otherwise look again over all of it.
        let near = after + Duration::days(35);
        match self.first_due(&ctx, after, near) {
            Some(d) if d <= near => Some(d),
            _ => self.first_due(&ctx, after, after + Duration::days(400)),
        }
    }

    /// The earliest deferred instant after `after` of the occurrences whose
    /// raw instant is in `[after - 1 day, hi]` and that were not sent yet.
    fn first_due(&self, ctx: &Context<'_>, after: DateTime<Utc>, hi: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut occ = Vec::new();
        for i in 0..self.triggers.len() {
            self.occurrences(i, ctx, (after - Duration::days(1), hi), true, &mut occ);
        }
        let done = |o: &Occurrence| {
            let id = &self.triggers[o.trigger].id;
            ctx.member.outreach.iter().any(|s| &s.trigger == id && s.occurrence == o.key)
        };
        occ.iter().filter(|o| !done(o)).map(|o| self.defer(ctx.zone, o.due)).filter(|d| *d > after).min()
    }
}

/// Bounds on the expiries whose warning `days` local days before can fall
/// in `[lo, hi]`: a wider span, never a narrower one.
///
/// Why a span that is not exact: a warning is `days` calendar days before
/// the expiry in the programme's zone, which is `days` × 24 hours give or
/// take the change of the zone's offset in between (an hour for daylight
/// saving; 24 hours at the most in tzdb, when Samoa crossed the date line).
/// Three days of slack on each side cover every zone, and the exact instant
/// is still computed for the expiries inside.
fn warned_within(days: u32, (lo, hi): (DateTime<Utc>, DateTime<Utc>)) -> (DateTime<Utc>, DateTime<Utc>) {
    let (lead, slack) = (Duration::days(i64::from(days)), Duration::days(3));
    let first = lead.checked_sub(&slack).and_then(|d| lo.checked_add_signed(d));
    let last = lead.checked_add(&slack).and_then(|d| hi.checked_add_signed(d));
    (first.unwrap_or(DateTime::<Utc>::MIN_UTC), last.unwrap_or(DateTime::<Utc>::MAX_UTC))
}

/// Call `f` with each instant of `items` and the sum of its points,
/// earliest first.
///
/// Why not a map or a sorted copy: the points-expiring trigger asks this of
/// a member's lots on every wake-up, and lots come in earning order, which
/// is nearly always expiry order. Sorted input is summed run by run as it
/// comes, with nothing allocated; only unsorted input is copied and sorted.
fn by_instant<I>(items: I, mut f: impl FnMut(DateTime<Utc>, i64))
where
    I: Iterator<Item = (DateTime<Utc>, i64)> + Clone,
{
    let mut runs = |items: &mut dyn Iterator<Item = (DateTime<Utc>, i64)>| {
        let mut run: Option<(DateTime<Utc>, i64)> = None;
        for (at, points) in items {
            match &mut run {
                Some((same, sum)) if *same == at => *sum += points,
                _ => {
                    if let Some((done, sum)) = run.replace((at, points)) {
                        f(done, sum);
                    }
                }
            }
        }
        if let Some((done, sum)) = run {
            f(done, sum);
        }
    };
    let mut items = items;
    if items.clone().is_sorted_by_key(|(at, _)| at) {
        runs(&mut items);
    } else {
        let mut sorted: Vec<_> = items.collect();
        sorted.sort_by_key(|(at, _)| *at);
        runs(&mut sorted.into_iter());
    }
}

/// The member's tier as the tier-retention trigger sees it.
#[derive(Clone, Copy)]
pub struct TierInfo<'a> {
    /// The tier and its retention deadline ([`crate::tier::schedule_view`]):
    /// enough to know when a retention message would be due.
    pub deadline: &'a TierView,
    /// The view with progress ([`crate::tier::Standing::view`]: the qualifying metric
    /// summed, "spend 120.00 more" messages), asked for only when a
    /// retention message falls due inside a run's window.
    pub progress: &'a dyn Fn() -> Option<TierView>,
}

/// What a trigger run looks at for one member.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub member: &'a MemberState,
    /// The member's zone (programme zone when the member has none).
    pub zone: Tz,
    pub program_tz: Tz,
    /// The member's tier, when a trigger looks at it.
    pub tier: Option<TierInfo<'a>>,
    pub now: DateTime<Utc>,
    /// Check conditions (true in runs; false when only scheduling).
    pub checking: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::utc;

    fn cfg() -> OutreachConfig {
        serde_json::from_value(serde_json::json!({
            "triggers": [],
            "quiet_hours": {"start": "21:00:00", "end": "09:00:00"},
        }))
        .unwrap()
    }

    /// `by_instant` sums the points of each instant, earliest first, for
    /// sorted and unsorted input alike.
    #[test]
    fn by_instant_sums_points_per_instant_in_order() {
        use proptest::prelude::*;
        proptest!(|(items in proptest::collection::vec((0i64..6, 1i64..100), 0..12), sort in any::<bool>())| {
            let mut items: Vec<(DateTime<Utc>, i64)> =
                items.into_iter().map(|(h, p)| (utc("2025-01-01T00:00:00Z") + Duration::hours(h), p)).collect();
            if sort {
                items.sort();
            }
            let mut expected = std::collections::BTreeMap::new();
            for (at, p) in &items {
                *expected.entry(*at).or_insert(0) += p;
            }
            let mut got = Vec::new();
            by_instant(items.iter().copied(), |at, p| got.push((at, p)));
            prop_assert_eq!(got, expected.into_iter().collect::<Vec<_>>());
        });
    }

    /// Every expiry whose warning falls in a window is inside the span
    /// `warned_within` lets through, in zones with daylight saving, with
    /// offsets that changed by a day (Samoa, 2011) and in the settled ones.
    #[test]
    fn warned_within_keeps_every_expiry_warned_in_the_window() {
        use proptest::prelude::*;
        let zones: Vec<Tz> =
            ["UTC", "Pacific/Apia", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe", "Asia/Shanghai"]
                .iter()
                .map(|z| z.parse().unwrap())
                .collect();
        proptest!(|(secs in 1_200_000_000i64..1_900_000_000, days in 0u32..800, z in 0usize..6,
                    before in 0i64..3_000, after in 0i64..3_000)| {
            let e = DateTime::from_timestamp(secs, 0).unwrap();
            let due = crate::time::sub_local_days(zones[z], e, days);
            // A window holding the warning, its edges up to two days away.
            let (lo, hi) = (due - Duration::minutes(before), due + Duration::minutes(after));
            let (first, last) = warned_within(days, (lo, hi));
            prop_assert!(first <= e && e <= last, "{e} warned at {due} in [{lo}, {hi}], span [{first}, {last}]");
        });
        // Out of chrono's range, the span opens up rather than panicking.
        let (first, last) = warned_within(u32::MAX, (DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC));
        assert_eq!((first, last), (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC));
    }

    #[test]
    fn quiet_hours_span_midnight_and_defer_to_their_end() {
        let c = cfg();
        let sh: Tz = "Asia/Shanghai".parse().unwrap();
        // 22:30 local -> 09:00 next day local.
        assert_eq!(c.defer(sh, utc("2024-02-28T14:30:00Z")), utc("2024-02-29T01:00:00Z"));
        // 08:59 local -> 09:00 the same day.
        assert_eq!(c.defer(sh, utc("2024-02-29T00:59:00Z")), utc("2024-02-29T01:00:00Z"));
        // 09:00 is allowed.
        assert_eq!(c.defer(sh, utc("2024-02-29T01:00:00Z")), utc("2024-02-29T01:00:00Z"));
        assert!(!c.is_quiet(sh, c.defer(sh, utc("2024-12-31T15:59:00Z"))));
    }

    fn windows(list: serde_json::Value) -> Result<OutreachConfig> {
        let c: OutreachConfig = serde_json::from_value(serde_json::json!({"quiet_hours": list}))
            .map_err(|e| CrmError::config("outreach", e.to_string()))?;
        c.validate(&[], false, &[]).map(|()| c)
    }

    #[test]
    fn several_quiet_windows_defer_past_each_other() {
        let c = windows(serde_json::json!([
            {"start": "21:00:00", "end": "09:00:00"},
            {"start": "17:30:00", "end": "19:00:00"},
            {"start": "12:00:00", "end": "13:00:00"},
            {"start": "13:00:00", "end": "13:30:00"},
            {"start": "08:00:00", "end": "10:00:00"}
        ]))
        .unwrap();
        let utc_tz: Tz = "UTC".parse().unwrap();
        // In the commute: to its end; before it and after it: as is.
        assert_eq!(c.defer(utc_tz, utc("2024-03-01T18:00:00Z")), utc("2024-03-01T19:00:00Z"));
        assert_eq!(c.defer(utc_tz, utc("2024-03-01T17:29:00Z")), utc("2024-03-01T17:29:00Z"));
        assert_eq!(c.defer(utc_tz, utc("2024-03-01T20:59:00Z")), utc("2024-03-01T20:59:00Z"));
        // Windows that touch are left together.
        assert_eq!(c.defer(utc_tz, utc("2024-03-01T12:30:00Z")), utc("2024-03-01T13:30:00Z"));
        // The night ends at 09:00 inside 08:00-10:00: on to 10:00 the next day.
        assert_eq!(c.defer(utc_tz, utc("2024-02-29T22:00:00Z")), utc("2024-03-01T10:00:00Z"));
        assert!(c.is_quiet(utc_tz, utc("2024-03-01T09:30:00Z")));
    }

    #[test]
    fn quiet_hours_read_as_one_window_a_list_or_none() {
        let one = windows(serde_json::json!({"start": "21:00:00", "end": "09:00:00"})).unwrap();
        assert_eq!(one.quiet_hours.len(), 1);
        // One window is written back as one; several as a list; none as null.
        assert_eq!(serde_json::to_value(&one).unwrap()["quiet_hours"]["end"], "09:00:00");
        let two = windows(serde_json::json!([
            {"start": "21:00:00", "end": "09:00:00"}, {"start": "12:00:00", "end": "13:00:00"}
        ]))
        .unwrap();
        let back: OutreachConfig = serde_json::from_value(serde_json::to_value(&two).unwrap()).unwrap();
        assert_eq!(back, two);
        assert_eq!(serde_json::to_value(&two).unwrap()["quiet_hours"][1]["start"], "12:00:00");
        let none = windows(serde_json::Value::Null).unwrap();
        assert!(none.quiet_hours.is_empty());
        assert!(serde_json::to_value(&none).unwrap()["quiet_hours"].is_null());
        // TOML reads the same way (a programme file goes through JSON values).
        let toml: serde_json::Value = toml::from_str(
            "quiet_hours = [\n  { start = \"21:00:00\", end = \"09:00:00\" },\n  { start = \"12:00:00\", end = \"13:00:00\" },\n]",
        )
        .unwrap();
        assert_eq!(windows(toml["quiet_hours"].clone()).unwrap(), two);
        assert!(windows(serde_json::json!("21:00-09:00")).is_err());
        assert!(windows(serde_json::json!([{"start": "21:00:00"}])).is_err());
    }

    #[test]
    fn a_bad_quiet_window_is_named_with_its_reason() {
        let programme = |q: serde_json::Value| {
            crate::program::Program::from_value(serde_json::json!({
                "version": 1, "name": "q", "timezone": "UTC", "currency": "EUR",
                "point_types": [{"id": "reward"}], "earn": {"rules": []},
                "outreach": {"quiet_hours": q}
            }))
        };
        let e =
            programme(serde_json::json!([{"start": "21:00:00", "end": "09:00:00"}, {"start": "09:00:00", "end": "x"}]))
                .unwrap_err();
        assert_eq!(e.field(), Some("outreach.quiet_hours[1].end"));
        assert!(e.to_string().contains("invalid characters"), "{e}");
        let e = programme(serde_json::json!({"start": "25:00:00", "end": "09:00:00"})).unwrap_err();
        assert_eq!(e.field(), Some("outreach.quiet_hours.start"));
        assert!(e.to_string().contains("out of range"), "{e}");
        assert!(programme(serde_json::Value::Null).is_ok());
    }

    #[test]
    fn frequency_caps_read_as_one_or_a_list_and_are_named_as_written() {
        let caps = |v: serde_json::Value| {
            let c: OutreachConfig = serde_json::from_value(serde_json::json!({"frequency_cap": v})).unwrap();
            c.validate(&[], false, &[]).map(|()| c)
        };
        let one = caps(serde_json::json!({"max": 2, "days": 7})).unwrap();
        assert_eq!(one.frequency_cap, vec![FrequencyCap { max: 2, days: 7, applies_to: CapScope::All }]);
        assert_eq!(serde_json::to_value(&one).unwrap()["frequency_cap"]["max"], 2);
        let two = caps(serde_json::json!([{"max": 1, "days": 1}, {"max": 3, "days": 7, "applies_to": "marketing"}]));
        assert_eq!(two.unwrap().frequency_cap[1].applies_to, CapScope::Marketing);
        let bad = caps(serde_json::json!([{"max": 1, "days": 1}, {"max": 0, "days": 7}])).unwrap_err();
        assert_eq!(bad.field(), Some("outreach.frequency_cap[1]"));
        let bad = caps(serde_json::json!({"max": 1, "days": 0})).unwrap_err();
        assert_eq!(bad.field(), Some("outreach.frequency_cap"));
        assert!(caps(serde_json::Value::Null).unwrap().frequency_cap.is_empty());
    }

    #[test]
    fn quiet_hours_must_leave_time_to_send() {
        let whole = windows(serde_json::json!([
            {"start": "09:00:00", "end": "21:00:00"}, {"start": "20:00:00", "end": "09:30:00"}
        ]));
        assert_eq!(whole.unwrap_err().field(), Some("outreach.quiet_hours"));
        let same = windows(serde_json::json!([
            {"start": "21:00:00", "end": "09:00:00"}, {"start": "12:00:00", "end": "12:00:00"}
        ]));
        assert_eq!(same.unwrap_err().field(), Some("outreach.quiet_hours[1]"));
        let one = windows(serde_json::json!({"start": "12:00:00", "end": "12:00:00"}));
        assert_eq!(one.unwrap_err().field(), Some("outreach.quiet_hours"));
        assert!(windows(serde_json::json!([
            {"start": "09:00:00", "end": "21:00:00"}, {"start": "21:00:00", "end": "08:59:00"}
        ]))
        .is_ok());
    }

    proptest::proptest! {
        /// Deferral goes to the first instant outside every window: never
        /// earlier than asked, never quiet, and every minute skipped was quiet.
        #[test]
        fn deferral_lands_on_the_first_open_minute(
            ws in proptest::collection::vec((0u32..24 * 4, 1u32..24 * 4), 1..4),
            minute in 0i64..(60 * 24 * 3),
            zone in 0usize..3,
        ) {
            let Ok(c) = quarter_hour_windows(&ws) else { return Ok(()) };
            let zone: Tz = ["UTC", "Europe/Berlin", "Australia/Lord_Howe"][zone].parse().unwrap();
            // Around the spring DST change in Berlin.
            let t = utc("2024-03-30T00:00:00Z") + Duration::minutes(minute);
            deferral_is_first_open_minute(&c, zone, t)?;
        }

        /// The same over a whole year of zones whose clocks change, forward
        /// and back, by an hour or half an hour, at midnight or at 01:00
        /// (Havana and Gaza turn 01:00 back to 00:00, Santiago and Chatham
        /// are in the south, Casablanca changes twice around Ramadan).
        #[test]
        fn deferral_lands_on_the_first_open_minute_in_every_season(
            ws in proptest::collection::vec((0u32..24 * 4, 1u32..24 * 4), 1..4),
            minute in 0i64..(60 * 24 * 366),
            zone in 0usize..10,
        ) {
            let Ok(c) = quarter_hour_windows(&ws) else { return Ok(()) };
            let zone: Tz = [
                "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Pacific/Chatham",
                "Europe/London", "America/St_Johns", "Africa/Casablanca", "America/Havana", "Asia/Gaza",
            ][zone].parse().unwrap();
            deferral_is_first_open_minute(&c, zone, utc("2024-01-01T00:00:00Z") + Duration::minutes(minute))?;
        }
    }

    /// Quiet hours from (start, length) pairs in quarter hours of the day
    /// (the generated windows of the deferral properties), validated.
    fn quarter_hour_windows(ws: &[(u32, u32)]) -> Result<OutreachConfig> {
        let t = |q: u32| format!("{:02}:{:02}:00", (q / 4) % 24, (q % 4) * 15);
        windows(ws.iter().map(|&(a, len)| serde_json::json!({"start": t(a), "end": t(a + len)})).collect())
    }

    /// `defer(t)` is open, not before `t`, and every minute it skips is quiet.
    fn deferral_is_first_open_minute(
        c: &OutreachConfig,
        zone: Tz,
        t: DateTime<Utc>,
    ) -> std::result::Result<(), proptest::test_runner::TestCaseError> {
        let d = c.defer(zone, t);
        proptest::prop_assert!(d >= t);
        proptest::prop_assert!(!c.is_quiet(zone, d), "deferred to a quiet {}", d);
        let mut m = t;
        while m < d {
            proptest::prop_assert!(c.is_quiet(zone, m), "{} was open, deferred to {}", m, d);
            m += Duration::minutes(1);
        }
        Ok(())
    }

    /// Deferrals around DST changes that once went wrong (each case failed
    /// on the code before its fix), as (windows, zone, due, deferred to):
    #[test]
    fn deferrals_across_dst_changes_land_on_the_first_open_minute() {
        let cases = [
            // Windows 02:30-05:45 and 05:30-02:00 leave 02:00-02:30 open,
            // which Berlin's spring change (31 March 2024, 02:00 -> 03:00)
            // swallows: from 02:30 on 30 March the first open minute is 02:00
            // on 1 April. The deferral stopped a step short, at 05:45 on
            // 31 March, inside the second window (found by
            // `deferral_lands_on_the_first_open_minute`).
            (
                serde_json::json!([{"start": "02:30:00", "end": "05:45:00"}, {"start": "05:30:00", "end": "02:00:00"}]),
                "Europe/Berlin",
                "2024-03-30T01:30:00Z",
                "2024-04-01T00:00:00Z",
            ),
            // Gaza turns 02:00 back to 01:00 on 26 October 2024, so the night
            // reads 01:15, the end of 05:00-01:15, twice: a message due at
            // the second 01:00 waits for the second 01:15. It stopped at
            // once, inside the window (the first 01:15 was already past).
            (
                serde_json::json!([{"start": "05:00:00", "end": "01:15:00"}]),
                "Asia/Gaza",
                "2024-10-25T23:00:00Z",
                "2024-10-25T23:15:00Z",
            ),
            // Havana turns 01:00 back to 00:00 on 3 November 2024: with quiet
            // hours 00:15-01:00, a message due at the first 00:15 goes out at
            // the second 00:00, open again. It waited until 01:00.
            (
                serde_json::json!([{"start": "00:15:00", "end": "01:00:00"}]),
                "America/Havana",
                "2024-11-03T04:15:00Z",
                "2024-11-03T05:00:00Z",
            ),
        ];
        for (list, zone, due, expected) in cases {
            let c = windows(list).unwrap();
            let zone: Tz = zone.parse().unwrap();
            let d = c.defer(zone, utc(due));
            assert_eq!(d, utc(expected), "{zone}, due {due}");
            assert!(!c.is_quiet(zone, d));
            deferral_is_first_open_minute(&c, zone, utc(due)).unwrap();
        }
    }

    #[test]
    fn leap_day_birthdays_fall_on_28_february() {
        let b = NaiveDate::from_ymd_opt(2000, 2, 29).unwrap();
        assert_eq!(same_day_in_year(b, 2025), NaiveDate::from_ymd_opt(2025, 2, 28).unwrap());
        assert_eq!(same_day_in_year(b, 2028), NaiveDate::from_ymd_opt(2028, 2, 29).unwrap());
    }
}
