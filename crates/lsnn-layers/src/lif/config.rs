//! [`LifConfig`]: the parameters of a LIF layer (design §2.1), plain serialisable data.

use super::learnable::{BetaForm, Learn};
use super::{ResetMechanism, Surrogate};
use crate::error::{LayerError, Result};
use serde::{Deserialize, Serialize};

/// Parameters of a LIF layer: decay β, threshold θ, reset mechanism and surrogate gradient.
///
/// ```
/// use lsnn_layers::lif::{LifConfig, ResetMechanism, Surrogate};
/// let cfg = LifConfig::new(0.9)
///     .with_threshold(0.5)
///     .with_reset(ResetMechanism::Zero)
///     .with_surrogate(Surrogate::atan(2.0));
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifConfig {
    /// Membrane decay β ∈ (0, 1] (default 0.95).
    pub beta: f64,
    /// Firing threshold θ > 0 (default 1.0).
    pub threshold: f64,
    /// Reset mechanism (default subtract).
    pub reset: ResetMechanism,
    /// Surrogate gradient (default fast_sigmoid(25)).
    pub surrogate: Surrogate,
    /// Whether β is learned: fixed (default), one shared value, or one per neuron (snnTorch's
    /// `learn_beta`). A learned β starts at `beta`. Left out of a saved config when fixed.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_beta: Learn,
    /// Whether θ is learned, as for β (snnTorch's `learn_threshold`); starts at `threshold`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_threshold: Learn,
    /// How a learned β is parameterised: the value itself, refused with a typed error if an
    /// update takes it out of (0, 1] (default, snnTorch's form), or β = sigmoid(w), always
    /// inside (SpikingJelly's parametric LIF). Left out of a saved config at its default.
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub beta_form: BetaForm,
}

impl Default for LifConfig {
    fn default() -> Self {
        LifConfig {
            beta: 0.95,
            threshold: 1.0,
            reset: ResetMechanism::Subtract,
            surrogate: Surrogate::default(),
            learn_beta: Learn::Fixed,
            learn_threshold: Learn::Fixed,
            beta_form: BetaForm::Direct,
        }
    }
}

impl LifConfig {
    /// Decay `beta`, the other fields at their defaults.
    pub fn new(beta: f64) -> Self {
        LifConfig {
            beta,
            ..LifConfig::default()
        }
    }

    /// With threshold θ.
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// With a reset mechanism.
    pub fn with_reset(mut self, reset: ResetMechanism) -> Self {
        self.reset = reset;
        self
    }

    /// With a surrogate gradient.
    pub fn with_surrogate(mut self, surrogate: Surrogate) -> Self {
        self.surrogate = surrogate;
        self
    }

    /// With β learned (`Learn::Shared` or `Learn::PerNeuron`) in the given form.
    pub fn with_learn_beta(mut self, learn: Learn, form: BetaForm) -> Self {
        self.learn_beta = learn;
        self.beta_form = form;
        self
    }

    /// With θ learned.
    pub fn with_learn_threshold(mut self, learn: Learn) -> Self {
        self.learn_threshold = learn;
        self
    }

    /// True when β or θ is learned (the layer then needs its parameters, see
    /// [`super::LearnedLif`]).
    pub fn learns(&self) -> bool {
        !(self.learn_beta.is_fixed() && self.learn_threshold.is_fixed())
    }

    /// Checks the ranges: β ∈ (0, 1] (β < 1 for a sigmoid-parameterised learned β, whose
    /// logit must be finite), θ finite and > 0, the surrogate's parameters valid.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return Err(LayerError::config(
                "beta",
                format!("{} is outside (0, 1]", self.beta),
            ));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(LayerError::config(
                "spike_threshold",
                format!("{} is not a positive finite number", self.threshold),
            ));
        }
        if !self.learn_beta.is_fixed() && self.beta_form == BetaForm::Sigmoid && self.beta >= 1.0 {
            return Err(LayerError::config(
                "beta",
                format!(
                    "{} cannot start a sigmoid-parameterised β (sigmoid(w) < 1 for every finite w); expected a value in (0, 1)",
                    self.beta
                ),
            ));
        }
        self.surrogate.validate()
    }
}
