//! [`Alpha`]: an alpha-neuron layer (snnTorch `Alpha`) over the fused forms — a thin module
//! holding its [`AlphaConfig`] and learned parameters; the state is passed in and returned, never
//! kept inside.
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use lsnn_layers::alpha::{Alpha, AlphaConfig};
//!
//! # fn main() -> lsnn_layers::Result<()> {
//! let lif = Alpha::new(&AlphaConfig::new(0.9, 0.8))?;
//! let cur = Tensor::full(0.5f32, (16, 3), &Device::Cpu)?; // [T, N]
//! let spk = lif.forward(&cur)?;                           // [T, N], from zero
//! // The same sequence in two chunks, the state carried between them:
//! let (a, st) = lif.forward_state(&cur.narrow(0, 0, 7)?, None)?;
//! let (b, _) = lif.forward_state(&cur.narrow(0, 7, 9)?, Some(&st))?;
//! assert_eq!(Tensor::cat(&[a, b], 0)?.to_vec2::<f32>()?, spk.to_vec2::<f32>()?);
//! # Ok(())
//! # }
//! ```

use super::{AlphaConfig, AlphaParams, AlphaState};
use crate::error::{LayerError, Result};
use crate::lif::RateOutput;
use crate::synaptic::kind::Kind;
use crate::synaptic::LearnedSynaptic;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// An alpha-neuron layer.
#[derive(Debug, Clone)]
pub struct Alpha {
    cfg: AlphaConfig,
    learned: Option<LearnedSynaptic>,
}

impl Alpha {
    /// A layer with these fixed parameters (checked); a config that learns α, β or θ needs
    /// [`Alpha::learnable`].
    pub fn new(cfg: &AlphaConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.learns() {
            return Err(LayerError::config(
                cfg.dynamics().learned_field(),
                "a learned α, β or θ needs its variables: use Alpha::learnable(cfg, features, vb)",
            ));
        }
        Ok(Alpha {
            cfg: *cfg,
            learned: None,
        })
    }

    /// A layer of `features` neurons (the last dim of its input) whose α, β and/or θ are learned
    /// as `cfg` says: variables `alpha`, `beta`, `threshold` (each `[1]` or `[features]`) from
    /// `vb`, initialised to the config's values.
    pub fn learnable(cfg: &AlphaConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Alpha {
            cfg: *cfg,
            learned: Some(LearnedSynaptic::new_for(
                Kind::Alpha,
                &cfg.dynamics(),
                features,
                vb,
            )?),
        })
    }

    /// The parameters.
    pub fn config(&self) -> &AlphaConfig {
        &self.cfg
    }

    /// The learned α, β, θ for a call on `x` (none when they are fixed).
    pub fn params(&self, x: &Tensor) -> Result<Option<AlphaParams>> {
        match &self.learned {
            Some(l) => l.params(x.dtype(), x.device()),
            None => Ok(None),
        }
    }

    /// A zero state for neurons shaped like one step `x` [N…].
    pub fn zero_state(&self, x: &Tensor) -> Result<AlphaState> {
        AlphaState::zeros_like(x)
    }

    /// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), and the
    /// final state.
    pub fn forward_state(
        &self,
        currents: &Tensor,
        state: Option<&AlphaState>,
    ) -> Result<(Tensor, AlphaState)> {
        let p = self.params(currents)?;
        super::spikes_with(currents, &self.cfg, p.as_ref(), state)
    }

    /// One step, snnTorch's `spk, syn_exc, syn_inh, mem = lif(cur, syn_exc, syn_inh, mem)`:
    /// current [N…] → spikes [N…] and the new state.
    pub fn step(&self, current: &Tensor, state: &AlphaState) -> Result<(Tensor, AlphaState)> {
        let p = self.params(current)?;
        let (s, st) =
            super::spikes_with(&current.unsqueeze(0)?, &self.cfg, p.as_ref(), Some(state))?;
        Ok((s.squeeze(0)?, st))
    }

    /// The rate form: (mean_t S_t, mean_t U_t) of currents [T, …], and the final state.
    pub fn rate(
        &self,
        currents: &Tensor,
        state: Option<&AlphaState>,
    ) -> Result<(RateOutput, AlphaState)> {
        let p = self.params(currents)?;
        super::rate_with(currents, &self.cfg, p.as_ref(), state)
    }

    /// Spikes [steps, …] of a constant current […], and the final state.
    pub fn const_spikes(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&AlphaState>,
    ) -> Result<(Tensor, AlphaState)> {
        let p = self.params(current)?;
        super::const_spikes_with(current, steps, &self.cfg, p.as_ref(), state)
    }

    /// The firing rate […] of a constant current […] over `steps` steps, in O(1) memory over the
    /// steps, and the final state.
    pub fn const_rate(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&AlphaState>,
    ) -> Result<(Tensor, AlphaState)> {
        let p = self.params(current)?;
        super::const_rate_with(current, steps, &self.cfg, p.as_ref(), state)
    }
}

impl Module for Alpha {
    /// Spikes [T, …] from currents [T, …], starting from zero.
    fn forward(&self, currents: &Tensor) -> candle_core::Result<Tensor> {
        self.cfg.validate()?;
        let p = self.params(currents)?;
        let dynamics = self.cfg.dynamics();
        Ok(crate::synaptic::stateless::spikes(
            Kind::Alpha,
            currents,
            &dynamics,
            p.as_ref(),
        )?)
    }
}
