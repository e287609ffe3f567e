//! What-if replay (`crm_core::whatif`): the default column equals a plain replay,
//! the output is deterministic, and movers and redemptions are counted right.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use crm_core::whatif::{compare, compare_parts, Options, RecordedRedemption};
use crm_core::{Engine, MemberId, MemoryStore, Order, Outcome, Program, Refund, RefundScope};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::json;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn sample(name: &str) -> Program {
    Program::from_path(format!("{}/../examples/programs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// 40 members with 1–12 orders each over two years, grouped by member (as the CDNOW file is).
fn history() -> (Vec<Order>, Vec<Refund>) {
    let t0 = utc("2023-01-03T10:00:00Z");
    let mut orders = Vec::new();
    for m in 0..40u64 {
        for k in 0..(1 + (m * 7 + 3) % 12) {
            let minutes = ((m * 7919 + k * 104_729) % (730 * 24 * 60)) as i64;
            let amount = Decimal::new(((m * 31 + k * 977) % 40_000 + 99) as i64, 2);
            orders.push(Order::paid(format!("o{m}-{k}"), format!("m{m:02}"), t0 + Duration::minutes(minutes), amount));
        }
    }
    let refunds = orders
        .iter()
        .step_by(9)
        .enumerate()
        .map(|(i, o)| Refund {
            id: format!("r{i}"),
            order_id: o.id.clone(),
            at: o.placed_at + Duration::days(3),
            scope: if i % 2 == 0 { RefundScope::Full } else { RefundScope::Amount { amount: o.amount / Decimal::TWO } },
        })
        .collect();
    (orders, refunds)
}

fn labelled(programs: Vec<(&str, Program)>) -> Vec<(String, Program)> {
    programs.into_iter().map(|(l, p)| (l.to_string(), p)).collect()
}

#[test]
fn sample_default_programme_is_the_demo_programme() {
    assert_eq!(sample("default.toml"), Program::default_demo());
    let tiers = sample("double_points_tiers.toml");
    assert!(tiers.tiers.is_some() && tiers.lifecycle.is_some() && tiers.outreach.is_some());
}

#[test]
fn default_column_equals_a_plain_replay() {
    let (orders, refunds) = history();
    let until = orders.iter().map(|o| o.placed_at).max().unwrap();
    let programs = labelled(vec![("default", Program::default_demo()), ("tiers", sample("double_points_tiers.toml"))]);
    let c = compare(&orders, &refunds, &programs, &Options::default()).unwrap();
    let f = &c.programmes[0];

    // Orders only: issued is the sum of floor(amount).
    let only_orders = compare(&orders, &[], &programs[..1], &Options::default()).unwrap();
    let floor_sum: i64 = orders.iter().map(|o| o.amount.floor().to_i64().unwrap()).sum();
    assert_eq!(only_orders.programmes[0].points_issued, floor_sum);
    assert_eq!(f.points_issued, floor_sum);

    // A plain engine fed in file order (other batches, no month-end runs), refunds at their time.
    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    for chunk in orders.chunks(37) {
        let now = chunk.iter().map(|o| o.placed_at).max().unwrap();
        for r in engine.record_orders(chunk, now).unwrap() {
            r.unwrap();
        }
    }
    let mut clawed = 0;
    for r in &refunds {
        if let Outcome::Refund { clawbacks, .. } = engine.record_refund(r.clone(), r.at).unwrap() {
            clawed += clawbacks.iter().map(|c| c.taken + c.debt).sum::<i64>();
        }
    }
    let Outcome::Due { expired, .. } = engine.run_due(until).unwrap() else { panic!("run_due") };
    let liability = engine.liability(until).unwrap();
    assert_eq!(c.until, until);
    assert_eq!(f.orders, orders.len() as u64);
    assert_eq!((f.refunds, f.refunds_rejected), (refunds.len() as u64, 0));
    assert_eq!(f.members, liability.members);
    assert_eq!(f.points_clawed_back, clawed);
    assert_eq!(f.points_expired, expired);
    assert_eq!(f.outstanding.get("reward").copied(), Some(liability.point_types[0].outstanding));
    assert_eq!(f.points_outstanding, liability.point_types[0].outstanding);
    assert_eq!(f.liability_value, liability.value);
    assert_eq!(f.points_issued, f.points_clawed_back + f.points_expired + f.points_outstanding);
    assert_eq!(f.stage_distribution, engine.stage_distribution(until).unwrap());
    assert_eq!(f.tier_distribution, None);
    assert_eq!((f.points_redeemed, f.coupon_cost), (0, Decimal::ZERO));
    // Month ends from February 2023 to the last order, then `until`.
    assert!(f.run_due_runs >= 24, "{}", f.run_due_runs);

    // The other programme earns at least twice as much and has tiers.
    let g = &c.programmes[1];
    assert!(g.points_issued >= 2 * floor_sum - orders.len() as i64);
    assert_eq!(g.tier_distribution.as_ref().unwrap().values().sum::<u64>(), g.members);
    assert_eq!(c.movers.len(), 1);
    assert_eq!(c.movers[0].down, 0);
}

#[test]
fn same_inputs_give_byte_identical_json() {
    let (orders, refunds) = history();
    let programs = labelled(vec![
        ("default", sample("default.toml")),
        ("tiers", sample("double_points_tiers.toml")),
        ("demo", Program::default_demo()),
    ]);
    let redemptions =
        vec![RecordedRedemption { member_id: MemberId::from("m03"), points: 50, at: utc("2024-06-01T00:00:00Z") }];
    let options = Options { redemptions, ..Options::default() };
    let a = serde_json::to_string(&compare(&orders, &refunds, &programs, &options).unwrap()).unwrap();
    let b = serde_json::to_string(&compare(&orders, &refunds, &programs, &options).unwrap()).unwrap();
    assert_eq!(a, b);
    // Neither the threads nor the split into shards change a byte.
    for (threads, shards) in [(1, 1), (1, 3), (2, 7), (3, 64)] {
        let o = Options { threads, shards, ..options.clone() };
        let c = serde_json::to_string(&compare(&orders, &refunds, &programs, &o).unwrap()).unwrap();
        assert_eq!(a, c, "threads {threads}, shards {shards}");
    }
    // Identical programmes give identical columns apart from the label.
    let v: serde_json::Value = serde_json::from_str(&a).unwrap();
    let (mut x, mut y) = (v["programmes"][0].clone(), v["programmes"][2].clone());
    x["label"] = json!("");
    y["label"] = json!("");
    assert_eq!(x, y);
}

fn ladder(silver: &str, gold: &str) -> Program {
    Program::from_value(json!({
        "version": 1, "name": format!("Ladder {silver}/{gold}"), "timezone": "UTC", "currency": "USD",
        "value_per_point": "0.01",
        "point_types": [{"id": "reward"}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
        "tiers": {"window": {"type": "lifetime"}, "levels": [
            {"id": "member"}, {"id": "silver", "entry": {"spend": silver}}, {"id": "gold", "entry": {"spend": gold}}]}
    }))
    .unwrap()
}

#[test]
fn movers_between_ladders_on_a_tiny_history() {
    let t = utc("2024-02-10T12:00:00Z");
    let orders = vec![
        Order::paid("a1", "a", t, Decimal::from(50)),
        Order::paid("b1", "b", t, Decimal::from(150)),
        Order::paid("c1", "c", t, Decimal::from(250)),
        Order::paid("c2", "c", t + Duration::days(20), Decimal::from(150)),
    ];
    let programs = labelled(vec![
        ("b", ladder("100", "300")),       // a member, b silver, c gold
        ("none", Program::default_demo()), // everyone at the base
        ("c", ladder("40", "1000")),       // a silver, b silver, c silver
    ]);
    let c = compare(&orders, &[], &programs, &Options::default()).unwrap();
    assert_eq!(
        c.programmes[0].tier_distribution.clone().unwrap().into_iter().collect::<Vec<_>>(),
        vec![("gold".to_string(), 1), ("member".to_string(), 1), ("silver".to_string(), 1)]
    );
    let m = &c.movers[0];
    assert_eq!((m.from.as_str(), m.to.as_str(), m.up, m.down), ("b", "none", 0, 2));
    assert_eq!(m.down_examples, vec!["b", "c"]);
    let m = &c.movers[1];
    assert_eq!((m.from.as_str(), m.to.as_str(), m.up, m.down), ("b", "c", 1, 1));
    assert_eq!((m.up_examples.clone(), m.down_examples.clone()), (vec!["a".to_string()], vec!["c".to_string()]));
}

#[test]
fn redemptions_replay_where_the_balance_allows() {
    let t = utc("2024-02-10T12:00:00Z");
    let orders = vec![Order::paid("a1", "a", t, Decimal::from_str("100.50").unwrap())];
    let r = |points, days| RecordedRedemption { member_id: MemberId::from("a"), points, at: t + Duration::days(days) };
    let redemptions = vec![r(60, 1), r(60, 2), r(10, 3), r(5, -1)];
    let options = Options { redemptions, until: Some(t + Duration::days(10)), ..Options::default() };
    let programs = labelled(vec![("default", Program::default_demo())]);
    let c = compare(&orders, &[], &programs, &options).unwrap();
    let f = &c.programmes[0];
    assert_eq!(c.history.redemptions, 4);
    // Before the order: nothing (short 5); then 60, then 40 of 60 (short 20), then nothing (short 10).
    assert_eq!((f.redemptions, f.points_redeemed, f.redemptions_short, f.redemption_shortfall), (4, 100, 3, 35));
    assert_eq!(f.points_outstanding, 0);
    assert!(c.movers.is_empty());
    assert!(c.notes.iter().any(|n| n.contains("coupon")));
}

/// The shared fixture `examples/data/whatif_small.json`: Python
/// (`crm.compare_programmes`) and Node (`compareProgrammes`) check the same
/// expected figures, so the three languages give the same answer.
#[test]
fn the_shared_fixture_gives_the_expected_figures() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(format!("{root}/examples/data/whatif_small.json")).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let orders: Vec<Order> = fx["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            Order::paid(
                o["order_id"].as_str().unwrap(),
                o["member_id"].as_str().unwrap(),
                utc(o["placed_at"].as_str().unwrap()),
                Decimal::from_str(o["amount"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let refunds: Vec<Refund> = serde_json::from_value(fx["refunds"].clone()).unwrap();
    let redemptions: Vec<RecordedRedemption> = serde_json::from_value(fx["redemptions"].clone()).unwrap();
    let programs: Vec<(String, Program)> = fx["programs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let n = n.as_str().unwrap();
            (n.trim_end_matches(".toml").to_string(), sample(n))
        })
        .collect();
    let options = Options { until: Some(utc(fx["until"].as_str().unwrap())), redemptions, ..Options::default() };
    let c = compare(&orders, &refunds, &programs, &options).unwrap();
    let got = serde_json::to_value(&c).unwrap();
    let expected = fx["expected"].as_object().unwrap();
    assert_eq!(expected.len(), programs.len(), "fixture expectations: {}", got["programmes"]);
    for (i, (label, _)) in programs.iter().enumerate() {
        for (k, v) in expected[label].as_object().unwrap() {
            assert_eq!(&got["programmes"][i][k], v, "{label}.{k}");
        }
    }
}

/// A programme with most of what a replay can run into: a Berlin zone
/// (DST), pending points, a capped rule, sign-up and first-order bonuses,
/// inactivity expiry, tiers with grace, stages, and outreach with caps,
/// quiet hours and a trigger coupon without stock or budget.
fn busy_programme() -> Program {
    Program::from_value(json!({
        "version": 1, "name": "Busy", "timezone": "Europe/Berlin", "currency": "EUR", "value_per_point": "0.01",
        "point_types": [
            {"id": "reward", "pending_days": 3, "expiry": {"type": "inactivity", "days": 120}},
            {"id": "growth", "spendable": false}
        ],
        "earn": {
            "rules": [
                {"id": "base", "point_type": "reward", "points_per_unit": "1", "per_day_cap": 150},
                {"id": "grow", "point_type": "growth", "points_per_unit": "1"}
            ],
            "bonuses": [
                {"id": "welcome", "action": "sign_up", "point_type": "reward", "points": 10},
                {"id": "first", "action": "first_order", "point_type": "reward", "points": 20}
            ]
        },
        "tiers": {"window": {"type": "rolling_months", "months": 6}, "downgrade": "to_qualified", "grace_days": 20,
                  "levels": [{"id": "member"},
                             {"id": "silver", "entry": {"spend": "150"}, "retain": {"spend": "80"},
                              "benefits": {"points_multiplier": "1.5"}},
                             {"id": "gold", "entry": {"orders": 6}, "benefits": {"points_multiplier": "2"}}]},
        "lifecycle": {"at_risk_days": 40, "dormant_days": 90, "churned_days": 200},
        "coupons": {"templates": [
            {"id": "fiver", "benefit": {"type": "fixed_amount", "amount": "5"},
             "validity": {"type": "days_from_issue", "days": 30}}
        ]},
        "outreach": {
            "quiet_hours": {"start": "21:00:00", "end": "09:00:00"},
            "frequency_cap": {"max": 2, "days": 10},
            "triggers": [
                {"id": "mday", "when": {"type": "member_day", "day": 15}, "channels": ["app"], "marketing": false,
                 "coupon": "fiver"},
                {"id": "expiring", "when": {"type": "points_expiring", "point_type": "reward", "days": 20},
                 "channels": ["email"], "marketing": false},
                {"id": "keep", "when": {"type": "tier_retention", "days": 30}, "channels": ["email"], "marketing": false},
                {"id": "winback", "when": {"type": "stage_entered", "stage": "dormant"}, "channels": ["email"],
                 "marketing": false}
            ]
        }
    }))
    .expect("programme")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Member by member (the default) and through one engine in time order
    /// (`Options::through_engine`) give byte-identical comparisons, whatever
    /// the history: orders of several members (an id used twice, orders the
    /// engine refuses), refunds before and after their order or of no order,
    /// recorded redemptions; for any number of shards and threads.
    #[test]
    fn fast_path_matches_the_engine(
        orders in proptest::collection::vec((0u8..5, 0u16..60, 0u32..(540 * 24), 1i64..40_000, 0u8..20), 1..40),
        refunds in proptest::collection::vec((0usize..60, -48i64..2_000, 0u8..3), 0..8),
        redemptions in proptest::collection::vec((0u8..6, 1i64..400, 0u32..(560 * 24)), 0..6),
        shards in 1usize..9,
        cuts in proptest::collection::vec(0usize..40, 0..4),
    ) {
        let t0 = utc("2023-03-20T08:30:00Z");
        let orders: Vec<Order> = orders
            .iter()
            .map(|&(m, id, hours, cents, odd)| {
                let mut o = Order::paid(format!("o{id}"), format!("m{m}"), t0 + Duration::hours(i64::from(hours)), Decimal::new(cents, 2));
                match odd {
                    0 => o.currency = Some("USD".into()), // refused: not the programme's currency
                    1 => o.amount = Decimal::new(-cents, 2), // refused: negative
                    _ => {}
                }
                o
            })
            .collect();
        let refunds: Vec<Refund> = refunds
            .iter()
            .enumerate()
            .map(|(i, &(k, hours, scope))| {
                let (order_id, at) = match orders.get(k) {
                    Some(o) => (o.id.clone(), o.placed_at + Duration::hours(hours)),
                    None => (format!("missing{k}"), t0 + Duration::hours(hours.abs() * 5)),
                };
                let scope = match scope {
                    0 => RefundScope::Full,
                    _ => RefundScope::Amount { amount: Decimal::new(i64::from(scope) * 350, 2) },
                };
                Refund { id: format!("r{i}"), order_id, at, scope }
            })
            .collect();
        let redemptions: Vec<RecordedRedemption> = redemptions
            .iter()
            .map(|&(m, points, hours)| RecordedRedemption {
                member_id: MemberId::from(format!("m{m}")),
                points,
                at: t0 + Duration::hours(i64::from(hours)),
            })
            .collect();
        // Two groups replayed member by member (a programme that enrols no
        // one refuses every order: it splits the history on its own).
        let mut closed = sample("demo.toml");
        closed.auto_enroll = false;
        let programs = labelled(vec![
            ("busy", busy_programme()),
            ("tiers", sample("double_points_tiers.toml")),
            ("closed", closed),
            ("demo", sample("demo.toml")),
        ]);
        let engine = Options { redemptions: redemptions.clone(), through_engine: true, ..Options::default() };
        let fast = Options { redemptions, shards, threads: 1 + shards % 3, ..Options::default() };
        let a = serde_json::to_string_pretty(&compare(&orders, &refunds, &programs, &engine).unwrap()).unwrap();
        let b = serde_json::to_string_pretty(&compare(&orders, &refunds, &programs, &fast).unwrap()).unwrap();
        proptest::prop_assert_eq!(&a, &b);
        // The orders cut into parts (some empty) give the same bytes.
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(orders.len())).collect();
        cuts.sort_unstable();
        let mut parts: Vec<&[Order]> = Vec::new();
        let mut from = 0;
        for c in cuts.into_iter().chain([orders.len()]) {
            parts.push(&orders[from..c]);
            from = c;
        }
        let c = serde_json::to_string_pretty(&compare_parts(&parts, &refunds, &programs, &fast).unwrap()).unwrap();
        proptest::prop_assert_eq!(a, c);
    }
}
