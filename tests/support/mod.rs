//! Shared by the tests that run the examples as programs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// The example `name` that `cargo test` built beside the running test
/// binary, built again here when it is missing or older than any source it
/// is made from.
///
/// Why: `cargo test --workspace` builds the examples before it runs the
/// tests, but `cargo test --test whatif_example` alone does not, and a test
/// that ran the binary of an earlier checkout would pass (or fail) on code
/// that is no longer there. The build asks for this test's own profile and
/// features, so it is a no-op after a whole `cargo test` and never swaps
/// the binary the outer run built for one of other features.
pub fn example_exe(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let exe = dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if modified(&exe).is_none_or(|built| newest_source().is_some_and(|source| source > built)) {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "--example", name]);
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let features: Vec<&str> =
            [("postgres", cfg!(feature = "postgres")), ("system-allocator", cfg!(feature = "system-allocator"))]
                .into_iter()
                .filter_map(|(f, on)| on.then_some(f))
                .collect();
        if !features.is_empty() {
            cargo.args(["--features", &features.join(",")]);
        }
        let status = cargo.status().expect("run cargo");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    exe
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The latest change to what the examples are built from: the examples,
/// the core library's sources and the manifests.
fn newest_source() -> Option<SystemTime> {
    fn walk(path: &Path, newest: &mut Option<SystemTime>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if path.extension().is_some_and(|e| e == "rs" || e == "toml" || e == "lock") {
            *newest = (*newest).max(modified(path));
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut newest = None;
    for part in ["examples", "crm-core/src", "crm-core/Cargo.toml", "Cargo.toml", "Cargo.lock"] {
        walk(&root.join(part), &mut newest);
    }
    newest
}
