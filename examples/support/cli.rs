//! The `main` of the command-line examples (`replay`, `whatif`, `report`,
//! `rfm`, `clv`, `recommend`): one place decides what `--help`, a bad
//! argument and a failed run print and which exit status each gets, so the
//! examples behave alike in scripts and in `tests/*_example.rs`.
//!
//! - `--help` (`parse` returns `Ok(None)`): the usage on stdout, status 0;
//! - a bad argument: `<name>: <error>`, a blank line and the usage on
//!   stderr, status 2;
//! - a failed run: `<name>: <error>` on stderr, status 1.

use std::process::ExitCode;

/// Parse the process's arguments with `parse`, then `run` them.
pub fn main<A, E: std::fmt::Display>(
    name: &str,
    usage: &str,
    parse: impl FnOnce(std::iter::Skip<std::env::Args>) -> Result<Option<A>, String>,
    run: impl FnOnce(&A) -> Result<(), E>,
) -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{name}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
