//! [`LtcConfig`]: the LTC cell's hyperparameters (design §2.14), plain serialisable data with
//! ncps' defaults.

use crate::error::{LayerError, Result};
use crate::wiring::Wiring;
use serde::{Deserialize, Serialize};

/// ncps' `input_mapping` / `output_mapping`: what the cell does to its inputs before the ODE and
/// to its motor neurons' potentials after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LtcMapping {
    /// y = x·w + b, per feature (ncps' default; `w` starts at 1, `b` at 0).
    #[default]
    Affine,
    /// y = x·w, per feature.
    Linear,
    /// y = x.
    None,
}

impl LtcMapping {
    /// Whether the mapping has a weight.
    pub fn has_weight(self) -> bool {
        self != LtcMapping::None
    }

    /// Whether the mapping has a bias.
    pub fn has_bias(self) -> bool {
        self == LtcMapping::Affine
    }
}

/// How the cell keeps `w`, `sensory_w`, `cm` and `gleak` positive, as ncps offers it. ncps'
/// `LTCCell` defaults to the explicit constraint and its `LTC` sequence wrapper to the implicit
/// one; [`LtcConfig::new`] follows the cell, [`LtcSettings`] (a model block's) the wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LtcConstraint {
    /// `implicit_param_constraints=False` (`LTCCell`'s default): the parameters are used as they are
    /// and clamped to ≥ 0 after every optimizer step ([`super::Ltc::apply_weight_constraints`],
    /// ncps' `apply_weight_constraints`; the trainer calls it through its post-step hook).
    #[default]
    Explicit,
    /// `implicit_param_constraints=True` (the `LTC` wrapper's default): the cell reads
    /// softplus(p) for each of them, so any value is valid and nothing is clamped.
    Implicit,
}

/// Hyperparameters of a [`super::Ltc`].
///
/// ```
/// use lsnn_layers::ltc::{LtcConfig, LtcConstraint};
/// use lsnn_layers::wiring::FullyConnectedConfig;
/// let wiring = FullyConnectedConfig::new(16).build(8).unwrap();
/// let cfg = LtcConfig::new(wiring).with_constraint(LtcConstraint::Implicit);
/// assert_eq!((cfg.input_size(), cfg.state_size(), cfg.ode_unfolds), (8, 16, 6));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtcConfig {
    /// The neurons and their synapses: a fully connected wiring for the dense cell, an NCP for a
    /// wired one. The absolute values of its matrices mask the synapses; their signs start the
    /// reversal potentials `erev` and `sensory_erev`.
    pub wiring: Wiring,
    /// Semi-implicit Euler steps per time step (default 6, ncps').
    #[serde(default = "default_unfolds")]
    pub ode_unfolds: usize,
    /// Added to the update's denominator (default 1e-8, ncps').
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Elapsed time of every step (default 1.0, ncps' `elapsed_time` without `timespans`).
    #[serde(default = "default_ts")]
    pub ts: f64,
    /// Mapping of the inputs (default affine).
    #[serde(default)]
    pub input_mapping: LtcMapping,
    /// Mapping of the motor neurons' potentials (default affine).
    #[serde(default)]
    pub output_mapping: LtcMapping,
    /// How positive parameters stay positive (default explicit clamping, `LTCCell`'s).
    #[serde(default)]
    pub constraint: LtcConstraint,
}

/// The most solver steps per time step (the model's bound on counts): the backward keeps one
/// step's unfolds, K·N² values per row.
pub const MAX_UNFOLDS: usize = crate::model::size::MAX_COUNT;

fn default_unfolds() -> usize {
    6
}
fn default_epsilon() -> f64 {
    1e-8
}
fn default_ts() -> f64 {
    1.0
}

impl LtcConfig {
    /// A cell over `wiring` (built for its inputs), the rest at ncps' defaults.
    pub fn new(wiring: Wiring) -> Self {
        LtcConfig {
            wiring,
            ode_unfolds: default_unfolds(),
            epsilon: default_epsilon(),
            ts: default_ts(),
            input_mapping: LtcMapping::Affine,
            output_mapping: LtcMapping::Affine,
            constraint: LtcConstraint::Explicit,
        }
    }

    /// With `unfolds` solver steps per time step.
    pub fn with_unfolds(mut self, unfolds: usize) -> Self {
        self.ode_unfolds = unfolds;
        self
    }

    /// With ε.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }

    /// With the elapsed time of every step.
    pub fn with_ts(mut self, ts: f64) -> Self {
        self.ts = ts;
        self
    }

    /// With input and output mappings.
    pub fn with_mappings(mut self, input: LtcMapping, output: LtcMapping) -> Self {
        self.input_mapping = input;
        self.output_mapping = output;
        self
    }

    /// With a constraint mode.
    pub fn with_constraint(mut self, constraint: LtcConstraint) -> Self {
        self.constraint = constraint;
        self
    }

    /// Input width (the wiring's sensory inputs).
    pub fn input_size(&self) -> usize {
        self.wiring.input_dim
    }

    /// State width (the wiring's neurons).
    pub fn state_size(&self) -> usize {
        self.wiring.units
    }

    /// Output width (the wiring's motor neurons, the first `output_dim` neurons as in ncps).
    pub fn output_size(&self) -> usize {
        self.wiring.output_dim
    }

    /// Checks the wiring, the unfolds (1..=[`MAX_UNFOLDS`]), ε (finite, ≥ 0) and the elapsed time (finite,
    /// > 0: the capacitance term is cm·unfolds/ts).
    pub fn validate(&self) -> Result<()> {
        self.wiring.validate()?;
        if self.ode_unfolds == 0 || self.ode_unfolds > MAX_UNFOLDS {
            return Err(LayerError::config(
                "ode_unfolds",
                format!("{}; expected 1..={MAX_UNFOLDS}", self.ode_unfolds),
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(LayerError::config(
                "epsilon",
                format!("{}; expected a finite number >= 0", self.epsilon),
            ));
        }
        if !(self.ts.is_finite() && self.ts > 0.0) {
            return Err(LayerError::config(
                "ts",
                format!("{}; expected a finite elapsed time > 0", self.ts),
            ));
        }
        Ok(())
    }
}

/// The LTC settings a model block carries besides its wiring and time span (which come from
/// the block's own fields): the defaults of ncps' `LTC` wrapper, which a model trains with (the
/// implicit constraint).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtcSettings {
    /// Solver steps per time step (default 6).
    #[serde(default = "default_unfolds")]
    pub ode_unfolds: usize,
    /// ε (default 1e-8).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Constraint mode (default implicit, the `LTC` wrapper's).
    #[serde(default = "implicit")]
    pub constraint: LtcConstraint,
    /// Input mapping (default affine).
    #[serde(default)]
    pub input_mapping: LtcMapping,
    /// Output mapping (default affine).
    #[serde(default)]
    pub output_mapping: LtcMapping,
}

fn implicit() -> LtcConstraint {
    LtcConstraint::Implicit
}

impl Default for LtcSettings {
    fn default() -> Self {
        LtcSettings {
            ode_unfolds: default_unfolds(),
            epsilon: default_epsilon(),
            constraint: LtcConstraint::Implicit,
            input_mapping: LtcMapping::Affine,
            output_mapping: LtcMapping::Affine,
        }
    }
}

impl LtcSettings {
    /// The cell's configuration over `wiring` with elapsed time `ts`.
    pub fn config(&self, wiring: Wiring, ts: f64) -> LtcConfig {
        LtcConfig::new(wiring)
            .with_unfolds(self.ode_unfolds)
            .with_epsilon(self.epsilon)
            .with_ts(ts)
            .with_mappings(self.input_mapping, self.output_mapping)
            .with_constraint(self.constraint)
    }
}
