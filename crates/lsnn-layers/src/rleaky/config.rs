//! [`RLeakyConfig`]: the parameters of a recurrent LIF layer (design §2.11), plain serialisable
//! data.

use crate::error::Result;
use crate::lif::{BetaForm, Learn, LifConfig, ResetMechanism, Surrogate};
use serde::{Deserialize, Serialize};

/// How a recurrent LIF layer feeds its spikes of step t−1 back into step t.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Each neuron to itself, scaled by its own weight: rec = V ⊙ S (snnTorch's
    /// `all_to_all=False`, V of one value or one per feature).
    OneToOne,
    /// Every neuron of a row to every other: rec = S·Wᵀ + b over the last dim (snnTorch's
    /// default, `nn.Linear(F, F)`).
    #[default]
    AllToAll,
}

/// Parameters of a recurrent LIF layer (snnTorch `RLeaky`): decay β, threshold θ, reset,
/// surrogate, which of β and θ are learned, and the recurrent [`Connection`]. The recurrent
/// weights themselves are tensors ([`super::Recurrent`]), always trainable.
///
/// ```
/// use lsnn_layers::lif::ResetMechanism;
/// use lsnn_layers::rleaky::{Connection, RLeakyConfig};
/// let cfg = RLeakyConfig::new(0.9, Connection::OneToOne).with_reset(ResetMechanism::Zero);
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RLeakyConfig {
    /// Membrane decay β ∈ (0, 1] (default 0.95).
    pub beta: f64,
    /// Firing threshold θ > 0 (default 1.0).
    pub threshold: f64,
    /// Reset mechanism (default subtract); reset to zero clears the whole new membrane, the
    /// step's input and recurrent current included (snnTorch's `RLeaky`, unlike its `Leaky`).
    pub reset: ResetMechanism,
    /// Surrogate gradient (default fast_sigmoid(25)).
    pub surrogate: Surrogate,
    /// Whether β is learned (fixed, shared, or one per feature); starts at `beta`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_beta: Learn,
    /// Whether θ is learned, as for β; starts at `threshold`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_threshold: Learn,
    /// The recurrent connection (default all-to-all).
    pub connection: Connection,
}

impl Default for RLeakyConfig {
    fn default() -> Self {
        RLeakyConfig {
            beta: 0.95,
            threshold: 1.0,
            reset: ResetMechanism::Subtract,
            surrogate: Surrogate::default(),
            learn_beta: Learn::Fixed,
            learn_threshold: Learn::Fixed,
            connection: Connection::AllToAll,
        }
    }
}

impl RLeakyConfig {
    /// Decay `beta` and the `connection`, the other fields at their defaults.
    pub fn new(beta: f64, connection: Connection) -> Self {
        RLeakyConfig {
            beta,
            connection,
            ..RLeakyConfig::default()
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

    /// With β and θ learned as given (`Learn::Fixed` keeps one fixed).
    pub fn with_learn(mut self, beta: Learn, threshold: Learn) -> Self {
        self.learn_beta = beta;
        self.learn_threshold = threshold;
        self
    }

    /// True when β or θ is learned.
    pub fn learns(&self) -> bool {
        !(self.learn_beta.is_fixed() && self.learn_threshold.is_fixed())
    }

    /// The LIF settings β and θ share with [`LifConfig`] (its learned-parameter machinery holds
    /// them; β in the direct form).
    pub fn lif(&self) -> LifConfig {
        LifConfig {
            beta: self.beta,
            threshold: self.threshold,
            reset: self.reset,
            surrogate: self.surrogate,
            learn_beta: self.learn_beta,
            learn_threshold: self.learn_threshold,
            beta_form: BetaForm::Direct,
        }
    }

    /// Checks the ranges: β ∈ (0, 1], θ finite and > 0, the surrogate's parameters valid.
    pub fn validate(&self) -> Result<()> {
        self.lif().validate()
    }
}
