//! The training loop (design §8.1) for any [`TrainModel`] on any [`Dataset`]: AdamW with warm-up +
//! cosine decay, clipping, accumulation, EMA, a cleanup schedule with memory lines, non-finite
//! batches skipped and counted, early stopping and the best checkpoint by a monitored metric,
//! atomic checkpoints at epoch ends, and exact resume.
//!
//! The loop emits [`Event`]s; showing them is the caller's business. Every random draw comes
//! from two seeded generators (data order, dropout) whose states are saved, and the current
//! epoch's order is saved too, so a resumed run continues bit for bit where it stopped —
//! mid-epoch and mid-accumulation-window included.
//!
//! - [`state`]: `trainer_state.json`; [`events`]: what a run reports;
//! - `step`: one micro-batch and the optimizer step at a window's end;
//! - `run`: epochs, evaluation, metrics rows, early stopping;
//! - `resume`, `save`: the checkpoint on either side; `eval`: validation metrics;
//! - `shards`: the shard size of the steps (`shard_rows`, probed when `"auto"`).

mod eval;
pub mod events;
mod resume;
mod run;
mod save;
mod shards;
pub mod state;
mod step;

pub use eval::{evaluate_model, evaluate_with_firing};
pub use events::{EvalResult, Event, TrainSummary};
pub use state::{TrainerState, STATE_VERSION};

use crate::checkpoint::{self, retention, RunLock};
use crate::config::RunConfig;
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use crate::optim::{AdamW, AdamWConfig, Ema};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::{SeededInit, SeededRng};
use lsnn_memory::{AlertMonitor, ManagerConfig, MemoryLimit, MemoryManager};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Options of a run that are not part of its config.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Where checkpoints go.
    pub out_dir: PathBuf,
    /// Stop (and checkpoint) after this many micro-batches in total.
    pub max_batches: Option<u64>,
    /// Memory budget checked before training.
    pub memory_budget: Option<MemoryLimit>,
    /// Cleanup threshold (default 1 GiB).
    pub cleanup_threshold: MemoryLimit,
    /// A metrics row every this many optimizer steps (and at epoch ends).
    pub log_every: u64,
    /// Examples the data's own metrics may score at each epoch end (the built-in task's
    /// exact-match accuracy: held-out problems).
    pub extra_metric_budget: usize,
    /// Evaluate with the EMA weights.
    pub eval_with_ema: bool,
    /// Replace a run already in `out_dir` (its sets are removed once this run's first set is
    /// current); without it, a fresh run refuses a directory that holds one.
    pub overwrite: bool,
    /// Set to stop after the current micro-batch with a checkpoint (a signal handler, a closed
    /// output).
    pub stop: Option<Arc<AtomicBool>>,
    /// Before training, measure peak memory by stage on a one-thread probe step of a throwaway
    /// copy of the model (design §10.5; needs the counting allocator, else a notice).
    pub probe_stages: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            out_dir: PathBuf::from("runs/default"),
            max_batches: None,
            memory_budget: None,
            cleanup_threshold: MemoryLimit::Bytes(1 << 30),
            log_every: 25,
            extra_metric_budget: 256,
            eval_with_ema: false,
            overwrite: false,
            stop: None,
            probe_stages: false,
        }
    }
}

/// The trainer.
pub struct Trainer<M: TrainModel, D: Dataset<M>> {
    model: M,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    ema: Ema,
    cfg: RunConfig<M::Config>,
    config_json: String,
    data: D,
    state: TrainerState,
    data_rng: SeededRng,
    dropout_rng: SeededRng,
    acc: BTreeMap<String, Tensor>,
    metrics: Vec<String>,
    manager: MemoryManager,
    /// The memory alerts' monitor, when the config sets a threshold (its level starts at
    /// normal in every process: a resumed run re-alerts if usage is still high).
    alerts: Option<AlertMonitor>,
    opts: TrainOptions,
    device: Device,
    baseline: Option<(String, f64)>,
    /// The run directory's lock, held for the trainer's life.
    _lock: RunLock,
    /// Told at the start of `run` (debris removed, unverifiable sets).
    notices: Vec<String>,
    /// `overwrite`: the next save also removes the replaced run's sets.
    replace_pending: Cell<bool>,
    /// The fused linears' matmul precision for the training steps (mixed precision or not).
    precision: lsnn_layers::kernel::MatmulPrecision,
}

impl<M: TrainModel, D: Dataset<M>> std::fmt::Debug for Trainer<M, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The columns of the metrics CSV before the evaluation metrics.
const METRICS_PREFIX: &str = "step,epoch,batches,lr,train_loss";

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// A fresh run of `cfg` on `data`, writing to `opts.out_dir`: takes the directory's lock,
    /// refuses a directory that holds a run (unless `opts.overwrite`), and checks that the model
    /// and a training step fit the memory budget before building anything.
    pub fn new(cfg: RunConfig<M::Config>, data: D, opts: TrainOptions) -> Result<Self> {
        cfg.train.validate()?;
        data.check_model(&cfg.model)?;
        data.check_train(&cfg.train)?;
        let device = cfg.train.candle_device()?;
        // Before the run directory is touched (assemble checks again, for a resume).
        shards::check_auto(cfg.train.shard_rows, &device, &cfg.train.device)?;
        let budget_only = ManagerConfig {
            budget: opts.memory_budget,
            ..ManagerConfig::default()
        };
        alert_monitor(&cfg.train, &MemoryManager::new(&device, budget_only)?)?;
        let lock = RunLock::acquire(&opts.out_dir)?;
        if let Some(what) = retention::existing_run(&opts.out_dir) {
            if !opts.overwrite {
                return Err(TrainError::RunExists {
                    dir: opts.out_dir.clone(),
                    what,
                });
            }
        }
        let notices = retention::remove_leftovers(&opts.out_dir);
        check_memory::<M>(&cfg, &opts, &device)?;
        let mut root = SeededRng::new(cfg.train.seed);
        let init_rng = root.fork();
        let data_rng = root.fork();
        let dropout_rng = root.fork();
        let (model, vars) = build(&cfg.model, init_rng, &device)?;
        let config_json = cfg.to_json()?;
        let per_epoch = (data.train_len() / cfg.train.batch_size) as u64;
        let total_steps = (per_epoch * cfg.train.num_epochs as u64)
            .div_ceil(cfg.train.gradient_accumulation_steps as u64);
        let state = TrainerState {
            format_version: STATE_VERSION,
            step: 0,
            total_steps,
            batches_seen: 0,
            epoch: 0,
            batch_in_epoch: 0,
            epoch_order: Vec::new(),
            accum_in_window: 0,
            accum_valid: 0,
            data_rng: data_rng.state(),
            dropout_rng: dropout_rng.state(),
            best: None,
            history: Vec::new(),
            skipped_batches: 0,
            skipped_steps: 0,
            tokens_seen: 0,
            config_hash: checkpoint::config_hash(&config_json),
            data_source: data.describe(),
            data_fingerprint: Some(data.fingerprint()),
            loss_window: (0.0, 0),
            epoch_loss: (0.0, 0),
            finished: false,
            lineage: Some(new_lineage()),
            shard_sizing: None,
            kernel_paths: Some(
                lsnn_layers::kernel::KernelPaths::for_device(&device)
                    .with_precision(cfg.train.matmul_precision(&device).0),
            ),
        };
        let replace = opts.overwrite;
        let mut t = Self::assemble(
            model,
            vars,
            cfg,
            config_json,
            data,
            state,
            opts,
            device,
            lock,
        )?;
        t.metrics.push(t.metrics_header());
        t.notices.extend(notices);
        t.replace_pending.set(replace);
        Ok(t)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        model: M,
        vars: Vec<(String, Var)>,
        cfg: RunConfig<M::Config>,
        config_json: String,
        data: D,
        state: TrainerState,
        opts: TrainOptions,
        device: Device,
        lock: RunLock,
    ) -> Result<Self> {
        if data.train_len() < cfg.train.batch_size {
            return Err(TrainError::Config {
                field: "batch_size".into(),
                message: format!(
                    "{} but the data holds only {} training examples",
                    cfg.train.batch_size,
                    data.train_len()
                ),
            });
        }
        if data.val_len() == 0 {
            return Err(TrainError::Config {
                field: "validation data".into(),
                message: "no validation examples; expected at least one".into(),
            });
        }
        shards::check_auto(cfg.train.shard_rows, &device, &cfg.train.device)?;
        let opt = AdamW::new(
            &vars,
            AdamWConfig {
                weight_decay: cfg.train.weight_decay,
                amsgrad: cfg.train.amsgrad,
                ..AdamWConfig::default()
            },
        )?;
        let ema = Ema::new(&vars, cfg.train.ema_decay)?;
        let manager = MemoryManager::new(
            &device,
            ManagerConfig {
                cleanup_threshold: Some(opts.cleanup_threshold),
                budget: opts.memory_budget,
                ..ManagerConfig::default()
            },
        )?;
        // A fresh run checked this before the run directory was touched; a resume under another
        // budget or device may find the thresholds no longer ordered: the alerts, which change
        // no number of the run, are then off for this process, with a notice.
        let (alerts, alert_notice) = match alert_monitor(&cfg.train, &manager) {
            Ok(a) => (a, None),
            Err(e) => (
                None,
                Some(format!(
                    "memory alerts are off for this process: {e} (with this memory budget and device)"
                )),
            ),
        };
        // Weights, EMA, two moments and a gradient: the least a step needs.
        let param_bytes: u64 = vars.iter().map(|(_, v)| (v.elem_count() * 4) as u64).sum();
        manager.ensure_fits("model, EMA, optimizer state and gradients", param_bytes * 5)?;
        let data_rng = SeededRng::from_state(state.data_rng)
            .ok_or_else(|| TrainError::ckpt(&opts.out_dir, "data generator state is all zero"))?;
        let dropout_rng = SeededRng::from_state(state.dropout_rng).ok_or_else(|| {
            TrainError::ckpt(&opts.out_dir, "dropout generator state is all zero")
        })?;
        let baseline = data.baseline();
        let (precision, precision_notice) = cfg.train.matmul_precision(&device);
        Ok(Trainer {
            model,
            vars,
            opt,
            ema,
            cfg,
            config_json,
            data,
            state,
            data_rng,
            dropout_rng,
            acc: BTreeMap::new(),
            metrics: Vec::new(),
            manager,
            alerts,
            opts,
            device,
            baseline,
            _lock: lock,
            notices: precision_notice.into_iter().chain(alert_notice).collect(),
            replace_pending: Cell::new(false),
            precision,
        })
    }

    /// The metrics CSV's header: the fixed columns, the model's metrics, the derived ones, the
    /// data's own, and the skipped count.
    fn metrics_header(&self) -> String {
        let mut cols: Vec<String> = vec![METRICS_PREFIX.into()];
        cols.extend(self.model.metric_names());
        cols.extend(self.model.derived_metric_names());
        cols.extend(self.data.extra_metric_names());
        cols.push("skipped".into());
        cols.join(",")
    }

    /// The run's configuration.
    pub fn config(&self) -> &RunConfig<M::Config> {
        &self.cfg
    }

    /// The position of the run.
    pub fn state(&self) -> &TrainerState {
        &self.state
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The memory manager.
    pub fn memory(&self) -> &MemoryManager {
        &self.manager
    }

    /// The data set.
    pub fn data(&self) -> &D {
        &self.data
    }

    /// The data's trivial baseline, if it has one.
    pub fn baseline(&self) -> Option<&(String, f64)> {
        self.baseline.as_ref()
    }

    /// Named trainable variables, sorted by name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The device the run trains on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The metrics CSV text.
    pub fn metrics_csv(&self) -> String {
        let mut s = self.metrics.join("\n");
        s.push('\n');
        s
    }

    fn batches_per_epoch(&self) -> usize {
        self.data.train_len() / self.cfg.train.batch_size
    }
}

/// A new lineage id: unique per fresh run (time, pid and a counter, hashed).
fn new_lineage() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}-{}-{n}", std::process::id());
    checkpoint::manifest::sha256_hex(seed.as_bytes())[..16].to_string()
}

/// Refuses a run whose parameters (with their EMA, AdamW moments and gradient) and one training
/// step's activations would not fit the memory budget or the memory available, before anything
/// is allocated — from the model's own estimate, when it gives one.
fn check_memory<M: TrainModel>(
    cfg: &RunConfig<M::Config>,
    opts: &TrainOptions,
    device: &Device,
) -> Result<()> {
    let Some(est) = M::memory_estimate(&cfg.model, rows_in_flight(&cfg.train)) else {
        return Ok(());
    };
    let manager = MemoryManager::new(
        device,
        ManagerConfig {
            budget: opts.memory_budget,
            ..ManagerConfig::default()
        },
    )?;
    let params = est.parameter_bytes.saturating_mul(5);
    let step = params.saturating_add(est.step_activation_bytes);
    manager.ensure_fits(
        "model, EMA, optimizer state and gradients (estimated from the config)",
        params,
    )?;
    manager.ensure_fits(
        "model state and one training step's activations (estimated from the config)",
        step,
    )?;
    if device.is_cpu() {
        // Without a budget the manager compares with the machine's memory; what is free now
        // is the tighter bound.
        if let Ok(free) = lsnn_memory::rss::available_memory_bytes() {
            if step > free {
                return Err(lsnn_memory::MemoryError::BudgetExceeded {
                    what: "model state and one training step's activations (estimated from the config)",
                    requested: step,
                    available: free,
                    budget: free,
                    in_use: 0,
                }
                .into());
            }
        }
    }
    Ok(())
}

/// The batch rows whose activations live at once in a training step: a shard's rows (one for
/// `shard_rows: "auto"`, its smallest choice) times the threads, at most the batch (shard
/// module). A model whose batches do not split holds the whole batch; the estimate then runs
/// low, and the measured figures (the manager's lines, `"auto"`'s probes) are the check.
fn rows_in_flight(train: &crate::TrainConfig) -> usize {
    let per_shard = match train.shard_rows {
        crate::shard::ShardRows::Fixed(n) => n,
        crate::shard::ShardRows::Auto => 1,
    };
    let threads = rayon::current_num_threads().max(1);
    train.batch_size.min(per_shard.saturating_mul(threads))
}

/// A model of `cfg` with fresh variables from `rng` (SeededInit), and its variables by name.
fn build<M: TrainModel>(
    cfg: &M::Config,
    rng: SeededRng,
    device: &Device,
) -> Result<(M, Vec<(String, Var)>)> {
    let varmap = VarMap::new();
    let vb = SeededInit::var_builder(&varmap, rng, DType::F32, device);
    let model = M::build(cfg, vb)?;
    Ok((model, lsnn_layers::named_vars(&varmap)))
}

/// The memory alerts' monitor of `train`'s thresholds (None without one), percentages resolved
/// by `manager` (design §10.2); thresholds that are not ordered once resolved are a config error
/// naming both fields.
fn alert_monitor(
    train: &crate::TrainConfig,
    manager: &MemoryManager,
) -> Result<Option<AlertMonitor>> {
    let config = train.alert_config();
    if config.warn.is_none() && config.critical.is_none() {
        return Ok(None);
    }
    manager
        .alert_monitor(&config)
        .map(Some)
        .map_err(|e| match e {
            lsnn_memory::MemoryError::InvalidConfig(message) => TrainError::Config {
                field: "memory_warn / memory_critical".into(),
                message,
            },
            other => other.into(),
        })
}
