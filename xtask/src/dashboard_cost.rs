//! `cargo xtask dashboard-cost [--pairs N] [--max-batches N]`: what serving the live dashboard
//! (design §10.7) costs a run. The default task trains `--max-batches` batches (150: two
//! epochs, one evaluation) with and without `--dashboard`, alternating which goes first in
//! each pair, a light event-stream client reading every message of the served runs; the
//! median training throughput (the run's own items/s) of each is compared. Fails when the
//! dashboard's run is more than 3% slower. Not part of CI: a fair comparison needs a quiet
//! machine and some minutes.

use crate::browser::ServedRun;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Largest accepted slowdown of the run with the dashboard.
const MAX_SLOWDOWN: f64 = 0.03;

fn flag(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&v| v > 0)
            .with_context(|| format!("{name}: expected a positive whole number")),
    }
}

/// The items/s of a run's summary line (`… 0 skipped, 8579 positions/s, …`).
fn throughput(stdout: &str) -> Result<f64> {
    stdout
        .lines()
        .find_map(|l| {
            let (head, _) = l
                .split_once(" positions/s")
                .or_else(|| l.split_once(" tokens/s"))?;
            head.rsplit(' ').next()?.parse().ok()
        })
        .with_context(|| format!("no items/s in the run's summary:\n{stdout}"))
}

/// A client reading `url`'s event stream to its end: (bytes, step messages).
fn read_stream(url: &str) -> Result<std::thread::JoinHandle<(usize, usize)>> {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr)
        .with_context(|| format!("connecting to the dashboard at {addr}"))?;
    s.write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    Ok(std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        (all.len(), text.matches("event: step\n").count())
    }))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the comparison.
pub fn dashboard_cost(root: &Path, mut cargo: Command, args: &[String]) -> Result<()> {
    let pairs = flag(args, "--pairs", 5)?;
    let batches = flag(args, "--max-batches", 150)?;
    cargo
        .current_dir(root)
        .args(["build", "--release", "-p", "lsnn"]);
    crate::run(cargo)?;
    let exe = root.join("target/release/lsnn");
    let work = root.join("target/dashboard-cost");
    std::fs::create_dir_all(&work)?;
    let n = batches.to_string();
    let (mut plain, mut served) = (Vec::new(), Vec::new());
    let (mut plain_wall, mut served_wall) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        for with in [pair % 2 == 1, pair % 2 == 0] {
            let out = if with { "served" } else { "plain" };
            let train = ["train", "--max-batches", &n, "--out", out, "--overwrite"];
            let t = Instant::now();
            let stdout = if with {
                let run = ServedRun::start(&exe, &work, &train)?;
                let client = read_stream(&run.url)?;
                let stdout = run.wait()?;
                let (bytes, steps) = client.join().unwrap_or((0, 0));
                if steps as u64 != batches {
                    bail!(
                        "the client read {steps} step messages ({bytes} bytes); expected {batches}"
                    );
                }
                stdout
            } else {
                let o = Command::new(&exe).current_dir(&work).args(train).output()?;
                if !o.status.success() {
                    bail!("lsnn train failed: {}", String::from_utf8_lossy(&o.stderr));
                }
                String::from_utf8_lossy(&o.stdout).into_owned()
            };
            let wall = t.elapsed().as_secs_f64();
            let items = throughput(&stdout)?;
            eprintln!(
                "dashboard-cost: pair {} {:<16} {items:>9.0} items/s, {wall:.2} s",
                pair + 1,
                if with { "with dashboard" } else { "without" }
            );
            if with {
                served.push(items);
                served_wall.push(wall);
            } else {
                plain.push(items);
                plain_wall.push(wall);
            }
        }
    }
    let (p, s) = (median(&mut plain), median(&mut served));
    let (pw, sw) = (median(&mut plain_wall), median(&mut served_wall));
    let slowdown = 1.0 - s / p;
    eprintln!(
        "dashboard-cost: {pairs} pairs of {batches} batches: median {p:.0} items/s without, {s:.0} with \
         (slowdown {:+.2}%); wall {pw:.2} s without, {sw:.2} s with ({:+.2}%)",
        100.0 * slowdown,
        100.0 * (sw / pw - 1.0)
    );
    if slowdown > MAX_SLOWDOWN {
        bail!(
            "the run with the dashboard is {:.2}% slower; expected at most {:.0}%",
            100.0 * slowdown,
            100.0 * MAX_SLOWDOWN
        );
    }
    Ok(())
}
