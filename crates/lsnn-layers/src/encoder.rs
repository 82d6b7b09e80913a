//! SpikingEncoder (design §2.2): two LIF layers turning an input vector into spikes.
//!
//! ```text
//! I1 = fc1(x)              [N, 2S]      once: a constant current for all T steps
//! S1 = LIF1(I1)            [T, N, 2S]
//! I2 = fc2(dropout(S1))    [T, N, S]    one batched matmul over all T (dropout p, training only)
//! S2 = LIF2(I2)            [T, N, S]
//! → rate mean_t S2 [N, S] (or spikes [N, T, S]) and mean_t U2 [N, S] (no gradient)
//! ```
//! Keys: `fc1.weight` [2S, D_in], `fc1.bias`, `fc2.weight` [S, 2S], `fc2.bias`.
//!
//! As a candle `ModuleT`, `x.apply_t(&encoder, train)` gives the rate [N, S], with dropout from
//! the encoder's own generator when `train` (see [`crate::nn::DropoutRng`]); [`SpikingEncoder::rate`]
//! and [`SpikingEncoder::spikes`] take an explicit [`Mode`] and return the mean membrane too.

use crate::error::Result;
use crate::firing::LayerStats;
use crate::firing::Raster;
use crate::lif::LifConfig;
use crate::neuron::{Neuron, SpikingLayer};
use crate::nn::{check_width, DropoutRng, Linear, Mode};
use candle_core::{Module, ModuleT, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Hyperparameters of a [`SpikingEncoder`].
///
/// ```
/// use lsnn_layers::SpikingEncoderConfig;
/// let cfg = SpikingEncoderConfig::new(16, 32).with_steps(8).with_dropout(0.0);
/// assert_eq!(cfg.hidden_units(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikingEncoderConfig {
    /// Input width D_in.
    pub in_dim: usize,
    /// Spiking units S (the hidden LIF layer has 2S).
    pub units: usize,
    /// Spike steps T (default 4).
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Both LIF layers' parameters (default [`LifConfig::default`]).
    #[serde(default)]
    pub lif: LifConfig,
    /// The neuron of both layers (default leaky; left out of a saved config then).
    #[serde(default, skip_serializing_if = "Neuron::is_leaky")]
    pub neuron: Neuron,
    /// Dropout on the first spike train, training only (default 0.2, the original's).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// Seed of the encoder's own dropout generator under `ModuleT` (default 0).
    #[serde(default)]
    pub seed: u64,
}

fn default_steps() -> usize {
    4
}
fn default_dropout() -> f64 {
    0.2
}

impl SpikingEncoderConfig {
    /// An encoder from `in_dim` inputs to `units` spiking units, the rest at their defaults.
    pub fn new(in_dim: usize, units: usize) -> Self {
        SpikingEncoderConfig {
            in_dim,
            units,
            steps: default_steps(),
            lif: LifConfig::default(),
            neuron: Neuron::Leaky {},
            dropout: default_dropout(),
            seed: 0,
        }
    }

    /// With `steps` spike steps.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// With these LIF parameters.
    pub fn with_lif(mut self, lif: LifConfig) -> Self {
        self.lif = lif;
        self
    }

    /// With this neuron in both layers.
    pub fn with_neuron(mut self, neuron: Neuron) -> Self {
        self.neuron = neuron;
        self
    }

    /// With dropout probability `p` on the first spike train.
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.dropout = p;
        self
    }

    /// With the seed of the `ModuleT` dropout generator.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Width of the hidden LIF layer (2S).
    pub fn hidden_units(&self) -> usize {
        2 * self.units
    }

    /// Checks the sizes, the dropout probability and the LIF parameters.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("in_dim", self.in_dim),
            ("units", self.units),
            ("steps", self.steps),
        ] {
            if v == 0 {
                return Err(crate::LayerError::config(field, "0; expected at least 1"));
            }
        }
        crate::nn::check_probability("encoder dropout", self.dropout)?;
        self.neuron.validate(&self.lif)?;
        // Two spiking layers in a row.
        self.neuron.check_steps("steps", self.steps, 2)
    }
}

/// What the encoder returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Firing rate mean_t S2 [N, S] (or spikes [N, T, S] from [`SpikingEncoder::spikes`]).
    pub spikes: Tensor,
    /// mean_t U2 [N, S], detached.
    pub mean_mem: Tensor,
}

/// The spiking encoder.
#[derive(Debug, Clone)]
pub struct SpikingEncoder {
    fc1: Linear,
    fc2: Linear,
    cfg: SpikingEncoderConfig,
    rng: DropoutRng,
    /// The first (2S) and second (S) spiking layers, with their learned parameters if any.
    lif1: SpikingLayer,
    lif2: SpikingLayer,
}

impl SpikingEncoder {
    /// Creates the encoder's weights through `vb` (`fc1`, `fc2`, and `lif1`, `lif2` for a
    /// neuron's learned parameters, see [`crate::lif::LearnedLif::new`] and
    /// [`crate::synaptic::LearnedSynaptic::new`]).
    pub fn new(cfg: &SpikingEncoderConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let lif1 = SpikingLayer::new(&cfg.lif, &cfg.neuron, cfg.hidden_units(), vb.pp("lif1"))?;
        let lif2 = SpikingLayer::new(&cfg.lif, &cfg.neuron, cfg.units, vb.pp("lif2"))?;
        Ok(SpikingEncoder {
            fc1: Linear::new(cfg.in_dim, cfg.hidden_units(), vb.pp("fc1"))?,
            fc2: Linear::new(cfg.hidden_units(), cfg.units, vb.pp("fc2"))?,
            cfg: cfg.clone(),
            rng: DropoutRng::new(cfg.seed),
            lif1,
            lif2,
        })
    }

    /// The same encoder with detached parameters (see [`Linear::detached`]).
    pub fn detached(&self) -> Self {
        SpikingEncoder {
            fc1: self.fc1.detached(),
            fc2: self.fc2.detached(),
            cfg: self.cfg.clone(),
            rng: self.rng.clone(),
            lif1: self.lif1.detached(),
            lif2: self.lif2.detached(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SpikingEncoderConfig {
        &self.cfg
    }

    /// fc1.
    pub fn fc1(&self) -> &Linear {
        &self.fc1
    }

    /// fc2.
    pub fn fc2(&self) -> &Linear {
        &self.fc2
    }

    /// The generator `ModuleT` draws dropout masks from.
    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.rng
    }

    /// The second layer's input current for x [.., D_in] (the callers check x's shape).
    fn second_current(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        let i1 = self.fc1.forward(x)?;
        let dropout = match mode {
            Mode::Train(rng) if self.cfg.dropout > 0.0 => Some((self.cfg.dropout, &mut **rng)),
            _ => None,
        };
        let s1 = self.lif1.const_spikes(&i1, self.cfg.steps, dropout)?;
        Ok(self.fc2.forward(&s1)?)
    }

    /// Rate form: `spikes` = mean_t S2 [N, S], with the mean membrane.
    pub fn rate(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<EncoderOutput> {
        check_width(x, "encoder input [N, D_in]", 2, self.cfg.in_dim)?;
        crate::nn::check_finite(x, "encoder input")?;
        self.rate_unchecked(x, mode)
    }

    /// [`Self::rate`] for x [.., D_in] of any leading dimensions (the block passes [B, L, D]
    /// as it is: a reshape to rows and back would be two more graph nodes), without the
    /// NaN/infinity scan; the caller has checked x's width.
    pub(crate) fn rate_unchecked(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<EncoderOutput> {
        let i2 = self.second_current(x, mode)?;
        let r = self.lif2.rate(&i2, false)?;
        Ok(EncoderOutput {
            spikes: r.rate,
            mean_mem: r.mean_mem,
        })
    }

    /// Spike statistics of the two spiking layers for x [N, D_in] in evaluation mode (no
    /// dropout), named `{prefix}.lif1` and `{prefix}.lif2` (design §10.3). Runs the encoder
    /// once more beside the model's own forward: a diagnostic, not a training path.
    pub fn firing(&self, x: &Tensor, prefix: &str) -> Result<[LayerStats; 2]> {
        check_width(x, "encoder input [N, D_in]", 2, self.cfg.in_dim)?;
        let s1 = self
            .lif1
            .const_spikes(&self.fc1.forward(x)?, self.cfg.steps, None)?;
        let r2 = self.lif2.rate(&self.fc2.forward(&s1)?, true)?.rate;
        Ok([
            LayerStats::from_spikes(format!("{prefix}.lif1"), &s1)?,
            LayerStats::from_rates(format!("{prefix}.lif2"), &r2, self.cfg.steps)?,
        ])
    }

    /// The spike trains of both layers for one example's positions x [P, D_in] (evaluation
    /// mode), named `{prefix}.lif1` and `{prefix}.lif2`: what [`Self::firing`] counts, kept
    /// whole for a raster plot (design §10.6).
    pub fn raster(&self, x: &Tensor, prefix: &str) -> Result<[Raster; 2]> {
        check_width(x, "encoder input [P, D_in]", 2, self.cfg.in_dim)?;
        let s1 = self
            .lif1
            .const_spikes(&self.fc1.forward(x)?, self.cfg.steps, None)?;
        let s2 = self.lif2.spikes(&self.fc2.forward(&s1)?)?;
        Ok([
            Raster::from_train(format!("{prefix}.lif1"), &s1)?,
            Raster::from_train(format!("{prefix}.lif2"), &s2)?,
        ])
    }

    /// Spike-train form: `spikes` = S2 as [N, T, S], with the mean membrane.
    pub fn spikes(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<EncoderOutput> {
        check_width(x, "encoder input [N, D_in]", 2, self.cfg.in_dim)?;
        crate::nn::check_finite(x, "encoder input")?;
        let i2 = self.second_current(x, mode)?;
        let s2 = self.lif2.spikes(&i2)?;
        let mean_mem = self.lif2.rate(&i2.detach(), true)?.mean_mem;
        Ok(EncoderOutput {
            spikes: s2.transpose(0, 1)?.contiguous()?,
            mean_mem,
        })
    }
}

impl ModuleT for SpikingEncoder {
    /// The firing rate [N, S] of x [N, D_in]; dropout from the encoder's own generator when
    /// `train`.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        Ok(self.rng.run(train, |mode| self.rate(x, mode))?.spikes)
    }
}
