//! What one more order costs a member with a long history: one member of
//! the journey bench programme (tiers, lifecycle stages, five outreach
//! triggers) records `LONG_HISTORY_ORDERS` (10,000) paid orders, 30 minutes
//! apart, one `record_order` command each, in the in-memory store.
//!
//! ```sh
//! cargo run --release --example long_history
//! LONG_HISTORY_ORDERS=20000 cargo run --release --example long_history
//! ```
//!
//! Why: a command loads the member's snapshot, and several of its parts
//! are read or copied whole (the activity tiers and stages count, the open
//! lots, the order map, the outreach triggers' scan of orders and lots), so
//! an order costs time in proportion to the member's history. Most members
//! have a handful of orders; a business account or a catch-all member can
//! have thousands, and this shows what each of their orders costs (README
//! "Long member histories"). Prints the microseconds per order of each
//! tenth of the history and one JSON line with the same figures.

use std::time::Instant;

use chrono::Duration;
use crm_core::{Command, Engine, MemoryStore, Order};
use rust_decimal::Decimal;

#[path = "../benches/support/journey_population.rs"]
#[allow(dead_code)]
mod population;

/// mimalloc as the global allocator, as in the benches (README "Allocator").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("LONG_HISTORY_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000).max(10);
    let engine = Engine::new(population::program(), MemoryStore::new());
    let t0 = population::t0();
    let create: Command = serde_json::from_value(serde_json::json!({
        "type": "create_member", "member_id": "account", "consents": {"sms": true}
    }))?;
    engine.execute("create:account", create, t0)?;
    let tenth = n / 10;
    let (mut bands, mut started, all) = (Vec::new(), Instant::now(), Instant::now());
    for i in 0..tenth * 10 {
        let at = t0 + Duration::minutes(i as i64 * 30);
        engine.record_order(Order::paid(format!("o{i}"), "account", at, Decimal::new(1_999, 2)), at)?;
        if (i + 1) % tenth == 0 {
            let us = started.elapsed().as_secs_f64() * 1e6 / tenth as f64;
            println!("orders {:>7} to {:>7}: {us:>8.1} µs per order", i + 1 - tenth, i + 1);
            bands.push((us * 10.0).round() / 10.0);
            started = Instant::now();
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "orders": tenth * 10,
            "us_per_order_by_tenth": bands,
            "total_ms": (all.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        })
    );
    Ok(())
}
