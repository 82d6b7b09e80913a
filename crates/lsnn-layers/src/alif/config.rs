//! [`AlifConfig`]: the parameters of an adaptive-LIF layer (design §2.13), plain serialisable
//! data, and [`NorseLsnn`], norse's continuous-time parameters it can be made from.

use crate::error::{LayerError, Result};
use crate::lif::{BetaForm, Learn, ResetMechanism, Surrogate};
use crate::synaptic::kind::Kind;
use crate::synaptic::SynapticConfig;
use serde::{Deserialize, Serialize};

/// Parameters of an adaptive-LIF layer (norse's `LSNNCell`, Bellec et al. 2018), in discrete
/// form: the synaptic decay α, the membrane decay β, the baseline threshold θ, the adaptation's
/// decay ρ and jump J per spike, the leak and reset potentials, the surrogate gradient, and which
/// of α, β, θ are learned. [`AlifConfig::from_norse`] maps norse's (dt, inverse time constants).
///
/// ```
/// use lsnn_layers::alif::{AlifConfig, NorseLsnn};
/// let cfg = AlifConfig::from_norse(&NorseLsnn::default());
/// assert!((cfg.alpha - 0.8).abs() < 1e-12 && (cfg.beta - 0.9).abs() < 1e-12);
/// assert!(cfg.validate().is_ok());
/// assert!(AlifConfig::new(0.8, 0.9).with_adaptation(1.2, 1.8).validate().is_err()); // ρ > 1
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlifConfig {
    /// Synaptic decay α ∈ [0, 1] (default 0.8, norse's 1 − dt/τ_syn).
    pub alpha: f64,
    /// Membrane decay β ∈ [0, 1) (default 0.9, norse's 1 − dt/τ_mem); the membrane moves a
    /// fraction 1 − β of the way to v_leak + i each step (β = 1 would never let the input in).
    pub beta: f64,
    /// Baseline threshold θ > 0 (norse's v_th, default 1.0): where the adaptive threshold starts
    /// and decays back to.
    pub threshold: f64,
    /// Adaptation decay ρ ∈ [0, 1] (default 1 − 0.001/800, norse's 1 − dt/τ_adapt).
    pub adapt_decay: f64,
    /// Adaptation jump J ≥ 0: what each spike adds to the threshold (norse's β, default 1.8).
    pub adapt_jump: f64,
    /// Leak potential (default 0).
    pub v_leak: f64,
    /// Reset potential (default 0): where a spike puts the membrane.
    pub v_reset: f64,
    /// Surrogate gradient (default fast_sigmoid(1), norse's SuperSpike 1/(|x| + 1)²).
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
    /// A learned α's form: `direct` (default) or `sigmoid` (variable `alpha_logit`).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub alpha_form: BetaForm,
    /// A learned β's form, as α's (`beta_logit`).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub beta_form: BetaForm,
}

impl Default for AlifConfig {
    fn default() -> Self {
        AlifConfig::from_norse(&NorseLsnn::default())
    }
}

/// norse 1.1.0's `LSNNParameters` and integration step `dt`, its defaults: τ_syn⁻¹ = 200,
/// τ_mem⁻¹ = 100, τ_adapt⁻¹ = 1/800, v_leak = 0, v_th = 1, v_reset = 0, β = 1.8, dt = 0.001.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NorseLsnn {
    /// The Euler step.
    pub dt: f64,
    /// Inverse synaptic time constant.
    pub tau_syn_inv: f64,
    /// Inverse membrane time constant.
    pub tau_mem_inv: f64,
    /// Inverse adaptation time constant.
    pub tau_adapt_inv: f64,
    /// Leak potential.
    pub v_leak: f64,
    /// Threshold potential.
    pub v_th: f64,
    /// Reset potential.
    pub v_reset: f64,
    /// Adaptation constant (the jump per spike).
    pub beta: f64,
}

impl Default for NorseLsnn {
    fn default() -> Self {
        NorseLsnn {
            dt: 0.001,
            tau_syn_inv: 1.0 / 5e-3,
            tau_mem_inv: 1.0 / 1e-2,
            tau_adapt_inv: 1.0 / 800.0,
            v_leak: 0.0,
            v_th: 1.0,
            v_reset: 0.0,
            beta: 1.8,
        }
    }
}

/// The adaptation and the potentials, fixed for a call, in the form the kernels read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Adaptation {
    /// ρ.
    pub decay: f64,
    /// J.
    pub jump: f64,
    /// v_leak.
    pub leak: f64,
    /// v_reset.
    pub reset: f64,
}

impl AlifConfig {
    /// Synaptic decay `alpha` and membrane decay `beta`, the other fields at norse's defaults.
    pub fn new(alpha: f64, beta: f64) -> Self {
        AlifConfig {
            alpha,
            beta,
            ..AlifConfig::default()
        }
    }

    /// norse's parameters in discrete form (design §2.13): α = 1 − dt·τ_syn⁻¹,
    /// β = 1 − dt·τ_mem⁻¹, ρ = 1 − dt·τ_adapt⁻¹, θ = v_th, J = norse's β; the surrogate is
    /// norse's SuperSpike, fast_sigmoid(1).
    pub fn from_norse(p: &NorseLsnn) -> Self {
        AlifConfig {
            alpha: 1.0 - p.dt * p.tau_syn_inv,
            beta: 1.0 - p.dt * p.tau_mem_inv,
            threshold: p.v_th,
            adapt_decay: 1.0 - p.dt * p.tau_adapt_inv,
            adapt_jump: p.beta,
            v_leak: p.v_leak,
            v_reset: p.v_reset,
            surrogate: Surrogate::fast_sigmoid(1.0),
            learn_alpha: Learn::Fixed,
            learn_beta: Learn::Fixed,
            learn_threshold: Learn::Fixed,
            alpha_form: BetaForm::Direct,
            beta_form: BetaForm::Direct,
        }
    }

    /// With baseline threshold θ.
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// With adaptation decay ρ and jump J.
    pub fn with_adaptation(mut self, decay: f64, jump: f64) -> Self {
        self.adapt_decay = decay;
        self.adapt_jump = jump;
        self
    }

    /// With leak and reset potentials.
    pub fn with_potentials(mut self, v_leak: f64, v_reset: f64) -> Self {
        self.v_leak = v_leak;
        self.v_reset = v_reset;
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

    /// Checks the ranges: α ∈ [0, 1], β ∈ [0, 1), θ finite and > 0, ρ ∈ [0, 1], J finite and
    /// ≥ 0, the potentials finite and v_reset below θ, the surrogate's parameters valid.
    pub fn validate(&self) -> Result<()> {
        // α, β (this neuron's ranges), θ, the sigmoid forms' starting values, the surrogate.
        self.dynamics()
            .validate_for(Kind::Alif(self.adaptation()))?;
        if !(0.0..=1.0).contains(&self.adapt_decay) {
            return Err(LayerError::config(
                "adapt_decay",
                format!(
                    "{} is outside [0, 1]; expected the adaptation's decay per step (1 − dt/τ_adapt)",
                    self.adapt_decay
                ),
            ));
        }
        if !(self.adapt_jump.is_finite() && self.adapt_jump >= 0.0) {
            return Err(LayerError::config(
                "adapt_jump",
                format!(
                    "{}; expected a finite jump ≥ 0 added to the threshold per spike",
                    self.adapt_jump
                ),
            ));
        }
        for (what, v) in [("v_leak", self.v_leak), ("v_reset", self.v_reset)] {
            if !v.is_finite() {
                return Err(LayerError::config(
                    what,
                    format!("{v}; expected a finite potential"),
                ));
            }
        }
        if self.v_reset >= self.threshold {
            return Err(LayerError::config(
                "v_reset",
                format!(
                    "{} is not below the threshold {}; a spike would leave the neuron at or above it",
                    self.v_reset, self.threshold
                ),
            ));
        }
        Ok(())
    }

    /// α, β, θ, the surrogate and what is learned as the two-decay op's dynamics (its reset
    /// field unused: this neuron resets to v_reset).
    pub(crate) fn dynamics(&self) -> SynapticConfig {
        SynapticConfig {
            alpha: self.alpha,
            beta: self.beta,
            threshold: self.threshold,
            reset: ResetMechanism::Zero,
            surrogate: self.surrogate,
            learn_alpha: self.learn_alpha,
            learn_beta: self.learn_beta,
            learn_threshold: self.learn_threshold,
            alpha_form: self.alpha_form,
            beta_form: self.beta_form,
        }
    }

    /// The fixed adaptation and potentials.
    pub(crate) fn adaptation(&self) -> Adaptation {
        Adaptation {
            decay: self.adapt_decay,
            jump: self.adapt_jump,
            leak: self.v_leak,
            reset: self.v_reset,
        }
    }
}

/// β ∈ [0, 1): the membrane moves 1 − β of the way to v_leak + i per step, so β = 1 would shut
/// the input out (norse's dt = τ_mem is β = 0); `which` names a learned value's feature.
pub(crate) fn check_beta(b: f64, which: &str) -> Result<()> {
    if (0.0..1.0).contains(&b) {
        return Ok(());
    }
    Err(LayerError::config(
        "beta",
        format!("{which}{b} is outside [0, 1); expected a membrane decay 1 − dt/τ_mem in [0, 1)"),
    ))
}

/// A learned θ above v_reset (feature `j`): a spike must leave the membrane below the baseline
/// threshold.
pub(crate) fn check_reset_below(theta: f64, reset: f64, j: usize) -> Result<()> {
    if theta > reset {
        return Ok(());
    }
    Err(LayerError::config(
        "threshold",
        format!("the learned threshold {theta} of feature {j} is not above v_reset {reset}; a spike would leave the neuron at or above it"),
    ))
}
