//! Project automation, reached as `cargo xtask <command>` (see `.cargo/config.toml`).
//!
//! - `ci`: everything `.ci/run` runs.
//!   (The layer suite runs twice: on the fused kernels, and with `LSNN_FORCE_COMPOSED=1`; then
//!   the examples, the API docs with warnings denied, and the library crates' packaging.)
//! - `leakcheck [--case NAME] [--long]`: builds in release and runs every leak case and control
//!   (each in its own process, single-threaded), prints the table, writes
//!   `target/leakcheck/report.json`, fails if a case leaks or a control goes uncaught.
//! - `bench-gate [--update]`: measures the deterministic figures (allocations and peak live
//!   bytes per step and per component, single-threaded; instruction counts under callgrind),
//!   compares them with `crates/lsnn-bench/baseline.json` (fail beyond +5%), and checks the
//!   fused/reference time ratios against generous floors. `--update` rewrites the baseline.
//!
//! - `crash-trials N [--seed S]`: kills a real `lsnn train` at random moments N times and checks
//!   after each kill that the run loads and resumes (see `crash_trials.rs`).
//! - `browser [--screenshots] [--only report|dashboard]`: the user-facing pages (the report,
//!   the live dashboard) in a real headless chromium (see `browser/`); screenshots to
//!   `target/browser/`, and to `docs/screenshots/` when asked.
//! - `dashboard-cost [--pairs N] [--max-batches N]`: a run's throughput with and without the
//!   live dashboard, alternating (see `dashboard_cost.rs`); not in CI.
//! - `fuzz <config | checkpoint | text | all> N [--seed S]`: the mutation campaign of the fuzz
//!   harness (`lsnn-fuzz`, built with overflow checks on), N inputs per target; inputs that
//!   fail go to `target/fuzz-crashes/`. The coverage-guided targets are in `fuzz/` (cargo fuzz).
//!
//! It drives cargo through the `CARGO` environment variable and depends on no lsnn crate.

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

mod browser;
mod crash_trials;
mod dashboard_cost;

/// Allowed growth of a gated figure.
const TOLERANCE: f64 = 0.05;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn run(mut cmd: Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn build_bench() -> Result<()> {
    let mut b = cargo();
    b.current_dir(root())
        .args(["build", "--release", "-p", "lsnn-bench", "--bins"]);
    run(b)
}

fn leakcheck(args: &[String]) -> Result<()> {
    build_bench()?;
    let mut c = Command::new(root().join("target/release/lsnn-leakcheck"));
    c.current_dir(root())
        .arg("all")
        .args(["--out", "target/leakcheck/report.json"])
        .args(args);
    run(c)
}

fn fuzz(args: &[String]) -> Result<()> {
    // The dev profile: optimised, with overflow checks, so an overflow is a panic the campaign
    // catches rather than a silent wrap.
    let mut b = cargo();
    b.current_dir(root())
        .args(["build", "-p", "lsnn-bench", "--bin", "lsnn-fuzz"]);
    run(b)?;
    let mut c = Command::new(root().join("target/debug/lsnn-fuzz"));
    single_threaded(&mut c).current_dir(root()).args(args);
    run(c)
}

fn single_threaded(c: &mut Command) -> &mut Command {
    c.env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1")
}

fn callgrind_instructions(exe: &Path) -> Result<f64> {
    let out = root().join("target/bench-gate/callgrind.out");
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    let mut c = Command::new("valgrind");
    single_threaded(&mut c)
        .current_dir(root())
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .arg("instr");
    let o = c
        .output()
        .context("running valgrind (install it: apt-get install valgrind)")?;
    if !o.status.success() {
        bail!("callgrind failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    let text = std::fs::read_to_string(&out)?;
    for line in text.lines() {
        if let Some(v) = line
            .strip_prefix("summary:")
            .or_else(|| line.strip_prefix("totals:"))
        {
            let n: f64 = v
                .split_whitespace()
                .next()
                .context("empty summary line")?
                .parse()?;
            return Ok(n);
        }
    }
    bail!("no summary line in {}", out.display())
}

fn bench_gate(args: &[String]) -> Result<()> {
    let update = args.iter().any(|a| a == "--update");
    build_bench()?;
    let exe = root().join("target/release/lsnn-gate");
    let mut c = Command::new(&exe);
    single_threaded(&mut c).current_dir(root()).arg("measure");
    let o = c.output().context("running lsnn-gate")?;
    if !o.status.success() {
        bail!(
            "lsnn-gate measure failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let measured: Value = serde_json::from_slice(&o.stdout)?;
    let mut metrics: Map<String, Value> =
        measured["metrics"].as_object().cloned().unwrap_or_default();
    let ratios: Map<String, Value> = measured["ratios"].as_object().cloned().unwrap_or_default();
    metrics.insert(
        "instructions.tiny-lm.2-train-1-infer".into(),
        json!(callgrind_instructions(&exe)?),
    );

    let path = root().join("crates/lsnn-bench/baseline.json");
    let baseline: Value = if path.exists() {
        serde_json::from_str(&std::fs::read_to_string(&path)?)?
    } else {
        json!({})
    };
    let base = baseline["metrics"].as_object().cloned().unwrap_or_default();
    let floors = baseline["ratio_floors"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let ceilings = baseline["ratio_ceilings"]
        .as_object()
        .cloned()
        .unwrap_or_default();

    let mut failures = Vec::new();
    println!(
        "{:<58} {:>16} {:>16} {:>9}  verdict",
        "figure (lower is better)", "baseline", "measured", "change"
    );
    for (k, v) in &metrics {
        let m = v.as_f64().unwrap_or(f64::NAN);
        match base.get(k).and_then(Value::as_f64) {
            Some(b) => {
                let change = if b > 0.0 { m / b - 1.0 } else { 0.0 };
                let bad = m > b * (1.0 + TOLERANCE) + 0.5;
                println!(
                    "{k:<58} {b:>16.0} {m:>16.0} {:>+8.2}%  {}",
                    change * 100.0,
                    if bad { "REGRESSION" } else { "ok" }
                );
                if bad {
                    failures.push(format!(
                        "{k}: {m:.0} vs baseline {b:.0} ({:+.2}%, limit +{:.0}%)",
                        change * 100.0,
                        TOLERANCE * 100.0
                    ));
                }
            }
            None => println!("{k:<58} {:>16} {m:>16.0} {:>9}  new", "-", "-"),
        }
    }
    for k in base.keys() {
        if !metrics.contains_key(k) {
            failures.push(format!("{k}: in the baseline but no longer measured"));
        }
    }
    println!(
        "\n{:<58} {:>10} {:>10}  verdict",
        "ratio (one run, noisy)", "measured", "bound"
    );
    for (k, v) in &ratios {
        let r = v.as_f64().unwrap_or(f64::NAN);
        let (bound, bad) = if let Some(f) = floors.get(k).and_then(Value::as_f64) {
            (format!(">= {f}"), r.is_nan() || r < f)
        } else if let Some(c) = ceilings.get(k).and_then(Value::as_f64) {
            (format!("<= {c}"), r.is_nan() || r > c)
        } else {
            ("-".into(), false)
        };
        println!(
            "{k:<58} {r:>10.3} {bound:>10}  {}",
            if bad { "FAIL" } else { "ok" }
        );
        if bad {
            failures.push(format!("{k}: {r:.3}, expected {bound}"));
        }
    }
    if update {
        let mut b = baseline.as_object().cloned().unwrap_or_default();
        b.insert("metrics".into(), Value::Object(metrics));
        b.entry("ratio_floors").or_insert(json!({}));
        b.entry("ratio_ceilings").or_insert(json!({}));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&Value::Object(b))? + "\n",
        )?;
        println!("\nbaseline rewritten: {}", path.display());
        return Ok(());
    }
    if !failures.is_empty() {
        bail!("bench-gate failed:\n  {}", failures.join("\n  "));
    }
    println!(
        "\nbench-gate: no figure regressed beyond {:.0}% and every ratio is within its bound",
        TOLERANCE * 100.0
    );
    Ok(())
}

/// The steps of CI, in order (what `.ci/run` runs).
fn ci() -> Result<()> {
    let mut test = cargo();
    test.current_dir(root()).args(["test", "--workspace"]);
    run(test)?;
    // The layers' parity, gradient and fused-versus-reference suite again on the composed path
    // (what CUDA and Metal run): the only check of "works off the CPU" without a GPU.
    let mut composed = cargo();
    composed
        .current_dir(root())
        .env("LSNN_FORCE_COMPOSED", "1")
        .args(["test", "-p", "lsnn-layers"]);
    run(composed)?;
    for example in ["own_model", "trainer_own_model", "leak_test_own_model"] {
        let mut e = cargo();
        e.current_dir(root())
            .args(["run", "-q", "-p", "lsnn-examples", "--example", example]);
        run(e)?;
    }
    let mut doc = cargo();
    doc.current_dir(root())
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps", "-q"]);
    run(doc)?;
    let mut package = cargo();
    package.current_dir(root()).args([
        "package",
        "-q",
        "-p",
        "lsnn-memory",
        "-p",
        "lsnn-layers",
        "-p",
        "lsnn-train",
        "--no-verify",
    ]);
    run(package)?;
    let mut fmt = cargo();
    fmt.current_dir(root()).args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.current_dir(root()).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    leakcheck(&[])?;
    crash_trials::crash_trials(&root(), cargo(), &["10".to_string()])?;
    browser::browser_checks(&root(), cargo(), &[])?;
    let mut cuda = Command::new("bash");
    cuda.current_dir(root()).arg("scripts/cuda/ci.sh");
    run(cuda)?;
    bench_gate(&[])
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("leakcheck") => leakcheck(&args[1..]),
        Some("bench-gate") => bench_gate(&args[1..]),
        Some("crash-trials") => crash_trials::crash_trials(&root(), cargo(), &args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("browser") => browser::browser_checks(&root(), cargo(), &args[1..]),
        Some("dashboard-cost") => dashboard_cost::dashboard_cost(&root(), cargo(), &args[1..]),
        Some(other) => {
            bail!("unknown xtask command {other:?}; expected ci, leakcheck, bench-gate, crash-trials, fuzz, browser or dashboard-cost")
        }
        None => bail!(
            "usage: cargo xtask <ci | leakcheck [--case NAME] [--long] | bench-gate [--update] | crash-trials N [--seed S] | fuzz TARGET N [--seed S] | browser [--screenshots] [--only report|dashboard] | dashboard-cost [--pairs N] [--max-batches N]>"
        ),
    }
}
