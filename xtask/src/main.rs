//! Project automation, reached as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `ci`: what `.ci/run` runs — the README test command, `cargo fmt --check`, clippy with
//!   warnings denied.
//!
//! It drives cargo through the `CARGO` environment variable and depends on no lsnn crate.

use anyhow::{bail, Context, Result};
use std::process::Command;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// The steps of CI, in order.
fn ci() -> Result<()> {
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run(test)?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some(other) => bail!("unknown xtask command {other:?}; expected one of: ci"),
        None => bail!("usage: cargo xtask <ci>"),
    }
}
