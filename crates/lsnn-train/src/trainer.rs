//! The training loop (SPEC §5): AdamW with warm-up + cosine decay, clipping, accumulation, EMA,
//! a cleanup schedule with memory lines, non-finite batches skipped and counted, early stopping,
//! atomic checkpoints at epoch ends, and exact resume.
//!
//! The loop emits [`Event`]s; showing them (progress bar, log lines) is the caller's business.
//! Every random draw comes from two seeded generators (data order, dropout) whose states are
//! saved, and the current epoch's window order is saved too, so a resumed run continues bit for
//! bit where it stopped — mid-epoch and mid-accumulation-window included.

use crate::checkpoint::{self, CheckpointData};
use crate::data::{ArithmeticTask, ByteTokenizer, DataSource, TokenDataset};
use crate::error::{Result, TrainError};
use crate::model::TrainableModel;
use crate::optim::{global_norm, AdamW, AdamWConfig, Ema};
use crate::schedule::{cleanup_after_batch, lr_at, should_stop_early, CleanupReason};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lsnn_layers::{LanguageModel, ModelConfig, SeededInit, SeededRng};
use lsnn_memory::{ManagerConfig, MemoryLimit, MemoryManager, MemoryUsage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Format version of `trainer_state.json`.
pub const STATE_VERSION: u32 = 1;

/// Everything about a run's position that is not a tensor (`trainer_state.json`).
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
    /// The current epoch's window order (empty before an epoch starts).
    pub epoch_order: Vec<u32>,
    /// Micro-batches in the current accumulation window so far.
    pub accum_in_window: usize,
    /// Of those, the ones whose gradient was accumulated (finite loss).
    pub accum_valid: usize,
    /// Data-order generator state.
    pub data_rng: [u64; 4],
    /// Dropout generator state.
    pub dropout_rng: [u64; 4],
    /// Best validation loss so far.
    pub best_val_loss: Option<f64>,
    /// Validation loss after each finished epoch.
    pub val_history: Vec<f64>,
    /// Micro-batches skipped because the loss was not finite.
    pub skipped_batches: u64,
    /// Optimizer steps skipped because the gradient norm was not finite.
    pub skipped_steps: u64,
    /// Training tokens consumed.
    pub tokens_seen: u64,
    /// Hash of `config.json`.
    pub config_hash: String,
    /// The data the run trains on.
    pub data_source: DataSource,
    /// Sum and count of the unsmoothed training loss since the last metrics row.
    pub loss_window: (f64, u64),
    /// Sum and count of the unsmoothed training loss of the current epoch.
    pub epoch_loss: (f64, u64),
    /// True once the run has finished (all epochs or early stop).
    pub finished: bool,
}

/// Options of a run that are not part of the model config.
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
    /// Held-out problems scored for exact-match accuracy at epoch ends (built-in task only).
    pub accuracy_problems: usize,
    /// Evaluate with the EMA weights.
    pub eval_with_ema: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            out_dir: PathBuf::from("runs/default"),
            max_batches: None,
            memory_budget: None,
            cleanup_threshold: MemoryLimit::Bytes(1 << 30),
            log_every: 25,
            accuracy_problems: 256,
            eval_with_ema: false,
        }
    }
}

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
        /// Bigram baseline of the validation split (nats/token).
        bigram_baseline: f64,
    },
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
        /// Unsmoothed loss of the batch.
        loss: f64,
        /// Learning rate in use.
        lr: f64,
        /// Training tokens per second over the run so far (this process).
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
    /// An epoch ended.
    EpochEnd {
        /// The epoch.
        epoch: usize,
        /// Mean unsmoothed training loss of the epoch.
        train_loss: f64,
        /// Validation evaluation.
        eval: EvalResult,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Its directory.
        dir: PathBuf,
    },
    /// Early stopping triggered.
    EarlyStop {
        /// The epoch.
        epoch: usize,
    },
}

/// An evaluation's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Mean unsmoothed next-token cross-entropy (nats/token).
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
    /// Exact-match accuracy of generated answers (built-in task), else `None`.
    pub accuracy: Option<f64>,
    /// Windows evaluated.
    pub windows: usize,
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
    /// Bigram baseline.
    pub bigram_baseline: f64,
    /// Skipped micro-batches and steps.
    pub skipped: u64,
    /// Tokens per second in this process.
    pub tokens_per_s: f64,
    /// Wall time in this process.
    pub seconds: f64,
    /// True when stopped by `max_batches` before the end.
    pub interrupted: bool,
}

/// The trainer.
pub struct Trainer<M: TrainableModel = LanguageModel> {
    model: M,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    ema: Ema,
    cfg: ModelConfig,
    config_json: String,
    data: TokenDataset,
    task: Option<ArithmeticTask>,
    state: TrainerState,
    data_rng: SeededRng,
    dropout_rng: SeededRng,
    acc: BTreeMap<String, Tensor>,
    metrics: Vec<String>,
    manager: MemoryManager,
    opts: TrainOptions,
    device: Device,
    bigram: f64,
}

impl<M: TrainableModel> std::fmt::Debug for Trainer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The metrics CSV header.
pub const METRICS_HEADER: &str =
    "step,epoch,batches,lr,train_loss,val_loss,val_ppl,accuracy,skipped";

impl<M: TrainableModel> Trainer<M> {
    /// A fresh run of `cfg` on `data`.
    pub fn new(cfg: ModelConfig, data: TokenDataset, opts: TrainOptions) -> Result<Self> {
        cfg.validate()?;
        if data.seq_len() != cfg.sequence_length {
            return Err(TrainError::Config {
                field: "sequence_length".into(),
                message: format!(
                    "data windows are {} long, config says {}",
                    data.seq_len(),
                    cfg.sequence_length
                ),
            });
        }
        let device = cfg.candle_device()?;
        let mut root = SeededRng::new(cfg.seed);
        let init_rng = root.fork();
        let data_rng = root.fork();
        let dropout_rng = root.fork();
        let varmap = VarMap::new();
        let vb = SeededInit::var_builder(&varmap, init_rng, DType::F32, &device);
        let model = M::build(&cfg, vb)?;
        let vars = lsnn_layers::named_vars(&varmap);
        let config_json = cfg.to_json();
        let windows = data.train_windows();
        let per_epoch = (windows / cfg.batch_size) as u64;
        let total_steps =
            (per_epoch * cfg.num_epochs as u64).div_ceil(cfg.gradient_accumulation_steps as u64);
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
            best_val_loss: None,
            val_history: Vec::new(),
            skipped_batches: 0,
            skipped_steps: 0,
            tokens_seen: 0,
            config_hash: checkpoint::config_hash(&config_json),
            data_source: data.source().clone(),
            loss_window: (0.0, 0),
            epoch_loss: (0.0, 0),
            finished: false,
        };
        Self::assemble(
            model,
            vars,
            cfg,
            config_json,
            data,
            state,
            opts,
            device,
            vec![METRICS_HEADER.to_string()],
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        model: M,
        vars: Vec<(String, Var)>,
        cfg: ModelConfig,
        config_json: String,
        data: TokenDataset,
        state: TrainerState,
        opts: TrainOptions,
        device: Device,
        metrics: Vec<String>,
    ) -> Result<Self> {
        if data.train_windows() < cfg.batch_size {
            return Err(TrainError::Config {
                field: "batch_size".into(),
                message: format!(
                    "{} but the data holds only {} training windows",
                    cfg.batch_size,
                    data.train_windows()
                ),
            });
        }
        let opt = AdamW::new(
            &vars,
            AdamWConfig {
                weight_decay: cfg.weight_decay,
                amsgrad: cfg.amsgrad,
                ..AdamWConfig::default()
            },
        )?;
        let ema = Ema::new(&vars, cfg.ema_decay)?;
        let manager = MemoryManager::new(
            &device,
            ManagerConfig {
                cleanup_threshold: Some(opts.cleanup_threshold),
                budget: opts.memory_budget,
                ..ManagerConfig::default()
            },
        )?;
        // Weights, EMA, two moments and a gradient: the least a step needs.
        let param_bytes: u64 = vars.iter().map(|(_, v)| (v.elem_count() * 4) as u64).sum();
        manager.ensure_fits("model, EMA, optimizer state and gradients", param_bytes * 5)?;
        let task = match data.source() {
            DataSource::Arithmetic { seed } => Some(ArithmeticTask::new(*seed)),
            DataSource::TextFile { .. } => None,
        };
        let bigram = crate::data::bigram_baseline(&data, cfg.vocab_size.max(ByteTokenizer::VOCAB));
        let data_rng = SeededRng::from_state(state.data_rng)
            .ok_or_else(|| TrainError::ckpt(&opts.out_dir, "data generator state is all zero"))?;
        let dropout_rng = SeededRng::from_state(state.dropout_rng).ok_or_else(|| {
            TrainError::ckpt(&opts.out_dir, "dropout generator state is all zero")
        })?;
        if cfg.vocab_size != ByteTokenizer::VOCAB {
            return Err(lsnn_layers::LayerError::VocabMismatch {
                config: cfg.vocab_size,
                tokenizer: ByteTokenizer::VOCAB,
            }
            .into());
        }
        Ok(Trainer {
            model,
            vars,
            opt,
            ema,
            cfg,
            config_json,
            data,
            task,
            state,
            data_rng,
            dropout_rng,
            acc: BTreeMap::new(),
            metrics,
            manager,
            opts,
            device,
            bigram,
        })
    }

    /// Resumes the run whose checkpoint is in `dir`; `opts.out_dir` is where it continues to save.
    pub fn resume(dir: &Path, opts: TrainOptions) -> Result<Self> {
        let ck = checkpoint::load(dir)?;
        let cfg = ModelConfig::from_json_str(&ck.config_json)?;
        let state: TrainerState =
            serde_json::from_str(&ck.state_json).map_err(|e| TrainError::Json {
                path: ck.dir.join(checkpoint::STATE_FILE),
                source: e,
            })?;
        if state.format_version != STATE_VERSION {
            return Err(TrainError::ckpt(
                &ck.dir,
                format!(
                    "trainer_state format {} , expected {STATE_VERSION}",
                    state.format_version
                ),
            ));
        }
        let data = TokenDataset::from_source(&state.data_source, cfg.sequence_length)?;
        check_position(&ck.dir.join(checkpoint::STATE_FILE), &state, &cfg, &data)?;
        let device = cfg.candle_device()?;
        let varmap = VarMap::new();
        let vb = SeededInit::var_builder(&varmap, SeededRng::new(cfg.seed), DType::F32, &device);
        let model = M::build(&cfg, vb)?;
        let vars = lsnn_layers::named_vars(&varmap);
        check_keys(&ck.dir.join(checkpoint::MODEL_FILE), &vars, &ck.model, "")?;
        check_keys(&ck.dir.join(checkpoint::EMA_FILE), &vars, &ck.ema, "")?;
        for (name, var) in &vars {
            var.set(&ck.model[name].to_device(&device)?)?;
        }
        let metrics: Vec<String> = ck.metrics_csv.lines().map(str::to_owned).collect();
        let config_json = ck.config_json.clone();
        let mut t = Self::assemble(
            model,
            vars,
            cfg,
            config_json,
            data,
            state,
            opts,
            device,
            metrics,
        )?;
        for (name, _) in t.vars.clone() {
            t.ema.restore(&name, &ck.ema[&name].to_device(&t.device)?)?;
        }
        // Optimizer moments, AMSGrad maxima and the partial accumulation window.
        let mut expected: Vec<String> = Vec::new();
        for (name, _) in &t.vars {
            expected.push(format!("m.{name}"));
            expected.push(format!("v.{name}"));
            if t.cfg.amsgrad {
                expected.push(format!("vmax.{name}"));
            }
        }
        for k in ck.optimizer.keys() {
            // Accumulation buffers belong to an open window only.
            let known = expected.contains(k)
                || (t.state.accum_valid > 0
                    && k.starts_with("acc.")
                    && t.vars.iter().any(|(n, _)| k[4..] == *n));
            if !known {
                return Err(TrainError::ckpt(
                    ck.dir.join(checkpoint::OPTIMIZER_FILE),
                    format!("unknown tensor {k}"),
                ));
            }
        }
        for (name, var) in t.vars.clone() {
            let get = |k: String| {
                ck.optimizer
                    .get(&k)
                    .ok_or_else(|| {
                        TrainError::ckpt(
                            ck.dir.join(checkpoint::OPTIMIZER_FILE),
                            format!("missing tensor {k}"),
                        )
                    })
                    .and_then(|x| {
                        if x.dims() != var.dims() {
                            Err(TrainError::ckpt(
                                ck.dir.join(checkpoint::OPTIMIZER_FILE),
                                format!("{k} has shape {:?}, expected {:?}", x.dims(), var.dims()),
                            ))
                        } else if x.dtype() != DType::F32 {
                            Err(TrainError::ckpt(
                                ck.dir.join(checkpoint::OPTIMIZER_FILE),
                                format!("{k} is {:?}, expected f32", x.dtype()),
                            ))
                        } else {
                            Ok(x.to_device(&t.device)?)
                        }
                    })
            };
            let m = get(format!("m.{name}"))?;
            let v = get(format!("v.{name}"))?;
            let vmax = if t.cfg.amsgrad {
                Some(get(format!("vmax.{name}"))?)
            } else {
                None
            };
            t.opt.restore(&name, &m, &v, vmax.as_ref())?;
            if t.state.accum_valid > 0 {
                t.acc.insert(
                    name.clone(),
                    get(format!("acc.{name}"))?.force_contiguous()?.detach(),
                );
            }
        }
        t.opt.set_step_count(t.state.step);
        Ok(t)
    }

    /// The config.
    pub fn config(&self) -> &ModelConfig {
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
    pub fn data(&self) -> &TokenDataset {
        &self.data
    }

    /// The bigram baseline of the validation split.
    pub fn bigram_baseline(&self) -> f64 {
        self.bigram
    }

    /// Named trainable variables, sorted by name.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The metrics CSV text.
    pub fn metrics_csv(&self) -> String {
        let mut s = self.metrics.join("\n");
        s.push('\n');
        s
    }

    fn batches_per_epoch(&self) -> usize {
        self.data.train_windows() / self.cfg.batch_size
    }

    fn batch_tensor(&self, windows: &[u32], val: bool) -> Result<Tensor> {
        let l = self.cfg.sequence_length + 1;
        let mut flat = Vec::with_capacity(windows.len() * l);
        for &w in windows {
            let win = if val {
                self.data.val_window(w as usize)
            } else {
                self.data.train_window(w as usize)
            };
            flat.extend_from_slice(win);
        }
        Ok(Tensor::from_vec(flat, (windows.len(), l), &self.device)?)
    }

    /// Processes one micro-batch of training windows (and steps the optimizer at a window end).
    /// Returns the unsmoothed loss (NaN when skipped).
    pub fn train_batch(&mut self, ids: &Tensor) -> Result<f64> {
        let batch = crate::shard::loss_and_grads(
            &self.model,
            ids,
            self.cfg.label_smoothing,
            &mut self.dropout_rng,
            &self.vars,
        )?;
        let ce = batch.cross_entropy;
        self.state.accum_in_window += 1;
        self.state.batches_seen += 1;
        self.state.tokens_seen += (ids.elem_count() - ids.dim(0)?) as u64;
        let finite = batch.grads.is_some();
        if let Some(grads) = batch.grads {
            for ((name, _), g) in self.vars.iter().zip(grads) {
                let Some(g) = g else {
                    continue;
                };
                let g = &g;
                match self.acc.get_mut(name) {
                    Some(a) if crate::inplace::fast_path(&[a, g]) => {
                        a.inplace_op2(g, &crate::inplace::Axpby { a: 1.0, b: 1.0 })?;
                    }
                    Some(a) => *a = (&*a + g)?,
                    None => {
                        // A fresh buffer goes through the same 0 + g as a reused one, so a
                        // resumed run (which starts with no buffers) writes the same bits.
                        let a = g.zeros_like()?.force_contiguous()?.detach();
                        if crate::inplace::fast_path(&[&a, g]) {
                            a.inplace_op2(g, &crate::inplace::Axpby { a: 1.0, b: 1.0 })?;
                            self.acc.insert(name.clone(), a);
                        } else {
                            self.acc.insert(name.clone(), (a + g)?);
                        }
                    }
                }
            }
            self.state.accum_valid += 1;
            self.state.loss_window.0 += ce;
            self.state.loss_window.1 += 1;
            self.state.epoch_loss.0 += ce;
            self.state.epoch_loss.1 += 1;
        } else {
            self.state.skipped_batches += 1;
        }
        if self.state.accum_in_window >= self.cfg.gradient_accumulation_steps {
            self.finish_window()?;
        }
        Ok(if finite { ce } else { f64::NAN })
    }

    fn finish_window(&mut self) -> Result<()> {
        let valid = self.state.accum_valid;
        self.state.accum_in_window = 0;
        self.state.accum_valid = 0;
        if valid == 0 {
            self.acc.clear();
            return Ok(());
        }
        let mean_scale = 1.0 / valid as f64;
        let norm = global_norm(&self.acc)? * mean_scale;
        if !norm.is_finite() {
            self.state.skipped_steps += 1;
            self.acc.clear();
            return Ok(());
        }
        let clip = if self.cfg.gradient_clip > 0.0 && norm > self.cfg.gradient_clip {
            self.cfg.gradient_clip / norm
        } else {
            1.0
        };
        let lr = self.current_lr();
        self.opt.step(&self.acc, lr, mean_scale * clip)?;
        self.state.step += 1;
        if self.cfg.ema_decay > 0.0 {
            self.ema.update(&self.vars)?;
        }
        // Keep the buffers for the next window when they can be reused in place; zero them.
        let mut reused = true;
        for a in self.acc.values() {
            if crate::inplace::fast_path(&[a]) {
                a.zero_set()?;
            } else {
                reused = false;
            }
        }
        if !reused {
            self.acc.clear();
        }
        if self.state.step % self.opts.log_every == 0 {
            self.push_metrics(None);
        }
        Ok(())
    }

    fn current_lr(&self) -> f64 {
        lr_at(
            self.state.step as usize,
            self.state.total_steps as usize,
            self.cfg.warmup_steps,
            self.cfg.learning_rate,
        )
    }

    fn push_metrics(&mut self, eval: Option<&EvalResult>) {
        let (s, n) = self.state.loss_window;
        let train = if n > 0 { s / n as f64 } else { f64::NAN };
        self.state.loss_window = (0.0, 0);
        let (vl, vp, acc) = match eval {
            Some(e) => (
                e.loss.to_string(),
                e.perplexity.to_string(),
                e.accuracy.map(|a| a.to_string()).unwrap_or_default(),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        self.metrics.push(format!(
            "{},{},{},{},{},{},{},{},{}",
            self.state.step,
            self.state.epoch,
            self.state.batches_seen,
            self.current_lr(),
            train,
            vl,
            vp,
            acc,
            self.state.skipped_batches + self.state.skipped_steps
        ));
    }

    /// Validation loss, perplexity and (built-in task) exact-match accuracy, in evaluation mode.
    pub fn evaluate(&self) -> Result<EvalResult> {
        let ema_model;
        let model: &M = if self.opts.eval_with_ema {
            ema_model = M::build(
                &self.cfg,
                VarBuilder::from_tensors(
                    self.ema_tensors()?.into_iter().collect(),
                    DType::F32,
                    &self.device,
                ),
            )?;
            &ema_model
        } else {
            &self.model
        };
        evaluate_model(
            model,
            &self.cfg,
            &self.data,
            self.task.as_ref(),
            self.opts.accuracy_problems,
            &self.device,
        )
    }

    fn ema_tensors(&self) -> Result<HashMap<String, Tensor>> {
        Ok(self
            .ema
            .weights()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    /// Writes the current state as the run's checkpoint (atomic, SPEC §5).
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        self.save_checkpoint_with_hook(&mut |_| Ok(()))
    }

    /// [`Trainer::save_checkpoint`] with a failure-injection hook.
    pub fn save_checkpoint_with_hook(
        &self,
        hook: &mut dyn FnMut(checkpoint::SaveStage) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        let model: BTreeMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let ema: BTreeMap<String, Tensor> = self.ema.weights().clone();
        let mut optimizer = BTreeMap::new();
        for (name, st) in self.opt.states() {
            optimizer.insert(format!("m.{name}"), st.m.clone());
            optimizer.insert(format!("v.{name}"), st.v.clone());
            if let Some(vm) = &st.vmax {
                optimizer.insert(format!("vmax.{name}"), vm.clone());
            }
        }
        if self.state.accum_valid > 0 {
            // Every parameter gets a buffer (zeros where none has received a gradient yet), so
            // that a load can insist on the complete set.
            for (name, var) in &self.vars {
                let a = match self.acc.get(name) {
                    Some(a) => a.clone(),
                    None => var.as_tensor().zeros_like()?.detach(),
                };
                optimizer.insert(format!("acc.{name}"), a);
            }
        }
        let mut state = self.state.clone();
        state.data_rng = self.data_rng.state();
        state.dropout_rng = self.dropout_rng.state();
        let state_json = serde_json::to_string_pretty(&state).map_err(|e| TrainError::Json {
            path: self.opts.out_dir.clone(),
            source: e,
        })?;
        let metrics = self.metrics_csv();
        let data = CheckpointData {
            step: state.step,
            config_json: &self.config_json,
            state_json: &state_json,
            model: &model,
            ema: &ema,
            optimizer: &optimizer,
            metrics_csv: &metrics,
        };
        checkpoint::save_with_hook(&self.opts.out_dir, &data, hook)
    }

    fn memory_event(&self, label: &str, released: Option<u64>) -> Result<Event> {
        Ok(Event::Memory {
            label: label.to_string(),
            usage: self.manager.log_usage(label)?,
            released,
        })
    }

    /// Runs to the end (or to `max_batches`), emitting events.
    pub fn run(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<TrainSummary> {
        let start = Instant::now();
        let tokens_at_start = self.state.tokens_seen;
        let param_count: usize = self.vars.iter().map(|(_, v)| v.elem_count()).sum();
        on_event(&Event::Start {
            epochs: self.cfg.num_epochs,
            batches_per_epoch: self.batches_per_epoch(),
            parameters: param_count,
            resumed_at: (self.state.batches_seen > 0).then_some(self.state.batches_seen),
            bigram_baseline: self.bigram,
        });
        on_event(&self.memory_event("start", None)?);
        let mut last_eval = None;
        let mut interrupted = false;
        let clock = (start, tokens_at_start);
        while !self.state.finished && self.state.epoch < self.cfg.num_epochs {
            match self.epoch(on_event, clock)? {
                Some(eval) => last_eval = Some(eval),
                None => {
                    interrupted = true;
                    break;
                }
            }
        }
        if interrupted {
            let dir = self.save_checkpoint()?;
            on_event(&Event::Checkpoint { dir });
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(TrainSummary {
            steps: self.state.step,
            batches: self.state.batches_seen,
            last_eval,
            bigram_baseline: self.bigram,
            skipped: self.state.skipped_batches + self.state.skipped_steps,
            tokens_per_s: (self.state.tokens_seen - tokens_at_start) as f64 / secs.max(1e-9),
            seconds: secs,
            interrupted,
        })
    }

    /// Trains the rest of the current epoch and finishes it (evaluation, metrics, cleanup with a
    /// memory line, checkpoint), ignoring `max_batches`. The unit the leak suite repeats.
    pub fn train_epoch(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<EvalResult> {
        let saved = self.opts.max_batches.take();
        let r = self.epoch(on_event, (Instant::now(), self.state.tokens_seen));
        self.opts.max_batches = saved;
        Ok(r?.expect("no batch limit while training an epoch"))
    }

    /// One epoch from the current position; `None` when `max_batches` stopped it first.
    fn epoch(
        &mut self,
        on_event: &mut dyn FnMut(&Event),
        (start, tokens_at_start): (Instant, u64),
    ) -> Result<Option<EvalResult>> {
        let per_epoch = self.batches_per_epoch();
        let bsz = self.cfg.batch_size;
        // Draw the epoch's order once: a run interrupted right after drawing it (at an epoch
        // boundary) saved it, and a resume must not draw again.
        if self.state.epoch_order.is_empty() {
            self.state.epoch_order = self.data.epoch_order(&mut self.data_rng);
        }
        while self.state.batch_in_epoch < per_epoch {
            if let Some(maxb) = self.opts.max_batches {
                if self.state.batches_seen >= maxb {
                    return Ok(None);
                }
            }
            let b = self.state.batch_in_epoch;
            let windows = &self.state.epoch_order[b * bsz..(b + 1) * bsz];
            let ids = self.batch_tensor(windows, false)?;
            let lr = self.current_lr();
            let steps_skipped_before = self.state.skipped_steps;
            let loss = self.train_batch(&ids)?;
            self.state.batch_in_epoch += 1;
            if loss.is_nan() {
                on_event(&Event::Skipped {
                    reason: "non-finite loss".into(),
                    total: self.state.skipped_batches + self.state.skipped_steps,
                });
            }
            if self.state.skipped_steps > steps_skipped_before {
                on_event(&Event::Skipped {
                    reason: "non-finite gradient norm; optimizer step not applied".into(),
                    total: self.state.skipped_batches + self.state.skipped_steps,
                });
            }
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            on_event(&Event::Batch {
                epoch: self.state.epoch,
                batch: b + 1,
                of: per_epoch,
                step: self.state.step,
                loss,
                lr,
                tokens_per_s: (self.state.tokens_seen - tokens_at_start) as f64 / secs,
                live_bytes: lsnn_memory::alloc::live_bytes(),
            });
            self.manager.check()?;
            let epoch_end = self.state.batch_in_epoch == per_epoch;
            if let Some(CleanupReason::Periodic) =
                cleanup_after_batch(self.state.batches_seen, self.cfg.cleanup_every, epoch_end)
            {
                self.manager.cleanup()?;
            }
        }
        // Epoch end.
        let eval = self.evaluate()?;
        let train_loss = self.take_epoch_train_loss();
        self.push_metrics(Some(&eval));
        self.state.val_history.push(eval.loss);
        if self.state.best_val_loss.is_none_or(|b| eval.loss < b) {
            self.state.best_val_loss = Some(eval.loss);
        }
        on_event(&Event::EpochEnd {
            epoch: self.state.epoch,
            train_loss,
            eval,
        });
        let report = self.manager.cleanup()?;
        on_event(&self.memory_event(
            &format!("epoch {}", self.state.epoch + 1),
            Some(report.rss_released()),
        )?);
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        self.state.epoch_order.clear();
        let stop = should_stop_early(&self.state.val_history, self.cfg.early_stopping_patience);
        if stop {
            on_event(&Event::EarlyStop {
                epoch: self.state.epoch - 1,
            });
        }
        if stop || self.state.epoch >= self.cfg.num_epochs {
            self.state.finished = true;
            // The last, partial accumulation window is applied, not dropped: the schedule
            // planned a step for it.
            if self.state.accum_in_window > 0 {
                self.finish_window()?;
            }
        }
        let dir = self.save_checkpoint()?;
        on_event(&Event::Checkpoint { dir });
        Ok(Some(eval))
    }

    /// Mean unsmoothed loss of the epoch's trained batches (NaN when every one was skipped);
    /// restarts the accumulator.
    fn take_epoch_train_loss(&mut self) -> f64 {
        let (sum, n) = std::mem::take(&mut self.state.epoch_loss);
        if n == 0 {
            f64::NAN
        } else {
            sum / n as f64
        }
    }
}

/// The saved position must fit the data and the config (a changed data file or an edited state
/// would otherwise index past the windows mid-run).
fn check_position(
    path: &Path,
    state: &TrainerState,
    cfg: &ModelConfig,
    data: &TokenDataset,
) -> Result<()> {
    let windows = data.train_windows();
    let per_epoch = windows / cfg.batch_size.max(1);
    let order = &state.epoch_order;
    if !order.is_empty() && (order.len() != windows || order.iter().any(|&w| w as usize >= windows))
    {
        return Err(TrainError::ckpt(
            path,
            format!(
                "epoch_order lists {} windows (largest {}), but the data has {windows} training \
                 windows; was the data file changed?",
                order.len(),
                order.iter().max().copied().unwrap_or(0)
            ),
        ));
    }
    if state.batch_in_epoch > per_epoch || (state.batch_in_epoch > 0 && order.is_empty()) {
        return Err(TrainError::ckpt(
            path,
            format!(
                "batch_in_epoch {} with {} windows in epoch_order, expected at most {per_epoch} \
                 batches per epoch and an order once an epoch has started",
                state.batch_in_epoch,
                order.len()
            ),
        ));
    }
    if state.accum_in_window >= cfg.gradient_accumulation_steps
        || state.accum_valid > state.accum_in_window
    {
        return Err(TrainError::ckpt(
            path,
            format!(
                "accum_in_window {} / accum_valid {}, expected accum_valid <= accum_in_window < \
                 gradient_accumulation_steps {}",
                state.accum_in_window, state.accum_valid, cfg.gradient_accumulation_steps
            ),
        ));
    }
    Ok(())
}

fn check_keys(
    path: &Path,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
    prefix: &str,
) -> Result<()> {
    for (name, var) in vars {
        let key = format!("{prefix}{name}");
        match got.get(&key) {
            None => return Err(TrainError::ckpt(path, format!("missing tensor {key}"))),
            Some(t) if t.dims() != var.dims() => {
                return Err(TrainError::ckpt(
                    path,
                    format!("{key} has shape {:?}, expected {:?}", t.dims(), var.dims()),
                ))
            }
            Some(t) if t.dtype() != DType::F32 => {
                return Err(TrainError::ckpt(
                    path,
                    format!("{key} is {:?}, expected f32", t.dtype()),
                ))
            }
            _ => {}
        }
    }
    if got.len() != vars.len() {
        let known: std::collections::HashSet<String> =
            vars.iter().map(|(n, _)| format!("{prefix}{n}")).collect();
        let unknown: Vec<&String> = got.keys().filter(|k| !known.contains(*k)).collect();
        return Err(TrainError::ckpt(
            path,
            format!("unknown tensors {unknown:?}"),
        ));
    }
    Ok(())
}

/// Evaluates `model` on the validation windows (batched, evaluation mode) and, for the built-in
/// task, the exact-match accuracy of greedily generated answers.
pub fn evaluate_model<M: TrainableModel>(
    model: &M,
    cfg: &ModelConfig,
    data: &TokenDataset,
    task: Option<&ArithmeticTask>,
    accuracy_problems: usize,
    device: &Device,
) -> Result<EvalResult> {
    let n = data.val_windows();
    let l = cfg.sequence_length + 1;
    let (mut total, mut count) = (0f64, 0usize);
    let bsz = cfg.batch_size.max(1);
    let mut i = 0;
    while i < n {
        let end = (i + bsz).min(n);
        let mut flat = Vec::with_capacity((end - i) * l);
        for w in i..end {
            flat.extend_from_slice(data.val_window(w));
        }
        let ids = Tensor::from_vec(flat, (end - i, l), device)?;
        let ce = model.eval_cross_entropy(&ids)?;
        total += ce * (end - i) as f64;
        count += end - i;
        i = end;
    }
    let loss = total / count.max(1) as f64;
    let accuracy = match task {
        Some(t) if accuracy_problems > 0 => Some(arithmetic_accuracy(model, t, accuracy_problems)?),
        _ => None,
    };
    Ok(EvalResult {
        loss,
        perplexity: loss.exp(),
        accuracy,
        windows: count,
    })
}

/// Exact-match accuracy on the first `n` held-out problems: greedy completion of each prompt.
pub fn arithmetic_accuracy<M: TrainableModel>(
    model: &M,
    task: &ArithmeticTask,
    n: usize,
) -> Result<f64> {
    let probs = &task.val_problems()[..n.min(task.val_problems().len())];
    let prompts: Vec<Vec<u32>> = probs
        .iter()
        .map(|&(a, b)| ByteTokenizer.encode(&ArithmeticTask::prompt(a, b)))
        .collect();
    let outs = model.greedy_complete(&prompts, 3)?;
    let correct = probs
        .iter()
        .zip(&outs)
        .filter(|(&(a, b), out)| ByteTokenizer.decode(out) == ArithmeticTask::answer(a, b))
        .count();
    Ok(correct as f64 / probs.len().max(1) as f64)
}
