//! Service and feedback records through the engine: merge and erasure,
//! old snapshots, the survey trigger around reopened tickets; property
//! tests of the ticket status machine against an independent table, and of
//! `open_tickets` and `csat(window)` against naive folds of what was
//! recorded. The shared scenarios 51 and 52 cover the rest in all three
//! languages.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rust_decimal::Decimal;
use serde_json::json;

use crm_core::engine::MemberFields;
use crm_core::feedback::{Contact, SurveyKind, TicketStatus};
use crm_core::segment::{Field, FieldSource, FieldValue, Window};
use crm_core::store::Store;
use crm_core::{Command, CrmError, Engine, MemberId, MemberState, MemoryStore, Outcome, Program};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/feedback.txt"))),
        ..ProptestConfig::default()
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

fn program(outreach: serde_json::Value) -> Program {
    Program::from_value(json!({
        "version": 1, "name": "Feedback", "timezone": "UTC", "currency": "CNY",
        "point_types": [{"id": "reward"}],
        "earn": {"bonuses": [{"id": "rv", "action": "review", "point_type": "reward", "points": 5, "max_per_member": 10}]},
        "outreach": outreach,
    }))
    .expect("programme")
}

fn engine(outreach: serde_json::Value, members: &[&str]) -> Engine<MemoryStore> {
    let e = Engine::new(program(outreach), MemoryStore::new());
    for m in members {
        let create = json!({"type": "create_member", "member_id": m, "consents": {"app": true}});
        e.execute(&format!("member:{m}"), serde_json::from_value(create).unwrap(), t0()).unwrap();
    }
    e
}

fn cmd(v: serde_json::Value) -> Command {
    serde_json::from_value(v).expect("command")
}

fn id(s: &str) -> MemberId {
    MemberId::from(s)
}

#[test]
fn merge_moves_records_and_erasure_removes_their_text_everywhere() {
    let e = engine(json!(null), &["ann", "cat"]);
    let at = t0() + Duration::hours(1);
    let review = cmd(json!({"type": "record_review", "member_id": "cat", "review_id": "r1", "rating": 2,
                            "text": "secret-review-text", "sku": "s1"}));
    let first = e.submit(None, review.clone(), at).unwrap();
    assert!(matches!(&first, Outcome::ReviewRecorded { awarded, .. } if awarded["reward"] == 5));
    e.submit(
        None,
        cmd(json!({"type": "open_ticket", "member_id": "ann", "ticket_id": "t1", "kind": "return",
                              "subject": "secret-subject"})),
        at,
    )
    .unwrap();
    e.submit(
        None,
        cmd(json!({"type": "record_survey", "member_id": "ann", "survey_id": "s1", "kind": "nps",
                              "score": 3, "comment": "secret-comment"})),
        at,
    )
    .unwrap();
    e.execute("merge", cmd(json!({"type": "merge", "survivor": "ann", "merged": "cat"})), at).unwrap();
    let f = e.feedback(&id("cat")).unwrap();
    assert_eq!(f.reviews["r1"].rating, 2, "the merged member's review is the survivor's");
    assert!(e.member(&id("cat")).unwrap().feedback.is_empty());
    // Ratings of the merged member count in the survivor's rules.
    assert!(e.matches(&id("ann"), &crm_core::segment::parse("rating_avg(30d) == 2").unwrap(), at).unwrap());

    e.execute("erase", cmd(json!({"type": "erase", "member_id": "ann"})), at).unwrap();
    let f = e.member(&id("ann")).unwrap().feedback;
    assert_eq!((f.reviews["r1"].rating, f.surveys["s1"].score, f.tickets["t1"].kind.as_str()), (2, 3, "return"));
    assert_eq!((&f.reviews["r1"].text, &f.surveys["s1"].comment, &f.tickets["t1"].subject), (&None, &None, &None));
    let mut stored = String::new();
    for m in ["ann", "cat"] {
        stored += &serde_json::to_string(&e.store().events(&id(m)).unwrap()).unwrap();
        stored += &serde_json::to_string(&e.member(&id(m)).unwrap()).unwrap();
    }
    e.store()
        .receipts(&mut |r| {
            stored += &serde_json::to_string(&r).unwrap();
            Ok(())
        })
        .unwrap();
    for secret in ["secret-review-text", "secret-subject", "secret-comment"] {
        assert!(!stored.contains(secret), "{secret} survived erasure");
    }
    assert!(stored.contains("\"rating\":2"));
    // A retry of the original command still gets its first result.
    assert_eq!(e.submit(None, review, at + Duration::hours(5)).unwrap(), first);
}

#[test]
fn snapshots_without_feedback_load_and_with_it_round_trip() {
    let e = engine(json!(null), &["ann"]);
    e.record_review(&id("ann"), "r1", 4, t0()).unwrap();
    e.record_survey(&id("ann"), "s1", SurveyKind::Csat, 5, t0()).unwrap();
    e.open_ticket(&id("ann"), "t1", "repair", t0()).unwrap();
    e.update_ticket(&id("ann"), "t1", TicketStatus::Resolved, t0() + Duration::minutes(90)).unwrap();
    let contact = Contact {
        id: "c1".into(),
        channel: "phone".into(),
        topic: "delivery".into(),
        started_at: t0(),
        ended_at: Some(t0() + Duration::minutes(5)),
    };
    e.record_contact(&id("ann"), contact.clone(), t0() + Duration::hours(2)).unwrap();
    let st = e.member(&id("ann")).unwrap();
    assert_eq!(st.feedback.contacts["c1"], contact);
    let json = serde_json::to_value(&st).unwrap();
    let back: MemberState = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, st);
    let mut old = json;
    old.as_object_mut().unwrap().remove("feedback");
    let old: MemberState = serde_json::from_value(old).unwrap();
    assert!(old.feedback.is_empty());
    assert_eq!(st.feedback.tickets["t1"].resolution_minutes(), Some(90));
}

#[test]
fn a_ticket_is_surveyed_once_and_not_while_reopened() {
    let outreach = json!({"triggers": [{"id": "ask", "when": {"type": "ticket_closed", "delay_minutes": 60},
                                        "channels": ["app"]}]});
    let e = engine(outreach, &["ann"]);
    let h = |n: i64| t0() + Duration::hours(n);
    let mv = |status: TicketStatus, at| e.update_ticket(&id("ann"), "t1", status, at).unwrap();
    let due = |at, key: &str| match e.execute(key, Command::run_due(), at).unwrap() {
        Outcome::Due { outreach, .. } => outreach,
        other => panic!("{other:?}"),
    };
    e.open_ticket(&id("ann"), "t1", "return", h(1)).unwrap();
    mv(TicketStatus::Closed, h(2));
    mv(TicketStatus::Open, h(2) + Duration::minutes(30));
    assert!(due(h(4), "d1").is_empty(), "reopened before the survey was due");
    mv(TicketStatus::Closed, h(5));
    let sent = due(h(7), "d2");
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].occurrence.as_str(), sent[0].due_at), ("t1", h(6)));
    assert_eq!(sent[0].payload["resolution_minutes"], json!(240));
    mv(TicketStatus::Open, h(8));
    mv(TicketStatus::Closed, h(9));
    assert!(due(h(12), "d3").is_empty(), "one survey per ticket");
    // Nothing left to schedule: the ticket's one occurrence is done.
    assert!(e.member(&id("ann")).unwrap().next_due_at().is_none());
}

#[test]
fn bad_feedback_is_refused_with_the_field_and_changes_nothing() {
    let e = engine(json!(null), &["ann"]);
    let now = t0() + Duration::days(1);
    let cases = [
        (json!({"type": "record_review", "member_id": "ann", "review_id": "", "rating": 3}), "review_id"),
        (json!({"type": "record_review", "member_id": "ann", "review_id": "r", "rating": -1}), "rating"),
        (
            json!({"type": "record_review", "member_id": "ann", "review_id": "r", "rating": 3, "text": "x".repeat(4001)}),
            "text",
        ),
        (
            json!({"type": "record_review", "member_id": "ann", "review_id": "r", "rating": 3, "at": "2024-02-01T00:00:00Z"}),
            "at",
        ),
        (json!({"type": "record_survey", "member_id": "ann", "survey_id": "s", "kind": "csat", "score": 6}), "score"),
        (json!({"type": "record_survey", "member_id": "ann", "survey_id": "s", "kind": "nps", "score": -1}), "score"),
        (json!({"type": "open_ticket", "member_id": "ann", "ticket_id": "t", "kind": ""}), "kind"),
        (
            json!({"type": "open_ticket", "member_id": "ann", "ticket_id": "t", "kind": "k", "at": "2024-03-05T00:00:00Z"}),
            "at",
        ),
        (
            json!({"type": "record_contact", "member_id": "ann", "contact_id": "c", "channel": "phone", "topic": "x",
                "started_at": "2024-03-01T10:00:00Z", "ended_at": "2024-03-05T00:00:00Z"}),
            "ended_at",
        ),
        (
            json!({"type": "record_contact", "member_id": "nobody", "contact_id": "c", "channel": "phone", "topic": "x",
                "started_at": "2024-03-01T10:00:00Z"}),
            "",
        ),
    ];
    let before = e.member(&id("ann")).unwrap();
    for (i, (c, field)) in cases.into_iter().enumerate() {
        let err = e.execute(&format!("k{i}"), cmd(c), now).unwrap_err();
        match (&err, field) {
            (CrmError::NotFound { entity: "member", .. }, "") => {}
            (CrmError::Validation { field: f, .. }, want) => assert_eq!(f, want, "case {i}: {err}"),
            other => panic!("case {i}: {other:?}"),
        }
    }
    assert_eq!(e.member(&id("ann")).unwrap(), before);
}

// ----- properties -------------------------------------------------------------------

/// The documented table, written out independently of `TicketStatus::can_move_to`:
/// rows are from, columns to, in the order open, in_progress, waiting_customer, resolved, closed.
const TABLE: [[bool; 5]; 5] = [
    [false, true, true, true, true],
    [false, false, true, true, true],
    [false, true, false, true, true],
    [true, false, false, false, true],
    [true, false, false, false, false],
];

fn status(i: usize) -> TicketStatus {
    TicketStatus::ALL[i]
}

#[derive(Debug, Clone)]
enum Op {
    Open { ticket: u8, minutes: u32 },
    Move { ticket: u8, to: usize, minutes: u32, backdate: bool },
    Csat { score: i64, minutes: u32 },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        1 => (0u8..3, 1u32..3000).prop_map(|(ticket, minutes)| Op::Open { ticket, minutes }),
        4 => (0u8..3, 0usize..5, 0u32..3000, prop::bool::weighted(0.1))
            .prop_map(|(ticket, to, minutes, backdate)| Op::Move { ticket, to, minutes, backdate }),
        2 => (0i64..7, 1u32..6000).prop_map(|(score, minutes)| Op::Csat { score, minutes }),
    ];
    prop::collection::vec(op, 1..40)
}

/// What the test itself remembers of an accepted ticket: when it opened and
/// each accepted move.
#[derive(Debug, Default, Clone)]
struct ModelTicket {
    opened: Option<DateTime<Utc>>,
    moves: Vec<(DateTime<Utc>, usize)>,
}

impl ModelTicket {
    fn status(&self) -> usize {
        self.moves.last().map_or(0, |m| m.1)
    }
    fn status_at(&self, t: DateTime<Utc>) -> Option<usize> {
        if self.opened? > t {
            return None;
        }
        Some(self.moves.iter().take_while(|m| m.0 <= t).last().map_or(0, |m| m.1))
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random transition sequences: the engine accepts exactly the moves of
    /// the table (the same status is a repeat, a backdated move is refused
    /// on `at`), and after every step the ticket is consistent: status =
    /// last move, history chained, resolution set exactly when done,
    /// reopenings counted, `open_tickets` = the naive count now and at every
    /// earlier instant, and `csat(w)` = the naive mean of the answers in the window.
    #[test]
    fn ticket_machine_open_tickets_and_csat_agree_with_naive_folds(ops in ops()) {
        let e = engine(json!(null), &["ann"]);
        let ann = id("ann");
        let mut now = t0();
        let mut tickets: Vec<ModelTicket> = vec![ModelTicket::default(); 3];
        let mut csat: Vec<(DateTime<Utc>, i64)> = Vec::new();
        let mut instants = vec![now];
        for (n, op) in ops.iter().enumerate() {
            let key = format!("op{n}");
            match op.clone() {
                Op::Open { ticket, minutes } => {
                    now += Duration::minutes(i64::from(minutes));
                    let c = cmd(json!({"type": "open_ticket", "member_id": "ann", "ticket_id": format!("t{ticket}"), "kind": "k"}));
                    let r = e.execute(&key, c, now);
                    // A second opening of the same ticket (same kind, no time) is a repeat.
                    prop_assert!(r.is_ok(), "{:?}", r);
                    tickets[ticket as usize].opened.get_or_insert(now);
                }
                Op::Move { ticket, to, minutes, backdate } => {
                    now += Duration::minutes(i64::from(minutes));
                    let m = &mut tickets[ticket as usize];
                    let at = if backdate { m.opened.unwrap_or(now) - Duration::minutes(1) } else { now };
                    let c = Command::UpdateTicket { member_id: ann.clone(), ticket_id: format!("t{ticket}"), status: status(to), at: Some(at) };
                    let r = e.execute(&key, c, now);
                    match (m.opened, r) {
                        (None, r) => prop_assert!(matches!(r, Err(CrmError::NotFound { entity: "ticket", .. })), "{:?}", r),
                        (Some(_), Ok(Outcome::Ticket { status: s, .. })) => {
                            let from = m.status();
                            prop_assert_eq!(s, status(to));
                            if from != to {
                                prop_assert!(TABLE[from][to] && !backdate, "{:?} -> {:?} accepted", status(from), status(to));
                                m.moves.push((at, to));
                            }
                        }
                        (Some(_), Err(CrmError::Validation { field, .. })) => {
                            let from = m.status();
                            prop_assert!(from != to);
                            if TABLE[from][to] {
                                prop_assert!(backdate && field == "at", "refused {:?} -> {:?} on {}", status(from), status(to), field);
                            } else {
                                prop_assert_eq!(field, "status");
                            }
                        }
                        (_, r) => prop_assert!(false, "{:?}", r),
                    }
                }
                Op::Csat { score, minutes } => {
                    now += Duration::minutes(i64::from(minutes));
                    let r = e.record_survey(&ann, &format!("s{n}"), SurveyKind::Csat, score, now);
                    prop_assert_eq!(r.is_ok(), (1..=5).contains(&score), "{:?}", r);
                    if r.is_ok() {
                        csat.push((now, score));
                    }
                }
            }
            instants.push(now);
            // Ticket consistency after every step.
            let st = e.member(&ann).unwrap();
            for (i, m) in tickets.iter().enumerate() {
                let Some(t) = st.feedback.tickets.get(&format!("t{i}")) else {
                    prop_assert!(m.opened.is_none());
                    continue;
                };
                prop_assert_eq!(t.status, status(m.status()));
                prop_assert_eq!(t.history.len(), m.moves.len());
                let mut prev = TicketStatus::Open;
                for c in &t.history {
                    prop_assert_eq!(c.from, prev);
                    prev = c.to;
                }
                prop_assert_eq!(t.done_at().is_some(), t.status.is_done());
                // Only a done ticket can move to open: every such move is a reopening.
                prop_assert_eq!(t.reopened as usize, m.moves.iter().filter(|m| m.1 == 0).count());
                prop_assert!(t.resolution_minutes().is_none_or(|r| r >= 0));
            }
        }
        // `open_tickets` and `csat(w)` at every instant seen, against the model.
        let st = e.member(&ann).unwrap();
        for &at in &instants {
            let fields = MemberFields::new(e.program(), &st, at);
            let naive_open = tickets.iter().filter(|m| m.status_at(at).is_some_and(|s| !status(s).is_done())).count() as i64;
            prop_assert_eq!(fields.value(&Field::OpenTickets), Some(FieldValue::Int(naive_open)), "at {}", at);
            for days in [1u32, 2, 5] {
                let from = at - Duration::days(i64::from(days));
                let window: Vec<i64> = csat.iter().filter(|(t, _)| *t > from && *t <= at).map(|(_, s)| *s).collect();
                let naive = (!window.is_empty())
                    .then(|| Decimal::from(window.iter().sum::<i64>()) / Decimal::from(window.len() as i64));
                prop_assert_eq!(fields.value(&Field::Csat(Window::days(days))), naive.map(FieldValue::Money), "csat({}d) at {}", days, at);
            }
        }
    }
}

#[test]
fn feedback_fields_read_and_print_in_both_forms() {
    use crm_core::segment::Rule;
    let r = Rule::parse("csat(90d) < 3 and open_tickets > 0 or nps_last <= 6 and rating_avg(1y) >= 4.5").unwrap();
    assert_eq!(r.to_string(), "(csat(90d) < 3 and open_tickets > 0) or (nps_last <= 6 and rating_avg(1y) >= 4.5)");
    let j = r.to_json();
    assert_eq!(j["or"][0]["and"][0], json!({"field": "csat", "window": "90d", "op": "<", "value": "3"}));
    assert_eq!(j["or"][1]["and"][0], json!({"field": "nps_last", "op": "<=", "value": 6}));
    assert_eq!(Rule::from_json(&j).unwrap(), r);
    let e = Rule::parse("csat(90d) < \"low\"").unwrap_err();
    assert_eq!(e.message, r#"field `csat(90d)` is decimal, got text "low""#);
    let e = Rule::parse("nps_last <= 6.5").unwrap_err();
    assert!(e.message.starts_with("field `nps_last` is number"), "{}", e.message);
    let e = Rule::from_json(&json!({"field": "reviews", "op": ">", "value": 1})).unwrap_err();
    assert!(e.to_string().contains("window"), "{e}");
}
