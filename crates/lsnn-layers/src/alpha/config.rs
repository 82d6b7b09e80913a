//! [`AlphaConfig`]: the parameters of an alpha-neuron layer (design §2.12), plain serialisable
//! data, and the range checks its fixed and learned values share.

use crate::error::{LayerError, Result};
use crate::lif::{BetaForm, Learn, ResetMechanism, Surrogate};
use crate::synaptic::SynapticConfig;
use serde::{Deserialize, Serialize};

/// Parameters of an alpha-neuron layer (snnTorch `Alpha`): the excitatory synaptic decay α, the
/// inhibitory one β (α > β; the membrane is their sum scaled by τ = ln α / (ln β − ln α) + 1),
/// threshold θ, reset mechanism, surrogate gradient, and which of α, β, θ are learned.
///
/// ```
/// use lsnn_layers::alpha::AlphaConfig;
/// use lsnn_layers::lif::ResetMechanism;
/// let cfg = AlphaConfig::new(0.9, 0.8).with_reset(ResetMechanism::Subtract);
/// assert!(cfg.validate().is_ok());
/// assert!(AlphaConfig::new(0.8, 0.9).validate().is_err()); // α must exceed β
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlphaConfig {
    /// Excitatory synaptic decay α ∈ (0, 1], greater than β (default 0.9).
    pub alpha: f64,
    /// Inhibitory synaptic decay β ∈ (0, 1) (default 0.8).
    pub beta: f64,
    /// Firing threshold θ > 0 (default 1.0).
    pub threshold: f64,
    /// Reset mechanism (default zero, snnTorch's default for `Alpha`); see design §2.12 for
    /// what subtraction does to each of the three states.
    pub reset: ResetMechanism,
    /// Surrogate gradient (default fast_sigmoid(25)).
    pub surrogate: Surrogate,
    /// Whether α is learned: fixed (default), shared, or one per feature; starts at `alpha`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_alpha: Learn,
    /// Whether β is learned, as for α; starts at `beta`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_beta: Learn,
    /// Whether θ is learned, as for α; starts at `threshold`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_threshold: Learn,
    /// A learned α's form: `direct` (default) or `sigmoid` (α = sigmoid(w), variable
    /// `alpha_logit`, which keeps α below 1; α > β is still checked).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub alpha_form: BetaForm,
    /// A learned β's form, as α's (`beta_logit`).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub beta_form: BetaForm,
}

impl Default for AlphaConfig {
    fn default() -> Self {
        AlphaConfig {
            alpha: 0.9,
            beta: 0.8,
            threshold: 1.0,
            reset: ResetMechanism::Zero,
            surrogate: Surrogate::default(),
            learn_alpha: Learn::Fixed,
            learn_beta: Learn::Fixed,
            learn_threshold: Learn::Fixed,
            alpha_form: BetaForm::Direct,
            beta_form: BetaForm::Direct,
        }
    }
}

impl AlphaConfig {
    /// Decays `alpha` (excitatory) and `beta` (inhibitory), the other fields at their defaults.
    pub fn new(alpha: f64, beta: f64) -> Self {
        AlphaConfig {
            alpha,
            beta,
            ..AlphaConfig::default()
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

    /// With α, β and θ learned as given (`Learn::Fixed` keeps one fixed).
    pub fn with_learn(mut self, alpha: Learn, beta: Learn, threshold: Learn) -> Self {
        self.learn_alpha = alpha;
        self.learn_beta = beta;
        self.learn_threshold = threshold;
        self
    }

    /// With learned α and β parameterised as given.
    pub fn with_forms(mut self, alpha: BetaForm, beta: BetaForm) -> Self {
        self.alpha_form = alpha;
        self.beta_form = beta;
        self
    }

    /// True when α, β or θ is learned.
    pub fn learns(&self) -> bool {
        self.dynamics().learns()
    }

    /// Checks the ranges: α ∈ (0, 1], β ∈ (0, 1), α > β, θ finite and > 0, the surrogate's
    /// parameters valid.
    pub fn validate(&self) -> Result<()> {
        check_alpha(self.alpha, "")?;
        check_beta(self.beta, "")?;
        check_order(self.alpha, self.beta, 0)?;
        // θ, the sigmoid forms' starting values and the surrogate, as the two-decay op checks.
        self.dynamics().validate()
    }

    /// The same values as the two-decay dynamics the synaptic op runs (α, β, θ, reset, surrogate
    /// and what is learned).
    pub(crate) fn dynamics(&self) -> SynapticConfig {
        SynapticConfig {
            alpha: self.alpha,
            beta: self.beta,
            threshold: self.threshold,
            reset: self.reset,
            surrogate: self.surrogate,
            learn_alpha: self.learn_alpha,
            learn_beta: self.learn_beta,
            learn_threshold: self.learn_threshold,
            alpha_form: self.alpha_form,
            beta_form: self.beta_form,
        }
    }
}

/// α ∈ (0, 1] (ln α is finite); `which` names a learned value's feature in the message.
pub(crate) fn check_alpha(a: f64, which: &str) -> Result<()> {
    if a > 0.0 && a <= 1.0 {
        return Ok(());
    }
    Err(LayerError::config(
        "alpha",
        format!("{which}{a} is outside (0, 1]; expected an excitatory decay in (0, 1]"),
    ))
}

/// β ∈ (0, 1): β = 1 divides by zero in the membrane's scale, as snnTorch says.
pub(crate) fn check_beta(b: f64, which: &str) -> Result<()> {
    if b > 0.0 && b < 1.0 {
        return Ok(());
    }
    Err(LayerError::config(
        "beta",
        format!("{which}{b} is outside (0, 1); expected an inhibitory decay in (0, 1)"),
    ))
}

/// α > β (for feature `j` of learned values; `j` = 0 for fixed ones): the scale
/// ln α / (ln β − ln α) + 1 is infinite at α = β and the kernel negative below.
pub(crate) fn check_order(a: f64, b: f64, j: usize) -> Result<()> {
    if a > b {
        return Ok(());
    }
    Err(LayerError::config(
        "alpha",
        format!("alpha {a} is not greater than beta {b} (feature {j}); the alpha neuron needs alpha > beta"),
    ))
}
