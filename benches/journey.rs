//! Daily scheduled work over 1,000,000 members in the in-memory store.
//!
//! ```sh
//! cargo bench --bench journey            # builds the members first (about a minute)
//! JOURNEY_MEMBERS=100000 cargo bench --bench journey
//! ```
//!
//! The programme has a four-tier calendar-year ladder, lifecycle stages and
//! five outreach triggers (birthday, member day, expiring points, win-back
//! on dormant, unpaid orders). Each member has one to three paid orders
//! spread over 2024, a birthday and consent on one channel. Each measured
//! iteration is the daily `run_due` of the next day of 2025 (a new `now`),
//! so every iteration does that day's real work:
//!
//! - `journey/run_due_daily`: tier reviews, stage changes, outreach and
//!   point expiry for the members due that day;
//! - `journey/evaluate_all`: the tier and stage of every member at `now`
//!   (`tier_distribution` + `stage_distribution`, a full scan).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use crm_core::{Command, Engine, MemoryStore, Order, Program};
use rust_decimal::Decimal;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn members() -> usize {
    std::env::var("JOURNEY_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).single().expect("valid instant")
}

fn program() -> Program {
    Program::from_value(serde_json::json!({
        "version": 1, "name": "Bench", "timezone": "Asia/Shanghai", "currency": "CNY",
        "point_types": [{"id": "reward", "expiry": {"type": "days_after_earning", "days": 365}}],
        "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "1"}]},
        "tiers": {"window": {"type": "calendar_year"}, "levels": [
            {"id": "member"}, {"id": "silver", "entry": {"spend": "300"}},
            {"id": "gold", "entry": {"spend": "800"}, "retain": {"spend": "500"}},
            {"id": "platinum", "entry": {"spend": "1500"}, "retain": {"spend": "1000"}}]},
        "lifecycle": {},
        "outreach": {"quiet_hours": {"start": "21:00:00", "end": "09:00:00"},
                     "frequency_cap": {"max": 2, "days": 7}, "triggers": [
            {"id": "bday", "when": {"type": "birthday", "days_before": 3}, "channels": ["sms"]},
            {"id": "mday", "when": {"type": "member_day", "day": 18}, "channels": ["app"]},
            {"id": "exp", "when": {"type": "points_expiring", "point_type": "reward", "days": 30}, "channels": ["sms"]},
            {"id": "winback", "when": {"type": "stage_entered", "stage": "dormant"}, "channels": ["sms"]},
            {"id": "unpaid", "when": {"type": "unpaid_order", "minutes": 30}, "channels": ["sms"]}]}
    }))
    .expect("bench programme")
}

fn populated(n: usize) -> Engine<MemoryStore> {
    let engine = Engine::new(program(), MemoryStore::new());
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut orders = Vec::new();
        for &i in chunk {
            let create: Command = serde_json::from_value(serde_json::json!({
                "type": "create_member", "member_id": format!("m{i}"),
                "profile": {"birthday": format!("1990-{:02}-{:02}", 1 + i % 12, 1 + i % 28)},
                "consents": {if i % 2 == 0 { "sms" } else { "app" }: true}
            }))
            .expect("command");
            engine.execute(&format!("c{i}"), create, t0()).expect("member");
            for k in 0..(1 + i % 3) {
                let day = ((i * 7919 + k * 104_729) % 360) as i64;
                let amount = Decimal::new(2_000 + ((i * 31 + k * 17) % 60_000) as i64, 2);
                orders.push(Order::paid(
                    format!("o{i}-{k}"),
                    format!("m{i}"),
                    t0() + chrono::Duration::days(day),
                    amount,
                ));
            }
        }
        orders.sort_by_key(|o| o.placed_at);
        engine.record_orders(&orders, t0() + chrono::Duration::days(365)).expect("orders");
    }
    // Catch up to the first measured day so iterations measure one day each.
    engine.run_due(Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()).expect("catch up");
    eprintln!("journey: {n} members built in {:.1} s", started.elapsed().as_secs_f64());
    engine
}

fn journey(c: &mut Criterion) {
    let n = members();
    let engine = populated(n);
    let day = AtomicI64::new(0);
    let mut g = c.benchmark_group("journey");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("run_due_daily", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let d = day.fetch_add(1, Ordering::Relaxed) + 1;
                let now = Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap() + chrono::Duration::days(d);
                let start = Instant::now();
                engine.run_due(now).expect("run_due");
                total += start.elapsed();
            }
            total
        })
    });
    let now = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    g.bench_function("evaluate_all", |b| {
        b.iter(|| {
            let tiers = engine.tier_distribution(now).expect("tiers");
            let stages = engine.stage_distribution(now).expect("stages");
            (tiers, stages)
        })
    });
    g.finish();
}

criterion_group!(benches, journey);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
