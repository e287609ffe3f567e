//! Example-based tests of the engine: every earn rule, every ledger edge, and
//! the member operations, through the public API on the in-memory store.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use crm_core::ledger::LotSource;
use crm_core::member::MemberStatus;
use crm_core::program::Action;
use crm_core::{
    money, Balance, Command, Engine, Identity, MemberId, MemoryStore, Order, OrderItem, OrderStatus, Outcome, Profile,
    ProfilePatch, Program, Refund, RefundScope, ReturnedItem, Store,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};

// ----- helpers ---------------------------------------------------------------

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn m(id: &str) -> MemberId {
    MemberId::from(id)
}

/// Shanghai, CNY, 0.01 per point; `reward` (spendable, never expires) and
/// `growth` (non-spendable); one rule: 1 reward point per full 1.00.
fn base() -> Value {
    json!({
        "version": 1, "name": "Test", "timezone": "Asia/Shanghai", "currency": "CNY",
        "value_per_point": "0.01",
        "point_types": [{"id": "reward"}, {"id": "growth", "spendable": false}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1", "rounding": "floor"}]}
    })
}

fn engine(v: Value) -> Engine<MemoryStore> {
    Engine::new(Program::from_value(v).expect("valid programme"), MemoryStore::new())
}

fn with(f: impl FnOnce(&mut Value)) -> Engine<MemoryStore> {
    let mut v = base();
    f(&mut v);
    engine(v)
}

fn with_expiry(tz: &str, expiry: Value) -> Engine<MemoryStore> {
    with(|v| {
        v["timezone"] = tz.into();
        v["point_types"][0]["expiry"] = expiry;
    })
}

fn order(id: &str, member: &str, at: &str, amount: &str) -> Order {
    Order::paid(id, member, utc(at), d(amount))
}

/// Record a paid order at its own time; returns the reward points earned.
fn buy(e: &Engine<MemoryStore>, id: &str, member: &str, at: &str, amount: &str) -> i64 {
    let o = e.record_order(order(id, member, at, amount), utc(at)).unwrap();
    earned(&o, "reward")
}

fn earned(o: &Outcome, pt: &str) -> i64 {
    match o {
        Outcome::Order { earned, .. } => earned.get(pt).copied().unwrap_or(0),
        other => panic!("expected an order outcome, got {other:?}"),
    }
}

fn bal(e: &Engine<MemoryStore>, member: &str, pt: &str, at: &str) -> Balance {
    e.balance(&m(member), pt, utc(at)).unwrap()
}

fn avail(e: &Engine<MemoryStore>, member: &str, at: &str) -> i64 {
    bal(e, member, "reward", at).available
}

fn create(e: &Engine<MemoryStore>, id: &str, at: &str, profile: Profile) -> Outcome {
    let c = Command::CreateMember {
        member_id: m(id),
        profile,
        identities: vec![],
        tags: vec![],
        consents: BTreeMap::new(),
    };
    e.execute(&format!("member:{id}"), c, utc(at)).unwrap()
}

fn adjust(member: &str, pt: &str, delta: i64) -> Command {
    Command::Adjust {
        member_id: m(member),
        point_type: pt.into(),
        delta,
        reason: "goodwill".into(),
        actor: "agent-7".into(),
    }
}

fn refund(id: &str, order_id: &str, at: &str, scope: RefundScope) -> Refund {
    Refund { id: id.into(), order_id: order_id.into(), at: utc(at), scope }
}

fn clawbacks(o: &Outcome) -> BTreeMap<String, (i64, i64, i64)> {
    match o {
        Outcome::Refund { clawbacks, .. } => {
            clawbacks.iter().map(|c| (c.point_type.clone(), (c.taken, c.debt, c.shortfall))).collect()
        }
        other => panic!("expected a refund outcome, got {other:?}"),
    }
}

fn err_of(r: crm_core::Result<Outcome>) -> (String, Option<String>) {
    let e = r.expect_err("expected an error");
    (e.code().to_string(), e.field().map(str::to_string))
}

fn validation(field: &str) -> (String, Option<String>) {
    ("validation_error".to_string(), Some(field.to_string()))
}

fn all_events(e: &Engine<MemoryStore>) -> Vec<(MemberId, Vec<crm_core::Event>)> {
    let mut ids = Vec::new();
    e.store()
        .scan(&mut |v| {
            ids.push(v.state.id);
            Ok(())
        })
        .unwrap();
    ids.sort();
    ids.into_iter().map(|id| (id.clone(), e.store().events(&id).unwrap())).collect()
}

// ----- base rate and rounding -----------------------------------------------

#[test]
fn base_rate_rounding_modes_at_half() {
    // (mode, points for 2.50, points for 3.50)
    for (mode, two_half, three_half) in
        [("floor", 2, 3), ("ceil", 3, 4), ("half_up", 3, 4), ("half_down", 2, 3), ("half_even", 2, 4)]
    {
        let e = with(|v| v["earn"]["rules"][0]["rounding"] = mode.into());
        assert_eq!(buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "2.50"), two_half, "{mode} at 2.5");
        assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:01Z", "3.50"), three_half, "{mode} at 3.5");
        // Rounding is per order, not per unit: 0.5 points per unit on 5.00 is 2.5.
        let e = with(|v| {
            v["earn"]["rules"][0]["rounding"] = mode.into();
            v["earn"]["rules"][0]["points_per_unit"] = "0.5".into();
        });
        assert_eq!(buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "5.00"), two_half, "{mode} at 0.5/unit");
    }
}

#[test]
fn zero_amount_earns_nothing_but_enrols() {
    let e = engine(base());
    let o = e.record_order(order("o1", "a", "2024-01-01T00:00:00Z", "0"), utc("2024-01-01T00:00:00Z")).unwrap();
    match &o {
        Outcome::Order { earned, lots, .. } => {
            assert_eq!(earned.values().sum::<i64>(), 0);
            assert!(lots.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(e.lots(&m("a")).unwrap().is_empty());
    assert_eq!(e.member(&m("a")).unwrap().stats.orders, 1);
    assert_eq!(bal(&e, "a", "reward", "2024-01-01T00:00:00Z"), Balance::default());
    // Ceil on 0.00 is still 0; ceil on 0.01 is 1.
    let e = with(|v| v["earn"]["rules"][0]["rounding"] = "ceil".into());
    assert_eq!(buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "0.00"), 0);
    assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:01Z", "0.01"), 1);
}

#[test]
fn bad_amounts_are_rejected_with_their_field() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    let rec = |o: Order| e.record_order(o, now);
    assert_eq!(err_of(rec(order("o1", "a", "2024-01-01T00:00:00Z", "-0.01"))), validation("order.amount"));
    assert_eq!(err_of(rec(order("o1", "a", "2024-01-01T00:00:00Z", "1.00001"))), validation("order.amount"));
    assert_eq!(err_of(rec(order("o1", "a", "2024-01-01T00:00:00Z", "1000000000.01"))), validation("order.amount"));
    assert_eq!(err_of(rec(Order::paid("o1", "a", now, Decimal::MAX))), validation("order.amount"));
    // Trailing zeros are not precision; the largest amount is accepted.
    assert_eq!(buy(&e, "ok1", "a", "2024-01-01T00:00:00Z", "1.50000000"), 1);
    assert_eq!(buy(&e, "ok2", "b", "2024-01-01T00:00:00Z", "1000000000"), 1_000_000_000);
    assert_eq!(buy(&e, "ok3", "c", "2024-01-01T00:00:00Z", "1.2345"), 1);

    let mut o = order("o2", "a", "2024-01-01T00:00:00Z", "10");
    o.items = vec![OrderItem { sku: "x".into(), category: None, qty: 1, price: d("-1") }];
    assert_eq!(err_of(rec(o.clone())), validation("order.items[0].price"));
    o.items = vec![
        OrderItem { sku: "x".into(), category: None, qty: 1, price: d("1") },
        OrderItem { sku: "y".into(), category: None, qty: 0, price: d("1") },
    ];
    assert_eq!(err_of(rec(o.clone())), validation("order.items[1].qty"));
    o.items = vec![];
    o.currency = Some("USD".into());
    assert_eq!(err_of(rec(o.clone())), validation("order.currency"));
    o.currency = None;
    o.paid_at = Some(utc("2023-12-31T00:00:00Z"));
    assert_eq!(err_of(rec(o.clone())), validation("order.paid_at"));
    o.paid_at = None;
    o.id = String::new();
    assert_eq!(err_of(rec(o.clone())), validation("order.id"));
    o.id = "o2".into();
    o.member_id = m("");
    assert_eq!(err_of(rec(o)), validation("order.member_id"));
    // Nothing of a rejected order was stored.
    assert!(e.member(&m("")).is_err());
    assert_eq!(e.member(&m("a")).unwrap().orders.len(), 1);

    // NaN-like and non-decimal inputs from the bindings never reach the ledger.
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = money::from_f64(bad, "CNY", "order.amount").unwrap_err();
        assert_eq!((err.code(), err.field()), ("validation_error", Some("order.amount")));
    }
    for bad in ["NaN", "inf", "1e3", "", "12,50", "0x10"] {
        let err = money::parse(bad, "order.amount").unwrap_err();
        assert_eq!((err.code(), err.field()), ("validation_error", Some("order.amount")), "{bad:?}");
    }
    let parsed: Result<Order, _> = serde_json::from_value(json!({
        "id": "o", "member_id": "a", "placed_at": "2024-01-01T00:00:00Z", "amount": "NaN"
    }));
    assert!(parsed.is_err());

    // Points: negative, zero and absurd redemptions.
    e.execute("adj", adjust("a", "reward", 10), now).unwrap();
    for (points, field) in [(-5, "points"), (0, "points"), (crm_core::engine::MAX_POINTS + 1, "points")] {
        assert_eq!(err_of(e.redeem(&m("a"), "reward", points, "r", now)), validation(field), "{points}");
    }
    assert_eq!(err_of(e.redeem(&m("a"), "gold", 1, "r", now)), validation("point_type"));
    assert_eq!(err_of(e.redeem(&m("a"), "growth", 1, "r", now)), validation("point_type"));
    assert_eq!(err_of(e.execute("adj2", adjust("a", "reward", i64::MIN + 1), now)), validation("delta"));
    assert_eq!(err_of(e.execute("", adjust("a", "reward", 1), now)), validation("idempotency_key"));
}

// ----- multipliers -------------------------------------------------------------

fn mult_engine(mults: Value, stacking: &str) -> Engine<MemoryStore> {
    with(|v| {
        v["earn"]["rules"][0]["multipliers"] = mults;
        v["earn"]["rules"][0]["stacking"] = stacking.into();
    })
}

#[test]
fn channel_and_store_multipliers() {
    let e = mult_engine(
        json!([
            {"when": {"type": "channel", "channels": ["app", "wechat"]}, "factor": "2"},
            {"when": {"type": "store", "stores": ["SH-01"]}, "factor": "3"}
        ]),
        "multiply",
    );
    let now = utc("2024-01-01T00:00:00Z");
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "10");
    o.channel = Some("app".into());
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 20);
    let mut o = order("o2", "a", "2024-01-01T00:00:00Z", "10");
    o.channel = Some("web".into());
    o.store = Some("SH-01".into());
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 30);
    let mut o = order("o3", "a", "2024-01-01T00:00:00Z", "10");
    o.channel = Some("wechat".into());
    o.store = Some("SH-01".into());
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 60);
    assert_eq!(buy(&e, "o4", "a", "2024-01-01T00:00:00Z", "10"), 10);
}

#[test]
fn category_multiplier_applies_per_line() {
    let e = mult_engine(json!([{"when": {"type": "category", "categories": ["shoes"]}, "factor": "3"}]), "multiply");
    let now = utc("2024-01-01T00:00:00Z");
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "90");
    o.items = vec![
        OrderItem { sku: "s".into(), category: Some("shoes".into()), qty: 1, price: d("50") },
        OrderItem { sku: "k".into(), category: Some("socks".into()), qty: 2, price: d("25") },
    ];
    // 90 paid for 100 of lines: the shoes' share 45 x3 = 135, the socks' 45 x1.
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 180);
    // No items: the category cannot apply.
    assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:00Z", "90"), 90);
    // Rounding is applied once per order, after the lines are summed: 3 lines of 1/3 x3 each.
    let mut o = order("o3", "a", "2024-01-01T00:00:00Z", "1");
    o.items = (0..3)
        .map(|i| OrderItem { sku: format!("s{i}"), category: Some("shoes".into()), qty: 1, price: d("1") })
        .collect();
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 3);
}

#[test]
fn birthday_month_is_evaluated_in_the_member_zone() {
    let e = mult_engine(json!([{"when": {"type": "birthday_month"}, "factor": "2"}]), "multiply");
    let bday = NaiveDate::from_ymd_opt(1990, 3, 15);
    create(&e, "sh", "2024-01-01T00:00:00Z", Profile { birthday: bday, ..Profile::default() });
    let ny = Profile { birthday: bday, timezone: Some("America/New_York".parse().unwrap()), ..Profile::default() };
    create(&e, "ny", "2024-01-01T00:00:00Z", ny);
    // 29 Feb 2024 20:00Z: 1 March in Shanghai, still 29 February in New York.
    assert_eq!(buy(&e, "o1", "sh", "2024-02-29T20:00:00Z", "10"), 20);
    assert_eq!(buy(&e, "o2", "ny", "2024-02-29T20:00:00Z", "10"), 10);
    // 1 March 05:00Z is March in New York as well.
    assert_eq!(buy(&e, "o3", "ny", "2024-03-01T05:00:00Z", "10"), 20);
    // 31 March 16:00Z is April in Shanghai.
    assert_eq!(buy(&e, "o4", "sh", "2024-03-31T16:00:00Z", "10"), 10);
    // No birthday: no multiplier.
    assert_eq!(buy(&e, "o5", "nobody", "2024-03-10T00:00:00Z", "10"), 10);
}

#[test]
fn member_day_is_local_and_day_31_is_the_last_day_of_short_months() {
    let e = mult_engine(json!([{"when": {"type": "member_day", "day": 31}, "factor": "2"}]), "multiply");
    let cases = [
        ("2024-01-31T15:59:59Z", 20), // 31 Jan 23:59:59 local
        ("2024-01-31T16:00:00Z", 10), // 1 Feb 00:00 local
        ("2024-01-30T16:00:00Z", 20), // 31 Jan 00:00 local (30 Jan in UTC)
        ("2024-02-28T16:00:00Z", 20), // 29 Feb 2024 (leap) local: last day of February
        ("2024-02-27T16:00:00Z", 10), // 28 Feb 2024 local: not the last day in a leap year
        ("2023-02-27T16:00:00Z", 20), // 28 Feb 2023 local: the last day
        ("2024-04-29T16:00:00Z", 20), // 30 April local
        ("2024-04-29T15:59:59Z", 10), // 29 April local
    ];
    for (i, (at, pts)) in cases.iter().enumerate() {
        assert_eq!(buy(&e, &format!("o{i}"), "a", at, "10"), *pts, "{at}");
    }
    let e = mult_engine(json!([{"when": {"type": "member_day", "day": 15}, "factor": "3"}]), "multiply");
    assert_eq!(buy(&e, "o1", "a", "2024-02-14T16:00:00Z", "10"), 30);
    assert_eq!(buy(&e, "o2", "a", "2024-02-15T16:00:00Z", "10"), 10);
}

#[test]
fn date_range_is_half_open() {
    let e = mult_engine(
        json!([{"when": {"type": "date_range", "from": "2024-06-18T00:00:00Z", "to": "2024-06-19T00:00:00Z"},
                "factor": "5"}]),
        "multiply",
    );
    assert_eq!(buy(&e, "o1", "a", "2024-06-17T23:59:59Z", "10"), 10);
    assert_eq!(buy(&e, "o2", "a", "2024-06-18T00:00:00Z", "10"), 50);
    assert_eq!(buy(&e, "o3", "a", "2024-06-18T23:59:59Z", "10"), 50);
    assert_eq!(buy(&e, "o4", "a", "2024-06-19T00:00:00Z", "10"), 10);
}

#[test]
fn tag_multiplier_and_stacking_multiply_vs_highest() {
    let mults = json!([
        {"when": {"type": "tag", "tag": "vip"}, "factor": "3"},
        {"when": {"type": "channel", "channels": ["app"]}, "factor": "2"}
    ]);
    for (stacking, both) in [("multiply", 60), ("highest", 30)] {
        let e = mult_engine(mults.clone(), stacking);
        let now = utc("2024-01-01T00:00:00Z");
        create(&e, "a", "2024-01-01T00:00:00Z", Profile::default());
        assert_eq!(buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "10"), 10);
        e.execute("t1", Command::AddTag { member_id: m("a"), tag: "vip".into() }, now).unwrap();
        assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:00Z", "10"), 30);
        let mut o = order("o3", "a", "2024-01-01T00:00:00Z", "10");
        o.channel = Some("app".into());
        assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), both, "{stacking}");
        e.execute("t2", Command::RemoveTag { member_id: m("a"), tag: "vip".into() }, now).unwrap();
        assert_eq!(buy(&e, "o4", "a", "2024-01-01T00:00:00Z", "10"), 10);
    }
    // Highest never goes below 1 (a 0.5 factor alone is ignored under "highest").
    let e = mult_engine(json!([{"when": {"type": "channel", "channels": ["app"]}, "factor": "0.5"}]), "multiply");
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "10");
    o.channel = Some("app".into());
    assert_eq!(earned(&e.record_order(o, utc("2024-01-01T00:00:00Z")).unwrap(), "reward"), 5);
}

// ----- caps ----------------------------------------------------------------------

#[test]
fn per_order_cap() {
    let e = with(|v| v["earn"]["rules"][0]["per_order_cap"] = 30.into());
    assert_eq!(buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "80"), 30);
    assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:01Z", "29.99"), 29);
}

#[test]
fn per_day_cap_counts_local_days_in_shanghai() {
    let e = with(|v| v["earn"]["rules"][0]["per_day_cap"] = 100.into());
    assert_eq!(buy(&e, "o1", "a", "2024-01-01T10:00:00Z", "80"), 80); // 1 Jan 18:00 local
    assert_eq!(buy(&e, "o2", "a", "2024-01-01T15:59:59Z", "80"), 20); // 1 Jan 23:59:59 local
    assert_eq!(buy(&e, "o3", "a", "2024-01-01T15:59:59Z", "80"), 0);
    // Same UTC date, but 2 January in Shanghai: a fresh day.
    assert_eq!(buy(&e, "o4", "a", "2024-01-01T16:00:00Z", "80"), 80);
    assert_eq!(buy(&e, "o5", "a", "2024-01-02T15:00:00Z", "80"), 20);
    // Another member has its own allowance.
    assert_eq!(buy(&e, "o6", "b", "2024-01-01T15:00:00Z", "80"), 80);
    let st = e.member(&m("a")).unwrap();
    let days = &st.rule_days["base"];
    assert_eq!(days[&NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()], 100);
    assert_eq!(days[&NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()], 100);
}

#[test]
fn per_month_cap_counts_local_months_in_shanghai() {
    let e = with(|v| v["earn"]["rules"][0]["per_month_cap"] = 500.into());
    assert_eq!(buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "450"), 450); // 1 Jan 08:00 local
    assert_eq!(buy(&e, "o2", "a", "2024-01-31T15:59:59Z", "100"), 50); // 31 Jan 23:59:59 local
    assert_eq!(buy(&e, "o3", "a", "2024-01-31T16:00:00Z", "100"), 100); // 1 Feb local
                                                                        // 31 Dec 2023 16:00Z is already January 2024 in Shanghai: January is spent.
    let e = with(|v| v["earn"]["rules"][0]["per_month_cap"] = 500.into());
    assert_eq!(buy(&e, "o1", "a", "2023-12-31T16:00:00Z", "500"), 500);
    assert_eq!(buy(&e, "o2", "a", "2024-01-15T00:00:00Z", "1"), 0);
    assert_eq!(buy(&e, "o3", "a", "2023-12-31T15:59:59Z", "1"), 1);
    // Day and month caps together: the tighter one wins.
    let e = with(|v| {
        v["earn"]["rules"][0]["per_day_cap"] = 100.into();
        v["earn"]["rules"][0]["per_month_cap"] = 150.into();
    });
    assert_eq!(buy(&e, "o1", "a", "2024-03-01T00:00:00Z", "120"), 100);
    assert_eq!(buy(&e, "o2", "a", "2024-03-02T00:00:00Z", "120"), 50);
    assert_eq!(buy(&e, "o3", "a", "2024-03-31T16:00:00Z", "120"), 100); // 1 April local
}

// ----- pending period -------------------------------------------------------------

#[test]
fn pending_points_activate_through_run_due() {
    let e = with(|v| v["point_types"][0]["pending_days"] = 7.into());
    assert_eq!(buy(&e, "o1", "a", "2024-03-10T02:00:00Z", "100"), 100);
    let lot = &e.lots(&m("a")).unwrap()[0];
    assert_eq!(lot.available_at, utc("2024-03-17T02:00:00Z"));
    assert!(!lot.activated);
    let b = bal(&e, "a", "reward", "2024-03-17T01:59:59Z");
    assert_eq!((b.available, b.pending), (0, 100));
    let err = e.redeem(&m("a"), "reward", 1, "r1", utc("2024-03-17T01:59:59Z")).unwrap_err();
    assert_eq!(err.code(), "insufficient_points");
    // Nothing due yet.
    assert_eq!(e.run_due(utc("2024-03-17T01:59:59Z")).unwrap(), Outcome::due(0, 0, 0));
    let b = bal(&e, "a", "reward", "2024-03-17T02:00:00Z");
    assert_eq!((b.available, b.pending), (100, 0));
    let due = e.run_due(utc("2024-03-17T02:00:00Z")).unwrap();
    assert_eq!(due, Outcome::due(1, 100, 0));
    assert!(e.lots(&m("a")).unwrap()[0].activated);
    // Same instant again: the first outcome; later: nothing left to do.
    assert_eq!(e.run_due(utc("2024-03-17T02:00:00Z")).unwrap(), due);
    assert_eq!(e.run_due(utc("2024-03-18T00:00:00Z")).unwrap(), Outcome::due(0, 0, 0));
    e.redeem(&m("a"), "reward", 100, "r2", utc("2024-03-18T00:00:00Z")).unwrap();
    // Manual adjustments are never pending.
    e.execute("adj", adjust("a", "reward", 5), utc("2024-03-18T00:00:00Z")).unwrap();
    assert_eq!(avail(&e, "a", "2024-03-18T00:00:00Z"), 5);
}

#[test]
fn pending_period_counts_calendar_days_across_dst() {
    let e = with(|v| {
        v["timezone"] = "Europe/Berlin".into();
        v["point_types"][0]["pending_days"] = 1.into();
    });
    // 12:00 CET on 30 March -> 12:00 CEST on 31 March, only 23 hours later.
    buy(&e, "o1", "a", "2024-03-30T11:00:00Z", "10");
    assert_eq!(e.lots(&m("a")).unwrap()[0].available_at, utc("2024-03-31T10:00:00Z"));
}

// ----- expiry boundaries -------------------------------------------------------------

/// Earn 100 at `earned`, then check the lot expires exactly at `expires`.
fn check_expiry(e: &Engine<MemoryStore>, member: &str, earned: &str, expires: &str) {
    buy(e, &format!("{member}-o"), member, earned, "100");
    let lots = e.lots(&m(member)).unwrap();
    assert_eq!(lots[0].expires_at, Some(utc(expires)), "earned {earned}");
    let exp = utc(expires);
    let before = (exp - Duration::seconds(1)).to_rfc3339();
    assert_eq!(avail(e, member, &before), 100, "valid one second before {expires}");
    assert_eq!(avail(e, member, expires), 0, "expired at {expires}");
}

#[test]
fn days_after_earning_boundaries_around_midnight_and_leap_day() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 1}));
    // 31 Jan 23:59:59 local: valid through 1 Feb.
    check_expiry(&e, "a", "2024-01-31T15:59:59Z", "2024-02-01T16:00:00Z");
    // 1 Feb 00:00 local: valid through 2 Feb.
    check_expiry(&e, "b", "2024-01-31T16:00:00Z", "2024-02-02T16:00:00Z");
    // Leap day: earned 28 Feb local, valid through 29 Feb.
    check_expiry(&e, "c", "2024-02-28T04:00:00Z", "2024-02-29T16:00:00Z");
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 365}));
    // Earned 29 Feb 2024: the 365th day after is 28 Feb 2025.
    check_expiry(&e, "a", "2024-02-29T03:00:00Z", "2025-02-28T16:00:00Z");
}

#[test]
fn end_of_nth_month_boundaries_month_end_and_leap_february() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "end_of_nth_month", "months": 0}));
    check_expiry(&e, "a", "2024-02-29T03:00:00Z", "2024-02-29T16:00:00Z");
    // 29 Feb 16:00Z is 1 March locally: end of March.
    check_expiry(&e, "b", "2024-02-29T16:00:00Z", "2024-03-31T16:00:00Z");
    // 31 Jan 16:30Z is 1 Feb locally: end of the leap February.
    check_expiry(&e, "c", "2024-01-31T16:30:00Z", "2024-02-29T16:00:00Z");
    let e = with_expiry("Asia/Shanghai", json!({"type": "end_of_nth_month", "months": 1}));
    check_expiry(&e, "a", "2024-01-31T15:00:00Z", "2024-02-29T16:00:00Z");
    let e = with_expiry("Asia/Shanghai", json!({"type": "end_of_nth_month", "months": 12}));
    check_expiry(&e, "a", "2024-02-29T03:00:00Z", "2025-02-28T16:00:00Z");
}

#[test]
fn end_of_following_year_uses_the_local_year() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "end_of_following_year"}));
    check_expiry(&e, "a", "2023-12-31T15:59:59Z", "2024-12-31T16:00:00Z");
    check_expiry(&e, "b", "2023-12-31T16:00:00Z", "2025-12-31T16:00:00Z");
    check_expiry(&e, "c", "2024-02-29T12:00:00Z", "2025-12-31T16:00:00Z");
}

#[test]
fn expiry_boundaries_across_dst_in_berlin() {
    // Spring forward on 31 March 2024 (02:00 CET -> 03:00 CEST).
    let e = with_expiry("Europe/Berlin", json!({"type": "days_after_earning", "days": 1}));
    // 29 Mar 23:59:59 CET: valid through 30 Mar, expires at 31 Mar 00:00 CET.
    check_expiry(&e, "a", "2024-03-29T22:59:59Z", "2024-03-30T23:00:00Z");
    // 30 Mar 13:00 CET: valid through 31 Mar (the short day), expires 1 Apr 00:00 CEST.
    check_expiry(&e, "b", "2024-03-30T12:00:00Z", "2024-03-31T22:00:00Z");
    // 31 Mar 04:00 CEST: expires 2 Apr 00:00 CEST.
    check_expiry(&e, "c", "2024-03-31T02:00:00Z", "2024-04-01T22:00:00Z");
    // Fall back on 27 October 2024 (03:00 CEST -> 02:00 CET).
    // 25 Oct 14:00 CEST: expires 27 Oct 00:00 CEST (before the change).
    check_expiry(&e, "d", "2024-10-25T12:00:00Z", "2024-10-26T22:00:00Z");
    // 26 Oct 14:00 CEST: valid through the 25-hour day, expires 28 Oct 00:00 CET.
    check_expiry(&e, "f", "2024-10-26T12:00:00Z", "2024-10-27T23:00:00Z");
    let e = with_expiry("Europe/Berlin", json!({"type": "end_of_nth_month", "months": 0}));
    check_expiry(&e, "a", "2024-03-15T12:00:00Z", "2024-03-31T22:00:00Z");
    check_expiry(&e, "b", "2024-10-15T12:00:00Z", "2024-10-31T23:00:00Z");
    // 31 Oct 23:30 CET is still October locally.
    check_expiry(&e, "c", "2024-10-31T22:30:00Z", "2024-10-31T23:00:00Z");
}

#[test]
fn run_due_expires_at_the_boundary_and_records_the_instant() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 30}));
    buy(&e, "o1", "a", "2024-01-31T15:30:00Z", "100");
    let exp = utc("2024-03-01T16:00:00Z");
    assert_eq!(e.run_due(exp - Duration::seconds(1)).unwrap(), Outcome::due(0, 0, 0));
    // Run late: the expiry event carries the expiry instant, not the run time.
    let due = e.run_due(utc("2024-03-05T00:00:00Z")).unwrap();
    assert_eq!(due, Outcome::due(1, 0, 100));
    assert!(e.lots(&m("a")).unwrap().is_empty());
    let events = e.store().events(&m("a")).unwrap();
    let at = events.iter().find_map(|ev| match ev {
        crm_core::Event::PointsExpired { at, allocations, .. } => Some((*at, allocations.len())),
        _ => None,
    });
    assert_eq!(at, Some((exp, 1)));
    // The balance as of the day before is still 100.
    assert_eq!(avail(&e, "a", "2024-03-01T15:59:59Z"), 100);
    let page = e.statement(&m("a"), "reward", 0, 10).unwrap();
    let kinds: Vec<_> = page.entries.iter().map(|x| (x.kind.as_str(), x.points, x.balance)).collect();
    assert_eq!(kinds, vec![("earn", 100, 100), ("expire", -100, 0)]);
}

#[test]
fn inactivity_expiry_is_pushed_by_a_redemption() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "inactivity", "days": 10}));
    buy(&e, "o1", "a", "2024-01-01T02:00:00Z", "100");
    buy(&e, "o2", "b", "2024-01-01T02:00:00Z", "100");
    // Earned 1 Jan local: valid through 11 Jan.
    assert_eq!(e.lots(&m("a")).unwrap()[0].expires_at, Some(utc("2024-01-11T16:00:00Z")));
    // A redemption on 5 Jan is activity: valid through 15 Jan.
    e.redeem(&m("a"), "reward", 10, "r1", utc("2024-01-05T02:00:00Z")).unwrap();
    assert_eq!(e.lots(&m("a")).unwrap()[0].expires_at, Some(utc("2024-01-15T16:00:00Z")));
    assert_eq!(avail(&e, "a", "2024-01-15T15:59:59Z"), 90);
    assert_eq!(avail(&e, "a", "2024-01-15T16:00:00Z"), 0);
    // b did nothing.
    assert_eq!(avail(&e, "b", "2024-01-11T15:59:59Z"), 100);
    assert_eq!(avail(&e, "b", "2024-01-11T16:00:00Z"), 0);
    // Activity after expiry does not revive the expired lot.
    buy(&e, "o3", "b", "2024-01-20T02:00:00Z", "5");
    assert_eq!(avail(&e, "b", "2024-01-20T02:00:00Z"), 5);
    let due = e.run_due(utc("2024-01-20T03:00:00Z")).unwrap();
    assert_eq!(due, Outcome::due(2, 0, 190));
    // The new lot of b runs from its own earning.
    assert_eq!(e.lots(&m("b")).unwrap()[0].expires_at, Some(utc("2024-01-30T16:00:00Z")));
}

// ----- redemption and reversal ----------------------------------------------------

#[test]
fn redemption_takes_soonest_expiry_first_and_records_allocations() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "end_of_nth_month", "months": 2}));
    // Record the later order first so lot order differs from expiry order.
    buy(&e, "late", "a", "2024-02-05T02:00:00Z", "50"); // expires end of April
    buy(&e, "early", "a", "2024-01-10T02:00:00Z", "100"); // expires end of March
    let lots = e.lots(&m("a")).unwrap();
    let (early, late) = (lots[0].clone(), lots[1].clone());
    assert_eq!(early.expires_at, Some(utc("2024-03-31T16:00:00Z")));
    assert_eq!(late.expires_at, Some(utc("2024-04-30T16:00:00Z")));
    let now = utc("2024-02-10T00:00:00Z");
    let out = e.redeem(&m("a"), "reward", 120, "r1", now).unwrap();
    let allocs = match &out {
        Outcome::Redemption { allocations, points, redemption_id, .. } => {
            assert_eq!((*points, redemption_id.as_str()), (120, "r1"));
            allocations.clone()
        }
        other => panic!("{other:?}"),
    };
    let got: Vec<_> = allocs.iter().map(|a| (a.lot_id.clone(), a.points, a.expires_at)).collect();
    assert_eq!(got, vec![(early.id.clone(), 100, early.expires_at), (late.id.clone(), 20, late.expires_at)]);
    let st = e.member(&m("a")).unwrap();
    assert_eq!(st.redemptions["r1"].allocations, allocs);
    assert_eq!(avail(&e, "a", "2024-02-10T00:00:00Z"), 30);
    // Too much: insufficient, nothing changes.
    let err = e.redeem(&m("a"), "reward", 31, "r2", now).unwrap_err();
    assert_eq!(err, crm_core::CrmError::InsufficientPoints { requested: 31, available: 30 });
    assert_eq!(e.member(&m("a")).unwrap(), st);
    // The exact balance is fine.
    e.redeem(&m("a"), "reward", 30, "r3", now).unwrap();
    assert_eq!(avail(&e, "a", "2024-02-10T00:00:00Z"), 0);
}

#[test]
fn reversal_restores_the_lots() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "end_of_nth_month", "months": 2}));
    buy(&e, "o1", "a", "2024-01-10T02:00:00Z", "100");
    buy(&e, "o2", "a", "2024-02-05T02:00:00Z", "50");
    let before = e.lots(&m("a")).unwrap();
    let now = utc("2024-02-10T00:00:00Z");
    e.redeem(&m("a"), "reward", 120, "r1", now).unwrap();
    assert_eq!(e.lots(&m("a")).unwrap().len(), 1);
    let rev = Command::ReverseRedemption { member_id: m("a"), redemption_id: "r1".into() };
    let out = e.execute("rev1", rev.clone(), now).unwrap();
    assert!(matches!(out, Outcome::Reversal { points: 120, .. }), "{out:?}");
    let after = e.lots(&m("a")).unwrap();
    let view = |l: &[crm_core::Lot]| l.iter().map(|l| (l.id.clone(), l.remaining, l.expires_at)).collect::<Vec<_>>();
    assert_eq!(view(&after), view(&before));
    assert_eq!(avail(&e, "a", "2024-02-10T00:00:00Z"), 150);
    assert!(e.member(&m("a")).unwrap().redemptions["r1"].reversed);
    // Twice: a conflict under a new key, the first outcome under the same key.
    assert_eq!(err_of(e.execute("rev2", rev.clone(), now)).0, "conflict");
    assert_eq!(e.execute("rev1", rev, now).unwrap(), out);
    let unknown = Command::ReverseRedemption { member_id: m("a"), redemption_id: "nope".into() };
    assert_eq!(err_of(e.execute("rev3", unknown, now)).0, "not_found");
}

// ----- refunds and clawback ------------------------------------------------------------

#[test]
fn refund_claws_back_proportionally_then_fully() {
    let e = with(|v| {
        v["earn"]["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "grow", "point_type": "growth", "points_per_unit": "2"}));
    });
    let o = e.record_order(order("o1", "a", "2024-01-01T00:00:00Z", "99.99"), utc("2024-01-01T00:00:00Z")).unwrap();
    assert_eq!((earned(&o, "reward"), earned(&o, "growth")), (99, 199));
    let now = "2024-01-02T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Amount { amount: d("33.33") }), utc(now)).unwrap();
    // 99 x 33.33 / 99.99 = 33 exactly; floor(199 x 33.33 / 99.99) = floor(66.33) = 66.
    let c = clawbacks(&r);
    assert_eq!(c["reward"], (33, 0, 0));
    assert_eq!(c["growth"], (66, 0, 0));
    let r = e.record_refund(refund("rf2", "o1", now, RefundScope::Amount { amount: d("0.67") }), utc(now)).unwrap();
    // floor(99 x 34.00 / 99.99) = floor(33.66) = 33: nothing more; growth floor(67.66) = 67: one more.
    let c = clawbacks(&r);
    assert_eq!(c.get("reward"), None);
    assert_eq!(c.get("growth"), Some(&(1, 0, 0)));
    let r = e.record_refund(refund("rf3", "o1", now, RefundScope::Full), utc(now)).unwrap();
    match &r {
        Outcome::Refund { amount, .. } => assert_eq!(*amount, d("65.99")),
        other => panic!("{other:?}"),
    }
    assert_eq!(clawbacks(&r)["reward"], (66, 0, 0));
    assert_eq!(clawbacks(&r)["growth"], (132, 0, 0));
    let st = e.member(&m("a")).unwrap();
    let ledger = &st.orders["o1"];
    assert_eq!(ledger.clawed, ledger.earned);
    assert_eq!(ledger.refunded, d("99.99"));
    assert_eq!(bal(&e, "a", "reward", now).total(), 0);
    assert_eq!(bal(&e, "a", "growth", now).total(), 0);
    // Nothing left to refund.
    let err = e.record_refund(refund("rf4", "o1", now, RefundScope::Full), utc(now));
    assert_eq!(err_of(err), validation("refund.order_id"));
    let err = e.record_refund(refund("rf5", "nope", now, RefundScope::Full), utc(now));
    assert_eq!(err_of(err).0, "not_found");
}

#[test]
fn refund_amount_validation() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "50");
    let now = "2024-01-02T00:00:00Z";
    for (amount, field) in
        [("0", "refund.scope.amount"), ("-1", "refund.scope.amount"), ("50.01", "refund.scope.amount")]
    {
        let r = e.record_refund(refund("rf", "o1", now, RefundScope::Amount { amount: d(amount) }), utc(now));
        assert_eq!(err_of(r), validation(field), "{amount}");
    }
    let r = e.record_refund(refund("rf", "o1", now, RefundScope::Amount { amount: d("1.00001") }), utc(now));
    assert_eq!(err_of(r), validation("refund.scope.amount"));
    let r = e.record_refund(refund("", "o1", now, RefundScope::Full), utc(now));
    assert_eq!(err_of(r), validation("refund.id"));
    // A refund of a placed (unpaid) order is refused.
    let mut o = order("o2", "a", "2024-01-01T00:00:00Z", "50");
    o.status = OrderStatus::Placed;
    e.record_order(o, utc(now)).unwrap();
    let r = e.record_refund(refund("rf", "o2", now, RefundScope::Full), utc(now));
    assert_eq!(err_of(r), validation("refund.order_id"));
}

#[test]
fn clawback_of_spent_points_allow_negative_carries_debt_paid_by_later_earnings() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    e.redeem(&m("a"), "reward", 80, "r1", utc("2024-01-02T00:00:00Z")).unwrap();
    let now = "2024-01-03T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Full), utc(now)).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (20, 80, 0));
    let b = bal(&e, "a", "reward", now);
    assert_eq!((b.available, b.pending, b.debt), (-80, 0, 80));
    assert_eq!(e.member(&m("a")).unwrap().orders["o1"].clawed["reward"], 100);
    // Redemption is impossible while in debt.
    assert_eq!(err_of(e.redeem(&m("a"), "reward", 1, "r2", utc(now))).0, "insufficient_points");
    // Later earnings pay the debt off first.
    buy(&e, "o2", "a", "2024-01-04T00:00:00Z", "50");
    let b = bal(&e, "a", "reward", "2024-01-04T00:00:00Z");
    assert_eq!((b.available, b.debt), (-30, 30));
    assert!(e.lots(&m("a")).unwrap().is_empty());
    buy(&e, "o3", "a", "2024-01-05T00:00:00Z", "100");
    let b = bal(&e, "a", "reward", "2024-01-05T00:00:00Z");
    assert_eq!((b.available, b.debt), (70, 0));
    assert_eq!(e.lots(&m("a")).unwrap()[0].remaining, 70);
    assert!(e.member(&m("a")).unwrap().debts.is_empty());
    // A positive adjustment pays debt too.
    let r = e
        .record_refund(refund("rf3", "o3", "2024-01-06T00:00:00Z", RefundScope::Full), utc("2024-01-06T00:00:00Z"))
        .unwrap();
    assert_eq!(clawbacks(&r)["reward"], (70, 30, 0));
    e.execute("adj", adjust("a", "reward", 50), utc("2024-01-07T00:00:00Z")).unwrap();
    let b = bal(&e, "a", "reward", "2024-01-07T00:00:00Z");
    assert_eq!((b.available, b.debt), (20, 0));
    let page = e.statement(&m("a"), "reward", 0, 100).unwrap();
    assert_eq!(page.entries.last().unwrap().balance, 20);
}

#[test]
fn clawback_of_spent_points_cap_at_zero_records_the_shortfall() {
    let e = with(|v| v["refunds"] = json!({"clawback": "cap_at_zero"}));
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    buy(&e, "o2", "a", "2024-01-01T00:00:01Z", "10");
    e.redeem(&m("a"), "reward", 95, "r1", utc("2024-01-02T00:00:00Z")).unwrap();
    let now = "2024-01-03T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Full), utc(now)).unwrap();
    // 5 left on o1's own lot... none: o1 (older) was spent first; o2's 10 - (95-100)… take what is open.
    let (taken, debt, shortfall) = clawbacks(&r)["reward"];
    assert_eq!((taken + shortfall, debt), (100, 0));
    assert_eq!(taken, 15);
    let b = bal(&e, "a", "reward", now);
    assert_eq!((b.available, b.debt), (0, 0));
    let st = e.member(&m("a")).unwrap();
    assert_eq!(st.shortfalls["reward"], 85);
    assert_eq!(st.orders["o1"].clawed["reward"], 100);
    // Later earnings are not reduced.
    buy(&e, "o3", "a", "2024-01-04T00:00:00Z", "50");
    assert_eq!(avail(&e, "a", "2024-01-04T00:00:00Z"), 50);
}

#[test]
fn refund_by_items_is_valued_at_the_paid_share() {
    let e = engine(base());
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "90.00");
    o.items = vec![
        OrderItem { sku: "a".into(), category: None, qty: 2, price: d("30") },
        OrderItem { sku: "b".into(), category: None, qty: 1, price: d("40") },
    ];
    assert_eq!(earned(&e.record_order(o, utc("2024-01-01T00:00:00Z")).unwrap(), "reward"), 90);
    let now = "2024-01-02T00:00:00Z";
    let items = |v: &[(&str, u32)]| RefundScope::Items {
        items: v.iter().map(|(s, q)| ReturnedItem { sku: s.to_string(), qty: *q }).collect(),
    };
    // One `a`: 30 of 100 list value, 90 paid -> 27.00 refunded, 27 points back.
    let r = e.record_refund(refund("rf1", "o1", now, items(&[("a", 1)])), utc(now)).unwrap();
    match &r {
        Outcome::Refund { amount, .. } => assert_eq!(*amount, d("27")),
        other => panic!("{other:?}"),
    }
    assert_eq!(clawbacks(&r)["reward"], (27, 0, 0));
    // Errors name the line.
    let bad = e.record_refund(refund("rf2", "o1", now, items(&[("zz", 1)])), utc(now));
    assert_eq!(err_of(bad), validation("refund.scope.items[0].sku"));
    let bad = e.record_refund(refund("rf2", "o1", now, items(&[("b", 1), ("a", 2)])), utc(now));
    assert_eq!(err_of(bad), validation("refund.scope.items[1].qty"));
    let bad = e.record_refund(refund("rf2", "o1", now, items(&[("b", 0)])), utc(now));
    assert_eq!(err_of(bad), validation("refund.scope.items[0].qty"));
    let bad = e.record_refund(refund("rf2", "o1", now, items(&[])), utc(now));
    assert_eq!(err_of(bad), validation("refund.scope.items"));
    // The rest: everything returned -> the remaining amount, all points.
    let r = e.record_refund(refund("rf3", "o1", now, items(&[("a", 1), ("b", 1)])), utc(now)).unwrap();
    match &r {
        Outcome::Refund { amount, .. } => assert_eq!(*amount, d("63")),
        other => panic!("{other:?}"),
    }
    assert_eq!(clawbacks(&r)["reward"], (63, 0, 0));
    let st = e.member(&m("a")).unwrap();
    assert_eq!(
        BTreeMap::from(st.orders["o1"].returned.clone()),
        BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)])
    );
    assert_eq!(st.orders["o1"].clawed["reward"], 90);
}

#[test]
fn order_status_transitions_and_cancellation_of_a_paid_order() {
    let e = engine(base());
    let status = |id: &str, s: OrderStatus| Command::SetOrderStatus { order_id: id.into(), status: s, at: None };
    let now = utc("2024-01-01T00:00:00Z");
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    let r = e.execute("c1", status("o1", OrderStatus::Cancelled), now).unwrap();
    match &r {
        Outcome::Refund { refund_id, amount, .. } => assert_eq!((refund_id.as_str(), *amount), ("cancel:o1", d("100"))),
        other => panic!("{other:?}"),
    }
    assert_eq!(clawbacks(&r)["reward"], (100, 0, 0));
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 0);
    assert_eq!(e.member(&m("a")).unwrap().orders["o1"].order.status, OrderStatus::Cancelled);
    // Cancelled is final.
    assert_eq!(err_of(e.execute("c2", status("o1", OrderStatus::Paid), now)), validation("status"));

    // Placed earns nothing until paid.
    let mut o = order("o2", "a", "2024-01-01T00:00:00Z", "40");
    o.status = OrderStatus::Placed;
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 0);
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 0);
    let out = e.execute("p2", status("o2", OrderStatus::Paid), now).unwrap();
    assert_eq!(earned(&out, "reward"), 40);
    // Paid again: no new points; completed: no new points.
    assert_eq!(earned(&e.execute("p2b", status("o2", OrderStatus::Paid), now).unwrap(), "reward"), 0);
    assert_eq!(earned(&e.execute("p2c", status("o2", OrderStatus::Completed), now).unwrap(), "reward"), 0);
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 40);
    assert_eq!(err_of(e.execute("p2d", status("o2", OrderStatus::Placed), now)), validation("status"));
    // A fully refunded paid order can still be cancelled, without a second clawback.
    e.record_refund(refund("rf", "o2", "2024-01-01T00:00:00Z", RefundScope::Full), now).unwrap();
    let out = e.execute("c3", status("o2", OrderStatus::Cancelled), now).unwrap();
    assert!(matches!(out, Outcome::Order { .. }), "{out:?}");
    assert_eq!(e.member(&m("a")).unwrap().orders["o2"].clawed["reward"], 40);

    // Placed -> cancelled: nothing earned, nothing clawed.
    let mut o = order("o3", "a", "2024-01-01T00:00:00Z", "40");
    o.status = OrderStatus::Placed;
    e.record_order(o, now).unwrap();
    e.execute("c4", status("o3", OrderStatus::Cancelled), now).unwrap();
    assert_eq!(e.member(&m("a")).unwrap().orders["o3"].earned.values().sum::<i64>(), 0);
    assert_eq!(err_of(e.execute("c5", status("nope", OrderStatus::Paid), now)).0, "not_found");
}

#[test]
fn paying_a_placed_order_earns_at_the_payment_time() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 5}));
    let mut o = order("o1", "a", "2024-01-01T02:00:00Z", "100");
    o.status = OrderStatus::Placed;
    e.record_order(o, utc("2024-01-01T02:00:00Z")).unwrap();
    let paid = utc("2024-01-10T02:00:00Z");
    let cmd = Command::SetOrderStatus { order_id: "o1".into(), status: OrderStatus::Paid, at: None };
    assert_eq!(earned(&e.execute("pay", cmd, paid).unwrap(), "reward"), 100);
    let lot = &e.lots(&m("a")).unwrap()[0];
    assert_eq!(lot.earned_at, paid);
    // Valid through the 5th day after payment (15 Jan local).
    assert_eq!(lot.expires_at, Some(utc("2024-01-15T16:00:00Z")));
    assert_eq!(avail(&e, "a", "2024-01-10T02:00:00Z"), 100);
    // And the balance as of before the payment has no points.
    assert_eq!(bal(&e, "a", "reward", "2024-01-05T00:00:00Z").total(), 0);
}

#[test]
fn refund_of_a_cancelled_unpaid_order_is_refused() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "100");
    o.status = OrderStatus::Placed;
    e.record_order(o, now).unwrap();
    let cmd = Command::SetOrderStatus { order_id: "o1".into(), status: OrderStatus::Cancelled, at: None };
    e.execute("c1", cmd, now).unwrap();
    let r = e.record_refund(refund("rf1", "o1", "2024-01-01T00:00:00Z", RefundScope::Full), now);
    assert_eq!(err_of(r), validation("refund.order_id"));
    assert_eq!(e.member(&m("a")).unwrap().stats.refunded, Decimal::ZERO);
}

// ----- adjustments ------------------------------------------------------------------

#[test]
fn manual_adjustment_needs_reason_and_actor() {
    let e = with(|v| v["point_types"][0]["pending_days"] = 7.into());
    let now = utc("2024-01-01T00:00:00Z");
    create(&e, "a", "2024-01-01T00:00:00Z", Profile::default());
    let cmd = |delta: i64, reason: &str, actor: &str| Command::Adjust {
        member_id: m("a"),
        point_type: "reward".into(),
        delta,
        reason: reason.into(),
        actor: actor.into(),
    };
    assert_eq!(err_of(e.execute("k1", cmd(10, "", "agent"), now)), validation("reason"));
    assert_eq!(err_of(e.execute("k1", cmd(10, "   ", "agent"), now)), validation("reason"));
    assert_eq!(err_of(e.execute("k1", cmd(10, "ok", ""), now)), validation("actor"));
    assert_eq!(err_of(e.execute("k1", cmd(10, &"x".repeat(501), "agent"), now)), validation("reason"));
    assert_eq!(err_of(e.execute("k1", cmd(0, "ok", "agent"), now)), validation("delta"));
    let wrong_type = Command::Adjust {
        member_id: m("a"),
        point_type: "gold".into(),
        delta: 1,
        reason: "r".into(),
        actor: "a".into(),
    };
    assert_eq!(err_of(e.execute("k1", wrong_type, now)), validation("point_type"));
    let out = e.execute("k1", cmd(10, "service recovery", "agent-7"), now).unwrap();
    let lot_id = match &out {
        Outcome::Adjustment { delta: 10, lot_id: Some(l), .. } => l.clone(),
        other => panic!("{other:?}"),
    };
    // Never pending, even with a pending period.
    let lot = &e.lots(&m("a")).unwrap()[0];
    assert_eq!((lot.id.as_str(), lot.source.clone(), lot.available_at), (lot_id.as_str(), LotSource::Adjustment, now));
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 10);
    assert_eq!(err_of(e.execute("k2", cmd(-11, "fix", "agent"), now)).0, "insufficient_points");
    e.execute("k2", cmd(-4, "fix", "agent"), now).unwrap();
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 6);
    // The reason and actor are on the event; the statement shows the reason.
    let events = e.store().events(&m("a")).unwrap();
    assert!(events.iter().any(|ev| matches!(ev,
        crm_core::Event::PointsAdjusted(a) if a.reason == "fix" && a.actor == "agent" && a.delta == -4)));
    let page = e.statement(&m("a"), "reward", 0, 10).unwrap();
    let got: Vec<_> = page.entries.iter().map(|x| (x.kind.as_str(), x.points, x.reference.clone())).collect();
    assert_eq!(got, vec![("adjust", 10, Some("service recovery".into())), ("adjust", -4, Some("fix".into()))]);
    // Growth points can be adjusted too.
    let growth = Command::Adjust {
        member_id: m("a"),
        point_type: "growth".into(),
        delta: 7,
        reason: "migration".into(),
        actor: "ops".into(),
    };
    e.execute("k3", growth, now).unwrap();
    assert_eq!(bal(&e, "a", "growth", "2024-01-01T00:00:00Z").available, 7);
    let ghost = Command::Adjust {
        member_id: m("ghost"),
        point_type: "reward".into(),
        delta: 1,
        reason: "r".into(),
        actor: "a".into(),
    };
    assert_eq!(err_of(e.execute("k4", ghost, now)).0, "not_found");
}

// ----- bonuses ----------------------------------------------------------------------------

fn bonus_engine() -> Engine<MemoryStore> {
    with(|v| {
        v["earn"]["bonuses"] = json!([
            {"id": "welcome", "action": "sign_up", "point_type": "reward", "points": 10},
            {"id": "first", "action": "first_order", "point_type": "reward", "points": 20},
            {"id": "review", "action": "review", "point_type": "reward", "points": 5, "max_per_member": 2},
            {"id": "profile", "action": "profile_completed", "point_type": "growth", "points": 30},
            {"id": "share", "action": "share", "point_type": "reward", "points": 1}
        ]);
    })
}

fn full_profile() -> ProfilePatch {
    ProfilePatch {
        name: Some("Li Lei".into()),
        phone: Some("+86 138 0013 8000".into()),
        email: Some("li@example.com".into()),
        birthday: NaiveDate::from_ymd_opt(1990, 5, 1),
        gender: Some(crm_core::Gender::Male),
        region: Some("Shanghai".into()),
        ..ProfilePatch::default()
    }
}

#[test]
fn action_bonuses_and_max_per_member() {
    let e = bonus_engine();
    let now = utc("2024-01-01T00:00:00Z");
    // Auto-enrolment awards sign-up; the first order awards its bonus once.
    let o = e.record_order(order("o1", "a", "2024-01-01T00:00:00Z", "100"), now).unwrap();
    assert_eq!(earned(&o, "reward"), 120);
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 130);
    assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:00Z", "100"), 100);
    let action = |a: Action, r: &str| Command::RecordAction { member_id: m("a"), action: a, reference: r.into() };
    let awarded = |o: Outcome| match o {
        Outcome::Action { awarded, .. } => awarded.get("reward").copied().unwrap_or(0),
        other => panic!("{other:?}"),
    };
    assert_eq!(awarded(e.execute("rv1", action(Action::Review, "p1"), now).unwrap()), 5);
    assert_eq!(awarded(e.execute("rv2", action(Action::Review, "p2"), now).unwrap()), 5);
    assert_eq!(awarded(e.execute("rv3", action(Action::Review, "p3"), now).unwrap()), 0);
    // Sign-up and first order are once only, even when reported.
    assert_eq!(awarded(e.execute("su", action(Action::SignUp, "again"), now).unwrap()), 0);
    assert_eq!(awarded(e.execute("fo", action(Action::FirstOrder, "again"), now).unwrap()), 0);
    // Custom actions are unlimited by default.
    for i in 0..3 {
        assert_eq!(awarded(e.execute(&format!("sh{i}"), action(Action::Custom("share".into()), "x"), now).unwrap()), 1);
    }
    assert_eq!(err_of(e.execute("bad", action(Action::Review, ""), now)), validation("reference"));
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 130 + 100 + 10 + 3);
    // Profile completed: once, when the last field arrives.
    let now2 = utc("2024-01-02T00:00:00Z");
    let mut partial = full_profile();
    partial.region = None;
    e.execute("pf1", Command::UpdateProfile { member_id: m("a"), patch: partial }, now2).unwrap();
    assert_eq!(bal(&e, "a", "growth", "2024-01-02T00:00:00Z").available, 0);
    e.execute("pf2", Command::UpdateProfile { member_id: m("a"), patch: full_profile() }, now2).unwrap();
    assert_eq!(bal(&e, "a", "growth", "2024-01-02T00:00:00Z").available, 30);
    let again = ProfilePatch { name: Some("Han Meimei".into()), ..ProfilePatch::default() };
    e.execute("pf3", Command::UpdateProfile { member_id: m("a"), patch: again }, now2).unwrap();
    assert_eq!(bal(&e, "a", "growth", "2024-01-02T00:00:00Z").available, 30);
    let st = e.member(&m("a")).unwrap();
    assert_eq!(st.bonus_counts["review"], 2);
    assert_eq!(st.bonus_counts["welcome"], 1);
    assert_eq!(st.bonus_counts["first"], 1);
    assert_eq!(st.bonus_counts["profile"], 1);
    // A member created with a complete profile gets the profile bonus at once.
    let c = Command::CreateMember {
        member_id: m("b"),
        profile: Profile {
            name: Some("B".into()),
            phone: Some("13800138000".into()),
            email: Some("b@example.com".into()),
            birthday: NaiveDate::from_ymd_opt(1991, 1, 1),
            gender: Some(crm_core::Gender::Female),
            region: Some("Beijing".into()),
            ..Profile::default()
        },
        identities: vec![],
        tags: vec![],
        consents: BTreeMap::new(),
    };
    e.execute("member:b", c, now2).unwrap();
    assert_eq!(bal(&e, "b", "growth", "2024-01-02T00:00:00Z").available, 30);
}

#[test]
fn first_order_bonus_waits_for_payment() {
    let e = bonus_engine();
    let now = utc("2024-01-01T00:00:00Z");
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "10");
    o.status = OrderStatus::Placed;
    assert_eq!(earned(&e.record_order(o, now).unwrap(), "reward"), 0);
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 10); // sign-up only
    let cmd = Command::SetOrderStatus { order_id: "o1".into(), status: OrderStatus::Paid, at: None };
    assert_eq!(earned(&e.execute("pay", cmd, now).unwrap(), "reward"), 30);
    assert_eq!(buy(&e, "o2", "a", "2024-01-01T00:00:00Z", "10"), 10);
}

#[test]
fn sign_up_bonus_on_create_member() {
    let e = bonus_engine();
    create(&e, "a", "2024-01-01T00:00:00Z", Profile::default());
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 10);
}

// ----- identities, tags, consent -----------------------------------------------------------

#[test]
fn one_identity_never_maps_to_two_members() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    let wx = Identity::new("wechat", "o-abc").unwrap();
    let mk = |id: &str, identities: Vec<Identity>| Command::CreateMember {
        member_id: m(id),
        profile: Profile::default(),
        identities,
        tags: vec![],
        consents: BTreeMap::new(),
    };
    e.execute("member:a", mk("a", vec![wx.clone()]), now).unwrap();
    assert_eq!(e.find_by_identity(&wx).unwrap(), Some(m("a")));
    assert_eq!(err_of(e.execute("member:b", mk("b", vec![wx.clone()]), now)).0, "conflict");
    assert!(e.member(&m("b")).is_err(), "a refused create writes nothing");
    e.execute("member:b", mk("b", vec![]), now).unwrap();
    let link = |id: &str, i: &Identity| Command::LinkIdentity { member_id: m(id), identity: i.clone() };
    assert_eq!(err_of(e.execute("l1", link("b", &wx), now)).0, "conflict");
    // Linking to the owner again changes nothing.
    let before = e.store().events(&m("a")).unwrap().len();
    e.execute("l2", link("a", &wx), now).unwrap();
    assert_eq!(e.store().events(&m("a")).unwrap().len(), before);
    // Creating a member twice is a conflict too.
    assert_eq!(err_of(e.execute("member:a2", mk("a", vec![]), now)).0, "conflict");
    // Bad identities name their field.
    let bad = Identity { channel: String::new(), external_id: "x".into() };
    assert_eq!(err_of(e.execute("l3", link("a", &bad), now)), validation("identity.channel"));
    assert_eq!(err_of(e.execute("member:c", mk("c", vec![bad]), now)), validation("identities[0].channel"));
    // Unlink releases; then another member may claim it.
    let unlink = Command::UnlinkIdentity { member_id: m("a"), identity: wx.clone() };
    e.execute("u1", unlink.clone(), now).unwrap();
    assert_eq!(e.find_by_identity(&wx).unwrap(), None);
    assert_eq!(err_of(e.execute("u2", unlink, now)).0, "not_found");
    e.execute("l4", link("b", &wx), now).unwrap();
    assert_eq!(e.find_by_identity(&wx).unwrap(), Some(m("b")));
    assert!(e.member(&m("b")).unwrap().identities.contains(&wx));
    assert!(!e.member(&m("a")).unwrap().identities.contains(&wx));
}

#[test]
fn tags_add_and_remove() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    let c = Command::CreateMember {
        member_id: m("a"),
        profile: Profile::default(),
        identities: vec![],
        tags: vec!["new".into()],
        consents: BTreeMap::new(),
    };
    e.execute("member:a", c, now).unwrap();
    let add = |t: &str| Command::AddTag { member_id: m("a"), tag: t.into() };
    e.execute("t1", add("vip"), now).unwrap();
    let n = e.store().events(&m("a")).unwrap().len();
    e.execute("t2", add("vip"), now).unwrap();
    assert_eq!(e.store().events(&m("a")).unwrap().len(), n, "adding a present tag is a no-op");
    e.execute("t3", Command::RemoveTag { member_id: m("a"), tag: "new".into() }, now).unwrap();
    e.execute("t4", Command::RemoveTag { member_id: m("a"), tag: "absent".into() }, now).unwrap();
    assert_eq!(e.member(&m("a")).unwrap().tags.into_iter().collect::<Vec<_>>(), vec!["vip".to_string()]);
    assert_eq!(err_of(e.execute("t5", add("two words"), now)), validation("tag"));
    assert_eq!(err_of(e.execute("t5", add(""), now)), validation("tag"));
    assert_eq!(err_of(e.execute("t5", add(&"x".repeat(65)), now)), validation("tag"));
    assert_eq!(err_of(e.execute("t6", Command::AddTag { member_id: m("zz"), tag: "x".into() }, now)).0, "not_found");
}

#[test]
fn consent_is_recorded_with_its_timestamp() {
    let e = engine(base());
    let t0 = utc("2024-01-01T00:00:00Z");
    let c = Command::CreateMember {
        member_id: m("a"),
        profile: Profile::default(),
        identities: vec![],
        tags: vec![],
        consents: BTreeMap::from([("sms".to_string(), true)]),
    };
    e.execute("member:a", c, t0).unwrap();
    let st = e.member(&m("a")).unwrap();
    assert_eq!(st.consents["sms"], crm_core::Consent { granted: true, at: t0 });
    let t1 = utc("2024-02-01T08:30:00Z");
    let set = |ch: &str, g: bool| Command::SetConsent { member_id: m("a"), channel: ch.into(), granted: g };
    e.execute("c1", set("sms", false), t1).unwrap();
    e.execute("c2", set("email", true), t1).unwrap();
    let st = e.member(&m("a")).unwrap();
    assert_eq!(st.consents["sms"], crm_core::Consent { granted: false, at: t1 });
    assert_eq!(st.consents["email"], crm_core::Consent { granted: true, at: t1 });
    assert_eq!(err_of(e.execute("c3", set("", true), t1)), validation("channel"));
}

// ----- merge ----------------------------------------------------------------------------------

/// `a` (survivor) and `b` (to merge), each with an order; no identities.
fn merge_fixture() -> Engine<MemoryStore> {
    let e = engine(base());
    buy(&e, "oa", "a", "2024-01-01T00:00:00Z", "100");
    buy(&e, "ob", "b", "2024-01-02T00:00:00Z", "50");
    let now = utc("2024-01-03T00:00:00Z");
    e.execute("t", Command::AddTag { member_id: m("b"), tag: "from-b".into() }, now).unwrap();
    e.redeem(&m("b"), "reward", 10, "rb", now).unwrap();
    e
}

fn merge(survivor: &str, merged: &str) -> Command {
    Command::Merge { survivor: m(survivor), merged: m(merged) }
}

#[test]
fn merge_moves_lots_orders_and_lineage_and_is_idempotent() {
    let e = merge_fixture();
    let now = utc("2024-01-04T00:00:00Z");
    let b_lots = e.lots(&m("b")).unwrap();
    let out = e.execute("merge:b->a", merge("a", "b"), now).unwrap();
    assert_eq!(
        out,
        Outcome::Merge { survivor: m("a"), merged: m("b"), moved: BTreeMap::from([("reward".to_string(), 40)]) }
    );
    let a = e.member(&m("a")).unwrap();
    let b = e.member(&m("b")).unwrap();
    assert_eq!(a.merged_from, vec![m("b")]);
    assert_eq!(b.status, MemberStatus::Merged { into: m("a"), at: now });
    assert!(b.lots.is_empty() && b.orders.is_empty());
    assert!(a.orders.contains_key("ob") && a.orders.contains_key("oa"));
    assert!(a.redemptions.contains_key("rb"));
    assert!(a.tags.contains("from-b"));
    for l in &b_lots {
        assert!(a.open_lots().any(|m| m == l), "lot {} moved", l.id);
    }
    assert_eq!(a.stats.orders, 2);
    assert_eq!(avail(&e, "a", "2024-01-04T00:00:00Z"), 140);
    // The merged id resolves to the survivor for queries and commands.
    assert_eq!(avail(&e, "b", "2024-01-04T00:00:00Z"), 140);
    e.redeem(&m("b"), "reward", 5, "r-via-b", now).unwrap();
    assert_eq!(avail(&e, "a", "2024-01-04T00:00:00Z"), 135);
    // Idempotent: the same key returns the first outcome; a new key changes nothing.
    let snapshot = all_events(&e);
    assert_eq!(e.execute("merge:b->a", merge("a", "b"), now).unwrap(), out);
    let again = e.execute("merge-again", merge("a", "b"), now).unwrap();
    assert!(matches!(&again, Outcome::Merge { moved, .. } if moved.is_empty()), "{again:?}");
    assert_eq!(all_events(&e), snapshot);
    // A reversal of b's old redemption now restores on a.
    e.execute("rev", Command::ReverseRedemption { member_id: m("b"), redemption_id: "rb".into() }, now).unwrap();
    assert_eq!(avail(&e, "a", "2024-01-04T00:00:00Z"), 145);
    // Invalid merges.
    assert_eq!(err_of(e.execute("m1", merge("a", "a"), now)), validation("merged"));
    assert_eq!(err_of(e.execute("m2", merge("b", "a"), now)), validation("survivor"));
    assert_eq!(err_of(e.execute("m3", merge("a", "zz"), now)).0, "not_found");
    assert_eq!(err_of(e.execute("m4", merge("zz", "a"), now)).0, "not_found");
    // Statements: merge_out on b, merge_in on a.
    let sb = e.store().events(&m("b")).unwrap();
    let entries = crm_core::engine::statement_entries(&sb, "reward");
    assert_eq!(entries.last().map(|x| (x.kind.as_str(), x.points, x.balance)), Some(("merge_out", -40, 0)));
}

#[test]
fn refund_of_a_merged_members_order_claws_back_from_the_survivor() {
    let e = merge_fixture();
    let now = utc("2024-01-04T00:00:00Z");
    e.execute("merge:b->a", merge("a", "b"), now).unwrap();
    let r = e.record_refund(refund("rf", "ob", "2024-01-04T00:00:00Z", RefundScope::Full), now).unwrap();
    match &r {
        Outcome::Refund { member_id, .. } => assert_eq!(member_id, &m("a")),
        other => panic!("{other:?}"),
    }
    // ob's own lot had 40 left (10 were spent); the other 10 come from a's lot.
    assert_eq!(clawbacks(&r)["reward"], (50, 0, 0));
    assert_eq!(avail(&e, "a", "2024-01-04T00:00:00Z"), 90);
    let a = e.member(&m("a")).unwrap();
    assert_eq!(a.orders["ob"].clawed["reward"], 50);
    // Cancelling a moved order works the same way.
    let e = merge_fixture();
    e.execute("merge:b->a", merge("a", "b"), now).unwrap();
    let cmd = Command::SetOrderStatus { order_id: "ob".into(), status: OrderStatus::Cancelled, at: None };
    let r = e.execute("cancel-ob", cmd, now).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (50, 0, 0));
}

#[test]
fn merge_chains_follow_to_the_last_survivor() {
    let e = merge_fixture();
    buy(&e, "oc", "c", "2024-01-02T00:00:00Z", "7");
    let now = utc("2024-01-04T00:00:00Z");
    e.execute("m1", merge("a", "b"), now).unwrap();
    e.execute("m2", merge("c", "a"), now).unwrap();
    assert_eq!(e.resolve(&m("b")).unwrap().id, m("c"));
    assert_eq!(avail(&e, "b", "2024-01-04T00:00:00Z"), 147);
    assert_eq!(e.member(&m("c")).unwrap().merged_from, vec![m("a")]);
    // b was merged into a, not c: merging it again is refused.
    assert_eq!(err_of(e.execute("m3", merge("c", "b"), now)), validation("merged"));
}

#[test]
fn merge_moves_identities() {
    let e = merge_fixture();
    let now = utc("2024-01-04T00:00:00Z");
    let wx = Identity::new("wechat", "o-b").unwrap();
    e.execute("l", Command::LinkIdentity { member_id: m("b"), identity: wx.clone() }, now).unwrap();
    e.execute("merge:b->a", merge("a", "b"), now).unwrap();
    assert_eq!(e.find_by_identity(&wx).unwrap(), Some(m("a")));
    assert!(e.member(&m("a")).unwrap().identities.contains(&wx));
    assert!(e.member(&m("b")).unwrap().identities.is_empty());
}

#[test]
fn balance_of_a_merged_member_as_of_before_the_merge_is_its_own() {
    let e = merge_fixture(); // a: 100; b: 50 - 10 = 40
    e.execute("merge:b->a", merge("a", "b"), utc("2024-01-10T00:00:00Z")).unwrap();
    assert_eq!(avail(&e, "b", "2024-01-05T00:00:00Z"), 40);
    assert_eq!(avail(&e, "a", "2024-01-05T00:00:00Z"), 100);
    assert_eq!(avail(&e, "b", "2024-01-10T00:00:00Z"), 140);
}

// ----- erasure ---------------------------------------------------------------------------------

#[test]
fn erasure_clears_personal_data_and_identities_but_keeps_balances() {
    let e = engine(base());
    let t0 = utc("2024-01-01T00:00:00Z");
    let wx = Identity::new("wechat", "o-secret").unwrap();
    let profile = Profile {
        name: Some("Zhang San".into()),
        phone: Some("13912345678".into()),
        email: Some("zhang@example.com".into()),
        join_channel: Some("app".into()),
        ..Profile::default()
    };
    let c = Command::CreateMember {
        member_id: m("a"),
        profile,
        identities: vec![wx.clone()],
        tags: vec!["vip".into()],
        consents: BTreeMap::from([("sms".to_string(), true)]),
    };
    let created = e.execute("member:a", c.clone(), t0).unwrap();
    let patch = ProfilePatch { region: Some("Pudong".into()), ..ProfilePatch::default() };
    e.execute("p", Command::UpdateProfile { member_id: m("a"), patch }, t0).unwrap();
    buy(&e, "o1", "a", "2024-01-02T00:00:00Z", "100");
    e.redeem(&m("a"), "reward", 30, "r1", utc("2024-01-03T00:00:00Z")).unwrap();
    let before = bal(&e, "a", "reward", "2024-01-04T00:00:00Z");
    let now = utc("2024-01-04T00:00:00Z");
    let out = e.execute("erase:a", Command::Erase { member_id: m("a") }, now).unwrap();
    assert_eq!(out, Outcome::Erasure { member_id: m("a") });
    let st = e.member(&m("a")).unwrap();
    assert_eq!(st.status, MemberStatus::Erased { at: now });
    assert_eq!((st.profile.name.as_ref(), st.profile.phone.as_ref(), st.profile.email.as_ref()), (None, None, None));
    assert_eq!(st.profile.region, None);
    assert_eq!(st.profile.join_channel.as_deref(), Some("app"), "cohort data stays");
    assert!(st.identities.is_empty() && st.tags.is_empty() && st.consents.is_empty());
    assert_eq!(e.find_by_identity(&wx).unwrap(), None);
    assert_eq!(bal(&e, "a", "reward", "2024-01-04T00:00:00Z"), before);
    assert_eq!(before.available, 70);
    // No personal data left in the events or the command log.
    let events = serde_json::to_string(&e.store().events(&m("a")).unwrap()).unwrap();
    let mut receipts = String::new();
    e.store()
        .receipts(&mut |r| {
            receipts.push_str(&serde_json::to_string(&r).unwrap());
            Ok(())
        })
        .unwrap();
    for secret in ["Zhang", "13912345678", "zhang@example", "o-secret", "Pudong"] {
        assert!(!events.contains(secret), "{secret} left in events");
        assert!(!receipts.contains(secret), "{secret} left in receipts");
    }
    // The erased member takes no commands; the identity is free again.
    let tag = Command::AddTag { member_id: m("a"), tag: "x".into() };
    assert_eq!(err_of(e.execute("t", tag, now)), validation("member_id"));
    assert_eq!(
        err_of(e.record_order(order("o2", "a", "2024-01-04T00:00:00Z", "1"), now)),
        validation("order.member_id")
    );
    assert_eq!(err_of(e.redeem(&m("a"), "reward", 1, "r2", now)), validation("member_id"));
    buy(&e, "ob", "b", "2024-01-04T00:00:00Z", "1");
    e.execute("lb", Command::LinkIdentity { member_id: m("b"), identity: wx.clone() }, now).unwrap();
    // Retrying the original create (with its personal data) still gives the first outcome.
    assert_eq!(e.execute("member:a", c, t0).unwrap(), created);
    // Erasing twice is a validation error under a new key, the first outcome under the old one.
    assert_eq!(e.execute("erase:a", Command::Erase { member_id: m("a") }, now).unwrap(), out);
    assert_eq!(err_of(e.execute("erase2", Command::Erase { member_id: m("a") }, now)), validation("member_id"));
}

#[test]
fn erasing_a_survivor_also_erases_the_merged_members_profile() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    create(&e, "a", "2024-01-01T00:00:00Z", Profile::default());
    let p = Profile { name: Some("Wang Wu".into()), phone: Some("13700000000".into()), ..Profile::default() };
    create(&e, "b", "2024-01-01T00:00:00Z", p);
    e.execute("merge:b->a", merge("a", "b"), now).unwrap();
    e.execute("erase:a", Command::Erase { member_id: m("a") }, now).unwrap();
    let b = e.member(&m("b")).unwrap();
    assert_eq!((&b.profile.name, &b.profile.phone), (&None, &None));
}

// ----- queries ---------------------------------------------------------------------------------

#[test]
fn statement_pagination_and_running_balance() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    buy(&e, "o2", "a", "2024-01-02T00:00:00Z", "50");
    e.redeem(&m("a"), "reward", 30, "r1", utc("2024-01-03T00:00:00Z")).unwrap();
    e.execute("adj", adjust("a", "reward", 5), utc("2024-01-04T00:00:00Z")).unwrap();
    let now = "2024-01-05T00:00:00Z";
    e.record_refund(refund("rf", "o2", now, RefundScope::Amount { amount: d("10") }), utc(now)).unwrap();
    let p1 = e.statement(&m("a"), "reward", 0, 2).unwrap();
    assert_eq!((p1.total, p1.next_offset, p1.entries.len()), (5, Some(2), 2));
    let p2 = e.statement(&m("a"), "reward", 2, 2).unwrap();
    assert_eq!((p2.total, p2.next_offset, p2.entries.len()), (5, Some(4), 2));
    let p3 = e.statement(&m("a"), "reward", 4, 2).unwrap();
    assert_eq!((p3.total, p3.next_offset, p3.entries.len()), (5, None, 1));
    let p4 = e.statement(&m("a"), "reward", 9, 2).unwrap();
    assert_eq!((p4.total, p4.next_offset, p4.entries.len()), (5, None, 0));
    let all: Vec<_> = [p1, p2, p3].into_iter().flat_map(|p| p.entries).collect();
    let got: Vec<_> = all.iter().map(|x| (x.kind.as_str(), x.points, x.balance, x.reference.clone())).collect();
    assert_eq!(
        got,
        vec![
            ("earn", 100, 100, Some("o1".into())),
            ("earn", 50, 150, Some("o2".into())),
            ("redeem", -30, 120, Some("r1".into())),
            ("adjust", 5, 125, Some("goodwill".into())),
            ("clawback", -10, 115, Some("o2".into())),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all.last().unwrap().balance, bal(&e, "a", "reward", now).total());
    assert_eq!(e.statement(&m("a"), "growth", 0, 10).unwrap().total, 0);
    assert_eq!(
        err_of(e.statement(&m("a"), "reward", 0, 0).map(|_| Outcome::Erasure { member_id: m("a") })).1,
        Some("limit".into())
    );
    assert!(e.statement(&m("a"), "reward", 0, 10_001).is_err());
    assert!(e.statement(&m("a"), "gold", 0, 10).is_err());
}

#[test]
fn expiring_buckets_by_instant() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 30}));
    buy(&e, "o1", "a", "2024-01-01T02:00:00Z", "100"); // expires 1 Feb local 00:00 = 31 Jan 16:00Z
    buy(&e, "o2", "a", "2024-01-05T02:00:00Z", "50"); // expires 4 Feb 16:00Z
    buy(&e, "o3", "a", "2024-01-05T12:00:00Z", "25"); // same local day: same bucket
    buy(&e, "o4", "a", "2024-01-10T02:00:00Z", "7"); // expires 9 Feb 16:00Z
    let now = utc("2024-01-20T02:00:00Z");
    let x = e.expiring(&m("a"), "reward", now, 15).unwrap();
    assert_eq!(x.total, 100);
    assert_eq!(x.buckets, vec![(utc("2024-01-31T16:00:00Z"), 100)]);
    let x = e.expiring(&m("a"), "reward", now, 16).unwrap();
    assert_eq!(x.total, 175);
    assert_eq!(x.buckets, vec![(utc("2024-01-31T16:00:00Z"), 100), (utc("2024-02-04T16:00:00Z"), 75)]);
    // The window is (now, now + days]: a lot expiring exactly now is not "expiring".
    let x = e.expiring(&m("a"), "reward", utc("2024-01-31T16:00:00Z"), 4).unwrap();
    assert_eq!(x.buckets, vec![(utc("2024-02-04T16:00:00Z"), 75)]);
    // Partially spent lots count what remains.
    e.redeem(&m("a"), "reward", 60, "r", now).unwrap();
    let x = e.expiring(&m("a"), "reward", now, 16).unwrap();
    assert_eq!(x.buckets, vec![(utc("2024-01-31T16:00:00Z"), 40), (utc("2024-02-04T16:00:00Z"), 75)]);
    assert_eq!(e.expiring(&m("a"), "growth", now, 365).unwrap().total, 0);
}

#[test]
fn liability_totals_and_value() {
    let e = with(|v| {
        v["point_types"][0]["pending_days"] = 7.into();
        v["earn"]["rules"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "grow", "point_type": "growth", "points_per_unit": "1"}));
    });
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    buy(&e, "o2", "b", "2024-01-05T00:00:00Z", "50");
    create(&e, "c", "2024-01-05T00:00:00Z", Profile::default());
    let now = utc("2024-01-09T00:00:00Z");
    e.redeem(&m("a"), "reward", 30, "r", now).unwrap();
    let l = e.liability(now).unwrap();
    assert_eq!(l.members, 3);
    let reward = l.point_types.iter().find(|t| t.point_type == "reward").unwrap();
    assert_eq!(
        (reward.members, reward.available, reward.pending, reward.debt, reward.outstanding),
        (2, 70, 50, 0, 120)
    );
    assert_eq!(reward.value, d("1.20"));
    let growth = l.point_types.iter().find(|t| t.point_type == "growth").unwrap();
    assert_eq!((growth.members, growth.outstanding, growth.value, growth.spendable), (2, 150, Decimal::ZERO, false));
    assert_eq!(l.value, d("1.20"));
    // Debt is deducted.
    e.record_refund(refund("rf", "o1", "2024-01-09T00:00:00Z", RefundScope::Full), now).unwrap();
    let l = e.liability(now).unwrap();
    let reward = l.point_types.iter().find(|t| t.point_type == "reward").unwrap();
    assert_eq!((reward.available, reward.debt, reward.outstanding), (-30, 30, 20));
    assert_eq!(l.value, d("0.20"));
}

#[test]
fn balance_as_of_a_past_instant() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    e.redeem(&m("a"), "reward", 40, "r1", utc("2024-01-10T00:00:00Z")).unwrap();
    buy(&e, "o2", "a", "2024-01-20T00:00:00Z", "50");
    assert_eq!(avail(&e, "a", "2023-12-31T23:59:59Z"), 0);
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 100);
    assert_eq!(avail(&e, "a", "2024-01-09T23:59:59Z"), 100);
    assert_eq!(avail(&e, "a", "2024-01-10T00:00:00Z"), 60);
    assert_eq!(avail(&e, "a", "2024-01-19T00:00:00Z"), 60);
    assert_eq!(avail(&e, "a", "2024-01-20T00:00:00Z"), 110);
    assert_eq!(avail(&e, "a", "2025-01-01T00:00:00Z"), 110);
    assert_eq!(e.member_as_of(&m("a"), utc("2024-01-10T00:00:00Z")).unwrap().redemptions.len(), 1);
    assert_eq!(
        err_of(
            e.balance(&m("zz"), "reward", utc("2024-01-01T00:00:00Z")).map(|_| Outcome::Erasure { member_id: m("zz") })
        )
        .0,
        "not_found"
    );
}

#[test]
fn record_orders_batch_isolates_a_bad_order() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    let batch = vec![
        order("g1", "m1", "2024-01-01T00:00:00Z", "100"),
        order("bad", "m2", "2024-01-01T00:00:00Z", "-1"),
        order("g2", "m3", "2024-01-01T00:00:00Z", "50"),
        order("g1", "m1", "2024-01-01T00:00:00Z", "100"),
        order("g3", "m2", "2024-01-01T00:00:00Z", "10"),
        {
            let mut o = order("g1", "m1", "2024-01-01T00:00:00Z", "999");
            o.channel = Some("other".into());
            o
        },
    ];
    let results = e.record_orders(&batch, now).unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(earned(results[0].as_ref().unwrap(), "reward"), 100);
    let err = results[1].as_ref().unwrap_err();
    assert_eq!((err.code(), err.field()), ("validation_error", Some("order.amount")));
    assert_eq!(earned(results[2].as_ref().unwrap(), "reward"), 50);
    assert_eq!(results[3].as_ref().unwrap(), results[0].as_ref().unwrap(), "a duplicate returns the first outcome");
    assert_eq!(earned(results[4].as_ref().unwrap(), "reward"), 10);
    assert_eq!(results[5].as_ref().unwrap_err().code(), "conflict", "same id, different order");
    assert_eq!(avail(&e, "m1", "2024-01-01T00:00:00Z"), 100);
    assert_eq!(avail(&e, "m2", "2024-01-01T00:00:00Z"), 10);
    assert_eq!(avail(&e, "m3", "2024-01-01T00:00:00Z"), 50);
    assert!(!e.member(&m("m2")).unwrap().orders.contains_key("bad"));
    // Again: every good order returns its first outcome, nothing changes.
    let snapshot = all_events(&e);
    let again = e.record_orders(&batch[..5], now).unwrap();
    for i in [0, 2, 3, 4] {
        assert_eq!(again[i].as_ref().unwrap(), results[i].as_ref().unwrap());
    }
    assert!(again[1].is_err());
    assert_eq!(all_events(&e), snapshot);
    // A single record_order of an id from the batch returns the batch's outcome.
    assert_eq!(e.record_order(batch[2].clone(), now).unwrap(), *results[2].as_ref().unwrap());
}

// ----- idempotency ---------------------------------------------------------------------------

#[test]
fn idempotency_keys() {
    let e = engine(base());
    let now = utc("2024-01-01T00:00:00Z");
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    let r1 = e.redeem(&m("a"), "reward", 10, "k1", now).unwrap();
    // Same key, same command, later: the first outcome, no second spend.
    assert_eq!(e.redeem(&m("a"), "reward", 10, "k1", utc("2024-02-01T00:00:00Z")).unwrap(), r1);
    assert_eq!(avail(&e, "a", "2024-01-01T00:00:00Z"), 90);
    // Same key, another command: conflict.
    assert_eq!(err_of(e.redeem(&m("a"), "reward", 11, "k1", now)).0, "conflict");
    assert_eq!(err_of(e.execute("k1", adjust("a", "reward", 1), now)).0, "conflict");
    assert_eq!(err_of(e.execute("k1", Command::run_due(), now)).0, "conflict");
    // Same order id with a different body: conflict.
    assert_eq!(err_of(e.record_order(order("o1", "a", "2024-01-01T00:00:00Z", "101"), now)).0, "conflict");
    // A failed command leaves no receipt: the key can be used again.
    assert_eq!(err_of(e.redeem(&m("a"), "reward", 1000, "k2", now)).0, "insufficient_points");
    e.redeem(&m("a"), "reward", 5, "k2", now).unwrap();
    // Point-moving commands need a key; state-setting ones have defaults.
    let err = e.submit(None, adjust("a", "reward", 1), now).unwrap_err();
    assert_eq!((err.code(), err.field()), ("validation_error", Some("idempotency_key")));
    let tag = Command::AddTag { member_id: m("a"), tag: "x".into() };
    let t1 = e.submit(None, tag.clone(), now).unwrap();
    assert_eq!(e.submit(None, tag, now).unwrap(), t1);
    // run_due under an explicit key behaves like run_due.
    let due = e.execute("due-1", Command::run_due(), now).unwrap();
    assert!(matches!(due, Outcome::Due { .. }));
    assert_eq!(e.execute("due-1", Command::run_due(), utc("2030-01-01T00:00:00Z")).unwrap(), due);
}

#[test]
fn reversing_two_redemptions_of_one_emptied_lot_keeps_remaining_within_granted() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "100");
    let now = utc("2024-01-02T00:00:00Z");
    e.redeem(&m("a"), "reward", 50, "r1", now).unwrap();
    e.redeem(&m("a"), "reward", 50, "r2", now).unwrap();
    for r in ["r1", "r2"] {
        let c = Command::ReverseRedemption { member_id: m("a"), redemption_id: r.into() };
        e.execute(&format!("rev-{r}"), c, now).unwrap();
    }
    assert_eq!(avail(&e, "a", "2024-01-02T00:00:00Z"), 100);
    for lot in e.lots(&m("a")).unwrap() {
        assert!(0 < lot.remaining && lot.remaining <= lot.granted, "{lot:?}");
    }
}

#[test]
fn replay_after_erasure_keeps_profile_dependent_points() {
    let e = bonus_engine();
    let now = utc("2024-01-01T00:00:00Z");
    create(&e, "a", "2024-01-01T00:00:00Z", Profile::default());
    e.execute("pf", Command::UpdateProfile { member_id: m("a"), patch: full_profile() }, now).unwrap();
    assert_eq!(bal(&e, "a", "growth", "2024-01-01T00:00:00Z").available, 30);
    e.execute("erase:a", Command::Erase { member_id: m("a") }, now).unwrap();
    let fresh = Engine::new(e.program().clone(), MemoryStore::new());
    e.replay_into(&fresh).unwrap();
    assert_eq!(fresh.balance(&m("a"), "growth", now).unwrap().available, 30);
    assert_eq!(fresh.member(&m("a")).unwrap(), e.member(&m("a")).unwrap());
}

// ----- refunds after expiry, order bonuses, actors, liability, dates, clearing --

#[test]
fn refund_does_not_claw_back_points_that_already_expired() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 10}));
    buy(&e, "o1", "a", "2024-01-01T02:00:00Z", "100");
    buy(&e, "o2", "a", "2024-01-10T02:00:00Z", "50");
    // o1's 100 points expire unused (valid through 11 January local).
    assert_eq!(e.run_due(utc("2024-01-15T00:00:00Z")).unwrap(), Outcome::due(1, 0, 100));
    assert_eq!(e.member(&m("a")).unwrap().orders["o1"].expired["reward"], 100);
    let now = "2024-01-16T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Full), utc(now)).unwrap();
    assert!(clawbacks(&r).is_empty(), "{r:?}");
    let b = bal(&e, "a", "reward", now);
    assert_eq!((b.available, b.debt), (50, 0));
    assert!(e.member(&m("a")).unwrap().orders["o1"].clawed.is_empty());
}

#[test]
fn refund_of_overdue_lots_before_run_due_spares_them_too() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 10}));
    buy(&e, "o1", "a", "2024-01-01T02:00:00Z", "100");
    buy(&e, "o2", "a", "2024-01-10T02:00:00Z", "50");
    // No run_due yet: o1's lot is past its expiry but still in the state.
    let now = "2024-01-16T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Full), utc(now)).unwrap();
    assert!(clawbacks(&r).is_empty(), "{r:?}");
    assert_eq!(avail(&e, "a", now), 50);
    // run_due then records the expiry, and nothing is taken twice.
    e.run_due(utc(now)).unwrap();
    assert_eq!(avail(&e, "a", now), 50);
    assert_eq!(e.member(&m("a")).unwrap().orders["o1"].expired["reward"], 100);
}

#[test]
fn refund_after_part_spent_part_expired_claws_only_the_spent_part() {
    let e = with_expiry("Asia/Shanghai", json!({"type": "days_after_earning", "days": 10}));
    buy(&e, "o1", "a", "2024-01-01T02:00:00Z", "100");
    buy(&e, "o2", "a", "2024-01-10T02:00:00Z", "80");
    // 40 spent from o1's lot (soonest expiry first), 60 expire.
    e.redeem(&m("a"), "reward", 40, "r1", utc("2024-01-10T03:00:00Z")).unwrap();
    e.run_due(utc("2024-01-15T00:00:00Z")).unwrap();
    assert_eq!(avail(&e, "a", "2024-01-15T00:00:00Z"), 80);
    // A half refund: target 50 is covered by the 60 that expired.
    let now = "2024-01-16T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Amount { amount: d("50") }), utc(now)).unwrap();
    assert!(clawbacks(&r).is_empty(), "{r:?}");
    // The rest: 100 − 60 expired = 40, from o2's lot.
    let r = e.record_refund(refund("rf2", "o1", now, RefundScope::Full), utc(now)).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (40, 0, 0));
    let b = bal(&e, "a", "reward", now);
    assert_eq!((b.available, b.debt), (40, 0));
    // Had the 60 been clawed when they expired, the refund would owe 40: same balance.
    assert_eq!(e.member(&m("a")).unwrap().orders["o1"].clawed["reward"], 40);
}

fn first_order_bonus_engine() -> Engine<MemoryStore> {
    with(|v| {
        v["earn"]["bonuses"] = json!([{"id": "first", "action": "first_order", "point_type": "reward", "points": 20}])
    })
}

#[test]
fn full_refund_claws_back_the_first_order_bonus() {
    let e = first_order_bonus_engine();
    let t = "2024-03-01T02:00:00Z";
    let o = e.record_order(order("o1", "a", t, "100"), utc(t)).unwrap();
    let Outcome::Order { earned, lots, .. } = &o else { panic!("{o:?}") };
    assert_eq!(earned["reward"], 120);
    // Every lot the order created is listed, the bonus lot included.
    assert_eq!(lots.len(), 2, "{lots:?}");
    let st = e.member(&m("a")).unwrap();
    let total: i64 = st.lots.iter().filter(|l| lots.contains(&l.id)).map(|l| l.granted).sum();
    assert_eq!(total, 120);
    assert!(st
        .lots
        .iter()
        .any(|l| l.source == LotSource::Bonus { bonus_id: "first".into(), order_id: Some("o1".into()) }));
    assert_eq!(st.orders["o1"].bonus["reward"], 20);
    // A partial refund leaves the bonus alone …
    let now = "2024-03-02T00:00:00Z";
    let r = e.record_refund(refund("rf1", "o1", now, RefundScope::Amount { amount: d("50") }), utc(now)).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (50, 0, 0));
    assert_eq!(avail(&e, "a", now), 70);
    // … the refund of the rest takes back the other 50 and the bonus.
    let r = e.record_refund(refund("rf2", "o1", now, RefundScope::Full), utc(now)).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (70, 0, 0));
    assert_eq!(avail(&e, "a", now), 0);
    assert_eq!(e.member(&m("a")).unwrap().orders["o1"].clawed["reward"], 120);
}

#[test]
fn cancelling_a_paid_first_order_claws_back_its_bonus() {
    let e = first_order_bonus_engine();
    let t = "2024-03-01T02:00:00Z";
    e.record_order(order("o1", "a", t, "100"), utc(t)).unwrap();
    let now = "2024-03-02T00:00:00Z";
    let c = Command::SetOrderStatus { order_id: "o1".into(), status: OrderStatus::Cancelled, at: None };
    let r = e.execute("cancel", c, utc(now)).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (120, 0, 0));
    assert_eq!(avail(&e, "a", now), 0);
    // The next order is not a first order: no bonus again.
    assert_eq!(buy(&e, "o2", "a", "2024-03-03T00:00:00Z", "10"), 10);
}

#[test]
fn cancelling_a_zero_amount_first_order_claws_back_its_bonus() {
    let e = first_order_bonus_engine();
    let t = "2024-03-01T02:00:00Z";
    assert_eq!(buy(&e, "o1", "a", t, "0"), 20);
    let c = Command::SetOrderStatus { order_id: "o1".into(), status: OrderStatus::Cancelled, at: None };
    let r = e.execute("cancel", c, utc("2024-03-02T00:00:00Z")).unwrap();
    assert_eq!(clawbacks(&r)["reward"], (20, 0, 0));
    assert_eq!(avail(&e, "a", "2024-03-02T00:00:00Z"), 0);
}

#[test]
fn statement_shows_the_actor_of_an_adjustment() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "10");
    e.execute("adj", adjust("a", "reward", 5), utc("2024-01-02T00:00:00Z")).unwrap();
    let page = e.statement(&m("a"), "reward", 0, 10).unwrap();
    assert_eq!(page.entries[0].actor, None);
    assert_eq!(page.entries[1].kind, "adjust");
    assert_eq!(page.entries[1].actor.as_deref(), Some("agent-7"));
    assert_eq!(page.entries[1].reference.as_deref(), Some("goodwill"));
    // Serialized only when present; older JSON without it still reads.
    let earn = serde_json::to_value(&page.entries[0]).unwrap();
    assert!(earn.get("actor").is_none(), "{earn}");
    let adj = serde_json::to_value(&page.entries[1]).unwrap();
    assert_eq!(adj["actor"], "agent-7");
    let back: crm_core::StatementEntry = serde_json::from_value(earn).unwrap();
    assert_eq!(back, page.entries[0]);
}

#[test]
fn liability_counts_merged_members_once() {
    let e = engine(base());
    buy(&e, "o1", "a", "2024-01-01T00:00:00Z", "10");
    buy(&e, "o2", "b", "2024-01-01T00:00:00Z", "20");
    let now = utc("2024-01-02T00:00:00Z");
    assert_eq!(e.liability(now).unwrap().members, 2);
    e.execute("merge", Command::Merge { survivor: m("a"), merged: m("b") }, now).unwrap();
    let l = e.liability(now).unwrap();
    assert_eq!(l.members, 1);
    assert_eq!(l.point_types[0].members, 1);
    assert_eq!(l.point_types[0].outstanding, 30);
}

#[test]
fn refund_and_status_change_cannot_predate_the_order() {
    let e = engine(base());
    let mut o = order("o1", "a", "2024-01-01T00:00:00Z", "100");
    o.paid_at = Some(utc("2024-01-02T00:00:00Z"));
    e.record_order(o, utc("2024-01-02T00:00:00Z")).unwrap();
    let now = utc("2024-01-05T00:00:00Z");
    // Refund dated after placing but before payment.
    let r = e.record_refund(refund("rf1", "o1", "2024-01-01T12:00:00Z", RefundScope::Full), now);
    assert_eq!(err_of(r), validation("refund.at"));
    // Cancellation (a full refund) dated before payment.
    let cancel =
        |at: &str| Command::SetOrderStatus { order_id: "o1".into(), status: OrderStatus::Cancelled, at: Some(utc(at)) };
    assert_eq!(err_of(e.execute("c1", cancel("2024-01-01T12:00:00Z"), now)), validation("at"));
    assert_eq!(avail(&e, "a", "2024-01-05T00:00:00Z"), 100);
    // At the payment instant both are fine.
    let r = e.record_refund(refund("rf2", "o1", "2024-01-02T00:00:00Z", RefundScope::Amount { amount: d("10") }), now);
    assert_eq!(clawbacks(&r.unwrap())["reward"], (10, 0, 0));
    e.execute("c2", cancel("2024-01-02T00:00:00Z"), now).unwrap();
    // A status change dated before the order was placed.
    let mut o = order("o2", "a", "2024-01-03T00:00:00Z", "10");
    o.status = OrderStatus::Placed;
    e.record_order(o, now).unwrap();
    let pay = Command::SetOrderStatus {
        order_id: "o2".into(),
        status: OrderStatus::Paid,
        at: Some(utc("2024-01-02T23:59:59Z")),
    };
    assert_eq!(err_of(e.execute("p1", pay, now)), validation("at"));
    let pay = Command::SetOrderStatus {
        order_id: "o2".into(),
        status: OrderStatus::Paid,
        at: Some(utc("2024-01-03T00:00:00Z")),
    };
    assert_eq!(earned(&e.execute("p2", pay, now).unwrap(), "reward"), 10);
    // As of any instant, no clawback precedes the lot it takes from.
    for t in ["2024-01-01T12:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"] {
        assert!(bal(&e, "a", "reward", t).available >= 0, "{t}");
    }
}

#[test]
fn profile_patch_can_clear_a_field() {
    let e = engine(base());
    let t = "2024-01-01T00:00:00Z";
    let profile =
        Profile { birthday: NaiveDate::from_ymd_opt(1990, 5, 1), name: Some("Ann".into()), ..Profile::default() };
    create(&e, "a", t, profile);
    // An absent key, or a JSON null, leaves the field as it is …
    for (i, patch) in [json!({}), json!({"birthday": null, "name": "Bo"})].into_iter().enumerate() {
        let patch: ProfilePatch = serde_json::from_value(patch).unwrap();
        e.execute(&format!("keep{i}"), Command::UpdateProfile { member_id: m("a"), patch }, utc(t)).unwrap();
        assert_eq!(e.member(&m("a")).unwrap().profile.birthday, NaiveDate::from_ymd_opt(1990, 5, 1));
    }
    // … and naming it in `clear` removes it.
    let patch: ProfilePatch = serde_json::from_value(json!({"clear": ["birthday"]})).unwrap();
    e.execute("clear", Command::UpdateProfile { member_id: m("a"), patch }, utc(t)).unwrap();
    let p = e.member(&m("a")).unwrap().profile;
    assert_eq!((p.birthday, p.name.as_deref()), (None, Some("Bo")));
    // Unknown names are refused with their position.
    let patch: ProfilePatch = serde_json::from_value(json!({"clear": ["name", "joined_at"]})).unwrap();
    let r = e.execute("bad", Command::UpdateProfile { member_id: m("a"), patch }, utc(t));
    assert_eq!(err_of(r), validation("patch.clear[1]"));
}

/// Recording an order copies the handles of the member's earlier orders
/// and open lots, not the orders and lots themselves (the stored snapshot
/// and the new state share them), and one changed later is copied alone.
#[test]
fn an_order_recorded_shares_the_earlier_orders_and_lots_with_the_stored_snapshot() {
    use crm_core::shared::Shared;
    let e = engine(base());
    buy(&e, "o1", "a", "2024-03-01T10:00:00Z", "10.00");
    buy(&e, "o2", "a", "2024-03-02T10:00:00Z", "20.00");
    let before = e.member(&m("a")).unwrap();
    buy(&e, "o3", "a", "2024-03-03T10:00:00Z", "30.00");
    let after = e.member(&m("a")).unwrap();
    assert_eq!(after.orders.len(), 3);
    for id in ["o1", "o2"] {
        assert!(Shared::ptr_eq(&before.orders[id], &after.orders[id]), "{id} was copied");
    }
    // So are the open lots.
    assert_eq!((before.lots.len(), after.lots.len()), (2, 3));
    for (b, a) in before.lots.iter().zip(after.lots.iter()) {
        assert!(Shared::ptr_eq(b, a), "lot {} was copied", b.id);
    }
    // A refund changes its order only: that one is copied, the other kept.
    let at = "2024-03-04T10:00:00Z";
    e.record_refund(refund("r1", "o1", at, RefundScope::Full), utc(at)).unwrap();
    let refunded = e.member(&m("a")).unwrap();
    assert!(!Shared::ptr_eq(&after.orders["o1"], &refunded.orders["o1"]));
    assert!(Shared::ptr_eq(&after.orders["o2"], &refunded.orders["o2"]));
    assert_ne!(after.orders["o1"], refunded.orders["o1"]);
    // The refund took its points from o1's lot: that lot changed (or went), o2's is kept.
    let lot_of = |st: &crm_core::state::MemberState, order: &str| {
        st.lots.iter().find(|l| matches!(&l.source, LotSource::Order { order_id, .. } if order_id == order)).cloned()
    };
    let (o2_before, o2_after) = (lot_of(&after, "o2").unwrap(), lot_of(&refunded, "o2").unwrap());
    assert!(Shared::ptr_eq(&o2_before, &o2_after));
    assert_ne!(lot_of(&after, "o1"), lot_of(&refunded, "o1"));
}

/// The events whose fields live in a boxed struct read and write the form
/// stored before (the variant's fields beside its `type`): logs written by
/// earlier versions decode, and new ones read the same.
#[test]
fn boxed_events_keep_their_stored_form() {
    let at = "2024-03-01T12:00:00Z";
    let allocation = serde_json::json!({"lot_id": "m#1", "points": 5, "expires_at": null});
    let stored = [
        serde_json::json!({"type": "debt_settled", "at": at, "point_type": "reward", "lot_id": "m#2", "points": 7}),
        serde_json::json!({"type": "points_redeemed", "at": at, "redemption_id": "r-1", "point_type": "reward",
                           "points": 5, "allocations": [allocation]}),
        serde_json::json!({"type": "redemption_reversed", "at": at, "redemption_id": "r-1", "point_type": "reward",
                           "points": 5, "allocations": [allocation]}),
        serde_json::json!({"type": "order_refunded", "at": at, "refund_id": "rf-1", "order_id": "o-1",
                           "amount": "12.50", "items": [{"sku": "sku-1", "qty": 2}]}),
        serde_json::json!({"type": "points_clawed_back", "at": at, "refund_id": "rf-1", "order_id": "o-1",
                           "point_type": "reward", "allocations": [allocation], "debt": 3, "shortfall": 1}),
        serde_json::json!({"type": "points_adjusted", "at": at, "point_type": "reward", "delta": -4, "reason": "fix",
                           "actor": "agent", "lot": null, "allocations": [allocation]}),
        serde_json::json!({"type": "coupon_redeemed", "at": at, "code": "C-1", "order_id": "o-1", "discount": "10"}),
    ];
    for form in stored {
        let event: crm_core::Event = serde_json::from_value(form.clone()).unwrap_or_else(|e| panic!("{form}: {e}"));
        assert_eq!(event.at(), at.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(serde_json::to_value(&event).unwrap(), form, "written as before");
    }
    assert!(std::mem::size_of::<crm_core::Event>() <= 64, "an event fits in 64 bytes");
}
