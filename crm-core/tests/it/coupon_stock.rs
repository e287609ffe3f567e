//! A coupon template's programme-wide stock (`total_limit`) and `budget`:
//! issues over all members stay within them, revoked coupons give theirs
//! back, a failed batch command undoes its share, two writers never both
//! take the last coupon (memory, SQLite file through two handles,
//! PostgreSQL through two handles), and a random mix of issues and revokes
//! keeps the tally equal to the coupons actually out.

use std::sync::{Arc, Barrier};

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use crm_core::coupon::TemplateUsage;
use crm_core::{Command, CrmError, Engine, MemberId, MemoryStore, Order, Outcome, Program, Store};

fn t(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, d, h, 0, 0).unwrap()
}

/// `gift`: at most 3 out at once; `tenner`: 10.00 each within a 25.00 budget;
/// `pct`: 20 % capped at 7.50, budget 15.00, bought for 100 points.
fn program() -> Program {
    Program::from_value(json!({
        "version": 1, "name": "Stock", "timezone": "Europe/Berlin", "currency": "EUR",
        "point_types": [{"id": "reward"}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
        "coupons": {"templates": [
            {"id": "gift", "benefit": {"type": "gift", "sku": "mug", "value": "4"},
             "validity": {"type": "days_from_issue", "days": 30}, "total_limit": 3},
            {"id": "tenner", "benefit": {"type": "fixed_amount", "amount": "10"},
             "validity": {"type": "days_from_issue", "days": 30}, "budget": "25"},
            {"id": "pct", "benefit": {"type": "percentage", "percent": "20", "cap": "7.50"},
             "validity": {"type": "days_from_issue", "days": 30}, "budget": "15",
             "points_price": {"point_type": "reward", "points": 100}}
        ]}
    }))
    .expect("programme")
}

fn member<S: Store>(e: &Engine<S>, id: &str) {
    let cmd = serde_json::from_value(json!({"type": "create_member", "member_id": id})).unwrap();
    e.execute(&format!("member:{id}"), cmd, t(1, 0)).expect("member");
}

fn issue<S: Store>(e: &Engine<S>, id: &str, template: &str, for_points: bool) -> crm_core::Result<String> {
    match e.issue_coupon(None, &MemberId::from(id), template, for_points, None, t(2, 0))? {
        Outcome::CouponIssued { code, .. } => Ok(code),
        other => panic!("unexpected {other:?}"),
    }
}

fn revoke<S: Store>(e: &Engine<S>, id: &str, code: &str) {
    let cmd = Command::RevokeCoupon { member_id: MemberId::from(id), code: code.into(), reason: "test".into() };
    e.submit(None, cmd, t(3, 0)).expect("revoke");
}

fn out_of(err: CrmError) -> String {
    assert_eq!(err.field(), Some("template"), "{err}");
    err.to_string()
}

#[test]
fn total_limit_holds_over_all_members_and_revoking_gives_one_back() {
    let e = Engine::new(program(), MemoryStore::new());
    for m in ["a", "b", "c", "d"] {
        member(&e, m);
    }
    let codes: Vec<String> = ["a", "b", "c"].iter().map(|m| issue(&e, m, "gift", false).unwrap()).collect();
    let msg = out_of(issue(&e, "d", "gift", false).unwrap_err());
    assert!(msg.contains("out of stock: 3 of 3"), "{msg}");
    let usage = e.coupon_usage("gift").unwrap();
    assert_eq!((usage.issued, usage.remaining, usage.committed), (3, Some(3 - 3), Decimal::new(12, 0)));
    revoke(&e, "b", &codes[1]);
    assert_eq!(e.coupon_usage("gift").unwrap().remaining, Some(1));
    issue(&e, "d", "gift", false).expect("the revoked one is back in stock");
    assert!(issue(&e, "b", "gift", false).is_err());
}

#[test]
fn budget_counts_face_values_and_an_uncapped_percentage_cannot_have_one() {
    let e = Engine::new(program(), MemoryStore::new());
    for m in ["a", "b", "c"] {
        member(&e, m);
    }
    issue(&e, "a", "tenner", false).unwrap();
    issue(&e, "b", "tenner", false).unwrap();
    let msg = out_of(issue(&e, "c", "tenner", false).unwrap_err());
    assert!(msg.contains("over budget: 20 of 25 committed"), "{msg}");
    assert_eq!(
        e.coupon_usage("tenner").unwrap(),
        TemplateUsage {
            template: "tenner".into(),
            issued: 2,
            total_limit: None,
            remaining: None,
            committed: Decimal::new(20, 0),
            budget: Some(Decimal::new(25, 0)),
            budget_remaining: Some(Decimal::new(5, 0)),
        }
    );
    let mut p = program();
    p.coupons.as_mut().unwrap().templates[2].benefit =
        crm_core::coupon::Benefit::Percentage { percent: Decimal::new(20, 0), cap: None };
    let err = p.validate().unwrap_err();
    assert_eq!(err.field(), Some("coupons.templates[2].budget"), "{err}");
    let mut p = program();
    p.coupons.as_mut().unwrap().templates[0].total_limit = Some(0);
    assert_eq!(p.validate().unwrap_err().field(), Some("coupons.templates[0].total_limit"));
}

#[test]
fn a_refused_exchange_keeps_the_points_and_the_budget() {
    let e = Engine::new(program(), MemoryStore::new());
    for m in ["a", "b", "c"] {
        member(&e, m);
        let o = Order::paid(format!("o-{m}"), m, t(1, 1), Decimal::new(50000, 2));
        e.execute(&format!("order:o-{m}"), Command::RecordOrder { order: o }, t(1, 1)).unwrap();
    }
    issue(&e, "a", "pct", true).unwrap();
    issue(&e, "b", "pct", true).unwrap();
    // 15.00 committed of 15.00: c's points stay where they are.
    let before = e.balance(&MemberId::from("c"), "reward", t(2, 0)).unwrap();
    assert!(issue(&e, "c", "pct", true).is_err());
    assert_eq!(e.balance(&MemberId::from("c"), "reward", t(2, 0)).unwrap(), before);
    assert_eq!(e.coupon_usage("pct").unwrap().committed, Decimal::new(1500, 2));
}

#[test]
fn a_batch_to_a_segment_stops_when_the_stock_runs_out() {
    let e = Engine::new(program(), MemoryStore::new());
    for m in ["a", "b", "c", "d", "e"] {
        member(&e, m);
    }
    let everyone = crm_core::segment::parse("orders(365d) = 0").unwrap();
    let batch = e.issue_coupons_to_segment("spring", &everyone, "gift", t(2, 0)).unwrap();
    assert_eq!(batch.issued.len(), 3);
    assert!(batch.exhausted);
    assert_eq!(e.coupon_usage("gift").unwrap().issued, 3);
    // Re-running finds the same three and issues nothing more.
    let again = e.issue_coupons_to_segment("spring", &everyone, "gift", t(2, 1)).unwrap();
    assert_eq!(again.issued, batch.issued);
}

/// A store that holds every tally read for a moment, so two writers both
/// read the tally before either commits: the race happens every round.
struct Slow<S>(S);

impl<S: Store> Store for Slow<S> {
    fn load(&self, id: &MemberId) -> crm_core::Result<Option<crm_core::store::Versioned>> {
        self.0.load(id)
    }
    fn identity_owner(&self, identity: &crm_core::Identity) -> crm_core::Result<Option<MemberId>> {
        self.0.identity_owner(identity)
    }
    fn order_owner(&self, order_id: &str) -> crm_core::Result<Option<MemberId>> {
        self.0.order_owner(order_id)
    }
    fn receipt(&self, key: &str) -> crm_core::Result<Option<crm_core::store::Receipt>> {
        self.0.receipt(key)
    }
    fn commit(&self, commit: crm_core::store::Commit) -> Result<(), crm_core::store::CommitError> {
        self.0.commit(commit)
    }
    fn tally(&self, key: &str) -> crm_core::Result<Option<crm_core::store::VersionedTally>> {
        let t = self.0.tally(key);
        std::thread::sleep(std::time::Duration::from_millis(30));
        t
    }
    fn events(&self, id: &MemberId) -> crm_core::Result<Vec<crm_core::Event>> {
        self.0.events(id)
    }
    fn scan(&self, visit: &mut dyn FnMut(crm_core::store::Versioned) -> crm_core::Result<()>) -> crm_core::Result<()> {
        self.0.scan(visit)
    }
    fn receipts(
        &self,
        visit: &mut dyn FnMut(crm_core::store::Receipt) -> crm_core::Result<()>,
    ) -> crm_core::Result<()> {
        self.0.receipts(visit)
    }
}

/// Two engines over one store race for the last coupon of `gift` `rounds`
/// times; exactly one wins each round and the tally says so.
fn race<S: Store + 'static>(engines: [Arc<Engine<Slow<S>>>; 2], rounds: usize) {
    for m in 0..(2 * rounds + 2) {
        member(&engines[0], &format!("m{m}"));
    }
    // Two out of three taken: one left.
    issue(&engines[0], "m0", "gift", false).unwrap();
    issue(&engines[0], "m1", "gift", false).unwrap();
    let mut holders: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (e, barrier) = (Arc::clone(&engines[i]), Arc::clone(&barrier));
                let m = format!("m{}", 2 + 2 * round + i);
                std::thread::spawn(move || {
                    barrier.wait();
                    issue(&e, &m, "gift", false).ok().map(|code| (m, code))
                })
            })
            .collect();
        let wins: Vec<(String, String)> = handles.into_iter().filter_map(|h| h.join().unwrap()).collect();
        assert_eq!(wins.len(), 1, "round {round}: {wins:?}");
        assert_eq!(engines[1].coupon_usage("gift").unwrap().issued, 3);
        // Give it back for the next round.
        let (m, code) = wins.into_iter().next().unwrap();
        revoke(&engines[0], &m, &code);
        holders.push((m, code));
    }
    assert_eq!(engines[0].coupon_usage("gift").unwrap().issued, 2);
}

#[test]
fn two_writers_never_both_take_the_last_coupon_in_memory() {
    let e = Arc::new(Engine::new(program(), Slow(MemoryStore::new())));
    race([Arc::clone(&e), e], 10);
}

#[cfg(feature = "sqlite")]
#[test]
fn two_handles_on_one_sqlite_file_never_both_take_the_last_coupon() {
    let dir = std::env::temp_dir().join(format!("crm-stock-{}-{}", std::process::id(), t(1, 0).timestamp()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("crm.db");
    let _ = std::fs::remove_file(&path);
    let open = || Arc::new(Engine::new(program(), Slow(crm_core::SqliteStore::open(&path).unwrap())));
    race([open(), open()], 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn two_handles_on_one_postgres_schema_never_both_take_the_last_coupon() {
    let Some(url) = crate::postgres::url() else { return };
    let schema = crate::postgres::fresh_schema("stock");
    let first = crate::postgres::PgTemp::in_schema(&url, &schema);
    let second = crate::postgres::PgTemp::in_schema(&url, &schema);
    race([Arc::new(Engine::new(program(), Slow(first))), Arc::new(Engine::new(program(), Slow(second)))], 10);
}

#[derive(Debug, Clone)]
enum Step {
    Issue(usize),
    Revoke(usize),
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever mix of issues and revokes: the tally equals the coupons of the
    /// template that are out (issued, not revoked) over all members, never
    /// exceeds the stock, and an issue is refused exactly when the stock is
    /// used up.
    #[test]
    fn the_tally_is_the_coupons_out(steps in proptest::collection::vec(
        prop_oneof![(0usize..5).prop_map(Step::Issue), (0usize..5).prop_map(Step::Revoke)], 1..40)) {
        let e = Engine::new(program(), MemoryStore::new());
        for m in 0..5 {
            member(&e, &format!("m{m}"));
        }
        let mut out: Vec<(String, String)> = Vec::new();
        for step in steps {
            match step {
                Step::Issue(m) => {
                    let m = format!("m{m}");
                    match issue(&e, &m, "gift", false) {
                        Ok(code) => out.push((m, code)),
                        Err(err) => {
                            prop_assert_eq!(out.len(), 3, "refused with {} out: {}", out.len(), err);
                        }
                    }
                }
                Step::Revoke(i) if !out.is_empty() => {
                    let (m, code) = out.remove(i % out.len());
                    revoke(&e, &m, &code);
                }
                Step::Revoke(_) => {}
            }
            let usage = e.coupon_usage("gift").unwrap();
            prop_assert_eq!(usage.issued as usize, out.len());
            prop_assert!(usage.issued <= 3);
            let held: usize = (0..5)
                .map(|m| {
                    e.coupons(&MemberId::from(format!("m{m}").as_str()), t(4, 0))
                        .unwrap()
                        .iter()
                        .filter(|c| c.coupon.template == "gift" && c.coupon.revoked.is_none())
                        .count()
                })
                .sum();
            prop_assert_eq!(held, out.len());
        }
    }
}

/// A birthday trigger that hands out `gift` coupons (stock 3) in Berlin.
fn gifting() -> Program {
    let mut p = program();
    p.outreach = Some(
        serde_json::from_value(json!({"send_hour": 10, "triggers": [
            {"id": "bday", "when": {"type": "birthday"}, "channels": ["sms"], "marketing": false, "coupon": "gift"}
        ]}))
        .unwrap(),
    );
    p.validate().unwrap();
    p
}

#[test]
fn trigger_coupons_are_issued_with_the_message_and_replay_with_the_same_codes() {
    let e = Engine::new(gifting(), MemoryStore::new());
    for m in ["a", "b", "c", "d"] {
        let cmd = serde_json::from_value(
            json!({"type": "create_member", "member_id": m, "profile": {"birthday": "1990-03-05"}}),
        )
        .unwrap();
        e.execute(&format!("member:{m}"), cmd, t(1, 0)).unwrap();
    }
    let Outcome::Due { outreach, suppressed, .. } = e.run_due(t(5, 12)).unwrap() else { panic!() };
    assert_eq!((outreach.len(), suppressed), (3, 1), "stock of 3 for 4 birthdays");
    for item in &outreach {
        let code = item.payload["coupon"]["code"].as_str().unwrap();
        let held = e.coupons(&item.member_id, t(5, 13)).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].coupon.code, code);
        assert_eq!(held[0].coupon.reason.as_deref(), Some("trigger bday:2024"));
    }
    assert!(e.coupons(&MemberId::from("d"), t(5, 13)).unwrap().is_empty());
    // The receipt records the codes; a replay hands out the same ones.
    let fresh = Engine::new(gifting(), MemoryStore::new());
    e.replay_into(&fresh).unwrap();
    for m in ["a", "b", "c", "d"] {
        let id = MemberId::from(m);
        assert_eq!(fresh.coupons(&id, t(5, 13)).unwrap(), e.coupons(&id, t(5, 13)).unwrap(), "{m}");
    }
    assert_eq!(fresh.coupon_usage("gift").unwrap(), e.coupon_usage("gift").unwrap());
    // A template that does not exist is refused at load, naming the trigger.
    let mut p = gifting();
    p.outreach.as_mut().unwrap().triggers[0].coupon = Some("nope".into());
    assert_eq!(p.validate().unwrap_err().field(), Some("outreach.triggers[0].coupon"));
}

#[test]
fn whatif_counts_the_face_value_of_trigger_coupons() {
    use crm_core::whatif::{compare, Options};
    let mut p = program();
    p.outreach = Some(
        serde_json::from_value(json!({"send_hour": 0, "triggers": [
            {"id": "mday", "when": {"type": "member_day", "day": 1}, "channels": ["app"], "marketing": false,
             "coupon": "tenner"}
        ]}))
        .unwrap(),
    );
    // No budget: every message carries a 10.00 coupon.
    p.coupons.as_mut().unwrap().templates[1].budget = None;
    p.validate().unwrap();
    let orders: Vec<Order> = (0..6)
        .map(|i| Order::paid(format!("o{i}"), format!("m{}", i % 3), t(2 + i, 12), Decimal::new(2000, 2)))
        .collect();
    let until = Utc.with_ymd_and_hms(2024, 6, 15, 0, 0, 0).unwrap();
    let options = Options { until: Some(until), ..Options::default() };
    let c = compare(&orders, &[], &[("gifts".into(), p)], &options).unwrap();
    let f = &c.programmes[0];
    let sent = f.outreach["mday"];
    assert!(sent >= 3, "three members, member days of April, May and June: {sent}");
    assert_eq!(f.coupon_cost, Decimal::new(10, 0) * Decimal::from(sent));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// `run_due` decided on two threads (enough members for it to use them,
    /// in small chunks racing for the last coupons of `gift`) gives the outcome of the one-thread run:
    /// the same messages and suppressions, the same coupons out; and the
    /// state it stores is the one-thread run's, replayed with its codes.
    #[test]
    fn run_due_on_two_threads_matches_one_thread(
        birthdays in proptest::collection::vec((3u32..4, 1u32..8), 256..320),
        runs in proptest::collection::vec(0u32..24 * 30, 1..4),
    ) {
        let one = Engine::new(gifting(), MemoryStore::with_decision_workers(1));
        let two = Engine::new(gifting(), MemoryStore::with_decision_workers(2));
        for (i, (month, day)) in birthdays.iter().enumerate() {
            let cmd: Command = serde_json::from_value(json!({"type": "create_member", "member_id": format!("m{i}"),
                "profile": {"birthday": format!("1990-{month:02}-{day:02}")}})).unwrap();
            one.execute(&format!("member:{i}"), cmd.clone(), t(1, 0)).unwrap();
            two.execute(&format!("member:{i}"), cmd, t(1, 0)).unwrap();
        }
        // Birthdays in the first week of March; a run after it finds them all due.
        let mut hours = runs.clone();
        hours.push(24 * 8);
        hours.sort_unstable();
        for h in hours {
            let now = t(1, 0) + chrono::Duration::hours(i64::from(h));
            let (a, b) = (one.run_due(now).unwrap(), two.run_due(now).unwrap());
            let (Outcome::Due { outreach: oa, suppressed: sa, members: ma, .. },
                 Outcome::Due { outreach: ob, suppressed: sb, members: mb, .. }) = (a, b) else {
                return Err(TestCaseError::fail("run_due outcome"));
            };
            let sent = |o: &[crm_core::outreach::OutreachItem]| o.iter().map(|i| (i.due_at, i.member_id.clone(), i.trigger.clone())).collect::<Vec<_>>();
            prop_assert_eq!(sent(&oa), sent(&ob));
            prop_assert_eq!((sa, ma), (sb, mb));
        }
        prop_assert_eq!(one.coupon_usage("gift").unwrap(), two.coupon_usage("gift").unwrap());
        // Replayed on one thread with the codes it drew: the same stored state.
        let fresh = Engine::new(gifting(), MemoryStore::with_decision_workers(1));
        two.replay_into(&fresh).unwrap();
        prop_assert_eq!(members(fresh.store()), members(two.store()));
    }
}

use crate::props::members_of as members;
