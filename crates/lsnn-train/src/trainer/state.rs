//! [`TrainerState`]: everything about a run's position that is not a tensor
//! (`trainer_state.json`, design §4.3), and the check that a saved position fits the data and
//! the config.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Format version of `trainer_state.json` written now. Version 1 (round 1: the metric history
/// named `val_history`, the best `best_val_loss`, no data fingerprint) and version 2 (no lineage)
/// still load.
pub const STATE_VERSION: u32 = 3;

/// Everything about a run's position that is not a tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Format version.
    pub format_version: u32,
    /// Optimizer steps taken (the LR schedule position).
    pub step: u64,
    /// Planned optimizer steps (the LR schedule's length).
    pub total_steps: u64,
    /// Micro-batches processed so far, skipped ones included.
    pub batches_seen: u64,
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Next batch index within the epoch's order.
    pub batch_in_epoch: usize,
    /// The current epoch's example order (empty before an epoch starts).
    pub epoch_order: Vec<u32>,
    /// Micro-batches in the current accumulation window so far.
    pub accum_in_window: usize,
    /// Of those, the ones whose gradient was accumulated (finite loss).
    pub accum_valid: usize,
    /// Data-order generator state.
    pub data_rng: [u64; 4],
    /// Dropout generator state.
    pub dropout_rng: [u64; 4],
    /// Best value of the monitored metric so far.
    #[serde(alias = "best_val_loss")]
    pub best: Option<f64>,
    /// The monitored metric after each finished epoch.
    #[serde(alias = "val_history")]
    pub history: Vec<f64>,
    /// Micro-batches skipped because the loss was not finite.
    pub skipped_batches: u64,
    /// Optimizer steps skipped because the gradient norm was not finite.
    pub skipped_steps: u64,
    /// Training items (tokens for the LM) consumed.
    pub tokens_seen: u64,
    /// Hash of `config.json`.
    pub config_hash: String,
    /// The data set's description ([`crate::Dataset::describe`]): what to rebuild it from.
    pub data_source: serde_json::Value,
    /// The data set's content fingerprint; `None` in version-1 states.
    #[serde(default)]
    pub data_fingerprint: Option<String>,
    /// Sum and count of the reported training loss since the last metrics row.
    pub loss_window: (f64, u64),
    /// Sum and count of the reported training loss of the current epoch.
    pub epoch_loss: (f64, u64),
    /// True once the run has finished (all epochs or early stop).
    pub finished: bool,
    /// The run's lineage: drawn when it first started, kept by every resume (retention removes
    /// only this lineage's sets, design §4.4); `None` before version 3.
    #[serde(default)]
    pub lineage: Option<String>,
    /// What `shard_rows: "auto"` chose when the run started (the resumed run keeps it); `None`
    /// for a fixed shard size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_sizing: Option<crate::shard::ShardSizing>,
    /// The instruction paths the kernels took when this state was saved (AVX-512 matmul or
    /// not, the fused or the composed path); a resume that takes others says so. `None` in
    /// sets written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_paths: Option<lsnn_layers::kernel::KernelPaths>,
}

impl TrainerState {
    /// Reads `trainer_state.json`'s text (`path` names it in errors), accepting versions 1
    /// to 3.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let state: TrainerState = serde_json::from_str(text).map_err(|e| TrainError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        if !(1..=STATE_VERSION).contains(&state.format_version) {
            return Err(TrainError::ckpt(
                path,
                format!(
                    "trainer_state format {}, expected 1..={STATE_VERSION}",
                    state.format_version
                ),
            ));
        }
        Ok(state)
    }
}

/// The saved position must fit the data and the config (a changed data file or an edited
/// state would otherwise index past the examples mid-run).
pub(crate) fn check_position(
    path: &Path,
    state: &TrainerState,
    train_len: usize,
    batch_size: usize,
    accumulation: usize,
) -> Result<()> {
    let per_epoch = train_len / batch_size.max(1);
    let order = &state.epoch_order;
    if !order.is_empty()
        && (order.len() != train_len || order.iter().any(|&w| w as usize >= train_len))
    {
        return Err(TrainError::ckpt(
            path,
            format!(
                "epoch_order lists {} examples (largest {}), but the data has {train_len} \
                 training examples; was the data changed?",
                order.len(),
                order.iter().max().copied().unwrap_or(0)
            ),
        ));
    }
    if state.batch_in_epoch > per_epoch || (state.batch_in_epoch > 0 && order.is_empty()) {
        return Err(TrainError::ckpt(
            path,
            format!(
                "batch_in_epoch {} with {} examples in epoch_order, expected at most {per_epoch} \
                 batches per epoch and an order once an epoch has started",
                state.batch_in_epoch,
                order.len()
            ),
        ));
    }
    if state.accum_in_window >= accumulation || state.accum_valid > state.accum_in_window {
        return Err(TrainError::ckpt(
            path,
            format!(
                "accum_in_window {} / accum_valid {}, expected accum_valid <= accum_in_window < \
                 gradient_accumulation_steps {accumulation}",
                state.accum_in_window, state.accum_valid
            ),
        ));
    }
    Ok(())
}
