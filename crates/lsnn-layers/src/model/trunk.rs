//! The stack every model of design §2.6 and §2.9 shares: hybrid blocks, each followed by its
//! LayerNorm and dropout, and after every odd block a spiking-attention residual. The language
//! model puts an embedding in front of it and a vocabulary head behind it; the sequence models
//! an input projection and a regression or classification head.
//!
//! ```text
//! for i in 0..num_layers:
//!     x, h_i = Block_i(x, h_i);  x = Dropout(LayerNorm_i(x))
//!     if i is odd: x = x + Attention_{(i−1)/2}(x)
//! ```
//! Keys: `blocks.{i}.*`, `norms.{i}.*`, `attns.{j}.*` (design §4.2).

use super::ModelConfig;
use crate::attention::{AttentionCache, AttentionPast, MultiHeadSpikingAttention};
use crate::block::{BlockState, HybridLiquidSpikingBlock};
use crate::error::{LayerError, Result};
use crate::firing::{LayerStats, Raster};
use crate::fused::NormAct;
use crate::nn::{LayerNorm, Mode};
use crate::rng::SeededRng;
use crate::stage_marks::{stage, Pass};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::VarBuilder;

/// What [`Trunk::layer_probed`] collects from the spiking layers it runs.
enum Probe<'a> {
    /// Nothing.
    None,
    /// Their spike statistics.
    Firing(&'a mut Vec<LayerStats>),
    /// Their spike trains (one example).
    Raster(&'a mut Vec<Raster>),
}

/// The blocks, their norms and the attention layers.
#[derive(Debug, Clone)]
pub(crate) struct Trunk {
    blocks: Vec<HybridLiquidSpikingBlock>,
    norms: Vec<LayerNorm>,
    attns: Vec<MultiHeadSpikingAttention>,
    /// Dropout after each block's norm.
    dropout: f64,
    /// Staged training recomputes each layer in backward instead of keeping its graph.
    recompute: bool,
}

/// What crosses from one chunk of a truncated-BPTT step to the next, detached: each block's
/// final liquid state and each attention layer's k̂, v̂ of every earlier position. Empty before
/// the first chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkCarry {
    states: Vec<BlockState>,
    pasts: Vec<AttentionPast>,
}

/// One stage of a staged training step (see [`Trunk::backward_stages`]).
#[derive(Debug)]
pub(crate) enum Stage {
    /// A stage whose graph is kept from forward: its input leaf (`None` for the first stage,
    /// which starts at the model's input) and its output.
    Kept { input: Option<Var>, output: Tensor },
    /// Trunk layer `layer`, run again in backward from its saved input (no graph kept) with the
    /// dropout generator as it stood before the layer's forward (`None`: evaluation mode), so
    /// the recomputation draws the same masks.
    Recompute {
        layer: usize,
        input: Tensor,
        rng: Option<[u64; 4]>,
    },
}

/// Streaming state of the stack: each block's liquid state, each attention layer's cache.
#[derive(Debug, Clone)]
pub(crate) struct TrunkState {
    pub(crate) blocks: Vec<BlockState>,
    pub(crate) caches: Vec<AttentionCache>,
}

impl Trunk {
    /// Creates the stack's weights through `vb` (the model's root).
    pub(crate) fn new(cfg: &ModelConfig, vb: &VarBuilder) -> Result<Self> {
        let bc = cfg.block();
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        let mut norms = Vec::with_capacity(cfg.num_layers);
        let mut attns = Vec::new();
        for i in 0..cfg.num_layers {
            blocks.push(HybridLiquidSpikingBlock::new(
                &bc,
                vb.pp(format!("blocks.{i}")),
            )?);
            norms.push(LayerNorm::new(
                cfg.hidden_dim,
                cfg.layer_norm_eps,
                vb.pp(format!("norms.{i}")),
            )?);
            if i % 2 == 1 {
                let j = (i - 1) / 2;
                attns.push(MultiHeadSpikingAttention::new(
                    &cfg.attention(),
                    vb.pp(format!("attns.{j}")),
                )?);
            }
        }
        Ok(Trunk {
            blocks,
            norms,
            attns,
            dropout: cfg.dropout,
            recompute: cfg.recompute_activations,
        })
    }

    /// Each liquid cell's post-step constraint (an LTC's clamp under the explicit constraint).
    pub(crate) fn apply_weight_constraints(&self) -> Result<()> {
        for b in &self.blocks {
            b.cfc().apply_weight_constraints()?;
        }
        Ok(())
    }

    /// The same stack with detached parameters.
    pub(crate) fn detached(&self) -> Self {
        Trunk {
            blocks: self
                .blocks
                .iter()
                .map(HybridLiquidSpikingBlock::detached)
                .collect(),
            norms: self.norms.iter().map(LayerNorm::detached).collect(),
            attns: self
                .attns
                .iter()
                .map(MultiHeadSpikingAttention::detached)
                .collect(),
            dropout: self.dropout,
            recompute: self.recompute,
        }
    }

    pub(crate) fn blocks(&self) -> &[HybridLiquidSpikingBlock] {
        &self.blocks
    }

    pub(crate) fn attentions(&self) -> &[MultiHeadSpikingAttention] {
        &self.attns
    }

    /// Layers (blocks).
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Block i, its norm and dropout, and after odd blocks the attention residual; `spans`
    /// [B, L] are the CfC's per-position time spans (the config's constant span when `None`).
    pub(crate) fn layer(
        &self,
        i: usize,
        x: &Tensor,
        spans: Option<&Tensor>,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        self.layer_probed(i, x, spans, mode, &mut Probe::None)
    }

    /// [`Self::layer`], appending what `probe` asks of its spiking layers (the block's encoder
    /// on the layer's input, the attention's rate codes on its input): their spike statistics
    /// (design §10.3) or their spike trains (§10.6).
    fn layer_probed(
        &self,
        i: usize,
        x: &Tensor,
        spans: Option<&Tensor>,
        mode: &mut Mode<'_>,
        probe: &mut Probe<'_>,
    ) -> Result<Tensor> {
        let name = || format!("blocks.{i}");
        match probe {
            Probe::None => {}
            Probe::Firing(f) => f.extend(self.blocks[i].firing(x, &name())?),
            Probe::Raster(r) => r.extend(self.blocks[i].raster(x, &name())?),
        }
        let x = stage(
            || format!("blocks.{i}"),
            Pass::Forward,
            || -> Result<Tensor> {
                let (y, _state) = self.blocks[i].forward_unchecked(x, None, spans, mode)?;
                self.norms[i].with_act(&y, NormAct::Norm, self.dropout, mode)
            },
        )?;
        if i % 2 == 1 {
            let j = (i - 1) / 2;
            let name = || format!("attns.{j}");
            match probe {
                Probe::None => {}
                Probe::Firing(f) => f.extend(self.attns[j].firing(&x, &name())?),
                Probe::Raster(r) => r.extend(self.attns[j].raster(&x, &name())?),
            }
            stage(
                || format!("attns.{j}"),
                Pass::Forward,
                || Ok((&x + self.attns[j].forward_unchecked(&x)?)?),
            )
        } else {
            Ok(x)
        }
    }

    /// [`Self::forward`] in evaluation mode that also measures every spiking layer: the
    /// output and one [`LayerStats`] per spiking layer, in the stack's order.
    pub(crate) fn forward_with_firing(
        &self,
        x: Tensor,
        spans: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<LayerStats>)> {
        let mut firing = Vec::new();
        let x = self.forward_probed(x, spans, &mut Probe::Firing(&mut firing))?;
        Ok((x, firing))
    }

    /// Every spiking layer's spike train for one example x [1, L, D] in evaluation mode, in
    /// the stack's order (design §10.6).
    pub(crate) fn rasters(&self, x: Tensor, spans: Option<&Tensor>) -> Result<Vec<Raster>> {
        let mut rasters = Vec::new();
        self.forward_probed(x, spans, &mut Probe::Raster(&mut rasters))?;
        Ok(rasters)
    }

    /// Every layer in turn in evaluation mode, each probed by `probe`.
    fn forward_probed(
        &self,
        x: Tensor,
        spans: Option<&Tensor>,
        probe: &mut Probe<'_>,
    ) -> Result<Tensor> {
        let mut x = x;
        for i in 0..self.blocks.len() {
            x = self.layer_probed(i, &x, spans, &mut Mode::Eval, probe)?;
        }
        Ok(x)
    }

    /// Every layer in turn. Takes its input by value so that each layer's input is freed as
    /// soon as the layer has read it (in inference, where no graph holds it).
    pub(crate) fn forward(
        &self,
        x: Tensor,
        spans: Option<&Tensor>,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        let mut x = x;
        for i in 0..self.blocks.len() {
            x = self.layer(i, &x, spans, mode)?;
        }
        Ok(x)
    }

    /// Runs every layer as its own stage, appending one [`Stage`] per layer, and returns the
    /// last output as a fresh leaf. With `recompute_activations` a layer runs on the detached
    /// parameters (no graph) and its stage keeps only its input and the dropout generator's
    /// state; otherwise its stage keeps its input leaf and its output with the graph.
    pub(crate) fn forward_staged(
        &self,
        x: Tensor,
        spans: Option<&Tensor>,
        mode: &mut Mode<'_>,
        stages: &mut Vec<Stage>,
    ) -> Result<Var> {
        if self.recompute {
            let plain = self.detached();
            let mut x = x.detach();
            for i in 0..self.blocks.len() {
                let rng = match &*mode {
                    Mode::Train(r) => Some(r.state()),
                    Mode::Eval => None,
                };
                let out = plain.layer(i, &x, spans, mode)?;
                stages.push(Stage::Recompute {
                    layer: i,
                    input: x,
                    rng,
                });
                x = out;
            }
            return Ok(Var::from_tensor(&x)?);
        }
        let mut x = x;
        for i in 0..self.blocks.len() {
            let leaf = Var::from_tensor(&x.detach())?;
            x = self.layer(i, leaf.as_tensor(), spans, mode)?;
            stages.push(Stage::Kept {
                input: Some(leaf),
                output: x.clone(),
            });
        }
        Ok(Var::from_tensor(&x.detach())?)
    }

    /// [`Self::forward_staged`] for one chunk of a longer sequence (truncated BPTT, design
    /// §2.6.2): each block starts from `carry`'s state and each attention layer attends to
    /// `carry`'s past too (the first chunk starts from none); `carry` is left holding this
    /// chunk's final states and the extended past, all detached. Stages keep their graphs.
    pub(crate) fn forward_chunk_staged(
        &self,
        x: Tensor,
        carry: &mut ChunkCarry,
        mode: &mut Mode<'_>,
        stages: &mut Vec<Stage>,
    ) -> Result<Var> {
        let mut x = x;
        let mut states = Vec::with_capacity(self.blocks.len());
        let mut pasts = Vec::with_capacity(self.attns.len());
        for i in 0..self.blocks.len() {
            let leaf = Var::from_tensor(&x.detach())?;
            let h0 = carry.states.get(i).map(|s| &s.h);
            let (y, state) = self.blocks[i].forward_unchecked(leaf.as_tensor(), h0, None, mode)?;
            states.push(BlockState {
                h: state.h.detach(),
            });
            x = self.norms[i].with_act(&y, NormAct::Norm, self.dropout, mode)?;
            if i % 2 == 1 {
                let j = (i - 1) / 2;
                let (a, past) = self.attns[j].forward_with_past(&x, carry.pasts.get(j))?;
                pasts.push(past);
                x = (&x + a)?;
            }
            stages.push(Stage::Kept {
                input: Some(leaf),
                output: x.clone(),
            });
        }
        carry.states = states;
        carry.pasts = pasts;
        Ok(Var::from_tensor(&x.detach())?)
    }

    /// The staged backward pass: `grads` holds the last stage's gradients and `upstream` the
    /// gradient of its input leaf; each earlier stage is back-propagated from the gradient of
    /// its output, newest first — a [`Stage::Recompute`] after running its layer again from its
    /// input — and its graph dropped as soon as its gradients are taken, so the peak is the
    /// activations plus one stage's gradients rather than every stage's at once (and with
    /// recomputation the activations are the stages' inputs alone). `spans` are the forward
    /// pass's.
    ///
    /// Each stage's backward is a stage mark (`first` names stage 0, the model's input stage;
    /// a layer's is `blocks.{i}`, with `+attns.{j}` after odd blocks: one graph).
    pub(crate) fn backward_stages(
        &self,
        mut stages: Vec<Stage>,
        mut grads: GradStore,
        mut upstream: Option<Tensor>,
        spans: Option<&Tensor>,
        first: &str,
    ) -> Result<GradStore> {
        while let Some(st) = stages.pop() {
            let index = stages.len();
            let name = || match index {
                0 => first.to_string(),
                k if (k - 1) % 2 == 1 => format!("blocks.{}+attns.{}", k - 1, (k - 2) / 2),
                k => format!("blocks.{}", k - 1),
            };
            upstream = stage(name, Pass::Backward, || {
                self.backward_stage(st, &mut grads, upstream.take(), spans, index)
            })?;
        }
        Ok(grads)
    }

    /// One stage of [`Self::backward_stages`]: its gradients added to `grads`; returns the
    /// gradient of its input leaf (none for the first stage).
    fn backward_stage(
        &self,
        stage: Stage,
        grads: &mut GradStore,
        upstream: Option<Tensor>,
        spans: Option<&Tensor>,
        index: usize,
    ) -> Result<Option<Tensor>> {
        {
            // Every stage's output feeds the next stage, so a gradient always reaches it.
            let Some(g) = upstream else {
                return Err(LayerError::Candle(candle_core::Error::Msg(format!(
                    "staged backward: no gradient reached the output of stage {index}"
                ))));
            };
            let (input, output) = match stage {
                Stage::Kept { input, output } => (input, output),
                Stage::Recompute { layer, input, rng } => {
                    let leaf = Var::from_tensor(&input)?;
                    drop(input);
                    let output = self.recompute_layer(layer, &leaf, spans, rng)?;
                    (Some(leaf), output)
                }
            };
            let stage = crate::fused::seed(&output, &g)?.backward()?;
            drop(output);
            grads.extend(stage)?;
            Ok(input.and_then(|leaf| grads.remove(leaf.as_tensor())))
        }
    }

    /// Layer `layer` from `input` with its graph, dropout drawn from a generator at `rng`
    /// (evaluation mode for `None`).
    fn recompute_layer(
        &self,
        layer: usize,
        input: &Var,
        spans: Option<&Tensor>,
        rng: Option<[u64; 4]>,
    ) -> Result<Tensor> {
        match rng {
            Some(state) => {
                let mut r = SeededRng::from_state(state).ok_or_else(|| {
                    LayerError::Candle(candle_core::Error::Msg(
                        "staged backward: a saved dropout generator state is all zero".into(),
                    ))
                })?;
                self.layer(layer, input.as_tensor(), spans, &mut Mode::Train(&mut r))
            }
            None => self.layer(layer, input.as_tensor(), spans, &mut Mode::Eval),
        }
    }

    /// A fresh streaming state for `batch` rows whose attention caches hold `capacity`
    /// positions.
    pub(crate) fn new_state(
        &self,
        batch: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<TrunkState> {
        Ok(TrunkState {
            blocks: self
                .blocks
                .iter()
                .map(|b| b.zero_state(batch, dtype, device))
                .collect::<Result<_>>()?,
            caches: self
                .attns
                .iter()
                .map(|a| a.new_cache(batch, capacity, dtype, device))
                .collect::<Result<_>>()?,
        })
    }

    /// One position x_t [B, D] through every layer (evaluation mode), advancing `state`; `span`
    /// [B] is this position's time span per row.
    pub(crate) fn step(
        &self,
        x: &Tensor,
        span: Option<&Tensor>,
        state: &mut TrunkState,
    ) -> Result<Tensor> {
        let mode = &mut Mode::Eval;
        let mut x = x.clone();
        for i in 0..self.blocks.len() {
            let y = self.blocks[i].step_unchecked(&x, span, &mut state.blocks[i], mode)?;
            // Streaming is evaluation: a state carried with its graph would chain every step's
            // graph to the next (trainable weights are Vars, so ops are tracked) and keep the
            // whole history alive until the state is dropped.
            state.blocks[i].h = state.blocks[i].h.detach();
            x = self.norms[i].forward(&y)?;
            if i % 2 == 1 {
                let j = (i - 1) / 2;
                x = (&x + self.attns[j].step_unchecked(&x, &mut state.caches[j])?)?;
            }
        }
        Ok(x)
    }
}
