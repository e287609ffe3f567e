//! Replay one order history under several programmes and compare them side by side.
//!
//! ```sh
//! python3 scripts/cdnow_to_csv.py ../shared/data/CDNOW_master.txt -o /tmp/cdnow.csv
//! cargo run --release --example whatif -- --orders /tmp/cdnow.csv \
//!     --program examples/programs/default.toml --program examples/programs/double_points_tiers.toml
//! ```
//!
//! The CSV is the one of the `replay` example (header `member_id,order_id,placed_at,amount,channel`,
//! columns in any order, `channel` optional, fields may be quoted; the reader both share is
//! `examples/support/order_csv.rs`). Optional `--refunds FILE.csv` (header `refund_id,order_id,at,amount`; an empty `amount` refunds the rest of the order) and
//! `--redemptions FILE.csv` (header `member_id,points,at`) replay refunds and recorded redemptions
//! too; times are RFC 3339. Each programme is replayed by `crm_core::whatif::compare`, member by
//! member (members dealt to shards by a hash of their id, the shards on all cores): each member's
//! facts in time order, `run_due` at every month start and at `--until` (default: the latest
//! `placed_at`).
//!
//! stdout: a table, one column per programme, then the tier movers; its LAST line is one JSON
//! object: the `Comparison` (figures per programme, movers, notes) plus `parse_ms` and
//! `elapsed_ms` (the comparison, parsing excluded).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::whatif::{compare_parts, Comparison, Options, ProgrammeFigures, RecordedRedemption};
use crm_core::{Order, Program, Refund, RefundScope};
use order_csv::{cell, read_order_parts, read_rows};
use rust_decimal::Decimal;

#[path = "support/order_csv.rs"]
mod order_csv;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: whatif --orders FILE.csv --program A.toml [--program B.toml ...] [--until DATE] [--shards N]
              [--refunds FILE.csv] [--redemptions FILE.csv]

  --orders FILE.csv  order history; header member_id,order_id,placed_at,amount,channel
  --refunds FILE.csv refunds; header refund_id,order_id,at,amount (empty amount: the rest of the order)
  --redemptions FILE.csv
                     recorded redemptions; header member_id,points,at (replayed where the balance allows)
  --program PATH     a programme (TOML or JSON); give two or more to compare, the first is the base
  --until DATE       replay up to this instant: RFC 3339, or YYYY-MM-DD for the end of that day (UTC);
                     default: the latest placed_at of the file
  --shards N         sets of members per programme, units of work for the cores (default 64; same figures)
  -h, --help         this message

The last line of stdout is a JSON summary.";

/// Errors shown on stderr before the rest are only counted.
const SHOW_ERRORS: usize = 5;

struct Args {
    orders: String,
    refunds: Option<String>,
    redemptions: Option<String>,
    programs: Vec<String>,
    until: Option<DateTime<Utc>>,
    shards: usize,
}

fn parse_until(v: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("--until {v:?}: not RFC 3339 nor a date"))?;
    Ok(d.and_hms_opt(23, 59, 59).expect("valid time").and_utc())
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut orders, mut programs, mut until, mut shards) = (None, Vec::new(), None, 0);
    let (mut refunds, mut redemptions) = (None, None);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--orders" => orders = Some(value("--orders")?),
            "--program" => programs.push(value("--program")?),
            "--refunds" => refunds = Some(value("--refunds")?),
            "--redemptions" => redemptions = Some(value("--redemptions")?),
            "--until" => until = Some(parse_until(&value("--until")?)?),
            "--shards" => {
                let v = value("--shards")?;
                shards = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--shards must be a positive integer, got {v:?}"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let orders = orders.ok_or("--orders is required")?;
    if programs.is_empty() {
        return Err("at least one --program is required".into());
    }
    Ok(Some(Args { orders, refunds, redemptions, programs, until, shards }))
}

fn instant(v: &str, what: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("{what}: {e}"))
}

/// `refund_id,order_id,at,amount`: an amount refund, or the rest of the order when `amount` is empty.
fn read_refunds(path: &str) -> Result<Vec<Refund>, String> {
    read_rows(path, &["refund_id", "order_id", "at", "amount"])?
        .into_iter()
        .map(|(line, row)| {
            let amount = cell(&row, "amount");
            let scope = if amount.is_empty() {
                RefundScope::Full
            } else {
                let amount = Decimal::from_str(amount).map_err(|e| format!("{path} line {line}: amount: {e}"))?;
                RefundScope::Amount { amount }
            };
            Ok(Refund {
                id: cell(&row, "refund_id").to_string(),
                order_id: cell(&row, "order_id").to_string(),
                at: instant(cell(&row, "at"), &format!("{path} line {line}: at"))?,
                scope,
            })
        })
        .collect()
}

/// `member_id,points,at`.
fn read_redemptions(path: &str) -> Result<Vec<RecordedRedemption>, String> {
    read_rows(path, &["member_id", "points", "at"])?
        .into_iter()
        .map(|(line, row)| {
            Ok(RecordedRedemption {
                member_id: cell(&row, "member_id").into(),
                points: cell(&row, "points").parse().map_err(|e| format!("{path} line {line}: points: {e}"))?,
                at: instant(cell(&row, "at"), &format!("{path} line {line}: at"))?,
            })
        })
        .collect()
}

#[path = "support/cli.rs"]
mod cli;

fn main() -> ExitCode {
    cli::main("whatif", USAGE, parse_args, run)
}

fn run(args: &Args) -> Result<(), String> {
    let mut programs: Vec<(String, Program)> = Vec::new();
    for path in &args.programs {
        let program = Program::from_path(path).map_err(|e| format!("{path}: {e}"))?;
        let stem = Path::new(path).file_stem().map_or("programme".into(), |s| s.to_string_lossy().into_owned());
        let mut label = stem.clone();
        for n in 2.. {
            if !programs.iter().any(|(l, _)| *l == label) {
                break;
            }
            label = format!("{stem}-{n}");
        }
        programs.push((label, program));
    }

    let t = Instant::now();
    // The parts as parsed on each core: joining them would copy every order.
    let parts = read_order_parts(&args.orders)?;
    let parse_ms = t.elapsed().as_secs_f64() * 1e3;
    let bad: Vec<_> = parts.iter().flat_map(|p| &p.bad).collect();
    let orders: Vec<&[Order]> = parts.iter().map(|p| p.orders.as_slice()).collect();
    for (line, e) in bad.iter().take(SHOW_ERRORS) {
        eprintln!("whatif: line {line}: cannot parse: {e}");
    }
    if bad.len() > SHOW_ERRORS {
        eprintln!("whatif: {} lines could not be parsed in all", bad.len());
    }
    let read = orders.iter().map(|p| p.len()).sum::<usize>();
    eprintln!("whatif: {read} orders read from {} in {parse_ms:.0} ms", args.orders);

    let refunds = args.refunds.as_deref().map(read_refunds).transpose()?.unwrap_or_default();
    let redemptions = args.redemptions.as_deref().map(read_redemptions).transpose()?.unwrap_or_default();
    if !refunds.is_empty() || !redemptions.is_empty() {
        eprintln!("whatif: {} refunds and {} redemptions read", refunds.len(), redemptions.len());
    }

    let t = Instant::now();
    let options = Options { until: args.until, shards: args.shards, redemptions, ..Options::default() };
    let comparison = compare_parts(&orders, &refunds, &programs, &options).map_err(|e| e.to_string())?;
    let elapsed_ms = t.elapsed().as_secs_f64() * 1e3;

    // Tier rows in ladder order (base first), programme by programme.
    let mut tiers: Vec<String> = Vec::new();
    for level in programs.iter().filter_map(|(_, p)| p.tiers.as_ref()).flat_map(|l| &l.levels) {
        if !tiers.contains(&level.id) {
            tiers.push(level.id.clone());
        }
    }
    print_table(&comparison, &tiers);
    let mut summary = serde_json::to_value(&comparison).map_err(|e| e.to_string())?;
    summary["parse_ms"] = round1(parse_ms).into();
    summary["elapsed_ms"] = round1(elapsed_ms).into();
    println!("{summary}");
    Ok(())
}

fn print_table(c: &Comparison, tiers: &[String]) {
    let ps = &c.programmes;
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&ProgrammeFigures) -> String| {
        rows.push((name.to_string(), ps.iter().map(cell).collect()));
    };
    row("programme", &|f| f.programme.clone());
    row("orders", &|f| f.orders.to_string());
    row("orders rejected", &|f| f.orders_rejected.to_string());
    row("members", &|f| f.members.to_string());
    row("points issued", &|f| f.points_issued.to_string());
    row("points redeemed", &|f| f.points_redeemed.to_string());
    row("points expired", &|f| f.points_expired.to_string());
    row("points outstanding", &|f| f.points_outstanding.to_string());
    row("liability", &|f| format!("{} {}", f.liability_value, f.currency));
    row("coupon cost", &|f| format!("{} {}", f.coupon_cost, f.currency));
    for tier in tiers {
        row(&format!("tier {tier}"), &|f| match &f.tier_distribution {
            Some(d) => d.get(tier).map_or("-".into(), |n| n.to_string()),
            None => "-".into(),
        });
    }
    row("tier changes", &|f| f.tier_changes.to_string());
    if let Some(first) = ps.first() {
        for stage in first.stage_distribution.keys() {
            row(&format!("stage {}", stage.as_str()), &|f| {
                f.stage_distribution.get(stage).map_or("-".into(), |n| n.to_string())
            });
        }
    }
    row("stage changes", &|f| f.stage_changes.to_string());
    let triggers: BTreeSet<&String> = ps.iter().flat_map(|f| f.outreach.keys()).collect();
    for trigger in triggers {
        row(&format!("outreach {trigger}"), &|f| f.outreach.get(trigger).map_or("-".into(), |n| n.to_string()));
    }
    row("outreach suppressed", &|f| f.outreach_suppressed.to_string());
    row("run_due runs", &|f| f.run_due_runs.to_string());

    let name_w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ps.len())
        .map(|i| rows.iter().map(|(_, c)| c[i].len()).chain([ps[i].label.len()]).max().unwrap_or(0))
        .collect();
    println!("what-if replay of {} orders up to {}", c.history.orders, c.until.to_rfc3339());
    let header: Vec<String> = ps.iter().zip(&widths).map(|(f, w)| format!("{:>w$}", f.label)).collect();
    println!("{:name_w$}  {}", "", header.join("  "));
    for (name, cells) in &rows {
        let cells: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect();
        println!("{name:name_w$}  {}", cells.join("  "));
    }
    for m in &c.movers {
        println!("movers {} -> {}: {} up, {} down", m.from, m.to, m.up, m.down);
        if !m.up_examples.is_empty() {
            println!("  up e.g.   {}", m.up_examples.join(" "));
        }
        if !m.down_examples.is_empty() {
            println!("  down e.g. {}", m.down_examples.join(" "));
        }
    }
    for n in &c.notes {
        println!("note: {n}");
    }
}

fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}
