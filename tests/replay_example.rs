//! `examples/replay.rs` end to end: the same CSV imported on one thread and
//! on several, into memory and into a SQLite file, gives the same figures,
//! and the points issued are the sum of each order's whole units.

mod support;

use std::process::Command;

/// 400 orders of 90 members over 20 months (so some points expire by the
/// last order), amounts with and without cents, in member order like CDNOW.
fn history() -> (String, i64) {
    let mut csv = String::from("member_id,order_id,placed_at,amount,channel\n");
    let mut floor_sum = 0;
    for n in 0..400u32 {
        let member = n % 90;
        let month = 1 + (n * 7) % 20;
        let (year, month) = (1997 + (month - 1) / 12, 1 + (month - 1) % 12);
        let cents = 100 + (n * 7_919) % 25_000;
        floor_sum += i64::from(cents / 100);
        let channel = if n % 3 == 0 { "store" } else { "web" };
        csv.push_str(&format!(
            "m{member:03},o{n},{year}-{month:02}-{:02}T10:00:00Z,{}.{:02},{channel}\n",
            1 + n % 28,
            cents / 100,
            cents % 100
        ));
    }
    (csv, floor_sum)
}

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(support::example_exe("replay")).args(args).output().expect("run the replay example");
    assert!(out.status.success(), "replay {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("the last line is JSON")
}

#[test]
fn one_thread_and_several_memory_and_sqlite_give_the_same_figures() {
    let dir = std::env::temp_dir().join(format!("crm-replay-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, floor_sum) = history();
    let orders = dir.join("orders.csv");
    std::fs::write(&orders, csv).unwrap();
    let orders = orders.to_str().unwrap();
    let db = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let runs = [
        run(&["--orders", orders, "--memory", "--threads", "1", "--batch", "50"]),
        run(&["--orders", orders, "--memory", "--threads", "3", "--batch", "50"]),
        run(&["--orders", orders, "--db", &db("one.db"), "--threads", "1", "--batch", "50"]),
        run(&["--orders", orders, "--db", &db("two.db"), "--threads", "2", "--batch", "50", "--sync", "normal"]),
    ];
    let figures = |j: &serde_json::Value| {
        ["members", "orders", "rejected", "points_issued", "points_expired", "points_outstanding", "liability_value"]
            .map(|k| j[k].to_string())
    };
    let first = &runs[0];
    assert_eq!(first["orders"], 400);
    assert_eq!(first["members"], 90);
    assert_eq!(first["points_issued"].as_i64(), Some(floor_sum));
    let (expired, outstanding) =
        (first["points_expired"].as_i64().unwrap(), first["points_outstanding"].as_i64().unwrap());
    assert!(expired > 0 && outstanding > 0, "{first}");
    assert_eq!(expired + outstanding, floor_sum);
    for r in &runs[1..] {
        assert_eq!(figures(r), figures(first), "{r} vs {first}");
    }
    assert_eq!(runs[1]["threads"], 3);
    // A SQLite run reports closing its store (the last checkpoint) apart from `elapsed_ms`.
    assert!(runs[2]["close_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{}", runs[2]);
    // Importing the same file again changes nothing (idempotent by order id).
    let again = run(&["--orders", orders, "--db", &db("two.db"), "--threads", "2", "--batch", "50"]);
    assert_eq!(again["points_outstanding"], first["points_outstanding"]);
    assert_eq!(again["members"], first["members"]);
    let _ = std::fs::remove_dir_all(&dir);
}
