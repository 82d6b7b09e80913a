//! The [`MemoryManager`]: usage figures, a cleanup threshold, a budget, cleanup, nested scopes,
//! a bounded timeline and the accumulator pool — the Rust counterpart of the Python original's
//! memory manager, measured instead of guessed.
//!
//! Both limits are in live bytes when the counting allocator is installed and in RSS otherwise
//! (on CUDA: the driver's used memory). A limit is absolute or a fraction of the device's memory
//! (physical memory on the CPU).

use crate::alert::{AlertConfig, AlertMonitor};
use crate::alloc::{self, PeakWindow};
use crate::error::{MemoryError, Result};
use crate::pool::{AccumulatorPool, PooledTensor};
use crate::probe::{probe_for, DeviceProbe, MemorySource};
use crate::rss;
use crate::timeline::{Sample, Timeline};
use candle_core::{DType, Device, Shape};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A memory limit: absolute bytes, or a fraction of the device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum MemoryLimit {
    /// An absolute number of bytes.
    Bytes(u64),
    /// A fraction in (0, 1] of the device's total memory.
    FractionOfDevice(f64),
}

impl MemoryLimit {
    /// The limit in bytes for a device with `total` bytes.
    pub fn resolve(&self, total: u64) -> u64 {
        match *self {
            MemoryLimit::Bytes(b) => b,
            MemoryLimit::FractionOfDevice(f) => (total as f64 * f) as u64,
        }
    }

    pub(crate) fn validate(&self, what: &str) -> Result<()> {
        match *self {
            MemoryLimit::Bytes(0) => Err(MemoryError::InvalidConfig(format!(
                "{what} of 0 bytes; expected a positive byte count"
            ))),
            MemoryLimit::FractionOfDevice(f) if !(f > 0.0 && f <= 1.0) => {
                Err(MemoryError::InvalidConfig(format!(
                    "{what} fraction {f}; expected a value in (0, 1]"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Parses a human size such as `512MiB`, `2GiB`, `1.5G`, `4096` (bytes) or `50%` (of the device).
pub fn parse_size(text: &str) -> Result<MemoryLimit> {
    let t = text.trim();
    let bad = || {
        MemoryError::InvalidConfig(format!(
            "cannot read size {text:?}; expected e.g. 4096, 512MiB, 2GiB, 1.5G or 50%"
        ))
    };
    if let Some(p) = t.strip_suffix('%') {
        let f: f64 = p.trim().parse().map_err(|_| bad())?;
        let lim = MemoryLimit::FractionOfDevice(f / 100.0);
        lim.validate("size")?;
        return Ok(lim);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(MemoryLimit::Bytes(bytes as u64))
}

/// Settings of a [`MemoryManager`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagerConfig {
    /// Usage above which [`MemoryManager::check`] cleans up and warns; `None` never triggers.
    pub cleanup_threshold: Option<MemoryLimit>,
    /// The most memory the budgeted constructors may bring usage to; `None` means the device's
    /// available memory.
    pub budget: Option<MemoryLimit>,
    /// Samples kept by the timeline ring buffer.
    pub timeline_capacity: usize,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            cleanup_threshold: None,
            budget: None,
            timeline_capacity: 4096,
        }
    }
}

/// Usage figures at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUsage {
    /// Bytes in use (see `source`).
    pub live_bytes: u64,
    /// Peak bytes of the current window (allocator) or `VmHWM`.
    pub peak_bytes: u64,
    /// Resident set size (0 where unavailable).
    pub rss_bytes: u64,
    /// Where `live_bytes` comes from.
    pub source: MemorySource,
}

/// What a [`MemoryManager::cleanup`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Idle pooled buffers dropped.
    pub pooled_buffers_dropped: u64,
    /// Bytes those buffers held.
    pub pooled_bytes_dropped: u64,
    /// Live bytes before and after.
    pub live_before: u64,
    /// Live bytes after.
    pub live_after: u64,
    /// RSS before (0 where unavailable).
    pub rss_before: u64,
    /// RSS after (0 where unavailable).
    pub rss_after: u64,
    /// Whether the allocator trim reported returning memory to the OS.
    pub trimmed: bool,
}

impl CleanupReport {
    /// RSS given back to the operating system (0 if RSS grew).
    pub fn rss_released(&self) -> u64 {
        self.rss_before.saturating_sub(self.rss_after)
    }
}

/// What a scope measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeReport {
    /// The scope's name.
    pub name: String,
    /// Live bytes on entry.
    pub live_before: u64,
    /// Live bytes on exit.
    pub live_after: u64,
    /// The highest live bytes while the scope was open (allocator only; RSS high-water otherwise).
    pub peak_bytes: u64,
    /// The largest single allocation while the scope was open, freed or not (allocator only;
    /// 0 otherwise).
    #[serde(default)]
    pub largest_allocation_bytes: u64,
}

impl ScopeReport {
    /// Live bytes on exit minus on entry.
    pub fn delta(&self) -> i64 {
        self.live_after as i64 - self.live_before as i64
    }

    /// How far the peak rose above the entry figure.
    pub fn peak_above_entry(&self) -> u64 {
        self.peak_bytes.saturating_sub(self.live_before)
    }
}

#[derive(Debug)]
struct Inner {
    config: ManagerConfig,
    probe: Box<dyn DeviceProbe>,
    timeline: Mutex<Timeline>,
    pool: AccumulatorPool,
    start: Instant,
    cleanups: AtomicU64,
}

/// Memory accounting and control for one device. `Send + Sync`, cheap to clone.
#[derive(Debug, Clone)]
pub struct MemoryManager {
    inner: Arc<Inner>,
}

impl MemoryManager {
    /// A manager for `device` with `config`.
    pub fn new(device: &Device, config: ManagerConfig) -> Result<Self> {
        Self::with_probe(probe_for(device)?, config)
    }

    /// A CPU manager with the default configuration.
    pub fn cpu() -> Self {
        Self::new(&Device::Cpu, ManagerConfig::default()).expect("the cpu probe always exists")
    }

    /// A manager reading its figures from `probe`.
    pub fn with_probe(probe: Box<dyn DeviceProbe>, config: ManagerConfig) -> Result<Self> {
        if let Some(l) = &config.cleanup_threshold {
            l.validate("cleanup threshold")?;
        }
        if let Some(l) = &config.budget {
            l.validate("memory budget")?;
        }
        let Some(capacity) = std::num::NonZeroUsize::new(config.timeline_capacity) else {
            return Err(MemoryError::InvalidConfig(
                "timeline capacity 0; expected at least 1 sample".into(),
            ));
        };
        Ok(MemoryManager {
            inner: Arc::new(Inner {
                timeline: Mutex::new(Timeline::new(capacity)),
                config,
                probe,
                pool: AccumulatorPool::new(),
                start: Instant::now(),
                cleanups: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The measured device.
    pub fn device(&self) -> &Device {
        self.inner.probe.device()
    }

    /// The accumulator pool.
    pub fn pool(&self) -> &AccumulatorPool {
        &self.inner.pool
    }

    /// How many cleanups ran.
    pub fn cleanup_count(&self) -> u64 {
        self.inner.cleanups.load(Ordering::Relaxed)
    }

    /// Current usage.
    pub fn usage(&self) -> Result<MemoryUsage> {
        let p = &self.inner.probe;
        Ok(MemoryUsage {
            live_bytes: p.live_bytes()?,
            peak_bytes: p.peak_bytes()?,
            rss_bytes: rss::rss_bytes().unwrap_or(0),
            source: p.source(),
        })
    }

    /// The cleanup threshold in bytes, if any.
    pub fn cleanup_threshold_bytes(&self) -> Result<Option<u64>> {
        match &self.inner.config.cleanup_threshold {
            None => Ok(None),
            Some(l) => Ok(Some(l.resolve(self.inner.probe.total_bytes()?))),
        }
    }

    /// The budget in bytes: the configured one, or live + the device's available memory.
    pub fn budget_bytes(&self) -> Result<u64> {
        match &self.inner.config.budget {
            Some(l) => Ok(l.resolve(self.inner.probe.total_bytes()?)),
            None => Ok(self.inner.probe.live_bytes()? + self.inner.probe.available_bytes()?),
        }
    }

    /// An [`AlertMonitor`] for `config`, a fraction in it being of the configured budget when
    /// there is one, else of the device's memory (physical memory on the CPU). Feed it
    /// [`MemoryManager::usage`]'s `live_bytes`, the figure the budget and the cleanup threshold
    /// are in.
    pub fn alert_monitor(&self, config: &AlertConfig) -> Result<AlertMonitor> {
        let total = self.inner.probe.total_bytes()?;
        let reference = match &self.inner.config.budget {
            Some(b) => b.resolve(total),
            None => total,
        };
        AlertMonitor::new(config, reference)
    }

    /// Fails with [`MemoryError::BudgetExceeded`] unless `requested` more bytes fit the budget.
    pub fn ensure_fits(&self, what: &'static str, requested: u64) -> Result<()> {
        let in_use = self.inner.probe.live_bytes()?;
        let budget = self.budget_bytes()?;
        let mut available = budget.saturating_sub(in_use);
        if self.inner.config.budget.is_some() {
            // A configured budget never promises more than the device can actually give.
            if let Ok(dev) = self.inner.probe.available_bytes() {
                available = available.min(dev);
            }
        }
        if requested > available {
            return Err(MemoryError::BudgetExceeded {
                what,
                requested,
                available,
                budget,
                in_use,
            });
        }
        Ok(())
    }

    /// Records a timeline sample and returns the usage it recorded.
    pub fn sample(&self, label: &str) -> Result<MemoryUsage> {
        let u = self.usage()?;
        self.push_sample(label, &u);
        Ok(u)
    }

    fn push_sample(&self, label: &str, u: &MemoryUsage) {
        let s = Sample {
            ts_us: self.inner.start.elapsed().as_micros() as u64,
            label: label.to_owned(),
            live_bytes: u.live_bytes,
            peak_bytes: u.peak_bytes,
            rss_bytes: u.rss_bytes,
        };
        self.inner
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(s);
    }

    /// Logs usage at info level under `label` and records a sample.
    pub fn log_usage(&self, label: &str) -> Result<MemoryUsage> {
        let u = self.sample(label)?;
        tracing::info!(
            target: "lsnn_memory",
            label,
            live_mib = mib(u.live_bytes),
            peak_mib = mib(u.peak_bytes),
            rss_mib = mib(u.rss_bytes),
            source = ?u.source,
            "memory usage"
        );
        Ok(u)
    }

    /// Releases memory: drops idle pooled buffers, trims the allocator, synchronises the device.
    pub fn cleanup(&self) -> Result<CleanupReport> {
        let rss_before = rss::rss_bytes().unwrap_or(0);
        let live_before = self.inner.probe.live_bytes()?;
        let (n, bytes) = self.inner.pool.clear_idle();
        self.inner.probe.synchronize()?;
        let trimmed = rss::trim_allocator();
        let report = CleanupReport {
            pooled_buffers_dropped: n,
            pooled_bytes_dropped: bytes,
            live_before,
            live_after: self.inner.probe.live_bytes()?,
            rss_before,
            rss_after: rss::rss_bytes().unwrap_or(0),
            trimmed,
        };
        self.inner.cleanups.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            target: "lsnn_memory",
            pooled_buffers = n,
            rss_released_kib = report.rss_released() / 1024,
            "cleanup"
        );
        let u = self.usage()?;
        self.push_sample("cleanup", &u);
        Ok(report)
    }

    /// Cleans up (and warns) when usage is above the cleanup threshold; returns the cleanup's
    /// report if one ran.
    pub fn check(&self) -> Result<Option<CleanupReport>> {
        let Some(threshold) = self.cleanup_threshold_bytes()? else {
            return Ok(None);
        };
        let live = self.inner.probe.live_bytes()?;
        if live <= threshold {
            return Ok(None);
        }
        let report = self.cleanup()?;
        tracing::warn!(
            target: "lsnn_memory",
            live_mib = mib(live),
            threshold_mib = mib(threshold),
            after_mib = mib(report.live_after),
            rss_released_mib = mib(report.rss_released()),
            "memory above the cleanup threshold; cleaned up"
        );
        Ok(Some(report))
    }

    /// Opens a named scope; the guard reports the live delta and the peak inside it.
    pub fn scope(&self, name: &str) -> MemoryScope {
        let live_before = self.inner.probe.live_bytes().unwrap_or(0);
        MemoryScope {
            manager: self.clone(),
            name: name.to_owned(),
            live_before,
            window: Some(PeakWindow::open()),
        }
    }

    /// A zeroed tensor from the pool, checked against the budget when it must be allocated.
    pub fn accumulator<S: Into<Shape>>(&self, shape: S, dtype: DType) -> Result<PooledTensor> {
        let shape = shape.into();
        let bytes = crate::safe::byte_size("accumulator", shape.dims(), dtype)?;
        let idle = self.inner.pool.stats().idle_bytes;
        if idle < bytes {
            self.ensure_fits("accumulator", bytes)?;
        }
        self.inner.pool.acquire(shape, dtype, self.device())
    }

    /// A copy of the timeline.
    pub fn timeline(&self) -> Timeline {
        self.inner
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The timeline as CSV.
    pub fn timeline_csv(&self) -> String {
        self.timeline().to_csv()
    }

    /// The timeline as a Chrome Trace Event document.
    pub fn timeline_chrome_trace(&self) -> serde_json::Value {
        self.timeline().to_chrome_trace()
    }

    /// Writes the timeline as CSV to `path`.
    pub fn write_timeline_csv(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.timeline_csv()).map_err(|source| MemoryError::Io {
            path: path.into(),
            source,
        })
    }

    /// Writes the timeline as Chrome Trace Event JSON to `path`.
    pub fn write_chrome_trace(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(&self.timeline_chrome_trace())
            .map_err(|e| MemoryError::InvalidConfig(e.to_string()))?;
        std::fs::write(path, text).map_err(|source| MemoryError::Io {
            path: path.into(),
            source,
        })
    }
}

fn mib(b: u64) -> f64 {
    (b as f64 / (1024.0 * 1024.0) * 100.0).round() / 100.0
}

/// A named scope opened by [`MemoryManager::scope`]. Close it with [`MemoryScope::finish`] to get
/// the figures; dropping it closes it too (and logs the figures at debug level).
///
/// Scopes nest: each restarts the allocator's peak window and folds its peak into the enclosing
/// one on exit, so nested scopes on one thread report exact peaks.
#[derive(Debug)]
#[must_use = "a scope measures until it is finished or dropped"]
pub struct MemoryScope {
    manager: MemoryManager,
    name: String,
    live_before: u64,
    window: Option<PeakWindow>,
}

impl MemoryScope {
    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Closes the scope and returns its figures.
    pub fn finish(mut self) -> ScopeReport {
        self.close()
    }

    fn close(&mut self) -> ScopeReport {
        let live_after = self.manager.inner.probe.live_bytes().unwrap_or(0);
        let (peak_bytes, largest_allocation_bytes) = match self.window.take() {
            Some(w) if alloc::is_installed() => {
                let largest = w.largest_allocation();
                (w.close(), largest)
            }
            Some(w) => {
                drop(w);
                (rss::peak_rss_bytes().unwrap_or(0), 0)
            }
            None => (0, 0),
        };
        let report = ScopeReport {
            name: std::mem::take(&mut self.name),
            live_before: self.live_before,
            live_after,
            peak_bytes,
            largest_allocation_bytes,
        };
        tracing::debug!(
            target: "lsnn_memory",
            scope = %report.name,
            delta_bytes = report.delta(),
            peak_bytes = report.peak_bytes,
            "scope closed"
        );
        let u = MemoryUsage {
            live_bytes: live_after,
            peak_bytes,
            rss_bytes: rss::rss_bytes().unwrap_or(0),
            source: self.manager.inner.probe.source(),
        };
        self.manager.push_sample(&report.name, &u);
        report
    }
}

impl Drop for MemoryScope {
    fn drop(&mut self) {
        if self.window.is_some() {
            self.close();
        }
    }
}
