//! The design §9.1 benchmark workloads (FLOP counts: design §9.2) and their measured step, shared by `lsnn bench` and the
//! benchmark gate so both measure exactly the same thing.
//!
//! Random byte tokens from a pool of 8 fixed batches [B, L + 1], cycled. A training step is
//! forward in training mode (dropout on) → unsmoothed next-token cross-entropy → backward →
//! AdamW (lr 1e-3, weight decay 0.01), with no clipping, no EMA, no accumulation and no cleanup
//! (`full` adds global-norm clipping at 1.0 and an EMA update); an inference step is a batched
//! [B, L] forward in evaluation mode.

use crate::config::{RunConfig, TrainConfig};
use crate::error::{Result, TrainError};
use crate::optim::{global_norm, AdamW, AdamWConfig, Ema};
use candle_core::{Device, Tensor, Var};
use lsnn_layers::{init_model, named_vars, LanguageModel, Mode, ModelConfig, SeededRng};
use std::collections::BTreeMap;

/// Byte tokens.
const BYTES: std::num::NonZeroU64 = std::num::NonZeroU64::new(256).unwrap();

/// The names [`workload`] knows.
pub const WORKLOADS: &[&str] = &["lm-small", "lm-medium"];

/// The config of a design §9.1 workload (explicit overrides of T = 4, attention rate steps 8,
/// CfC backbone 128 × 1 on top of the defaults).
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
        other => Err(TrainError::Config {
            field: "workload".into(),
            message: format!("unknown workload {other:?}; expected one of {WORKLOADS:?}"),
        }),
    }
}

/// A model, its optimizer and the token pool, ready to take measured steps.
#[derive(Debug)]
pub struct StepBench {
    model: LanguageModel,
    /// The same parameters detached, for inference steps (no graph).
    infer: LanguageModel,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    /// Created by the first `full` step, so plain steps carry no EMA copy.
    ema: Option<Ema>,
    pool: Vec<Tensor>,
    dropout: SeededRng,
    cfg: RunConfig<ModelConfig>,
}

impl StepBench {
    /// Initialises `cfg`'s model (seeded) and the fixed pool of 8 batches.
    /// The objective is the unsmoothed cross-entropy whatever `cfg` says (design §9.1).
    pub fn new(cfg: &RunConfig<ModelConfig>) -> Result<Self> {
        let model_cfg = ModelConfig {
            label_smoothing: 0.0,
            ..cfg.model.clone()
        };
        let (model, vm) = init_model(&model_cfg, SeededRng::new(cfg.train.seed), &Device::Cpu)?;
        let vars = named_vars(&vm);
        let opt = AdamW::new(
            &vars,
            AdamWConfig {
                weight_decay: 0.01,
                ..AdamWConfig::default()
            },
        )?;
        let (b, l) = (cfg.train.batch_size, cfg.model.sequence_length + 1);
        let mut rng = SeededRng::new(7);
        let pool = (0..8)
            .map(|_| {
                let v: Vec<u32> = (0..b * l).map(|_| rng.below(BYTES) as u32).collect();
                Tensor::from_vec(v, (b, l), &Device::Cpu)
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(StepBench {
            infer: model.detached(),
            model,
            vars,
            opt,
            ema: None,
            pool,
            dropout: SeededRng::new(11),
            cfg: cfg.clone(),
        })
    }

    /// The workload's config.
    pub fn config(&self) -> &RunConfig<ModelConfig> {
        &self.cfg
    }

    /// Tokens one step processes (B·L).
    pub fn tokens_per_step(&self) -> usize {
        self.cfg.train.batch_size * self.cfg.model.sequence_length
    }

    /// Training step `i` (batch `i mod 8`); `full` adds clipping and the EMA update.
    pub fn train_step(&mut self, i: usize, full: bool) -> Result<()> {
        let ids = &self.pool[i % self.pool.len()];
        let batch = crate::shard::loss_and_grads(&self.model, ids, &mut self.dropout, &self.vars)?;
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
        if full {
            match &mut self.ema {
                Some(e) => e.update(&self.vars)?,
                None => self.ema = Some(Ema::new(&self.vars, 0.999)?),
            }
        }
        Ok(())
    }

    /// Inference step `i`: a [B, L] forward in evaluation mode, without a graph (detached
    /// parameters), its rows split evenly over the threads.
    pub fn infer_step(&mut self, i: usize) -> Result<()> {
        let ids = self.pool[i % self.pool.len()].narrow(1, 0, self.cfg.model.sequence_length)?;
        let parts = crate::shard::even_parts(ids.dim(0)?, rayon::current_num_threads());
        let model = &self.infer;
        for r in crate::shard::run_shards(parts.len(), |k| {
            let (start, len) = parts[k];
            model.forward(&ids.narrow(0, start, len)?, &mut Mode::Eval)
        }) {
            r?;
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
    }
}
