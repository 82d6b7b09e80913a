//! [`SynapticConfig`]: the parameters of a current-based LIF layer (design §2.10), plain
//! serialisable data.

use super::kind::Kind;
use crate::error::{LayerError, Result};
use crate::lif::{BetaForm, Learn, ResetMechanism, Surrogate};
use serde::{Deserialize, Serialize};

/// Parameters of a current-based LIF layer (snnTorch `Synaptic`): synaptic decay α, membrane
/// decay β, threshold θ, reset mechanism, surrogate gradient, and which of α, β, θ are learned.
///
/// ```
/// use lsnn_layers::lif::{ResetMechanism, Surrogate};
/// use lsnn_layers::synaptic::SynapticConfig;
/// let cfg = SynapticConfig::new(0.8, 0.9)
///     .with_reset(ResetMechanism::Zero)
///     .with_surrogate(Surrogate::atan(2.0));
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynapticConfig {
    /// Synaptic-current decay α ∈ [0, 1] (default 0.9; α = 0 is the plain LIF with
    /// subtract or no reset).
    pub alpha: f64,
    /// Membrane decay β ∈ (0, 1] (default 0.95).
    pub beta: f64,
    /// Firing threshold θ > 0 (default 1.0).
    pub threshold: f64,
    /// Reset mechanism (default subtract); reset to zero clears the membrane, never the
    /// synaptic current (as snnTorch).
    pub reset: ResetMechanism,
    /// Surrogate gradient (default fast_sigmoid(25)).
    pub surrogate: Surrogate,
    /// Whether α is learned (snnTorch's `learn_alpha`): fixed (default), shared, or one per
    /// feature. A learned α starts at `alpha`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_alpha: Learn,
    /// Whether β is learned, as for α; starts at `beta`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_beta: Learn,
    /// Whether θ is learned, as for α; starts at `threshold`.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_threshold: Learn,
    /// A learned α's form: `direct` (default; an update taking it out of range is an error) or
    /// `sigmoid` (α = sigmoid(w), the variable `alpha_logit` starting at logit(α)).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub alpha_form: BetaForm,
    /// A learned β's form, as α's (`beta_logit` in the sigmoid form).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub beta_form: BetaForm,
}

impl Default for SynapticConfig {
    fn default() -> Self {
        SynapticConfig {
            alpha: 0.9,
            beta: 0.95,
            threshold: 1.0,
            reset: ResetMechanism::Subtract,
            surrogate: Surrogate::default(),
            learn_alpha: Learn::Fixed,
            learn_beta: Learn::Fixed,
            learn_threshold: Learn::Fixed,
            alpha_form: BetaForm::Direct,
            beta_form: BetaForm::Direct,
        }
    }
}

impl SynapticConfig {
    /// Decays `alpha` (synaptic) and `beta` (membrane), the other fields at their defaults.
    pub fn new(alpha: f64, beta: f64) -> Self {
        SynapticConfig {
            alpha,
            beta,
            ..SynapticConfig::default()
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

    /// With learned α and β parameterised as given (they matter only for a learned α or β).
    pub fn with_forms(mut self, alpha: BetaForm, beta: BetaForm) -> Self {
        self.alpha_form = alpha;
        self.beta_form = beta;
        self
    }

    /// True when α, β or θ is learned (the layer then needs its variables, see
    /// [`super::Synaptic::learnable`]).
    pub fn learns(&self) -> bool {
        !(self.learn_alpha.is_fixed()
            && self.learn_beta.is_fixed()
            && self.learn_threshold.is_fixed())
    }

    /// The config field of the first learned parameter (`learn_alpha`, `learn_beta`,
    /// `learn_threshold`), for errors about learned parameters; `learn_alpha` when none is.
    pub(crate) fn learned_field(&self) -> &'static str {
        if self.learn_alpha.is_fixed() && !self.learn_beta.is_fixed() {
            "learn_beta"
        } else if self.learn_alpha.is_fixed()
            && self.learn_beta.is_fixed()
            && !self.learn_threshold.is_fixed()
        {
            "learn_threshold"
        } else {
            "learn_alpha"
        }
    }

    /// Checks the ranges: α ∈ [0, 1], β ∈ (0, 1], θ finite and > 0, the surrogate's
    /// parameters valid.
    pub fn validate(&self) -> Result<()> {
        self.validate_for(Kind::Synaptic)
    }

    /// [`SynapticConfig::validate`] with the decay ranges of the neuron `kind` runs
    /// ([`Kind::decay_checks`]).
    pub(crate) fn validate_for(&self, kind: Kind) -> Result<()> {
        let (check_alpha, check_beta) = kind.decay_checks();
        check_alpha(self.alpha, "")?;
        check_beta(self.beta, "")?;
        check_threshold(self.threshold, "")?;
        check_sigmoid_start("alpha", self.alpha, self.learn_alpha, self.alpha_form)?;
        check_sigmoid_start("beta", self.beta, self.learn_beta, self.beta_form)?;
        self.surrogate.validate()
    }
}

/// A decay learned in the sigmoid form starts at logit(v): v must be inside (0, 1).
pub(crate) fn check_sigmoid_start(field: &str, v: f64, learn: Learn, form: BetaForm) -> Result<()> {
    if learn.is_fixed() || form == BetaForm::Direct || (v > 0.0 && v < 1.0) {
        return Ok(());
    }
    Err(LayerError::config(
        field,
        format!("{v} cannot start a sigmoid-parameterised decay (0 < sigmoid(w) < 1 for every finite w); expected a value in (0, 1)"),
    ))
}

/// α ∈ [0, 1]; `which` names a learned value's feature in the message.
pub(crate) fn check_alpha(a: f64, which: &str) -> Result<()> {
    if (0.0..=1.0).contains(&a) {
        return Ok(());
    }
    Err(LayerError::config(
        "alpha",
        format!("{which}{a} is outside [0, 1]; expected a synaptic decay in [0, 1]"),
    ))
}

/// β ∈ (0, 1].
pub(crate) fn check_beta(b: f64, which: &str) -> Result<()> {
    if b > 0.0 && b <= 1.0 {
        return Ok(());
    }
    Err(LayerError::config(
        "beta",
        format!("{which}{b} is outside (0, 1]; expected a membrane decay in (0, 1]"),
    ))
}

/// θ finite and > 0.
pub(crate) fn check_threshold(t: f64, which: &str) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        return Ok(());
    }
    Err(LayerError::config(
        "spike_threshold",
        format!("{which}{t}; expected a positive finite threshold"),
    ))
}
