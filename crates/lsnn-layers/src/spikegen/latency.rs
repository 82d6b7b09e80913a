//! Latency coding, snnTorch `spikegen.latency`: one spike per element of static data x in
//! [0, 1], at a time that falls as x grows — the RC charging time t = τ·ln(x / (x − θ)) of a
//! current x reaching threshold θ (logarithmic, the default), or t = τ·(1 − x) (linear).
//!
//! As snnTorch (non-interpolated): values below θ saturate at θ + ε (log) or at the time of θ
//! (linear); `normalize` stretches the times to fill the T steps; the time is rounded half to
//! even (torch's rule) to pick the step; `clip` silences elements below θ. Unlike snnTorch, a
//! time past the last step is an error rather than a request to `bypass`.

use super::{back, host, with_steps};
use crate::error::{LayerError, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// The settings of [`latency`] (snnTorch's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Steps T (at least 1).
    pub num_steps: usize,
    /// θ in (0, 1): the smallest value that still spikes in its own time (default 0.01).
    pub threshold: f64,
    /// τ > 0, the time constant (default 1; replaced by the stretch when `normalize`).
    pub tau: f64,
    /// The earliest spike time (default 0; at most T − 1).
    pub first_spike_time: usize,
    /// Stretch the times to span the T steps (default off).
    pub normalize: bool,
    /// t = τ·(1 − x) instead of the logarithmic code (default off).
    pub linear: bool,
    /// Silence elements below θ (default off: they spike at the latest time).
    pub clip: bool,
    /// ε of the log code's saturation θ + ε (default 1e-7).
    pub epsilon: f64,
    /// The value of a spike (default 1).
    pub on_target: f64,
    /// The floor of every value (default 0): the output is max(spike · on_target, off_target).
    pub off_target: f64,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            num_steps: 1,
            threshold: 0.01,
            tau: 1.0,
            first_spike_time: 0,
            normalize: false,
            linear: false,
            clip: false,
            epsilon: 1e-7,
            on_target: 1.0,
            off_target: 0.0,
        }
    }
}

impl LatencyConfig {
    /// T steps, snnTorch's defaults otherwise.
    pub fn new(num_steps: usize) -> Self {
        LatencyConfig {
            num_steps,
            ..Self::default()
        }
    }

    /// With θ and τ.
    pub fn with_threshold_tau(mut self, threshold: f64, tau: f64) -> Self {
        self.threshold = threshold;
        self.tau = tau;
        self
    }

    /// With the times stretched over the T steps.
    pub fn with_normalize(mut self, normalize: bool) -> Self {
        self.normalize = normalize;
        self
    }

    /// With the linear code.
    pub fn with_linear(mut self, linear: bool) -> Self {
        self.linear = linear;
        self
    }

    /// With elements below θ silenced.
    pub fn with_clip(mut self, clip: bool) -> Self {
        self.clip = clip;
        self
    }

    /// With the earliest spike time.
    pub fn with_first_spike_time(mut self, t: usize) -> Self {
        self.first_spike_time = t;
        self
    }

    /// Checks the settings: T ≥ 1, θ in (0, 1), τ and ε positive, `first_spike_time` < T,
    /// finite targets.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(LayerError::config(field, msg));
        if self.num_steps == 0 {
            return bad("num_steps", "0; expected at least 1".into());
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return bad(
                "threshold",
                format!("{}; expected a number in (0, 1)", self.threshold),
            );
        }
        if !(self.tau.is_finite() && self.tau > 0.0) {
            return bad("tau", format!("{}; expected a positive number", self.tau));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad(
                "epsilon",
                format!("{}; expected a small positive number", self.epsilon),
            );
        }
        if self.first_spike_time >= self.num_steps {
            return bad(
                "first_spike_time",
                format!(
                    "{}; expected at most num_steps − 1 = {}",
                    self.first_spike_time,
                    self.num_steps - 1
                ),
            );
        }
        if !(self.on_target.is_finite() && self.off_target.is_finite()) {
            return bad(
                "on_target",
                format!(
                    "on {} and off {}; expected finite numbers",
                    self.on_target, self.off_target
                ),
            );
        }
        Ok(())
    }
}

/// Each element's spike time (before rounding).
fn spike_times(x: &[f64], cfg: &LatencyConfig) -> Vec<f64> {
    let (th, fst, last) = (
        cfg.threshold,
        cfg.first_spike_time as f64,
        (cfg.num_steps - 1) as f64,
    );
    if cfg.linear {
        let tau = if cfg.normalize { last - fst } else { cfg.tau };
        // min(τ(1 − x), τ(1 − θ)): below θ the time saturates at θ's.
        x.iter()
            .map(|&v| (tau * (1.0 - v)).min(tau * (1.0 - th)) + fst)
            .collect()
    } else {
        let mut t: Vec<f64> = x
            .iter()
            .map(|&v| {
                let d = v.max(th + cfg.epsilon);
                cfg.tau * (d / (d - th)).ln() + fst
            })
            .collect();
        if cfg.normalize {
            let span = t.iter().map(|&ti| ti - fst).fold(f64::MIN, f64::max);
            if span > 0.0 {
                for ti in &mut t {
                    *ti = (*ti - fst) * (last - fst) / span + fst;
                }
            }
        }
        t
    }
}

/// Spikes [T, data dims…] of data in [0, 1]: one per element, at its rounded spike time.
pub fn latency(data: &Tensor, cfg: &LatencyConfig) -> Result<Tensor> {
    cfg.validate()?;
    let dims = with_steps(cfg.num_steps, data.dims())?;
    let x = host(data, "latency")?;
    if let Some(i) = x.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(LayerError::config(
            "latency",
            format!("element {i} is {}; expected data in [0, 1]", x[i]),
        ));
    }
    let times = spike_times(&x, cfg);
    let last = cfg.num_steps - 1;
    let mut steps = Vec::with_capacity(times.len());
    for (i, t) in times.iter().enumerate() {
        let r = t.round_ties_even();
        if r > last as f64 {
            return Err(LayerError::config(
                "latency",
                format!(
                    "element {i} (value {}) spikes at step {r}, past the last step {last}; \
                     lower tau, raise num_steps or normalize",
                    x[i]
                ),
            ));
        }
        steps.push(r as usize);
    }
    let n = x.len();
    let low = cfg.off_target.max(0.0);
    let high = cfg.on_target.max(cfg.off_target);
    let mut out = vec![low; n * cfg.num_steps];
    for (i, &s) in steps.iter().enumerate() {
        if !(cfg.clip && x[i] < cfg.threshold) {
            out[s * n + i] = high;
        }
    }
    back(out, &dims, data)
}
