//! [`Alif`]: an adaptive-LIF layer (norse `LSNNCell`) over the fused forms — a thin module
//! holding its [`AlifConfig`] and learned parameters; the state is passed in and returned, never
//! kept inside.
//!
//! ```
//! use candle_core::{Device, Module, Tensor};
//! use lsnn_layers::alif::{Alif, AlifConfig};
//!
//! # fn main() -> lsnn_layers::Result<()> {
//! let lif = Alif::new(&AlifConfig::new(0.8, 0.9).with_adaptation(0.95, 0.5))?;
//! let cur = Tensor::full(2.5f32, (16, 3), &Device::Cpu)?; // [T, N]
//! let spk = lif.forward(&cur)?;                           // [T, N], from rest
//! // The same sequence in two chunks, the state carried between them:
//! let (a, st) = lif.forward_state(&cur.narrow(0, 0, 7)?, None)?;
//! let (b, _) = lif.forward_state(&cur.narrow(0, 7, 9)?, Some(&st))?;
//! assert_eq!(Tensor::cat(&[a, b], 0)?.to_vec2::<f32>()?, spk.to_vec2::<f32>()?);
//! # Ok(())
//! # }
//! ```

use super::{AlifConfig, AlifParams, AlifState};
use crate::error::{LayerError, Result};
use crate::lif::RateOutput;
use crate::synaptic::kind::Kind;
use crate::synaptic::LearnedSynaptic;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// An adaptive-LIF layer.
#[derive(Debug, Clone)]
pub struct Alif {
    cfg: AlifConfig,
    learned: Option<LearnedSynaptic>,
}

impl Alif {
    /// A layer with these fixed parameters (checked); a config that learns α, β or θ needs
    /// [`Alif::learnable`].
    pub fn new(cfg: &AlifConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.learns() {
            return Err(LayerError::config(
                cfg.dynamics().learned_field(),
                "a learned α, β or θ needs its variables: use Alif::learnable(cfg, features, vb)",
            ));
        }
        Ok(Alif {
            cfg: *cfg,
            learned: None,
        })
    }

    /// A layer of `features` neurons (the last dim of its input) whose α, β and/or θ are learned
    /// as `cfg` says: variables `alpha`, `beta`, `threshold` (each `[1]` or `[features]`) from
    /// `vb`, initialised to the config's values.
    pub fn learnable(cfg: &AlifConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        Ok(Alif {
            cfg: *cfg,
            learned: Some(LearnedSynaptic::new_for(
                Kind::Alif(cfg.adaptation()),
                &cfg.dynamics(),
                features,
                vb,
            )?),
        })
    }

    /// The parameters.
    pub fn config(&self) -> &AlifConfig {
        &self.cfg
    }

    /// The learned α, β, θ for a call on `x` (none when they are fixed).
    pub fn params(&self, x: &Tensor) -> Result<Option<AlifParams>> {
        match &self.learned {
            Some(l) => l.params(x.dtype(), x.device()),
            None => Ok(None),
        }
    }

    /// norse's resting state (0, v_leak, θ) for neurons shaped like one step `x` [N…], without
    /// gradient.
    pub fn rest_state(&self, x: &Tensor) -> Result<AlifState> {
        AlifState::rest(x, &self.cfg, self.params(x)?.as_ref())
    }

    /// Spikes [T, …] from currents [T, …], starting from `state` (at rest when `None`), and the
    /// final state.
    pub fn forward_state(
        &self,
        currents: &Tensor,
        state: Option<&AlifState>,
    ) -> Result<(Tensor, AlifState)> {
        let p = self.params(currents)?;
        super::spikes_with(currents, &self.cfg, p.as_ref(), state)
    }

    /// One step, norse's `z, state = cell(x, state)`:
    /// current [N…] → spikes [N…] and the new state.
    pub fn step(&self, current: &Tensor, state: &AlifState) -> Result<(Tensor, AlifState)> {
        let p = self.params(current)?;
        let (s, st) =
            super::spikes_with(&current.unsqueeze(0)?, &self.cfg, p.as_ref(), Some(state))?;
        Ok((s.squeeze(0)?, st))
    }

    /// The rate form: (mean_t z_t, mean_t v_t) of currents [T, …], and the final state.
    pub fn rate(
        &self,
        currents: &Tensor,
        state: Option<&AlifState>,
    ) -> Result<(RateOutput, AlifState)> {
        let p = self.params(currents)?;
        super::rate_with(currents, &self.cfg, p.as_ref(), state)
    }

    /// Spikes [steps, …] of a constant current […], and the final state.
    pub fn const_spikes(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&AlifState>,
    ) -> Result<(Tensor, AlifState)> {
        let p = self.params(current)?;
        super::const_spikes_with(current, steps, &self.cfg, p.as_ref(), state)
    }

    /// The firing rate […] of a constant current […] over `steps` steps, with no [steps, …] tensor
    /// in forward or backward (the backward's scratch is 3·(steps + 1) values per neuron of a
    /// block of at most 1,024 in flight), and the final state.
    pub fn const_rate(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&AlifState>,
    ) -> Result<(Tensor, AlifState)> {
        let p = self.params(current)?;
        super::const_rate_with(current, steps, &self.cfg, p.as_ref(), state)
    }
}

impl Module for Alif {
    /// Spikes [T, …] from currents [T, …], starting from rest.
    fn forward(&self, currents: &Tensor) -> candle_core::Result<Tensor> {
        self.cfg.validate()?;
        let p = self.params(currents)?;
        let dynamics = self.cfg.dynamics();
        Ok(crate::synaptic::stateless::spikes(
            Kind::Alif(self.cfg.adaptation()),
            currents,
            &dynamics,
            p.as_ref(),
        )?)
    }
}
