//! The dataset trait the trainer is generic over: training and validation examples by index,
//! an epoch order (saved in checkpoints, so a resume continues mid-epoch), and a content
//! fingerprint that a resume checks, so that a run never continues on changed data.

use crate::error::Result;
use crate::model::TrainModel;
use candle_core::Device;
use lsnn_layers::SeededRng;

/// A data set for model `M`.
pub trait Dataset<M: TrainModel>: Sync {
    /// Training examples.
    fn train_len(&self) -> usize;
    /// Validation examples.
    fn val_len(&self) -> usize;
    /// The training examples `indices` as one batch on `device`.
    fn train_batch(&self, indices: &[u32], device: &Device) -> Result<M::Batch>;
    /// The validation examples `indices` as one batch on `device`.
    fn val_batch(&self, indices: &[u32], device: &Device) -> Result<M::Batch>;

    /// The order of one epoch's training examples (a seeded shuffle of all of them).
    fn epoch_order(&self, rng: &mut SeededRng) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.train_len() as u32).collect();
        rng.shuffle(&mut order);
        order
    }

    /// A hash of the content (every example, train and validation): a resume refuses data
    /// whose fingerprint differs from the one saved with the run.
    fn fingerprint(&self) -> String;

    /// A description the caller can rebuild the data set from (recorded in the checkpoint).
    fn describe(&self) -> serde_json::Value;

    /// Checks that the data suits the model's configuration (e.g. its vocabulary).
    fn check_model(&self, _cfg: &M::Config) -> Result<()> {
        Ok(())
    }

    /// Checks that the data agrees with the trainer's settings that describe it (e.g. the
    /// spike encoding its batches go through), so that a run's config says what it trained on.
    fn check_train(&self, _train: &crate::TrainConfig) -> Result<()> {
        Ok(())
    }

    /// A trivial baseline of the validation data for the monitored metric, with its name (e.g.
    /// the bigram cross-entropy), printed beside results.
    fn baseline(&self) -> Option<(String, f64)> {
        None
    }

    /// Every trivial baseline of the validation data as (`baseline_…` name, value): the
    /// figures printed beside a run's results and written by `lsnn eval --json` (e.g. the
    /// bigram cross-entropy; a regression's mean and persistence predictors).
    fn baselines(&self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// Names of [`Dataset::extra_metrics`] (columns of the metrics CSV).
    fn extra_metric_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Metrics only this data can score (e.g. exact-match accuracy of generated answers),
    /// with at most `budget` examples; in [`Dataset::extra_metric_names`]' order.
    fn extra_metrics(&self, _model: &M, _budget: usize) -> Result<Vec<(String, f64)>> {
        Ok(Vec::new())
    }
}

/// FNV-1a over a stream of `u64` words, as hex: the fingerprint helper of the data sets.
pub fn fnv1a(words: impl IntoIterator<Item = u64>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for w in words {
        for b in w.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    format!("{h:016x}")
}
