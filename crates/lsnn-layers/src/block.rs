//! HybridLiquidSpikingBlock (SPEC §3.4): input [B, L, D] → output [B, L, D] and final h [B, H].
//!
//! ```text
//! s_t  = rate(SpikingEncoder(x_t)) + 0.1 · LayerNorm_S(mean_t U2(x_t))   all B·L positions at once
//! h_t  = CfC(s_t, h_{t−1})                                               the only sequential part
//! y_t  = Dropout_0.1(GELU(LayerNorm_D(W_f·[h_t; s_t] + b_f)))
//! out_t = y_t + σ(W_g·x_t + b_g) ⊙ x_t
//! ```
//! The input half of the CfC backbone is applied to all positions in one matmul before the loop.
//! Keys: `encoder.*`, `pnorm.*`, `cfc.*`, `fuse.*` ([D, H+S], h first), `fuse_norm.*`, `gate.*`.

use crate::cfc::{Cfc, CfcConfig, CfcMode};
use crate::encoder::{SpikingEncoder, SpikingEncoderConfig};
use crate::error::{LayerError, Result};
use crate::fused::NormAct;
use crate::lif::LifConfig;
use crate::nn::{check_width, LayerNorm, Linear, Mode};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

/// Hyperparameters of a [`HybridLiquidSpikingBlock`].
#[derive(Debug, Clone, PartialEq)]
pub struct BlockConfig {
    /// Model width D.
    pub d_model: usize,
    /// Spiking units S.
    pub spiking_units: usize,
    /// Liquid units H.
    pub liquid_units: usize,
    /// Encoder spike steps T.
    pub spike_steps: usize,
    /// LIF parameters.
    pub lif: LifConfig,
    /// CfC backbone width.
    pub backbone_units: usize,
    /// CfC backbone depth.
    pub backbone_layers: usize,
    /// CfC mode.
    pub cfc_mode: CfcMode,
    /// LayerNorm ε.
    pub layer_norm_eps: f64,
    /// Encoder dropout (SPEC: 0.2).
    pub encoder_dropout: f64,
    /// Dropout after the fusion (SPEC: 0.1).
    pub block_dropout: f64,
}

/// Weight of the potential-based normalisation term.
pub const POTENTIAL_SCALE: f64 = 0.1;

/// Streaming state of one block: the liquid hidden state h [B, H].
#[derive(Debug, Clone)]
pub struct BlockState {
    /// h [B, H].
    pub h: Tensor,
}

/// The hybrid block.
#[derive(Debug, Clone)]
pub struct HybridLiquidSpikingBlock {
    encoder: SpikingEncoder,
    pnorm: LayerNorm,
    cfc: Cfc,
    fuse: Linear,
    fuse_norm: LayerNorm,
    gate: Linear,
    cfg: BlockConfig,
}

impl HybridLiquidSpikingBlock {
    /// Creates the block's weights through `vb`.
    pub fn new(cfg: &BlockConfig, vb: VarBuilder) -> Result<Self> {
        let enc = SpikingEncoderConfig {
            in_dim: cfg.d_model,
            units: cfg.spiking_units,
            steps: cfg.spike_steps,
            lif: cfg.lif,
            dropout: cfg.encoder_dropout,
        };
        let cfc = CfcConfig {
            input_size: cfg.spiking_units,
            hidden_size: cfg.liquid_units,
            backbone_units: cfg.backbone_units,
            backbone_layers: cfg.backbone_layers,
            mode: cfg.cfc_mode,
            ts: 1.0,
        };
        Ok(HybridLiquidSpikingBlock {
            encoder: SpikingEncoder::new(&enc, vb.pp("encoder"))?,
            pnorm: LayerNorm::new(cfg.spiking_units, cfg.layer_norm_eps, vb.pp("pnorm"))?,
            cfc: Cfc::new(&cfc, vb.pp("cfc"))?,
            fuse: Linear::new(
                cfg.liquid_units + cfg.spiking_units,
                cfg.d_model,
                vb.pp("fuse"),
            )?,
            fuse_norm: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, vb.pp("fuse_norm"))?,
            gate: Linear::new(cfg.d_model, cfg.d_model, vb.pp("gate"))?,
            cfg: cfg.clone(),
        })
    }

    /// The same block with detached parameters (see [`crate::nn::Linear::detached`]).
    pub fn detached(&self) -> Self {
        HybridLiquidSpikingBlock {
            encoder: self.encoder.detached(),
            pnorm: self.pnorm.detached(),
            cfc: self.cfc.detached(),
            fuse: self.fuse.detached(),
            fuse_norm: self.fuse_norm.detached(),
            gate: self.gate.detached(),
            cfg: self.cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BlockConfig {
        &self.cfg
    }

    /// The encoder.
    pub fn encoder(&self) -> &SpikingEncoder {
        &self.encoder
    }

    /// The liquid cell.
    pub fn cfc(&self) -> &Cfc {
        &self.cfc
    }

    /// A zero state for a batch of `batch`.
    pub fn zero_state(
        &self,
        batch: usize,
        dtype: DType,
        device: &candle_core::Device,
    ) -> Result<BlockState> {
        Ok(BlockState {
            h: Tensor::zeros((batch, self.cfg.liquid_units), dtype, device)?,
        })
    }

    /// s = rate + 0.1·LayerNorm_S(mean U) for x [N, D] → [N, S].
    fn spiking(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let enc = self.encoder.forward_rate_unchecked(x, mode)?;
        let norm = self.pnorm.forward(&enc.mean_mem)?;
        Ok((enc.spikes + norm.affine(POTENTIAL_SCALE, 0.0)?)?)
    }

    fn output(&self, x: &Tensor, h: &Tensor, s: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let last = x.rank() - 1;
        let fused = self.fuse.forward(&Tensor::cat(&[h, s], last)?)?;
        let y =
            self.fuse_norm
                .with_act(&fused, NormAct::NormThenGelu, self.cfg.block_dropout, mode)?;
        Ok(crate::fused::gated_residual(&y, &self.gate.forward(x)?, x)?)
    }

    fn check_state(&self, h: &Tensor, batch: usize) -> Result<()> {
        if h.dims() != [batch, self.cfg.liquid_units] {
            return Err(LayerError::Shape {
                what: "block state h",
                expected: format!("[{batch}, {}]", self.cfg.liquid_units),
                actual: h.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// The sequence call: x [B, L, D] and an optional initial h [B, H] → (out [B, L, D], h_L).
    pub fn forward(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, Tensor)> {
        crate::nn::check_finite(x, "block input")?;
        if let Some(h) = h0 {
            crate::nn::check_finite(h, "block initial state")?;
        }
        self.forward_unchecked(x, h0, mode)
    }

    /// [`HybridLiquidSpikingBlock::forward`] without the NaN/infinity scan of the input (the LM's
    /// internal path: a non-finite activation there must reach the loss, where the trainer
    /// skips the batch).
    pub(crate) fn forward_unchecked(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, Tensor)> {
        check_width(x, "block input [B, L, D]", 3, self.cfg.d_model)?;
        let (b, l, d) = x.dims3()?;
        let sdim = self.cfg.spiking_units;
        let s = self
            .spiking(&x.reshape((b * l, d))?, mode)?
            .reshape((b, l, sdim))?;
        let proj = self.cfc.input_projection(&s)?;
        let h0 = match h0 {
            Some(h) => {
                self.check_state(h, b)?;
                h.clone()
            }
            None => Tensor::zeros((b, self.cfg.liquid_units), x.dtype(), x.device())?,
        };
        let hs = self.cfc.sequence(&proj, &h0)?;
        let h = hs.narrow(1, l - 1, 1)?.squeeze(1)?;
        let out = self.output(x, &hs, &s, mode)?;
        Ok((out, h))
    }

    /// One position of the sequence call: x_t [B, D] → out_t [B, D], advancing `state`.
    ///
    /// The new state keeps its autograd graph (for truncated back-propagation through time);
    /// when not training, detach it between steps (as [`crate::LanguageModel::step`] does) or
    /// every step's graph stays chained to the next.
    pub fn step(&self, x: &Tensor, state: &mut BlockState, mode: &mut Mode<'_>) -> Result<Tensor> {
        crate::nn::check_finite(x, "block step input")?;
        self.step_unchecked(x, state, mode)
    }

    /// [`HybridLiquidSpikingBlock::step`] without the input scan.
    pub(crate) fn step_unchecked(
        &self,
        x: &Tensor,
        state: &mut BlockState,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        check_width(x, "block step input [B, D]", 2, self.cfg.d_model)?;
        self.check_state(&state.h, x.dim(0)?)?;
        let s = self.spiking(x, mode)?;
        let proj = self.cfc.input_projection(&s)?;
        let prepared = self.cfc.prepare()?;
        let h = self.cfc.step_projected(&proj, &state.h, &prepared)?;
        let out = self.output(x, &h, &s, mode)?;
        state.h = h;
        Ok(out)
    }
}
