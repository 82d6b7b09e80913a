//! The model trait the trainer is generic over: a user's own candle model trains with
//! [`crate::Trainer`] by implementing it (and [`crate::Dataset`] for its data).
//!
//! What the trainer needs of a model: how to build it through a `VarBuilder` (the trainer
//! supplies one that creates seeded variables, or one over stored tensors), a batch's losses
//! and gradients, its evaluation metrics, and how a batch splits into row shards (so that a
//! batch's shards run forward and backward on separate threads; a model that cannot split
//! runs whole). Optional: a hook after every optimizer step (ncps' LTC clamps its parameters
//! there) and per-layer statistics (spiking layers' firing rates).

use crate::error::Result;
use candle_core::backprop::GradStore;
use candle_nn::VarBuilder;
use lsnn_layers::Mode;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The losses of a batch (or a shard of one), detached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLoss {
    /// The training objective (what the gradients are of, e.g. label-smoothed).
    pub objective: f64,
    /// The loss reported in logs and metrics (e.g. the unsmoothed cross-entropy).
    pub loss: f64,
}

impl StepLoss {
    /// True when both are finite numbers (a batch to apply, not to skip).
    pub fn is_finite(&self) -> bool {
        self.objective.is_finite() && self.loss.is_finite()
    }
}

/// Spike counts of one spiking layer (lsnn-layers' type: the models there measure their own).
pub use lsnn_layers::LayerStats;

/// What a model of a config will need, estimated before it is built (design §8.2): the trainer
/// refuses a run that cannot fit its memory budget before allocating anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Bytes of the trainable parameters (f32).
    pub parameter_bytes: u64,
    /// Bytes of one training step's activations and their gradients at the run's batch size.
    pub step_activation_bytes: u64,
}

/// What the trainer needs of a model. `Sync` because a batch's shards run the same model on
/// several threads at once.
pub trait TrainModel: Sized + Sync {
    /// The model's configuration: its part of a run's `config.json` (a struct of named fields,
    /// none named like a [`crate::TrainConfig`] field).
    type Config: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync;
    /// A batch: inputs and targets, on the model's device.
    type Batch: Send + Sync;

    /// Builds the model; every trainable variable comes from `vb`.
    fn build(cfg: &Self::Config, vb: VarBuilder) -> Result<Self>;

    /// The memory a model of `cfg` needs at `batch_size`, computed without building it (none by
    /// default: the trainer then checks the parameters once they exist).
    fn memory_estimate(_cfg: &Self::Config, _batch_size: usize) -> Option<MemoryEstimate> {
        None
    }

    /// The detached losses of a training batch and the gradients of `scale`·objective, or
    /// `None` for the gradients when a loss is not finite (no backward pass then; the trainer
    /// skips the batch). Dropout draws from `mode`.
    fn loss_and_grads(
        &self,
        batch: &Self::Batch,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(StepLoss, Option<GradStore>)>;

    /// The names of [`TrainModel::eval_batch`]'s values, in order (the metrics CSV's columns).
    fn metric_names(&self) -> Vec<String>;

    /// The metrics of one validation batch in evaluation mode, as means over its rows (the
    /// trainer averages them over the validation set weighted by rows), in
    /// [`TrainModel::metric_names`]' order. Return at least the monitored metric (by default
    /// `val_loss`).
    fn eval_batch(&self, batch: &Self::Batch) -> Result<Vec<f64>>;

    /// Metrics derived from the averaged ones (e.g. perplexity from the loss), appended after
    /// them; their names come after [`TrainModel::metric_names`] in the CSV too.
    fn derived_metrics(&self, _means: &[(String, f64)]) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// Names of [`TrainModel::derived_metrics`].
    fn derived_metric_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Rows (examples) of a batch.
    fn batch_rows(batch: &Self::Batch) -> usize;

    /// Rows `start..start + len` of a batch as a batch of their own, or `None` when the model's
    /// batches cannot be split (it then trains each batch whole, on one thread).
    fn batch_part(_batch: &Self::Batch, _start: usize, _len: usize) -> Option<Result<Self::Batch>> {
        None
    }

    /// What a batch's losses and metrics are means over, as a weight: its rows by default; a
    /// model whose rows hold different amounts of scored data (padded sequences) returns that
    /// amount, so that a shard's share of its batch, and a validation batch's share of the
    /// validation set, are exact.
    fn batch_weight(batch: &Self::Batch) -> f64 {
        Self::batch_rows(batch) as f64
    }

    /// What throughput counts in a batch (tokens for a language model; by default its rows).
    fn batch_items(batch: &Self::Batch) -> u64 {
        Self::batch_rows(batch) as u64
    }

    /// Called after every optimizer step (e.g. to clamp constrained parameters).
    fn after_step(&self) -> Result<()> {
        Ok(())
    }

    /// Spike statistics of the model's spiking layers on a validation batch in evaluation
    /// mode (none by default), in the same order for every batch: the trainer merges them over
    /// the validation set and warns about silent and saturated layers (design §10.3).
    fn layer_stats(&self, _batch: &Self::Batch) -> Result<Vec<LayerStats>> {
        Ok(Vec::new())
    }

    /// The spike trains of the model's spiking layers on the first example of a validation
    /// batch, in evaluation mode and the order of [`TrainModel::layer_stats`] (none by
    /// default): the report's raster plots (design §10.6).
    fn spike_rasters(&self, _batch: &Self::Batch) -> Result<Vec<lsnn_layers::Raster>> {
        Ok(Vec::new())
    }

    /// [`TrainModel::eval_batch`] and [`TrainModel::layer_stats`] of one validation batch; a
    /// model that measures its layers during its evaluation pass overrides this to run once.
    fn eval_batch_with_stats(&self, batch: &Self::Batch) -> Result<(Vec<f64>, Vec<LayerStats>)> {
        Ok((self.eval_batch(batch)?, self.layer_stats(batch)?))
    }
}
