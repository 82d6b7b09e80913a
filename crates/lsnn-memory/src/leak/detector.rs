//! The leak detector: run a closure for warm-up + N iterations, sample live bytes, RSS and the
//! per-iteration peak after each, and judge the growth against the design §7 tolerance.
//!
//! Verdict (design §7): **pass** when live bytes grow by at most `max_live_growth_bytes` from the
//! first to the last measured iteration *and* the least-squares trend over the run
//! (slope × (N − 1)) stays within the same bound, and the per-iteration peak does not trend upward
//! (peak slope × (N − 1) ≤ `max_peak_growth_bytes`); optionally the same for RSS. Otherwise
//! **leak**, with the reasons spelled out.

use crate::alloc::{self, PeakWindow};
use crate::probe::{DeviceProbe, MemorySource};
use crate::rss;
use serde::{Deserialize, Serialize};

/// Tolerances and run length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakConfig {
    /// Iterations run before measuring (caches, lazy initialisation, pools fill up).
    pub warmup: usize,
    /// Measured iterations (design §7: at least 100 for a leak case).
    pub iterations: usize,
    /// Largest allowed live growth over the measured run (design §7: 64 KiB).
    pub max_live_growth_bytes: u64,
    /// Largest allowed upward trend of the per-iteration peak over the run.
    pub max_peak_growth_bytes: u64,
    /// When set, RSS growth (end − start and trend) must also stay within this many bytes.
    pub max_rss_growth_bytes: Option<u64>,
}

impl Default for LeakConfig {
    fn default() -> Self {
        LeakConfig {
            warmup: 10,
            iterations: 100,
            max_live_growth_bytes: 64 * 1024,
            max_peak_growth_bytes: 64 * 1024,
            max_rss_growth_bytes: None,
        }
    }
}

/// The detector's judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within tolerance.
    Pass,
    /// Growth beyond tolerance.
    Leak,
}

/// Everything a leak run measured. Plain data, serde-serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeakReport {
    /// The tolerances used.
    pub config: LeakConfig,
    /// Where the live figures come from.
    pub source: MemorySource,
    /// Live bytes after each measured iteration.
    pub live: Vec<u64>,
    /// Peak live bytes inside each measured iteration.
    pub peaks: Vec<u64>,
    /// RSS after each measured iteration (empty where unavailable).
    pub rss: Vec<u64>,
    /// Live bytes after the last warm-up iteration.
    pub live_start: u64,
    /// Live bytes after the last measured iteration.
    pub live_end: u64,
    /// `live_end − live_start`.
    pub live_growth_bytes: i64,
    /// Least-squares slope of `live`, bytes per iteration.
    pub slope_bytes_per_iter: f64,
    /// Peak of the first measured iteration.
    pub peak_first: u64,
    /// Peak of the last measured iteration.
    pub peak_last: u64,
    /// Least-squares slope of `peaks`, bytes per iteration.
    pub peak_slope_bytes_per_iter: f64,
    /// Whether the peak trends upward beyond tolerance.
    pub peak_trends_up: bool,
    /// RSS after warm-up (0 where unavailable).
    pub rss_start: u64,
    /// RSS at the end (0 where unavailable).
    pub rss_end: u64,
    /// Least-squares slope of `rss`, bytes per iteration.
    pub rss_slope_bytes_per_iter: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// Why the verdict is `Leak` (empty on `Pass`).
    pub reasons: Vec<String>,
}

impl LeakReport {
    /// True when the verdict is `Pass`.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Least-squares slope of `ys` against 0, 1, 2, … (0 for fewer than two points).
pub fn slope(ys: &[u64]) -> f64 {
    let n = ys.len();
    if n < 2 {
        return 0.0;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = ys.iter().map(|&y| y as f64).sum::<f64>() / nf;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &y) in ys.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (y as f64 - mean_y);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// Runs closures under measurement. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct LeakDetector {
    config: LeakConfig,
    /// Where live bytes come from when not the host: a device probe (the CUDA driver's used
    /// memory), read after each iteration; its per-iteration peak is that reading too.
    probe: Option<std::sync::Arc<dyn DeviceProbe>>,
}

impl LeakDetector {
    /// A detector with `config`, measuring the host (the counting allocator, else RSS).
    pub fn new(config: LeakConfig) -> Self {
        LeakDetector {
            config,
            probe: None,
        }
    }

    /// The same detector measuring a device's memory through `probe` (e.g. a
    /// `CudaProbe`: the driver's used bytes, after a synchronise) instead of the host's.
    pub fn with_probe(mut self, probe: std::sync::Arc<dyn DeviceProbe>) -> Self {
        self.probe = Some(probe);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &LeakConfig {
        &self.config
    }

    /// Runs `step(i)` for warm-up + measured iterations and judges the growth. The first error
    /// from `step` stops the run and is returned.
    pub fn run<E, F>(&self, mut step: F) -> Result<LeakReport, E>
    where
        F: FnMut(usize) -> Result<(), E>,
    {
        let probe = self.probe.clone();
        let counting = probe.is_none() && alloc::is_installed();
        let live_now = || match &probe {
            // A probe that cannot read is a zero reading: a run of zeros passes no leak and
            // catches no control, so the suite's controls expose it.
            Some(p) => p.live_bytes().unwrap_or(0),
            None if counting => alloc::live_bytes(),
            None => rss::rss_bytes().unwrap_or(0),
        };
        for i in 0..self.config.warmup {
            step(i)?;
        }
        let n = self.config.iterations;
        let mut live = Vec::with_capacity(n);
        let mut peaks = Vec::with_capacity(n);
        let mut rss_v = Vec::with_capacity(n);
        let live_start = live_now();
        let rss_start = rss::rss_bytes().unwrap_or(0);
        for i in 0..n {
            let window = PeakWindow::open();
            step(self.config.warmup + i)?;
            let peak = window.close();
            peaks.push(if counting { peak } else { live_now() });
            live.push(live_now());
            if let Ok(r) = rss::rss_bytes() {
                rss_v.push(r);
            }
        }
        Ok(self.judge(counting, live_start, rss_start, live, peaks, rss_v))
    }

    fn judge(
        &self,
        counting: bool,
        live_start: u64,
        rss_start: u64,
        live: Vec<u64>,
        peaks: Vec<u64>,
        rss_v: Vec<u64>,
    ) -> LeakReport {
        let cfg = &self.config;
        let span = live.len().saturating_sub(1) as f64;
        let live_end = live.last().copied().unwrap_or(live_start);
        let growth = live_end as i64 - live_start as i64;
        let s = slope(&live);
        let ps = slope(&peaks);
        let rs = slope(&rss_v);
        let mut reasons = Vec::new();
        let tol = cfg.max_live_growth_bytes as f64;
        if growth as f64 > tol {
            reasons.push(format!(
                "live bytes grew by {growth} over {} iterations (tolerance {} bytes)",
                live.len(),
                cfg.max_live_growth_bytes
            ));
        }
        if s * span > tol {
            reasons.push(format!(
                "live bytes trend upward by {s:.1} bytes/iteration ({:.0} bytes over the run, tolerance {})",
                s * span,
                cfg.max_live_growth_bytes
            ));
        }
        let peak_trends_up = ps * span > cfg.max_peak_growth_bytes as f64;
        if peak_trends_up {
            reasons.push(format!(
                "per-iteration peak trends upward by {ps:.1} bytes/iteration ({:.0} bytes over the run, tolerance {})",
                ps * span,
                cfg.max_peak_growth_bytes
            ));
        }
        let rss_end = rss_v.last().copied().unwrap_or(rss_start);
        if let Some(rtol) = cfg.max_rss_growth_bytes {
            let rg = rss_end as i64 - rss_start as i64;
            if rg > rtol as i64 || rs * span > rtol as f64 {
                reasons.push(format!(
                    "rss grew by {rg} bytes (trend {rs:.1} bytes/iteration; tolerance {rtol})"
                ));
            }
        }
        LeakReport {
            config: cfg.clone(),
            source: match &self.probe {
                Some(p) => p.source(),
                None if counting => MemorySource::CountingAllocator,
                None => MemorySource::Rss,
            },
            live_start,
            live_end,
            live_growth_bytes: growth,
            slope_bytes_per_iter: s,
            peak_first: peaks.first().copied().unwrap_or(0),
            peak_last: peaks.last().copied().unwrap_or(0),
            peak_slope_bytes_per_iter: ps,
            peak_trends_up,
            rss_start,
            rss_end,
            rss_slope_bytes_per_iter: rs,
            verdict: if reasons.is_empty() {
                Verdict::Pass
            } else {
                Verdict::Leak
            },
            reasons,
            live,
            peaks,
            rss: rss_v,
        }
    }
}
