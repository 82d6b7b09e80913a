//! The language model of lsnn-layers as a [`TrainModel`], and token data as its [`Dataset`]:
//! batches are windows ids [B, L + 1], the objective is the (label-smoothed) next-token
//! cross-entropy, the reported loss and `val_loss` the unsmoothed one, `val_ppl` its exp; the
//! built-in arithmetic task adds exact-match `accuracy`, and the baseline is the bigram
//! cross-entropy. The vocabulary check belongs here, to the data.

use crate::data::{bigram_baseline, ArithmeticTask, ByteTokenizer, DataSource, TokenDataset};
use crate::dataset::{fnv1a, Dataset};
use crate::error::{Result, TrainError};
use crate::generate::{continue_prompts, Sampler};
use crate::model::{LayerStats, MemoryEstimate, StepLoss, TrainModel};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use lsnn_layers::{LanguageModel, LmLoss, Mode, ModelConfig};

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

fn step_loss(l: &LmLoss) -> Result<StepLoss> {
    Ok(StepLoss {
        objective: scalar(&l.objective)?,
        loss: scalar(&l.cross_entropy)?,
    })
}

impl TrainModel for LanguageModel {
    type Config = ModelConfig;
    type Batch = Tensor;

    fn build(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(LanguageModel::new(cfg, vb)?)
    }

    /// An LTC cell's clamp of its positive parameters under the explicit constraint.
    fn after_step(&self) -> Result<()> {
        Ok(LanguageModel::apply_weight_constraints(self)?)
    }

    fn memory_estimate(cfg: &ModelConfig, batch_size: usize) -> Option<MemoryEstimate> {
        crate::task::memory_estimate_of(cfg, batch_size)
    }

    fn loss_and_grads(
        &self,
        ids: &Tensor,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(StepLoss, Option<GradStore>)> {
        let smoothing = self.config().label_smoothing;
        let (loss, grads) = LanguageModel::loss_and_grads(self, ids, smoothing, mode, scale)?;
        Ok((step_loss(&loss)?, grads))
    }

    fn metric_names(&self) -> Vec<String> {
        vec!["val_loss".into()]
    }

    fn eval_batch(&self, ids: &Tensor) -> Result<Vec<f64>> {
        // Detached parameters: no graph is built, each activation is freed once read.
        let (_, loss) = self.detached().loss(ids, 0.0, &mut Mode::Eval)?;
        Ok(vec![scalar(&loss.cross_entropy)?])
    }

    fn layer_stats(&self, ids: &Tensor) -> Result<Vec<LayerStats>> {
        Ok(self.eval_batch_with_stats(ids)?.1)
    }

    fn spike_rasters(&self, ids: &Tensor) -> Result<Vec<lsnn_layers::Raster>> {
        Ok(self.detached().spike_rasters(ids)?)
    }

    fn eval_batch_with_stats(&self, ids: &Tensor) -> Result<(Vec<f64>, Vec<LayerStats>)> {
        let (loss, firing) = self.detached().loss_with_firing(ids)?;
        Ok((vec![scalar(&loss.cross_entropy)?], firing))
    }

    fn derived_metrics(&self, means: &[(String, f64)]) -> Vec<(String, f64)> {
        means
            .iter()
            .find(|(n, _)| n == "val_loss")
            .map(|(_, l)| vec![("val_ppl".to_string(), l.exp())])
            .unwrap_or_default()
    }

    fn derived_metric_names(&self) -> Vec<String> {
        vec!["val_ppl".into()]
    }

    fn batch_rows(ids: &Tensor) -> usize {
        ids.dims().first().copied().unwrap_or(0)
    }

    fn batch_part(ids: &Tensor, start: usize, len: usize) -> Option<Result<Tensor>> {
        Some(ids.narrow(0, start, len).map_err(TrainError::from))
    }

    fn batch_items(ids: &Tensor) -> u64 {
        // Next-token targets: L per window of L + 1.
        match ids.dims() {
            [b, w] => (b * w.saturating_sub(1)) as u64,
            _ => 0,
        }
    }
}

/// Windows `indices` of `window` as ids [n, L + 1].
fn windows<'a>(
    indices: &[u32],
    len: usize,
    window: impl Fn(usize) -> &'a [u32],
    device: &Device,
) -> Result<Tensor> {
    let mut flat = Vec::with_capacity(indices.len() * len);
    for &w in indices {
        flat.extend_from_slice(window(w as usize));
    }
    Ok(Tensor::from_vec(flat, (indices.len(), len), device)?)
}

/// A model that is (or wraps) lsnn-layers' language model: token data trains any such model
/// (a test's wrapper that injects failures, a user's that adds a hook).
pub trait AsLanguageModel: TrainModel<Config = ModelConfig, Batch = Tensor> {
    /// The language model.
    fn language_model(&self) -> &LanguageModel;
}

impl AsLanguageModel for LanguageModel {
    fn language_model(&self) -> &LanguageModel {
        self
    }
}

impl<M: AsLanguageModel> Dataset<M> for TokenDataset {
    fn train_len(&self) -> usize {
        self.train_windows()
    }

    fn val_len(&self) -> usize {
        self.val_windows()
    }

    fn train_batch(&self, indices: &[u32], device: &Device) -> Result<Tensor> {
        check_indices(indices, self.train_windows(), "training")?;
        windows(
            indices,
            self.seq_len() + 1,
            |i| self.train_window(i),
            device,
        )
    }

    fn val_batch(&self, indices: &[u32], device: &Device) -> Result<Tensor> {
        check_indices(indices, self.val_windows(), "validation")?;
        windows(indices, self.seq_len() + 1, |i| self.val_window(i), device)
    }

    fn fingerprint(&self) -> String {
        let words = [self.seq_len() as u64, self.train_tokens().len() as u64]
            .into_iter()
            .chain(self.train_tokens().iter().map(|&t| t as u64))
            .chain(self.val_tokens().iter().map(|&t| t as u64));
        fnv1a(words)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(self.source()).unwrap_or(serde_json::Value::Null)
    }

    fn check_train(&self, train: &crate::TrainConfig) -> Result<()> {
        if train.spike_encoding.is_some() {
            return Err(TrainError::Config {
                field: "spike_encoding".into(),
                message: "set for the language model; expected it only with a sequence task \
                          (a language model's inputs are token ids)"
                    .into(),
            });
        }
        Ok(())
    }

    fn check_model(&self, cfg: &ModelConfig) -> Result<()> {
        if cfg.vocab_size != ByteTokenizer::VOCAB {
            return Err(TrainError::VocabMismatch {
                config: cfg.vocab_size,
                tokenizer: ByteTokenizer::VOCAB,
            });
        }
        if self.seq_len() != cfg.sequence_length {
            return Err(TrainError::Config {
                field: "sequence_length".into(),
                message: format!(
                    "data windows are {} long, config says {}",
                    self.seq_len(),
                    cfg.sequence_length
                ),
            });
        }
        Ok(())
    }

    fn baseline(&self) -> Option<(String, f64)> {
        Some((
            "bigram baseline (nats/token)".into(),
            bigram_baseline(self, ByteTokenizer::VOCAB),
        ))
    }

    fn baselines(&self) -> Vec<(String, f64)> {
        vec![(
            "baseline_bigram_loss".into(),
            bigram_baseline(self, ByteTokenizer::VOCAB),
        )]
    }

    fn extra_metric_names(&self) -> Vec<String> {
        vec!["accuracy".into()]
    }

    fn extra_metrics(&self, model: &M, budget: usize) -> Result<Vec<(String, f64)>> {
        match self.source() {
            DataSource::Arithmetic { seed } if budget > 0 => {
                let task = ArithmeticTask::new(*seed);
                let acc = arithmetic_accuracy(model.language_model(), &task, budget)?;
                Ok(vec![("accuracy".into(), acc)])
            }
            _ => Ok(Vec::new()),
        }
    }
}

fn check_indices(indices: &[u32], len: usize, what: &str) -> Result<()> {
    match indices.iter().find(|&&i| i as usize >= len) {
        Some(bad) => Err(TrainError::Config {
            field: format!("{what} window index"),
            message: format!("{bad}; the data has {len} {what} windows"),
        }),
        None => Ok(()),
    }
}

/// Exact-match accuracy on the first `n` held-out problems: greedy completion of each prompt.
pub fn arithmetic_accuracy(model: &LanguageModel, task: &ArithmeticTask, n: usize) -> Result<f64> {
    let probs = &task.val_problems()[..n.min(task.val_problems().len())];
    if probs.is_empty() {
        return Ok(0.0);
    }
    let prompts: Vec<Vec<u32>> = probs
        .iter()
        .map(|&(a, b)| ByteTokenizer.encode(&ArithmeticTask::prompt(a, b)))
        .collect();
    let outs = continue_prompts(model, &prompts, 3, Sampler::Greedy)?;
    let correct = probs
        .iter()
        .zip(&outs)
        .filter(|(&(a, b), out)| ByteTokenizer.decode(out) == ArithmeticTask::answer(a, b))
        .count();
    Ok(correct as f64 / probs.len() as f64)
}

/// A language model loaded from a run (or set) directory for inference: its weights (or EMA
/// weights), its run configuration, and the checkpoint it came from, on `device` (the
/// checkpoint's own device when `None`).
#[derive(Debug)]
pub struct LoadedLm {
    /// The model, its parameters detached (no graph is built on them).
    pub model: LanguageModel,
    /// The run's configuration.
    pub config: crate::RunConfig<ModelConfig>,
    /// The checkpoint.
    pub checkpoint: crate::checkpoint::LoadedCheckpoint,
    /// The device the model is on.
    pub device: Device,
}

/// Loads the current set of `dir` as an inference model (see [`LoadedLm`]); the set is
/// verified as `train --resume` verifies it: every file against the manifest, every file
/// agreeing, the trainer state readable, and every key of the model, EMA and optimizer files
/// present with its shape, nothing unknown.
pub fn load_lm(dir: &std::path::Path, ema: bool, device: Option<&str>) -> Result<LoadedLm> {
    let t = crate::inference::load_trained::<LanguageModel>(dir, ema, device)?;
    Ok(LoadedLm {
        model: t.model.detached(),
        config: t.config,
        checkpoint: t.checkpoint,
        device: t.device,
    })
}

/// The logits [N, L, V] of the validation windows' inputs ids [N, L] (i64), `batch` windows at a
/// time, in evaluation mode.
pub fn validation_logits(
    model: &LanguageModel,
    data: &TokenDataset,
    batch: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let l = data.seq_len();
    let n = data.val_windows();
    let mut ids = Vec::with_capacity(n * l);
    for w in 0..n {
        ids.extend(data.val_window(w)[..l].iter().map(|&t| t as i64));
    }
    let ids = Tensor::from_vec(ids, (n, l), device)?;
    let mut chunks = Vec::new();
    for start in (0..n).step_by(batch.max(1)) {
        let len = batch.max(1).min(n - start);
        chunks.push(model.forward(&ids.narrow(0, start, len)?, &mut Mode::Eval)?);
    }
    Ok((ids, Tensor::cat(&chunks, 0)?))
}

/// The token data a language-model run trained on, rebuilt from the description its checkpoint
/// recorded ([`Dataset::describe`]): pass it to [`crate::Trainer::resume`].
pub fn token_data(
    cfg: &crate::RunConfig<ModelConfig>,
    source: &serde_json::Value,
) -> Result<TokenDataset> {
    let source: DataSource =
        serde_json::from_value(source.clone()).map_err(|e| TrainError::Config {
            field: "data_source".into(),
            message: format!("{e}; expected a recorded token data source"),
        })?;
    TokenDataset::from_source(&source, cfg.model.sequence_length)
}
