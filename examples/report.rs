//! The visual report of a loyalty database: one self-contained HTML file.
//!
//! ```sh
//! cargo run --release --example demo        # writes <tmp>/crm-demo/demo.db
//! cargo run --release --example report -- --db /tmp/crm-demo/demo.db --out report.html
//! cargo run --release --example report -- --db /tmp/crm-demo/demo.db --out report-zh.html --lang zh
//! ```
//!
//! The page (`crm_core::report`) shows the headline figures (members, active share,
//! repurchase rate, outstanding liability), the tier distribution, lifecycle stages and
//! their flows between two dates, the points liability with what expires within 30/60/90
//! days, cohort retention, the RFM grid, single- versus multi-channel buyers and, with
//! `--whatif`, a what-if comparison. Charts are inline SVG; the file loads nothing.
//!
//! The database does not store the programme, so it is read from `--program` (default:
//! `examples/programs/demo.toml`, the demo's). `--at` defaults to the end of the local day of
//! the latest paid order in the store (for the demo: 1998-07-01T00:00Z, the instant of its
//! summary); the stage flows run from 12 months before `--to` (default `--at`) to `--to`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use crm_core::report::{comparison_from_json, render_html, Lang, PageOptions};
use crm_core::{Engine, Program, SqliteStore, Store};

const USAGE: &str = "\
usage: report --db PATH --out FILE [--program FILE] [--lang en|zh] [--at DATE]
              [--from DATE] [--to DATE] [--whatif comparison.json]

  --db PATH        the SQLite database of the engine (e.g. <tmp>/crm-demo/demo.db)
  --out FILE       the HTML file to write
  --program FILE   the programme the database was written under (TOML or JSON);
                   default examples/programs/demo.toml
  --lang en|zh     the page's language (default en)
  --at DATE        figures as of this instant: RFC 3339, or YYYY-MM-DD for the end of that
                   day in the programme's zone; default the end of the day of the latest order
  --from, --to     the stage-flow window (same formats); default the 12 months up to --at
  --whatif FILE    a what-if comparison (JSON; the last line of the whatif example's output)
  -h, --help       this message";

#[derive(Default)]
struct Args {
    db: Option<PathBuf>,
    out: Option<PathBuf>,
    program: Option<PathBuf>,
    lang: Lang,
    at: Option<String>,
    from: Option<String>,
    to: Option<String>,
    whatif: Option<PathBuf>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args::default();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--db" => a.db = Some(value("--db")?.into()),
            "--out" => a.out = Some(value("--out")?.into()),
            "--program" => a.program = Some(value("--program")?.into()),
            "--lang" => a.lang = value("--lang")?.parse().map_err(|e: crm_core::CrmError| e.to_string())?,
            "--at" => a.at = Some(value("--at")?),
            "--from" => a.from = Some(value("--from")?),
            "--to" => a.to = Some(value("--to")?),
            "--whatif" => a.whatif = Some(value("--whatif")?.into()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    if a.db.is_none() {
        return Err("--db is required".into());
    }
    if a.out.is_none() {
        return Err("--out is required".into());
    }
    Ok(Some(a))
}

/// RFC 3339, or a date meaning the end of that day (the first instant of the next) in `program`'s zone.
fn parse_instant(name: &str, v: &str, program: &Program) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("{name} {v:?}: not RFC 3339 nor a date"))?;
    let next = d.succ_opt().ok_or_else(|| format!("{name} {v:?}: out of range"))?;
    Ok(crm_core::time::start_of_day(program.timezone, next))
}

#[path = "support/cli.rs"]
mod cli;

fn main() -> ExitCode {
    cli::main("report", USAGE, parse_args, run)
}

fn run(args: &Args) -> Result<(), String> {
    let (Some(db), Some(out)) = (&args.db, &args.out) else { return Err("--db and --out are required".into()) };
    let program_path = args
        .program
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/programs/demo.toml"));
    let program = Program::from_path(&program_path).map_err(|e| format!("{}: {e}", program_path.display()))?;
    if !db.exists() {
        return Err(format!("{} does not exist (run `cargo run --release --example demo` first?)", db.display()));
    }
    let engine = Engine::new(program, SqliteStore::open(db).map_err(|e| format!("{}: {e}", db.display()))?);
    let program = engine.program();
    let at = match &args.at {
        Some(v) => parse_instant("--at", v, program)?,
        None => end_of_latest_order_day(&engine)?,
    };
    let parse = |name: &str, v: &Option<String>| v.as_deref().map(|v| parse_instant(name, v, program)).transpose();
    let options = PageOptions { at, flows_from: parse("--from", &args.from)?, flows_to: parse("--to", &args.to)? };
    let whatif = match &args.whatif {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Some(comparison_from_json(&text).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let page = engine.report_page(&options).map_err(|e| e.to_string())?;
    let html = render_html(&page, args.lang, whatif.as_ref());
    std::fs::write(out, &html).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let r = &page.report;
    println!(
        "report: {} ({} bytes, {}) at {}: {} members, active share {}, repurchase rate {}, outstanding {} points ({} {})",
        out.display(),
        html.len(),
        match args.lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        },
        at.to_rfc3339(),
        r.members,
        page.active_share,
        r.repurchase_rate,
        r.liability.outstanding,
        r.liability.value.round_dp(2),
        page.currency
    );
    Ok(())
}

/// The first instant after the local day of the latest paid order (an empty store: now is
/// not read; the epoch makes an empty page).
fn end_of_latest_order_day<S: Store>(engine: &Engine<S>) -> Result<DateTime<Utc>, String> {
    let mut latest: Option<DateTime<Utc>> = None;
    engine
        .store()
        .inspect_all(&mut |st| {
            if let Some(t) = st.order_times().last() {
                latest = latest.max(Some(*t));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    let tz = engine.program().timezone;
    let Some(t) = latest else { return Ok(DateTime::UNIX_EPOCH) };
    let day = crm_core::time::local_date(tz, t).succ_opt().ok_or("the latest order is out of range")?;
    Ok(crm_core::time::start_of_day(tz, day))
}
