//! Campaign measurement: a planted effect is found and an absent one is not
//! (both deterministic), and property tests of the hold-out assignment
//! (deterministic, independent of input order, converging to the share) and
//! of the statistics (intervals contain their estimate, the groups add up).
//!
//! Property tests run 256 cases by default; set `PROPTEST_CASES` to change that.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rust_decimal::Decimal;

use crm_core::campaign::{assign, assignment_hash, measure, Audience, Campaign, CampaignCost, Group, Outcome};
use crm_core::{Command, Engine, MemberId, MemoryStore, Order, Program};

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/campaign.txt"))),
        ..ProptestConfig::default()
    }
}

fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().expect("valid date")
}

/// A deterministic pseudo-random number in [0, 1) per (stream, member).
fn u(stream: u64, member: &str) -> f64 {
    (assignment_hash(stream, member) >> 11) as f64 / (1u64 << 53) as f64
}

fn campaign() -> Campaign {
    Campaign {
        id: "spring".into(),
        audience: Audience::Rule("orders(365d) >= 1".parse().expect("rule")),
        seed: 2024,
        holdout: Decimal::new(2, 1),
        starts_at: t(2024, 3, 1),
        ends_at: t(2024, 3, 15),
        attribution_days: 14,
        repurchase_days: Some(60),
        cost: CampaignCost { points_reason: Some("campaign:spring".into()), ..CampaignCost::default() },
    }
}

/// 2,000 members who bought in 2023 (the audience) and 200 who never did.
/// In attribution everyone converts with probability 0.2 (one order of
/// 40–80); with `planted`, treatment members convert with another 0.15 (an
/// extra order of 60). Half the converters buy again in May. Each treatment
/// member is credited 50 campaign points.
fn engine(planted: bool) -> (Engine<MemoryStore>, Campaign) {
    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    let c = campaign();
    let mut history = Vec::new();
    let mut window = Vec::new();
    let mut after = Vec::new();
    for i in 0..2000 {
        let id = format!("m{i:04}");
        let day = t(2023, 6, 1) + Duration::days(i64::from(i % 200));
        history.push(Order::paid(format!("h{i}"), id.as_str(), day, Decimal::from(30 + i % 50)));
        let treated = c.group(&MemberId::from(id.as_str())) == Group::Treatment;
        let at = t(2024, 3, 5) + Duration::hours(i64::from(i % 300));
        let mut converted = false;
        if u(1, &id) < 0.2 {
            window.push(Order::paid(format!("w{i}"), id.as_str(), at, Decimal::from(40 + (i % 41))));
            converted = true;
        }
        if planted && treated && u(2, &id) < 0.15 {
            window.push(Order::paid(format!("x{i}"), id.as_str(), at + Duration::hours(1), Decimal::from(60)));
            converted = true;
        }
        if converted && u(3, &id) < 0.5 {
            after.push(Order::paid(format!("a{i}"), id.as_str(), t(2024, 5, 1), Decimal::from(25)));
        }
    }
    for i in 0..200 {
        let id = format!("n{i:03}");
        let cmd = Command::CreateMember {
            member_id: MemberId::from(id.as_str()),
            profile: Default::default(),
            identities: vec![],
            tags: vec![],
            consents: Default::default(),
        };
        engine.execute(&format!("member:{id}"), cmd, t(2023, 1, 1)).expect("member");
    }
    for batch in [&history, &window, &after] {
        let mut batch = batch.clone();
        batch.sort_by_key(|o| o.placed_at);
        for chunk in batch.chunks(500) {
            let now = chunk.last().map(|o| o.placed_at).expect("non-empty");
            for r in engine.record_orders(chunk, now).expect("batch") {
                r.expect("order");
            }
        }
    }
    let members = engine.campaign_members(&c).expect("members");
    for m in &members.treatment {
        let cmd = Command::Adjust {
            member_id: m.clone(),
            point_type: "reward".into(),
            delta: 50,
            reason: "campaign:spring".into(),
            actor: "crm".into(),
        };
        engine.execute(&format!("grant:{m}"), cmd, t(2024, 3, 2)).expect("grant");
    }
    (engine, c)
}

#[test]
fn a_planted_effect_is_found() {
    let (engine, c) = engine(true);
    let r = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
    eprintln!("planted: {}", serde_json::to_string(&r).expect("json"));
    assert!(r.complete);
    assert_eq!(r.targeted, 2000, "members who never bought are not in the audience");
    assert_eq!(r.treatment.members + r.control.members, r.targeted);
    // The control share is near the configured 20 %.
    assert!((350..=450).contains(&r.control.members), "{}", r.control.members);
    let conv = &r.conversion_uplift;
    let (lo, hi) = (conv.low.expect("interval"), conv.high.expect("interval"));
    assert!(conv.significant && lo > Decimal::ZERO, "conversion uplift {conv:?}");
    // The planted uplift is 0.15 × (1 − 0.2) = 0.12 in expectation.
    assert!(lo < Decimal::new(12, 2) && Decimal::new(12, 2) < hi, "{conv:?}");
    let rev = &r.revenue_uplift;
    assert!(rev.significant && rev.low.expect("interval") > Decimal::ZERO, "revenue uplift {rev:?}");
    assert!(r.incremental_revenue > Decimal::ZERO);
    // Cost: 50 points per treatment member at 0.01.
    assert_eq!(r.cost.points, 50 * r.treatment.members as i64);
    assert_eq!(r.cost.total, Decimal::from(r.treatment.members) / Decimal::from(2));
    let roi = r.roi.expect("a campaign with a cost has a return");
    assert_eq!(roi, ((r.incremental_revenue - r.cost.total) / r.cost.total).round_dp(4));
    // About half the converters bought again in May.
    let rate = r.treatment.repurchase_rate;
    assert!(rate > Decimal::new(40, 2) && rate < Decimal::new(60, 2), "{rate}");
    // The report's split is the one the host sent to.
    let members = engine.campaign_members(&c).expect("members");
    assert_eq!(members.treatment.len() as u64, r.treatment.members);
    assert_eq!(members.control.len() as u64, r.control.members);
}

#[test]
fn no_effect_is_found_where_none_was_planted() {
    let (engine, c) = engine(false);
    let r = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
    for up in [&r.conversion_uplift, &r.revenue_uplift] {
        let (lo, hi) = (up.low.expect("interval"), up.high.expect("interval"));
        assert!(!up.significant && lo <= Decimal::ZERO && Decimal::ZERO <= hi, "{up:?}");
    }
    // The point estimate of incremental revenue is noise here, and so is the ROI built on it.
    assert!(r.roi.is_some());
    eprintln!("no effect: {}", serde_json::to_string(&r).expect("json"));
}

#[test]
fn a_report_before_the_end_is_provisional_and_rebuilt_as_of() {
    let (engine, c) = engine(true);
    let early = engine.campaign_report(&c, t(2024, 3, 10)).expect("report");
    assert!(!early.complete);
    let full = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
    assert_eq!(early.targeted, full.targeted);
    assert!(early.treatment.converted <= full.treatment.converted);
    assert!(early.treatment.revenue <= full.treatment.revenue);
    let err = engine.campaign_report(&c, t(2024, 2, 1)).unwrap_err();
    assert_eq!(err.field(), Some("at"));
    let mut bad = c.clone();
    bad.holdout = Decimal::ONE;
    assert_eq!(engine.campaign_report(&bad, t(2024, 6, 1)).unwrap_err().field(), Some("campaign.holdout"));
}

#[test]
fn refunds_and_cancellations_are_netted() {
    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    let mut c = campaign();
    c.holdout = Decimal::ZERO;
    c.cost = CampaignCost { points_per_member: 10, coupon_value: Decimal::new(500, 2), ..CampaignCost::default() };
    for (id, m, at, amount) in
        [("h1", "a", t(2023, 6, 1), 10), ("h2", "b", t(2023, 6, 1), 10), ("w1", "a", t(2024, 3, 2), 100)]
    {
        engine.record_order(Order::paid(id, m, at, Decimal::from(amount)), at).expect("order");
    }
    engine.record_order(Order::paid("w2", "b", t(2024, 3, 3), Decimal::from(80)), t(2024, 3, 3)).expect("order");
    let refund = |id: &str, order: &str, amount: i64| Command::RecordRefund {
        refund: crm_core::Refund {
            id: id.into(),
            order_id: order.into(),
            at: t(2024, 3, 4),
            scope: crm_core::RefundScope::Amount { amount: Decimal::from(amount) },
        },
    };
    engine.execute("r1", refund("r1", "w1", 30), t(2024, 3, 4)).expect("partial refund");
    engine.execute("r2", refund("r2", "w2", 80), t(2024, 3, 4)).expect("full refund");
    let r = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
    assert_eq!((r.targeted, r.treatment.members, r.control.members), (2, 2, 0));
    assert_eq!(r.treatment.converted, 1, "a wholly refunded order is no conversion");
    assert_eq!(r.treatment.revenue, Decimal::from(70));
    assert_eq!(r.treatment.revenue_per_member, Decimal::from(35));
    // No control group: no uplift, no interval.
    assert_eq!(r.conversion_uplift.low, None);
    assert_eq!(r.cost.points, 20);
    assert_eq!(r.cost.total, Decimal::new(520, 2));
}

/// The audience is who matched at the start: a tag added after the start
/// does not bring a member in, one removed after it does not take a member
/// out, for `campaign_members` and `campaign_report` alike.
#[test]
fn the_audience_is_taken_as_of_the_start_tags_included() {
    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    let mut c = campaign();
    c.audience = Audience::Rule(r#"tag("vip") and orders(365d) >= 1"#.parse().expect("rule"));
    c.holdout = Decimal::ZERO;
    for m in ["early", "late", "gone", "plain"] {
        engine.record_order(Order::paid(format!("h-{m}"), m, t(2023, 6, 1), Decimal::from(10)), t(2023, 6, 1)).unwrap();
    }
    let tag = |key: &str, m: &str, add: bool, at: DateTime<Utc>| {
        let (member_id, tag) = (MemberId(m.into()), "vip".to_string());
        let command = if add { Command::AddTag { member_id, tag } } else { Command::RemoveTag { member_id, tag } };
        engine.execute(key, command, at).expect("tag");
    };
    tag("t1", "early", true, t(2024, 2, 1));
    tag("t2", "gone", true, t(2024, 2, 1));
    tag("t3", "late", true, t(2024, 3, 5)); // after the start
    tag("t4", "gone", false, t(2024, 3, 5)); // after the start
    let ids = |v: &[MemberId]| v.iter().map(|m| m.0.clone()).collect::<Vec<_>>();
    let members = engine.campaign_members(&c).expect("members");
    assert_eq!(ids(&members.treatment), ["early", "gone"]);
    assert!(members.control.is_empty());
    let r = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
    assert_eq!((r.targeted, r.treatment.members), (2, 2));
}

// ----- properties ----------------------------------------------------------------

fn ids() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z0-9]{1,12}", 0..200)
}

fn share() -> impl Strategy<Value = Decimal> {
    (0i64..1000).prop_map(|m| Decimal::new(m, 3))
}

fn campaign_with(seed: u64, holdout: Decimal) -> Campaign {
    Campaign { seed, holdout, ..campaign() }
}

fn outcomes() -> impl Strategy<Value = Vec<Outcome>> {
    prop::collection::vec(
        (any::<bool>(), 0i64..100_000, any::<bool>()).prop_map(|(converted, cents, repurchased)| Outcome {
            converted,
            revenue: if converted { Decimal::new(cents, 2) } else { Decimal::ZERO },
            repurchased: converted && repurchased,
        }),
        0..60,
    )
}

proptest! {
    #![proptest_config(config(256))]

    /// The split is a function of (seed, id): the same on every call and
    /// whatever the order of the input; the groups partition the members.
    #[test]
    fn assignment_is_deterministic_and_order_free(ids in ids(), seed in any::<u64>(), holdout in share(), rot in 0usize..200) {
        let c = campaign_with(seed, holdout);
        let members: Vec<MemberId> = ids.iter().map(|s| MemberId::from(s.as_str())).collect();
        let mut shuffled = members.clone();
        shuffled.reverse();
        if !shuffled.is_empty() {
            let k = rot % shuffled.len();
            shuffled.rotate_left(k);
        }
        let a = c.split(&members);
        prop_assert_eq!(&a, &c.split(&shuffled));
        prop_assert_eq!(&a, &c.split(&members));
        let unique: BTreeSet<&MemberId> = members.iter().collect();
        prop_assert_eq!(a.treatment.len() + a.control.len(), unique.len());
        for m in &a.control {
            prop_assert_eq!(assign(seed, m.as_str(), holdout), Group::Control);
            prop_assert!(a.treatment.binary_search(m).is_err());
        }
        for m in &a.treatment {
            prop_assert_eq!(assign(seed, m.as_str(), holdout), Group::Treatment);
        }
    }

    /// Intervals contain their estimate; groups add up; rates stay in [0, 1].
    #[test]
    fn intervals_contain_the_estimate(t in outcomes(), c in outcomes()) {
        let m = measure(&t, &c, 2);
        prop_assert_eq!(m.treatment.members + m.control.members, (t.len() + c.len()) as u64);
        for up in [&m.conversion_uplift, &m.revenue_uplift] {
            if let (Some(lo), Some(hi)) = (up.low, up.high) {
                prop_assert!(lo <= up.estimate && up.estimate <= hi, "{:?}", up);
                prop_assert_eq!(up.significant, lo > Decimal::ZERO || hi < Decimal::ZERO);
            }
        }
        if let (Some(lo), Some(hi)) = (m.conversion_uplift.low, m.conversion_uplift.high) {
            prop_assert!(lo >= Decimal::NEGATIVE_ONE && hi <= Decimal::ONE);
        }
        for g in [&m.treatment, &m.control] {
            prop_assert!(g.conversion_rate >= Decimal::ZERO && g.conversion_rate <= Decimal::ONE);
            prop_assert!(g.repurchased <= g.converted && g.converted <= g.members);
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// With 20,000 members the held-out share is within four standard
    /// errors of the configured share, for any seed.
    #[test]
    fn the_held_out_share_converges(seed in any::<u64>(), holdout in share()) {
        let n = 20_000u32;
        let held = (0..n).filter(|i| assign(seed, &format!("member-{i}"), holdout) == Group::Control).count();
        let p = holdout.to_string().parse::<f64>().unwrap_or(0.0);
        let observed = f64::from(held as u32) / f64::from(n);
        let tolerance = 4.0 * (p * (1.0 - p) / f64::from(n)).sqrt() + 1.0 / f64::from(n);
        prop_assert!((observed - p).abs() <= tolerance, "share {} observed {}", p, observed);
    }

    /// Over an engine: the report's groups add up to the audience, which is
    /// the segment at the start, split as `assign` says.
    #[test]
    fn the_report_splits_the_segment_at_the_start(
        buyers in prop::collection::btree_set(0u32..400, 0..60), seed in any::<u64>(), holdout in share()
    ) {
        let engine = Engine::new(Program::default_demo(), MemoryStore::new());
        for b in &buyers {
            let at = t(2023, 9, 1) + Duration::days(i64::from(b % 100));
            engine.record_order(Order::paid(format!("o{b}"), format!("m{b}"), at, Decimal::from(10)), at).expect("order");
        }
        let c = campaign_with(seed, holdout);
        let r = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
        let Audience::Rule(rule) = &c.audience else { unreachable!() };
        let segment = engine.segment(rule, c.starts_at).expect("segment");
        prop_assert_eq!(r.targeted, segment.len() as u64);
        prop_assert_eq!(r.treatment.members + r.control.members, r.targeted);
        let held = segment.iter().filter(|m| c.group(m) == Group::Control).count() as u64;
        prop_assert_eq!(r.control.members, held);
    }
}

#[test]
fn a_saved_segment_audience_is_taken_as_recorded_at_the_start() {
    use crm_core::segment::SavedSegment;
    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        let at = t(2023, 6, 1 + i as u32);
        engine
            .record_order(Order::paid(format!("o{m}"), *m, at, Decimal::from(10 + 100 * i as i64)), at)
            .expect("order");
    }
    // "big" spenders: b and c at the first refresh (before the start) …
    let mut big = SavedSegment::new("big", "spend(365d) >= 100".parse().expect("rule"));
    engine.refresh_segment(&mut big, t(2024, 2, 1)).expect("refresh");
    // … then, after the start, a enters and b and c leave: the campaign keeps b and c.
    engine.record_order(Order::paid("a2", "a", t(2024, 3, 3), Decimal::from(500)), t(2024, 3, 3)).expect("order");
    big.rule = "spend(30d) >= 100".parse().expect("rule");
    engine.refresh_segment(&mut big, t(2024, 3, 5)).expect("refresh");
    let mut c = campaign();
    c.audience = Audience::Segment("big".into());
    c.holdout = Decimal::ZERO;
    let members = engine.campaign_members(&c).expect("members");
    assert_eq!(members.treatment, vec![MemberId::from("b"), MemberId::from("c")]);
    assert!(members.control.is_empty());
    let r = engine.campaign_report(&c, t(2024, 6, 1)).expect("report");
    assert_eq!(r.targeted, 2);
}
