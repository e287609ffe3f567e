//! Ledger throughput: recording orders, redeeming across many lots, balance queries.
//!
//! ```sh
//! cargo bench --bench ledger                 # everything, about two minutes
//! cargo bench --bench ledger -- record_order # one group
//! ```
//!
//! Every figure is per element (criterion prints `thrpt` in elements/s = orders/s, redemptions/s
//! or queries/s). All benches run under `Program::default_demo()` (1 point per full 1.00,
//! 365-day expiry). Orders are paid orders spread over members, 5 orders per member, the shape of
//! an imported history. Each measured iteration of the record-order benches starts from an empty
//! store (built outside the timing).
//!
//! - `record_order/memory/tx_per_order`: `Engine::record_order` per order on a `MemoryStore`;
//! - `record_order/memory/batch_N`: `Engine::record_orders` with N orders per atomic commit;
//! - `record_order/sqlite_full/tx_per_order`: one SQLite transaction per order, WAL, fsync on
//!   every commit (`Synchronous::Full`, the default; 200 orders per iteration, 10,000 elsewhere);
//! - `record_order/sqlite_normal/tx_per_order`: the same with `Synchronous::Normal` (fsync at
//!   checkpoints only);
//! - `record_order/sqlite_full/batch_N`: `record_orders` with N orders per transaction;
//! - `record_order/sqlite_full/concurrent_8`: eight threads share one `SqliteStore` handle, each
//!   recording its own members' orders one `record_order` at a time (a storefront's request
//!   handlers): every order is still its own command, acknowledged only once durable, but
//!   commits that queue up while one fsyncs are written together with the next fsync
//!   (group commit, see `store::sqlite`);
//! - `redeem_100_lots/{memory,sqlite_full}`: one redemption that takes all of a member's 100 open
//!   lots (the member is copied in before each redemption, outside the timing);
//! - `balance/{memory,sqlite_full}`: `Engine::balance` of a member with 100 open lots.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use crm_core::store::sqlite::{SqliteOptions, Synchronous};
use crm_core::store::{Commit, MemberWrite};
use crm_core::{Engine, MemberId, MemoryStore, Order, Outcome, Program, SqliteStore, Store};
use rust_decimal::Decimal;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ORDERS_PER_MEMBER: usize = 5;
const LOTS: usize = 100;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).single().expect("valid instant")
}

/// `n` paid orders, `ORDERS_PER_MEMBER` per member, one minute apart, amounts 10.00-109.99.
fn orders(n: usize) -> Vec<Order> {
    let members = n.div_ceil(ORDERS_PER_MEMBER);
    (0..n)
        .map(|i| {
            let amount = Decimal::new(1_000 + (i as i64 * 7_919) % 10_000, 2);
            let at = t0() + chrono::Duration::minutes(i as i64);
            Order::paid(format!("o{i}"), format!("m{}", i % members), at, amount)
        })
        .collect()
}

/// Scratch directory for the SQLite files, emptied at start.
fn scratch() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("crm-bench-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the bench scratch dir");
        dir
    })
}

/// A new, empty SQLite database file (the previous ones are deleted).
fn sqlite(sync: Synchronous) -> SqliteStore {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    if n > 0 {
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(scratch().join(format!("b{}.db{ext}", n - 1)));
        }
    }
    let path = scratch().join(format!("b{n}.db"));
    SqliteStore::open_with(&path, SqliteOptions::new().synchronous(sync)).expect("open sqlite")
}

fn engine<S: Store>(store: S) -> Engine<S> {
    Engine::new(Program::default_demo(), store)
}

fn record_one_by_one<S: Store>(e: &Engine<S>, orders: &[Order]) {
    for o in orders {
        e.record_order(o.clone(), o.placed_at).expect("record_order");
    }
}

fn record_batched<S: Store>(e: &Engine<S>, orders: &[Order], batch: usize) {
    for chunk in orders.chunks(batch) {
        let now = chunk[chunk.len() - 1].placed_at;
        for r in e.record_orders(chunk, now).expect("record_orders") {
            r.expect("order recorded");
        }
    }
}

/// `orders` split over `threads` threads by member (thread `t` takes the members whose index
/// is `t` modulo `threads`, so no two threads touch one member), each recorded one command at a
/// time on the shared engine.
fn record_concurrently<S: Store>(e: &Engine<S>, orders: &[Order], threads: usize) {
    let members = orders.len().div_ceil(ORDERS_PER_MEMBER);
    std::thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                let mine = orders.iter().enumerate().filter(|(i, _)| (i % members) % threads == t);
                for (_, o) in mine {
                    e.record_order(o.clone(), o.placed_at).expect("record_order");
                }
            });
        }
    });
}

fn configure(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.sampling_mode(SamplingMode::Flat);
}

fn record_order(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_order");
    configure(&mut g);

    // Each routine hands the engine back so that dropping the store is not timed.
    let n = 10_000;
    let data = orders(n);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("memory/tx_per_order", |b| {
        b.iter_batched(
            || engine(MemoryStore::new()),
            |e| {
                record_one_by_one(&e, &data);
                e
            },
            BatchSize::PerIteration,
        )
    });
    for batch in [100, 1_000] {
        g.bench_function(format!("memory/batch_{batch}"), |b| {
            b.iter_batched(
                || engine(MemoryStore::new()),
                |e| {
                    record_batched(&e, &data, batch);
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }
    for batch in [100, 1_000] {
        g.bench_function(format!("sqlite_full/batch_{batch}"), |b| {
            b.iter_batched(
                || engine(sqlite(Synchronous::Full)),
                |e| {
                    record_batched(&e, &data, batch);
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }

    // One transaction per order: fewer orders per iteration (an fsync each with `Full`).
    for (name, sync, n) in [("sqlite_full", Synchronous::Full, 200), ("sqlite_normal", Synchronous::Normal, 1_000)] {
        let data = orders(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{name}/tx_per_order"), |b| {
            b.iter_batched(
                || engine(sqlite(sync)),
                |e| {
                    record_one_by_one(&e, &data);
                    e
                },
                BatchSize::PerIteration,
            )
        });
    }

    // Eight writers on one handle, one command per order (group commit).
    let n = 1_000;
    let data = orders(n);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("sqlite_full/concurrent_8", |b| {
        b.iter_batched(
            || engine(sqlite(Synchronous::Full)),
            |e| {
                record_concurrently(&e, &data, 8);
                e
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A store holding member `m0` with `LOTS` open lots of 10 points each (one per order).
fn with_lots<S: Store>(store: S) -> Engine<S> {
    let e = engine(store);
    let lots: Vec<Order> = (0..LOTS)
        .map(|i| Order::paid(format!("lot{i}"), "m0", t0() + chrono::Duration::hours(i as i64), Decimal::new(1_000, 2)))
        .collect();
    record_batched(&e, &lots, LOTS);
    let open = e.lots(&"m0".into()).expect("lots");
    assert_eq!(open.len(), LOTS);
    e
}

/// Copy member `m0` (snapshot and events) to a new member id, outside any timing.
fn copy_member<S: Store>(e: &Engine<S>, to: &MemberId) {
    let template = e.member(&"m0".into()).expect("template member");
    let events = e.store().events(&template.id).expect("template events");
    let mut state = template;
    state.id = to.clone();
    let write = MemberWrite { expected_version: 0, events, state };
    e.store().commit(Commit { members: vec![write], ..Commit::default() }).expect("copy member");
}

fn redeem_and_balance(c: &mut Criterion) {
    let now = t0() + chrono::Duration::days(200);
    let points = (LOTS * 10) as i64;

    let mut g = c.benchmark_group("redeem_100_lots");
    configure(&mut g);
    g.throughput(Throughput::Elements(1));
    fn bench<S: Store>(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str, e: Engine<S>) {
        let now = t0() + chrono::Duration::days(200);
        let points = (LOTS * 10) as i64;
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let id = MemberId(format!("copy{n}"));
                    copy_member(&e, &id);
                    id
                },
                |id| match e.redeem(&id, "reward", points, &format!("r-{}", id.as_str()), now).expect("redeem") {
                    Outcome::Redemption { allocations, .. } => assert_eq!(allocations.len(), LOTS),
                    other => panic!("unexpected {other:?}"),
                },
                BatchSize::PerIteration,
            )
        });
    }
    bench(&mut g, "memory", with_lots(MemoryStore::new()));
    bench(&mut g, "sqlite_full", with_lots(sqlite(Synchronous::Full)));
    g.finish();

    let mut g = c.benchmark_group("balance");
    configure(&mut g);
    g.throughput(Throughput::Elements(1));
    let m0: MemberId = "m0".into();
    let e = with_lots(MemoryStore::new());
    assert_eq!(e.balance(&m0, "reward", now).expect("balance").available, points);
    g.bench_function("memory", |b| b.iter(|| e.balance(&m0, "reward", now).expect("balance")));
    let e = with_lots(sqlite(Synchronous::Full));
    g.bench_function("sqlite_full", |b| b.iter(|| e.balance(&m0, "reward", now).expect("balance")));
    g.finish();
}

criterion_group!(benches, record_order, redeem_and_balance);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let _ = std::fs::remove_dir_all(scratch());
}
