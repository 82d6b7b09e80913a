//! Wirings: which neuron feeds which (design §2.3.3; ncps `wirings`).
//!
//! A [`Wiring`] holds the synapses between its `units` neurons (`adjacency_matrix[src][dest]`
//! ∈ {−1, 0, +1}: none, or the synapse's polarity) and from the `input_dim` sensory inputs
//! (`sensory_adjacency_matrix[src][dest]`), and its neurons' layers in order. The wired CfC
//! ([`crate::cfc::WiredCfc`]) runs one CfC layer per wiring layer with these matrices as
//! sparsity masks (their absolute values; the polarity is for LTC-type cells).
//!
//! Builders follow ncps: [`FullyConnectedConfig`] (one layer, every synapse present),
//! [`NcpConfig`] (sensory → inter → command → motor with fan-outs, fan-ins and recurrent command
//! synapses) and [`AutoNcpConfig`] (an NCP from a unit count, an output count and a sparsity).
//! Given the same seed they build the same matrices as ncps 1.0.1, through our own
//! implementations of numpy's generators ([`numpy`]). A wiring built in Python loads as JSON: the
//! output of ncps' base `Wiring.get_config(wiring)` (its matrices), plus a `layers` list for a
//! layered wiring (without it, one layer of every neuron).

mod fully_connected;
mod ncp;
pub mod numpy;

pub use fully_connected::FullyConnectedConfig;
pub use ncp::{AutoNcpConfig, NcpConfig};

use crate::error::{LayerError, Result};
use serde::{Deserialize, Serialize};

/// Neurons, their synapses with polarity, and their layers (ncps' `Wiring`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wiring {
    /// Number of neurons (the state size of a wired cell).
    pub units: usize,
    /// Number of sensory inputs.
    pub input_dim: usize,
    /// Number of output (motor) neurons: the last layer's size for a layered wiring.
    pub output_dim: usize,
    /// `[units][units]`: synapse src → dest, −1, 0 or +1.
    pub adjacency_matrix: Vec<Vec<i8>>,
    /// `[input_dim][units]`: sensory input src → neuron dest, −1, 0 or +1.
    pub sensory_adjacency_matrix: Vec<Vec<i8>>,
    /// The neuron ids of each layer, in the order a wired cell runs them (every neuron exactly
    /// once); absent in ncps' files, meaning one layer of all neurons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Vec<usize>>,
}

impl Wiring {
    /// An empty wiring (no synapses) of `units` neurons and `input_dim` inputs, one layer.
    pub fn empty(units: usize, input_dim: usize, output_dim: usize) -> Self {
        Wiring {
            units,
            input_dim,
            output_dim,
            adjacency_matrix: vec![vec![0; units]; units],
            sensory_adjacency_matrix: vec![vec![0; units]; input_dim],
            layers: vec![(0..units).collect()],
        }
    }

    /// Reads a wiring from JSON (ncps' base `Wiring.get_config`, optionally with `layers`),
    /// checked.
    pub fn from_json(text: &str) -> Result<Self> {
        let mut w: Wiring = serde_json::from_str(text).map_err(|e| {
            LayerError::config(
                "wiring",
                format!("{e}; expected ncps' Wiring.get_config() JSON"),
            )
        })?;
        if w.layers.is_empty() {
            w.layers = vec![(0..w.units).collect()];
        }
        w.validate()?;
        Ok(w)
    }

    /// The layers (one layer of every neuron when none are listed).
    pub fn layer_list(&self) -> Vec<Vec<usize>> {
        if self.layers.is_empty() {
            vec![(0..self.units).collect()]
        } else {
            self.layers.clone()
        }
    }

    /// Checks the matrices' shapes and values and that the layers partition the neurons.
    pub fn validate(&self) -> Result<()> {
        if self.units == 0 {
            return Err(LayerError::config("wiring.units", "0; expected at least 1"));
        }
        if self.input_dim == 0 {
            return Err(LayerError::config(
                "wiring.input_dim",
                "0; expected at least 1",
            ));
        }
        check_matrix(
            "adjacency_matrix",
            &self.adjacency_matrix,
            self.units,
            self.units,
        )?;
        check_matrix(
            "sensory_adjacency_matrix",
            &self.sensory_adjacency_matrix,
            self.input_dim,
            self.units,
        )?;
        let layers = self.layer_list();
        let mut seen = vec![false; self.units];
        for (l, ids) in layers.iter().enumerate() {
            if ids.is_empty() {
                return Err(LayerError::config(
                    "wiring.layers",
                    format!("layer {l} is empty; expected at least one neuron"),
                ));
            }
            for &id in ids {
                if id >= self.units || seen[id] {
                    return Err(LayerError::config(
                        "wiring.layers",
                        format!(
                            "neuron {id} in layer {l} is {}; expected each of 0..{} exactly once",
                            if id >= self.units {
                                "out of range"
                            } else {
                                "listed twice"
                            },
                            self.units
                        ),
                    ));
                }
                seen[id] = true;
            }
        }
        if let Some(id) = seen.iter().position(|s| !s) {
            return Err(LayerError::config(
                "wiring.layers",
                format!(
                    "neuron {id} is in no layer; expected each of 0..{} exactly once",
                    self.units
                ),
            ));
        }
        if self.output_dim == 0 || self.output_dim > self.units {
            return Err(LayerError::config(
                "wiring.output_dim",
                format!("{}; expected 1..={}", self.output_dim, self.units),
            ));
        }
        Ok(())
    }

    /// Number of synapses between neurons.
    pub fn synapse_count(&self) -> usize {
        count(&self.adjacency_matrix)
    }

    /// Number of synapses from the sensory inputs.
    pub fn sensory_synapse_count(&self) -> usize {
        count(&self.sensory_adjacency_matrix)
    }

    /// The input mask of layer `l` as ncps' `WiredCfCCell` builds it: |matrix| restricted to the
    /// layer's inputs (the sensory inputs for layer 0, the previous layer's neurons after) and its
    /// neurons, `[inputs][neurons]`, as 0/1.
    pub fn layer_input_mask(&self, l: usize) -> Vec<Vec<f64>> {
        let layers = self.layer_list();
        let dest = &layers[l];
        let rows: Vec<&Vec<i8>> = if l == 0 {
            self.sensory_adjacency_matrix.iter().collect()
        } else {
            layers[l - 1]
                .iter()
                .map(|&s| &self.adjacency_matrix[s])
                .collect()
        };
        rows.iter()
            .map(|row| {
                dest.iter()
                    .map(|&d| f64::from(row[d].unsigned_abs()))
                    .collect()
            })
            .collect()
    }

    /// The fraction of absent synapses over every layer's input mask (what a wired cell's masked
    /// matrices hold as zeros), 0 for dense.
    pub fn mask_sparsity(&self) -> f64 {
        let (mut zeros, mut all) = (0usize, 0usize);
        for l in 0..self.layer_list().len() {
            for row in self.layer_input_mask(l) {
                all += row.len();
                zeros += row.iter().filter(|v| **v == 0.0).count();
            }
        }
        zeros as f64 / all.max(1) as f64
    }
}

fn count(m: &[Vec<i8>]) -> usize {
    m.iter().flatten().filter(|v| **v != 0).count()
}

fn check_matrix(name: &str, m: &[Vec<i8>], rows: usize, cols: usize) -> Result<()> {
    let bad_shape = m.len() != rows || m.iter().any(|r| r.len() != cols);
    if bad_shape {
        return Err(LayerError::config(
            &format!("wiring.{name}"),
            format!(
                "{} rows of lengths {:?}; expected {rows} rows of {cols}",
                m.len(),
                m.iter().map(Vec::len).collect::<Vec<_>>()
            ),
        ));
    }
    if let Some((r, c, v)) = m
        .iter()
        .enumerate()
        .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, v)| (r, c, *v)))
        .find(|(_, _, v)| !(-1..=1).contains(v))
    {
        return Err(LayerError::config(
            &format!("wiring.{name}"),
            format!("entry [{r}][{c}] is {v}; expected -1, 0 or 1"),
        ));
    }
    Ok(())
}
