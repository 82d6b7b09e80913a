//! SpikingEncoder (SPEC §3.2): two LIF layers turning an input vector into spikes.
//!
//! ```text
//! I1 = fc1(x)              [N, 2S]      once: a constant current for all T steps
//! S1 = LIF1(I1)            [T, N, 2S]
//! I2 = fc2(dropout(S1))    [T, N, S]    one batched matmul over all T (dropout p = 0.2, training)
//! S2 = LIF2(I2)            [T, N, S]
//! → rate mean_t S2 [N, S] (or spikes [N, T, S]) and mean_t U2 [N, S] (no gradient)
//! ```
//! Keys: `fc1.weight` [2S, D_in], `fc1.bias`, `fc2.weight` [S, 2S], `fc2.bias`.

use crate::error::Result;
use crate::lif::{self, LifConfig};
use crate::nn::{check_width, dropout, Linear, Mode};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// Hyperparameters of a [`SpikingEncoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpikingEncoderConfig {
    /// Input width D_in.
    pub in_dim: usize,
    /// Spiking units S (the hidden LIF layer has 2S).
    pub units: usize,
    /// Spike steps T.
    pub steps: usize,
    /// Both LIF layers' parameters.
    pub lif: LifConfig,
    /// Dropout on the first spike train (SPEC: 0.2, training only).
    pub dropout: f64,
}

impl SpikingEncoderConfig {
    /// Width of the hidden LIF layer (2S).
    pub fn hidden_units(&self) -> usize {
        2 * self.units
    }
}

/// What the encoder returns.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Firing rate mean_t S2 [N, S] (or spikes [N, T, S] from [`SpikingEncoder::forward_spikes`]).
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
}

impl SpikingEncoder {
    /// Creates the encoder's weights through `vb` (`fc1`, `fc2`).
    pub fn new(cfg: &SpikingEncoderConfig, vb: VarBuilder) -> Result<Self> {
        cfg.lif.validate()?;
        Ok(SpikingEncoder {
            fc1: Linear::new(cfg.in_dim, cfg.hidden_units(), vb.pp("fc1"))?,
            fc2: Linear::new(cfg.hidden_units(), cfg.units, vb.pp("fc2"))?,
            cfg: cfg.clone(),
        })
    }

    /// The same encoder with detached parameters (see [`Linear::detached`]).
    pub fn detached(&self) -> Self {
        SpikingEncoder {
            fc1: self.fc1.detached(),
            fc2: self.fc2.detached(),
            cfg: self.cfg.clone(),
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

    fn second_current(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<Tensor> {
        check_width(x, "encoder input [N, D_in]", 2, self.cfg.in_dim)?;
        let i1 = self.fc1.forward(x)?;
        let s1 = match mode {
            Mode::Train(rng) if self.cfg.dropout > 0.0 => lif::lif_const_spikes_dropout(
                &i1,
                self.cfg.steps,
                &self.cfg.lif,
                self.cfg.dropout,
                rng,
            )?,
            _ => lif::lif_const_spikes(&i1, self.cfg.steps, &self.cfg.lif)?,
        };
        Ok(self.fc2.forward(&s1)?)
    }

    /// Rate form: `spikes` = mean_t S2 [N, S].
    pub fn forward_rate(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<EncoderOutput> {
        crate::nn::check_finite(x, "encoder input")?;
        self.forward_rate_unchecked(x, mode)
    }

    pub(crate) fn forward_rate_unchecked(
        &self,
        x: &Tensor,
        mode: &mut Mode<'_>,
    ) -> Result<EncoderOutput> {
        let i2 = self.second_current(x, mode)?;
        let (rate, mean_mem) = lif::lif_rate_and_mean_mem(&i2, &self.cfg.lif)?;
        Ok(EncoderOutput {
            spikes: rate,
            mean_mem,
        })
    }

    /// Spike-train form: `spikes` = S2 as [N, T, S].
    pub fn forward_spikes(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<EncoderOutput> {
        crate::nn::check_finite(x, "encoder input")?;
        let i2 = self.second_current(x, mode)?;
        let s2 = lif::lif_spikes(&i2, &self.cfg.lif)?;
        let (_, mean_mem) = lif::lif_rate_and_mean_mem(&i2.detach(), &self.cfg.lif)?;
        Ok(EncoderOutput {
            spikes: s2.transpose(0, 1)?.contiguous()?,
            mean_mem,
        })
    }

    /// The same computation as [`SpikingEncoder::forward_rate`] composed per step from candle ops
    /// (the reference for tests and benchmarks).
    pub fn forward_rate_reference(&self, x: &Tensor, mode: &mut Mode<'_>) -> Result<EncoderOutput> {
        check_width(x, "encoder input [N, D_in]", 2, self.cfg.in_dim)?;
        let i1 = self.fc1.forward(x)?;
        let s1 = lif::reference::lif_const_spikes(&i1, self.cfg.steps, &self.cfg.lif)?;
        let s1 = dropout(&s1, self.cfg.dropout, mode)?;
        let i2 = self.fc2.forward(&s1)?;
        let (rate, mean_mem) = lif::reference::lif_rate_and_mean_mem(&i2, &self.cfg.lif)?;
        Ok(EncoderOutput {
            spikes: rate,
            mean_mem,
        })
    }
}
