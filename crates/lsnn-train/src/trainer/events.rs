//! What a run reports: the [`Event`]s the loop emits (showing them is the caller's business),
//! an evaluation's metrics ([`EvalResult`]) and the end of a run ([`TrainSummary`]).

use lsnn_memory::MemoryUsage;
use std::path::PathBuf;

/// What the loop reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run starts (or resumes).
    Start {
        /// Planned epochs.
        epochs: usize,
        /// Micro-batches per epoch.
        batches_per_epoch: usize,
        /// Parameters.
        parameters: usize,
        /// Resumed at this many micro-batches.
        resumed_at: Option<u64>,
        /// The data's trivial baseline (name, value) of the monitored metric, if it has one.
        baseline: Option<(String, f64)>,
    },
    /// `shard_rows: "auto"` chose the shard size (or a resumed run took the recorded choice).
    ShardSizing {
        /// The choice and the probes behind it.
        sizing: crate::shard::ShardSizing,
        /// True when it was read from the resumed run's state rather than probed now.
        recorded: bool,
    },
    /// Peak memory by stage, from a probe step before training (design §10.5; only with
    /// [`super::TrainOptions::probe_stages`]).
    MemoryStages(crate::memory_stages::StageReport),
    /// A micro-batch was processed.
    Batch {
        /// Epoch.
        epoch: usize,
        /// Batch within the epoch.
        batch: usize,
        /// Batches per epoch.
        of: usize,
        /// Optimizer steps so far.
        step: u64,
        /// Reported loss of the batch (NaN when skipped).
        loss: f64,
        /// Learning rate in use.
        lr: f64,
        /// Training items (tokens) per second over the run so far (this process).
        tokens_per_s: f64,
        /// Live bytes.
        live_bytes: u64,
    },
    /// A micro-batch or step was skipped (non-finite loss or gradient).
    Skipped {
        /// Why.
        reason: String,
        /// Skipped so far.
        total: u64,
    },
    /// A memory line.
    Memory {
        /// When.
        label: String,
        /// The figures.
        usage: MemoryUsage,
        /// RSS released by the cleanup that preceded it.
        released: Option<u64>,
    },
    /// Live memory crossed a memory alert's threshold (design §10.2): up to warn or critical,
    /// or back down once below a threshold by the hysteresis. A rise to critical is followed by
    /// a `Memory` event labelled `critical` when `cleanup_on_critical` cleaned up.
    MemoryAlert(lsnn_memory::MemoryAlert),
    /// An epoch ended.
    EpochEnd {
        /// The epoch.
        epoch: usize,
        /// Mean reported training loss of the epoch.
        train_loss: f64,
        /// Validation evaluation.
        eval: EvalResult,
    },
    /// The spiking layers' firing over an epoch end's validation set (design §10.3), in the
    /// model's order; none when `spike_stats` is off or the model measures no layers.
    Firing {
        /// The epoch (0-based).
        epoch: usize,
        /// One summary per spiking layer.
        layers: Vec<crate::firing::LayerFiring>,
    },
    /// The spiking layers' spike trains on the first validation example at an epoch end
    /// (design §10.6), in the model's order; sent after [`Event::Firing`] when the model gives
    /// them.
    SpikeRaster {
        /// The epoch (0-based).
        epoch: usize,
        /// One train per spiking layer.
        layers: Vec<lsnn_layers::Raster>,
    },
    /// A spiking layer found silent or saturated at an epoch end.
    SpikeWarning(crate::firing::SpikeWarning),
    /// A checkpoint was written.
    Checkpoint {
        /// Its directory.
        dir: PathBuf,
        /// It is the run's best so far by the monitored metric (kept as `BEST`).
        best: bool,
    },
    /// Early stopping triggered.
    EarlyStop {
        /// The epoch.
        epoch: usize,
    },
    /// Something the user should know that is not an error (debris of a crashed save removed, a
    /// set that could not be verified, a stop requested).
    Notice(String),
}

/// An evaluation's figures: named metrics (the model's, then derived ones, then the data's own).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    /// (name, value) in the order of the metrics CSV's columns.
    pub metrics: Vec<(String, f64)>,
    /// Validation examples evaluated.
    pub examples: usize,
    /// The spiking layers' counts over the validation set (empty when not measured: the
    /// config's `spike_stats` off, or a model without [`crate::TrainModel::layer_stats`]).
    pub firing: Vec<crate::LayerStats>,
}

impl EvalResult {
    /// The metric `name`, if evaluated.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// `val_loss`, or NaN when the model reports none.
    pub fn loss(&self) -> f64 {
        self.get("val_loss").unwrap_or(f64::NAN)
    }
}

/// The end of a run.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Optimizer steps.
    pub steps: u64,
    /// Micro-batches processed.
    pub batches: u64,
    /// Last validation evaluation, if an epoch finished.
    pub last_eval: Option<EvalResult>,
    /// The data's trivial baseline, if it has one.
    pub baseline: Option<(String, f64)>,
    /// Every trivial baseline of the data ([`crate::Dataset::baselines`]).
    pub baselines: Vec<(String, f64)>,
    /// Skipped micro-batches and steps.
    pub skipped: u64,
    /// Training items (tokens) per second in this process.
    pub tokens_per_s: f64,
    /// Wall time in this process.
    pub seconds: f64,
    /// True when stopped (by `max_batches` or a stop request) before the end.
    pub interrupted: bool,
    /// True when the stop was requested through [`super::TrainOptions::stop`] (a signal, a
    /// closed output), not by `max_batches`.
    pub stop_requested: bool,
    /// True when the run had nothing left to train (it had already finished).
    pub nothing_to_train: bool,
}
