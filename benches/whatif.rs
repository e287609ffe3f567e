//! The what-if replay (`crm_core::whatif::compare`) of a generated history
//! under the two sample programmes.
//!
//! ```sh
//! cargo bench --bench whatif                       # 200,000 orders of 20,000 members
//! WHATIF_ORDERS=1000000 cargo bench --bench whatif # 10 orders per member as well
//! ```
//!
//! The history: two years (2023-2024), every member's orders at
//! pseudo-random instants (a fixed linear congruential sequence, so every
//! run replays the same history), amounts 1.00-250.00. The programmes are
//! `examples/programs/default.toml` (1 point per 1.00, 365-day expiry) and
//! `double_points_tiers.toml` (double points, 180-day expiry, a spend
//! ladder over 12 rolling months with grace, lifecycle stages and two
//! outreach triggers). Each iteration replays the whole history under both,
//! member by member on all cores; throughput is orders per second (each
//! replayed twice). `examples/whatif.rs` measures the same on CSV files
//! (README "What-if replay at scale").

use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use crm_core::whatif::{compare, Options};
use crm_core::{Order, Program};
use rust_decimal::Decimal;

/// mimalloc, as in the other benches and the examples (README "Allocator").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn history(orders: usize) -> Vec<Order> {
    let members = (orders / 10).max(1);
    let start = Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).unwrap();
    let span = 731 * 86_400;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let mut out: Vec<Order> = (0..orders)
        .map(|i| {
            let member = format!("m{}", next() % members as u64);
            let at = start + chrono::Duration::seconds((next() % span) as i64);
            let cents = 100 + (next() % 24_900) as i64;
            Order::paid(format!("o{i}"), member, at, Decimal::new(cents, 2))
        })
        .collect();
    out.sort_by_key(|o| o.placed_at);
    out
}

fn whatif(c: &mut Criterion) {
    let n: usize = std::env::var("WHATIF_ORDERS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let orders = history(n);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/programs");
    let programs: Vec<(String, Program)> = ["default", "double_points_tiers"]
        .iter()
        .map(|name| (name.to_string(), Program::from_path(format!("{dir}/{name}.toml")).expect("sample programme")))
        .collect();
    let mut g = c.benchmark_group("whatif");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("two_programmes", |b| {
        b.iter(|| compare(&orders, &[], &programs, &Options::default()).expect("compare"))
    });
    g.finish();
}

criterion_group!(benches, whatif);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
