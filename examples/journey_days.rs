//! Per-day `run_due` timings over the journey bench population (the members
//! of `benches/journey.rs`), for the figures in README "Tiers, stages and
//! outreach at scale": the median ordinary day, the busiest ordinary day and
//! the monthly member day, which criterion's mean over consecutive days hides.
//! Each day also gets its CPU time (all threads), steadier than wall time on a
//! shared machine, and how much the resident memory grew during it.
//!
//! ```sh
//! JOURNEY_MEMBERS=100000 cargo run --release --example journey_days
//! JOURNEY_DAYS=40 cargo run --release --example journey_days   # 1,000,000 members, ~13 GB
//! ```
//!
//! Runs `run_due` at 12:00 UTC on each of the first `JOURNEY_DAYS` (40) days
//! after 1 January 2025 and prints one JSON line: per-day milliseconds and
//! members changed, the summary figures, and `fingerprint`, a hash of every
//! day's outcome (identical before and after a change that must not alter
//! behaviour), and the wall and CPU time of all days together.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use chrono::{Datelike, TimeZone, Utc};
use crm_core::Outcome;

#[path = "../benches/support/journey_population.rs"]
#[allow(dead_code)]
mod population;

/// mimalloc as the global allocator, as in the bench (README "Allocator").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n = population::members();
    let days: i64 = std::env::var("JOURNEY_DAYS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let engine = population::populated(n);
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).single().ok_or("valid instant")?;
    let mut hasher = DefaultHasher::new();
    let (cpu_before, wall_before) = (cpu_ms(), Instant::now());
    let (mut ordinary, mut member_days, mut per_day) = (Vec::new(), Vec::new(), Vec::new());
    let (mut member_day_cpu, mut member_day_growth) = (Vec::new(), Vec::new());
    for d in 1..=days {
        let now = start + chrono::Duration::days(d);
        let (t, cpu, rss) = (Instant::now(), cpu_ms(), resident_mb());
        let outcome = engine.run_due(now)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let day_cpu = cpu_ms().zip(cpu).map(|(after, before)| after - before);
        let growth = resident_mb().zip(rss).map(|(after, before)| after - before);
        serde_json::to_string(&outcome)?.hash(&mut hasher);
        let members = match outcome {
            Outcome::Due { members, .. } => members,
            _ => 0,
        };
        // The member day is the 18th in the programme's time zone (UTC+8: 20:00 there).
        let local = now.with_timezone(&engine.program().timezone);
        if local.day() == 18 {
            member_days.push(ms);
            member_day_cpu.push(day_cpu);
            member_day_growth.push(growth);
        } else {
            ordinary.push((ms, members));
        }
        per_day.push(serde_json::json!({"day": now.date_naive().to_string(), "ms": (ms * 10.0).round() / 10.0, "cpu_ms": day_cpu, "rss_growth_mb": growth, "members": members}));
    }
    let cpu_total = cpu_ms().zip(cpu_before).map(|(after, before)| after - before);
    let wall_total = wall_before.elapsed().as_secs_f64() * 1e3;
    let mut sorted: Vec<f64> = ordinary.iter().map(|(ms, _)| *ms).collect();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    let busiest = ordinary.iter().copied().max_by(|a, b| a.0.total_cmp(&b.0)).unwrap_or((0.0, 0));
    println!(
        "{}",
        serde_json::json!({
            "members": n, "days": days,
            "median_ordinary_ms": (median * 10.0).round() / 10.0,
            "busiest_ordinary_ms": (busiest.0 * 10.0).round() / 10.0, "busiest_ordinary_members": busiest.1,
            "member_day_ms": member_days.iter().map(|ms| (ms * 10.0).round() / 10.0).collect::<Vec<_>>(),
            "member_day_cpu_ms": member_day_cpu,
            "member_day_rss_growth_mb": member_day_growth,
            "total_ms": wall_total.round(), "total_cpu_ms": cpu_total,
            "fingerprint": format!("{:016x}", hasher.finish()),
            "per_day": per_day,
        })
    );
    // Tearing a million members down takes seconds and measures nothing.
    std::mem::forget(engine);
    Ok(())
}

/// Resident memory of the process in MiB, from `VmRSS` in `/proc/self/status` (Linux).
/// A day's growth is memory the kernel had to hand out (and zero) during
/// it: on these virtual machines a fresh page costs several microseconds
/// (README "Tiers, stages and outreach at scale"), so it is a cost of
/// its own, beside the CPU time.
fn resident_mb() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// CPU time of the whole process so far (all threads, user and system), in
/// milliseconds, from `/proc/self/stat` (Linux; 10 ms resolution). Beside the
/// wall time it shows how much of a day's work ran on other cores, and it
/// is less disturbed by other processes on a shared machine.
fn cpu_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10)
}
