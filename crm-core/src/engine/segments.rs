//! Segments over the engine's members: each field of the rule language
//! answered from a member's state as of an instant, for one member (after
//! each fact, so a host can react in real time) or for everyone.

use std::borrow::Cow;
use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Months, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::Engine;
use crate::error::{CrmError, Result};
use crate::member::MemberId;
use crate::program::Program;
use crate::segment::{Field, FieldSource, FieldValue, Rule, SavedSegment, SegmentChange, Window, WindowUnit};
use crate::state::{Event, MemberState};
use crate::store::Store;
use crate::time::{local_date, same_day_in_year, sub_local_days, sub_local_months};

/// A member's fields for segment rules, as of `at`. RFM fields are relative
/// to the whole population and are not answered here (they are missing, so
/// comparisons on them are false); compute them with [`crate::analytics`].
pub struct MemberFields<'a> {
    program: &'a Program,
    st: &'a MemberState,
    at: DateTime<Utc>,
}

impl<'a> MemberFields<'a> {
    /// The fields of `st` as of `at` under `program`.
    pub fn new(program: &'a Program, st: &'a MemberState, at: DateTime<Utc>) -> Self {
        MemberFields { program, st, at }
    }

    fn tz(&self) -> Tz {
        self.program.timezone
    }

    /// Start of a window ending at `at` (exclusive), in the programme zone.
    fn since(&self, w: &Window) -> DateTime<Utc> {
        let (tz, at) = (self.tz(), self.at);
        match w.unit {
            WindowUnit::Days => sub_local_days(tz, at, w.count),
            WindowUnit::Weeks => sub_local_days(tz, at, w.count.saturating_mul(7)),
            WindowUnit::Months => sub_local_months(tz, at, w.count),
            WindowUnit::Years => sub_local_months(tz, at, w.count.saturating_mul(12)),
        }
    }
}

fn text(s: &Option<String>) -> Option<FieldValue<'_>> {
    s.as_deref().map(|v| FieldValue::Text(Cow::Borrowed(v)))
}

impl FieldSource for MemberFields<'_> {
    fn value(&self, field: &Field) -> Option<FieldValue<'_>> {
        let st = self.st;
        let p = &st.profile;
        let at = self.at;
        Some(match field {
            Field::Name => return text(&p.name),
            Field::Email => return text(&p.email),
            Field::Phone => return text(&p.phone),
            Field::Region => return text(&p.region),
            Field::JoinChannel => return text(&p.join_channel),
            Field::Gender => {
                let g = serde_json::to_value(p.gender.as_ref()?).ok()?;
                FieldValue::Text(Cow::Owned(g.as_str()?.to_string()))
            }
            Field::Birthday => FieldValue::Date(p.birthday?),
            Field::JoinedAt => FieldValue::Date(local_date(self.tz(), p.joined_at.unwrap_or(st.created_at))),
            Field::Attr(name) => FieldValue::Json(Cow::Borrowed(p.attributes.get(name)?)),
            Field::Tags => FieldValue::TextSet(Cow::Borrowed(&st.tags)),
            Field::Channels => {
                let used: BTreeSet<String> = st
                    .orders
                    .values()
                    .filter(|o| o.order.status.earns() && o.order.earned_at() <= at)
                    .filter_map(|o| o.order.channel.clone())
                    .collect();
                FieldValue::TextSet(Cow::Owned(used))
            }
            Field::Tier => {
                let t = st.tier_history.iter().rev().find(|c| c.at <= at).map(|c| c.to.as_str());
                let t = t.or_else(|| self.program.tiers.as_ref().map(|l| l.base().id.as_str()))?;
                FieldValue::Text(Cow::Borrowed(t))
            }
            Field::Stage => {
                let lc = self.program.lifecycle_or_default();
                FieldValue::Text(Cow::Borrowed(lc.stage_at(self.tz(), &st.order_times(), at).as_str()))
            }
            Field::Balance(pt) => FieldValue::Int(st.balance(pt, at).available),
            Field::Orders(w) => {
                let from = self.since(w);
                FieldValue::Int(st.activity.iter().filter(|a| a.at > from && a.at <= at).map(|a| a.orders).sum())
            }
            Field::Spend(w) => {
                let from = self.since(w);
                let spend: Decimal = st.activity.iter().filter(|a| a.at > from && a.at <= at).map(|a| a.spend).sum();
                FieldValue::Money(spend)
            }
            Field::DaysSinceLastOrder => {
                let last = st.activity.iter().filter(|a| a.orders > 0 && a.at <= at).map(|a| a.at).max()?;
                FieldValue::Int((local_date(self.tz(), at) - local_date(self.tz(), last)).num_days())
            }
            Field::Events(kind, w) => {
                let from = self.since(w);
                let n = st.engagements.iter().filter(|e| &e.kind == kind && e.at > from && e.at <= at).count();
                FieldValue::Int(n as i64)
            }
            Field::BirthdayWithin(w) => {
                let b = p.birthday?;
                let zone = p.timezone.unwrap_or(self.tz());
                let today = local_date(zone, at);
                let this_year = same_day_in_year(b, today.year());
                let next = if this_year >= today { this_year } else { same_day_in_year(b, today.year() + 1) };
                let horizon = match w.unit {
                    WindowUnit::Days => today.checked_add_days(chrono::Days::new(u64::from(w.count))),
                    WindowUnit::Weeks => today.checked_add_days(chrono::Days::new(7 * u64::from(w.count))),
                    WindowUnit::Months => today.checked_add_months(Months::new(w.count)),
                    WindowUnit::Years => today.checked_add_months(Months::new(w.count.saturating_mul(12))),
                }?;
                FieldValue::Bool(next <= horizon)
            }
            Field::Csat(w) => FieldValue::Money(st.feedback.csat_mean(Some(self.since(w)), at)?),
            Field::RatingAvg(w) => FieldValue::Money(st.feedback.rating_mean(Some(self.since(w)), at)?),
            Field::NpsLast => FieldValue::Int(i64::from(st.feedback.nps_last(at)?)),
            Field::OpenTickets => FieldValue::Int(st.feedback.open_tickets(at)),
            Field::Reviews(w) => FieldValue::Int(st.feedback.reviews_in(Some(self.since(w)), at)),
            Field::Tickets(w) => FieldValue::Int(st.feedback.tickets_in(Some(self.since(w)), at)),
            Field::Contacts(w) => FieldValue::Int(st.feedback.contacts_in(Some(self.since(w)), at)),
            // Relative to the population: see the type's docs.
            Field::RfmR | Field::RfmF | Field::RfmM | Field::RfmGroup => return None,
        })
    }

    fn tier_rank(&self, tier: &str) -> Option<u32> {
        self.program.tiers.as_ref()?.index(tier).map(|i| i as u32)
    }
}

impl<S: Store> Engine<S> {
    /// Does the member (following merges) match `rule` at `at`? Call it after
    /// a fact to react in real time.
    pub fn matches(&self, id: &MemberId, rule: &Rule, at: DateTime<Utc>) -> Result<bool> {
        let st = self.resolve(id)?;
        Ok(rule.matches(&MemberFields::new(&self.program, &st, at)))
    }

    /// Every member matching `rule` at `at`, sorted (merged-away and erased
    /// members and members who joined after `at` are left out).
    pub fn segment(&self, rule: &Rule, at: DateTime<Utc>) -> Result<Vec<MemberId>> {
        let mut out = Vec::new();
        self.store.inspect_all(&mut |st| {
            if st.is_active() && st.created_at <= at && rule.matches(&MemberFields::new(&self.program, st, at)) {
                out.push(st.id.clone());
            }
            Ok(())
        })?;
        out.sort();
        Ok(out)
    }

    /// Re-evaluate a saved segment at `at`: its snapshot moves on, the
    /// entries and exits since the previous run come back, and each is
    /// recorded on the member (`Event::SegmentChanged`; the
    /// `segment_entered` outreach trigger fires on entries). The host keeps
    /// the segment. Safe to repeat after a crash: a member already recorded
    /// as in (or out of) the segment is not recorded again.
    pub fn refresh_segment(&self, segment: &mut SavedSegment, at: DateTime<Utc>) -> Result<Vec<SegmentChange>> {
        if segment.evaluated_at.is_some_and(|t| t > at) {
            return Err(CrmError::invalid("at", "is before the segment's last evaluation"));
        }
        crate::facts::check_ref(&segment.id, "segment.id")?;
        let members = self.segment(&segment.rule, at)?;
        let mut next = segment.clone();
        let changes = next.replace(members, at);
        for chunk in changes.chunks(1000) {
            self.record_segment_changes(chunk, at)?;
        }
        *segment = next;
        Ok(changes)
    }

    fn record_segment_changes(&self, changes: &[SegmentChange], at: DateTime<Utc>) -> Result<()> {
        self.optimistically(|| {
            let mut tx = super::Tx::new(&self.program, &self.store, at);
            for c in changes {
                if !tx.load(&c.member_id)? {
                    continue;
                }
                let st = tx.state(&c.member_id);
                if st.is_active() && st.segments.contains(&c.segment_id) != c.entered {
                    let event = Event::SegmentChanged { at, segment: c.segment_id.clone(), entered: c.entered };
                    tx.emit(&c.member_id, event);
                }
            }
            Ok(super::Attempt::Commit(tx.finish(), ()))
        })
    }
}
