//! `shard_rows: "auto"` (design §3.3.1): the shard size chosen from measured peaks. A training
//! step's peak follows the rows of the shards in flight (one per thread), not the batch, so
//! probe steps of 1, 2, 4, … rows (and the whole batch) run the real forward and backward on a
//! real batch under the counting allocator, smallest first, and the largest whose peak with
//! [`AUTO_HEADROOM`] fits the budget is chosen. Before each probe after the first its peak is
//! predicted from the previous one (the bytes above the live figure grow with the rows in
//! flight, a shard's rows times the threads, at most the batch); a size predicted not to fit is
//! recorded as such and not run, so no probe is started that is expected to pass the budget (the
//! one-row probe always runs, and a prediction can run low); a size predicted to fit is
//! measured, and probing stops at the first that does not fit. The probes draw their dropout masks from a copy
//! of the run's generator, so the run's own numbers do not depend on them, and everything they
//! allocate is freed when they return (a leak case guards it).

use super::{loss_and_grads, BatchGrads};
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use candle_core::Var;
use lsnn_layers::SeededRng;
use lsnn_memory::alloc;
use serde::{Deserialize, Serialize};

/// The share of the measured peak kept free on top of it when choosing: the optimizer update,
/// the accumulation buffers of the first step and the allocator's own slack are not in a probe.
pub const AUTO_HEADROOM: f64 = 0.15;

/// One probe step: its shard size and the peak live bytes the process reached during it (or,
/// for a size not run, the peak predicted from the previous probe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardProbe {
    /// Most rows per shard.
    pub rows: usize,
    /// The counting allocator's peak live bytes over the probe (the whole process: the model,
    /// optimizer state and data included), or the predicted peak when `measured` is false.
    pub peak_bytes: u64,
    /// Whether the step ran; false for a size whose predicted peak did not fit.
    pub measured: bool,
    /// Whether `peak_bytes · (1 + headroom)` fits the budget.
    pub fits: bool,
}

/// The outcome of `"auto"`: the rows chosen and the probes that chose them (recorded in the
/// run's state and reported when it starts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardSizing {
    /// The rows chosen: the largest probed size that fits.
    pub rows: usize,
    /// The batch's rows.
    pub batch_rows: usize,
    /// The budget compared with, in bytes.
    pub budget_bytes: u64,
    /// The headroom used ([`AUTO_HEADROOM`]).
    pub headroom: f64,
    /// Threads the probes ran on (shards run as many at a time).
    pub threads: usize,
    /// The probes, smallest first; the last one does not fit unless the whole batch does.
    pub probes: Vec<ShardProbe>,
}

impl ShardSizing {
    /// One line for a person: the choice, each probe's peak and the budget.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let probes: Vec<String> = self
            .probes
            .iter()
            .map(|p| {
                format!(
                    "{} row{} {}{:.1} MiB{}",
                    p.rows,
                    if p.rows == 1 { "" } else { "s" },
                    if p.measured { "" } else { "predicted " },
                    mib(p.peak_bytes),
                    if p.fits { "" } else { " (does not fit)" }
                )
            })
            .collect();
        format!(
            "shard_rows auto: {} of the batch's {} rows per shard, {} at a time; probe peaks {}; \
             budget {:.1} MiB with {:.0}% headroom",
            self.rows,
            self.batch_rows,
            self.threads,
            probes.join(", "),
            mib(self.budget_bytes),
            self.headroom * 100.0
        )
    }
}

/// The sizes a batch of `rows` is probed at: 1, 2, 4, … below `rows`, then `rows` (only `rows`
/// when the model's batches do not split).
pub fn candidates(rows: usize, splits: bool) -> Vec<usize> {
    let mut out = Vec::new();
    if splits {
        let mut r = 1;
        while r < rows {
            out.push(r);
            r *= 2;
        }
    }
    out.push(rows.max(1));
    out
}

/// The live bytes before and the peak live bytes during one training step of `batch` in shards
/// of at most `rows` rows, run with a copy of `rng` (the caller's generator does not move).
/// Needs the counting allocator.
pub fn probe_peak<M: TrainModel>(
    model: &M,
    batch: &M::Batch,
    rng: &SeededRng,
    vars: &[(String, Var)],
    rows: usize,
) -> Result<(u64, u64)> {
    let window = alloc::PeakWindow::open();
    let start = window.start_live();
    let out: Result<BatchGrads> = loss_and_grads(model, batch, &mut rng.clone(), vars, rows);
    // The gradients are live at the step's end (the trainer adds them into its buffers), so
    // the peak is read while they still are.
    let peak = window.close();
    drop(out?);
    Ok((start, peak))
}

/// A config error unless the counting allocator is installed: the probes measure with it.
pub(crate) fn require_counting_allocator() -> Result<()> {
    if alloc::is_installed() {
        return Ok(());
    }
    Err(TrainError::Config {
        field: "shard_rows".into(),
        message: "\"auto\" measures probe steps with the counting allocator, which this program \
                  does not install; install lsnn_memory::CountingAlloc as the global allocator, \
                  or set a number of rows"
            .into(),
    })
}

/// Chooses the shard rows of `batch` under `budget_bytes` (see the module docs). A budget that
/// not even one-row shards fit is [`lsnn_memory::MemoryError::BudgetExceeded`] with the measured
/// figure; a program without the counting allocator gets a config error saying so.
pub fn choose_shard_rows<M: TrainModel>(
    model: &M,
    batch: &M::Batch,
    rng: &SeededRng,
    vars: &[(String, Var)],
    budget_bytes: u64,
) -> Result<ShardSizing> {
    require_counting_allocator()?;
    let rows = M::batch_rows(batch);
    let splits = rows > 1 && M::batch_part(batch, 0, 1).is_some();
    let mut sizing = ShardSizing {
        rows: 0,
        batch_rows: rows,
        budget_bytes,
        headroom: AUTO_HEADROOM,
        threads: rayon::current_num_threads().max(1),
        probes: Vec::new(),
    };
    let fits = |peak: f64| peak * (1.0 + AUTO_HEADROOM) <= budget_bytes as f64;
    // Rows whose activations live at once: a wave of shards, one per thread.
    let in_flight = |r: usize| rows.min(r.saturating_mul(sizing.threads)) as f64;
    let mut last: Option<(usize, u64, u64)> = None;
    for r in candidates(rows, splits) {
        if let Some((prev, start, peak)) = last {
            let per_row = peak.saturating_sub(start) as f64 / in_flight(prev);
            let predicted = start as f64 + per_row * in_flight(r);
            if !fits(predicted) {
                sizing.probes.push(ShardProbe {
                    rows: r,
                    peak_bytes: predicted as u64,
                    measured: false,
                    fits: false,
                });
                break;
            }
        }
        let (start, peak) = probe_peak(model, batch, rng, vars, r)?;
        let ok = fits(peak as f64);
        sizing.probes.push(ShardProbe {
            rows: r,
            peak_bytes: peak,
            measured: true,
            fits: ok,
        });
        if !ok {
            break;
        }
        sizing.rows = r;
        last = Some((r, start, peak));
    }
    if sizing.rows == 0 {
        let need = sizing.probes[0].peak_bytes as f64 * (1.0 + AUTO_HEADROOM);
        return Err(lsnn_memory::MemoryError::BudgetExceeded {
            what: if splits {
                "a training step in shards of one row, with shard_rows auto's headroom \
                 (measured by a probe step)"
            } else {
                "a training step of the whole batch (the model's batches do not split), with \
                 shard_rows auto's headroom (measured by a probe step)"
            },
            requested: need as u64,
            available: budget_bytes,
            budget: budget_bytes,
            in_use: 0,
        }
        .into());
    }
    Ok(sizing)
}

#[cfg(test)]
mod tests {
    use super::candidates;

    #[test]
    fn candidates_double_up_to_the_batch() {
        assert_eq!(candidates(8, true), vec![1, 2, 4, 8]);
        assert_eq!(candidates(6, true), vec![1, 2, 4, 6]);
        assert_eq!(candidates(1, true), vec![1]);
        assert_eq!(candidates(6, false), vec![6]);
    }
}
