//! The command-line examples answer `--help`, a bad argument and a failed
//! run alike (`examples/support/cli.rs`): scripts and CI steps can tell a
//! mistyped command (status 2) from a run that failed (status 1).

mod support;

use std::process::{Command, Output};

/// Each example, and arguments that parse but name an input that does not exist.
const EXAMPLES: [(&str, &[&str]); 6] = [
    ("replay", &["--orders", "/nonexistent/orders.csv", "--memory"]),
    ("whatif", &["--orders", "/nonexistent/orders.csv", "--program", "examples/programs/default.toml"]),
    ("report", &["--db", "/nonexistent/crm.db", "--out", "/nonexistent/report.html"]),
    ("rfm", &["--orders", "/nonexistent/orders.csv", "--as-of", "2025-01-01", "--out", "/nonexistent/rfm.csv"]),
    ("clv", &["--orders", "/nonexistent/orders.csv", "--calibration-end", "1997-09-30"]),
    ("recommend", &["--items", "/nonexistent/lines.csv"]),
];

fn run(name: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let Output { status, stdout, stderr } = Command::new(support::example_exe(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run the {name} example: {e}"));
    (status.code(), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

#[test]
fn help_bad_arguments_and_failed_runs_get_their_own_status() {
    for (name, failing) in EXAMPLES {
        let (code, stdout, stderr) = run(name, &["--help"]);
        assert_eq!(code, Some(0), "{name} --help: {stderr}");
        assert!(stdout.contains("Usage") || stdout.contains("usage"), "{name} --help printed no usage: {stdout}");
        assert!(stderr.is_empty(), "{name} --help wrote to stderr: {stderr}");

        let (code, stdout, stderr) = run(name, &["--no-such-option"]);
        assert_eq!(code, Some(2), "{name} with a bad argument: {stderr}");
        assert!(stderr.starts_with(&format!("{name}: unexpected argument \"--no-such-option\"")), "{name}: {stderr}");
        assert!(stderr.to_lowercase().contains("usage"), "{name}: the usage follows the error: {stderr}");
        assert!(stdout.is_empty(), "{name} with a bad argument wrote to stdout: {stdout}");

        let (code, _, stderr) = run(name, failing);
        assert_eq!(code, Some(1), "{name} {failing:?}: {stderr}");
        assert!(stderr.starts_with(&format!("{name}: ")), "{name}: the error names the example: {stderr}");
        assert!(!stderr.to_lowercase().contains("usage"), "{name}: a failed run is not a usage error: {stderr}");
    }
}
