//! HybridLiquidSpikingBlock (design §2.4): input [B, L, D] → output [B, L, D] and final h [B, H].
//!
//! ```text
//! s_t  = rate(SpikingEncoder(x_t)) + κ · LayerNorm_S(mean_t U2(x_t))    all B·L positions at once (κ = 0.1)
//! h_t  = CfC(s_t, h_{t−1})                                               the only sequential part
//! y_t  = Dropout_p(GELU(LayerNorm_D(W_f·[h_t; s_t] + b_f)))             p = 0.1
//! out_t = y_t + σ(W_g·x_t + b_g) ⊙ x_t
//! ```
//! The input half of the CfC's first map is applied to all positions in one matmul before the
//! loop. With [`BlockConfig::ncp`] the CfC is the wired cell over an AutoNCP wiring of H neurons
//! and the fusion reads its O motor neurons instead of all H (design §2.3.3). With
//! [`BlockConfig::ltc`] the liquid cell is an LTC (design §2.14) over a fully connected wiring,
//! or over the AutoNCP when `ncp` is set too; the fusion reads its output mapping's O values.
//! Keys: `encoder.*`, `pnorm.*`, `cfc.*` (wired: `cfc.layer_{l}.*`; an LTC's under `ltc.*`, ncps'
//! names), `fuse.*` ([D, H+S], or [D, O+S] wired; h first), `fuse_norm.*`, `gate.*`.
//!
//! As a candle `ModuleT`, `x.apply_t(&block, train)` runs a sequence from a zero state;
//! [`HybridLiquidSpikingBlock::forward`] takes and returns the state with an explicit [`Mode`],
//! and [`HybridLiquidSpikingBlock::step`] is the streaming form.

use crate::cfc::{CfcConfig, CfcMode, LiquidCell, LiquidCellConfig, WiredCfcConfig};
use crate::encoder::{SpikingEncoder, SpikingEncoderConfig};
use crate::error::{LayerError, Result};
use crate::firing::LayerStats;
use crate::fused::NormAct;
use crate::lif::LifConfig;
use crate::ltc::LtcSettings;
use crate::neuron::Neuron;
use crate::nn::{check_width, DropoutRng, LayerNorm, Linear, Mode};
use crate::wiring::{AutoNcpConfig, FullyConnectedConfig};
use candle_core::{DType, Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Hyperparameters of a [`HybridLiquidSpikingBlock`].
///
/// ```
/// use lsnn_layers::BlockConfig;
/// let cfg = BlockConfig::new(128, 64, 64).with_spike_steps(4).with_backbone(128, 1);
/// assert_eq!(cfg.encoder().units, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// Model width D.
    pub d_model: usize,
    /// Spiking units S.
    pub spiking_units: usize,
    /// Liquid units H.
    pub liquid_units: usize,
    /// Encoder spike steps T (default 4).
    #[serde(default = "default_steps")]
    pub spike_steps: usize,
    /// LIF parameters.
    #[serde(default)]
    pub lif: LifConfig,
    /// The encoder's neuron (default leaky; left out of a saved config then).
    #[serde(default, skip_serializing_if = "Neuron::is_leaky")]
    pub neuron: Neuron,
    /// CfC backbone width (default 128).
    #[serde(default = "default_backbone_units")]
    pub backbone_units: usize,
    /// CfC backbone depth (default 1).
    #[serde(default = "default_backbone_layers")]
    pub backbone_layers: usize,
    /// CfC mode.
    #[serde(default)]
    pub cfc_mode: CfcMode,
    /// CfC time span of every step (default 1.0).
    #[serde(default = "default_one")]
    pub cfc_ts: f64,
    /// A wired CfC over this AutoNCP wiring of `liquid_units` neurons instead of the dense CfC
    /// (default none); its motor neurons feed the fusion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ncp: Option<AutoNcpConfig>,
    /// An LTC instead of the CfC (default none): over the `ncp` wiring when set, else over a
    /// fully connected wiring of `liquid_units` neurons; `cfc_ts` is its elapsed time per step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ltc: Option<LtcSettings>,
    /// LayerNorm ε (default 1e-5).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Encoder dropout (default 0.2, the original's).
    #[serde(default = "default_encoder_dropout")]
    pub encoder_dropout: f64,
    /// Dropout after the fusion (default 0.1, the original's).
    #[serde(default = "default_block_dropout")]
    pub block_dropout: f64,
    /// Weight κ of the potential-based normalisation term (default 0.1, the original's).
    #[serde(default = "default_potential_scale")]
    pub potential_scale: f64,
    /// Seed of the block's own dropout generator under `ModuleT` (default 0).
    #[serde(default)]
    pub seed: u64,
}

fn default_steps() -> usize {
    4
}
fn default_backbone_units() -> usize {
    128
}
fn default_backbone_layers() -> usize {
    1
}
fn default_one() -> f64 {
    1.0
}
fn default_eps() -> f64 {
    1e-5
}
fn default_encoder_dropout() -> f64 {
    0.2
}
fn default_block_dropout() -> f64 {
    0.1
}
fn default_potential_scale() -> f64 {
    0.1
}

impl BlockConfig {
    /// A block of width `d_model` with `spiking_units` S and `liquid_units` H, the rest at
    /// their defaults.
    pub fn new(d_model: usize, spiking_units: usize, liquid_units: usize) -> Self {
        BlockConfig {
            d_model,
            spiking_units,
            liquid_units,
            spike_steps: default_steps(),
            lif: LifConfig::default(),
            neuron: Neuron::Leaky {},
            backbone_units: default_backbone_units(),
            backbone_layers: default_backbone_layers(),
            cfc_mode: CfcMode::Default,
            cfc_ts: default_one(),
            ncp: None,
            ltc: None,
            layer_norm_eps: default_eps(),
            encoder_dropout: default_encoder_dropout(),
            block_dropout: default_block_dropout(),
            potential_scale: default_potential_scale(),
            seed: 0,
        }
    }

    /// With `steps` encoder spike steps.
    pub fn with_spike_steps(mut self, steps: usize) -> Self {
        self.spike_steps = steps;
        self
    }

    /// With these LIF parameters.
    pub fn with_lif(mut self, lif: LifConfig) -> Self {
        self.lif = lif;
        self
    }

    /// With this neuron in the encoder.
    pub fn with_neuron(mut self, neuron: Neuron) -> Self {
        self.neuron = neuron;
        self
    }

    /// With a CfC backbone of `layers` layers of `units` units.
    pub fn with_backbone(mut self, units: usize, layers: usize) -> Self {
        self.backbone_units = units;
        self.backbone_layers = layers;
        self
    }

    /// With a wired CfC over an AutoNCP wiring (its `units` must equal `liquid_units`).
    pub fn with_ncp(mut self, ncp: AutoNcpConfig) -> Self {
        self.ncp = Some(ncp);
        self
    }

    /// With a CfC mode.
    pub fn with_cfc_mode(mut self, mode: CfcMode) -> Self {
        self.cfc_mode = mode;
        self
    }

    /// With the encoder's and the fusion's dropout probabilities.
    pub fn with_dropout(mut self, encoder: f64, block: f64) -> Self {
        self.encoder_dropout = encoder;
        self.block_dropout = block;
        self
    }

    /// With an LTC as the liquid cell.
    pub fn with_ltc(mut self, ltc: LtcSettings) -> Self {
        self.ltc = Some(ltc);
        self
    }

    /// With the seed of the `ModuleT` dropout generator.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The encoder's configuration.
    pub fn encoder(&self) -> SpikingEncoderConfig {
        SpikingEncoderConfig::new(self.d_model, self.spiking_units)
            .with_steps(self.spike_steps)
            .with_lif(self.lif)
            .with_neuron(self.neuron)
            .with_dropout(self.encoder_dropout)
    }

    /// The liquid cell's configuration: the dense CfC's, the wired CfC's over the wiring built
    /// for `spiking_units` inputs, or the LTC's.
    pub fn liquid(&self) -> Result<LiquidCellConfig> {
        if let Some(ncp) = &self.ncp {
            if ncp.units != self.liquid_units {
                return Err(LayerError::config(
                    "ncp.units",
                    format!(
                        "{}; expected liquid_units = {} (the wiring's neurons are the liquid state)",
                        ncp.units, self.liquid_units
                    ),
                ));
            }
        }
        Ok(match (&self.ltc, &self.ncp) {
            (Some(ltc), ncp) => {
                let wiring = match ncp {
                    Some(n) => n.build(self.spiking_units)?,
                    None => {
                        FullyConnectedConfig::new(self.liquid_units).build(self.spiking_units)?
                    }
                };
                LiquidCellConfig::Ltc(ltc.config(wiring, self.cfc_ts))
            }
            (None, None) => LiquidCellConfig::Dense(self.cfc()),
            (None, Some(ncp)) => LiquidCellConfig::Wired(
                WiredCfcConfig::new(ncp.build(self.spiking_units)?)
                    .with_mode(self.cfc_mode)
                    .with_ts(self.cfc_ts),
            ),
        })
    }

    /// The liquid cell's output width (the fusion reads it): `liquid_units` for the dense
    /// CfC, the motor neurons for a wired one.
    pub fn liquid_outputs(&self) -> usize {
        match &self.ncp {
            None => self.liquid_units,
            Some(n) => n.outputs,
        }
    }

    /// The dense CfC's configuration.
    pub fn cfc(&self) -> CfcConfig {
        CfcConfig::new(self.spiking_units, self.liquid_units)
            .with_backbone(self.backbone_units, self.backbone_layers)
            .with_mode(self.cfc_mode)
            .with_ts(self.cfc_ts)
    }

    /// Checks every field (through the encoder's and the cell's checks).
    pub fn validate(&self) -> Result<()> {
        if self.d_model == 0 {
            return Err(LayerError::config("d_model", "0; expected at least 1"));
        }
        crate::nn::check_probability("block dropout", self.block_dropout)?;
        if !self.potential_scale.is_finite() {
            return Err(LayerError::config(
                "potential_scale",
                format!("{}; expected a finite number", self.potential_scale),
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(LayerError::config(
                "layer_norm_eps",
                format!("{}; expected a positive number", self.layer_norm_eps),
            ));
        }
        self.encoder().validate()?;
        self.liquid()?.validate()
    }
}

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
    cfc: LiquidCell,
    fuse: Linear,
    fuse_norm: LayerNorm,
    gate: Linear,
    cfg: BlockConfig,
    rng: DropoutRng,
}

impl HybridLiquidSpikingBlock {
    /// Creates the block's weights through `vb`.
    pub fn new(cfg: &BlockConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(HybridLiquidSpikingBlock {
            encoder: SpikingEncoder::new(&cfg.encoder(), vb.pp("encoder"))?,
            pnorm: LayerNorm::new(cfg.spiking_units, cfg.layer_norm_eps, vb.pp("pnorm"))?,
            cfc: LiquidCell::new(
                &cfg.liquid()?,
                vb.pp(if cfg.ltc.is_some() { "ltc" } else { "cfc" }),
            )?,
            fuse: Linear::new(
                cfg.liquid_outputs() + cfg.spiking_units,
                cfg.d_model,
                vb.pp("fuse"),
            )?,
            fuse_norm: LayerNorm::new(cfg.d_model, cfg.layer_norm_eps, vb.pp("fuse_norm"))?,
            gate: Linear::new(cfg.d_model, cfg.d_model, vb.pp("gate"))?,
            cfg: cfg.clone(),
            rng: DropoutRng::new(cfg.seed),
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
            rng: self.rng.clone(),
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
    pub fn cfc(&self) -> &LiquidCell {
        &self.cfc
    }

    /// The generator `ModuleT` draws dropout masks from.
    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.rng
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

    /// s = rate + κ·LayerNorm_S(mean U) for x [.., D] → [.., S].
    fn spiking(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let enc = self.encoder.rate_unchecked(x, mode)?;
        let norm = self.pnorm.forward(&enc.mean_mem)?;
        Ok((enc.spikes + norm.affine(self.cfg.potential_scale, 0.0)?)?)
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

    /// Spike statistics of the encoder's two spiking layers for the block's input x [B, L, D]
    /// in evaluation mode, named `{prefix}.encoder.lif1` and `.lif2` (see
    /// [`SpikingEncoder::firing`]).
    pub fn firing(&self, x: &Tensor, prefix: &str) -> Result<[LayerStats; 2]> {
        check_width(x, "block input [B, L, D]", 3, self.cfg.d_model)?;
        let (b, l, d) = x.dims3()?;
        self.encoder
            .firing(&x.reshape((b * l, d))?, &format!("{prefix}.encoder"))
    }

    /// The encoder's spike trains for one example x [1, L, D] (design §10.6), named as in
    /// [`Self::firing`].
    pub fn raster(&self, x: &Tensor, prefix: &str) -> Result<[crate::firing::Raster; 2]> {
        check_width(x, "block input [1, L, D]", 3, self.cfg.d_model)?;
        self.encoder
            .raster(&x.squeeze(0)?, &format!("{prefix}.encoder"))
    }

    /// The sequence call: x [B, L, D] and an optional initial state → (out [B, L, D], the state
    /// after the last position).
    pub fn forward(
        &self,
        x: &Tensor,
        state: Option<&BlockState>,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, BlockState)> {
        self.forward_checked(x, None, state, mode)
    }

    /// [`HybridLiquidSpikingBlock::forward`] with a time span per row and position, `spans`
    /// [B, L] (or [B, L, 1]): the CfC's elapsed time between positions (irregular sampling,
    /// design §2.3; a span of 1 everywhere equals the constant-span call of the default
    /// config).
    pub fn forward_with_spans(
        &self,
        x: &Tensor,
        spans: &Tensor,
        state: Option<&BlockState>,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, BlockState)> {
        self.forward_checked(x, Some(spans), state, mode)
    }

    /// The public sequence calls: the input and state scanned for NaN/infinity first.
    fn forward_checked(
        &self,
        x: &Tensor,
        spans: Option<&Tensor>,
        state: Option<&BlockState>,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, BlockState)> {
        crate::nn::check_finite(x, "block input")?;
        if let Some(s) = state {
            crate::nn::check_finite(&s.h, "block initial state")?;
        }
        self.forward_unchecked(x, state.map(|s| &s.h), spans, mode)
    }

    /// [`HybridLiquidSpikingBlock::forward`] without the NaN/infinity scan of the input (the LM's
    /// internal path: a non-finite activation there must reach the loss, where the trainer
    /// skips the batch).
    pub(crate) fn forward_unchecked(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        spans: Option<&Tensor>,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, BlockState)> {
        check_width(x, "block input [B, L, D]", 3, self.cfg.d_model)?;
        let (b, l, _) = x.dims3()?;
        if l == 0 {
            return Err(LayerError::Shape {
                what: "block input [B, L, D]",
                expected: "at least one position (L >= 1)".into(),
                actual: x.dims().to_vec(),
            });
        }
        let s = self.spiking(x, mode)?;
        let h0 = match h0 {
            Some(h) => {
                self.check_state(h, b)?;
                h.clone()
            }
            None => Tensor::zeros((b, self.cfg.liquid_units), x.dtype(), x.device())?,
        };
        let hs = match spans {
            None => self.cfc.sequence(&s, &h0)?,
            Some(ts) => self.cfc.sequence_timespans(&s, ts, &h0)?,
        };
        let h = hs.narrow(1, l - 1, 1)?.squeeze(1)?;
        let out = self.output(x, &self.cfc.output_of(&hs)?, &s, mode)?;
        Ok((out, BlockState { h }))
    }

    /// One position of the sequence call: x_t [B, D] → out_t [B, D], advancing `state`.
    ///
    /// The new state keeps its autograd graph (for truncated back-propagation through time);
    /// when not training, detach it between steps (as [`crate::LanguageModel::step`] does) or
    /// every step's graph stays chained to the next.
    pub fn step(&self, x: &Tensor, state: &mut BlockState, mode: &mut Mode<'_>) -> Result<Tensor> {
        crate::nn::check_finite(x, "block step input")?;
        self.step_unchecked(x, None, state, mode)
    }

    /// [`HybridLiquidSpikingBlock::step`] with this position's time span per row, `span` `[B]`
    /// (or [B, 1]): the streaming form of [`HybridLiquidSpikingBlock::forward_with_spans`].
    pub fn step_with_span(
        &self,
        x: &Tensor,
        span: &Tensor,
        state: &mut BlockState,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        crate::nn::check_finite(x, "block step input")?;
        self.step_unchecked(x, Some(span), state, mode)
    }

    /// [`HybridLiquidSpikingBlock::step`] without the input scan.
    pub(crate) fn step_unchecked(
        &self,
        x: &Tensor,
        span: Option<&Tensor>,
        state: &mut BlockState,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        check_width(x, "block step input [B, D]", 2, self.cfg.d_model)?;
        self.check_state(&state.h, x.dim(0)?)?;
        let s = self.spiking(x, mode)?;
        let h = match span {
            None => self.cfc.step_constant(&s, &state.h)?,
            // ncps' step with the row's span (the spans checked there).
            Some(ts) => self.cfc.step(&s, &state.h, Some(ts))?.1,
        };
        let out = self.output(x, &self.cfc.output_of(&h)?, &s, mode)?;
        state.h = h;
        Ok(out)
    }
}

impl ModuleT for HybridLiquidSpikingBlock {
    /// out [B, L, D] of x [B, L, D] from a zero state; dropout from the block's own generator
    /// when `train`.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.rng.run(train, |mode| self.forward(x, None, mode))?.0)
    }
}
