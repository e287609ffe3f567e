//! Orders per second into PostgreSQL: batched imports (`Engine::record_orders`
//! with 1,000 orders per atomic commit) and one transaction per order
//! (`Engine::record_order`), from one thread and from 8 threads sharing one
//! store (its pool holds 8 connections).
//!
//! ```sh
//! CRM_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \
//!   cargo bench --features postgres --bench postgres [-- --orders 50000 --single 5000]
//! ```
//!
//! Each mode runs in a fresh schema, dropped afterwards, and prints one JSON
//! line: `{"bench":"postgres_…","orders":…,"seconds":…,"orders_per_s":…}`.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use crm_core::store::postgres::{PostgresOptions, PostgresStore};
use crm_core::{Engine, Order, Program, Store};
use rust_decimal::Decimal;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn orders(n: usize, members: usize, tag: &str) -> Vec<Order> {
    let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let mut seed: u64 = 42;
    (0..n)
        .map(|i| {
            seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
            let cents = 100 + (seed % 50_000) as i64;
            let at = start + Duration::minutes(i as i64);
            Order::paid(format!("{tag}{i}"), format!("m{}", i % members), at, Decimal::new(cents, 2))
        })
        .collect()
}

fn store(url: &str, mode: &str) -> PostgresStore {
    let schema = format!("crm_bench_{mode}_{}", std::process::id());
    let options = PostgresOptions::new().schema(schema).pool_size(8);
    let s = PostgresStore::connect_with(url, options).expect("connect");
    // A leftover from an interrupted run: start empty.
    let schema = s.schema().to_string();
    s.drop_schema().expect("drop schema");
    PostgresStore::connect_with(url, PostgresOptions::new().schema(schema).pool_size(8)).expect("connect")
}

fn finish(s: Arc<PostgresStore>) {
    Arc::into_inner(s).expect("no other handle").drop_schema().expect("drop schema");
}

fn report(bench: &str, n: usize, batch: usize, threads: usize, t: Instant) {
    let seconds = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "bench": bench,
            "orders": n,
            "batch": batch,
            "threads": threads,
            "seconds": (seconds * 1_000.0).round() / 1_000.0,
            "orders_per_s": (n as f64 / seconds).round(),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(url) = std::env::var("CRM_BENCH_POSTGRES_URL").or_else(|_| std::env::var("CRM_TEST_POSTGRES_URL")).ok()
    else {
        eprintln!("skipped: set CRM_BENCH_POSTGRES_URL or CRM_TEST_POSTGRES_URL");
        return;
    };
    let n = arg(&args, "--orders", 50_000);
    let single = arg(&args, "--single", 5_000);
    let members = arg(&args, "--members", 5_000);
    let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();

    // Batched: 1,000 orders per commit.
    let batch = 1_000;
    let list = orders(n, members, "b");
    let s = Arc::new(store(&url, "batched"));
    let engine = Engine::new(Program::default_demo(), s.clone());
    let t = Instant::now();
    for chunk in list.chunks(batch) {
        for r in engine.record_orders(chunk, now).expect("record_orders") {
            r.expect("order");
        }
    }
    report("postgres_record_orders_batched", n, batch, 1, t);
    // Where a batch's time goes: the engine looks up each order's receipt
    // and loads each member, one round trip each, before the one commit.
    let probes = 2_000;
    let t = Instant::now();
    for o in list.iter().take(probes) {
        s.receipt(&crm_core::order_key(&o.id)).expect("receipt");
    }
    let receipt_us = t.elapsed().as_secs_f64() * 1e6 / probes as f64;
    let t = Instant::now();
    for o in list.iter().take(probes) {
        s.load(&o.member_id).expect("load");
    }
    let load_us = t.elapsed().as_secs_f64() * 1e6 / probes as f64;
    println!(
        "{}",
        serde_json::json!({
            "bench": "postgres_point_reads",
            "receipt_us": receipt_us.round(),
            "load_us": load_us.round(),
        })
    );
    drop(engine);
    finish(s);

    // One transaction per order, one thread.
    let list = orders(single, members, "s");
    let s = Arc::new(store(&url, "single"));
    let engine = Engine::new(Program::default_demo(), s.clone());
    let t = Instant::now();
    for o in &list {
        engine.record_order(o.clone(), now).expect("record_order");
    }
    report("postgres_record_order_per_tx", single, 1, 1, t);
    drop(engine);
    finish(s);

    // One transaction per order, 8 threads on one store (distinct members per thread).
    let threads = 8;
    let list = orders(single * 2, members, "p");
    let s = Arc::new(store(&url, "parallel"));
    let engine = Engine::new(Program::default_demo(), s.clone());
    let t = Instant::now();
    std::thread::scope(|scope| {
        for k in 0..threads {
            let (engine, list) = (&engine, &list);
            scope.spawn(move || {
                for o in list.iter().filter(|o| o.member_id.0[1..].parse::<usize>().unwrap() % threads == k) {
                    engine.record_order(o.clone(), now).expect("record_order");
                }
            });
        }
    });
    report("postgres_record_order_per_tx", single * 2, 1, threads, t);
    drop(engine);
    finish(s);
}
