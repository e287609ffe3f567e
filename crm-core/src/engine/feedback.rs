//! Service and feedback records in the engine: contacts, tickets, reviews
//! and surveys recorded on the member (idempotent by their id), the review
//! bonus, the member's records and the programme-wide feedback report. The
//! rules are in [`crate::feedback`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{check_ref, Engine, Tx};
use crate::command::{Command, Outcome};
use crate::error::{CrmError, Result};
use crate::feedback::{
    check_opt_ref, check_score, check_text, Contact, Feedback, FeedbackReport, Review, ScoreTally, Survey, SurveyKind,
    Ticket, TicketStatus, TicketTally,
};
use crate::lifecycle::Stage;
use crate::member::{MemberId, MemberStatus};
use crate::program::Action;
use crate::segment::{Field, FieldSource, FieldValue, Rule};
use crate::shared::Shared;
use crate::state::Event;
use crate::store::Store;

use super::segments::MemberFields;

/// A record already held under the same id: the same content is a repeat
/// (the first result), other content a conflict.
fn repeat_or_conflict(what: &str, id: &str, same: bool) -> Result<()> {
    if same {
        Ok(())
    } else {
        Err(CrmError::conflict(format!("{what} {id} was already recorded with other content")))
    }
}

fn ticket_outcome(member_id: &MemberId, t: &Ticket) -> Outcome {
    Outcome::Ticket {
        member_id: member_id.clone(),
        ticket_id: t.id.clone(),
        status: t.status,
        resolution_minutes: t.resolution_minutes(),
    }
}

impl<S: Store> Tx<'_, S> {
    /// The effective time of a record: `at` (default `now`), not in the
    /// future and not before the member joined.
    fn record_time(&self, id: &MemberId, at: Option<DateTime<Utc>>, field: &str) -> Result<DateTime<Utc>> {
        let at = at.unwrap_or(self.now);
        if at > self.now {
            return Err(CrmError::invalid(field, "is in the future"));
        }
        if at < self.state(id).created_at {
            return Err(CrmError::invalid(field, "is before the member joined"));
        }
        Ok(at)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_contact(
        &mut self,
        member_id: &MemberId,
        contact_id: &str,
        channel: &str,
        topic: &str,
        started_at: DateTime<Utc>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(contact_id, "contact_id")?;
        check_ref(channel, "channel")?;
        check_ref(topic, "topic")?;
        let id = self.active(member_id, "member_id")?;
        let started_at = self.record_time(&id, Some(started_at), "started_at")?;
        if let Some(end) = ended_at {
            if end < started_at {
                return Err(CrmError::invalid("ended_at", "is before started_at"));
            }
            if end > self.now {
                return Err(CrmError::invalid("ended_at", "is in the future"));
            }
        }
        let contact =
            Contact { id: contact_id.into(), channel: channel.into(), topic: topic.into(), started_at, ended_at };
        let outcome = Outcome::ContactRecorded { member_id: id.clone(), contact_id: contact_id.into() };
        if let Some(held) = self.state(&id).feedback.contacts.get(contact_id) {
            repeat_or_conflict("contact", contact_id, *held == contact)?;
            return Ok((outcome, Some(id)));
        }
        self.emit(&id, Event::ContactRecorded { at: started_at, contact: Box::new(contact) });
        Ok((outcome, Some(id)))
    }

    pub(super) fn open_ticket(
        &mut self,
        member_id: &MemberId,
        ticket_id: &str,
        kind: &str,
        at: Option<DateTime<Utc>>,
        order_id: &Option<String>,
        subject: &Option<String>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(ticket_id, "ticket_id")?;
        check_ref(kind, "kind")?;
        check_opt_ref(order_id, "order_id")?;
        let subject = check_text(subject, "subject")?;
        let id = self.active(member_id, "member_id")?;
        if let Some(held) = self.state(&id).feedback.tickets.get(ticket_id) {
            let same = held.kind == kind
                && held.order_id == *order_id
                && held.subject == subject
                && at.is_none_or(|a| a == held.opened_at);
            repeat_or_conflict("ticket", ticket_id, same)?;
            // The first result: the ticket as it was opened.
            let first = Ticket { order_id: held.order_id.clone(), ..Ticket::new(ticket_id, kind, held.opened_at) };
            return Ok((ticket_outcome(&id, &first), Some(id)));
        }
        let at = self.record_time(&id, at, "at")?;
        let ticket = Ticket { order_id: order_id.clone(), subject, ..Ticket::new(ticket_id, kind, at) };
        let outcome = ticket_outcome(&id, &ticket);
        self.emit(&id, Event::TicketOpened { at, ticket: Box::new(ticket) });
        Ok((outcome, Some(id)))
    }

    pub(super) fn update_ticket(
        &mut self,
        member_id: &MemberId,
        ticket_id: &str,
        status: TicketStatus,
        at: Option<DateTime<Utc>>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(ticket_id, "ticket_id")?;
        let id = self.active(member_id, "member_id")?;
        let ticket = self
            .state(&id)
            .feedback
            .tickets
            .get(ticket_id)
            .ok_or_else(|| CrmError::NotFound { entity: "ticket", id: format!("{ticket_id} of member {id}") })?;
        // The status it already has: a repeat (a helpdesk re-sending its state).
        if ticket.status == status {
            return Ok((ticket_outcome(&id, ticket), Some(id)));
        }
        if !ticket.status.can_move_to(status) {
            return Err(CrmError::invalid(
                "status",
                format!("ticket {ticket_id} cannot move from {} to {status}", ticket.status),
            ));
        }
        let last = ticket.history.last().map_or(ticket.opened_at, |c| c.at);
        let at = at.unwrap_or(self.now);
        if at > self.now {
            return Err(CrmError::invalid("at", "is in the future"));
        }
        if at < last {
            return Err(CrmError::invalid("at", format!("is before the ticket's last change ({last})")));
        }
        let mut after = ticket.clone();
        after.apply(at, status);
        self.emit(&id, Event::TicketStatusChanged { at, ticket_id: ticket_id.into(), status });
        Ok((ticket_outcome(&id, &after), Some(id)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_review(
        &mut self,
        member_id: &MemberId,
        review_id: &str,
        rating: i64,
        text: &Option<String>,
        sku: &Option<String>,
        order_id: &Option<String>,
        at: Option<DateTime<Utc>>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(review_id, "review_id")?;
        let rating = check_score(rating, 1..=5, "rating")?;
        let text = check_text(text, "text")?;
        check_opt_ref(sku, "sku")?;
        check_opt_ref(order_id, "order_id")?;
        let id = self.active(member_id, "member_id")?;
        if let Some(held) = self.state(&id).feedback.reviews.get(review_id) {
            let same = held.rating == rating
                && held.text == text
                && held.sku == *sku
                && held.order_id == *order_id
                && at.is_none_or(|a| a == held.at);
            repeat_or_conflict("review", review_id, same)?;
            let outcome = Outcome::ReviewRecorded {
                member_id: id.clone(),
                review_id: review_id.into(),
                rating,
                awarded: held.awarded.clone(),
            };
            return Ok((outcome, Some(id)));
        }
        let at = self.record_time(&id, at, "at")?;
        // The programme's review bonus, as `record_action("review")` gives it.
        let awarded = self.award(&id, &Action::Review, at)?;
        let review = Review {
            id: review_id.into(),
            rating,
            text,
            sku: sku.clone(),
            order_id: order_id.clone(),
            at,
            awarded: awarded.clone(),
        };
        self.emit(&id, Event::ReviewRecorded { at, review: Box::new(review) });
        Ok((Outcome::ReviewRecorded { member_id: id.clone(), review_id: review_id.into(), rating, awarded }, Some(id)))
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_survey(
        &mut self,
        member_id: &MemberId,
        survey_id: &str,
        kind: SurveyKind,
        score: i64,
        at: Option<DateTime<Utc>>,
        ticket_id: &Option<String>,
        comment: &Option<String>,
    ) -> Result<(Outcome, Option<MemberId>)> {
        check_ref(survey_id, "survey_id")?;
        let score = check_score(score, kind.range(), "score")?;
        check_opt_ref(ticket_id, "ticket_id")?;
        let comment = check_text(comment, "comment")?;
        let id = self.active(member_id, "member_id")?;
        let outcome = Outcome::SurveyRecorded { member_id: id.clone(), survey_id: survey_id.into(), kind, score };
        let st = self.state(&id);
        if let Some(held) = st.feedback.surveys.get(survey_id) {
            let same = held.kind == kind
                && held.score == score
                && held.ticket_id == *ticket_id
                && held.comment == comment
                && at.is_none_or(|a| a == held.at);
            repeat_or_conflict("survey", survey_id, same)?;
            return Ok((outcome, Some(id)));
        }
        if let Some(t) = ticket_id {
            if !st.feedback.tickets.contains_key(t) {
                return Err(CrmError::NotFound { entity: "ticket", id: format!("{t} of member {id}") });
            }
        }
        let at = self.record_time(&id, at, "at")?;
        let survey = Survey { id: survey_id.into(), kind, score, at, ticket_id: ticket_id.clone(), comment };
        self.emit(&id, Event::SurveyRecorded { at, survey: Box::new(survey) });
        Ok((outcome, Some(id)))
    }
}

impl<S: Store> Engine<S> {
    /// Record a contact with customer service (key `contact:<id>`).
    pub fn record_contact(&self, member_id: &MemberId, contact: Contact, now: DateTime<Utc>) -> Result<Outcome> {
        let cmd = Command::RecordContact {
            member_id: member_id.clone(),
            contact_id: contact.id,
            channel: contact.channel,
            topic: contact.topic,
            started_at: contact.started_at,
            ended_at: contact.ended_at,
        };
        self.submit(None, cmd, now)
    }

    /// Open a ticket of `kind` at `now` (key `ticket:<id>`). For an order
    /// reference, a subject or an earlier time, submit [`Command::OpenTicket`].
    pub fn open_ticket(
        &self,
        member_id: &MemberId,
        ticket_id: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let cmd = Command::OpenTicket {
            member_id: member_id.clone(),
            ticket_id: ticket_id.into(),
            kind: kind.into(),
            at: None,
            order_id: None,
            subject: None,
        };
        self.submit(None, cmd, now)
    }

    /// Move a ticket to `status` at `now` (see the table in [`crate::feedback`]).
    pub fn update_ticket(
        &self,
        member_id: &MemberId,
        ticket_id: &str,
        status: TicketStatus,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let cmd = Command::UpdateTicket { member_id: member_id.clone(), ticket_id: ticket_id.into(), status, at: None };
        self.submit(None, cmd, now)
    }

    /// Record a review rated 1-5 at `now` (key `review:<id>`); it earns the
    /// programme's `review` bonuses. For text, sku, order or an earlier time,
    /// submit [`Command::RecordReview`].
    pub fn record_review(
        &self,
        member_id: &MemberId,
        review_id: &str,
        rating: i64,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let cmd = Command::RecordReview {
            member_id: member_id.clone(),
            review_id: review_id.into(),
            rating,
            text: None,
            sku: None,
            order_id: None,
            at: None,
        };
        self.submit(None, cmd, now)
    }

    /// Record a survey answer at `now` (key `survey:<id>`): CSAT 1-5 or NPS 0-10.
    pub fn record_survey(
        &self,
        member_id: &MemberId,
        survey_id: &str,
        kind: SurveyKind,
        score: i64,
        now: DateTime<Utc>,
    ) -> Result<Outcome> {
        let cmd = Command::RecordSurvey {
            member_id: member_id.clone(),
            survey_id: survey_id.into(),
            kind,
            score,
            at: None,
            ticket_id: None,
            comment: None,
        };
        self.submit(None, cmd, now)
    }

    /// The member's contacts, tickets, reviews and surveys (following merges).
    pub fn feedback(&self, member_id: &MemberId) -> Result<Feedback> {
        Ok(Shared::into_inner(self.resolve(member_id)?.feedback))
    }

    /// CSAT, NPS and ratings overall, by tier, by stage and by each named
    /// segment rule, and ticket resolution times overall and by kind, from
    /// the facts up to `at` (answers, reviews and resolutions in `(from,
    /// at]`). See [`FeedbackReport`]. Erased members count (their ratings
    /// stay); merged-away records count with their survivor.
    pub fn feedback_report(
        &self,
        from: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        segments: &[(String, Rule)],
    ) -> Result<FeedbackReport> {
        if from.is_some_and(|f| f >= at) {
            return Err(CrmError::invalid("from", "must be before at"));
        }
        for (i, (name, _)) in segments.iter().enumerate() {
            check_ref(name, &format!("segments[{i}].name"))?;
        }
        let tiers: Vec<String> =
            self.program.tiers.as_ref().map(|l| l.levels.iter().map(|t| t.id.clone()).collect()).unwrap_or_default();
        let mut overall = ScoreTally::default();
        let mut by_tier = vec![ScoreTally::default(); tiers.len()];
        let mut by_stage = [ScoreTally::default(); Stage::ALL.len()];
        let mut by_segment = vec![ScoreTally::default(); segments.len()];
        let mut tickets = TicketTally::default();
        let mut by_kind: BTreeMap<String, TicketTally> = BTreeMap::new();
        self.store.inspect_all(&mut |st| {
            if matches!(st.status, MemberStatus::Merged { .. }) || st.created_at > at {
                return Ok(());
            }
            let f = &st.feedback;
            overall.add(f, from, at);
            let fields = MemberFields::new(&self.program, st, at);
            let text = |field: &Field| match fields.value(field) {
                Some(FieldValue::Text(t)) => Some(t.into_owned()),
                _ => None,
            };
            if let Some(i) = text(&Field::Tier).and_then(|t| tiers.iter().position(|x| *x == t)) {
                by_tier[i].add(f, from, at);
            }
            if let Some(i) = text(&Field::Stage).and_then(|s| Stage::ALL.iter().position(|x| x.as_str() == s)) {
                by_stage[i].add(f, from, at);
            }
            for ((_, rule), tally) in segments.iter().zip(by_segment.iter_mut()) {
                if rule.matches(&fields) {
                    tally.add(f, from, at);
                }
            }
            for t in f.tickets.values().filter_map(|t| t.as_of(at)) {
                tickets.add(&t, from, at);
                by_kind.entry(t.kind.clone()).or_default().add(&t, from, at);
            }
            Ok(())
        })?;
        Ok(FeedbackReport {
            at,
            from,
            overall: overall.row("all"),
            by_tier: tiers.iter().zip(&by_tier).map(|(t, tally)| tally.row(t)).collect(),
            by_stage: Stage::ALL.iter().zip(&by_stage).map(|(s, tally)| tally.row(s.as_str())).collect(),
            by_segment: segments.iter().zip(&by_segment).map(|((name, _), tally)| tally.row(name)).collect(),
            tickets_overall: tickets.row("all"),
            tickets_by_kind: by_kind.iter().map(|(k, tally)| tally.row(k)).collect(),
        })
    }
}
