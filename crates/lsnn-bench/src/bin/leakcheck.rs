//! `lsnn-leakcheck`: runs the leak regression cases, each in its own child process.
//!
//! ```text
//! lsnn-leakcheck list
//! lsnn-leakcheck run NAME          one case in this process; prints its JSON row
//! lsnn-leakcheck all [--case NAME] [--out FILE] [--long] [--device cuda[:N]]
//! ```
//! `all` spawns `run` per case with one compute thread, prints the table, writes the report
//! (`{"ok", "cases": [...], "components": [...]}`) and exits non-zero if a case leaked or a
//! control went uncaught. With `--device cuda` the cases whose work is on the device run there,
//! measured by the CUDA driver's used memory (`lsnn_memory::CudaProbe`), their controls leaking
//! 2 MiB of device memory per iteration; the host-side cases (checkpoint, trainer epoch) and
//! the component table stay with the host run.

use anyhow::{bail, Context, Result};
use lsnn_bench::{cases, components};
use lsnn_memory::leak::report;
use lsnn_memory::leak::runner::{self, CaseReport};
use lsnn_memory::CountingAlloc;
use std::path::PathBuf;
use std::process::Command;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

fn run_child(name: &str) -> Result<CaseReport> {
    run_child_args(&["run", name], name)
}

/// Runs this binary with `args` in a child process with one compute thread; parses its row.
fn run_child_args(args: &[&str], name: &str) -> Result<CaseReport> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(args);
    Ok(runner::run_in_child(cmd, name)?)
}

fn soak(epochs: usize) -> Result<CaseReport> {
    // The Python original's own recommendation: at least 100 epochs of a small model.
    let mut case = cases::by_name("trainer-epoch").expect("the epoch case exists");
    case.config.iterations = epochs;
    case.config.warmup = 5;
    let mut r = runner::run_in_process(&case)?;
    r.name = format!("soak/{epochs}-epochs");
    Ok(r)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("list") => {
            for c in cases::all() {
                println!("{:<42} {:?}  {}", c.name, c.kind, c.description);
            }
            Ok(())
        }
        Some("run") => {
            let name = args.get(1).context("run NAME")?;
            let case = cases::by_name(name)
                .with_context(|| format!("no case named {name}; see `list`"))?;
            let r = runner::run_in_process(&case)?;
            println!("{}", runner::report_line(&r));
            Ok(())
        }
        Some("soak") => {
            let r = soak(args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(100))?;
            println!("{}", runner::report_line(&r));
            Ok(())
        }
        Some("all") => all(&args[1..]),
        _ => {
            bail!("usage: lsnn-leakcheck list | run NAME | all [--case NAME] [--out FILE] [--long] [--device cuda[:N]]")
        }
    }
}

fn all(args: &[String]) -> Result<()> {
    let mut only = None;
    let mut out = PathBuf::from("target/leakcheck/report.json");
    let mut long = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--case" => {
                only = Some(args.get(i + 1).context("--case NAME")?.clone());
                i += 1;
            }
            "--out" => {
                out = PathBuf::from(args.get(i + 1).context("--out FILE")?);
                i += 1;
            }
            "--long" => long = true,
            "--device" => {
                let d = args.get(i + 1).context("--device cpu|cuda|cuda:N")?;
                // The children inherit it; `leak_device` checks it.
                std::env::set_var(runner::LEAK_DEVICE, d);
                runner::leak_device()?;
                i += 1;
            }
            other => bail!("unknown argument {other}"),
        }
        i += 1;
    }
    let on_device = !runner::leak_device()?.is_cpu();
    let names: Vec<String> = cases::all()
        .into_iter()
        .map(|c| c.name)
        .filter(|n| !on_device || !cases::HOST_ONLY.iter().any(|h| n.starts_with(h)))
        .filter(|n| {
            only.as_deref()
                .is_none_or(|o| *n == o || n.starts_with(&format!("{o}/")))
        })
        .collect();
    if names.is_empty() {
        bail!("no case matches {only:?}; see `lsnn-leakcheck list`");
    }
    let mut rows = Vec::new();
    println!("{}", report::header());
    for n in names {
        let r = run_child(&n)?;
        println!("{}", report::row(&r));
        rows.push(r);
    }
    if long {
        let r = run_child_args(&["soak", "100"], "soak")?;
        println!(
            "{:<40} {:<8} {:>5} live {} → {} KiB, rss {} → {} KiB: {:?}",
            r.name,
            "case",
            r.iterations,
            kib(r.live_start),
            kib(r.live_end),
            kib(r.rss_start),
            kib(r.rss_end),
            r.verdict
        );
        rows.push(r);
    }
    let comps = if only.is_none() && !on_device {
        components::measure_all(5)?
    } else {
        Vec::new()
    };
    if !comps.is_empty() {
        println!(
            "\n{:<40} {:>14} {:>16} {:>8}",
            "component (fwd+bwd)", "fused peak KiB", "per-step peak KiB", "ratio"
        );
        for c in &comps {
            println!(
                "{:<40} {:>14} {:>16} {:>8.3}",
                c.name,
                kib(c.fused_peak_bytes),
                kib(c.reference_peak_bytes),
                c.peak_ratio
            );
        }
    }
    let ok = rows.iter().all(|r| r.ok);
    let report = serde_json::json!({ "ok": ok, "cases": rows, "components": comps });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("\nreport: {}", out.display());
    if !ok {
        let bad: Vec<&str> = rows
            .iter()
            .filter(|r| !r.ok)
            .map(|r| r.name.as_str())
            .collect();
        bail!("leakcheck failed: {bad:?}");
    }
    println!(
        "leakcheck: all {} cases pass and every control is caught",
        rows.len()
    );
    Ok(())
}
