//! # lsnn-memory
//!
//! Exact memory accounting for candle programs, and the tools to keep a training run's memory
//! flat and prove it (design §7):
//!
//! - [`CountingAlloc`]: a counting global allocator — live, peak (with nested [`PeakWindow`]s),
//!   allocation and free counts, readable from any thread with relaxed atomics;
//! - [`rss`]: what the OS sees (RSS, `VmHWM`, physical/available memory, allocator trim);
//! - [`DeviceProbe`]: live/peak/total figures for one candle `Device` (CPU; CUDA behind `cuda`);
//! - [`MemoryManager`]: cleanup threshold, budget, `cleanup()`, `log_usage()`, nested
//!   [`scope`](MemoryManager::scope)s, a bounded timeline exportable as CSV and Chrome trace JSON;
//! - [`AccumulatorPool`]: reusable zeroed buffers for memory no autograd graph holds;
//! - [`safe_zeros`], [`safe_ones`], [`safe_cat`], [`safe_stack`]: constructors that answer an
//!   over-budget request with [`MemoryError::BudgetExceeded`] instead of aborting;
//! - [`LeakDetector`]: warm-up + N iterations, growth, slope, peak trend and a verdict; and
//!   [`leak::runner`]: named cases and the controls that must fail, run isolated (a child
//!   process each, or a lock and one compute thread) — for the project's suite and a user's own
//!   `#[test]`.
//!
//! This crate knows nothing of layers or training (design §1); what "leak-free" means and how
//! it is proven: design §7.
//!
//! ## Installing the allocator and measuring a training loop
//!
//! ```
//! use lsnn_memory::{CountingAlloc, MemoryManager};
//! use candle_core::{Device, Tensor};
//!
//! #[global_allocator]
//! static ALLOC: CountingAlloc = CountingAlloc;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let manager = MemoryManager::cpu();
//!     let training = manager.scope("training");
//!     for step in 0..3 {
//!         let epoch = manager.scope("step");
//!         let x = Tensor::ones((256, 256), candle_core::DType::F32, &Device::Cpu)?;
//!         let _y = x.matmul(&x)?;
//!         let report = epoch.finish();
//!         // Two 256×256 f32 tensors (and the product) were live at once inside the step.
//!         assert!(report.peak_above_entry() >= 2 * 256 * 256 * 4, "step {step}");
//!     }
//!     let report = training.finish();
//!     assert!(report.peak_bytes >= report.live_before);
//!     manager.log_usage("after training")?;
//!     Ok(())
//! }
//! ```
#![deny(missing_docs)]

pub mod alert;
pub mod alloc;
mod error;
pub mod leak;
pub mod manager;
pub mod pool;
pub mod probe;
pub mod rss;
pub mod safe;
pub mod timeline;

pub use alert::{AlertConfig, AlertLevel, AlertMonitor, MemoryAlert, DEFAULT_HYSTERESIS};
pub use alloc::{AllocStats, CountingAlloc, PeakWindow};
pub use error::{MemoryError, Result};
pub use leak::{LeakConfig, LeakDetector, LeakReport, Verdict};
pub use manager::{
    parse_size, CleanupReport, ManagerConfig, MemoryLimit, MemoryManager, MemoryScope, MemoryUsage,
    ScopeReport,
};
pub use pool::{AccumulatorPool, PoolStats, PooledTensor};
#[cfg(feature = "cuda")]
pub use probe::CudaProbe;
pub use probe::{probe_for, CpuProbe, DeviceProbe, MemorySource};
pub use safe::{byte_size, safe_cat, safe_ones, safe_stack, safe_zeros};
pub use timeline::{Sample, Timeline};
