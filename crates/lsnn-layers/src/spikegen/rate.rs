//! Rate coding, snnTorch `spikegen.rate`: each element of static data x is repeated over T
//! steps as the probability p = gain·x + offset of a spike, drawn independently per step.

use super::{back, host, with_steps};
use crate::error::{LayerError, Result};
use crate::rng::SeededRng;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The settings of [`rate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateConfig {
    /// Steps T (at least 1).
    pub num_steps: usize,
    /// p = gain·x + offset (snnTorch's default gain 1).
    pub gain: f64,
    /// p = gain·x + offset (default 0).
    pub offset: f64,
    /// Steps before this one are silent (default 0; at most T − 1).
    pub first_spike_time: usize,
    /// Clamp p into [0, 1] as snnTorch always does; off by default, when a p outside [0, 1] is
    /// an error naming the element.
    pub saturate: bool,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            num_steps: 1,
            gain: 1.0,
            offset: 0.0,
            first_spike_time: 0,
            saturate: false,
        }
    }
}

impl RateConfig {
    /// T steps, snnTorch's defaults otherwise.
    pub fn new(num_steps: usize) -> Self {
        RateConfig {
            num_steps,
            ..Self::default()
        }
    }

    /// With gain and offset.
    pub fn with_gain(mut self, gain: f64, offset: f64) -> Self {
        self.gain = gain;
        self.offset = offset;
        self
    }

    /// With the first step that may spike.
    pub fn with_first_spike_time(mut self, t: usize) -> Self {
        self.first_spike_time = t;
        self
    }

    /// Clamping p into [0, 1] (snnTorch's behaviour) instead of refusing.
    pub fn with_saturate(mut self, saturate: bool) -> Self {
        self.saturate = saturate;
        self
    }

    /// Checks the settings: T ≥ 1, `first_spike_time` < T, finite gain and offset.
    pub fn validate(&self) -> Result<()> {
        if self.num_steps == 0 {
            return Err(LayerError::config("num_steps", "0; expected at least 1"));
        }
        if self.first_spike_time >= self.num_steps {
            return Err(LayerError::config(
                "first_spike_time",
                format!(
                    "{}; expected at most num_steps − 1 = {}",
                    self.first_spike_time,
                    self.num_steps - 1
                ),
            ));
        }
        if !(self.gain.is_finite() && self.offset.is_finite()) {
            return Err(LayerError::config(
                "gain",
                format!(
                    "gain {} and offset {}; expected finite numbers",
                    self.gain, self.offset
                ),
            ));
        }
        Ok(())
    }
}

/// The probabilities p of `data`'s elements, checked (or clamped when asked).
fn probabilities(x: &[f64], cfg: &RateConfig) -> Result<Vec<f64>> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let p = cfg.gain * v + cfg.offset;
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else if cfg.saturate {
                Ok(p.clamp(0.0, 1.0))
            } else {
                Err(LayerError::config(
                    "rate",
                    format!(
                        "element {i}: gain·x + offset = {p}; expected a probability in [0, 1] \
                         (normalise the data, or saturate with RateConfig::with_saturate)"
                    ),
                ))
            }
        })
        .collect()
}

/// Spikes [T, data dims…]: 1 where a uniform draw u < p, from `rng` (one draw per element and
/// step, silent steps included, so that the stream of draws does not depend on
/// `first_spike_time`).
pub fn rate(data: &Tensor, cfg: &RateConfig, rng: &mut SeededRng) -> Result<Tensor> {
    cfg.validate()?;
    let dims = with_steps(cfg.num_steps, data.dims())?;
    let p = probabilities(&host(data, "rate")?, cfg)?;
    let u: Vec<f64> = (0..p.len() * cfg.num_steps)
        .map(|_| rng.next_f64())
        .collect();
    back(spikes_below(&p, &u, cfg), &dims, data)
}

/// [`rate`] with the uniform draws given ([T, data dims…], each in [0, 1)): spikes where u < p.
pub fn rate_from_uniform(data: &Tensor, cfg: &RateConfig, uniform: &Tensor) -> Result<Tensor> {
    cfg.validate()?;
    let dims = with_steps(cfg.num_steps, data.dims())?;
    if uniform.dims() != dims.as_slice() {
        return Err(LayerError::config(
            "uniform",
            format!("shape {:?}; expected {dims:?}", uniform.dims()),
        ));
    }
    let p = probabilities(&host(data, "rate")?, cfg)?;
    let u = host(uniform, "uniform")?;
    if let Some(k) = u.iter().position(|v| !(0.0..1.0).contains(v)) {
        return Err(LayerError::config(
            "uniform",
            format!("element {k} is {}; expected draws in [0, 1)", u[k]),
        ));
    }
    back(spikes_below(&p, &u, cfg), &dims, data)
}

/// 1 at step t ≥ `first_spike_time` where u < p, time-major (`u` holds T rows of `p.len()`).
fn spikes_below(p: &[f64], u: &[f64], cfg: &RateConfig) -> Vec<f64> {
    let n = p.len().max(1);
    u.iter()
        .enumerate()
        .map(|(k, &uk)| {
            if k / n >= cfg.first_spike_time && uk < p[k % n] {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}
