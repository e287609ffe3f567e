//! The journey bench population, shared by `benches/journey.rs` and
//! `examples/journey_days.rs` so both measure the same members.

use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use crm_core::{Command, Engine, MemoryStore, Order, Program};
use rust_decimal::Decimal;

/// Members to build: `JOURNEY_MEMBERS`, 1,000,000 by default.
pub fn members() -> usize {
    std::env::var("JOURNEY_MEMBERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).single().expect("valid instant")
}

pub fn program() -> Program {
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

pub fn populated(n: usize) -> Engine<MemoryStore> {
    // `JOURNEY_WORKERS`: threads `run_due` decides on (default: every core).
    let store = match std::env::var("JOURNEY_WORKERS").ok().and_then(|v| v.parse().ok()) {
        Some(workers) => MemoryStore::with_decision_workers(workers),
        None => MemoryStore::new(),
    };
    let engine = Engine::new(program(), store);
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
