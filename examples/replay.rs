//! Import an order history from CSV into a store and report the programme's points.
//!
//! ```sh
//! python3 scripts/cdnow_to_csv.py ../shared/data/CDNOW_master.txt -o /tmp/cdnow.csv
//! cargo run --release --example replay -- --orders /tmp/cdnow.csv --db /tmp/cdnow.db
//! ```
//!
//! The CSV has the header `member_id,order_id,placed_at,amount,channel` (columns may come in any
//! order; `channel` may be empty or absent; fields may be quoted); `placed_at` is RFC 3339 and
//! `amount` a decimal (the reader, shared with `whatif`, is `examples/support/order_csv.rs`). Every
//! row becomes a paid order under `Program::default_demo()` (1 point per full 1.00, 365-day
//! expiry), recorded in batches of `--batch` orders (one atomic commit each) with
//! `Engine::record_orders`, on `--threads` threads (default one per core, at most 4): each
//! thread owns the members whose id hashes to it and records their orders in file order, so
//! no two threads write one member, and on SQLite concurrent batches share a transaction and
//! its fsync (group commit) while the next ones are being decided. Then `run_due` runs at the
//! latest `placed_at` of the file.
//! SQLite commits fsync by default (`--sync full`); `--sync normal` fsyncs only at WAL
//! checkpoints, which is safe to use for an import because a re-run repairs a cut-short one.
//!
//! Progress and errors go to stderr; stdout gets a short summary whose LAST line is one JSON
//! object: `members`, `orders` (recorded), `rejected`, `points_issued`, `points_redeemed`,
//! `points_expired`, `points_outstanding` (spendable, at the latest `placed_at`), `elapsed_ms`
//! (import + `run_due`, parsing excluded), `close_ms` (closing a SQLite store: its last WAL
//! checkpoint, not in `elapsed_ms`), and more.
//!
//! Importing into an existing database is idempotent: orders already recorded come back with
//! their first outcome and are not counted twice by the store.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use crm_core::store::sqlite::{SqliteOptions, Synchronous, DEFAULT_MEMBER_CACHE};
use crm_core::{Engine, MemoryStore, Order, Outcome, Program, SqliteStore, Store};
use order_csv::read_order_parts;
use rust_decimal::Decimal;
use serde_json::json;

#[allow(dead_code)] // the small-file reader is `whatif`'s; this example reads orders only
#[path = "support/order_csv.rs"]
mod order_csv;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum, which keeps its
/// numbering across versions (retired options stay as placeholders).
#[cfg(not(feature = "system-allocator"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory instead of returning it to the OS 10 ms after it empties
/// (mimalloc's default). Each batch frees what it allocated; returned, the
/// next batch takes it back as fresh pages the kernel must zero (2 MB at a
/// time with transparent huge pages): on the CDNOW import that was 0.8-1.1 s
/// of system time against 0.4-0.5 s kept (three alternating pairs). The
/// import's peak memory is what it uses anyway.
fn keep_freed_memory() {
    #[cfg(not(feature = "system-allocator"))]
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table;
    // it may be called at any time, from any thread.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
    }
}

/// Fault memory in 4 KB pages rather than 2 MB transparent huge pages.
/// mimalloc asks for huge pages (`MADV_HUGEPAGE`) on its arenas, and the
/// kernel zeroes each one whole on its first touch; on this VM that zeroing
/// (`clear_page_erms`) was a fifth of the CPU samples of a CDNOW import into
/// SQLite, most of it for memory the import never reaches. Off, the import
/// took 0.82-0.89 s against 0.90-1.10 s on (three alternating pairs;
/// CHANGELOG, the entry of `PR_SET_THP_DISABLE`). Process-wide and harmless elsewhere: SQLite's
/// page cache and the rest of the process do not ask for huge pages.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: `prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)` sets one flag of this
    // process's memory map, consulted on later page faults; it takes no
    // pointers. A kernel without it returns an error, which changes nothing.
    unsafe {
        let _ = libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// WAL bytes between checkpoints during the import (SQLite's default: 4 MB).
/// On the CDNOW import, four alternating runs of each: 4 MB 0.93-1.07 s,
/// 32 MB 0.78-0.85 s, never 0.76-0.80 s (but the whole copy then lands in
/// the close, after `elapsed_ms`). 32 MB keeps most of the gain and still
/// copies the WAL as it goes.
const IMPORT_CHECKPOINT_BYTES: u64 = 32 << 20;

const USAGE: &str = "\
usage: replay --orders FILE.csv (--db PATH | --memory) [--batch N] [--threads N] [--sync full|normal]

  --orders FILE.csv  orders to import; header member_id,order_id,placed_at,amount,channel
  --db PATH          SQLite database file (created if missing; an existing one is reused)
  --memory           use the in-process MemoryStore instead of SQLite
  --batch N          orders per atomic commit (default 1000)
  --threads N        import threads, each owning the members of its share (default: one per
                     core, at most 4); each member's orders are recorded in file order
  --sync full|normal SQLite durability: fsync every commit (full, the default) or only at
                     WAL checkpoints (normal; a re-run repairs an import cut short by a power loss)
  -h, --help         this message

The last line of stdout is a JSON summary.";

const POINT_TYPE: &str = "reward";
/// Orders per commit. The per-order cost inside a batch is constant (the engine's undo journal
/// only records the members a command touches), so larger batches only save commits.
const DEFAULT_BATCH: usize = 1_000;
/// Import threads by default, at most (one per core up to this).
const MAX_THREADS: usize = 4;
/// Errors shown on stderr before the rest are only counted.
const SHOW_ERRORS: usize = 5;

struct Args {
    orders: String,
    db: Option<String>,
    batch: usize,
    threads: usize,
    sync: Synchronous,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut orders, mut db, mut memory, mut batch) = (None, None, false, DEFAULT_BATCH);
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    let mut sync = Synchronous::Full;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--orders" => orders = Some(value("--orders")?),
            "--db" => db = Some(value("--db")?),
            "--memory" => memory = true,
            "--batch" => {
                let v = value("--batch")?;
                batch = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--batch must be a positive integer, got {v:?}")),
                };
            }
            "--threads" => {
                let v = value("--threads")?;
                threads = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--threads must be a positive integer, got {v:?}")),
                };
            }
            "--sync" => {
                sync = match value("--sync")?.as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    v => return Err(format!("--sync must be full or normal, got {v:?}")),
                };
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let orders = orders.ok_or("--orders is required")?;
    match (&db, memory) {
        (None, false) => return Err("one of --db PATH or --memory is required".into()),
        (Some(_), true) => return Err("--db and --memory exclude each other".into()),
        _ => {}
    }
    Ok(Some(Args { orders, db, batch, threads, sync }))
}

/// One parsed data row: the order where the parser left it, and its
/// 1-based line number in the file.
///
/// Why a reference: at 10,000,000 orders, joining the parts each core
/// parsed into one list copied about 2 GB into fresh memory, which on these
/// virtual machines cost more than the parse (the `whatif` example measured
/// it); each import thread clones only the batch it records.
#[derive(Clone, Copy)]
struct Row<'a> {
    line: usize,
    order: &'a Order,
}

#[derive(Default)]
struct Report {
    recorded: u64,
    rejected: u64,
    points_issued: i64,
    members: u64,
    points_expired: i64,
    points_outstanding: i64,
    liability_value: Decimal,
    import_ms: f64,
    run_due_ms: f64,
    /// Closing a SQLite store: its final WAL checkpoint (not in `elapsed_ms`).
    close_ms: f64,
}

/// What one import thread recorded.
#[derive(Default)]
struct Lane {
    recorded: u64,
    rejected: u64,
    points_issued: i64,
}

/// Shared by the import threads: orders done (for progress) and errors shown.
struct Progress {
    total: usize,
    batch: usize,
    started: Instant,
    done: AtomicUsize,
    shown: AtomicUsize,
}

impl Progress {
    /// Count `n` more orders done; print a line at every 10% of a multi-batch
    /// import (on stderr: stdout stays machine-readable).
    fn advance(&self, n: usize) {
        let before = self.done.fetch_add(n, Ordering::Relaxed);
        let done = before + n;
        if self.total > self.batch && before * 10 / self.total != done * 10 / self.total {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "replay: {:>3}%  {done:>9} orders  {secs:>7.2} s  {:>10.0} orders/s",
                done * 100 / self.total,
                done as f64 / secs.max(1e-9)
            );
        }
    }
}

/// The lane of a member: a stable hash of its id, so every order of one
/// member goes to the same thread, in file order.
fn lane_of(member: &str, lanes: usize) -> usize {
    let hash = member.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (hash % lanes as u64) as usize
}

/// Record one lane's rows in batches of `batch` (one atomic commit each).
fn import_lane<S: Store>(
    engine: &Engine<S>,
    rows: &[Row<'_>],
    batch: usize,
    progress: &Progress,
) -> Result<Lane, String> {
    let mut lane = Lane::default();
    for chunk in rows.chunks(batch) {
        let orders: Vec<Order> = chunk.iter().map(|r| r.order.clone()).collect();
        let now = orders.iter().map(|o| o.placed_at).max().expect("chunks are not empty");
        let results = engine.record_orders(&orders, now).map_err(|e| format!("record_orders failed: {e}"))?;
        for (row, result) in chunk.iter().zip(results) {
            match result {
                Ok(Outcome::Order { earned, .. }) => {
                    lane.recorded += 1;
                    lane.points_issued += earned.get(POINT_TYPE).copied().unwrap_or(0);
                }
                Ok(other) => return Err(format!("line {}: unexpected outcome {other:?}", row.line)),
                Err(e) => {
                    lane.rejected += 1;
                    if progress.shown.fetch_add(1, Ordering::Relaxed) < SHOW_ERRORS {
                        eprintln!("replay: line {}: order {:?} rejected: {e}", row.line, row.order.id);
                    }
                }
            }
        }
        progress.advance(chunk.len());
    }
    Ok(lane)
}

/// Import `rows` on `threads` threads, each owning the members of its lane
/// (so no two threads ever write one member, and each member's orders are
/// recorded in file order), then run what is due at `at`. Concurrent
/// commits to one SQLite handle share a transaction and its fsync (group
/// commit), and one thread decides its next batch while another's is written.
fn replay<S: Store + Sync>(
    engine: &Engine<S>,
    rows: &[Row<'_>],
    batch: usize,
    threads: usize,
    at: DateTime<Utc>,
) -> Result<Report, String> {
    let mut lanes: Vec<Vec<Row<'_>>> = vec![Vec::new(); threads];
    for row in rows {
        lanes[lane_of(row.order.member_id.as_str(), threads)].push(*row);
    }
    let progress = Progress {
        total: rows.len(),
        batch,
        started: Instant::now(),
        done: AtomicUsize::new(0),
        shown: AtomicUsize::new(0),
    };
    let results: Vec<Result<Lane, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            lanes.iter().map(|lane| scope.spawn(|| import_lane(engine, lane, batch, &progress))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("an import thread panicked".into()))).collect()
    });
    let mut report = Report { import_ms: progress.started.elapsed().as_secs_f64() * 1e3, ..Report::default() };
    for lane in results {
        let lane = lane?;
        report.recorded += lane.recorded;
        report.rejected += lane.rejected;
        report.points_issued += lane.points_issued;
    }

    let started = Instant::now();
    eprintln!("replay: running what is due at {}", at.to_rfc3339());
    match engine.run_due(at).map_err(|e| format!("run_due failed: {e}"))? {
        Outcome::Due { expired, .. } => report.points_expired = expired,
        other => return Err(format!("run_due: unexpected outcome {other:?}")),
    }
    report.run_due_ms = started.elapsed().as_secs_f64() * 1e3;

    let liability = engine.liability(at).map_err(|e| format!("liability failed: {e}"))?;
    report.members = liability.members;
    report.points_outstanding = liability.point_types.iter().filter(|t| t.spendable).map(|t| t.outstanding).sum();
    report.liability_value = liability.value;
    Ok(report)
}

#[path = "support/cli.rs"]
mod cli;

fn main() -> ExitCode {
    keep_freed_memory();
    no_huge_pages();
    cli::main("replay", USAGE, parse_args, run)
}

fn run(args: &Args) -> Result<(), String> {
    let t = Instant::now();
    let parts = read_order_parts(&args.orders)?;
    let rows: Vec<Row<'_>> =
        parts.iter().flat_map(|p| p.lines.iter().zip(&p.orders).map(|(&line, order)| Row { line, order })).collect();
    let bad: Vec<_> = parts.iter().flat_map(|p| &p.bad).collect();
    let parse_ms = t.elapsed().as_secs_f64() * 1e3;
    for (line, e) in bad.iter().copied().take(SHOW_ERRORS) {
        eprintln!("replay: line {line}: cannot parse: {e}");
    }
    let at = rows.iter().map(|r| r.order.placed_at).max().ok_or("no orders to import")?;
    eprintln!("replay: {} orders read from {} in {parse_ms:.0} ms", rows.len(), args.orders);

    let program = Program::default_demo();
    let (report, store) = match &args.db {
        Some(path) => {
            // Room for every member's decoded snapshot: the `run_due` at the
            // end visits nearly all of them, and a miss decodes one.
            let members = rows.iter().map(|r| r.order.member_id.as_str()).collect::<HashSet<_>>().len();
            // and checkpoints every 32 MB rather than 4: on two cores the
            // checkpoint thread would take the CPU the import threads need.
            let options = SqliteOptions::new()
                .synchronous(args.sync)
                .member_cache(members.max(DEFAULT_MEMBER_CACHE))
                .checkpoint_bytes(IMPORT_CHECKPOINT_BYTES);
            let store = SqliteStore::open_with(path, options).map_err(|e| format!("cannot open {path}: {e}"))?;
            let engine = Engine::new(program, store);
            let mut report = replay(&engine, &rows, args.batch, args.threads, at)?;
            // Closing copies what is left in the WAL into the database.
            let t = Instant::now();
            drop(engine);
            report.close_ms = t.elapsed().as_secs_f64() * 1e3;
            (report, format!("sqlite:{path}"))
        }
        None => (
            replay(&Engine::new(program, MemoryStore::new()), &rows, args.batch, args.threads, at)?,
            "memory".to_string(),
        ),
    };
    let rejected = report.rejected + bad.len() as u64;
    if rejected as usize > SHOW_ERRORS {
        eprintln!("replay: {rejected} rows rejected in all");
    }
    if report.points_issued != report.points_expired + report.points_outstanding {
        eprintln!(
            "replay: note: issued {} != expired {} + outstanding {} (points from an earlier import?)",
            report.points_issued, report.points_expired, report.points_outstanding
        );
    }

    let elapsed_ms = report.import_ms + report.run_due_ms;
    let per_sec = report.recorded as f64 / (report.import_ms / 1e3).max(1e-9);
    println!("store          {store}");
    println!("orders         {:>12}   ({rejected} rejected)", report.recorded);
    println!("members        {:>12}", report.members);
    println!("points issued  {:>12}", report.points_issued);
    println!("points expired {:>12}   (run_due at {})", report.points_expired, at.to_rfc3339());
    println!("outstanding    {:>12}   (value {})", report.points_outstanding, report.liability_value);
    println!(
        "import         {:>12.1} ms ({per_sec:.0} orders/s, batches of {}, {} threads)",
        report.import_ms, args.batch, args.threads
    );
    println!("run_due        {:>12.1} ms", report.run_due_ms);
    if args.db.is_some() {
        println!("close          {:>12.1} ms   (the last WAL checkpoint)", report.close_ms);
    }
    let summary = json!({
        "store": store,
        "members": report.members,
        "orders": report.recorded,
        "rejected": rejected,
        "points_issued": report.points_issued,
        "points_redeemed": 0,
        "points_expired": report.points_expired,
        "points_outstanding": report.points_outstanding,
        "liability_value": report.liability_value.to_string(),
        "as_of": at.to_rfc3339(),
        "batch": args.batch,
        "threads": args.threads,
        "sync": args.db.as_ref().map(|_| format!("{:?}", args.sync).to_lowercase()),
        "parse_ms": round1(parse_ms),
        "import_ms": round1(report.import_ms),
        "run_due_ms": round1(report.run_due_ms),
        "elapsed_ms": round1(elapsed_ms),
        "close_ms": round1(report.close_ms),
        "orders_per_sec": per_sec.round(),
    });
    println!("{summary}");
    Ok(())
}

fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}
