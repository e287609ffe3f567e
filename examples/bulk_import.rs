//! The pure-Rust side of the bindings overhead comparison: bulk import of
//! synthetic orders into the in-memory engine with `Engine::record_orders`,
//! in atomic batches, exactly as `benches/python_bulk_import.py` and
//! `benches/node_bulk_import.mjs` do through their bindings.
//!
//! ```sh
//! cargo run --release --example bulk_import -- [--orders 200000] [--members 20000] [--batch 100]
//! ```
//!
//! Prints one JSON line: `{"bench":"rust_bulk_import","orders":…,"seconds":…,"orders_per_s":…}`.
//! `benches/compare_bindings.sh` runs the three one after the other and prints the ratios.

use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use crm_core::{Engine, MemoryStore, Order, Outcome, Program};
use rust_decimal::Decimal;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args.get(i + 1).ok_or(format!("{name} needs a value"))?.parse().map_err(|e| format!("{name}: {e}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = arg(&args, "--orders", 200_000)?;
    let members = arg(&args, "--members", 20_000)?.max(1);
    let batch = arg(&args, "--batch", 100)?.max(1);

    // The same shape as the Node bench: one order a minute, amounts 1.00..=500.99
    // from a linear congruential generator, member i mod members.
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut seed: u64 = 42;
    let orders: Vec<Order> = (0..n)
        .map(|i| {
            seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
            let cents = 100 + (seed as f64 / 2_147_483_648.0 * 50_000.0) as i64;
            let at = start + Duration::minutes(i as i64);
            Order::paid(format!("o{i}"), format!("m{}", i % members), at, Decimal::new(cents, 2))
        })
        .collect();
    let now = start + Duration::minutes(n as i64) + Duration::seconds(1);

    let engine = Engine::new(Program::default_demo(), MemoryStore::new());
    let t0 = Instant::now();
    let mut points = 0i64;
    for chunk in orders.chunks(batch) {
        for result in engine.record_orders(chunk, now)? {
            match result? {
                Outcome::Order { earned, .. } => points += earned.get("reward").copied().unwrap_or(0),
                other => return Err(format!("unexpected outcome {other:?}").into()),
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bench": "rust_bulk_import",
            "orders": n,
            "members": members,
            "batch": batch,
            "points": points,
            "seconds": (seconds * 10_000.0).round() / 10_000.0,
            "orders_per_s": (n as f64 / seconds).round(),
        })
    );
    Ok(())
}
