//! Item-to-item recommendations for every member of an order-line CSV, checked on a
//! hold-out: each member's last order is hidden, the model is fitted on the rest, and we
//! count how often a hidden sku is among the member's top k.
//!
//! ```sh
//! python3 benches/gen_order_lines.py --out benches/data/order_lines_10000000.csv
//! cargo run --release --example recommend -- --items benches/data/order_lines_10000000.csv --k 10
//! ```
//!
//! Input: `member_id,order_id,placed_at,sku,category,qty,price` (see
//! `crm_core::recommend::lines`; `price` is not used).
//!
//! Hold-out: for each member with at least two orders, the last order (latest `placed_at`,
//! ties: greatest `order_id`, numerically when every order id is an integer, else as text)
//! is held out; the model is fitted on all the other lines (of every member) and then
//! recommends `k` skus to every member (the timed batch). `hit_rate` is the share of held-out members with at least one held-out sku in
//! their top k; `popularity_hit_rate` the same for the `k` skus with the most training
//! lines (ties: smaller sku, in natural order), the same list for everyone.
//!
//! Stdout: a short summary whose LAST line is a JSON object with `members` (held out),
//! `hit_rate`, `popularity_hit_rate`, `elapsed_ms` (parse + split + fit + top k for all
//! members + scoring), the phases (`parse_ms`, `split_ms`, `fit_ms`, `recommend_ms`,
//! `score_ms`), the CPU time of the process (`cpu_ms`, `cpu_phase_ms`: on a shared machine
//! the wall time says as much about the other processes), and the details.

use std::process::ExitCode;
use std::time::Instant;

use crm_core::recommend::{
    read_order_lines_path, InteractionOptions, Interactions, PurchaseWeight, RecommendOptions, Recommender,
};
use serde_json::json;

const USAGE: &str = "\
usage: recommend --items FILE.csv [--k 10] [--neighbours 20] [--include-bought]
                 [--one-per-category] [--purchase binary|quantity] [--power P] [--threads N]

  --items FILE.csv      order lines: member_id,order_id,placed_at,sku,category,qty,price
  --k K                 list length (default 10)
  --neighbours M        similar skus kept per sku (default 20)
  --include-bought      also recommend skus the member already bought (default: left out)
  --one-per-category    at most one sku per category in a list
  --purchase MODE       binary (default) or quantity
  --power P             similarities raised to P when scoring (default 2; 1: plain cosine)
  --threads N           threads (default 0: every core)
  -h, --help            this message

The last line of stdout is a JSON summary.";

struct Args {
    items: String,
    k: usize,
    options: RecommendOptions,
    purchase: PurchaseWeight,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut items = None;
    let mut k = 10;
    let mut options = RecommendOptions::default();
    let mut purchase = PurchaseWeight::Binary;
    let int = |name: &str, v: String| v.parse::<usize>().map_err(|_| format!("{name} must be an integer, got {v:?}"));
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--items" => items = Some(value("--items")?),
            "--k" => k = int("--k", value("--k")?)?,
            "--neighbours" => options.neighbours = int("--neighbours", value("--neighbours")?)?,
            "--threads" => options.threads = int("--threads", value("--threads")?)?,
            "--power" => options.power = int("--power", value("--power")?)? as u32,
            "--include-bought" => options.exclude_bought = false,
            "--one-per-category" => options.one_per_category = true,
            "--purchase" => purchase = PurchaseWeight::parse(&value("--purchase")?).map_err(|e| e.to_string())?,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Some(Args { items: items.ok_or("--items is required")?, k, options, purchase }))
}

#[path = "support/cli.rs"]
mod cli;

fn main() -> ExitCode {
    cli::main("recommend", USAGE, parse_args, run)
}

/// CPU time of the whole process so far (user + system, all threads) in ms, from
/// `/proc/self/stat` (Linux; 0 elsewhere). On a shared machine the wall time of a phase
/// depends on what else runs; its CPU time much less.
fn cpu_ms() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0 };
    // Fields after the command name (in parentheses, may hold spaces): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let ticks: u64 = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks * 10 // USER_HZ is 100 on Linux
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut cpu = vec![cpu_ms()];
    let lines = read_order_lines_path(&args.items, args.options.threads)?;
    let parse_ms = start.elapsed().as_secs_f64() * 1e3;
    cpu.push(cpu_ms());

    // The last order of each member (latest placed_at, ties: greatest order_id in natural order),
    // and whether the member has another one. A line of the same order and instant as the
    // line before it changes nothing: skipped (the lines of an order usually come together).
    let t = Instant::now();
    let n_members = lines.members.len();
    const NONE: u32 = u32::MAX;
    let numeric = lines.orders.all_numeric();
    let mut last = vec![NONE; n_members];
    let mut last_at = vec![i64::MIN; n_members];
    let mut first = vec![NONE; n_members];
    let mut several = vec![false; n_members];
    for i in 0..lines.len() {
        let (m, o, at) = (lines.member[i] as usize, lines.order[i], lines.placed_at[i]);
        if i > 0 && o == lines.order[i - 1] && m == lines.member[i - 1] as usize && at == lines.placed_at[i - 1] {
            continue;
        }
        if first[m] == NONE {
            first[m] = o;
        } else if first[m] != o {
            several[m] = true;
        }
        let later =
            last[m] == NONE || at.cmp(&last_at[m]).then_with(|| lines.orders.compare(o, last[m], numeric)).is_gt();
        if later {
            last[m] = o;
            last_at[m] = at;
        }
    }
    drop((first, last_at));
    let held: Vec<bool> = (0..lines.len())
        .map(|i| {
            let m = lines.member[i] as usize;
            several[m] && lines.order[i] == last[m]
        })
        .collect();
    let interactions = Interactions::from_order_lines(
        &lines,
        InteractionOptions { purchase: args.purchase, ..Default::default() },
        |i| !held[i],
    )?;
    let split_ms = t.elapsed().as_secs_f64() * 1e3;
    cpu.push(cpu_ms());

    let t = Instant::now();
    let model = Recommender::fit(&interactions, args.options)?;
    drop(interactions);
    let fit_ms = t.elapsed().as_secs_f64() * 1e3;
    cpu.push(cpu_ms());
    let t = Instant::now();
    let top = model.recommend_all(args.k);
    let recommend_ms = t.elapsed().as_secs_f64() * 1e3;
    cpu.push(cpu_ms());

    // Scoring: a held-out member scores a hit when one of their held-out skus is in
    // their list (and a popularity hit when it is among the k skus with most training lines).
    let t = Instant::now();
    let sku_item: Vec<u32> =
        (0..lines.skus.len() as u32).map(|s| model.item_of(lines.skus.get(s)).unwrap_or(u32::MAX)).collect();
    let mut train_lines = vec![0u64; model.skus()];
    for i in (0..lines.len()).filter(|&i| !held[i]) {
        train_lines[sku_item[lines.sku[i] as usize] as usize] += 1;
    }
    let mut popular: Vec<u32> = (0..model.skus() as u32).collect();
    popular.sort_unstable_by(|&a, &b| train_lines[b as usize].cmp(&train_lines[a as usize]).then(a.cmp(&b)));
    popular.truncate(args.k);
    const HIT: u8 = 1;
    const POP_HIT: u8 = 2;
    let mut hit = vec![0u8; n_members];
    for i in (0..lines.len()).filter(|&i| held[i]) {
        let (m, item) = (lines.member[i] as usize, sku_item[lines.sku[i] as usize]);
        if top.of(m).any(|(it, _)| it == item) {
            hit[m] |= HIT;
        }
        if popular.contains(&item) {
            hit[m] |= POP_HIT;
        }
    }
    let members = several.iter().filter(|&&s| s).count() as u64;
    let hits = hit.iter().filter(|&&h| h & HIT != 0).count() as u64;
    let pop_hits = hit.iter().filter(|&&h| h & POP_HIT != 0).count() as u64;
    let from_popularity = top.scores.iter().filter(|&&s| s == 0.0).count() as u64;
    let score_ms = t.elapsed().as_secs_f64() * 1e3;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
    cpu.push(cpu_ms());
    let cpu_of: Vec<u64> = cpu.windows(2).map(|w| w[1] - w[0]).collect();

    let rate = |h: u64| if members == 0 { 0.0 } else { (h as f64 / members as f64 * 1e4).round() / 1e4 };
    let train: u64 = train_lines.iter().sum();
    println!(
        "{} order lines ({} for training), {} members, {} skus; held out the last order of {members} members",
        lines.len(),
        train,
        n_members,
        model.skus()
    );
    println!(
        "top {} for all {} members in {:.0} ms (parse {:.0}, split {:.0}, fit {:.0}, recommend {:.0}, score {:.0})",
        args.k, n_members, elapsed_ms, parse_ms, split_ms, fit_ms, recommend_ms, score_ms
    );
    println!(
        "CPU time {} ms (parse {}, split {}, fit {}, recommend {}, score {})",
        cpu[cpu.len() - 1] - cpu[0],
        cpu_of[0],
        cpu_of[1],
        cpu_of[2],
        cpu_of[3],
        cpu_of[4]
    );
    println!(
        "hit rate {:.4} (item-to-item cosine, {} neighbours) vs {:.4} (the {} most popular skus)",
        rate(hits),
        args.options.neighbours,
        rate(pop_hits),
        args.k
    );
    println!(
        "{}",
        json!({
            "members": members,
            "hit_rate": rate(hits),
            "popularity_hit_rate": rate(pop_hits),
            "elapsed_ms": elapsed_ms.round() as u64,
            "k": args.k,
            "lines": lines.len(),
            "train_lines": train,
            "all_members": n_members,
            "skus": model.skus(),
            "neighbours": args.options.neighbours,
            "power": args.options.power,
            "exclude_bought": args.options.exclude_bought,
            "one_per_category": args.options.one_per_category,
            "filled_from_popularity": from_popularity,
            "parse_ms": parse_ms.round() as u64,
            "split_ms": split_ms.round() as u64,
            "fit_ms": fit_ms.round() as u64,
            "recommend_ms": recommend_ms.round() as u64,
            "score_ms": score_ms.round() as u64,
            "cpu_ms": cpu[cpu.len() - 1] - cpu[0],
            "cpu_phase_ms": {"parse": cpu_of[0], "split": cpu_of[1], "fit": cpu_of[2], "recommend": cpu_of[3], "score": cpu_of[4]},
        })
    );
    Ok(())
}
