//! RFM scores of every member of an order CSV.
//!
//! ```sh
//! python3 scripts/cdnow_to_csv.py ../shared/data/CDNOW_master.txt -o /tmp/cdnow.csv
//! cargo run --release --example rfm -- --orders /tmp/cdnow.csv --as-of 1998-06-30 --out /tmp/rfm.csv
//! ```
//!
//! Input: the order CSV of the replay example (`member_id,order_id,placed_at,amount,channel`; only
//! `member_id`, `placed_at` and `amount` are read, see `crm_core::analytics::csv`).
//!
//! Which orders count: those placed at or before `--as-of`, and, when the CSV has a `status`
//! column, only `paid` and `completed` ones (the orders that earn points). `--as-of` is either a
//! date, `YYYY-MM-DD`, meaning the END of that day in UTC (orders of that day count), or an
//! RFC 3339 instant (orders up to that second count). Recency is in whole UTC calendar days from
//! the day of the member's last counted order to the as-of day (0: bought on the as-of day).
//!
//! Output (`--out`): `member_id,recency,frequency,monetary,r_score,f_score,m_score`, one row per
//! member with a counted order, sorted by member id in natural order: numerically when every id
//! is an integer (a run of ASCII digits; `"9"` before `"10"`, leading zeros ignored, ties by
//! text), else lexicographically by UTF-8 bytes. `monetary` is the exact decimal sum.
//! Scores: see `crm_core::analytics::rfm`.
//!
//! Stdout: a short summary whose LAST line is a JSON object with `members`, `orders`,
//! `elapsed_ms` (read + score + write), the count per RFM group, and, with `--clusters K`,
//! the sizes of K value clusters (k-means++, `--seed`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::analytics::cluster::value_clusters;
use crm_core::analytics::csv::{push_decimal, push_field, push_uint, read_orders_path, OrderCsvOptions};
use crm_core::analytics::orders::{day_of_date, day_of_instant, Day};
use crm_core::analytics::rfm::rfm_orders;
use serde_json::json;

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: rfm --orders FILE.csv --as-of (YYYY-MM-DD | RFC3339) --out SCORES.csv [--scale N]
           [--clusters K] [--seed S] [--threads N]

  --orders FILE.csv  order CSV with member_id, placed_at and amount columns (status optional)
  --as-of T          a date (the end of that UTC day) or an RFC 3339 instant
  --out SCORES.csv   member_id,recency,frequency,monetary,r_score,f_score,m_score
  --scale N          decimal places of the amounts (default 2)
  --clusters K       also cluster the members into K value clusters (sizes in the summary)
  --seed S           k-means++ seed (default 1)
  --threads N        threads reading a large CSV (default 0: one per idle core; 1: sequential)
  -h, --help         this message

The last line of stdout is a JSON summary.";

struct Args {
    orders: String,
    as_of: (DateTime<Utc>, Day),
    out: String,
    scale: u32,
    clusters: Option<usize>,
    seed: u64,
    threads: usize,
}

/// A date means the end of that UTC day; an instant is itself.
fn parse_as_of(v: &str) -> Result<(DateTime<Utc>, Day), String> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let end = d.and_hms_opt(23, 59, 59).ok_or("bad date")?.and_utc();
        return Ok((end, day_of_date(d)));
    }
    let t = DateTime::parse_from_rfc3339(v)
        .map_err(|e| format!("--as-of {v:?} is neither YYYY-MM-DD nor RFC 3339: {e}"))?
        .with_timezone(&Utc);
    Ok((t, day_of_instant(t)))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut orders, mut as_of, mut out, mut scale, mut clusters, mut seed) = (None, None, None, 2, None, 1);
    let mut threads = 0;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--orders" => orders = Some(value("--orders")?),
            "--as-of" => as_of = Some(parse_as_of(&value("--as-of")?)?),
            "--out" => out = Some(value("--out")?),
            "--scale" => {
                let v = value("--scale")?;
                scale = v.parse().map_err(|_| format!("--scale must be a small integer, got {v:?}"))?;
            }
            "--clusters" => {
                let v = value("--clusters")?;
                clusters = Some(v.parse().map_err(|_| format!("--clusters must be an integer, got {v:?}"))?);
            }
            "--seed" => {
                let v = value("--seed")?;
                seed = v.parse().map_err(|_| format!("--seed must be an integer, got {v:?}"))?;
            }
            "--threads" => {
                let v = value("--threads")?;
                threads = v.parse().map_err(|_| format!("--threads must be an integer, got {v:?}"))?;
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Some(Args {
        orders: orders.ok_or("--orders is required")?,
        as_of: as_of.ok_or("--as-of is required")?,
        out: out.ok_or("--out is required")?,
        scale,
        clusters,
        seed,
        threads,
    }))
}

#[path = "support/cli.rs"]
mod cli;

fn main() -> ExitCode {
    cli::main("rfm", USAGE, parse_args, run)
}

fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let options = OrderCsvOptions {
        scale: args.scale,
        until: Some(args.as_of.0),
        threads: args.threads,
        ..OrderCsvOptions::default()
    };
    let csv = read_orders_path(&args.orders, options).map_err(|e| format!("{}: {e}", args.orders))?;
    let read_ms = started.elapsed().as_secs_f64() * 1e3;

    let t = Instant::now();
    let table = rfm_orders(&csv.orders, args.as_of.1).map_err(|e| e.to_string())?;
    let mut rows: Vec<u32> = (0..table.len() as u32).collect();
    let ids = &csv.orders.ids;
    ids.sort_natural_by(&mut rows, |&r| table.member[r as usize]);
    let rfm_ms = t.elapsed().as_secs_f64() * 1e3;

    let t = Instant::now();
    let mut out = File::create(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out))?;
    let write = |out: &mut File| -> std::io::Result<()> {
        // Rows are formatted straight into one buffer, handed to the file every 1 MiB.
        const FLUSH: usize = 1 << 20;
        let mut buf: Vec<u8> = Vec::with_capacity(FLUSH + 256);
        buf.extend_from_slice(b"member_id,recency,frequency,monetary,r_score,f_score,m_score\n");
        for &r in &rows {
            let i = r as usize;
            push_field(&mut buf, ids.bytes(table.member[i]));
            buf.push(b',');
            push_uint(&mut buf, u64::from(table.recency[i]));
            buf.push(b',');
            push_uint(&mut buf, u64::from(table.frequency[i]));
            buf.push(b',');
            push_decimal(&mut buf, table.monetary_minor[i], table.scale);
            buf.extend_from_slice(&[
                b',',
                b'0' + table.r_score[i],
                b',',
                b'0' + table.f_score[i],
                b',',
                b'0' + table.m_score[i],
                b'\n',
            ]);
            if buf.len() >= FLUSH {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    };
    write(&mut out).map_err(|e| format!("cannot write {}: {e}", args.out))?;
    let write_ms = t.elapsed().as_secs_f64() * 1e3;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut groups: BTreeMap<&str, u64> = BTreeMap::new();
    for i in 0..table.len() {
        *groups.entry(table.group(i).name()).or_default() += 1;
    }
    let clusters = match args.clusters {
        Some(k) => {
            let t = Instant::now();
            let c = value_clusters(&table, k, args.seed).map_err(|e| e.to_string())?;
            Some(json!({ "k": k, "seed": args.seed, "sizes": c.sizes, "iterations": c.iterations,
                         "ms": round1(t.elapsed().as_secs_f64() * 1e3) }))
        }
        None => None,
    };

    println!("orders read    {:>10}   ({} not paid, {} after as-of)", csv.rows, csv.not_paid, csv.after_cutoff);
    println!("orders counted {:>10}", csv.orders.len());
    println!("members        {:>10}", table.len());
    println!("as of          {}   (day {})", args.as_of.0.to_rfc3339(), args.as_of.1);
    println!("read {read_ms:.1} ms, score {rfm_ms:.1} ms, write {write_ms:.1} ms -> {}", args.out);
    let summary = json!({
        "members": table.len(),
        "orders": csv.orders.len(),
        "rows": csv.rows,
        "not_paid": csv.not_paid,
        "after_as_of": csv.after_cutoff,
        "as_of": args.as_of.0.to_rfc3339(),
        "groups": groups,
        "clusters": clusters,
        "read_ms": round1(read_ms),
        "rfm_ms": round1(rfm_ms),
        "write_ms": round1(write_ms),
        "elapsed_ms": round1(elapsed_ms),
    });
    println!("{summary}");
    Ok(())
}

fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}
