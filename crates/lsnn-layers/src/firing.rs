//! Spike diagnostics (design §10.3): how often each spiking layer's neurons fire. A layer whose
//! neurons never fire passes no signal forward and gets almost no surrogate gradient; one
//! whose neurons fire at every step passes a constant. Both happen (an untrained model's first
//! encoder fires at about 1%), and neither shows in the loss until it is too late.
//!
//! [`LayerStats`] holds the raw counts, per neuron, so that counts over several batches merge
//! exactly and the summaries ([`LayerStats::mean_rate`], [`LayerStats::silent_fraction`]) are
//! taken over everything seen. The encoder, the attention layer, the block, the trunk and the
//! models each have a `firing` call that measures their spiking layers in evaluation mode.

use crate::error::{LayerError, Result};
use candle_core::{DType, Tensor};

/// Spike counts of one spiking layer over some inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerStats {
    /// The layer's name: its key prefix (`blocks.0.encoder.lif1`), or for attention the rate
    /// code's input (`attns.0.q`).
    pub name: String,
    /// Spikes of each neuron, summed over examples, positions and time steps.
    pub spikes_per_neuron: Vec<f64>,
    /// How many (example, position, step) samples each neuron's sum is over.
    pub samples: f64,
}

impl LayerStats {
    /// Counts from a spike train `spikes` [..., N] of 0s and 1s (every axis but the last is a
    /// sample: steps, examples, positions).
    pub fn from_spikes(name: impl Into<String>, spikes: &Tensor) -> Result<Self> {
        Self::from_rates(name, spikes, 1)
    }

    /// Counts from firing rates `rates` [..., N], each the mean of a spike train over `steps`
    /// steps (every axis but the last is an example or a position).
    pub fn from_rates(name: impl Into<String>, rates: &Tensor, steps: usize) -> Result<Self> {
        let name = name.into();
        let dims = rates.dims();
        let Some((&neurons, rest)) = dims.split_last() else {
            return Err(LayerError::Shape {
                what: "firing rates [..., N]",
                expected: "at least one axis (the neurons)".into(),
                actual: dims.to_vec(),
            });
        };
        let rows: usize = rest.iter().product();
        // Each rate is a count over `steps` divided by it: times `steps` and rounded, it is that
        // whole count again (the rate's own rounding is far below one spike), so the sums
        // are exact.
        let spikes_per_neuron = rates
            .to_dtype(DType::F64)?
            .reshape((rows, neurons))?
            .affine(steps as f64, 0.0)?
            .round()?
            .sum(0)?
            .to_vec1::<f64>()?;
        Ok(LayerStats {
            name,
            spikes_per_neuron,
            samples: (rows * steps) as f64,
        })
    }

    /// Neurons in the layer.
    pub fn neurons(&self) -> usize {
        self.spikes_per_neuron.len()
    }

    /// Adds `other`'s counts (the same layer on more inputs).
    pub fn merge(&mut self, other: &LayerStats) -> Result<()> {
        if other.name != self.name || other.neurons() != self.neurons() {
            return Err(LayerError::Input {
                what: "layer statistics to merge",
                message: format!(
                    "{} ({} neurons) and {} ({} neurons): expected the same layer",
                    self.name,
                    self.neurons(),
                    other.name,
                    other.neurons()
                ),
            });
        }
        for (a, b) in self
            .spikes_per_neuron
            .iter_mut()
            .zip(&other.spikes_per_neuron)
        {
            *a += b;
        }
        self.samples += other.samples;
        Ok(())
    }

    /// Mean firing rate: spikes per neuron per sample, in [0, 1] (NaN with no samples).
    pub fn mean_rate(&self) -> f64 {
        let total: f64 = self.spikes_per_neuron.iter().sum();
        total / (self.samples * self.neurons() as f64)
    }

    /// The fraction of neurons that never fired (NaN for a layer of no neurons).
    pub fn silent_fraction(&self) -> f64 {
        let silent = self.spikes_per_neuron.iter().filter(|&&s| s == 0.0).count();
        silent as f64 / self.neurons() as f64
    }

    /// The fraction of neurons that fired at every sample (NaN for a layer of no neurons).
    pub fn saturated_fraction(&self) -> f64 {
        let full = self
            .spikes_per_neuron
            .iter()
            .filter(|&&s| self.samples > 0.0 && s >= self.samples)
            .count();
        full as f64 / self.neurons() as f64
    }
}

/// Merges `more` into `acc` layer by layer (`acc` empty: takes `more`); the two must list the
/// same layers in the same order.
pub fn merge_all(acc: &mut Vec<LayerStats>, more: Vec<LayerStats>) -> Result<()> {
    if acc.is_empty() {
        *acc = more;
        return Ok(());
    }
    if acc.len() != more.len() {
        return Err(LayerError::Input {
            what: "layer statistics to merge",
            message: format!(
                "{} layers and {} layers: expected the same model's layers",
                acc.len(),
                more.len()
            ),
        });
    }
    for (a, b) in acc.iter_mut().zip(&more) {
        a.merge(b)?;
    }
    Ok(())
}

/// The spike train of one spiking layer on one example, for a raster plot (design §10.6):
/// which neurons fired at which time step, time running over the example's positions and,
/// within each, the layer's simulation steps (`time = position · steps + step`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Raster {
    /// The layer's name, as in [`LayerStats::name`].
    pub name: String,
    /// Positions of the example.
    pub positions: usize,
    /// Simulation steps per position.
    pub steps: usize,
    /// Neurons in the layer.
    pub neurons: usize,
    /// For each neuron, the time steps it fired at, increasing.
    pub spike_times: Vec<Vec<u32>>,
}

impl Raster {
    /// From a spike train `spikes` [steps, positions, N] of 0s and 1s (time-major, as the
    /// neurons return it).
    pub fn from_train(name: impl Into<String>, spikes: &Tensor) -> Result<Self> {
        let name = name.into();
        let (steps, positions, neurons) = match spikes.dims() {
            &[t, p, n] => (t, p, n),
            other => {
                return Err(LayerError::Shape {
                    what: "a spike train for a raster",
                    expected: "[steps, positions, neurons]".into(),
                    actual: other.to_vec(),
                })
            }
        };
        // [positions, steps, N]: rows in time order.
        let rows = spikes
            .to_dtype(DType::F32)?
            .transpose(0, 1)?
            .reshape((positions * steps, neurons))?
            .to_vec2::<f32>()?;
        let mut spike_times = vec![Vec::new(); neurons];
        for (time, row) in rows.iter().enumerate() {
            for (n, &s) in row.iter().enumerate() {
                if s > 0.5 {
                    spike_times[n].push(time as u32);
                }
            }
        }
        Ok(Raster {
            name,
            positions,
            steps,
            neurons,
            spike_times,
        })
    }

    /// Every spike of the layer.
    pub fn spikes(&self) -> usize {
        self.spike_times.iter().map(Vec::len).sum()
    }

    /// Time steps in the train.
    pub fn times(&self) -> usize {
        self.positions * self.steps
    }
}
