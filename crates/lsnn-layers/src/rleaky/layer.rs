//! [`RLeaky`]: a recurrent LIF layer (snnTorch `RLeaky`) over the fused forms — a thin module
//! holding its [`RLeakyConfig`], its recurrent weights and learned β/θ; the state is passed in and
//! returned, never kept inside.
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use lsnn_layers::rleaky::{Connection, RLeaky, RLeakyConfig};
//!
//! # fn main() -> lsnn_layers::Result<()> {
//! let vars = VarMap::new();
//! let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
//! let cfg = RLeakyConfig::new(0.9, Connection::AllToAll);
//! let lif = RLeaky::new(&cfg, 8, vb.pp("lif"))?;      // W [8, 8] and b [8], trainable
//! let cur = Tensor::full(0.3f32, (12, 4, 8), &Device::Cpu)?; // [T, B, F]
//! let spk = lif.forward(&cur)?;                       // [T, B, F], from zero
//! // The same sequence in two chunks, the state carried between them:
//! let (a, st) = lif.forward_state(&cur.narrow(0, 0, 5)?, None)?;
//! let (b, _) = lif.forward_state(&cur.narrow(0, 5, 7)?, Some(&st))?;
//! assert_eq!(Tensor::cat(&[a, b], 0)?.to_vec3::<f32>()?, spk.to_vec3::<f32>()?);
//! # Ok(())
//! # }
//! ```

use super::{Connection, RLeakyConfig, RLeakyState, Recurrent};
use crate::error::{LayerError, Result};
use crate::lif::{LearnedLif, LifParams, RateOutput};
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};

/// A recurrent leaky integrate-and-fire layer.
#[derive(Debug, Clone)]
pub struct RLeaky {
    cfg: RLeakyConfig,
    rec: Recurrent,
    learned: Option<LearnedLif>,
}

impl RLeaky {
    /// A layer of `features` neurons (the last dim of its input) with its variables from `vb`,
    /// named after snnTorch's: one-to-one `V` `[F]` starting at 1 (snnTorch's default V); all-to-all
    /// `recurrent.weight` `[F, F]` and `recurrent.bias` `[F]` drawn uniformly from ±1/√F (the
    /// initialisation of `nn.Linear`); `beta` and `threshold` when the config learns them.
    pub fn new(cfg: &RLeakyConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        if features == 0 {
            return Err(LayerError::config(
                "rleaky features",
                "a layer of 0 neurons; expected at least 1",
            ));
        }
        let rec = match cfg.connection {
            Connection::OneToOne => Recurrent::OneToOne {
                v: vb.get_with_hints(features, "V", Init::Const(1.0))?,
            },
            Connection::AllToAll => {
                let bound = 1.0 / (features as f64).sqrt();
                let init = Init::Uniform {
                    lo: -bound,
                    up: bound,
                };
                let vr = vb.pp("recurrent");
                Recurrent::AllToAll {
                    weight: vr.get_with_hints((features, features), "weight", init)?,
                    bias: Some(vr.get_with_hints(features, "bias", init)?),
                }
            }
        };
        let learned = match cfg.learns() {
            true => Some(LearnedLif::new(&cfg.lif(), features, vb)?),
            false => None,
        };
        Ok(RLeaky {
            cfg: *cfg,
            rec,
            learned,
        })
    }

    /// A layer with the given recurrent weights and fixed β, θ (checked against the config's
    /// connection when called).
    pub fn with_weights(cfg: &RLeakyConfig, rec: Recurrent) -> Result<Self> {
        cfg.validate()?;
        if cfg.learns() {
            return Err(LayerError::config(
                if cfg.learn_beta.is_fixed() {
                    "learn_threshold"
                } else {
                    "learn_beta"
                },
                "a learned β or θ needs its variables: use RLeaky::new(cfg, features, vb)",
            ));
        }
        Ok(RLeaky {
            cfg: *cfg,
            rec,
            learned: None,
        })
    }

    /// The parameters.
    pub fn config(&self) -> &RLeakyConfig {
        &self.cfg
    }

    /// The recurrent weights.
    pub fn recurrent(&self) -> &Recurrent {
        &self.rec
    }

    /// The same layer with every parameter detached from its variable (a copy that must not
    /// train).
    pub fn detached(&self) -> Self {
        let rec = match &self.rec {
            Recurrent::OneToOne { v } => Recurrent::OneToOne { v: v.detach() },
            Recurrent::AllToAll { weight, bias } => Recurrent::AllToAll {
                weight: weight.detach(),
                bias: bias.as_ref().map(Tensor::detach),
            },
        };
        RLeaky {
            cfg: self.cfg,
            rec,
            learned: self.learned.as_ref().map(LearnedLif::detached),
        }
    }

    /// The learned β and θ for a call on `x` (none when they are fixed).
    pub fn params(&self, x: &Tensor) -> Result<Option<LifParams>> {
        match &self.learned {
            Some(l) => l.params(x.dtype(), x.device()),
            None => Ok(None),
        }
    }

    /// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), and the
    /// final state.
    pub fn forward_state(
        &self,
        currents: &Tensor,
        state: Option<&RLeakyState>,
    ) -> Result<(Tensor, RLeakyState)> {
        let p = self.params(currents)?;
        super::spikes_with(currents, &self.cfg, &self.rec, p.as_ref(), state)
    }

    /// One step, snnTorch's `spk, mem = lif(cur, spk, mem)`: current [N…] → spikes [N…] and the
    /// new state.
    pub fn step(&self, current: &Tensor, state: &RLeakyState) -> Result<(Tensor, RLeakyState)> {
        let (s, st) = self.forward_state(&current.unsqueeze(0)?, Some(state))?;
        Ok((s.squeeze(0)?, st))
    }

    /// The rate form: (mean_t S_t, mean_t U_t) of currents [T, …], and the final state.
    pub fn rate(
        &self,
        currents: &Tensor,
        state: Option<&RLeakyState>,
    ) -> Result<(RateOutput, RLeakyState)> {
        let p = self.params(currents)?;
        super::rate_with(currents, &self.cfg, &self.rec, p.as_ref(), state)
    }

    /// Spikes [steps, …] of a constant current […], and the final state.
    pub fn const_spikes(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&RLeakyState>,
    ) -> Result<(Tensor, RLeakyState)> {
        let p = self.params(current)?;
        super::const_spikes_with(current, steps, &self.cfg, &self.rec, p.as_ref(), state)
    }

    /// The firing rate […] of a constant current […] over `steps` steps, never materialising
    /// [steps, …] (the backward replays the forward per block of rows), and the final state.
    pub fn const_rate(
        &self,
        current: &Tensor,
        steps: usize,
        state: Option<&RLeakyState>,
    ) -> Result<(Tensor, RLeakyState)> {
        let p = self.params(current)?;
        super::const_rate_with(current, steps, &self.cfg, &self.rec, p.as_ref(), state)
    }
}

impl Module for RLeaky {
    /// Spikes [T, …] from currents [T, …], starting from zero.
    fn forward(&self, currents: &Tensor) -> candle_core::Result<Tensor> {
        let p = self.params(currents)?;
        Ok(super::stateless::spikes(
            currents,
            &self.cfg,
            &self.rec,
            p.as_ref(),
        )?)
    }
}
