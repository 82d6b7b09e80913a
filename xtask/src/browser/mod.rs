//! `cargo xtask browser [--screenshots] [--only report|dashboard]`: the user-facing pages checked in a real browser
//! (Debian's `chromium`, headless), outside `cargo test` so that the tests never need one.
//!
//! - the report (design §10.6): a short real run, `lsnn report` on it, and chromium loads the
//!   page: once its load script has run, the DOM must say that the browser laid out every chart
//!   with a size and its lines or bars (`data-charts-drawn` equal to `data-charts`, at least 6);
//! - the live dashboard (design §10.7): a short run serves it, and in one page session driven
//!   over the DevTools protocol ([`cdp`]) its step counter increases without a reload, then the
//!   page shows the run's final state.
//!
//! Screenshots go to `target/browser/`; with `--screenshots` also to `docs/screenshots/`.

mod cdp;
mod dashboard;
mod report;

pub use dashboard::ServedRun;

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
pub(crate) fn headless(exe: &Path) -> Command {
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

pub(crate) fn lsnn(exe: &Path, dir: &Path, args: &[&str]) -> Result<String> {
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
pub(crate) fn body_attr(dom: &str, name: &str) -> Option<String> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let key = format!("{name}=\"");
    let i = body.find(&key)? + key.len();
    Some(body[i..i + body[i..].find('"')?].to_string())
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
    let docs = args
        .iter()
        .any(|a| a == "--screenshots")
        .then(|| root.join("docs/screenshots"));
    let shots = |name: &str| -> Result<Vec<PathBuf>> {
        let mut v = vec![work.join(name)];
        if let Some(d) = &docs {
            std::fs::create_dir_all(d)?;
            v.push(d.join(name));
        }
        Ok(v)
    };
    // `--only report|dashboard` runs one check.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    if let Some(o) = only.filter(|o| !matches!(*o, "report" | "dashboard")) {
        bail!("--only {o}: expected report or dashboard");
    }
    if only != Some("dashboard") {
        report::check_report(&chromium, &lsnn_exe, &work, &shots("report.png")?)?;
    }
    if only != Some("report") {
        dashboard::check_dashboard(&chromium, &lsnn_exe, &work, &shots("dashboard.png")?)?;
    }
    eprintln!(
        "browser: every page check passed; screenshots in {}",
        work.display()
    );
    Ok(())
}
