//! Learnable decay β and threshold θ (design §2.1; snnTorch's `learn_beta` / `learn_threshold`,
//! SpikingJelly's parametric LIF).
//!
//! [`LearnedLif`] holds the variables a [`LifConfig`] asks for (from a `VarBuilder`, so they
//! train and are saved with the model); [`LearnedLif::params`] resolves them into the
//! [`LifParams`] a call takes: β and θ as tensors of one shared value (`[1]`) or one value per
//! neuron (`[F]`, F the last neuron dim, broadcast over the leading ones). The fused op takes them
//! as its parameter operand and returns dL/dβ and dL/dθ from the same BPTT pass that gives
//! dL/dI; the composed reference computes the same recurrence with tensor coefficients.
//!
//! β must stay in (0, 1]. In the direct form (snnTorch's) β is the variable itself and a value
//! an update takes outside is refused with a typed error naming it — never clamped, so a run
//! cannot silently train a different model than it reports. In the sigmoid form β = sigmoid(w)
//! is inside for every w whose sigmoid does not round to 0 (w below about −88 in f32, also
//! refused). θ is the variable itself and must stay finite and positive.

use super::LifConfig;
use crate::error::{LayerError, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

/// Whether a LIF parameter is learned (plain data for config files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Learn {
    /// The config's value, not learned.
    #[default]
    Fixed,
    /// One learned value shared by every neuron.
    Shared,
    /// One learned value per neuron (per feature of the last dim).
    PerNeuron,
}

impl Learn {
    /// True for [`Learn::Fixed`].
    pub fn is_fixed(&self) -> bool {
        *self == Learn::Fixed
    }

    /// How many values a learned parameter of `features` neurons has (0 when fixed).
    pub(crate) fn len(self, features: usize) -> usize {
        match self {
            Learn::Fixed => 0,
            Learn::Shared => 1,
            Learn::PerNeuron => features,
        }
    }
}

/// How a learned β is parameterised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BetaForm {
    /// β is the variable; a value outside (0, 1] is a typed error (snnTorch's form, which
    /// clamps instead).
    #[default]
    Direct,
    /// β = sigmoid(w), the variable w starting at logit(β) (SpikingJelly's parametric LIF).
    Sigmoid,
}

impl BetaForm {
    /// True for [`BetaForm::Direct`].
    pub fn is_direct(&self) -> bool {
        *self == BetaForm::Direct
    }
}

/// β and θ as tensors for one call: each of shape `[1]` (one value for every neuron) or `[F]` (one
/// per feature of the last neuron dim), in the input's dtype, on its device.
#[derive(Debug, Clone)]
pub struct LifParams {
    /// The decay β, every value in (0, 1].
    pub beta: Tensor,
    /// The threshold θ, every value finite and positive.
    pub threshold: Tensor,
}

impl LifParams {
    /// β and θ (each `[1]` or `[F]`); their values are checked when a call uses them.
    pub fn new(beta: Tensor, threshold: Tensor) -> Self {
        LifParams { beta, threshold }
    }

    /// Checks the shapes and values for neurons `neurons` of `dtype`, and returns how many
    /// (β, θ) pairs the call has (1 or F).
    pub(crate) fn check(&self, neurons: &[usize], dtype: DType) -> Result<usize> {
        let f = super::coefs::features(neurons);
        let len = |t: &Tensor, what: &'static str| -> Result<usize> {
            let n = t.elem_count();
            if t.rank() != 1 || !(n == 1 || n == f) || t.dtype() != dtype {
                return Err(LayerError::Shape {
                    what,
                    expected: format!("[1] or [{f}] of {dtype:?} (shared, or one per feature)"),
                    actual: t.dims().to_vec(),
                });
            }
            Ok(n)
        };
        let pairs = len(&self.beta, "lif learned beta")?
            .max(len(&self.threshold, "lif learned threshold")?);
        // Read on the host: not every device converts to f64.
        let values = |t: &Tensor| -> Result<Vec<f64>> {
            Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec1()?)
        };
        for (j, b) in values(&self.beta)?.into_iter().enumerate() {
            if !(b > 0.0 && b <= 1.0) {
                return Err(LayerError::config(
                    "beta",
                    format!("the learned β of feature {j} is {b}, outside (0, 1]; expected a decay in (0, 1]: lower the learning rate, or use beta_form sigmoid (where only w < −88 rounds β to 0)"),
                ));
            }
        }
        for (j, t) in values(&self.threshold)?.into_iter().enumerate() {
            if !(t.is_finite() && t > 0.0) {
                return Err(LayerError::config(
                    "spike_threshold",
                    format!(
                        "the learned θ of feature {j} is {t}; expected a positive finite number"
                    ),
                ));
            }
        }
        Ok(pairs)
    }

    /// β and θ as `[pairs]` tensors each (a shared one repeated when the other is per feature),
    /// flattened into the op's parameter operand `[β…, θ…]`.
    pub(crate) fn packed(&self, pairs: usize) -> Result<Tensor> {
        let b = self.beta.broadcast_as(pairs)?;
        let t = self.threshold.broadcast_as(pairs)?;
        Ok(crate::kernel::packing::pack(&[&b, &t])?)
    }
}

/// The learned β and θ variables of one LIF layer.
#[derive(Debug, Clone)]
pub struct LearnedLif {
    cfg: LifConfig,
    /// β, or w with β = sigmoid(w); absent when β is fixed.
    beta: Option<Tensor>,
    /// θ; absent when θ is fixed.
    threshold: Option<Tensor>,
}

impl LearnedLif {
    /// The variables `cfg` asks for, for layers of `features` neurons (the last dim of their
    /// input), from `vb`: `beta` (or `beta_logit` in the sigmoid form) and `threshold`, each
    /// `[1]` or `[features]`, initialised to the config's values.
    pub fn new(cfg: &LifConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        if features == 0 {
            return Err(LayerError::config(
                "learn_beta",
                "a layer of 0 neurons; expected at least 1",
            ));
        }
        let beta = match cfg.learn_beta.len(features) {
            0 => None,
            n => Some(match cfg.beta_form {
                BetaForm::Direct => vb.get_with_hints(n, "beta", Init::Const(cfg.beta))?,
                BetaForm::Sigmoid => {
                    let logit = (cfg.beta / (1.0 - cfg.beta)).ln();
                    vb.get_with_hints(n, "beta_logit", Init::Const(logit))?
                }
            }),
        };
        let threshold = match cfg.learn_threshold.len(features) {
            0 => None,
            n => Some(vb.get_with_hints(n, "threshold", Init::Const(cfg.threshold))?),
        };
        Ok(LearnedLif {
            cfg: *cfg,
            beta,
            threshold,
        })
    }

    /// The same parameters detached from their variables (for a copy that must not train, as
    /// the other layers' `detached`).
    pub fn detached(&self) -> Self {
        LearnedLif {
            cfg: self.cfg,
            beta: self.beta.as_ref().map(Tensor::detach),
            threshold: self.threshold.as_ref().map(Tensor::detach),
        }
    }

    /// The config the variables were made for.
    pub fn config(&self) -> &LifConfig {
        &self.cfg
    }

    /// β and θ for a call in `dtype` on `device` (the fixed one as a `[1]` constant), or `None`
    /// when nothing is learned.
    pub fn params(&self, dtype: DType, device: &Device) -> Result<Option<LifParams>> {
        if self.beta.is_none() && self.threshold.is_none() {
            return Ok(None);
        }
        // Built on the host in `dtype`, then moved: not every device converts from f64.
        let fixed = |v: f64| {
            Tensor::full(v, 1, &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(device)
        };
        let beta = match (&self.beta, self.cfg.beta_form) {
            (None, _) => fixed(self.cfg.beta)?,
            (Some(b), BetaForm::Direct) => b.to_dtype(dtype)?,
            (Some(w), BetaForm::Sigmoid) => candle_nn::ops::sigmoid(&w.to_dtype(dtype)?)?,
        };
        let threshold = match &self.threshold {
            None => fixed(self.cfg.threshold)?,
            Some(t) => t.to_dtype(dtype)?,
        };
        Ok(Some(LifParams { beta, threshold }))
    }
}
