//! [`SpikeEncoding`]: one of the three encoders and its settings as plain data, for a config
//! file (`{"kind": "rate", "num_steps": 8}`) or a data set that encodes its inputs.

use super::{delta, latency, rate, DeltaConfig, LatencyConfig, RateConfig};
use crate::error::Result;
use crate::rng::SeededRng;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// An encoder and its settings. In JSON the encoder is the `kind` field and its settings sit
/// beside it, each with snnTorch's default where absent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpikeEncoding {
    /// [`rate`]: Bernoulli draws of p = gain·x + offset per step.
    Rate(RateConfig),
    /// [`latency`]: one spike per element, earlier for larger values.
    Latency(LatencyConfig),
    /// [`delta`]: a spike where the signal changed by at least the threshold.
    Delta(DeltaConfig),
}

impl SpikeEncoding {
    /// The `kind` name.
    pub fn name(&self) -> &'static str {
        match self {
            SpikeEncoding::Rate(_) => "rate",
            SpikeEncoding::Latency(_) => "latency",
            SpikeEncoding::Delta(_) => "delta",
        }
    }

    /// Checks the encoder's settings.
    pub fn validate(&self) -> Result<()> {
        match self {
            SpikeEncoding::Rate(c) => c.validate(),
            SpikeEncoding::Latency(c) => c.validate(),
            SpikeEncoding::Delta(c) => c.validate(),
        }
    }

    /// True for the encoders that turn static data into T steps (rate and latency); delta
    /// encodes data that already has a time axis.
    pub fn adds_steps(&self) -> bool {
        !matches!(self, SpikeEncoding::Delta(_))
    }

    /// The steps T the encoder adds (1 for delta, which keeps the data's own).
    pub fn num_steps(&self) -> usize {
        match self {
            SpikeEncoding::Rate(c) => c.num_steps,
            SpikeEncoding::Latency(c) => c.num_steps,
            SpikeEncoding::Delta(_) => 1,
        }
    }

    /// The encoder applied to `data`: rate and latency take static data and return
    /// [T, data dims…]; delta takes time-major data [T, …] and returns the same shape. Only rate
    /// draws from `rng`.
    pub fn encode(&self, data: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        match self {
            SpikeEncoding::Rate(c) => rate(data, c, rng),
            SpikeEncoding::Latency(c) => latency(data, c),
            SpikeEncoding::Delta(c) => delta(data, c),
        }
    }
}
