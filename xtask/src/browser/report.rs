//! The report page in a real browser (design §10.6).

use super::{body_attr, headless, lsnn};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A short run, its report, and chromium's DOM of the page once its load script ran.
pub fn check_report(
    chromium: &Path,
    lsnn_exe: &Path,
    work: &Path,
    shots: &[PathBuf],
) -> Result<()> {
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
            .arg("--window-size=900,6400")
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
