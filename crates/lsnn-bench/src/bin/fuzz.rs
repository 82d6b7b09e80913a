//! `lsnn-fuzz TARGET N [--seed S]`: a fuzz campaign without coverage feedback (see
//! `lsnn_bench::fuzz::campaign`) of N mutated inputs after the seeds, on one of `config`,
//! `checkpoint`, `text`. Inputs that panic or get an oversized message are kept under
//! `target/fuzz-crashes/`; the exit status is 1 when there are any. `cargo xtask fuzz` runs it.

use anyhow::{bail, Context, Result};
use lsnn_bench::fuzz::campaign::campaign;
use lsnn_bench::fuzz::Target;
use std::path::Path;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: lsnn-fuzz <config | checkpoint | text | all> N [--seed S]";
    let targets: Vec<Target> = match args.first().map(String::as_str) {
        Some("all") => Target::ALL.to_vec(),
        Some(name) => vec![Target::from_name(name).with_context(|| format!("{name:?}: {usage}"))?],
        None => bail!(usage),
    };
    let n: u64 = args
        .get(1)
        .context(usage)?
        .parse()
        .with_context(|| format!("N: {usage}"))?;
    let seed: u64 = match args.iter().position(|a| a == "--seed") {
        Some(i) => args.get(i + 1).context(usage)?.parse().context(usage)?,
        None => 1,
    };
    // Panics are caught and counted; their messages still go to stderr through the default hook.
    let mut clean = true;
    println!(
        "{:<11} {:>10} {:>10} {:>10} {:>7} {:>9} {:>12} {:>9}",
        "target", "inputs", "accepted", "refused", "panics", "too long", "longest msg", "inputs/s"
    );
    for t in targets {
        let r = campaign(t, n, seed, Some(Path::new("target/fuzz-crashes")))?;
        println!(
            "{:<11} {:>10} {:>10} {:>10} {:>7} {:>9} {:>12} {:>9.0}",
            t.name(),
            r.inputs,
            r.accepted,
            r.refused,
            r.panics.len(),
            r.oversized.len(),
            r.longest_message,
            r.inputs as f64 / r.seconds.max(1e-9)
        );
        for p in &r.panics {
            println!("  panic: {p}");
        }
        for (len, p) in &r.oversized {
            println!("  a {len}-byte message: {p}");
        }
        clean &= r.clean();
    }
    if !clean {
        std::process::exit(1);
    }
    Ok(())
}
