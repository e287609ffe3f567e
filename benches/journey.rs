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

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, Criterion, SamplingMode, Throughput};

#[path = "support/journey_population.rs"]
mod population;
use population::{members, populated};

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
