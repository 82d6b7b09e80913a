//! [`FullyConnectedConfig`]: every neuron feeds every neuron (ncps `FullyConnected`).

use super::numpy::Generator;
use super::Wiring;
use crate::error::{LayerError, Result};
use serde::{Deserialize, Serialize};

/// ncps' `FullyConnected(units, output_dim, erev_init_seed, self_connections)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullyConnectedConfig {
    /// Neurons.
    pub units: usize,
    /// Output neurons (default: all).
    #[serde(default)]
    pub output_dim: Option<usize>,
    /// Seed of the polarities (ncps' `erev_init_seed`, default 1111).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Whether a neuron feeds itself (default true).
    #[serde(default = "default_true")]
    pub self_connections: bool,
}

fn default_seed() -> u64 {
    1111
}
fn default_true() -> bool {
    true
}

impl FullyConnectedConfig {
    /// `units` neurons, all outputs, ncps' defaults otherwise.
    pub fn new(units: usize) -> Self {
        FullyConnectedConfig {
            units,
            output_dim: None,
            seed: default_seed(),
            self_connections: true,
        }
    }

    /// With `output_dim` output neurons.
    pub fn with_output_dim(mut self, output_dim: usize) -> Self {
        self.output_dim = Some(output_dim);
        self
    }

    /// With a polarity seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The wiring for `input_dim` sensory inputs: synapses drawn as ncps draws them (each
    /// polarity `choice([-1, 1, 1])`, neuron synapses first, then sensory ones).
    pub fn build(&self, input_dim: usize) -> Result<Wiring> {
        if self.units == 0 {
            return Err(LayerError::config("units", "0; expected at least 1"));
        }
        let mut w = Wiring::empty(self.units, input_dim, self.output_dim.unwrap_or(self.units));
        let mut rng = Generator::new(self.seed);
        for src in 0..self.units {
            for dest in 0..self.units {
                if src == dest && !self.self_connections {
                    continue;
                }
                w.adjacency_matrix[src][dest] = rng.choice(&[-1, 1, 1]);
            }
        }
        for row in w.sensory_adjacency_matrix.iter_mut() {
            for v in row.iter_mut() {
                *v = rng.choice(&[-1, 1, 1]);
            }
        }
        w.validate()?;
        Ok(w)
    }
}
