//! The design §9.1 benchmark workloads (FLOP counts: design §9.2) and their measured step, shared by `lsnn bench` and the
//! benchmark gate so both measure exactly the same thing.
//!
//! Language models (`lm-small`, `lm-medium`, `lm-long-1k`, `lm-long-4k`): random byte tokens from a pool of 8 fixed batches
//! [B, L + 1], cycled; the loss is the unsmoothed next-token cross-entropy. Sequence models
//! (`ts-small`, `cls-small`): a pool of 8 fixed batches of N(0, 1) features [B, L, F] with N(0, 1)
//! targets `[B, L, F_out]` (Smooth-L1) or uniform class ids `[B]` (cross-entropy, last-position
//! readout). A training step is forward in training mode (dropout on) → loss → backward →
//! AdamW (lr 1e-3, weight decay 0.01), with no clipping, no EMA, no accumulation and no cleanup
//! (`full` adds global-norm clipping at 1.0 and an EMA update); an inference step is a batched
//! forward in evaluation mode.

use crate::config::{RunConfig, TrainConfig};
use crate::error::{Result, TrainError};
use crate::optim::{global_norm, AdamW, AdamWConfig, Ema};
use crate::task::SeqBatch;
use candle_core::{DType, Device, Tensor, Var};
use lsnn_layers::{
    named_vars, LanguageModel, Mode, ModelConfig, SeededInit, SeededRng, SeqInput, SequenceModel,
    Targets, Task,
};
use std::collections::BTreeMap;

/// Byte tokens.
const BYTES: std::num::NonZeroU64 = std::num::NonZeroU64::new(256).unwrap();

/// The names [`workload`] knows.
pub const WORKLOADS: &[&str] = &[
    "lm-small",
    "lm-medium",
    "ts-small",
    "cls-small",
    "lm-long-1k",
    "lm-long-4k",
];

/// Features of the sequence workloads.
pub const SEQ_FEATURES: usize = 16;
/// Targets per position of `ts-small`.
pub const TS_OUTPUTS: usize = 4;
/// Classes of `cls-small`.
pub const CLS_CLASSES: usize = 10;

/// The config of a design §9.1 workload (explicit overrides of T = 4, attention rate steps 8,
/// CfC backbone 128 × 1 on top of the defaults). `ts-small` and `cls-small` are lm-small's
/// network with [`SEQ_FEATURES`] features in and a regression head of [`TS_OUTPUTS`] outputs,
/// or a classifier of [`CLS_CLASSES`] classes, at lm-small's B = 8 and L = 64.
pub fn workload(name: &str) -> Result<RunConfig<ModelConfig>> {
    let base = ModelConfig {
        num_spike_steps: 4,
        attention_spike_steps: 8,
        backbone_units: 128,
        backbone_layers: 1,
        ..ModelConfig::default()
    };
    let train = |batch_size| TrainConfig {
        batch_size,
        ..TrainConfig::default()
    };
    let sequence = |task: &str, outputs: usize| RunConfig {
        model: ModelConfig {
            task_type: task.into(),
            input_dim: SEQ_FEATURES,
            output_dim: outputs,
            readout: (task == "classification").then_some(lsnn_layers::Readout::Last),
            ..base.clone()
        },
        train: train(8),
    };
    match name {
        "lm-small" => Ok(RunConfig {
            model: base,
            train: train(8),
        }),
        "lm-medium" => Ok(RunConfig {
            model: ModelConfig {
                embedding_dim: 256,
                input_dim: 256,
                hidden_dim: 256,
                spiking_units: 128,
                liquid_units: 128,
                num_layers: 4,
                num_attention_heads: 8,
                sequence_length: 128,
                max_position_embeddings: 128,
                ..base
            },
            train: train(16),
        }),
        // Long sequences (design §9.1): lm-small's widths at L = 1024 and 4096, batch 4.
        "lm-long-1k" | "lm-long-4k" => {
            let l = if name == "lm-long-1k" { 1024 } else { 4096 };
            Ok(RunConfig {
                model: ModelConfig {
                    sequence_length: l,
                    max_position_embeddings: l,
                    ..base
                },
                train: train(4),
            })
        }
        "ts-small" => Ok(sequence("regression", TS_OUTPUTS)),
        "cls-small" => Ok(sequence("classification", CLS_CLASSES)),
        other => Err(TrainError::Config {
            field: "workload".into(),
            message: format!("unknown workload {other:?}; expected one of {WORKLOADS:?}"),
        }),
    }
}

/// The network a step bench measures: the model, the same parameters detached (for inference
/// steps, no graph) and the fixed pool of batches.
#[derive(Debug)]
enum Net {
    Lm {
        model: LanguageModel,
        infer: LanguageModel,
        pool: Vec<Tensor>,
    },
    Seq {
        model: SequenceModel,
        infer: SequenceModel,
        pool: Vec<SeqBatch>,
    },
}

/// A model, its optimizer and the batch pool, ready to take measured steps.
#[derive(Debug)]
pub struct StepBench {
    net: Net,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    /// Created by the first `full` step, so plain steps carry no EMA copy.
    ema: Option<Ema>,
    dropout: SeededRng,
    cfg: RunConfig<ModelConfig>,
    /// Most rows per shard (the config's `shard_rows`, a number).
    shard_rows: usize,
}

/// The pool of 8 sequence batches of `cfg`'s task.
fn sequence_pool(cfg: &RunConfig<ModelConfig>, task: Task, dev: &Device) -> Result<Vec<SeqBatch>> {
    let (b, l) = (cfg.train.batch_size, cfg.model.sequence_length);
    let (f, o) = (cfg.model.input_dim, cfg.model.output_dim);
    let mut rng = SeededRng::new(7);
    (0..8)
        .map(|_| {
            let x = rng.normal_tensor((b, l, f), 0.0, 1.0, DType::F32, dev)?;
            let targets = match task {
                Task::Classification => {
                    let n =
                        std::num::NonZeroU64::new(o as u64).ok_or_else(|| TrainError::Config {
                            field: "output_dim".into(),
                            message: "0; expected at least 2 classes".into(),
                        })?;
                    let c: Vec<u32> = (0..b).map(|_| rng.below(n) as u32).collect();
                    Targets::Classes(Tensor::from_vec(c, b, dev)?)
                }
                _ => Targets::Values(rng.normal_tensor((b, l, o), 0.0, 1.0, DType::F32, dev)?),
            };
            Ok(SeqBatch {
                input: SeqInput::new(x),
                targets,
            })
        })
        .collect()
}

impl StepBench {
    /// Initialises `cfg`'s model (seeded) and the fixed pool of 8 batches on the CPU. The
    /// objective is unsmoothed whatever `cfg` says (design §9.1).
    pub fn new(cfg: &RunConfig<ModelConfig>) -> Result<Self> {
        Self::new_on(cfg, &Device::Cpu)
    }

    /// [`StepBench::new`] on `device` (the model and the pool there; on a device without the
    /// fused kernels every layer takes its composed path).
    pub fn new_on(cfg: &RunConfig<ModelConfig>, device: &Device) -> Result<Self> {
        let model_cfg = ModelConfig {
            label_smoothing: 0.0,
            ..cfg.model.clone()
        };
        let shard_rows = match cfg.train.shard_rows {
            crate::shard::ShardRows::Fixed(n) if n > 0 => n,
            other => {
                return Err(TrainError::Config {
                    field: "shard_rows".into(),
                    message: format!(
                        "{other}; a benchmark measures a fixed shard size: expected a number \
                         of rows, at least 1"
                    ),
                })
            }
        };
        let varmap = candle_nn::VarMap::new();
        let vb =
            SeededInit::var_builder(&varmap, SeededRng::new(cfg.train.seed), DType::F32, device);
        let task = model_cfg.task()?;
        let net = match task {
            Task::Llm => {
                let model = LanguageModel::new(&model_cfg, vb)?;
                let (b, l) = (cfg.train.batch_size, cfg.model.sequence_length + 1);
                let mut rng = SeededRng::new(7);
                let pool = (0..8)
                    .map(|_| {
                        let v: Vec<u32> = (0..b * l).map(|_| rng.below(BYTES) as u32).collect();
                        Tensor::from_vec(v, (b, l), device)
                    })
                    .collect::<candle_core::Result<_>>()?;
                Net::Lm {
                    infer: model.detached(),
                    model,
                    pool,
                }
            }
            _ => {
                let model = SequenceModel::new(&model_cfg, vb)?;
                Net::Seq {
                    infer: model.detached(),
                    model,
                    pool: sequence_pool(cfg, task, device)?,
                }
            }
        };
        let vars = named_vars(&varmap);
        let opt = AdamW::new(
            &vars,
            AdamWConfig {
                weight_decay: 0.01,
                ..AdamWConfig::default()
            },
        )?;
        Ok(StepBench {
            net,
            vars,
            opt,
            ema: None,
            dropout: SeededRng::new(11),
            cfg: cfg.clone(),
            shard_rows,
        })
    }

    /// The workload's config.
    pub fn config(&self) -> &RunConfig<ModelConfig> {
        &self.cfg
    }

    /// Tokens (positions) one step processes (B·L).
    pub fn tokens_per_step(&self) -> usize {
        self.cfg.train.batch_size * self.cfg.model.sequence_length
    }

    /// Training step `i` (batch `i mod 8`); `full` adds clipping and the EMA update.
    pub fn train_step(&mut self, i: usize, full: bool) -> Result<()> {
        let batch = match &self.net {
            Net::Lm { model, pool, .. } => crate::shard::loss_and_grads(
                model,
                &pool[i % pool.len()],
                &mut self.dropout,
                &self.vars,
                self.shard_rows,
            )?,
            Net::Seq { model, pool, .. } => crate::shard::loss_and_grads(
                model,
                &pool[i % pool.len()],
                &mut self.dropout,
                &self.vars,
                self.shard_rows,
            )?,
        };
        let grads = batch
            .grads
            .ok_or(TrainError::Layer(lsnn_layers::LayerError::NonFinite {
                what: "benchmark training loss",
                count: 1,
            }))?;
        let g: BTreeMap<String, Tensor> = self
            .vars
            .iter()
            .zip(grads)
            .filter_map(|((k, _), g)| g.map(|g| (k.clone(), g)))
            .collect();
        let mut scale = 1.0;
        if full {
            let n = global_norm(&g)?;
            if n > 1.0 {
                scale = 1.0 / n;
            }
        }
        self.opt.step(&g, 1e-3, scale)?;
        // The trainer's post-step hook: an LTC's clamp under the explicit constraint.
        match &self.net {
            Net::Lm { model, .. } => model.apply_weight_constraints()?,
            Net::Seq { model, .. } => model.apply_weight_constraints()?,
        }
        if full {
            match &mut self.ema {
                Some(e) => e.update(&self.vars)?,
                None => self.ema = Some(Ema::new(&self.vars, 0.999)?),
            }
        }
        Ok(())
    }

    /// Inference step `i`: a batched forward in evaluation mode, without a graph (detached
    /// parameters), its rows split evenly over the threads.
    pub fn infer_step(&mut self, i: usize) -> Result<()> {
        let threads = rayon::current_num_threads();
        match &self.net {
            Net::Lm { infer, pool, .. } => {
                let ids = pool[i % pool.len()].narrow(1, 0, self.cfg.model.sequence_length)?;
                let parts = crate::shard::even_parts(ids.dim(0)?, threads);
                for r in crate::shard::run_shards(parts.len(), |k| {
                    let (start, len) = parts[k];
                    infer.forward(&ids.narrow(0, start, len)?, &mut Mode::Eval)
                }) {
                    r?;
                }
            }
            Net::Seq { infer, pool, .. } => {
                let input = &pool[i % pool.len()].input;
                let parts = crate::shard::even_parts(input.rows(), threads);
                for r in crate::shard::run_shards(parts.len(), |k| {
                    let (start, len) = parts[k];
                    infer.forward(&input.rows_part(start, len)?, &mut Mode::Eval)
                }) {
                    r?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_follow_spec_section_7() {
        let RunConfig {
            model: s,
            train: st,
        } = workload("lm-small").unwrap();
        assert_eq!(
            (
                s.vocab_size,
                s.hidden_dim,
                s.spiking_units,
                s.liquid_units,
                s.num_layers
            ),
            (256, 128, 64, 64, 2)
        );
        assert_eq!(
            (
                s.num_attention_heads,
                s.num_spike_steps,
                s.attention_spike_steps
            ),
            (4, 4, 8)
        );
        assert_eq!(
            (s.sequence_length, st.batch_size, s.backbone_units),
            (64, 8, 128)
        );
        let RunConfig {
            model: m,
            train: mt,
        } = workload("lm-medium").unwrap();
        assert_eq!(
            (
                m.hidden_dim,
                m.embedding_dim,
                m.spiking_units,
                m.liquid_units,
                m.num_layers
            ),
            (256, 256, 128, 128, 4)
        );
        assert_eq!(
            (m.num_attention_heads, m.sequence_length, mt.batch_size),
            (8, 128, 16)
        );
        m.validate().unwrap();
        for (name, task, outputs) in [
            ("ts-small", "regression", TS_OUTPUTS),
            ("cls-small", "classification", CLS_CLASSES),
        ] {
            let RunConfig {
                model: q,
                train: qt,
            } = workload(name).unwrap();
            assert_eq!(
                (q.task_type.as_str(), q.input_dim, q.output_dim),
                (task, SEQ_FEATURES, outputs)
            );
            // lm-small's network and step size.
            assert_eq!(
                (q.hidden_dim, q.spiking_units, q.liquid_units, q.num_layers),
                (128, 64, 64, 2)
            );
            assert_eq!((q.sequence_length, qt.batch_size), (64, 8));
            q.validate().unwrap();
        }
        let err = workload("lm-large").unwrap_err().to_string();
        assert!(
            err.contains("lm-large") && err.contains("lm-medium"),
            "{err}"
        );
    }

    #[test]
    fn a_training_step_changes_the_weights_and_an_inference_step_does_not() {
        let cfg = RunConfig {
            model: ModelConfig {
                embedding_dim: 16,
                input_dim: 16,
                hidden_dim: 16,
                spiking_units: 8,
                liquid_units: 8,
                num_attention_heads: 2,
                sequence_length: 8,
                max_position_embeddings: 8,
                backbone_units: 8,
                ..ModelConfig::default()
            },
            train: TrainConfig {
                batch_size: 2,
                ..TrainConfig::default()
            },
        };
        let mut b = StepBench::new(&cfg).unwrap();
        let w = |b: &StepBench| {
            b.vars[0]
                .1
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        let before = w(&b);
        b.infer_step(0).unwrap();
        assert_eq!(w(&b), before);
        b.train_step(0, false).unwrap();
        assert_ne!(w(&b), before);
        assert!(b.ema.is_none());
        b.train_step(1, true).unwrap();
        assert!(b.ema.is_some());
        assert_eq!(b.tokens_per_step(), 16);
        // The sequence workloads' steps, at a tiny size.
        for task in ["regression", "classification"] {
            let seq = RunConfig {
                model: ModelConfig {
                    task_type: task.into(),
                    input_dim: 3,
                    output_dim: 4,
                    ..cfg.model.clone()
                },
                train: cfg.train.clone(),
            };
            let mut b = StepBench::new(&seq).unwrap();
            let before = w(&b);
            b.infer_step(0).unwrap();
            assert_eq!(w(&b), before, "{task}");
            b.train_step(0, false).unwrap();
            assert_ne!(w(&b), before, "{task}");
        }
    }
}
