//! Shared by the tests that run the examples as programs.

use std::path::PathBuf;
use std::process::Command;

/// The example `name` that `cargo test` built beside the running test
/// binary (built here when only that test was asked for).
pub fn example_exe(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let exe = dir.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !exe.exists() {
        let status = Command::new(env!("CARGO")).args(["build", "--example", name]).status().expect("run cargo");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    exe
}
