//! Pure policies: the learning-rate schedule and the memory-cleanup schedule. Functions from
//! step/epoch to an action, tested without tensors or disk.

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
    } else if every > 0 && batch > 0 && batch % every as u64 == 0 {
        Some(CleanupReason::Periodic)
    } else {
        None
    }
}

/// Early stopping: given validation losses per epoch, true when the best is `patience` or more
/// epochs old (`patience` = 0 never stops).
pub fn should_stop_early(val_losses: &[f64], patience: usize) -> bool {
    if patience == 0 || val_losses.is_empty() {
        return false;
    }
    let (best_idx, _) =
        val_losses
            .iter()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |(bi, bv), (i, &v)| if v < bv { (i, v) } else { (bi, bv) },
            );
    val_losses.len() - 1 - best_idx >= patience
}
