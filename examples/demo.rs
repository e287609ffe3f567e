//! The quick start: replay the CDNOW sample through the loyalty engine, month by month.
//!
//! ```sh
//! cargo run --release --example demo
//! ```
//!
//! Reads `examples/data/CDNOW_sample.txt` (2,357 customers of the online music store CDNOW and
//! their 6,919 purchases, January 1997 to June 1998; see `examples/data/README.md`) into an
//! embedded SQLite database under `Program::default_demo()`: one reward point per full 1.00 of
//! order amount, rounded down per order, each lot valid for 365 days.
//!
//! Time runs a calendar month at a time. At each month end the demo
//! 1. records the month's orders in one atomic batch (`Engine::record_orders`),
//! 2. runs what is due (`Engine::run_due`: lots older than 365 days expire),
//! 3. lets every member holding at least 200 available points redeem 100 of them, with an
//!    idempotency key per member and month (a retry would return the first result),
//!
//! then prints a summary: members, orders, points issued / redeemed / expired, the outstanding
//! liability (points and their money value) and the five members who spent most. The programme
//! (tiers, lifecycle stages and outreach on top of `default_demo`) is
//! `examples/programs/demo.toml`; `cargo run --release --example report -- --db <tmp>/crm-demo/demo.db
//! --out report.html` then draws the HTML report of the database.
//!
//! The database is `crm-demo/demo.db` under the system temp directory, recreated on every run
//! (so it is opened with `Synchronous::Normal`: no fsync per commit).

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use crm_core::store::sqlite::{SqliteOptions, Synchronous};
use crm_core::{Engine, MemberId, Order, Outcome, Program, SqliteStore, Store};
use rust_decimal::Decimal;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POINT_TYPE: &str = "reward";
/// Members with at least this many available points redeem at month end...
const REDEEM_THRESHOLD: i64 = 200;
/// ...this many points.
const REDEEM_POINTS: i64 = 100;

type Res<T> = Result<T, Box<dyn Error>>;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

/// The sample file next to this example, wherever cargo is run from.
fn data_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/CDNOW_sample.txt")
}

/// Parse the CDNOW sample: `master_id sample_id YYYYMMDD n_cds dollar_value`, CRLF, no header.
/// Each purchase becomes a paid order placed at noon UTC on its day; member ids are the master ids.
fn read_orders(path: &Path) -> Res<Vec<Order>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut orders = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let at = |what: &str| format!("{}:{}: {what}", path.display(), i + 1);
        let [member, _sample_id, date, _cds, value] = fields[..] else {
            return Err(at(&format!("expected 5 columns, got {}", fields.len())).into());
        };
        let day = NaiveDate::parse_from_str(date, "%Y%m%d").map_err(|e| at(&format!("date {date:?}: {e}")))?;
        let placed_at = Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).expect("noon exists"));
        let amount = Decimal::from_str(value).map_err(|e| at(&format!("dollar value {value:?}: {e}")))?;
        orders.push(Order::paid(format!("cdnow-{}", i + 1), member, placed_at, amount));
    }
    Ok(orders)
}

/// First instant of the month after the one containing `t` (the month's end).
fn month_end(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single().expect("midnight UTC exists")
}

#[derive(Default)]
struct Totals {
    orders: u64,
    rejected: u64,
    issued: i64,
    redeemed: i64,
    redemptions: u64,
    expired: i64,
}

fn run() -> Res<()> {
    let started = Instant::now();
    let mut orders = read_orders(&data_file())?;
    orders.sort_by_key(|o| o.placed_at);
    let (first, last) = match (orders.first(), orders.last()) {
        (Some(f), Some(l)) => (f.placed_at, l.placed_at),
        _ => return Err("the sample file has no orders".into()),
    };

    let dir = std::env::temp_dir().join("crm-demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let db = dir.join("demo.db");
    // The database is scratch, rebuilt on every run, so commits need not wait for an fsync each
    // (`Synchronous::Normal`: still atomic and crash-consistent, only the last commits could be
    // lost on power loss). A host keeps the default, `Synchronous::Full`.
    let options = SqliteOptions::new().synchronous(Synchronous::Normal);
    let engine = Engine::new(journey_program()?, SqliteStore::open_with(&db, options)?);
    let program = engine.program();

    println!("CDNOW sample: {} purchases, {} to {}", orders.len(), first.date_naive(), last.date_naive());
    println!(
        "Programme {:?}: 1 {POINT_TYPE} point per full 1.00 {}, rounded down per order, lots expire after 365 days",
        program.name, program.currency
    );
    println!("Store: SQLite (WAL, synchronous=NORMAL) at {}", db.display());
    println!();
    println!("month      orders  issued  redeemed  expired  outstanding");

    let mut totals = Totals::default();
    let mut last_run;
    let mut rest = &orders[..];
    let mut end = month_end(first);
    loop {
        // 1. The month's orders, in one atomic batch.
        let n = rest.iter().take_while(|o| o.placed_at < end).count();
        let (month, later) = rest.split_at(n);
        rest = later;
        let (mut m_issued, mut m_redeemed) = (0i64, 0i64);
        if !month.is_empty() {
            for (order, result) in month.iter().zip(engine.record_orders(month, end)?) {
                match result {
                    Ok(Outcome::Order { earned, .. }) => {
                        totals.orders += 1;
                        m_issued += earned.get(POINT_TYPE).copied().unwrap_or(0);
                    }
                    Ok(other) => return Err(format!("order {}: unexpected outcome {other:?}", order.id).into()),
                    Err(e) => {
                        totals.rejected += 1;
                        eprintln!("demo: order {} rejected: {e}", order.id);
                    }
                }
            }
        }

        // 2. Expire what is due at the month end; tier reviews, stage changes and outreach.
        let (m_expired, outreach, suppressed) = match engine.run_due(end)? {
            Outcome::Due { expired, outreach, suppressed, .. } => (expired, outreach, suppressed),
            other => return Err(format!("run_due: unexpected outcome {other:?}").into()),
        };
        last_run = (end, outreach, suppressed);

        // 3. Members with enough points redeem some, once per month (the key says which month).
        let mut rich = Vec::new();
        engine.store().scan(&mut |v| {
            let b = v.state.balance(POINT_TYPE, end);
            if v.state.is_active() && b.available >= REDEEM_THRESHOLD {
                rich.push(v.state.id);
            }
            Ok(())
        })?;
        rich.sort();
        let label = (end - chrono::Duration::days(1)).format("%Y-%m").to_string();
        for member in &rich {
            let key = format!("demo-redeem:{member}:{label}");
            match engine.redeem(member, POINT_TYPE, REDEEM_POINTS, &key, end)? {
                Outcome::Redemption { points, .. } => {
                    m_redeemed += points;
                    totals.redemptions += 1;
                }
                other => return Err(format!("redeem: unexpected outcome {other:?}").into()),
            }
        }

        totals.issued += m_issued;
        totals.redeemed += m_redeemed;
        totals.expired += m_expired;
        let outstanding = outstanding_points(&engine.liability(end)?);
        println!("{label}  {:>8}  {m_issued:>6}  {m_redeemed:>8}  {m_expired:>7}  {outstanding:>11}", month.len());
        if rest.is_empty() {
            break;
        }
        end = month_end(end);
    }

    summary(&engine, &totals, end)?;
    journey_summary(&engine, end, &last_run)?;
    println!();
    println!("Done in {:.2} s.", started.elapsed().as_secs_f64());
    Ok(())
}

/// The demo programme, `examples/programs/demo.toml`: `Program::default_demo()` (the points
/// figures are the same in every language's quick start) plus a spend-based tier ladder
/// without point multipliers, lifecycle stages and three outreach triggers. CDNOW members gave
/// no marketing consent, so the win-back is suppressed and only the service messages go out.
/// The `report` example reads the same file (the database does not store the programme).
fn journey_program() -> Res<Program> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/programs/demo.toml");
    Ok(Program::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Tier and stage distributions at `at`, and the last month end's outreach.
fn journey_summary<S: Store>(
    engine: &Engine<S>,
    at: DateTime<Utc>,
    last_run: &(DateTime<Utc>, Vec<crm_core::outreach::OutreachItem>, u64),
) -> Res<()> {
    println!();
    let tiers = engine.tier_distribution(at)?;
    let line: Vec<String> = tiers.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!("Tiers at {}: {}", at.date_naive(), line.join(", "));
    let stages = engine.stage_distribution(at)?;
    let line: Vec<String> = stages.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{s} {n}")).collect();
    println!("Stages at {}: {}", at.date_naive(), line.join(", "));
    let (day, items, suppressed) = last_run;
    let mut per_trigger: BTreeMap<&str, usize> = BTreeMap::new();
    for i in items {
        *per_trigger.entry(i.trigger.as_str()).or_insert(0) += 1;
    }
    let line: Vec<String> = per_trigger.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!(
        "Outreach of the run at {}: {} to send ({}), {suppressed} suppressed (no consent or capped)",
        day.to_rfc3339(),
        items.len(),
        if line.is_empty() { "none".to_string() } else { line.join(", ") }
    );
    for i in items.iter().take(3) {
        println!("  {} {} via {} due {} {}", i.member_id, i.trigger, i.channel, i.due_at.to_rfc3339(), i.payload);
    }
    Ok(())
}

fn outstanding_points(l: &crm_core::Liability) -> i64 {
    l.point_types.iter().filter(|t| t.spendable).map(|t| t.outstanding).sum()
}

/// One member's line in the top list.
struct Top {
    id: MemberId,
    orders: u64,
    spend: Decimal,
    available: i64,
}

fn summary<S: Store>(engine: &Engine<S>, t: &Totals, at: DateTime<Utc>) -> Res<()> {
    let liability = engine.liability(at)?;
    let outstanding = outstanding_points(&liability);
    let mut spend = Decimal::ZERO;
    let mut top: Vec<Top> = Vec::new();
    let mut buyers_by_orders: BTreeMap<u64, u64> = BTreeMap::new();
    engine.store().scan(&mut |v| {
        let st = v.state;
        spend += st.stats.spend;
        *buyers_by_orders.entry(st.stats.orders.min(5)).or_insert(0) += 1;
        let available = st.balance(POINT_TYPE, at).available;
        top.push(Top { id: st.id, orders: st.stats.orders, spend: st.stats.spend, available });
        Ok(())
    })?;
    top.sort_by(|a, b| b.spend.cmp(&a.spend).then_with(|| a.id.cmp(&b.id)));
    let repeat: u64 = buyers_by_orders.range(2..).map(|(_, n)| n).sum();

    println!();
    println!("Summary at {}", at.to_rfc3339());
    println!("  members              {:>10}   ({repeat} bought more than once)", liability.members);
    println!("  orders               {:>10}   ({} rejected)", t.orders, t.rejected);
    println!("  spend                {:>10}   {}", spend.round_dp(2), engine.program().currency);
    println!("  points issued        {:>10}", t.issued);
    println!("  points redeemed      {:>10}   ({} redemptions of {REDEEM_POINTS})", t.redeemed, t.redemptions);
    println!("  points expired       {:>10}", t.expired);
    println!(
        "  outstanding          {:>10}   points, worth {} {} at {} per point",
        outstanding,
        liability.value.round_dp(2),
        engine.program().currency,
        engine.program().value_per_point
    );
    let balanced = t.issued == t.redeemed + t.expired + outstanding;
    println!(
        "  check                issued = redeemed + expired + outstanding: {}",
        if balanced { "ok" } else { "MISMATCH" }
    );
    println!();
    println!("Top 5 members by spend");
    println!("  member   orders       spend  available points");
    for m in top.iter().take(5) {
        println!("  {:<7} {:>7} {:>11} {:>17}", m.id.as_str(), m.orders, m.spend.round_dp(2), m.available);
    }
    if !balanced {
        return Err("the ledger does not balance".into());
    }
    Ok(())
}
