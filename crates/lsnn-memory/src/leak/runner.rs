//! Named leak cases and their controls, run with isolation built in.
//!
//! The allocator's figures are process-wide: every thread's allocations count, the test
//! harness's other tests and candle's worker pools included. So a case runs either
//!
//! - **in a child process** of its own ([`run_in_child`], [`check_in_children`]), started with
//!   one compute thread (`RAYON_NUM_THREADS=1`, `CANDLE_NUM_THREADS=1`): exact whatever else
//!   the parent does — what `cargo xtask leakcheck` and a user's `#[test]` use; or
//! - **in this process** ([`run_in_process`]), under a process-wide lock and inside a
//!   one-thread rayon pool, after rayon's workers have started: exact only when nothing else
//!   allocates meanwhile (a test binary of its own).
//!
//! The binary must install [`crate::CountingAlloc`] as its global allocator; a case run without
//! it is an error, not an RSS-based guess.

use super::detector::{LeakConfig, LeakDetector, Verdict};
use crate::alloc;
use serde::{Deserialize, Serialize};
use std::process::Command;
use std::sync::Mutex;

/// An error from a case's setup or iteration.
pub type CaseError = Box<dyn std::error::Error + Send + Sync>;

/// One iteration of a case, prepared by its setup.
pub type Iteration = Box<dyn FnMut(usize) -> Result<(), CaseError> + Send>;

/// A real path, or a control that must be caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Must pass.
    Case,
    /// Must be flagged as a leak.
    Control,
}

/// A leak case (or control): a name, what it exercises, the detector's settings, and a setup
/// that builds the state and returns the iteration.
pub struct LeakCase {
    /// Unique name, e.g. `encoder/fwd-bwd` or `encoder/fwd-bwd/control-running-loss`.
    pub name: String,
    /// Case or control.
    pub kind: Kind,
    /// What it exercises (and, for a control, what it leaks).
    pub description: String,
    /// The detector's settings.
    pub config: LeakConfig,
    /// Builds the state and returns the iteration.
    pub setup: Box<dyn Fn() -> Result<Iteration, CaseError> + Send + Sync>,
}

impl std::fmt::Debug for LeakCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakCase")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

/// design §7's settings: 10 warm-up and 100 measured iterations, 64 KiB.
pub fn spec_config() -> LeakConfig {
    LeakConfig {
        warmup: 10,
        iterations: 100,
        ..LeakConfig::default()
    }
}

impl LeakCase {
    fn new(
        name: &str,
        kind: Kind,
        description: &str,
        setup: impl Fn() -> Result<Iteration, CaseError> + Send + Sync + 'static,
    ) -> Self {
        LeakCase {
            name: name.to_owned(),
            kind,
            description: description.to_owned(),
            config: spec_config(),
            setup: Box::new(setup),
        }
    }

    /// A case that must pass, with design §7's settings.
    pub fn case(
        name: &str,
        description: &str,
        setup: impl Fn() -> Result<Iteration, CaseError> + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, Kind::Case, description, setup)
    }

    /// A control that must be caught, with design §7's settings.
    pub fn control(
        name: &str,
        description: &str,
        setup: impl Fn() -> Result<Iteration, CaseError> + Send + Sync + 'static,
    ) -> Self {
        Self::new(name, Kind::Control, description, setup)
    }

    /// The same case with other detector settings.
    pub fn with_config(mut self, config: LeakConfig) -> Self {
        self.config = config;
        self
    }
}

/// One row of a report (the schema `cargo xtask leakcheck` writes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseReport {
    /// The case's name.
    pub name: String,
    /// Case or control.
    pub kind: Kind,
    /// What it exercises.
    pub description: String,
    /// Measured iterations.
    pub iterations: usize,
    /// Live bytes after warm-up.
    pub live_start: u64,
    /// Live bytes at the end.
    pub live_end: u64,
    /// Least-squares slope of live bytes.
    pub slope_bytes_per_iter: f64,
    /// Peak of the first measured iteration.
    pub peak_first: u64,
    /// Peak of the last measured iteration.
    pub peak_last: u64,
    /// RSS after warm-up.
    pub rss_start: u64,
    /// RSS at the end.
    pub rss_end: u64,
    /// The detector's verdict.
    pub verdict: Verdict,
    /// True when a case passed or a control was caught.
    pub ok: bool,
    /// The detector's reasons.
    pub reasons: Vec<String>,
}

/// Why a case could not be run (not a verdict: a leak is a verdict).
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The case's setup or an iteration failed.
    #[error("case {name}: {source}")]
    Case {
        /// The case.
        name: String,
        /// The cause.
        source: CaseError,
    },
    /// The counting allocator is not the global allocator.
    #[error(
        "case {0}: the counting allocator is not installed; add \
         `#[global_allocator] static ALLOC: lsnn_memory::CountingAlloc = lsnn_memory::CountingAlloc;` \
         to the binary (or test file) that runs leak cases"
    )]
    NoCountingAllocator(String),
    /// The child process could not be started, failed, or printed no report.
    #[error("case {name}: {message}")]
    Child {
        /// The case.
        name: String,
        /// What happened.
        message: String,
    },
    /// No case of that name.
    #[error("no leak case named {0}")]
    NoSuchCase(String),
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `case` in this process: under a process-wide lock, inside a one-thread rayon pool (so
/// that rayon-parallel kernels stay on one thread), after that pool's worker has started (a
/// worker starts asynchronously; its one-time allocations must not land in a measurement).
pub fn run_in_process(case: &LeakCase) -> Result<CaseReport, RunnerError> {
    if !alloc::is_installed() {
        return Err(RunnerError::NoCountingAllocator(case.name.clone()));
    }
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let fail = |source: CaseError| RunnerError::Case {
        name: case.name.clone(),
        source,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| fail(Box::new(e)))?;
    // Both pools' workers started before anything is measured.
    rayon::broadcast(|_| ());
    pool.broadcast(|_| ());
    let detector = match device_probe().map_err(|e| fail(Box::new(e)))? {
        Some(p) => LeakDetector::new(case.config.clone()).with_probe(p),
        None => LeakDetector::new(case.config.clone()),
    };
    let report = pool.install(|| {
        let mut it = (case.setup)()?;
        let r = detector.run(&mut it)?;
        drop(it);
        Ok::<_, CaseError>(r)
    });
    let r = report.map_err(fail)?;
    let ok = match case.kind {
        Kind::Case => r.verdict == Verdict::Pass,
        Kind::Control => r.verdict == Verdict::Leak,
    };
    Ok(CaseReport {
        name: case.name.clone(),
        kind: case.kind,
        description: case.description.clone(),
        iterations: r.live.len(),
        live_start: r.live_start,
        live_end: r.live_end,
        slope_bytes_per_iter: r.slope_bytes_per_iter,
        peak_first: r.peak_first,
        peak_last: r.peak_last,
        rss_start: r.rss_start,
        rss_end: r.rss_end,
        verdict: r.verdict,
        ok,
        reasons: r.reasons,
    })
}

/// The prefix of the line on which a child prints its report.
pub const MARKER: &str = "lsnn-leak-report: ";

/// The report line a child prints for `report`.
pub fn report_line(report: &CaseReport) -> String {
    format!(
        "{MARKER}{}",
        serde_json::to_string(report).unwrap_or_default()
    )
}

/// Runs `cmd` — a process that runs case `name` in process and prints [`report_line`] — with
/// one compute thread, and parses its report.
pub fn run_in_child(mut cmd: Command, name: &str) -> Result<CaseReport, RunnerError> {
    let child = |message: String| RunnerError::Child {
        name: name.to_owned(),
        message,
    };
    let out = cmd
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1")
        .output()
        .map_err(|e| child(format!("cannot start {cmd:?}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(child(format!(
            "the child failed ({}): {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let line = stdout
        .lines()
        // Anywhere in a line: a test harness prints its own text before the child's output.
        .find_map(|l| l.find(MARKER).map(|i| &l[i + MARKER.len()..]))
        .ok_or_else(|| child(format!("the child printed no report: {stdout}")))?;
    serde_json::from_str(line).map_err(|e| child(format!("unreadable report {line:?}: {e}")))
}

/// The environment variable naming the device a suite runs on: unset or `cpu` for the host
/// (the counting allocator's figures), `cuda` or `cuda:N` for a CUDA device measured by
/// `CudaProbe` (the driver's used memory) — the cases read it too, to put their
/// tensors there.
pub const LEAK_DEVICE: &str = "LSNN_LEAK_DEVICE";

/// The device [`LEAK_DEVICE`] names (the CPU when unset).
pub fn leak_device() -> crate::Result<candle_core::Device> {
    let name = std::env::var(LEAK_DEVICE).unwrap_or_else(|_| "cpu".into());
    let index = match name.as_str() {
        "cpu" => return Ok(candle_core::Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(crate::MemoryError::Unsupported(format!(
                    "{LEAK_DEVICE}={}: expected cpu, cuda or cuda:N",
                    other.chars().take(64).collect::<String>()
                )))
            }
        },
    };
    Ok(candle_core::Device::new_cuda(index)?)
}

/// The probe of a device suite ([`LEAK_DEVICE`] naming a CUDA device), or `None` for the host.
fn device_probe() -> crate::Result<Option<std::sync::Arc<dyn crate::DeviceProbe>>> {
    let dev = leak_device()?;
    if dev.is_cpu() {
        return Ok(None);
    }
    Ok(Some(std::sync::Arc::from(crate::probe_for(&dev)?)))
}

/// The environment variable naming the case a child of [`check_in_children`] runs.
pub const CHILD_CASE: &str = "LSNN_LEAK_CASE";

/// The results of a suite of cases.
#[derive(Debug, Clone)]
pub struct Suite {
    /// One row per case, in order.
    pub rows: Vec<CaseReport>,
}

impl Suite {
    /// True when every case passed and every control was caught.
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }

    /// The rows that are not ok.
    pub fn failures(&self) -> Vec<&CaseReport> {
        self.rows.iter().filter(|r| !r.ok).collect()
    }

    /// The table [`super::report::table`] prints.
    pub fn table(&self) -> String {
        super::report::table(&self.rows)
    }
}

/// For a `#[test]` function named `test_name` (its path as `cargo test` filters it): runs every
/// case in a child process of this test binary — the same test run again with `--exact`, told
/// by [`CHILD_CASE`] which case to run — and returns the suite. In the child it runs that one
/// case, prints its report and exits, so nothing of the parent's work is measured.
pub fn check_in_children(test_name: &str, cases: &[LeakCase]) -> Result<Suite, RunnerError> {
    if let Ok(name) = std::env::var(CHILD_CASE) {
        let case = cases
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| RunnerError::NoSuchCase(name.clone()))?;
        let r = run_in_process(case)?;
        println!("{}", report_line(&r));
        std::process::exit(0);
    }
    let exe = std::env::current_exe().map_err(|e| RunnerError::Child {
        name: test_name.to_owned(),
        message: format!("cannot find this test binary: {e}"),
    })?;
    let mut rows = Vec::with_capacity(cases.len());
    for case in cases {
        let mut cmd = Command::new(&exe);
        cmd.args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_CASE, &case.name);
        rows.push(run_in_child(cmd, &case.name)?);
    }
    Ok(Suite { rows })
}
