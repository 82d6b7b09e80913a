//! [`Leaky`]: a LIF layer (snnTorch `Leaky`) over the fused LIF forms — a thin module holding
//! its [`LifConfig`]; the state is passed in and returned, never kept inside.
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use lsnn_layers::lif::{Leaky, LifConfig};
//!
//! # fn main() -> lsnn_layers::Result<()> {
//! let lif = Leaky::new(&LifConfig::new(0.9))?;
//! let cur = Tensor::full(0.4f32, (16, 3), &Device::Cpu)?; // [T, N]
//! let spk = lif.forward(&cur)?;                           // [T, N], from a zero membrane
//! // The same sequence in two chunks, the state carried between them:
//! let (a, mem) = lif.forward_state(&cur.narrow(0, 0, 7)?, None)?;
//! let (b, _) = lif.forward_state(&cur.narrow(0, 7, 9)?, Some(&mem))?;
//! assert_eq!(Tensor::cat(&[a, b], 0)?.to_vec2::<f32>()?, spk.to_vec2::<f32>()?);
//! # Ok(())
//! # }
//! ```

use super::{LearnedLif, LifConfig, LifParams, LifState, RateOutput};
use crate::error::{LayerError, Result};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// A leaky integrate-and-fire layer.
#[derive(Debug, Clone)]
pub struct Leaky {
    cfg: LifConfig,
    learned: Option<LearnedLif>,
}

impl Leaky {
    /// A layer with these fixed parameters (checked); a config that learns β or θ needs
    /// [`Leaky::learnable`].
    pub fn new(cfg: &LifConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.learns() {
            let field = if cfg.learn_beta.is_fixed() {
                "learn_threshold"
            } else {
                "learn_beta"
            };
            return Err(LayerError::config(
                field,
                "a learned β or θ needs its variables: use Leaky::learnable(cfg, features, vb)",
            ));
        }
        Ok(Leaky {
            cfg: *cfg,
            learned: None,
        })
    }

    /// A layer of `features` neurons (the last dim of its input) whose β and/or θ are learned as
    /// `cfg` says, the variables taken from `vb` (see [`LearnedLif::new`]).
    pub fn learnable(cfg: &LifConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Leaky {
            cfg: *cfg,
            learned: Some(LearnedLif::new(cfg, features, vb)?),
        })
    }

    /// The parameters.
    pub fn config(&self) -> &LifConfig {
        &self.cfg
    }

    /// The learned β and θ for a call on `x` (none when they are fixed).
    pub fn params(&self, x: &Tensor) -> Result<Option<LifParams>> {
        match &self.learned {
            Some(l) => l.params(x.dtype(), x.device()),
            None => Ok(None),
        }
    }

    /// A zero state for neurons shaped like one step `x` [N…].
    pub fn zero_state(&self, x: &Tensor) -> Result<LifState> {
        LifState::zeros_like(x)
    }

    /// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), and the
    /// final state.
    pub fn forward_state(
        &self,
        currents: &Tensor,
        state: Option<&LifState>,
    ) -> Result<(Tensor, LifState)> {
        super::spikes_with(currents, &self.cfg, self.params(currents)?.as_ref(), state)
    }

    /// One step, snnTorch's `spk, mem = lif(cur, mem)`: current [N…] → spikes [N…] and the new
    /// state.
    pub fn step(&self, current: &Tensor, state: &LifState) -> Result<(Tensor, LifState)> {
        let p = self.params(current)?;
        let (s, st) =
            super::spikes_with(&current.unsqueeze(0)?, &self.cfg, p.as_ref(), Some(state))?;
        Ok((s.squeeze(0)?, st))
    }

    /// The rate form: (mean_t S_t, mean_t U_t) of currents [T, …], and the final state.
    pub fn rate(
        &self,
        currents: &Tensor,
        state: Option<&LifState>,
    ) -> Result<(RateOutput, LifState)> {
        super::rate_with(currents, &self.cfg, self.params(currents)?.as_ref(), state)
    }

    /// Spikes [steps, …] of a constant current […], and the final state.
    pub fn const_spikes(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&LifState>,
    ) -> Result<(Tensor, LifState)> {
        let p = self.params(current)?;
        super::const_spikes_with(current, steps, &self.cfg, p.as_ref(), state)
    }

    /// The firing rate […] of a constant current […] over `steps` steps, in O(1) memory over the
    /// steps, and the final state.
    pub fn const_rate(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&LifState>,
    ) -> Result<(Tensor, LifState)> {
        let p = self.params(current)?;
        super::const_rate_with(current, steps, &self.cfg, p.as_ref(), state)
    }
}

impl Module for Leaky {
    /// Spikes [T, …] from currents [T, …], starting from a zero membrane.
    fn forward(&self, currents: &Tensor) -> candle_core::Result<Tensor> {
        let p = self.params(currents)?;
        Ok(super::stateless::spikes(currents, &self.cfg, p.as_ref())?)
    }
}
