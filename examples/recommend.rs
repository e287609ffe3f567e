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
//! `hit_rate`, `popularity_hit_rate`, `elapsed_ms` (read + hold-out + fit + top k for all
//! members), and the details.

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

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let lines = read_order_lines_path(&args.items, args.options.threads)?;
    let read_ms = start.elapsed().as_secs_f64() * 1e3;

    // The last order of each member (latest placed_at, ties: greatest order_id in natural order),
    // and whether the member has another one.
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
    let held = |i: usize| {
        let m = lines.member[i] as usize;
        several[m] && lines.order[i] == last[m]
    };
    let interactions = Interactions::from_order_lines(
        &lines,
        InteractionOptions { purchase: args.purchase, ..Default::default() },
        |i| !held(i),
    )?;
    let holdout_ms = t.elapsed().as_secs_f64() * 1e3;

    let t = Instant::now();
    let model = Recommender::fit(&interactions, args.options)?;
    let fit_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let top = model.recommend_all(args.k);
    let batch_ms = t.elapsed().as_secs_f64() * 1e3;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1e3;

    // Scoring (not timed): held-out skus per member as items.
    let sku_item: Vec<u32> =
        (0..lines.skus.len() as u32).map(|s| model.item_of(lines.skus.get(s)).unwrap_or(u32::MAX)).collect();
    let mut hidden: Vec<Vec<u32>> = vec![Vec::new(); n_members];
    let mut train_lines = vec![0u64; model.skus()];
    for i in 0..lines.len() {
        let item = sku_item[lines.sku[i] as usize];
        if held(i) {
            hidden[lines.member[i] as usize].push(item);
        } else {
            train_lines[item as usize] += 1;
        }
    }
    let mut popular: Vec<u32> = (0..model.skus() as u32).collect();
    popular.sort_by(|&a, &b| train_lines[b as usize].cmp(&train_lines[a as usize]).then(a.cmp(&b)));
    popular.truncate(args.k);
    let (mut members, mut hits, mut pop_hits, mut from_popularity) = (0u64, 0u64, 0u64, 0u64);
    for (m, h) in hidden.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        members += 1;
        if top.of(m).any(|(item, _)| h.contains(&item)) {
            hits += 1;
        }
        if popular.iter().any(|item| h.contains(item)) {
            pop_hits += 1;
        }
    }
    for m in 0..top.members() {
        from_popularity += top.of(m).filter(|&(_, s)| s == 0.0).count() as u64;
    }
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
        "top {} for all {} members in {:.0} ms (read {:.0}, hold-out {:.0}, fit {:.0}, batch {:.0})",
        args.k, n_members, elapsed_ms, read_ms, holdout_ms, fit_ms, batch_ms
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
            "read_ms": read_ms.round() as u64,
            "holdout_ms": holdout_ms.round() as u64,
            "fit_ms": fit_ms.round() as u64,
            "batch_ms": batch_ms.round() as u64,
        })
    );
    Ok(())
}
