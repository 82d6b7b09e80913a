//! # lsnn-bench
//!
//! The project's proof (SPEC §4): leak regression cases for every component and path, each with
//! a deliberately leaky **control** that the same check must flag, run under the lsnn-memory
//! [`LeakDetector`]; per-component peak memory of the fused forms against the per-step
//! references; and the deterministic figures the benchmark gate compares with its baseline.
//!
//! Binaries: `lsnn-leakcheck` (driven by `cargo xtask leakcheck`) and `lsnn-gate` (driven by
//! `cargo xtask bench-gate`). Both install the counting allocator.
#![deny(missing_docs)]

pub mod cases;
pub mod components;

use lsnn_memory::{LeakConfig, LeakDetector, LeakReport, Verdict};
use serde::{Deserialize, Serialize};

/// Errors of a case.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// From the layers.
    #[error(transparent)]
    Layer(#[from] lsnn_layers::LayerError),
    /// From training.
    #[error(transparent)]
    Train(#[from] lsnn_train::TrainError),
    /// From the memory crate.
    #[error(transparent)]
    Memory(#[from] lsnn_memory::MemoryError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, BenchError>;

/// A real path, or a control that must be caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Must pass.
    Case,
    /// Must be flagged as a leak.
    Control,
}

/// One iteration of a case, prepared by [`LeakCase::setup`].
pub type Iteration = Box<dyn FnMut(usize) -> Result<()>>;

/// A leak regression case (or control).
pub struct LeakCase {
    /// Unique name, e.g. `encoder/fwd-bwd` or `encoder/fwd-bwd/control-running-loss`.
    pub name: &'static str,
    /// Case or control.
    pub kind: Kind,
    /// What it exercises (and, for a control, what it leaks).
    pub description: &'static str,
    /// The detector's settings.
    pub config: LeakConfig,
    /// Builds the state and returns the iteration.
    pub setup: Box<dyn Fn() -> Result<Iteration>>,
}

impl std::fmt::Debug for LeakCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeakCase")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

/// One row of the report (the schema `cargo xtask leakcheck` writes).
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

impl CaseReport {
    /// Builds the row from a detector report.
    pub fn new(case: &LeakCase, r: &LeakReport) -> Self {
        let ok = match case.kind {
            Kind::Case => r.verdict == Verdict::Pass,
            Kind::Control => r.verdict == Verdict::Leak,
        };
        CaseReport {
            name: case.name.to_string(),
            kind: case.kind,
            description: case.description.to_string(),
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
            reasons: r.reasons.clone(),
        }
    }
}

/// Runs one case under the detector (in this process: run it in a child for isolation).
pub fn run_case(case: &LeakCase) -> Result<CaseReport> {
    // Start rayon's worker threads (the kernels ask for the pool's size) and let each run once,
    // so their one-time start-up allocations happen here, not at a random point of a
    // measurement (a worker thread starts asynchronously; ~6 KiB appeared in whichever case it
    // overlapped).
    rayon::broadcast(|_| ());
    let mut it = (case.setup)()?;
    let report = LeakDetector::new(case.config.clone()).run(&mut it)?;
    drop(it);
    Ok(CaseReport::new(case, &report))
}

/// The default detector settings of SPEC §4: 10 warm-up and 100 measured iterations, 64 KiB.
pub fn spec_config() -> LeakConfig {
    LeakConfig {
        warmup: 10,
        iterations: 100,
        ..LeakConfig::default()
    }
}
