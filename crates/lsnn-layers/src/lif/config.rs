//! [`LifConfig`]: the parameters of a LIF layer (design §2.1), plain serialisable data.

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
}

impl Default for LifConfig {
    fn default() -> Self {
        LifConfig {
            beta: 0.95,
            threshold: 1.0,
            reset: ResetMechanism::Subtract,
            surrogate: Surrogate::default(),
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

    /// Checks the ranges: β ∈ (0, 1], θ finite and > 0, the surrogate's parameters valid.
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
        self.surrogate.validate()
    }
}
