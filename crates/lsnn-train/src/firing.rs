//! Spike diagnostics at an epoch end (design §10.3): each spiking layer's firing over the
//! validation set summarised ([`LayerFiring`]), and a [`SpikeWarning`] for a layer that is
//! silent or saturated by the config's [`SpikeThresholds`], naming the layer and the usual
//! fixes.

use crate::error::{Result, TrainError};
use crate::model::LayerStats;

/// When a layer is reported (the config's `spike_silent_rate`, `spike_dead_fraction` and
/// `spike_saturated_rate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeThresholds {
    /// Below this mean rate a layer is silent.
    pub silent_rate: f64,
    /// At or above this fraction of never-firing neurons a layer is silent.
    pub dead_fraction: f64,
    /// Above this mean rate a layer is saturated.
    pub saturated_rate: f64,
}

impl SpikeThresholds {
    /// The defaults: silent below 0.1% or with 90% of its neurons never firing, saturated
    /// above 90%. The default run's quietest layer fires at about 0.5% before training, 30% of
    /// its neurons never firing, and at 2–4% once trained (design §10.3).
    pub const DEFAULT: SpikeThresholds = SpikeThresholds {
        silent_rate: 0.001,
        dead_fraction: 0.9,
        saturated_rate: 0.9,
    };

    pub(crate) fn is_default_silent_rate(v: &f64) -> bool {
        *v == Self::DEFAULT.silent_rate
    }

    pub(crate) fn is_default_dead_fraction(v: &f64) -> bool {
        *v == Self::DEFAULT.dead_fraction
    }

    pub(crate) fn is_default_saturated_rate(v: &f64) -> bool {
        *v == Self::DEFAULT.saturated_rate
    }

    /// The rates fractions in [0, 1] with silent below saturated, the dead fraction in (0, 1].
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("spike_silent_rate", self.silent_rate),
            ("spike_saturated_rate", self.saturated_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(TrainError::Config {
                    field: field.into(),
                    message: format!("{v}; expected a fraction in [0, 1]"),
                });
            }
        }
        // 0 would call every layer silent (every layer has at least 0% dead neurons).
        let d = self.dead_fraction;
        if !(d > 0.0 && d <= 1.0) {
            return Err(TrainError::Config {
                field: "spike_dead_fraction".into(),
                message: format!("{d}; expected a fraction in (0, 1]"),
            });
        }
        if self.silent_rate >= self.saturated_rate {
            return Err(TrainError::Config {
                field: "spike_saturated_rate".into(),
                message: format!(
                    "{} is not above spike_silent_rate {}; expected silent < saturated",
                    self.saturated_rate, self.silent_rate
                ),
            });
        }
        Ok(())
    }

    /// What is wrong with `layer`, if anything.
    pub fn judge(&self, layer: &LayerFiring) -> Option<SpikeProblem> {
        if !layer.mean_rate.is_finite() || !layer.silent_fraction.is_finite() {
            Some(SpikeProblem::NotMeasured)
        } else if layer.mean_rate < self.silent_rate || layer.silent_fraction >= self.dead_fraction
        {
            Some(SpikeProblem::Silent)
        } else if layer.mean_rate > self.saturated_rate {
            Some(SpikeProblem::Saturated)
        } else {
            None
        }
    }
}

/// One spiking layer's firing over an evaluation, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerFiring {
    /// The layer's name (see [`LayerStats::name`]).
    pub name: String,
    /// Its neurons.
    pub neurons: usize,
    /// Spikes per neuron per (example, position, step) sample.
    pub mean_rate: f64,
    /// The fraction of neurons that never fired.
    pub silent_fraction: f64,
    /// The fraction of neurons that fired at every sample (reported; the warning judges the
    /// mean rate).
    pub saturated_fraction: f64,
}

impl LayerFiring {
    /// The summary of `stats`.
    pub fn of(stats: &LayerStats) -> LayerFiring {
        LayerFiring {
            name: stats.name.clone(),
            neurons: stats.neurons(),
            mean_rate: stats.mean_rate(),
            silent_fraction: stats.silent_fraction(),
            saturated_fraction: stats.saturated_fraction(),
        }
    }
}

/// What is wrong with a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpikeProblem {
    /// It (almost) never fires, or most of its neurons never do.
    Silent,
    /// It fires at (almost) every step.
    Saturated,
    /// Its rate is not a number: no samples were counted (an empty validation set) or its
    /// counts are not finite.
    NotMeasured,
}

/// A layer found silent or saturated at an epoch end.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeWarning {
    /// The epoch (0-based) whose evaluation measured it.
    pub epoch: usize,
    /// The layer.
    pub layer: LayerFiring,
    /// What is wrong.
    pub problem: SpikeProblem,
    /// The thresholds it was judged by.
    pub thresholds: SpikeThresholds,
}

impl SpikeWarning {
    /// The usual fixes, in the config's terms.
    pub fn hint(&self) -> &'static str {
        match self.problem {
            SpikeProblem::Silent => {
                "it passes almost no signal and its surrogate gradient is near zero; lower \
                 spike_threshold, raise beta (a slower leak) or the spike steps \
                 (num_spike_steps, attention_spike_steps), widen the surrogate \
                 (surrogate_width or a smaller surrogate_slope), or check the scale of its \
                 input (initializer_range, a learning rate that drove weights down)"
            }
            SpikeProblem::Saturated => {
                "it fires at almost every step and passes a near-constant signal; raise \
                 spike_threshold, lower beta (a faster leak), use reset_mechanism \"subtract\", \
                 or check the scale of its input (initializer_range, a learning rate too high)"
            }
            SpikeProblem::NotMeasured => {
                "nothing could be judged; check that the validation set is not empty and that \
                 the model's activations are finite"
            }
        }
    }
}

impl std::fmt::Display for SpikeWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.layer;
        let t = &self.thresholds;
        let what = match self.problem {
            SpikeProblem::Silent => format!(
                "silent (mean rate below {} or at least {:.0}% of neurons never firing)",
                t.silent_rate,
                100.0 * t.dead_fraction
            ),
            SpikeProblem::Saturated => format!("saturated (mean rate above {})", t.saturated_rate),
            SpikeProblem::NotMeasured => "not measured (its rate is not a number)".to_string(),
        };
        write!(
            f,
            "spiking layer {} is {what} over epoch {}'s validation: mean rate {:.4}, {:.1}% of \
             its {} neurons never fired; {}",
            l.name,
            self.epoch + 1,
            l.mean_rate,
            100.0 * l.silent_fraction,
            l.neurons,
            self.hint()
        )
    }
}

/// The summaries of `stats` and a warning for each layer `thresholds` finds wrong.
pub fn check_layers(
    stats: &[LayerStats],
    thresholds: SpikeThresholds,
    epoch: usize,
) -> (Vec<LayerFiring>, Vec<SpikeWarning>) {
    let layers: Vec<LayerFiring> = stats.iter().map(LayerFiring::of).collect();
    let warnings = layers
        .iter()
        .filter_map(|l| {
            thresholds.judge(l).map(|problem| SpikeWarning {
                epoch,
                layer: l.clone(),
                problem,
                thresholds,
            })
        })
        .collect();
    (layers, warnings)
}
