//! `examples/whatif.rs` and `examples/replay.rs` end to end: the orders CSV
//! is parsed on every core and neither example joins the parts, so the
//! orders kept and the line numbers of the lines that do not parse must not
//! depend on where the file was cut.

mod support;

use std::process::Command;

/// Orders that do not parse, spread over the file so that some fall on
/// either side of wherever it is cut, at most as many as the example shows.
const BAD: [u32; 5] = [100, 1_199, 1_500, 1_501, 2_950];

/// A byte-order mark and blank lines before the header, CRLF endings, a
/// member id that is not ASCII, quoted fields (one holding a comma and a
/// doubled quote), blank lines between orders, and the orders [`BAD`] that
/// do not parse (a bad date, a bad amount, an unterminated quote). Returns the CSV, the orders that parse, the
/// whole points they earn under the default programme, and the numbers of
/// the lines that do not.
fn history() -> (String, u64, i64, Vec<usize>) {
    let mut csv = String::from("\u{feff}\r\n\nmember_id,order_id,placed_at,amount,channel\r\n");
    let mut line = 3; // the header's
    let (mut good, mut points, mut bad) = (0, 0, Vec::new());
    for n in 0..3_000u32 {
        if n % 250 == 0 {
            csv.push('\n');
            line += 1;
        }
        line += 1;
        let member = if n % 11 == 0 { format!("mé{:03}", n % 40) } else { format!("m{:03}", n % 40) };
        let cents = 100 + (n * 7_919) % 25_000;
        let day = format!("2024-{:02}-{:02}T10:00:00Z", 1 + n % 12, 1 + n % 28);
        let row = if !BAD.contains(&n) {
            good += 1;
            points += i64::from(cents / 100);
            match n % 14 {
                // Quoted fields (RFC 4180), one with a comma and a doubled quote.
                0 => format!("\"x,\"\"{member}\"\"\",\"o{n}\",{day},\"{}.{:02}\",web", cents / 100, cents % 100),
                7 => format!("\"{member}\",o{n},\"{day}\",{}.{:02},\"web\"", cents / 100, cents % 100),
                _ => format!("{member},o{n},{day},{}.{:02},web", cents / 100, cents % 100),
            }
        } else {
            bad.push(line);
            match n % 3 {
                0 => format!("{member},o{n},not-a-date,{}.{:02},web", cents / 100, cents % 100),
                1 => format!("{member},o{n},{day},12x,web"),
                _ => format!("\"{member},o{n},{day},1.00,web"),
            }
        };
        csv.push_str(&row);
        csv.push_str(if n % 2 == 0 { "\r\n" } else { "\n" });
    }
    (csv, good, points, bad)
}

#[test]
fn orders_and_bad_line_numbers_do_not_depend_on_the_cut() {
    let dir = std::env::temp_dir().join(format!("crm-whatif-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, good, points, bad) = history();
    let orders = dir.join("orders.csv");
    std::fs::write(&orders, csv).unwrap();
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/programs/default.toml");
    let orders = orders.to_str().unwrap();
    let (summary, shown) = run("whatif", &["--orders", orders, "--program", program]);
    assert_eq!(summary["history"]["orders"], good);
    assert_eq!(summary["programmes"][0]["points_issued"], points);
    assert_eq!(shown, bad, "{summary}");

    // The replay example reads the same parts where they lie.
    let (summary, shown) = run("replay", &["--orders", orders, "--memory", "--batch", "64"]);
    assert_eq!(summary["orders"], good);
    assert_eq!(summary["rejected"], bad.len());
    assert_eq!(summary["points_issued"], points);
    assert_eq!(shown, bad, "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run example `name`: its summary (the JSON last line of stdout) and the
/// numbers of the lines it reported it could not parse (`NAME: line N: …`
/// on stderr).
fn run(name: &str, args: &[&str]) -> (serde_json::Value, Vec<usize>) {
    let out = Command::new(support::example_exe(name)).args(args).output().expect("run the example");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name} failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary = serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("the last line is JSON");
    let prefix = format!("{name}: line ");
    let shown = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|l| l.split(':').next().unwrap().parse().unwrap())
        .collect();
    (summary, shown)
}
