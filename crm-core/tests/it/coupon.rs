//! Coupons through the engine: every condition and state, the points
//! exchange as one command, idempotency by order, the race for one coupon,
//! return on refund, the checkout quote; property tests of the discount and
//! the codes.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

use crm_core::coupon::{self, Benefit, Cart, CouponStatus, CouponTemplate, Validity};
use crm_core::{Command, CrmError, Engine, MemberId, MemoryStore, Order, OrderItem, Outcome, Program};

fn t(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, d, h, 0, 0).unwrap()
}

fn program(return_on_refund: bool) -> Program {
    Program::from_value(json!({
        "version": 1, "name": "Coupons", "timezone": "Asia/Shanghai", "currency": "CNY", "value_per_point": "0.01",
        "point_types": [{"id": "reward"}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "10"}]},
        "coupons": {"return_on_refund": return_on_refund, "checkout": {"max_points_share": "0.5"}, "templates": [
            {"id": "ten_off", "benefit": {"type": "fixed_amount", "amount": "10"}, "min_spend": "50",
             "validity": {"type": "days_from_issue", "days": 7}, "per_member_limit": 2,
             "points_price": {"point_type": "reward", "points": 500}},
            {"id": "pct", "benefit": {"type": "percentage", "percent": "15", "cap": "20"},
             "validity": {"type": "fixed", "from": "2024-03-01", "until": "2024-03-31"},
             "channels": ["app"], "categories": ["shoes"]},
            {"id": "ship", "benefit": {"type": "free_shipping", "value": "8"},
             "validity": {"type": "days_from_issue", "days": 1}}
        ]}
    }))
    .expect("programme")
}

/// An engine with member `ann`, created at the start of March.
fn engine(return_on_refund: bool) -> Engine<MemoryStore> {
    let e = Engine::new(program(return_on_refund), MemoryStore::new());
    let create = serde_json::from_value(json!({"type": "create_member", "member_id": "ann"})).expect("command");
    e.execute("member:ann", create, t(1, 0)).expect("ann");
    e
}

fn ann() -> MemberId {
    MemberId::from("ann")
}

fn order(
    e: &Engine<MemoryStore>,
    id: &str,
    amount: i64,
    channel: Option<&str>,
    items: Vec<OrderItem>,
    at: DateTime<Utc>,
) {
    let mut o = Order::paid(id, "ann", at, Decimal::new(amount, 2));
    o.channel = channel.map(str::to_string);
    o.items = items;
    e.execute(&format!("order:{id}"), Command::RecordOrder { order: o }, at).expect("order");
}

fn issue(e: &Engine<MemoryStore>, template: &str, at: DateTime<Utc>) -> String {
    match e.issue_coupon(None, &ann(), template, false, None, at).expect("issue") {
        Outcome::CouponIssued { code, .. } => code,
        other => panic!("unexpected {other:?}"),
    }
}

fn redeem(e: &Engine<MemoryStore>, code: &str, order_id: &str, at: DateTime<Utc>) -> crm_core::Result<Outcome> {
    let cmd = Command::RedeemCoupon { member_id: ann(), code: code.into(), order_id: order_id.into() };
    e.submit(None, cmd, at)
}

fn item(sku: &str, category: &str, qty: u32, price: i64) -> OrderItem {
    OrderItem { sku: sku.into(), category: Some(category.into()), qty, price: Decimal::new(price, 2) }
}

fn field(e: CrmError) -> String {
    match e {
        CrmError::Validation { field, reason } => format!("{field}: {reason}"),
        other => format!("{}: {other}", other.code()),
    }
}

#[test]
fn fixed_amount_checks_min_spend_and_is_idempotent_by_order() {
    let e = engine(false);
    order(&e, "small", 4000, None, vec![], t(1, 2));
    order(&e, "big", 12000, None, vec![], t(1, 3));
    let code = issue(&e, "ten_off", t(1, 4));
    let err = redeem(&e, &code, "small", t(1, 5)).unwrap_err();
    assert!(field(err).starts_with("order_id: needs a spend of 50"), "min spend");
    let first = redeem(&e, &code, "big", t(1, 5)).expect("redeem");
    assert!(
        matches!(&first, Outcome::CouponRedeemed { discount, cost, .. } if *discount == Decimal::TEN && *cost == Decimal::TEN)
    );
    // The same coupon on the same order under another key: the first result.
    let again = e
        .execute(
            "other-key",
            Command::RedeemCoupon { member_id: ann(), code: code.clone(), order_id: "big".into() },
            t(2, 1),
        )
        .expect("repeat");
    assert_eq!(again, first);
    // On another order: already redeemed.
    order(&e, "big2", 9000, None, vec![], t(2, 2));
    assert_eq!(redeem(&e, &code, "big2", t(2, 3)).unwrap_err().code(), "conflict");
    // Another coupon on an order that used one: refused.
    let second = issue(&e, "ten_off", t(2, 4));
    assert_eq!(redeem(&e, &second, "big", t(2, 5)).unwrap_err().code(), "conflict");
    let statuses: Vec<CouponStatus> = e.coupons(&ann(), t(2, 6)).unwrap().into_iter().map(|v| v.status).collect();
    assert_eq!(statuses, vec![CouponStatus::Redeemed, CouponStatus::Issued]);
}

#[test]
fn per_member_limit_expiry_at_local_midnight_and_revoke() {
    let e = engine(false);
    let a = issue(&e, "ship", t(1, 4)); // 1 March 12:00 Shanghai: valid through 2 March local
    issue(&e, "ten_off", t(1, 4));
    issue(&e, "ten_off", t(1, 4));
    let err = e.issue_coupon(None, &ann(), "ten_off", false, None, t(1, 5)).unwrap_err();
    assert!(field(err).contains("limit 2"));
    let by_code = |now| e.coupons(&ann(), now).unwrap().into_iter().find(|v| v.coupon.code == a).unwrap().status;
    assert_eq!(by_code(Utc.with_ymd_and_hms(2024, 3, 2, 15, 59, 59).unwrap()), CouponStatus::Issued);
    assert_eq!(by_code(Utc.with_ymd_and_hms(2024, 3, 2, 16, 0, 0).unwrap()), CouponStatus::Expired);
    order(&e, "o1", 10000, None, vec![], t(3, 1));
    let err = redeem(&e, &a, "o1", t(3, 2)).unwrap_err();
    assert!(field(err).contains("expired"));
    let r =
        e.submit(None, Command::RevokeCoupon { member_id: ann(), code: a.clone(), reason: "fraud".into() }, t(3, 3));
    assert!(matches!(r, Ok(Outcome::CouponRevoked { points: 0, .. })));
    assert_eq!(by_code(t(3, 4)), CouponStatus::Revoked);
    assert!(field(redeem(&e, &a, "o1", t(3, 5)).unwrap_err()).contains("revoked"));
}

#[test]
fn percentage_on_categories_and_channels_with_cap() {
    let e = engine(false);
    let code = issue(&e, "pct", t(1, 4));
    order(&e, "web", 30000, Some("web"), vec![item("s1", "shoes", 1, 30000)], t(2, 1));
    assert!(field(redeem(&e, &code, "web", t(2, 2)).unwrap_err()).contains("channel"));
    order(&e, "nocat", 30000, Some("app"), vec![item("b1", "bags", 1, 30000)], t(2, 3));
    assert!(field(redeem(&e, &code, "nocat", t(2, 4)).unwrap_err()).contains("no items in categories"));
    // 15% of the shoes (2 × 33.33 = 66.66) = 9.999 -> 10.00; the bag does not count.
    order(&e, "mixed", 16666, Some("app"), vec![item("s1", "shoes", 2, 3333), item("b1", "bags", 1, 10000)], t(2, 5));
    let q = e
        .quote(
            &ann(),
            &Cart {
                amount: Decimal::new(16666, 2),
                channel: Some("app".into()),
                items: vec![item("s1", "shoes", 2, 3333), item("b1", "bags", 1, 10000)],
            },
            t(2, 5),
        )
        .unwrap();
    assert_eq!(q.coupons[0].discount, Decimal::new(1000, 2));
    match redeem(&e, &code, "mixed", t(2, 6)).unwrap() {
        Outcome::CouponRedeemed { discount, .. } => assert_eq!(discount, Decimal::new(1000, 2)),
        other => panic!("{other:?}"),
    }
    // Capped: 15% of 200.00 = 30.00 -> 20.
    let t2 =
        CouponTemplate { categories: vec![], channels: vec![], ..program(false).coupons.unwrap().templates[1].clone() };
    let big = Cart { amount: Decimal::new(20000, 2), ..Cart::default() };
    assert_eq!(coupon::discount(&t2, &big).unwrap(), Decimal::new(20, 0));
}

#[test]
fn exchange_for_points_is_one_command_and_revoking_gives_the_points_back() {
    let e = engine(false);
    order(&e, "o1", 4000, None, vec![], t(1, 1)); // 400 points
    let err = e.issue_coupon(None, &ann(), "ten_off", true, None, t(1, 2)).unwrap_err();
    assert_eq!(err.code(), "insufficient_points");
    assert!(e.coupons(&ann(), t(1, 3)).unwrap().is_empty(), "nothing issued when the points are short");
    order(&e, "o2", 2000, None, vec![], t(1, 4)); // 600
    let out = e.issue_coupon(Some("swap-1"), &ann(), "ten_off", true, None, t(1, 5)).unwrap();
    let Outcome::CouponIssued { code, points: 500, redemption_id: Some(_), .. } = out.clone() else {
        panic!("{out:?}")
    };
    assert_eq!(e.balance(&ann(), "reward", t(1, 6)).unwrap().available, 100);
    // A retry under the same key does not pay twice.
    assert_eq!(e.issue_coupon(Some("swap-1"), &ann(), "ten_off", true, None, t(1, 7)).unwrap(), out);
    assert_eq!(e.balance(&ann(), "reward", t(1, 8)).unwrap().available, 100);
    let r = e.submit(None, Command::RevokeCoupon { member_id: ann(), code, reason: "changed mind".into() }, t(1, 9));
    assert!(matches!(r, Ok(Outcome::CouponRevoked { points: 500, .. })));
    assert_eq!(e.balance(&ann(), "reward", t(1, 10)).unwrap().available, 600);
}

#[test]
fn a_full_refund_returns_the_coupon_when_the_programme_says_so() {
    for returns in [true, false] {
        let e = engine(returns);
        order(&e, "o1", 10000, None, vec![], t(1, 1));
        let code = issue(&e, "ten_off", t(1, 2));
        redeem(&e, &code, "o1", t(1, 3)).unwrap();
        let refund = |id: &str, amount: Option<i64>, at| {
            let scope = match amount {
                Some(a) => json!({"type": "amount", "amount": Decimal::new(a, 2).to_string()}),
                None => json!({"type": "full"}),
            };
            let r = serde_json::from_value(json!({"id": id, "order_id": "o1", "at": at, "scope": scope})).unwrap();
            e.execute(&format!("refund:{id}"), Command::RecordRefund { refund: r }, at).unwrap();
        };
        refund("r1", Some(3000), t(2, 1));
        let status = |now| e.coupons(&ann(), now).unwrap()[0].status;
        assert_eq!(status(t(2, 2)), CouponStatus::Redeemed, "a partial refund keeps it used");
        refund("r2", None, t(2, 3));
        let expected = if returns { CouponStatus::Issued } else { CouponStatus::Redeemed };
        assert_eq!(status(t(2, 4)), expected);
        if returns {
            order(&e, "o2", 6000, None, vec![], t(3, 1));
            assert!(redeem(&e, &code, "o2", t(3, 2)).is_ok(), "usable again");
        }
    }
}

#[test]
fn two_orders_racing_for_one_coupon_redeem_it_once() {
    for round in 0..20 {
        let e = Arc::new(engine(false));
        order(&e, "a", 10000, None, vec![], t(1, 1));
        order(&e, "b", 10000, None, vec![], t(1, 1));
        let code = issue(&e, "ten_off", t(1, 2));
        let handles: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|o| {
                let (e, code) = (Arc::clone(&e), code.clone());
                std::thread::spawn(move || redeem(&e, &code, o, t(1, 3)).is_ok())
            })
            .collect();
        let wins = handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count();
        assert_eq!(wins, 1, "round {round}");
    }
}

#[test]
fn quote_ranks_coupons_and_caps_points() {
    let e = engine(false);
    order(&e, "o1", 30000, None, vec![], t(1, 1)); // 3000 points
    let ten = issue(&e, "ten_off", t(1, 2));
    issue(&e, "ship", t(1, 2));
    let cart = Cart { amount: Decimal::new(8000, 2), channel: Some("web".into()), items: vec![] };
    let q = e.quote(&ann(), &cart, t(1, 3)).unwrap();
    assert_eq!(q.best.as_deref(), Some(ten.as_str()));
    assert_eq!(q.coupons.len(), 2);
    assert_eq!(q.amount_after_coupon, Decimal::new(7000, 2));
    // Half of 70.00 at 0.01 per point = 3500 points, but only 3000 are there.
    let p = q.points.unwrap();
    assert_eq!((p.available, p.max_points, p.value), (3000, 3000, Decimal::new(3000, 2)));
    let small = Cart { amount: Decimal::new(4000, 2), ..cart };
    let q = e.quote(&ann(), &small, t(1, 3)).unwrap();
    assert_eq!(q.not_applicable.len(), 1, "ten_off needs 50");
    assert_eq!(q.points.unwrap().max_points, 2000);
}

#[test]
fn batch_issue_to_a_segment_is_idempotent() {
    let e = engine(false);
    for (m, amount) in [("ann", 10000), ("bob", 500), ("cy", 20000)] {
        let o = Order::paid(format!("o-{m}"), m, t(1, 1), Decimal::new(amount, 2));
        e.execute(&format!("order:o-{m}"), Command::RecordOrder { order: o }, t(1, 1)).unwrap();
    }
    let rule = crm_core::segment::parse("spend(365d) > 50").unwrap();
    let first = e.issue_coupons_to_segment("spring", &rule, "ten_off", t(1, 2)).unwrap();
    assert_eq!(first.issued.len(), 2);
    let again = e.issue_coupons_to_segment("spring", &rule, "ten_off", t(1, 3)).unwrap();
    assert_eq!(again.issued, first.issued, "a re-run finds the same coupons");
    assert_eq!(e.coupons(&ann(), t(1, 4)).unwrap().len(), 1);
}

#[test]
fn bad_templates_name_the_field() {
    let mut p = program(false);
    let cfg = p.coupons.as_mut().unwrap();
    cfg.templates[1].benefit = Benefit::Percentage { percent: Decimal::new(120, 0), cap: None };
    let err = p.validate().unwrap_err();
    assert!(err.to_string().contains("coupons.templates[1].benefit.percent"), "{err}");
    let mut p = program(false);
    p.coupons.as_mut().unwrap().templates[0].validity = Validity::DaysFromIssue { days: 0 };
    assert!(p.validate().unwrap_err().to_string().contains("coupons.templates[0].validity.days"));
}

#[test]
fn a_million_unique_codes() {
    let codes = coupon::generate_codes(1_000_000).unwrap();
    let unique: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(unique.len(), 1_000_000);
    assert!(codes.iter().all(|c| coupon::check_code(c).is_ok()));
}

fn money() -> impl Strategy<Value = Decimal> {
    (0i64..10_000_000).prop_map(|c| Decimal::new(c, 2))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// The discount is never negative, never more than the eligible amount
    /// (nor the cart), and never more than a fixed amount or a cap.
    #[test]
    fn discount_stays_within_the_amount(amount in money(), off in money(), percent in 1i64..=100, cap in proptest::option::of(money())) {
        let cart = Cart { amount, ..Cart::default() };
        let base = CouponTemplate {
            id: "t".into(), name: None, benefit: Benefit::FixedAmount { amount: off.max(Decimal::new(1, 2)) },
            validity: Validity::DaysFromIssue { days: 1 }, min_spend: None, channels: vec![], categories: vec![],
            per_member_limit: None, total_limit: None, budget: None, points_price: None,
        };
        let d = coupon::discount(&base, &cart).unwrap();
        prop_assert!(d >= Decimal::ZERO && d <= amount && d <= off.max(Decimal::new(1, 2)));
        let cap = cap.filter(|c| *c > Decimal::ZERO);
        let pct = CouponTemplate { benefit: Benefit::Percentage { percent: Decimal::from(percent), cap }, ..base };
        let d = coupon::discount(&pct, &cart).unwrap();
        prop_assert!(d >= Decimal::ZERO && d <= amount);
        prop_assert!(cap.is_none_or(|c| d <= c));
        prop_assert_eq!(d.scale() <= 2, true);
    }

    /// Typed back in any case, with dashes or spaces, a code is accepted;
    /// any one character changed is refused.
    #[test]
    fn codes_survive_typing_and_catch_one_typo(pos in 0usize..13, with in 0usize..31, dash in 1usize..12) {
        let code = coupon::generate_codes(1).unwrap().remove(0);
        let typed = format!("{}-{}", &code[..dash], &code[dash..]).to_lowercase();
        prop_assert_eq!(coupon::check_code(&typed).unwrap(), code.clone());
        let mut b = code.clone().into_bytes();
        let c = coupon::ALPHABET[with];
        prop_assume!(b[pos] != c);
        b[pos] = c;
        prop_assert!(coupon::check_code(std::str::from_utf8(&b).unwrap()).is_err());
    }
}
