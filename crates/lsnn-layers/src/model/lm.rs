//! The language model (design §2.6) with the design §4.2 parameter names.
//!
//! ```text
//! x = Dropout(TokenEmbedding(ids) + PositionEmbedding(0..L));  x = W_in x
//! for i in 0..num_layers:
//!     x, h_i = Block_i(x, h_i);  x = Dropout(LayerNorm_i(x))
//!     if i is odd: x = x + Attention_{(i−1)/2}(x)
//! logits = W_2·Dropout(LayerNorm(GELU(W_1 x)))            D → 2D → vocab
//! loss = cross-entropy(logits[:, :−1], ids[:, 1:]), optional label smoothing
//! ```
//! [`LanguageModel::step`] is the streaming form: one token per call with per-block liquid
//! state and attention key/value caches, equal to the sequence call position by position.

use super::trunk::{Stage, Trunk, TrunkState};

mod tbptt;
use super::ModelConfig;
use crate::attention::MultiHeadSpikingAttention;
use crate::block::HybridLiquidSpikingBlock;
use crate::error::{LayerError, Result};
use crate::firing::LayerStats;
use crate::fused::NormAct;
use crate::nn::{dropout, DropoutRng, LayerNorm, Linear, Mode};
use crate::stage_marks::{stage, Pass};
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{Init, VarBuilder};

/// The output head: D → 2D → V.
#[derive(Debug, Clone)]
struct Head {
    fc1: Linear,
    norm: LayerNorm,
    fc2: Linear,
}

/// The hybrid liquid–spiking language model.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    tok_emb: Tensor,
    pos_emb: Tensor,
    in_proj: Linear,
    trunk: Trunk,
    head: Head,
    cfg: ModelConfig,
    rng: DropoutRng,
}

/// Streaming state: position, each block's liquid state, each attention layer's cache.
#[derive(Debug, Clone)]
pub struct LmState {
    position: usize,
    trunk: TrunkState,
}

impl LmState {
    /// Tokens consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

/// The losses of a batch.
#[derive(Debug, Clone)]
pub struct LmLoss {
    /// The training objective (label-smoothed when smoothing > 0), a scalar with a graph.
    pub objective: Tensor,
    /// The unsmoothed mean cross-entropy (what is reported), detached.
    pub cross_entropy: Tensor,
}

impl LmLoss {
    /// Both losses without their graphs.
    pub fn detached(&self) -> LmLoss {
        LmLoss {
            objective: self.objective.detach(),
            cross_entropy: self.cross_entropy.detach(),
        }
    }

    /// True when both losses are finite numbers (a batch to apply, not to skip).
    pub fn is_finite(&self) -> Result<bool> {
        let finite = |t: &Tensor| -> Result<bool> {
            Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite())
        };
        Ok(finite(&self.objective)? && finite(&self.cross_entropy)?)
    }

    /// `scale`·objective, keeping its graph (the root of a backward pass for a share of a
    /// batch); the objective itself when `scale` is 1.
    pub fn scaled_objective(&self, scale: f64) -> Result<Tensor> {
        if scale == 1.0 {
            Ok(self.objective.clone())
        } else {
            Ok((&self.objective * scale)?)
        }
    }
}

impl LanguageModel {
    /// Creates (or loads, depending on `vb`'s backend) every parameter.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        if cfg.task()? != super::Task::Llm {
            return Err(LayerError::config(
                "task_type",
                format!(
                    "\"{}\"; the language model is for \"llm\" (the sequence tasks' model is SequenceModel)",
                    crate::nn::clip(&cfg.task_type)
                ),
            ));
        }
        let tok_emb = vb.get_with_hints(
            (cfg.vocab_size, cfg.embedding_dim),
            "tok_emb.weight",
            Init::Randn {
                mean: 0.0,
                stdev: cfg.initializer_range,
            },
        )?;
        let pos_emb = vb.get_with_hints(
            (cfg.max_position_embeddings, cfg.embedding_dim),
            "pos_emb.weight",
            Init::Randn {
                mean: 0.0,
                stdev: cfg.initializer_range,
            },
        )?;
        let in_proj = Linear::new(cfg.embedding_dim, cfg.hidden_dim, vb.pp("in_proj"))?;
        let trunk = Trunk::new(cfg, &vb)?;
        let d = cfg.hidden_dim;
        let head = Head {
            fc1: Linear::new(d, 2 * d, vb.pp("head.fc1"))?,
            norm: LayerNorm::new(2 * d, cfg.layer_norm_eps, vb.pp("head.norm"))?,
            fc2: Linear::new(2 * d, cfg.vocab_size, vb.pp("head.fc2"))?,
        };
        Ok(LanguageModel {
            tok_emb,
            pos_emb,
            in_proj,
            trunk,
            head,
            cfg: cfg.clone(),
            rng: DropoutRng::new(0),
        })
    }

    /// The same model with every parameter detached from autograd, sharing their storage (no
    /// copy): its forward builds no graph, so each activation is freed as soon as the next op
    /// has read it. For inference, evaluation and generation; the numbers are those of the
    /// original model, and an optimizer step on the original is seen by it.
    pub fn detached(&self) -> Self {
        LanguageModel {
            tok_emb: self.tok_emb.detach(),
            pos_emb: self.pos_emb.detach(),
            in_proj: self.in_proj.detached(),
            trunk: self.trunk.detached(),
            head: Head {
                fc1: self.head.fc1.detached(),
                norm: self.head.norm.detached(),
                fc2: self.head.fc2.detached(),
            },
            cfg: self.cfg.clone(),
            rng: self.rng.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The blocks.
    pub fn blocks(&self) -> &[HybridLiquidSpikingBlock] {
        self.trunk.blocks()
    }

    /// What must follow every optimizer step: each LTC cell's clamp of its positive parameters
    /// under the explicit constraint (ncps' `apply_weight_constraints`); nothing for CfC cells.
    pub fn apply_weight_constraints(&self) -> Result<()> {
        self.trunk.apply_weight_constraints()
    }

    /// The attention layers.
    pub fn attentions(&self) -> &[MultiHeadSpikingAttention] {
        self.trunk.attentions()
    }

    /// The generator `ModuleT` draws dropout masks from.
    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.rng
    }

    /// The device of the parameters.
    pub fn device(&self) -> &Device {
        self.tok_emb.device()
    }

    /// Checks ids [B, L] (integer, within the vocabulary, L within the position table starting
    /// at `start`) and returns them as u32.
    pub fn check_ids(&self, ids: &Tensor, start: usize) -> Result<Tensor> {
        if ids.rank() != 2 || ids.dtype().is_float() {
            return Err(LayerError::Shape {
                what: "token ids",
                expected: "an integer tensor [B, L]".into(),
                actual: ids.dims().to_vec(),
            });
        }
        let (b, l) = ids.dims2()?;
        if b == 0 || l == 0 {
            return Err(LayerError::Shape {
                what: "token ids",
                expected: "a non-empty [B, L]".into(),
                actual: ids.dims().to_vec(),
            });
        }
        if start + l > self.cfg.max_position_embeddings {
            return Err(LayerError::SequenceTooLong {
                len: l,
                start,
                max: self.cfg.max_position_embeddings,
            });
        }
        self.check_token_values(ids, start)?;
        Ok(ids.to_dtype(DType::U32)?)
    }

    /// Every id of an integer ids [B, L] (positions from `start`) within the vocabulary, checked
    /// in i64 before any narrowing cast could wrap it.
    fn check_token_values(&self, ids: &Tensor, start: usize) -> Result<()> {
        let v = ids.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        for (bi, row) in v.iter().enumerate() {
            for (p, &id) in row.iter().enumerate() {
                if id < 0 || id as usize >= self.cfg.vocab_size {
                    return Err(LayerError::TokenOutOfRange {
                        id,
                        vocab: self.cfg.vocab_size,
                        batch: bi,
                        position: start + p,
                    });
                }
            }
        }
        Ok(())
    }

    /// A window ids [B, L + 1] (L ≥ 1) as the model's input ids[:, :L] and the targets
    /// ids[:, 1:] (u32); the targets' ids are checked against the vocabulary here (the input's
    /// by [`Self::check_ids`]).
    fn split_window(&self, ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let bad = || LayerError::Shape {
            what: "token ids",
            expected: "a window [B, L + 1] with L >= 1".into(),
            actual: ids.dims().to_vec(),
        };
        if ids.dtype().is_float() {
            return Err(LayerError::Shape {
                what: "token ids",
                expected: "an integer tensor [B, L + 1]".into(),
                actual: ids.dims().to_vec(),
            });
        }
        let (_, w) = ids.dims2().map_err(|_| bad())?;
        if w < 2 {
            return Err(bad());
        }
        let targets = ids.narrow(1, 1, w - 1)?;
        self.check_token_values(&targets, 1)?;
        Ok((ids.narrow(1, 0, w - 1)?, targets.to_dtype(DType::U32)?))
    }

    fn embed(&self, ids: &Tensor, start: usize, mode: &mut Mode<'_>) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let tok = self
            .tok_emb
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, self.cfg.embedding_dim))?;
        let pos = self.pos_emb.narrow(0, start, l)?;
        let x = tok.broadcast_add(&pos)?;
        let x = dropout(&x, self.cfg.embedding_dropout, mode)?;
        Ok(self.in_proj.forward(&x)?)
    }

    fn head(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let y = self.head.norm.with_act(
            &self.head.fc1.forward(x)?,
            NormAct::GeluThenNorm,
            self.cfg.dropout,
            mode,
        )?;
        Ok(self.head.fc2.forward(&y)?)
    }

    /// Logits [B, L, V] for ids [B, L].
    pub fn forward(&self, ids: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let ids = self.check_ids(ids, 0)?;
        let x = self.trunk.forward(self.embed(&ids, 0, mode)?, None, mode)?;
        self.head(&x, mode)
    }

    /// Next-token loss of a window ids [B, L + 1] (L ≥ 1): the model reads ids[:, :L] and is
    /// scored on ids[:, 1:]. Returns the logits [B, L, V] and the losses. Because the model is
    /// causal this equals design §2.6's cross-entropy(logits(ids)[:, :−1], ids[:, 1:]), without
    /// spending a position of the table on the last token.
    pub fn loss(
        &self,
        ids: &Tensor,
        label_smoothing: f64,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, LmLoss)> {
        let (inputs, targets) = self.split_window(ids)?;
        let logits = self.forward(&inputs, mode)?;
        let loss = next_token_loss(&logits, &targets, label_smoothing)?;
        Ok((logits, loss))
    }

    /// [`Self::loss`] in evaluation mode without label smoothing, with the spike statistics of
    /// every spiking layer on this window (design §10.3: each block's encoder, each attention
    /// layer's rate codes, in the stack's order).
    pub fn loss_with_firing(&self, ids: &Tensor) -> Result<(LmLoss, Vec<LayerStats>)> {
        let (inputs, targets) = self.split_window(ids)?;
        let inputs = self.check_ids(&inputs, 0)?;
        let x = self.embed(&inputs, 0, &mut Mode::Eval)?;
        let (x, firing) = self.trunk.forward_with_firing(x, None)?;
        let logits = self.head(&x, &mut Mode::Eval)?;
        Ok((next_token_loss(&logits, &targets, 0.0)?, firing))
    }

    /// Every spiking layer's spike train on the first example of a window ids [B, L + 1] (its
    /// L inputs), in evaluation mode and the model's order (design §10.6).
    pub fn spike_rasters(&self, ids: &Tensor) -> Result<Vec<crate::firing::Raster>> {
        let (inputs, _) = self.split_window(&ids.narrow(0, 0, 1)?)?;
        let inputs = self.check_ids(&inputs, 0)?;
        let x = self.embed(&inputs, 0, &mut Mode::Eval)?;
        self.trunk.rasters(x, None)
    }

    /// The training step's loss and gradients for a window ids [B, L + 1] (as [`Self::loss`]),
    /// back-propagated stage by stage: the embedding, each block with its norm (and attention),
    /// and the head with the loss are separate graphs joined by copies of their boundary
    /// activations, and each stage's graph is dropped as soon as its gradients are taken. A
    /// single backward pass keeps every activation alive to its end while gradients of many
    /// stages are in flight; staged, the peak is the activations plus one stage's gradients.
    ///
    /// `scale` multiplies the objective (a shard's share of its batch). Returns the losses
    /// (detached, unscaled) and the gradients of the trainable variables, or `None` when a loss
    /// is not finite (then no backward pass runs). With the config's `tbptt` the window runs in
    /// chunks (design §2.6.2).
    pub fn loss_and_grads(
        &self,
        ids: &Tensor,
        label_smoothing: f64,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(LmLoss, Option<candle_core::backprop::GradStore>)> {
        if let Some(chunk) = self.cfg.tbptt {
            return self.truncated_loss_and_grads(ids, label_smoothing, mode, scale, chunk);
        }
        let (inputs, targets) = self.split_window(ids)?;
        let ids = self.check_ids(&inputs, 0)?;
        // The embedding's stage, then one per trunk layer (kept or to recompute).
        let mut stages: Vec<Stage> = Vec::with_capacity(self.trunk.len() + 1);
        let x = stage(
            || "embedding".into(),
            Pass::Forward,
            || self.embed(&ids, 0, mode),
        )?;
        stages.push(Stage::Kept {
            input: None,
            output: x.clone(),
        });
        let head_in = self.trunk.forward_staged(x, None, mode, &mut stages)?;
        let loss = stage(
            || "head".into(),
            Pass::Forward,
            || -> Result<LmLoss> {
                let logits = self.head(head_in.as_tensor(), mode)?;
                next_token_loss(&logits, &targets, label_smoothing)
            },
        )?;
        let values = loss.detached();
        if !values.is_finite()? {
            return Ok((values, None));
        }
        let root = loss.scaled_objective(scale)?;
        drop(loss);
        let mut grads = stage(|| "head".into(), Pass::Backward, || root.backward())?;
        drop(root);
        let upstream = grads.remove(head_in.as_tensor());
        let grads = self
            .trunk
            .backward_stages(stages, grads, upstream, None, "embedding")?;
        Ok((values, Some(grads)))
    }

    /// A fresh streaming state for `batch` rows.
    pub fn new_state(&self, batch: usize) -> Result<LmState> {
        let dt = self.tok_emb.dtype();
        let dev = self.device();
        Ok(LmState {
            position: 0,
            trunk: self
                .trunk
                .new_state(batch, self.cfg.max_position_embeddings, dt, dev)?,
        })
    }

    /// One token per row, ids `[B]` → logits `[B, V]`, advancing `state` (evaluation mode).
    pub fn step(&self, ids: &Tensor, state: &mut LmState) -> Result<Tensor> {
        if ids.rank() != 1 {
            return Err(LayerError::Shape {
                what: "step token ids",
                expected: "[B]".into(),
                actual: ids.dims().to_vec(),
            });
        }
        let ids2 = self.check_ids(&ids.unsqueeze(1)?, state.position)?;
        let mode = &mut Mode::Eval;
        let x = self.embed(&ids2, state.position, mode)?.squeeze(1)?;
        let x = self.trunk.step(&x, None, &mut state.trunk)?;
        state.position += 1;
        Ok(self.head(&x, mode)?.detach())
    }
}

/// Mean cross-entropy of logits [B, L, V] against targets [B, L] (already shifted), with the
/// label-smoothed objective beside it: (1 − ε)·NLL + ε·mean_v(−log p_v).
pub fn next_token_loss(logits: &Tensor, targets: &Tensor, label_smoothing: f64) -> Result<LmLoss> {
    let (b, l, v) = logits.dims3()?;
    let pred = logits.reshape((b * l, v))?;
    let target = targets.contiguous()?.reshape(b * l)?;
    let terms = crate::fused::cross_entropy_terms(&pred, &target)?;
    let nll = terms.get(0)?;
    let objective = if label_smoothing > 0.0 {
        ((&nll * (1.0 - label_smoothing))? + (terms.get(1)? * label_smoothing)?)?
    } else {
        nll.clone()
    };
    Ok(LmLoss {
        objective,
        cross_entropy: nll.detach(),
    })
}

impl ModuleT for LanguageModel {
    /// Logits [B, L, V] of ids [B, L]; dropout from the model's own generator when `train`.
    fn forward_t(&self, ids: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.rng.run(train, |mode| self.forward(ids, mode))?)
    }
}
