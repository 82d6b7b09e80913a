//! `cargo xtask browser [--screenshots]`: the user-facing pages checked in a real browser
//! (Debian's `chromium`, headless), outside `cargo test` so that the tests never need one.
//!
//! - the report (design §10.6): a short real run, `lsnn report` on it, and chromium loads the
//!   page: once its load script has run, the DOM must say that the browser laid out every chart
//!   with a size and its lines or bars (`data-charts-drawn` equal to `data-charts`, at least 6).
//!
//! Screenshots go to `target/browser/`; with `--screenshots` also to `docs/screenshots/`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser's executable: `chromium` (Debian), else `chromium-browser` or `google-chrome`.
fn browser() -> Result<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(name).output() {
            if o.status.success() {
                let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if !p.is_empty() {
                    return Ok(PathBuf::from(p));
                }
            }
        }
    }
    bail!("no chromium found; install Debian's: apt-get install chromium")
}

/// Headless chromium with the flags a container needs (no sandbox as root, no GPU).
fn headless(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        // Let the page's scripts run (and timers fire) before the DOM is read.
        "--virtual-time-budget=5000",
    ]);
    c
}

fn lsnn(exe: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    let o = Command::new(exe)
        .current_dir(dir)
        .args(args)
        .output()
        .with_context(|| format!("running lsnn {args:?}"))?;
    if !o.status.success() {
        bail!(
            "lsnn {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// An attribute of the DOM's `<body>`.
fn body_attr(dom: &str, name: &str) -> Option<String> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let key = format!("{name}=\"");
    let i = body.find(&key)? + key.len();
    Some(body[i..i + body[i..].find('"')?].to_string())
}

fn check_report(chromium: &Path, lsnn_exe: &Path, work: &Path, shots: &[PathBuf]) -> Result<()> {
    // The default task (event order) for two epochs: every chart has something to show.
    lsnn(
        lsnn_exe,
        work,
        &["train", "--epochs", "2", "--out", "run", "--overwrite"],
    )?;
    lsnn(lsnn_exe, work, &["report", "run"])?;
    let page = work.join("run/report/index.html");
    let url = format!("file://{}", page.display());
    let o = headless(chromium)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .context("running chromium --dump-dom")?;
    let dom = String::from_utf8_lossy(&o.stdout);
    let charts = body_attr(&dom, "data-charts");
    let drawn = body_attr(&dom, "data-charts-drawn");
    eprintln!("browser: report page: {charts:?} charts, {drawn:?} drawn");
    match (charts.and_then(|c| c.parse::<usize>().ok()), drawn) {
        (Some(n), Some(d)) if n >= 6 && d == n.to_string() => {}
        (n, d) => bail!(
            "the report page in chromium: {n:?} charts, {d:?} laid out with their marks; expected \
             every chart (at least 6) drawn (stderr: {})",
            String::from_utf8_lossy(&o.stderr)
        ),
    }
    for shot in shots {
        let o = headless(chromium)
            .arg("--window-size=900,3400")
            .arg(format!("--screenshot={}", shot.display()))
            .arg(&url)
            .output()
            .context("running chromium --screenshot")?;
        if !o.status.success() || !shot.is_file() {
            bail!(
                "chromium wrote no screenshot {}: {}",
                shot.display(),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    Ok(())
}

/// Runs the browser checks.
pub fn browser_checks(root: &Path, mut cargo: Command, args: &[String]) -> Result<()> {
    let chromium = browser()?;
    cargo
        .current_dir(root)
        .args(["build", "--release", "-p", "lsnn"]);
    crate::run(cargo)?;
    let lsnn_exe = root.join("target/release/lsnn");
    let work = root.join("target/browser");
    std::fs::create_dir_all(&work)?;
    let mut shots = vec![work.join("report.png")];
    if args.iter().any(|a| a == "--screenshots") {
        let docs = root.join("docs/screenshots");
        std::fs::create_dir_all(&docs)?;
        shots.push(docs.join("report.png"));
    }
    check_report(&chromium, &lsnn_exe, &work, &shots)?;
    eprintln!(
        "browser: every page check passed; screenshots in {}",
        work.display()
    );
    Ok(())
}
