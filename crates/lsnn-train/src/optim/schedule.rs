//! Pure policies: the learning-rate schedule and the memory-cleanup schedule. Functions from
//! step/epoch to an action, tested without tensors or disk.

use crate::config::MonitorMode;

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to 0 at `total`.
///
/// `step` counts optimizer steps from 0; the rate used for step `s` is `lr_at(s, …)`.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let decay_len = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup.min(step)) as f64 / decay_len as f64).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Why a cleanup runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupReason {
    /// Every `every` batches.
    Periodic,
    /// At the end of an epoch.
    EpochEnd,
}

/// The cleanup policy: after batch number `batch` (1-based, counted over the whole run), and at
/// each epoch end. `every` = 0 disables the periodic cleanup.
pub fn cleanup_after_batch(batch: u64, every: usize, epoch_end: bool) -> Option<CleanupReason> {
    if epoch_end {
        Some(CleanupReason::EpochEnd)
    } else if every > 0 && batch > 0 && batch.is_multiple_of(every as u64) {
        Some(CleanupReason::Periodic)
    } else {
        None
    }
}

/// Early stopping: given the monitored metric after each epoch, true when the best (by `mode`)
/// is `patience` or more epochs old (`patience` = 0 never stops). NaN never counts as best.
pub fn should_stop_early(history: &[f64], patience: usize, mode: MonitorMode) -> bool {
    if patience == 0 || history.is_empty() {
        return false;
    }
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in history.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| mode.better(v, b)) {
            best = Some((i, v));
        }
    }
    let best_idx = best.map_or(0, |(i, _)| i);
    history.len() - 1 - best_idx >= patience
}
