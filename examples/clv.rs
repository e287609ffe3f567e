//! Fit the BG/NBD and Gamma-Gamma customer-value models and report their parameters.
//!
//! ```sh
//! # from an order history (the order CSV of the replay example):
//! python3 scripts/cdnow_to_csv.py ../shared/data/CDNOW_master.txt -o /tmp/cdnow.csv
//! cargo run --release --example clv -- --orders /tmp/cdnow.csv --calibration-end 1997-09-30 --period week
//! # from a customer summary (columns frequency,recency,T and optionally monetary_value or zbar):
//! cargo run --release --example clv -- --summary ../shared/data/cdnow_customers_summary.csv
//! ```
//!
//! Order-history form, as in the published CDNOW analysis: the orders placed up to and including
//! the calibration-end day (UTC) count; per customer, frequency = distinct purchase days after the
//! first, recency = days from the first to the last purchase day, T = days from the first purchase
//! day to the calibration end; with `--period week` recency and T are divided by 7. Gamma-Gamma
//! uses, for customers with frequency > 0, the mean of the day totals of their repeat purchase
//! days (the first day excluded). See `crm_core::analytics::summary`.
//!
//! Stdout: a short report whose LAST line is a JSON object with `r`, `alpha`, `a`, `b` and, when
//! amounts are known, `p`, `q`, `gamma`; `customers`, `fit_ms` (both fits), and, with amounts, the
//! mean 12-month CLV (1 % monthly discount, margin 1; see `crm_core::analytics::clv`).

use std::fs::File;
use std::process::ExitCode;
use std::time::Instant;

use chrono::{NaiveDate, NaiveTime};
use crm_core::analytics::csv::{read_orders_path, read_summary, OrderCsvOptions};
use crm_core::analytics::orders::day_of_date;
use crm_core::analytics::{clv, summarize, BgNbd, ClvOptions, GammaGamma, Period};
use serde_json::{json, Value};

/// mimalloc as the global allocator: the engine allocates many small strings
/// and maps per member, where glibc malloc spends half the time of a daily
/// `run_due` (README "Allocator"). `--features system-allocator` measures without it.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
usage: clv --orders FILE.csv --calibration-end YYYY-MM-DD [--period day|week]
       clv --summary FILE.csv [--period day|week]

  --orders FILE.csv         order CSV (member_id, placed_at, amount; status optional)
  --calibration-end DATE    last day (UTC, inclusive) of the calibration period
  --summary FILE.csv        one row per customer: frequency,recency,T[,monetary_value|zbar]
  --period day|week         time unit of recency and T (default day; for --summary it only sets
                            the CLV step: periods per month)
  -h, --help                this message

The last line of stdout is a JSON summary.";

enum Input {
    Orders { path: String, end: NaiveDate },
    Summary(String),
}

struct Args {
    input: Input,
    period: Period,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut orders, mut end, mut summary, mut period) = (None, None, None, Period::Day);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--orders" => orders = Some(value("--orders")?),
            "--summary" => summary = Some(value("--summary")?),
            "--calibration-end" => {
                let v = value("--calibration-end")?;
                end = Some(
                    NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                        .map_err(|e| format!("--calibration-end {v:?} is not YYYY-MM-DD: {e}"))?,
                );
            }
            "--period" => {
                period = match value("--period")?.as_str() {
                    "day" => Period::Day,
                    "week" => Period::Week,
                    v => return Err(format!("--period must be day or week, got {v:?}")),
                }
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let input = match (orders, summary) {
        (Some(path), None) => Input::Orders { path, end: end.ok_or("--orders needs --calibration-end")? },
        (None, Some(path)) => Input::Summary(path),
        (None, None) => return Err("one of --orders or --summary is required".into()),
        (Some(_), Some(_)) => return Err("--orders and --summary exclude each other".into()),
    };
    Ok(Some(Args { input, period }))
}

#[path = "support/cli.rs"]
mod cli;

fn main() -> ExitCode {
    cli::main("clv", USAGE, parse_args, run)
}

/// Customer rows for the fits: frequency, recency, T and (when known) the mean repeat value.
struct Rows {
    frequency: Vec<f64>,
    recency: Vec<f64>,
    t: Vec<f64>,
    monetary: Option<Vec<f64>>,
}

fn load(args: &Args) -> Result<(Rows, Value), String> {
    match &args.input {
        Input::Orders { path, end } => {
            let until = end.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default()).and_utc();
            let csv = read_orders_path(path, OrderCsvOptions { until: Some(until), ..OrderCsvOptions::default() })
                .map_err(|e| format!("{path}: {e}"))?;
            let s = summarize(&csv.orders, day_of_date(*end), args.period).map_err(|e| e.to_string())?;
            let info = json!({ "orders": csv.orders.len(), "calibration_end": end.to_string(),
                               "after_calibration": csv.after_cutoff });
            Ok((Rows { frequency: s.frequency, recency: s.recency, t: s.t, monetary: Some(s.monetary) }, info))
        }
        Input::Summary(path) => {
            let file = File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
            let s = read_summary(file).map_err(|e| format!("{path}: {e}"))?;
            Ok((Rows { frequency: s.frequency, recency: s.recency, t: s.t, monetary: s.monetary }, json!({})))
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let (rows, mut summary) = load(args)?;
    let started = Instant::now();
    let (bg, bg_report) = BgNbd::fit(&rows.frequency, &rows.recency, &rows.t).map_err(|e| e.to_string())?;
    let bg_ms = started.elapsed().as_secs_f64() * 1e3;
    println!("customers      {:>10}", rows.frequency.len());
    println!(
        "BG/NBD         r = {:.4}, alpha = {:.4}, a = {:.4}, b = {:.4}   (log-likelihood {:.2}, {bg_ms:.1} ms)",
        bg.r, bg.alpha, bg.a, bg.b, bg_report.log_likelihood
    );
    let mut gg_ms = 0.0;
    let s = summary.as_object_mut().ok_or("internal: summary is an object")?;
    s.insert("r".into(), json!(bg.r));
    s.insert("alpha".into(), json!(bg.alpha));
    s.insert("a".into(), json!(bg.a));
    s.insert("b".into(), json!(bg.b));
    s.insert("log_likelihood".into(), json!(bg_report.log_likelihood));
    s.insert("converged".into(), json!(bg_report.converged));
    if let Some(monetary) = &rows.monetary {
        // Repeat purchases worth nothing (free orders) carry no spend information for the
        // Gamma-Gamma model, whose values are positive: those customers are left out of its fit.
        let (freq, value): (Vec<f64>, Vec<f64>) =
            rows.frequency.iter().zip(monetary).filter(|(&x, &m)| x == 0.0 || m > 0.0).map(|(&x, &m)| (x, m)).unzip();
        let zero_value = rows.frequency.len() - freq.len();
        if zero_value > 0 {
            println!("Gamma-Gamma    {zero_value} customers left out: their repeat purchases total 0");
        }
        s.insert("zero_value_customers".into(), json!(zero_value));
        let t = Instant::now();
        let (gg, gg_report) = GammaGamma::fit(&freq, &value).map_err(|e| e.to_string())?;
        gg_ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "Gamma-Gamma    p = {:.4}, q = {:.4}, gamma = {:.4}   ({} repeat customers, {gg_ms:.1} ms)",
            gg.p, gg.q, gg.gamma, gg_report.customers
        );
        s.insert("p".into(), json!(gg.p));
        s.insert("q".into(), json!(gg.q));
        s.insert("gamma".into(), json!(gg.gamma));
        s.insert("repeat_customers".into(), json!(gg_report.customers));
        s.insert("converged".into(), json!(bg_report.converged && gg_report.converged));
        if gg.q > 1.0 {
            let options = ClvOptions { periods_per_month: args.period.per_month(), ..ClvOptions::default() };
            let mut total = 0.0;
            for (i, &zbar) in monetary.iter().enumerate() {
                let (x, t_x, t) = (rows.frequency[i], rows.recency[i], rows.t[i]);
                total += clv(&bg, &gg, x, t_x, t, zbar, options).map_err(|e| format!("customer {i}: {e}"))?;
            }
            let mean = total / rows.frequency.len() as f64;
            println!("mean CLV       {mean:.2}   (12 months, 1 % monthly discount, margin 1)");
            s.insert("mean_clv_12m".into(), json!(mean));
        }
    }
    let mean_alive: f64 =
        (0..rows.frequency.len()).map(|i| bg.p_alive(rows.frequency[i], rows.recency[i], rows.t[i])).sum::<f64>()
            / rows.frequency.len() as f64;
    println!("mean P(alive)  {mean_alive:.4}");
    s.insert("mean_p_alive".into(), json!(mean_alive));
    s.insert("period".into(), json!(if args.period == Period::Week { "week" } else { "day" }));
    s.insert("customers".into(), json!(rows.frequency.len()));
    s.insert("bgnbd_fit_ms".into(), json!(round2(bg_ms)));
    s.insert("gamma_gamma_fit_ms".into(), json!(round2(gg_ms)));
    s.insert("fit_ms".into(), json!(round2(bg_ms + gg_ms)));
    println!("{summary}");
    Ok(())
}

fn round2(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}
