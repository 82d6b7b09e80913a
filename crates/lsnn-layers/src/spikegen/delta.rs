//! Delta modulation, snnTorch `spikegen.delta`: over time-major data [T, …], a spike where the
//! value rose by at least the threshold since the previous step (and, with `off_spike`, −1
//! where it fell by at least it).

use super::{back, host};
use crate::error::{LayerError, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The settings of [`delta`] (snnTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaConfig {
    /// The change that makes a spike (default 0.1; finite, ≥ 0).
    pub threshold: f64,
    /// Compare the first step with itself (no spike there) instead of with zero (default off).
    pub padding: bool,
    /// Also emit −1 for a fall of at least the threshold (default off).
    pub off_spike: bool,
}

impl Default for DeltaConfig {
    fn default() -> Self {
        DeltaConfig {
            threshold: 0.1,
            padding: false,
            off_spike: false,
        }
    }
}

impl DeltaConfig {
    /// A threshold, snnTorch's defaults otherwise.
    pub fn new(threshold: f64) -> Self {
        DeltaConfig {
            threshold,
            ..Self::default()
        }
    }

    /// With the first step compared with itself.
    pub fn with_padding(mut self, padding: bool) -> Self {
        self.padding = padding;
        self
    }

    /// With −1 spikes for falls.
    pub fn with_off_spike(mut self, off_spike: bool) -> Self {
        self.off_spike = off_spike;
        self
    }

    /// Checks the settings: a finite threshold ≥ 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(LayerError::config(
                "threshold",
                format!("{}; expected a finite number ≥ 0", self.threshold),
            ));
        }
        Ok(())
    }
}

/// Spikes of time-major `data` [T, …], the same shape.
pub fn delta(data: &Tensor, cfg: &DeltaConfig) -> Result<Tensor> {
    cfg.validate()?;
    let Some(&steps) = data.dims().first() else {
        return Err(LayerError::config(
            "delta",
            "a scalar; expected time-major data [T, …]",
        ));
    };
    let x = host(data, "delta")?;
    let n = x.len().checked_div(steps).unwrap_or(0);
    let out = (0..x.len())
        .map(|k| {
            let prev = if k >= n {
                x[k - n]
            } else if cfg.padding {
                x[k]
            } else {
                0.0
            };
            let d = x[k] - prev;
            if d >= cfg.threshold {
                1.0
            } else if cfg.off_spike && d <= -cfg.threshold {
                -1.0
            } else {
                0.0
            }
        })
        .collect();
    back(out, data.dims(), data)
}
