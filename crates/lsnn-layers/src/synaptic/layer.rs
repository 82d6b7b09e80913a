//! [`Synaptic`]: a current-based LIF layer (snnTorch `Synaptic`) over the fused forms — a thin
//! module holding its [`SynapticConfig`] and learned parameters; the state is passed in and
//! returned, never kept inside.
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use lsnn_layers::synaptic::{Synaptic, SynapticConfig};
//!
//! # fn main() -> lsnn_layers::Result<()> {
//! let lif = Synaptic::new(&SynapticConfig::new(0.8, 0.9))?;
//! let cur = Tensor::full(0.2f32, (16, 3), &Device::Cpu)?; // [T, N]
//! let spk = lif.forward(&cur)?;                           // [T, N], from zero
//! // The same sequence in two chunks, the state carried between them:
//! let (a, st) = lif.forward_state(&cur.narrow(0, 0, 7)?, None)?;
//! let (b, _) = lif.forward_state(&cur.narrow(0, 7, 9)?, Some(&st))?;
//! assert_eq!(Tensor::cat(&[a, b], 0)?.to_vec2::<f32>()?, spk.to_vec2::<f32>()?);
//! # Ok(())
//! # }
//! ```

use super::{LearnedSynaptic, SynapticConfig, SynapticParams, SynapticState};
use crate::error::{LayerError, Result};
use crate::lif::RateOutput;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// A current-based leaky integrate-and-fire layer.
#[derive(Debug, Clone)]
pub struct Synaptic {
    cfg: SynapticConfig,
    learned: Option<LearnedSynaptic>,
}

impl Synaptic {
    /// A layer with these fixed parameters (checked); a config that learns α, β or θ needs
    /// [`Synaptic::learnable`].
    pub fn new(cfg: &SynapticConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.learns() {
            return Err(LayerError::config(
                cfg.learned_field(),
                "a learned α, β or θ needs its variables: use Synaptic::learnable(cfg, features, vb)",
            ));
        }
        Ok(Synaptic {
            cfg: *cfg,
            learned: None,
        })
    }

    /// A layer of `features` neurons (the last dim of its input) whose α, β and/or θ are learned
    /// as `cfg` says, the variables taken from `vb` (see [`LearnedSynaptic::new`]).
    pub fn learnable(cfg: &SynapticConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Synaptic {
            cfg: *cfg,
            learned: Some(LearnedSynaptic::new(cfg, features, vb)?),
        })
    }

    /// The parameters.
    pub fn config(&self) -> &SynapticConfig {
        &self.cfg
    }

    /// The learned α, β, θ for a call on `x` (none when they are fixed).
    pub fn params(&self, x: &Tensor) -> Result<Option<SynapticParams>> {
        match &self.learned {
            Some(l) => l.params(x.dtype(), x.device()),
            None => Ok(None),
        }
    }

    /// A zero state for neurons shaped like one step `x` [N…].
    pub fn zero_state(&self, x: &Tensor) -> Result<SynapticState> {
        SynapticState::zeros_like(x)
    }

    /// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), and the
    /// final state.
    pub fn forward_state(
        &self,
        currents: &Tensor,
        state: Option<&SynapticState>,
    ) -> Result<(Tensor, SynapticState)> {
        let p = self.params(currents)?;
        super::spikes_with(currents, &self.cfg, p.as_ref(), state)
    }

    /// One step, snnTorch's `spk, syn, mem = lif(cur, syn, mem)`: current [N…] → spikes [N…]
    /// and the new state.
    pub fn step(&self, current: &Tensor, state: &SynapticState) -> Result<(Tensor, SynapticState)> {
        let p = self.params(current)?;
        let (s, st) =
            super::spikes_with(&current.unsqueeze(0)?, &self.cfg, p.as_ref(), Some(state))?;
        Ok((s.squeeze(0)?, st))
    }

    /// The rate form: (mean_t S_t, mean_t U_t) of currents [T, …], and the final state.
    pub fn rate(
        &self,
        currents: &Tensor,
        state: Option<&SynapticState>,
    ) -> Result<(RateOutput, SynapticState)> {
        let p = self.params(currents)?;
        super::rate_with(currents, &self.cfg, p.as_ref(), state)
    }

    /// Spikes [steps, …] of a constant current […], and the final state.
    pub fn const_spikes(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&SynapticState>,
    ) -> Result<(Tensor, SynapticState)> {
        let p = self.params(current)?;
        super::const_spikes_with(current, steps, &self.cfg, p.as_ref(), state)
    }

    /// The firing rate […] of a constant current […] over `steps` steps, in O(1) memory over the
    /// steps, and the final state.
    pub fn const_rate(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&SynapticState>,
    ) -> Result<(Tensor, SynapticState)> {
        let p = self.params(current)?;
        super::const_rate_with(current, steps, &self.cfg, p.as_ref(), state)
    }
}

impl Module for Synaptic {
    /// Spikes [T, …] from currents [T, …], starting from zero.
    fn forward(&self, currents: &Tensor) -> candle_core::Result<Tensor> {
        let p = self.params(currents)?;
        Ok(super::stateless::spikes(
            super::kind::Kind::Synaptic,
            currents,
            &self.cfg,
            p.as_ref(),
        )?)
    }
}
