//! The threading policy a program using these layers gets from [`init`] (design §3.3).
//!
//! candle runs elementwise ops of 64 Ki elements and more on its own "barrier pool", whose
//! threads spin while they wait for work. lsnn's fused ops, and the trainer's batch shards, run
//! on rayon's threads; beside them the spinning pool takes the cores the shards need (measured
//! on lm-small training, 2 cores: 6,737 tokens/s with candle's pool at two threads against
//! 10,000 at one, docs/performance.md). Gradient accumulation in candle's backward is such an
//! elementwise op, so the pool cannot be avoided by keeping the hot paths in lsnn's own ops.
//! candle reads `CANDLE_NUM_THREADS` once, when the pool is first used, so the setting must be
//! made before any candle work: that is what [`init`] is for.

use std::sync::OnceLock;

/// What [`init`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threading {
    /// Worker threads in candle's elementwise pool besides the calling thread (0 = the policy:
    /// elementwise ops on the calling thread).
    pub candle_workers: usize,
    /// True when `CANDLE_NUM_THREADS` was set by the user and left as it is.
    pub user_setting: bool,
    /// True when candle's pool already existed with workers before [`init`] could set it (a
    /// warning was logged; the policy is not in force).
    pub too_late: bool,
}

static DONE: OnceLock<Threading> = OnceLock::new();

/// Sets lsnn's threading policy: candle's elementwise pool gets one thread (no spinning
/// workers) unless `CANDLE_NUM_THREADS` is set, and creates the pool now so that nothing later
/// can change it. Call it first in `main`, before any other thread or tensor exists (it sets an
/// environment variable). Idempotent: later calls return the first call's result. When candle's
/// pool already has workers, it logs a warning (`tracing`) and says so in the result.
pub fn init() -> Threading {
    *DONE.get_or_init(|| {
        let user_setting = std::env::var_os("CANDLE_NUM_THREADS").is_some();
        if !user_setting {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        let candle_workers = candle_core::utils::barrier_pool().n_workers();
        let too_late = !user_setting && candle_workers > 0;
        if too_late {
            tracing::warn!(
                candle_workers,
                "lsnn_layers::init() came after candle's elementwise pool started with {candle_workers} \
                 spinning workers; call it first in main (or set CANDLE_NUM_THREADS=1) for lsnn's \
                 threading policy"
            );
        }
        Threading {
            candle_workers,
            user_setting,
            too_late,
        }
    })
}
