//! The live dashboard in a real browser (design §10.7): a short run serves it, chromium opens
//! the page once, and in that one page session the plotted step counter must increase several
//! times (the page's per-load id unchanged: no reload) and, when the run ends, show the final
//! state with its charts drawn.

use super::cdp::Browser;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the check reads from the page each time.
const PROBE: &str =
    "JSON.stringify({load: window.lsnnLoadId, step: Number(document.body.dataset.step), \
     state: document.body.dataset.state, points: Number(document.body.dataset.points), \
     shown: document.getElementById('step').textContent})";

/// Distinct increasing step counts the page must show before the run ends.
const INCREASES: usize = 3;

pub fn check_dashboard(
    chromium: &Path,
    lsnn_exe: &Path,
    work: &Path,
    shots: &[PathBuf],
) -> Result<()> {
    let mut browser = Browser::start(chromium, 1100, 1400, &work.join("chromium-dashboard.log"))?;
    // The default task for three epochs: some ten seconds of training in a release build.
    let served = ServedRun::start(
        lsnn_exe,
        work,
        &["train", "--epochs", "3", "--out", "dash-run", "--overwrite"],
    )?;
    let url = served.url.clone();
    let page = browser.open(&url)?;
    let started = Instant::now();
    let mut load_id: Option<String> = None;
    let mut steps: Vec<u64> = Vec::new();
    while started.elapsed() < Duration::from_secs(180) {
        let text = browser.eval(&page, PROBE)?;
        let probe: Value = serde_json::from_str(text.as_str().unwrap_or("null"))?;
        let id = probe["load"].as_str().map(str::to_string);
        match (&load_id, id) {
            (None, Some(id)) => load_id = Some(id),
            (Some(a), Some(b)) if *a != b => {
                bail!("the dashboard page reloaded ({a} → {b}); it must update in place")
            }
            (Some(_), None) => bail!("the dashboard page lost its load id: {probe}"),
            _ => {}
        }
        if let Some(step) = probe["step"].as_u64() {
            if step > steps.last().copied().unwrap_or(0) {
                steps.push(step);
            }
        }
        if matches!(
            probe["state"].as_str().unwrap_or(""),
            "finished" | "stopped" | "failed" | "disconnected"
        ) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let stdout = served.wait()?;
    // The run's own count of optimizer steps, from its summary line (`N steps, …`).
    let run_steps: u64 = stdout
        .lines()
        .find_map(|l| l.split(" steps, ").next()?.parse().ok())
        .with_context(|| format!("no summary line in the run's output:\n{stdout}"))?;
    // The final draw is scheduled on the next frame: give it one.
    std::thread::sleep(Duration::from_millis(300));
    let last: Value = serde_json::from_str(browser.eval(&page, PROBE)?.as_str().unwrap_or("null"))?;
    eprintln!(
        "browser: dashboard page: step counter went through {} increasing values ({:?} … {:?}) in one page session; final {last}",
        steps.len(),
        steps.first(),
        steps.last()
    );
    if steps.len() < INCREASES {
        bail!("the dashboard's step counter took {} increasing values while the run trained ({steps:?}); expected at least {INCREASES}", steps.len());
    }
    let final_step = last["step"].as_u64().unwrap_or(0);
    // A batch's step is counted before its accumulation's optimizer step: the page's last
    // step is the run's, or one short of it when the last accumulation was flushed at the end.
    if final_step + 1 < run_steps || final_step > run_steps {
        bail!(
            "the dashboard's last step {final_step}; the run reports {run_steps} optimizer steps"
        );
    }
    if last["state"] != "finished"
        || last["shown"].as_str() != Some(final_step.to_string().as_str())
        || last["points"].as_u64().unwrap_or(0) < 100
    {
        bail!("the dashboard page at the run's end: {last}; expected state finished, the counter shown, and its charts drawn (≥ 100 points)");
    }
    let summary = browser.eval(&page, "document.getElementById('end').textContent")?;
    if !summary
        .as_str()
        .unwrap_or("")
        .contains(&format!("finished: {run_steps} steps"))
    {
        bail!("the dashboard page shows no final state: {summary}");
    }
    let png = browser.screenshot(&page)?;
    for shot in shots {
        std::fs::write(shot, &png).with_context(|| format!("writing {}", shot.display()))?;
    }
    Ok(())
}

/// `lsnn train … --dashboard 127.0.0.1:0` running, with the URL it printed; its stderr is
/// drained on a thread so that it never blocks on a full pipe, and it is killed if dropped
/// before it ended (a failed check must not leave it training and holding its run's lock).
pub struct ServedRun {
    child: std::process::Child,
    /// The dashboard's URL.
    pub url: String,
    stderr: Option<std::thread::JoinHandle<String>>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

/// Reads `from` to its end on a thread.
fn drain(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        let _ = from.read_to_string(&mut all);
        all
    })
}

impl ServedRun {
    /// Starts `lsnn_exe args… --dashboard 127.0.0.1:0` in `dir` and waits for its URL.
    pub fn start(lsnn_exe: &Path, dir: &Path, args: &[&str]) -> Result<Self> {
        let mut child = Command::new(lsnn_exe)
            .current_dir(dir)
            .args(args)
            .args(["--dashboard", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting lsnn train --dashboard")?;
        let mut stderr = BufReader::new(child.stderr.take().context("lsnn's stderr")?);
        let stdout = drain(child.stdout.take().context("lsnn's stdout")?);
        let mut run = ServedRun {
            child,
            url: String::new(),
            stderr: None,
            stdout: Some(stdout),
        };
        let mut line = String::new();
        while stderr.read_line(&mut line)? > 0 {
            if let Some(u) = line.trim().strip_prefix("dashboard: ") {
                run.url = u.to_string();
                break;
            }
            line.clear();
        }
        if run.url.is_empty() {
            bail!("lsnn train --dashboard printed no 'dashboard: URL' line");
        }
        run.stderr = Some(drain(stderr));
        Ok(run)
    }

    /// Waits for the run's end; its stdout, or an error with its stderr when it failed.
    pub fn wait(mut self) -> Result<String> {
        let status = self.child.wait()?;
        let joined = |h: Option<std::thread::JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        let out = joined(self.stdout.take());
        let log = joined(self.stderr.take());
        if !status.success() {
            bail!("lsnn train --dashboard failed ({status}): {log}");
        }
        Ok(out)
    }
}

impl Drop for ServedRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
