//! Property tests of tiers, stages and the outreach scheduler.
//!
//! * Tier and stage at any instant are a function of the facts up to it: a
//!   history replayed in any batch split, with `run_due` at any cadence,
//!   gives the same tier and stage histories; and every as-of answer (tier,
//!   stage, lots, balance, segment membership) equals that of a fresh engine
//!   fed only the facts up to the instant.
//! * The scheduler never emits the same occurrence twice and never inside
//!   quiet hours, whatever the times `run_due` is called at.
//! * Every write leaves a member's wake-up as its programme derives it, and
//!   a changed programme's wake-ups are derived again once; a changed tier
//!   ladder places every member at once (up, or out of a removed tier).
//! * Facts recorded late (out of time order) keep the tier and stage
//!   histories timelines and still count: no member is left below the tier
//!   it qualifies for.
//!
//! 200 cases each by default (`PROPTEST_CASES` overrides).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rust_decimal::Decimal;
use serde_json::json;

use crm_core::tier::{TierChange, TierReason};
use crm_core::{Command, Engine, MemberId, MemoryStore, Order, Outcome, Program, Store};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    ProptestConfig {
        cases,
        // Stress runs (`PROPTEST_CASES` in the thousands) reject in proportion.
        max_global_rejects: cases.max(1024),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/journey.txt"))),
        ..ProptestConfig::default()
    }
}

fn program(window: serde_json::Value, downgrade: &str, grace: u32, refunds: &str) -> Program {
    Program::from_value(json!({
        "version": 1, "name": "J", "timezone": "Europe/Berlin", "currency": "EUR",
        "point_types": [{"id": "reward"}, {"id": "growth", "spendable": false}],
        "earn": {"rules": [
            {"id": "base", "point_type": "reward", "points_per_unit": "1"},
            {"id": "grow", "point_type": "growth", "points_per_unit": "1", "tier_multiplier": false}
        ]},
        "tiers": {"window": window, "downgrade": downgrade, "grace_days": grace, "refunds": refunds,
                  "point_type": "growth", "levels": [
            {"id": "t0"},
            {"id": "t1", "entry": {"spend": "100"}, "benefits": {"points_multiplier": "1.5"}},
            {"id": "t2", "entry": {"spend": "400", "orders": 3}, "retain": {"points": 250}},
            {"id": "t3", "entry": {"spend": "1000", "points": 900, "combine": "any"}, "retain": {"spend": "600"}}
        ]},
        "lifecycle": {"new_days": 10, "at_risk_days": 30, "dormant_days": 60, "churned_days": 120, "reactivated_days": 15}
    }))
    .expect("programme")
}

fn window() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(json!({"type": "calendar_year"})),
        Just(json!({"type": "membership_year"})),
        (20u32..200).prop_map(|d| json!({"type": "rolling_days", "days": d})),
        (1u32..7).prop_map(|m| json!({"type": "rolling_months", "months": m})),
        Just(json!({"type": "lifetime"})),
    ]
}

/// Windows with reviews (periods that a late fact can miss), the downgrade
/// rule and the grace days.
fn reviewed() -> impl Strategy<Value = (serde_json::Value, &'static str, u32)> {
    let window = prop_oneof![
        Just(json!({"type": "calendar_year"})),
        Just(json!({"type": "membership_year"})),
        (1u32..7).prop_map(|m| json!({"type": "rolling_months", "months": m})),
    ];
    (window, prop_oneof![Just("one_step"), Just("to_qualified")], prop_oneof![Just(0u32), Just(20u32)])
}

#[derive(Debug, Clone)]
enum Fact {
    Order { member: u8, hours: i64, cents: i64 },
    Refund { order: usize, hours: i64, percent: i64 },
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 9, 0, 0).unwrap()
}

fn facts() -> impl Strategy<Value = Vec<Fact>> {
    let fact = prop_oneof![
        4 => (0u8..3, 0i64..(24 * 800), 0i64..60_000).prop_map(|(member, hours, cents)| Fact::Order { member, hours, cents }),
        1 => (0usize..40, 1i64..(24 * 60), 10i64..101).prop_map(|(order, hours, percent)| Fact::Refund { order, hours, percent }),
    ];
    prop::collection::vec(fact, 1..30)
}

/// The facts as timed commands in time order (refunds after their order).
fn timeline(facts: &[Fact]) -> Vec<(DateTime<Utc>, String, Command)> {
    let mut orders = Vec::new();
    let mut out = Vec::new();
    for f in facts {
        if let Fact::Order { member, hours, cents } = f {
            let at = t0() + Duration::hours(*hours);
            let id = format!("o{}", orders.len());
            orders.push((id.clone(), at, *cents));
            let order = Order::paid(id.clone(), format!("m{member}"), at, Decimal::new(*cents, 2));
            out.push((at, format!("order:{id}"), Command::RecordOrder { order }));
        }
    }
    for (k, f) in facts.iter().enumerate() {
        if let Fact::Refund { order, hours, percent } = f {
            let Some((id, placed, cents)) = orders.get(*order % orders.len().max(1)).cloned() else { continue };
            let at = placed + Duration::hours(*hours);
            let amount = Decimal::new(cents * percent / 100, 2);
            if amount.is_zero() {
                continue;
            }
            let refund = serde_json::from_value(json!({
                "id": format!("r{k}"), "order_id": id, "at": at,
                "scope": {"type": "amount", "amount": amount.to_string()}
            }))
            .unwrap();
            out.push((at, format!("refund:r{k}"), Command::RecordRefund { refund }));
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

/// A fresh engine fed `items` in time, `run_due` before each, but for the
/// one `held_back`, recorded after a run at `end`: the engine, `id`'s tier
/// history before that, and what recording it gave.
fn recorded_holding_back(
    p: &Program,
    items: &[(DateTime<Utc>, String, Command)],
    held_back: Option<usize>,
    end: DateTime<Utc>,
    id: &MemberId,
) -> (Engine<MemoryStore>, Vec<TierChange>, Option<crm_core::Result<Outcome>>) {
    let engine = Engine::new(p.clone(), MemoryStore::new());
    for (i, (at, key, c)) in items.iter().enumerate() {
        if Some(i) != held_back {
            engine.run_due(*at).unwrap();
            let _ = engine.execute(key, c.clone(), *at);
        }
    }
    engine.run_due(end).unwrap();
    // None when the member's one fact is the one held back.
    let before = engine.member(id).map(|m| m.tier_history.to_vec()).unwrap_or_default();
    let late = held_back.map(|i| engine.execute(&items[i].1, items[i].2.clone(), end));
    (engine, before, late)
}

/// A member's tier (its level) from `end` on, with a run a month (for the
/// reviews to come), eight months long.
fn tiers_from<S: Store>(engine: &Engine<S>, id: &MemberId, end: DateTime<Utc>) -> Vec<u8> {
    (0..8)
        .map(|month| {
            let at = end + Duration::days(30 * month) + Duration::seconds(1);
            engine.run_due(at).unwrap();
            engine.tier(id, at).unwrap().tier[1..].parse::<u8>().unwrap()
        })
        .collect()
}

fn histories<S: Store>(e: &Engine<S>) -> Vec<String> {
    (0..3)
        .filter_map(|m| {
            let id = MemberId::from(format!("m{m}"));
            let st = e.member(&id).ok()?;
            Some(format!("{:?}\n{:?}", st.tier_history, st.stage_history))
        })
        .collect()
}

/// Execute `items` on both engines, each after `run_due` at every tick
/// (from `ticks[*next]` on) before it; `*next` ends at the first tick not run.
fn feed_both<'a, A: Store, B: Store>(
    engines: &(Engine<A>, Engine<B>),
    items: impl Iterator<Item = &'a (DateTime<Utc>, String, Command)>,
    ticks: &[DateTime<Utc>],
    next: &mut usize,
) {
    for (at, key, c) in items {
        while *next < ticks.len() && ticks[*next] < *at {
            engines.0.run_due(ticks[*next]).unwrap();
            engines.1.run_due(ticks[*next]).unwrap();
            *next += 1;
        }
        let _ = engines.0.execute(key, c.clone(), *at);
        let _ = engines.1.execute(key, c.clone(), *at);
    }
}

proptest! {
    #![proptest_config(config())]

    /// A SQLite store that keeps no decoded member and a snapshot only every
    /// `every` events (so every read folds events into an older snapshot,
    /// or into none) runs the same journey as memory: the same outcome of
    /// every `run_due` and the same tier and stage histories. Reads used to
    /// take the old snapshot's wake-up, and `run_due` skipped members that
    /// were due.
    #[test]
    #[cfg(feature = "sqlite")]
    fn a_sqlite_store_read_cold_runs_the_same_journey_as_memory(
        window in window(),
        facts in facts(),
        ticks in prop::collection::vec(0i64..(24 * 900), 1..8),
        every in 1u64..20,
    ) {
        use crm_core::store::sqlite::SqliteOptions;
        let p = program(window, "one_step", 10, "immediate");
        let memory = Engine::new(p.clone(), MemoryStore::new());
        let options = SqliteOptions::new().member_cache(0).snapshot_every(every);
        let sqlite = Engine::new(p, crm_core::SqliteStore::open_in_memory_with(options).unwrap());
        let mut ticks: Vec<_> = ticks.into_iter().map(|h| t0() + Duration::hours(h)).collect();
        ticks.sort();
        ticks.push(t0() + Duration::days(1000));
        let items = timeline(&facts);
        let mut next_tick = 0;
        for (at, key, c) in &items {
            while next_tick < ticks.len() && ticks[next_tick] < *at {
                let t = ticks[next_tick];
                prop_assert_eq!(sqlite.run_due(t).unwrap(), memory.run_due(t).unwrap(), "run_due at {}", t);
                next_tick += 1;
            }
            let _ = memory.execute(key, c.clone(), *at);
            let _ = sqlite.execute(key, c.clone(), *at);
        }
        for &t in &ticks[next_tick..] {
            prop_assert_eq!(sqlite.run_due(t).unwrap(), memory.run_due(t).unwrap(), "run_due at {}", t);
        }
        prop_assert_eq!(histories(&sqlite), histories(&memory));
    }

    /// Every write leaves a member's wake-up as its programme derives it:
    /// after any history and any `run_due` cadence, `reschedule` under the
    /// same programme finds nothing to write, in memory and on SQLite read
    /// cold (where the wake-up comes back from the `next_due` column). Under
    /// another programme (another window, no stages) it writes members at
    /// most once: a second call writes none.
    #[test]
    #[cfg(feature = "sqlite")]
    fn wake_ups_follow_the_programme_and_are_derived_again_once(
        window in window(),
        other in window(),
        stages in any::<bool>(),
        facts in facts(),
        ticks in prop::collection::vec(0i64..(24 * 900), 0..6),
        every in 1u64..20,
    ) {
        use crm_core::store::sqlite::SqliteOptions;
        let p = program(window, "one_step", 10, "immediate");
        let memory = std::sync::Arc::new(MemoryStore::new());
        let options = SqliteOptions::new().member_cache(0).snapshot_every(every);
        let sqlite = std::sync::Arc::new(crm_core::SqliteStore::open_in_memory_with(options).unwrap());
        let engines = (Engine::new(p.clone(), memory.clone()), Engine::new(p.clone(), sqlite.clone()));
        let mut ticks: Vec<_> = ticks.into_iter().map(|h| t0() + Duration::hours(h)).collect();
        ticks.sort();
        feed_both(&engines, timeline(&facts).iter(), &ticks, &mut 0);
        let end = t0() + Duration::days(1000);
        prop_assert_eq!(engines.0.reschedule(end).unwrap(), 0);
        prop_assert_eq!(engines.1.reschedule(end).unwrap(), 0);
        let mut q = program(other, "to_qualified", 0, "next_review");
        if !stages {
            q.lifecycle = None;
        }
        let written = Engine::new(q.clone(), memory).reschedule(end).unwrap();
        prop_assert_eq!(Engine::new(q.clone(), sqlite.clone()).reschedule(end).unwrap(), written);
        prop_assert_eq!(Engine::new(q, sqlite).reschedule(end).unwrap(), 0);
    }

    /// A changed tier ladder takes effect at the first `reschedule` (the
    /// first `run_due`) under it, at that instant: afterwards no member
    /// qualifies for the tier above its own (the view's gap to it is not
    /// met), none holds a tier the ladder no longer has, the changes written
    /// go up or out of a removed tier (downgrades wait for the review), and
    /// a second call writes nobody; memory and SQLite read cold agree.
    #[test]
    #[cfg(feature = "sqlite")]
    fn a_changed_ladder_places_members_at_once(
        window in window(),
        other in window(),
        percent in 10u32..300,
        rename in any::<bool>(),
        facts in facts(),
        ticks in prop::collection::vec(0i64..(24 * 900), 0..4),
        hours in 0i64..(24 * 900),
    ) {
        use crm_core::store::sqlite::SqliteOptions;
        let p = program(window, "one_step", 10, "immediate");
        let memory = std::sync::Arc::new(MemoryStore::new());
        let options = SqliteOptions::new().member_cache(0);
        let sqlite = std::sync::Arc::new(crm_core::SqliteStore::open_in_memory_with(options).unwrap());
        let engines = (Engine::new(p.clone(), memory.clone()), Engine::new(p.clone(), sqlite.clone()));
        // As at a deploy: the stores record the ladder their tiers follow.
        prop_assert_eq!(engines.0.reschedule(t0()).unwrap(), 0);
        prop_assert_eq!(engines.1.reschedule(t0()).unwrap(), 0);
        let mut ticks: Vec<_> = ticks.into_iter().map(|h| t0() + Duration::hours(h)).collect();
        ticks.sort();
        let items = timeline(&facts);
        let change = t0() + Duration::hours(hours);
        feed_both(&engines, items.iter().filter(|(at, ..)| *at < change), &ticks, &mut 0);
        // The new ladder: thresholds scaled by `percent`, t2 maybe renamed
        // (taken off the ladder, another put in its place).
        let mut q = program(other, "to_qualified", 0, "next_review");
        let ladder = q.tiers.as_mut().unwrap();
        for level in &mut ladder.levels {
            for th in std::iter::once(&mut level.entry).chain(level.retain.as_mut()) {
                th.spend = th.spend.map(|s| (s * Decimal::from(percent) / Decimal::from(100)).round_dp(2));
                th.points = th.points.map(|p| p * i64::from(percent) / 100);
            }
        }
        if rename {
            ladder.levels[2].id = "t2b".into();
        }
        let ids: Vec<String> = ladder.levels.iter().map(|l| l.id.clone()).collect();
        let before: Vec<Vec<crm_core::tier::TierChange>> =
            (0..3).map(|m| engines.0.tier_history(&MemberId::from(format!("m{m}"))).unwrap_or_default()).collect();
        let changed = (engines.0.with_program(q.clone()), engines.1.with_program(q.clone()));
        let written = changed.0.reschedule(change).unwrap();
        prop_assert_eq!(changed.1.reschedule(change).unwrap(), written);
        prop_assert_eq!(changed.0.reschedule(change).unwrap(), 0);
        prop_assert_eq!(changed.1.reschedule(change).unwrap(), 0);
        prop_assert_eq!(histories(&changed.1), histories(&changed.0));
        for (m, old) in before.iter().enumerate() {
            let id = MemberId::from(format!("m{m}"));
            let Ok(view) = changed.0.tier(&id, change) else { continue };
            prop_assert!(ids.contains(&view.tier), "m{} holds {} after the change", m, view.tier);
            prop_assert!(view.next.as_ref().is_none_or(|n| !n.missing.is_met()), "m{} qualifies for more: {:?}", m, view);
            let history = changed.0.tier_history(&id).unwrap();
            for c in &history[old.len()..] {
                prop_assert_eq!(c.at, change);
                let rank = |t: &Option<String>| t.as_ref().and_then(|t| ids.iter().position(|i| i == t));
                let (from, to) = (rank(&c.from), rank(&Some(c.to.clone())));
                prop_assert!(from.is_none() || to >= from, "m{} moved down at the change: {:?}", m, c);
            }
        }
        // The rest of the history goes on under the new ladder in both stores.
        for (at, key, c) in items.iter().filter(|(at, ..)| *at >= change) {
            let _ = changed.0.execute(key, c.clone(), *at);
            let _ = changed.1.execute(key, c.clone(), *at);
        }
        let end = t0() + Duration::days(1000);
        prop_assert_eq!(changed.1.run_due(end).unwrap(), changed.0.run_due(end).unwrap());
        prop_assert_eq!(histories(&changed.1), histories(&changed.0));
    }

    #[test]
    fn tier_and_stage_histories_do_not_depend_on_batches_or_run_due_cadence(
        window in window(),
        downgrade in prop_oneof![Just("one_step"), Just("to_qualified")],
        grace in prop_oneof![Just(0u32), 1u32..40],
        refunds in prop_oneof![Just("immediate"), Just("next_review")],
        facts in facts(),
        ticks in prop::collection::vec(0i64..(24 * 900), 0..6),
        split in 1usize..6,
    ) {
        let p = program(window, downgrade, grace, refunds);
        let items = timeline(&facts);
        let end = t0() + Duration::days(1000);
        // A: one command at a time, run_due at random instants in between.
        let a = Engine::new(p.clone(), MemoryStore::new());
        let mut ticks: Vec<_> = ticks.into_iter().map(|h| t0() + Duration::hours(h)).collect();
        ticks.sort();
        let mut next_tick = 0;
        for (at, key, c) in &items {
            while next_tick < ticks.len() && ticks[next_tick] < *at {
                a.run_due(ticks[next_tick]).unwrap();
                next_tick += 1;
            }
            let _ = a.execute(key, c.clone(), *at);
        }
        a.run_due(end).unwrap();
        // B: orders in batches of `split`, refunds one by one, one run_due at the end.
        let b = Engine::new(p, MemoryStore::new());
        let mut batch: Vec<Order> = Vec::new();
        let flush = |batch: &mut Vec<Order>, b: &Engine<MemoryStore>| {
            if let Some(last) = batch.last() {
                let now = last.placed_at;
                b.record_orders(batch, now).unwrap();
            }
            batch.clear();
        };
        for (at, key, c) in &items {
            match c {
                Command::RecordOrder { order } => {
                    batch.push(order.clone());
                    if batch.len() >= split {
                        flush(&mut batch, &b);
                    }
                }
                other => {
                    flush(&mut batch, &b);
                    let _ = b.execute(key, other.clone(), *at);
                }
            }
        }
        flush(&mut batch, &b);
        b.run_due(end).unwrap();
        prop_assert_eq!(histories(&a), histories(&b));
    }

    /// Under a rolling window the metric also rises with no fact, when a
    /// refund leaves the window after the order it refunded. Whenever
    /// `run_due` has run, whatever its cadence, no member is below the
    /// tier its metric qualifies for at that instant (every way down keeps
    /// at least that tier, and the ways up are facts and refunds leaving).
    #[test]
    fn after_a_run_no_member_is_below_the_tier_it_qualifies_for(
        window in prop_oneof![
            (20u32..120).prop_map(|d| json!({"type": "rolling_days", "days": d})),
            (1u32..5).prop_map(|m| json!({"type": "rolling_months", "months": m})),
        ],
        downgrade in prop_oneof![Just("one_step"), Just("to_qualified")],
        refunds in prop_oneof![Just("immediate"), Just("next_review")],
        facts in facts(),
        ticks in prop::collection::vec(0i64..(24 * 900), 1..8),
    ) {
        let p = program(window, downgrade, 10, refunds);
        let ladder = p.tiers.clone().unwrap();
        let e = Engine::new(p.clone(), MemoryStore::new());
        let mut ticks: Vec<_> = ticks.into_iter().map(|h| t0() + Duration::hours(h)).collect();
        ticks.push(t0() + Duration::days(1000));
        ticks.sort();
        let items = timeline(&facts);
        let mut items = items.iter().peekable();
        for tick in ticks {
            while let Some((at, key, c)) = items.next_if(|(at, ..)| *at <= tick) {
                let _ = e.execute(key, c.clone(), *at);
            }
            e.run_due(tick).unwrap();
            for m in 0..3 {
                let Ok(st) = e.member(&MemberId::from(format!("m{m}"))) else { continue };
                let joined = st.profile.joined_at.unwrap_or(st.created_at);
                let q = ladder.qualified(&ladder.metric_at(&st.activity, p.timezone, joined, tick));
                let held = st.tier.as_ref().and_then(|t| ladder.index(&t.tier)).unwrap();
                // What the wake-up reads before the activity: kept as events come.
                prop_assert_eq!(st.last_reduction(), st.activity.iter().rev().find(|a| a.lowers()).map(|a| a.at));
                prop_assert!(held >= q, "m{} holds t{} at {} but qualifies for t{}: {:?}", m, held, tick, q, st.tier_history);
            }
        }
    }

    #[test]
    fn tier_as_of_an_instant_equals_a_replay_cut_there(
        window in window(),
        facts in facts(),
        cut in 0i64..(24 * 900),
    ) {
        let p = program(window, "one_step", 0, "immediate");
        let items = timeline(&facts);
        let cut = t0() + Duration::hours(cut);
        let full = Engine::new(p.clone(), MemoryStore::new());
        let part = Engine::new(p, MemoryStore::new());
        for (at, key, c) in &items {
            let _ = full.execute(key, c.clone(), *at);
            if *at <= cut {
                let _ = part.execute(key, c.clone(), *at);
            }
        }
        full.run_due(t0() + Duration::days(1000)).unwrap();
        part.run_due(cut).unwrap();
        prop_assert_eq!(full.tier_distribution(cut).unwrap(), part.tier_distribution(cut).unwrap());
        prop_assert_eq!(full.stage_distribution(cut).unwrap(), part.stage_distribution(cut).unwrap());
        for m in 0..3 {
            let id = MemberId::from(format!("m{m}"));
            if let (Ok(x), Ok(y)) = (full.tier(&id, cut), part.tier(&id, cut)) {
                prop_assert_eq!(x.tier, y.tier);
            }
            // Lots, balance and stage as of the cut equal the replay's.
            if let (Ok(x), Ok(y)) = (full.lots_at(&id, cut), part.lots_at(&id, cut)) {
                prop_assert_eq!(x, y);
                prop_assert_eq!(full.balance(&id, "reward", cut).unwrap(), part.balance(&id, "reward", cut).unwrap());
                prop_assert_eq!(full.stage(&id, cut).unwrap().stage, part.stage(&id, cut).unwrap().stage);
            }
        }
        let rule = crm_core::segment::parse("orders(90d) >= 2 or spend(365d) >= 100.00").unwrap();
        prop_assert_eq!(full.segment(&rule, cut).unwrap(), part.segment(&rule, cut).unwrap());
    }

    #[test]
    fn scheduler_never_repeats_an_occurrence_nor_speaks_in_quiet_hours(
        members in prop::collection::vec((1u32..=12, 1u32..=29, 0usize..4, any::<bool>(), any::<bool>()), 1..5),
        orders in prop::collection::vec((0usize..5, 0i64..(24 * 400), any::<bool>()), 0..12),
        runs in prop::collection::vec(0i64..(24 * 450), 1..12),
        quiet in prop::collection::vec((0u32..24, 0u32..24).prop_filter("start != end", |(a, b)| a != b), 1..3),
        caps in prop::collection::vec((1u32..4, 1u32..10, any::<bool>()), 0..3),
        // Profile updates between runs: a new zone and birthday (which can
        // bring messages due before the last run to the next one).
        moves in prop::collection::vec((0usize..5, 0i64..(24 * 400), 0usize..4, 1u32..=12, 1u32..=29), 0..6),
    ) {
        let zones = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];
        let windows: Vec<(NaiveTime, NaiveTime)> = quiet
            .iter()
            .map(|&(s, e)| (NaiveTime::from_hms_opt(s, 0, 0).unwrap(), NaiveTime::from_hms_opt(e, 30, 0).unwrap()))
            .collect();
        let quiet_json: Vec<_> = windows.iter().map(|(s, e)| json!({"start": s.to_string(), "end": e.to_string()})).collect();
        let p = Program::from_value(json!({
            "version": 1, "name": "O", "timezone": "Europe/Berlin", "currency": "EUR",
            "point_types": [{"id": "reward", "expiry": {"type": "days_after_earning", "days": 40}}],
            "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
            "lifecycle": {},
            "outreach": {
                "quiet_hours": quiet_json,
                "frequency_cap": caps.iter().map(|&(max, days, marketing)| json!({"max": max, "days": days,
                    "applies_to": if marketing { "marketing" } else { "all" }})).collect::<Vec<_>>(),
                "triggers": [
                    {"id": "bday", "when": {"type": "birthday", "days_before": 2}, "channels": ["sms", "app"]},
                    {"id": "anniv", "when": {"type": "anniversary"}, "channels": ["sms"]},
                    {"id": "mday", "when": {"type": "member_day", "day": 29}, "channels": ["app"]},
                    {"id": "unpaid", "when": {"type": "unpaid_order", "minutes": 45}, "channels": ["sms"], "marketing": false},
                    {"id": "exp", "when": {"type": "points_expiring", "point_type": "reward", "days": 5}, "channels": ["app", "sms"]},
                    {"id": "care", "when": {"type": "order_care", "days": 2}, "channels": ["sms"]},
                    {"id": "winback", "when": {"type": "stage_entered", "stage": "at_risk"}, "channels": ["sms"]}
                ]
            }
        }));
        // Windows that leave no minute of the day open are refused.
        prop_assume!(p.is_ok());
        let p = p.unwrap();
        let e = Engine::new(p.clone(), MemoryStore::new());
        for (i, (month, day, zone, sms, app)) in members.iter().enumerate() {
            let c: Command = serde_json::from_value(json!({
                "type": "create_member", "member_id": format!("m{i}"),
                "profile": {"birthday": format!("2000-{month:02}-{day:02}"), "timezone": zones[*zone]},
                "consents": {"sms": sms, "app": app}
            }))
            .unwrap();
            e.execute(&format!("c{i}"), c, t0()).unwrap();
        }
        let mut items: Vec<(DateTime<Utc>, String, Command)> = Vec::new();
        for (k, (m, hours, paid)) in orders.iter().enumerate() {
            let at = t0() + Duration::hours(*hours);
            let mut o = Order::paid(format!("o{k}"), format!("m{}", m % members.len()), at, Decimal::new(5_000, 2));
            if !paid {
                o.status = crm_core::OrderStatus::Placed;
            }
            items.push((at, format!("order:o{k}"), Command::RecordOrder { order: o }));
        }
        for (k, (m, hours, zone, month, day)) in moves.iter().enumerate() {
            let c: Command = serde_json::from_value(json!({
                "type": "update_profile", "member_id": format!("m{}", m % members.len()),
                "patch": {"birthday": format!("2000-{month:02}-{day:02}"), "timezone": zones[*zone]}
            }))
            .unwrap();
            items.push((t0() + Duration::hours(*hours), format!("move:{k}"), c));
        }
        items.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut runs: Vec<_> = runs.into_iter().map(|h| t0() + Duration::hours(h)).collect();
        runs.sort();
        let mut seen = BTreeSet::new();
        // (member, due, marketing) of every message handed out.
        let mut sent: Vec<(MemberId, DateTime<Utc>, bool)> = Vec::new();
        let mut next = 0;
        let mut run = |now: DateTime<Utc>, key: &str| -> Result<(), TestCaseError> {
            let Outcome::Due { outreach, .. } = e.execute(key, Command::run_due(), now).unwrap() else { unreachable!() };
            for item in outreach {
                prop_assert!(item.due_at <= now);
                prop_assert!(seen.insert((item.member_id.clone(), item.trigger.clone(), item.occurrence.clone())),
                    "emitted twice: {:?}", item);
                sent.push((item.member_id.clone(), item.due_at, item.trigger != "unpaid"));
                let st = e.member(&item.member_id).unwrap();
                let zone: Tz = st.profile.timezone.unwrap_or(p.timezone);
                let local = item.due_at.with_timezone(&zone).time();
                for &(s, en) in &windows {
                    let inside = if s < en { s <= local && local < en } else { local >= s || local < en };
                    prop_assert!(!inside, "{:?} at local {} inside quiet hours {}-{}", item, local.hour(), s, en);
                }
            }
            Ok(())
        };
        for (i, now) in runs.iter().enumerate() {
            while next < items.len() && items[next].0 <= *now {
                let (at, key, c) = items[next].clone();
                let _ = e.execute(&key, c, at);
                next += 1;
            }
            run(*now, &format!("due-{i}"))?;
            // The same instant again under a new key: nothing new.
            run(*now, &format!("again-{i}"))?;
        }
        // Every cap holds in every window of its `days` days, counting what
        // it counts (marketing messages only, or all).
        for &(max, days, marketing_only) in &caps {
            for (m, at, _) in &sent {
                let counted = |(m2, t, mk): &&(MemberId, DateTime<Utc>, bool)| {
                    (*mk || !marketing_only) && m2 == m && *t > *at - Duration::days(days.into()) && t <= at
                };
                let n = sent.iter().filter(counted).count();
                prop_assert!(n <= max as usize, "{} messages to {} in {} days to {}: cap {}", n, m, days, at, max);
            }
        }
    }
}

/// A UTC programme earning a point per euro with these outreach triggers;
/// the first is always the (non-marketing) unpaid-order reminder after 30 minutes.
fn chasing_unpaid_orders(more: &[serde_json::Value]) -> Program {
    let mut triggers = vec![
        json!({"id": "unpaid", "when": {"type": "unpaid_order", "minutes": 30}, "channels": ["sms"], "marketing": false}),
    ];
    triggers.extend_from_slice(more);
    Program::from_value(json!({
        "version": 1, "name": "R", "timezone": "UTC", "currency": "EUR",
        "point_types": [{"id": "reward"}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
        "outreach": {"triggers": triggers}
    }))
    .unwrap()
}

#[test]
fn items_of_a_committed_run_can_be_read_again() {
    let e = Engine::new(chasing_unpaid_orders(&[]), MemoryStore::new());
    let mut o = Order::paid("o1", "ann", t0(), Decimal::new(1_000, 2));
    o.status = crm_core::OrderStatus::Placed;
    e.record_order(o, t0()).unwrap();
    let now = t0() + Duration::hours(1);
    let Outcome::Due { outreach, .. } = e.run_due(now).unwrap() else { unreachable!() };
    assert_eq!(outreach.len(), 1);
    assert_eq!(outreach[0].channel, "sms");
    // The host crashed before sending: the repeat hands out nothing, the log has them.
    let Outcome::Due { outreach: again, outreach_count, .. } = e.run_due(now).unwrap() else { unreachable!() };
    assert!(again.is_empty());
    assert_eq!(outreach_count, 1);
    assert_eq!(e.outreach_of_run(now).unwrap(), outreach);
    assert!(e.outreach_of_run(now + Duration::seconds(1)).unwrap().is_empty());
    // Engagements cannot be in the future or before the member joined.
    let future = Command::RecordEngagement {
        member_id: "ann".into(),
        kind: "add_to_cart".into(),
        at: Some(now + Duration::minutes(1)),
        sku: None,
        reference: None,
    };
    let err = e.execute("eng-1", future, now).unwrap_err();
    assert_eq!(err.field(), Some("at"));
}

/// A member's next wake-up in an engine.
type WakeAt = fn(&Engine<MemoryStore>) -> Option<DateTime<Utc>>;

/// An engine chasing unpaid orders with an order-care message two days
/// after completion, and ann's next wake-up.
fn caring_for_ann() -> (Engine<MemoryStore>, WakeAt) {
    let care =
        json!({"id": "care", "when": {"type": "order_care", "days": 2}, "channels": ["sms"], "marketing": false});
    let wake: WakeAt = |e| e.member(&MemberId::from("ann")).unwrap().next_due_at();
    (Engine::new(chasing_unpaid_orders(&[care]), MemoryStore::new()), wake)
}

/// The unpaid-order and order-care triggers schedule a wake-up only for
/// orders that can still be sent for: a paid order does not wake its buyer
/// `minutes` later, and neither does an order cancelled after completion.
#[test]
fn only_unpaid_and_completed_orders_schedule_their_messages() {
    let (e, wake) = caring_for_ann();
    // Paid when recorded: nothing to wake for.
    e.record_order(Order::paid("o1", "ann", t0(), Decimal::new(1_000, 2)), t0()).unwrap();
    assert_eq!(wake(&e), None);
    // Placed: woken 30 minutes later; paid before then: not any more.
    let placed_at = t0() + Duration::hours(1);
    let mut o = Order::paid("o2", "ann", placed_at, Decimal::new(1_000, 2));
    o.status = crm_core::OrderStatus::Placed;
    e.record_order(o, placed_at).unwrap();
    assert_eq!(wake(&e), Some(placed_at + Duration::minutes(30)));
    let pay = |status, at| Command::SetOrderStatus { order_id: "o2".into(), status, at: Some(at) };
    let paid_at = placed_at + Duration::minutes(10);
    e.execute("pay-o2", pay(crm_core::OrderStatus::Paid, paid_at), paid_at).unwrap();
    assert_eq!(wake(&e), None);
    // Completed: the care message two days later; cancelled before then: none.
    let done_at = paid_at + Duration::hours(1);
    e.execute("done-o2", pay(crm_core::OrderStatus::Completed, done_at), done_at).unwrap();
    assert_eq!(wake(&e), Some(done_at + Duration::days(2)));
    let cancelled_at = done_at + Duration::hours(1);
    e.execute("cancel-o2", pay(crm_core::OrderStatus::Cancelled, cancelled_at), cancelled_at).unwrap();
    assert_eq!(wake(&e), None);
    let Outcome::Due { outreach, .. } = e.run_due(done_at + Duration::days(3)).unwrap() else { unreachable!() };
    assert!(outreach.is_empty());
}

#[test]
fn an_order_refunded_in_full_schedules_no_care() {
    let (e, wake) = caring_for_ann();
    e.record_order(Order::paid("o1", "ann", t0(), Decimal::new(1_000, 2)), t0()).unwrap();
    let done_at = t0() + Duration::hours(1);
    let done =
        Command::SetOrderStatus { order_id: "o1".into(), status: crm_core::OrderStatus::Completed, at: Some(done_at) };
    e.execute("done-o1", done, done_at).unwrap();
    assert_eq!(wake(&e), Some(done_at + Duration::days(2)));
    // Half given back: the care message still comes.
    let refund = |id: &str, cents, at| Command::RecordRefund {
        refund: crm_core::Refund {
            id: id.into(),
            order_id: "o1".into(),
            at,
            scope: crm_core::RefundScope::Amount { amount: Decimal::new(cents, 2) },
        },
    };
    let half_at = done_at + Duration::hours(1);
    e.execute("r1", refund("r1", 500, half_at), half_at).unwrap();
    assert_eq!(wake(&e), Some(done_at + Duration::days(2)));
    // The rest too: nothing to wake for, and nothing sent.
    let rest_at = half_at + Duration::hours(1);
    e.execute("r2", refund("r2", 500, rest_at), rest_at).unwrap();
    assert_eq!(wake(&e), None);
    let Outcome::Due { outreach, .. } = e.run_due(done_at + Duration::days(3)).unwrap() else { unreachable!() };
    assert!(outreach.is_empty());
}

/// A programme whose scheduled work reads no programme-wide tally: every
/// `run_due` chunk is independent, and the threads commit their own.
fn untallied() -> Program {
    Program::from_value(json!({
        "version": 1, "name": "U", "timezone": "Asia/Shanghai", "currency": "CNY",
        "point_types": [{"id": "reward", "expiry": {"type": "days_after_earning", "days": 60}}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
        "tiers": {"window": {"type": "rolling_days", "days": 45}, "levels": [
            {"id": "member"}, {"id": "silver", "entry": {"spend": "300"}, "retain": {"spend": "200"}}]},
        "lifecycle": {"new_days": 7, "at_risk_days": 20, "dormant_days": 40, "churned_days": 80},
        "outreach": {"quiet_hours": {"start": "21:00:00", "end": "09:00:00"},
                     "frequency_cap": {"max": 2, "days": 7}, "triggers": [
            {"id": "bday", "when": {"type": "birthday", "days_before": 2}, "channels": ["sms"]},
            {"id": "mday", "when": {"type": "member_day", "day": 9}, "channels": ["app"]},
            {"id": "exp", "when": {"type": "points_expiring", "point_type": "reward", "days": 10}, "channels": ["sms"]},
            {"id": "winback", "when": {"type": "stage_entered", "stage": "dormant"}, "channels": ["sms"]}]}
    }))
    .expect("programme")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..config() })]

    /// `run_due` decided on several threads in independent chunks (the
    /// calling thread takes chunks too; more workers than the pool has
    /// threads) gives the one-thread run's outcomes, receipts' counts and
    /// stored members, whatever the members and the run instants.
    #[test]
    fn run_due_on_several_threads_matches_one_thread(
        members in prop::collection::vec((1u32..13, 1u32..29, 0usize..3, 0i64..60_000), 300..420),
        runs in prop::collection::vec(1i64..(24 * 120), 1..5),
    ) {
        let one = Engine::new(untallied(), MemoryStore::with_decision_workers(1));
        let many = Engine::new(untallied(), MemoryStore::with_decision_workers(5));
        let mut orders = Vec::new();
        for (i, (month, day, n, cents)) in members.iter().enumerate() {
            let cmd: Command = serde_json::from_value(json!({"type": "create_member", "member_id": format!("m{i}"),
                "profile": {"birthday": format!("1990-{month:02}-{day:02}")},
                "consents": {if i % 3 == 0 { "app" } else { "sms" }: true}})).unwrap();
            one.execute(&format!("member:{i}"), cmd.clone(), t0()).unwrap();
            many.execute(&format!("member:{i}"), cmd, t0()).unwrap();
            for k in 0..*n {
                let at = t0() + Duration::hours((i as i64 * 37 + k as i64 * 401) % (24 * 50));
                orders.push(Order::paid(format!("o{i}-{k}"), format!("m{i}"), at, Decimal::new(cents + 100 * k as i64, 2)));
            }
        }
        orders.sort_by_key(|o| o.placed_at);
        let until = t0() + Duration::days(50);
        prop_assert_eq!(one.record_orders(&orders, until).unwrap().len(), orders.len());
        many.record_orders(&orders, until).unwrap();
        let mut hours = runs.clone();
        hours.sort_unstable();
        for h in hours {
            let now = t0() + Duration::hours(h);
            let (a, b) = (one.run_due(now).unwrap(), many.run_due(now).unwrap());
            prop_assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
        }
        prop_assert_eq!(crate::props::members_of(one.store()), crate::props::members_of(many.store()));
    }
}

/// ann and bob (birthdays, app consent, one order each) on `store` under
/// `program`, from `t0()`.
fn ann_and_bob<S: Store>(program: Program, store: S) -> Engine<S> {
    let e = Engine::new(program, store);
    for (i, (id, birthday)) in [("ann", "1990-03-10"), ("bob", "1985-02-20")].into_iter().enumerate() {
        let cmd: Command = serde_json::from_value(json!({"type": "create_member", "member_id": id,
            "profile": {"birthday": birthday}, "consents": {"app": true, "sms": true}}))
        .unwrap();
        e.execute(&format!("member:{id}"), cmd, t0()).unwrap();
        let at = t0() + Duration::hours(i as i64 * 5);
        e.record_order(Order::paid(format!("o-{id}"), id, at, Decimal::new(12_000, 2)), at).unwrap();
    }
    e
}

/// What 70 daily runs from `t0()` emit and change, day by day, and the
/// members' stage changes after the first week (a store kept under another
/// programme before has no record of the stages it had no thresholds for).
fn seventy_days<S: Store>(e: &Engine<S>) -> (Vec<String>, Vec<String>) {
    let mut days = Vec::new();
    for d in 1..=70 {
        let Outcome::Due { outreach, stage_changes, tier_changes, .. } = e.run_due(t0() + Duration::days(d)).unwrap()
        else {
            unreachable!()
        };
        let items: Vec<String> = outreach.iter().map(|o| format!("{} {}", o.id, o.due_at)).collect();
        days.push(format!("day {d}: {items:?}, {stage_changes} stage and {tier_changes} tier changes"));
    }
    let stages = ["ann", "bob"]
        .into_iter()
        .map(|id| {
            let member = e.member(&MemberId::from(id)).unwrap();
            let week = t0() + Duration::days(8);
            format!("{:?}", member.stage_history.iter().filter(|c| c.at > week).collect::<Vec<_>>())
        })
        .collect();
    (days, stages)
}

/// Day by day, then the stage histories.
fn same_days((days, stages): (Vec<String>, Vec<String>), expected: &(Vec<String>, Vec<String>)) {
    for (day, want) in days.iter().zip(&expected.0) {
        assert_eq!(day, want);
    }
    assert_eq!(stages, expected.1);
}

/// A store written under one programme and run under another: the first
/// `run_due` derives every member's wake-up again under the new programme,
/// so its birthday greetings, member days and stage changes come when they
/// would have in a store kept under it all along. Before, the wake-ups the
/// old programme (no triggers, no stages) derived stayed in the store and
/// nobody was woken for them: no member day, no birthday, no stage.
#[test]
fn a_changed_programme_takes_effect_at_the_next_run() {
    let expected = seventy_days(&ann_and_bob(untallied(), MemoryStore::new()));
    assert!(expected.0.iter().filter(|d| d.contains("mday")).count() >= 2, "{:?}", expected.0);
    assert!(expected.0.iter().any(|d| d.contains("bday")), "{:?}", expected.0);
    assert!(expected.1.iter().all(|h| h.contains("Dormant")), "{:?}", expected.1);

    // The same points and tiers, without stages and messages: the lots
    // earned before the change are the same (an earned lot keeps its expiry).
    let quiet = || Program { lifecycle: None, outreach: None, ..untallied() };
    let store = std::sync::Arc::new(MemoryStore::new());
    let before = ann_and_bob(quiet(), store.clone());
    // Unchanged: nothing to derive again.
    assert_eq!(before.reschedule(t0()).unwrap(), 0);
    let after = Engine::new(untallied(), store.clone());
    same_days(seventy_days(&after), &expected);
    // Recorded: the next run under it reads one tally, and derives nothing.
    assert_eq!(after.reschedule(t0() + Duration::days(70)).unwrap(), 0);
    // Switched back, the old programme's wake-ups are derived again too.
    assert_eq!(Engine::new(quiet(), store.clone()).reschedule(t0() + Duration::days(70)).unwrap(), 2);

    // The same on a SQLite file, opened again under the new programme and
    // read cold (no member cache: the snapshots and the events after them).
    let dir = std::env::temp_dir().join(format!("crm-reschedule-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let open = || {
        let options = crm_core::store::sqlite::SqliteOptions::new().member_cache(0).snapshot_every(3);
        crm_core::SqliteStore::open_with(dir.join("crm.db"), options).unwrap()
    };
    drop(ann_and_bob(quiet(), open()));
    let reopened = Engine::new(untallied(), open());
    same_days(seventy_days(&reopened), &expected);
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(config())]

    /// Facts recorded late (a till that syncs later, an import out of
    /// order): orders in any order, each recorded at the latest instant seen
    /// so far with `run_due` before and after it, then the refunds. The tier
    /// and stage histories stay timelines (no change dated before one
    /// already listed), and after each run no member is below the tier its
    /// metric qualifies for: a late order counts (at its own instant, and
    /// with the orders recorded before it), and an upgrade a late refund
    /// takes back is earned again by the later orders. Fails with the late
    /// path taken out of `follow_up`, with the late fact weighed at its own
    /// instant only, and with a stage change dated at the fact.
    #[test]
    fn facts_recorded_late_keep_the_histories_in_time_order_and_count(
        window in window(),
        facts in facts(),
        seed in any::<u64>(),
    ) {
        let p = program(window, "one_step", 10, "immediate");
        let engine = Engine::new(p, MemoryStore::new());
        let items = timeline(&facts);
        let mut orders: Vec<_> = items.iter().filter(|i| matches!(i.2, Command::RecordOrder { .. })).collect();
        // A seeded shuffle (Fisher-Yates on a linear congruential sequence).
        let mut s = seed;
        for i in (1..orders.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            orders.swap(i, (s >> 33) as usize % (i + 1));
        }
        let refunds = items.iter().filter(|i| matches!(i.2, Command::RecordRefund { .. }));
        let mut now = t0();
        for (i, (at, key, c)) in orders.into_iter().chain(refunds).enumerate() {
            now = now.max(*at);
            engine.run_due(now).unwrap();
            let _ = engine.execute(key, c.clone(), now);
            // A run of its own (a run's key is its instant, and `now` repeats).
            let after = now + Duration::seconds(1);
            engine.execute(&format!("due:{i}"), Command::run_due(), after).unwrap();
            for m in 0..3 {
                let id = MemberId::from(format!("m{m}"));
                let Ok(st) = engine.member(&id) else { continue };
                prop_assert!(st.tier_history.windows(2).all(|w| w[0].at <= w[1].at), "tiers: {:?}", st.tier_history);
                prop_assert!(st.stage_history.windows(2).all(|w| w[0].at <= w[1].at), "stages: {:?}", st.stage_history);
                let view = engine.tier(&id, after).unwrap();
                prop_assert!(
                    view.next.as_ref().is_none_or(|n| !n.missing.is_met()),
                    "{} below what it qualifies for at {}: {:?}\n{:?}", id, after, view, st.tier_history
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// A member's last order recorded late, after the runs that reviewed the
    /// tier it would have counted for (a till synced after the year-end
    /// run): the member is from then on (a run a month, for the reviews to
    /// come) no lower than with the order recorded in time, whatever the
    /// window, the downgrade rule and the grace. Fails with the reviews not
    /// taken again (`reviews_again` out of `weigh`), and with the upgrade a
    /// late order gives reviewed a period from the decision it is listed at
    /// rather than on the schedule of a record in time
    /// (`TierLadder::entered_late`; rolling six months: an October
    /// Silver listed on 1 January lost on 1 July, kept on 29 April in time).
    #[test]
    fn a_late_last_order_keeps_what_the_reviews_it_missed_would_have_kept(
        (window, downgrade, grace) in reviewed(),
        facts in facts(),
        member in 0u8..3,
        lateness in 1i64..(24 * 500),
    ) {
        let p = program(window, downgrade, grace, "immediate");
        let id = MemberId::from(format!("m{member}"));
        let orders: Vec<_> =
            timeline(&facts).into_iter().filter(|i| matches!(i.2, Command::RecordOrder { .. })).collect();
        let mine = |c: &Command| matches!(c, Command::RecordOrder { order } if order.member_id == id);
        let Some(late) = orders.iter().rposition(|(_, _, c)| mine(c)) else { return Ok(()) };
        let end = orders.last().map_or(t0(), |o| o.0).max(orders[late].0 + Duration::hours(lateness));
        let tier_at_end = |held_back: Option<usize>| {
            let (engine, _, late) = recorded_holding_back(&p, &orders, held_back, end, &id);
            late.transpose().unwrap();
            (tiers_from(&engine, &id, end), engine.member(&id).unwrap().tier_history)
        };
        let (in_time, history) = tier_at_end(None);
        let (recorded_late, late_history) = tier_at_end(Some(late));
        prop_assert!(
            recorded_late.iter().zip(&in_time).all(|(late, in_time)| late >= in_time),
            "late {recorded_late:?} below in time {in_time:?}\nin time: {history:?}\nlate: {late_history:?}"
        );
    }

    /// The mirror of the late order: a member's last refund recorded late,
    /// after the runs that reviewed the tier it would have counted against
    /// (a refund of 30 December synced after the year-end run): when
    /// nothing but reviews was decided after the refund's instant, the
    /// member is from then on (a run a month, for the reviews to come) no
    /// higher than with the refund recorded in time, whatever
    /// the window, the downgrade rule, the grace and the refund rule. Fails
    /// with the reviews not taken again for a refund
    /// (`reviews_again_with_refund` out of `weigh`), with the facts after the
    /// refund not moving the member in the retake, and with a late fact
    /// weighed against the tier held now rather than the one held at its
    /// instant.
    #[test]
    fn a_late_refund_takes_what_the_reviews_it_missed_would_have_taken(
        (window, downgrade, grace) in reviewed(),
        refunds in prop_oneof![Just("immediate"), Just("next_review")],
        facts in facts(),
        lateness in 1i64..(24 * 500),
    ) {
        let p = program(window, downgrade, grace, refunds);
        let items = timeline(&facts);
        let is_refund = |c: &Command| matches!(c, Command::RecordRefund { .. });
        let Some(late) = items.iter().rposition(|(_, _, c)| is_refund(c)) else { return Ok(()) };
        let Command::RecordRefund { refund } = &items[late].2 else { unreachable!() };
        let owner = items.iter().find_map(|(_, _, c)| match c {
            Command::RecordOrder { order } if order.id == refund.order_id => Some(order.member_id.clone()),
            _ => None,
        });
        let id = owner.expect("a refund's order is in the timeline");
        let end = items.last().map_or(t0(), |i| i.0).max(items[late].0 + Duration::hours(lateness));
        let tier_at_end = |held_back: Option<usize>| {
            let (engine, before, _) = recorded_holding_back(&p, &items, held_back, end, &id);
            (tiers_from(&engine, &id, end), before, engine.member(&id).unwrap().tier_history)
        };
        let (in_time, _, history) = tier_at_end(None);
        let (recorded_late, before, late_history) = tier_at_end(Some(late));
        let reviews = [TierReason::Retained, TierReason::Grace, TierReason::Downgrade];
        prop_assume!(before.iter().filter(|c| c.at > refund.at).all(|c| reviews.contains(&c.reason)));
        prop_assert!(
            recorded_late.iter().zip(&in_time).all(|(late, in_time)| late <= in_time),
            "late {recorded_late:?} above in time {in_time:?}\nin time: {history:?}\nlate: {late_history:?}"
        );
    }
}

proptest! {
    #![proptest_config(config())]

    /// Orders recorded in any order reach every tier they reach recorded
    /// in time: an upgrade is a function of the orders in the window at some
    /// order's instant, and whichever of them is recorded last is weighed
    /// there (at its own instant, or, late, at each later order its window
    /// still counts). Fails with a late order weighed at its own instant and
    /// the member's last order only (a rolling window's peak between the two
    /// is missed).
    #[test]
    fn orders_in_any_recording_order_reach_the_tiers_they_reach_in_time(
        // Not membership years: they start when the member joined, which is
        // its first order recorded, so they move with the recording order.
        window in prop_oneof![
            Just(json!({"type": "calendar_year"})),
            (20u32..200).prop_map(|d| json!({"type": "rolling_days", "days": d})),
            (1u32..7).prop_map(|m| json!({"type": "rolling_months", "months": m})),
            Just(json!({"type": "lifetime"})),
        ],
        downgrade in prop_oneof![Just("one_step"), Just("to_qualified")],
        facts in facts(),
        seed in any::<u64>(),
    ) {
        let p = program(window, downgrade, 10, "immediate");
        let orders: Vec<_> =
            timeline(&facts).into_iter().filter(|i| matches!(i.2, Command::RecordOrder { .. })).collect();
        let mut shuffled: Vec<_> = orders.iter().collect();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let highest = |sequence: &[&(DateTime<Utc>, String, Command)]| {
            let engine = Engine::new(p.clone(), MemoryStore::new());
            let mut now = t0();
            for (at, key, c) in sequence {
                now = now.max(*at);
                engine.run_due(now).unwrap();
                let _ = engine.execute(key, c.clone(), now);
            }
            (0..3)
                .map(|m| {
                    let st = engine.member(&MemberId::from(format!("m{m}"))).ok();
                    let history = st.map(|st| st.tier_history.to_vec()).unwrap_or_default();
                    let top = history.iter().map(|c| c.to[1..].parse::<u8>().unwrap()).max();
                    (top, history)
                })
                .collect::<Vec<_>>()
        };
        let in_time = highest(&orders.iter().collect::<Vec<_>>());
        let late = highest(&shuffled);
        for (m, ((top, history), (late_top, late_history))) in in_time.iter().zip(&late).enumerate() {
            prop_assert!(
                late_top >= top,
                "m{m} reached {late_top:?} recorded out of order, {top:?} in time\nin time: {history:?}\nlate: {late_history:?}"
            );
        }
    }
}

/// The timing of a late-fact property: the member day of the month, the
/// hours between runs, how late the fact is recorded, the delay of its
/// message and the programme's staleness limit.
#[derive(Debug, Clone)]
struct LateTiming {
    day: u32,
    gap_hours: i64,
    lateness_minutes: i64,
    minutes: u32,
    max_delay_hours: u32,
}

fn late_timing() -> impl Strategy<Value = LateTiming> {
    (1u32..=28, 1i64..12, 0i64..(60 * 100), 10u32..300, 1u32..48).prop_map(
        |(day, gap_hours, lateness_minutes, minutes, max_delay_hours)| LateTiming {
            day,
            gap_hours,
            lateness_minutes,
            minutes,
            max_delay_hours,
        },
    )
}

/// The programme of the late-fact properties: a monthly member day on
/// `day` (its runs move the member's scheduler cursor) and `trigger`, both
/// service messages, at most `max_delay_hours` late.
fn late_facts_program(max_delay_hours: u32, day: u32, trigger: &str, when: serde_json::Value) -> Program {
    Program::from_value(late_facts_value(max_delay_hours, day, trigger, when)).unwrap()
}

/// [`late_facts_program`] as JSON, to change before it is read.
fn late_facts_value(max_delay_hours: u32, day: u32, trigger: &str, when: serde_json::Value) -> serde_json::Value {
    json!({
        "version": 1, "name": "O", "timezone": "UTC", "currency": "EUR",
        "point_types": [{"id": "reward"}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
        "outreach": {"max_delay_hours": max_delay_hours, "triggers": [
            {"id": "mday", "when": {"type": "member_day", "day": day}, "channels": ["app"], "marketing": false},
            {"id": trigger, "when": when, "channels": ["sms"], "marketing": false}
        ]}
    })
}

/// The (run, due) of a late fact's message as it must go out: once, at the
/// first of `runs` at or after both its recording and its due instant,
/// when no more than `max_delay_hours` overdue there; otherwise never.
fn sent_once_unless_stale(
    runs: &[DateTime<Utc>],
    recorded: DateTime<Utc>,
    due: DateTime<Utc>,
    max_delay_hours: u32,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let first = runs.iter().copied().find(|&r| r >= recorded.max(due));
    let fresh = first.filter(|&r| due >= r - Duration::hours(i64::from(max_delay_hours)));
    fresh.map(|r| (r, due)).into_iter().collect()
}

/// Run `engine` at each of `runs`, executing the late `fact` (under `key`,
/// at `recorded`) before the first run after `recorded`: the (run, due) of
/// every message of `trigger` handed out.
fn runs_with_a_late_fact(
    engine: &Engine<MemoryStore>,
    runs: &[DateTime<Utc>],
    (key, fact, recorded): (&str, Command, DateTime<Utc>),
    trigger: &str,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut pending = Some(fact);
    let mut sent = Vec::new();
    for &now in runs {
        if now > recorded {
            if let Some(fact) = pending.take() {
                engine.execute(key, fact, recorded).unwrap();
            }
        }
        let Outcome::Due { outreach, .. } = engine.run_due(now).unwrap() else { unreachable!() };
        sent.extend(outreach.into_iter().filter(|i| i.trigger == trigger).map(|i| (now, i.due_at)));
    }
    sent
}

proptest! {
    #![proptest_config(config())]

    /// An unpaid order reaching the engine late (a feed hours behind):
    /// its reminder goes out exactly once, at the first run at or after both
    /// its recording and its due instant, when it is not stale there (due
    /// no more than `max_delay_hours` before that run); otherwise never.
    /// Runs every few hours and a member day keep moving the member's
    /// scheduler cursor past due instants before the order is recorded.
    /// Fails with the orders recorded behind the cursor left out of the run
    /// (or of the wake-up).
    #[test]
    fn a_late_unpaid_order_is_reminded_once_unless_stale(
        placed_hours in 0i64..(24 * 20),
        timing in late_timing(),
    ) {
        let LateTiming { day, gap_hours, lateness_minutes, minutes, max_delay_hours } = timing;
        let when = json!({"type": "unpaid_order", "minutes": minutes});
        let engine = Engine::new(late_facts_program(max_delay_hours, day, "unpaid", when), MemoryStore::new());
        let start = t0();
        let paid = Order::paid("first", "m", start, Decimal::new(1000, 2));
        engine.execute("order:first", Command::RecordOrder { order: paid }, start).unwrap();
        let placed = start + Duration::hours(placed_hours) + Duration::seconds(7);
        let recorded = placed + Duration::minutes(lateness_minutes);
        let due = placed + Duration::minutes(i64::from(minutes));
        let runs: Vec<_> = (1..=(24 * 30 / gap_hours)).map(|k| start + Duration::hours(k * gap_hours)).collect();
        let mut late = Order::paid("late", "m", placed, Decimal::new(2500, 2));
        late.status = crm_core::OrderStatus::Placed;
        let fact = ("order:late", Command::RecordOrder { order: late }, recorded);
        let reminded = runs_with_a_late_fact(&engine, &runs, fact, "unpaid");
        let expected = sent_once_unless_stale(&runs, recorded, due, max_delay_hours);
        prop_assert_eq!(reminded, expected, "due {} recorded {}", due, recorded);
    }
}

proptest! {
    #![proptest_config(config())]

    /// Merges move orders, not their messages' history with them: an
    /// unpaid order's reminder (orders reaching the engine up to three hours
    /// late) still goes out exactly once whoever holds the order when it is
    /// due, before or after a merge. Fails with the messages sent to the
    /// merged member left behind (sent twice). (A survivor whose scheduler
    /// is already past a moved order's reminder is scenario 65: these runs
    /// rarely meet it.)
    #[test]
    fn an_order_reminder_goes_out_once_across_a_merge(
        orders in prop::collection::vec((0u8..3, 0i64..(60 * 24 * 3), 0i64..180), 1..8),
        merge_minutes in 0i64..(60 * 24 * 3),
        gap_minutes in 20i64..600,
    ) {
        let p = Program::from_value(json!({
            "version": 1, "name": "O", "timezone": "UTC", "currency": "EUR",
            "point_types": [{"id": "reward"}],
            "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
            "outreach": {"max_delay_hours": 96, "triggers": [
                {"id": "unpaid", "when": {"type": "unpaid_order", "minutes": 30}, "channels": ["sms"], "marketing": false}
            ]}
        }))
        .unwrap();
        let engine = Engine::new(p, MemoryStore::new());
        let start = t0();
        for m in 0..3 {
            let first = Order::paid(format!("p{m}"), format!("m{m}"), start, Decimal::new(100, 2));
            engine.execute(&format!("order:p{m}"), Command::RecordOrder { order: first }, start).unwrap();
        }
        // Orders recorded up to three hours after they were placed; m1
        // merges into m0.
        let mut facts: Vec<(DateTime<Utc>, Command)> = orders
            .iter()
            .enumerate()
            .map(|(k, &(m, minutes, late))| {
                let at = start + Duration::minutes(minutes) + Duration::seconds(3);
                let mut o = Order::paid(format!("o{k}"), format!("m{m}"), at, Decimal::new(500, 2));
                o.status = crm_core::OrderStatus::Placed;
                (at + Duration::minutes(late), Command::RecordOrder { order: o })
            })
            .collect();
        let merged_at = start + Duration::minutes(merge_minutes) + Duration::seconds(5);
        facts.push((merged_at, Command::Merge { survivor: MemberId::from("m0"), merged: MemberId::from("m1") }));
        facts.sort_by_key(|f| f.0);
        let end = start + Duration::days(4);
        let runs: Vec<_> = (1..).map(|k| start + Duration::minutes(k * gap_minutes)).take_while(|r| *r <= end).collect();
        let mut facts = facts.into_iter().enumerate().peekable();
        let mut sent: Vec<String> = Vec::new();
        for &now in &runs {
            while let Some((k, (at, c))) = facts.next_if(|f| f.1 .0 < now) {
                engine.execute(&format!("fact:{k}"), c, at).unwrap();
            }
            let Outcome::Due { outreach, .. } = engine.run_due(now).unwrap() else { unreachable!() };
            sent.extend(outreach.into_iter().filter(|i| i.occurrence.starts_with('o')).map(|i| i.occurrence));
        }
        let mut once = sent.clone();
        once.sort();
        once.dedup();
        prop_assert_eq!(once.len(), sent.len(), "a reminder went out twice: {:?}", sent);
        // Every order's reminder went out: the runs cover four days, the
        // orders are recorded in the first three and a few hours, and 96
        // hours is never stale.
        prop_assert_eq!(once.len(), orders.len(), "a reminder was lost: {:?}", sent);
    }
}

proptest! {
    #![proptest_config(config())]

    /// A low review, a closed ticket or an add-to-cart reaching the engine
    /// late (a review feed or a helpdesk hours behind): its follow-up,
    /// survey or cart reminder goes out exactly once, at the first run at
    /// or after both its recording and its due instant, when it is not
    /// stale there; otherwise never. As for a late unpaid order (above), a
    /// member day and runs every few hours keep moving the member's
    /// scheduler cursor past due instants before the fact is recorded.
    /// Fails with any of the three kinds of facts left out of the run.
    #[test]
    fn a_late_review_ticket_or_cart_is_followed_up_once_unless_stale(
        kind in 0usize..3,
        before_minutes in 0i64..(60 * 48),
        timing in late_timing(),
    ) {
        let LateTiming { day, gap_hours, lateness_minutes, minutes, max_delay_hours } = timing;
        // Facts from two days before the member day (10:00 on `day` of
        // January) on: the member day's run often passes their due
        // instants before they are recorded.
        let member_day = Utc.with_ymd_and_hms(2024, 1, day, 10, 0, 0).unwrap();
        let (trigger, when) = [
            ("recovery", json!({"type": "low_rating", "max_rating": 2, "delay_minutes": minutes})),
            ("survey", json!({"type": "ticket_closed", "delay_minutes": minutes})),
            ("cart", json!({"type": "cart_abandoned", "minutes": minutes})),
        ][kind].clone();
        let engine = Engine::new(late_facts_program(max_delay_hours, day, trigger, when), MemoryStore::new());
        let start = t0();
        let command = |c: serde_json::Value| serde_json::from_value::<Command>(c).unwrap();
        engine.execute("m", command(json!({"type": "create_member", "member_id": "m"})), start).unwrap();
        engine
            .execute("t", command(json!({"type": "open_ticket", "member_id": "m", "ticket_id": "t", "kind": "return"})), start)
            .unwrap();
        let at = (member_day - Duration::minutes(before_minutes)).max(start) + Duration::seconds(7);
        let recorded = at + Duration::minutes(lateness_minutes);
        let due = at + Duration::minutes(i64::from(minutes));
        let fact = command(match kind {
            0 => json!({"type": "record_review", "member_id": "m", "review_id": "r", "rating": 1, "at": at}),
            1 => json!({"type": "update_ticket", "member_id": "m", "ticket_id": "t", "status": "closed", "at": at}),
            _ => json!({"type": "record_engagement", "member_id": "m", "kind": "add_to_cart", "at": at}),
        });
        let runs: Vec<_> = (1..=(24 * 30 / gap_hours)).map(|k| start + Duration::hours(k * gap_hours)).collect();
        let followed = runs_with_a_late_fact(&engine, &runs, ("fact", fact, recorded), trigger);
        let expected = sent_once_unless_stale(&runs, recorded, due, max_delay_hours);
        prop_assert_eq!(followed, expected, "{} due {} recorded {}", trigger, due, recorded);
    }
}

proptest! {
    #![proptest_config(config())]

    /// Two members found to be one person and merged at any instant: after
    /// the merge the person is sent no occurrence it was sent before under
    /// either id (a birthday greeting of the year, a member day of the
    /// month), and every message sent after the merge keeps the frequency
    /// cap counting what both ids were sent. Members in different zones,
    /// so the same occurrence falls due at different instants for each.
    /// Fails with only the moved orders' messages carried by the merge.
    #[test]
    fn a_merged_person_is_not_sent_again_nor_beyond_the_cap(
        zones in (0usize..4, 0usize..4),
        birthdays in (1u32..=50, 1u32..=50),
        days_before in 0u32..3,
        day in 1u32..=28,
        (max, days) in (1u32..4, 1u32..8),
        merge_hours in 0i64..(24 * 50),
        gap_hours in 1i64..30,
    ) {
        const ZONES: [&str; 4] = ["UTC", "Asia/Shanghai", "America/Los_Angeles", "Pacific/Auckland"];
        let p = Program::from_value(json!({
            "version": 1, "name": "O", "timezone": "UTC", "currency": "EUR",
            "point_types": [{"id": "reward"}],
            "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
            "outreach": {"frequency_cap": {"max": max, "days": days}, "triggers": [
                {"id": "bday", "when": {"type": "birthday", "days_before": days_before}, "channels": ["sms"]},
                {"id": "mday", "when": {"type": "member_day", "day": day}, "channels": ["sms"]}
            ]}
        }))
        .unwrap();
        let engine = Engine::new(p, MemoryStore::new());
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        for (m, zone, birthday) in [("a", zones.0, birthdays.0), ("b", zones.1, birthdays.1)] {
            let birthday = chrono::NaiveDate::from_ymd_opt(1990, 1, 1).unwrap() + chrono::Days::new(u64::from(birthday));
            let create = serde_json::from_value::<Command>(json!({
                "type": "create_member", "member_id": m, "consents": {"sms": true},
                "profile": {"timezone": ZONES[zone], "birthday": birthday}
            }))
            .unwrap();
            engine.execute(m, create, start).unwrap();
        }
        let merged_at = start + Duration::hours(merge_hours) + Duration::seconds(5);
        let runs: Vec<_> = (1..=(24 * 60 / gap_hours)).map(|k| start + Duration::hours(k * gap_hours)).collect();
        let mut merge = Some(Command::Merge { survivor: MemberId::from("a"), merged: MemberId::from("b") });
        // (sent after the merge, trigger, occurrence, due)
        let mut sent: Vec<(bool, String, String, DateTime<Utc>)> = Vec::new();
        for &now in &runs {
            if now > merged_at {
                if let Some(c) = merge.take() {
                    engine.execute("merge", c, merged_at).unwrap();
                }
            }
            let Outcome::Due { outreach, .. } = engine.run_due(now).unwrap() else { unreachable!() };
            sent.extend(outreach.into_iter().map(|i| (merge.is_none(), i.trigger, i.occurrence, i.due_at)));
        }
        for (k, (after, trigger, occurrence, due)) in sent.iter().enumerate() {
            if !after {
                continue;
            }
            let again = sent[..k].iter().any(|(_, t, o, _)| t == trigger && o == occurrence);
            prop_assert!(!again, "{trigger} {occurrence} sent again after the merge: {sent:?}");
            let window = Duration::days(i64::from(days));
            let within = sent.iter().filter(|s| s.3 > *due - window && s.3 <= *due).count();
            prop_assert!(within <= max as usize, "{within} messages within {days} days of {due}: {sent:?}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Points earned by an order recorded late, expiring soon: the warning
    /// `days` before their expiry goes out exactly once, at the first run at
    /// or after both the order's recording and the warning's due instant,
    /// when not stale there; otherwise never. Fails with lots earned behind
    /// the scheduler left out of the run.
    #[test]
    fn a_late_orders_points_get_their_expiry_warning_once_unless_stale(
        expiry_days in 6u32..20,
        lead_days in 0u32..4,
        before_minutes in 0i64..(60 * 48),
        timing in late_timing(),
    ) {
        let LateTiming { day, gap_hours, lateness_minutes, max_delay_hours, .. } = timing;
        let warn_days = expiry_days - lead_days;
        let when = json!({"type": "points_expiring", "point_type": "reward", "days": warn_days});
        let mut program = late_facts_value(max_delay_hours, day, "exp", when);
        program["point_types"] =
            json!([{"id": "reward", "expiry": {"type": "days_after_earning", "days": expiry_days}}]);
        let engine = Engine::new(Program::from_value(program).unwrap(), MemoryStore::new());
        let start = t0();
        let create = serde_json::from_value::<Command>(json!({"type": "create_member", "member_id": "m"})).unwrap();
        engine.execute("m", create, start).unwrap();
        let member_day = Utc.with_ymd_and_hms(2024, 1, day, 10, 0, 0).unwrap();
        let at = (member_day - Duration::minutes(before_minutes)).max(start) + Duration::seconds(7);
        let recorded = at + Duration::minutes(lateness_minutes);
        let runs: Vec<_> = (1..=(24 * 45 / gap_hours)).map(|k| start + Duration::hours(k * gap_hours)).collect();
        let mut pending = Some(Order::paid("late", "m", at, Decimal::new(2500, 2)));
        let (mut warned, mut expires) = (Vec::new(), None);
        for &now in &runs {
            if now > recorded {
                if let Some(order) = pending.take() {
                    engine.execute("order:late", Command::RecordOrder { order }, recorded).unwrap();
                    // Read now: the lot is gone once expired.
                    expires = engine.member(&MemberId::from("m")).unwrap().lots.iter().find_map(|l| l.expires_at);
                }
            }
            let Outcome::Due { outreach, .. } = engine.run_due(now).unwrap() else { unreachable!() };
            warned.extend(outreach.into_iter().filter(|i| i.trigger == "exp").map(|i| (now, i.due_at)));
        }
        let expires = expires.expect("the order earned a lot that expires");
        let due = expires - Duration::days(i64::from(warn_days));
        let expected = sent_once_unless_stale(&runs, recorded, due, max_delay_hours);
        prop_assert_eq!(warned, expected, "expires {} due {} recorded {}", expires, due, recorded);
    }

    /// A refund recorded late on the order that held a tier: the retention
    /// warning `days` before the year ends, which the run reaching it did not
    /// send (the threshold was met then), goes out once at the first run
    /// after the refund is recorded, when the refund is dated at or before
    /// the warning's due instant and the warning is not stale; a refund
    /// dated after it, recorded after that run, leaves it unsent, as it
    /// would in time. A refund recorded before that run makes it go out
    /// there, as always. Fails with reductions behind the scheduler left out
    /// of the run, and with every such reduction counted whatever its date.
    #[test]
    fn a_late_refund_brings_the_retention_warning_once_unless_stale(
        days in 5i64..25,
        offset_minutes in -(60 * 72)..(60 * 72i64),
        timing in late_timing(),
    ) {
        let LateTiming { day, gap_hours, lateness_minutes, max_delay_hours, .. } = timing;
        let when = json!({"type": "tier_retention", "days": days});
        let mut program = late_facts_value(max_delay_hours, day, "keep", when);
        program["tiers"] = json!({"window": {"type": "calendar_year"}, "refunds": "next_review",
            "levels": [{"id": "member"}, {"id": "silver", "entry": {"spend": "1000"}}]});
        let engine = Engine::new(Program::from_value(program).unwrap(), MemoryStore::new());
        let start = Utc.with_ymd_and_hms(2024, 11, 1, 0, 0, 0).unwrap();
        engine.record_order(Order::paid("o1", "m", start, Decimal::from(1200)), start).unwrap();
        let due = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() - Duration::days(days);
        let dated = due + Duration::minutes(offset_minutes) + Duration::seconds(7);
        let recorded = dated + Duration::minutes(lateness_minutes);
        // Before the review at the year's end: the refund keeps Silver till then.
        let end = Utc.with_ymd_and_hms(2024, 12, 31, 0, 0, 0).unwrap();
        let runs: Vec<_> = (1..).map(|k| start + Duration::hours(k * gap_hours)).take_while(|&r| r < end).collect();
        let refund = crm_core::Refund {
            id: "r1".into(),
            order_id: "o1".into(),
            at: dated,
            scope: crm_core::RefundScope::Amount { amount: Decimal::from(300) },
        };
        let warned = runs_with_a_late_fact(&engine, &runs, ("refund:r1", Command::RecordRefund { refund }, recorded), "keep");
        // The run that reaches the warning checks the threshold as of itself.
        let reaching = runs.iter().copied().find(|&r| r >= due);
        let in_time = reaching.is_some_and(|r| recorded < r);
        let expected = if in_time || dated <= due {
            sent_once_unless_stale(&runs, recorded, due, max_delay_hours)
        } else {
            Vec::new()
        };
        prop_assert_eq!(warned, expected, "due {} dated {} recorded {} reaching {:?}", due, dated, recorded, reaching);
    }
}
