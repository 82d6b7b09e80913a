//! Which two-decay neuron a synaptic op runs. snnTorch's `Synaptic` and `Alpha` and norse's
//! adaptive LIF share their learnable parameters (α, β, θ, each fixed, shared or per feature),
//! surrogates, forms and packing; they differ in their state — (syn, U), (syn_exc, syn_inh, U)
//! or (syn, U, b) — and in the recurrence, so the op, the forms and the checks are written once
//! and the kernels and the per-step references are each neuron's own.

use crate::alif::Adaptation;
use crate::error::Result;
use crate::lif::op::Form;

/// A range check of one decay (`which` names a learned value's feature in the message).
pub(crate) type RangeCheck = fn(f64, &str) -> Result<()>;

/// A neuron run by the synaptic op and forms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// The current-based LIF (design §2.10).
    Synaptic,
    /// The alpha neuron (design §2.12).
    Alpha,
    /// The adaptive LIF (design §2.13) with its fixed adaptation and potentials; the reset
    /// mechanism of the config is not read (it resets to v_reset).
    Alif(Adaptation),
}

impl Kind {
    /// The range checks of α and β: the current-based LIF's α ∈ [0, 1], β ∈ (0, 1]; the alpha
    /// neuron's α ∈ (0, 1], β ∈ (0, 1); the adaptive LIF's α ∈ [0, 1], β ∈ [0, 1).
    pub(crate) fn decay_checks(self) -> (RangeCheck, RangeCheck) {
        use super::config::{check_alpha, check_beta};
        match self {
            Kind::Synaptic => (check_alpha, check_beta),
            Kind::Alif(_) => (check_alpha, crate::alif::check_beta),
            Kind::Alpha => (crate::alpha::check_alpha, crate::alpha::check_beta),
        }
    }

    /// Tensors in the state.
    pub(crate) fn states(self) -> usize {
        self.state_names().len()
    }

    /// What the state's tensors are, for errors.
    pub(crate) fn state_names(self) -> &'static [&'static str] {
        match self {
            Kind::Synaptic => &["synaptic state (syn)", "synaptic state (mem)"],
            Kind::Alpha => &[
                "alpha state (syn_exc)",
                "alpha state (syn_inh)",
                "alpha state (mem)",
            ],
            Kind::Alif(_) => &["alif state (syn)", "alif state (mem)", "alif state (adapt)"],
        }
    }

    /// What the input of a form is, for errors.
    pub(crate) fn input_name(self, constant: bool) -> &'static str {
        match (self, constant) {
            (Kind::Synaptic, true) => "synaptic constant current",
            (Kind::Synaptic, false) => "synaptic currents [T, …]",
            (Kind::Alpha, true) => "alpha constant current",
            (Kind::Alpha, false) => "alpha currents [T, …]",
            (Kind::Alif(_), true) => "alif constant current",
            (Kind::Alif(_), false) => "alif currents [T, …]",
        }
    }

    /// What the learned α, β, θ are, for errors.
    pub(crate) fn param_names(self) -> [&'static str; 3] {
        match self {
            Kind::Synaptic => [
                "synaptic learned alpha",
                "synaptic learned beta",
                "synaptic learned threshold",
            ],
            Kind::Alpha => [
                "alpha learned alpha",
                "alpha learned beta",
                "alpha learned threshold",
            ],
            Kind::Alif(_) => [
                "alif learned alpha",
                "alif learned beta",
                "alif learned threshold",
            ],
        }
    }

    /// The name of the forward op of a form.
    pub(crate) fn op_name(self, form: Form) -> &'static str {
        match (self, form) {
            (Kind::Synaptic, Form::SeqSpikes) => "synaptic-seq-spikes",
            (Kind::Synaptic, Form::SeqRateMem) => "synaptic-seq-rate-mem",
            (Kind::Synaptic, Form::ConstSpikes) => "synaptic-const-spikes",
            (Kind::Synaptic, Form::ConstRate) => "synaptic-const-rate",
            (Kind::Alpha, Form::SeqSpikes) => "alpha-seq-spikes",
            (Kind::Alpha, Form::SeqRateMem) => "alpha-seq-rate-mem",
            (Kind::Alpha, Form::ConstSpikes) => "alpha-const-spikes",
            (Kind::Alpha, Form::ConstRate) => "alpha-const-rate",
            (Kind::Alif(_), Form::SeqSpikes) => "alif-seq-spikes",
            (Kind::Alif(_), Form::SeqRateMem) => "alif-seq-rate-mem",
            (Kind::Alif(_), Form::ConstSpikes) => "alif-const-spikes",
            (Kind::Alif(_), Form::ConstRate) => "alif-const-rate",
        }
    }

    /// The name of the final-state op.
    pub(crate) fn state_op_name(self) -> &'static str {
        match self {
            Kind::Synaptic => "synaptic-final-state",
            Kind::Alpha => "alpha-final-state",
            Kind::Alif(_) => "alif-final-state",
        }
    }

    /// The backward op's operand `k` (0 currents, 1 state and parameters, 2 the gradient), for
    /// errors.
    pub(crate) fn bwd_operand(self, k: usize) -> &'static str {
        const SYNAPTIC: [&str; 3] = [
            "synaptic-bwd: currents",
            "synaptic-bwd: state and parameters",
            "synaptic-bwd: grad",
        ];
        const ALPHA: [&str; 3] = [
            "alpha-bwd: currents",
            "alpha-bwd: state and parameters",
            "alpha-bwd: grad",
        ];
        const ALIF: [&str; 3] = [
            "alif-bwd: currents",
            "alif-bwd: state and parameters",
            "alif-bwd: grad",
        ];
        match self {
            Kind::Synaptic => SYNAPTIC[k.min(2)],
            Kind::Alpha => ALPHA[k.min(2)],
            Kind::Alif(_) => ALIF[k.min(2)],
        }
    }

    /// The name of the backward op.
    pub(crate) fn bwd_name(self) -> &'static str {
        match self {
            Kind::Synaptic => "synaptic-bwd",
            Kind::Alpha => "alpha-bwd",
            Kind::Alif(_) => "alif-bwd",
        }
    }
}
