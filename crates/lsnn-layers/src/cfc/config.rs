//! [`CfcConfig`] and [`CfcMode`]: the CfC cell's hyperparameters (design §2.3), plain serialisable
//! data with ncps' defaults.

use crate::error::{LayerError, Result};
use serde::{Deserialize, Serialize};

/// How the two branches are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CfcMode {
    /// h' = f1·(1 − τ) + τ·f2.
    #[default]
    Default,
    /// h' = f1 + τ·f2.
    NoGate,
    /// ncps' direct solution: h' = −A·exp(−ts·(|w_tau| + |f|))·f + A with f = W_1·z + b_1 (no
    /// tanh) and its own parameters w_tau and A ([1, H]).
    Pure,
}

/// Hyperparameters of a [`super::Cfc`].
///
/// ```
/// use lsnn_layers::cfc::{CfcConfig, CfcMode};
/// let cfg = CfcConfig::new(12, 32).with_backbone(64, 1).with_mode(CfcMode::NoGate);
/// assert_eq!(cfg.backbone_units, 64);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CfcConfig {
    /// Input width.
    pub input_size: usize,
    /// Hidden units H.
    pub hidden_size: usize,
    /// Backbone width U (default 128, as ncps).
    #[serde(default = "default_backbone_units")]
    pub backbone_units: usize,
    /// Backbone depth (default 1, as ncps); 0: the heads read [x; h] directly.
    #[serde(default = "default_backbone_layers")]
    pub backbone_layers: usize,
    /// Mixing mode (default `default`).
    #[serde(default)]
    pub mode: CfcMode,
    /// Time span ts of every step (default 1.0, as ncps without `timespans`).
    #[serde(default = "default_ts")]
    pub ts: f64,
}

fn default_backbone_units() -> usize {
    128
}
fn default_backbone_layers() -> usize {
    1
}
fn default_ts() -> f64 {
    1.0
}

impl CfcConfig {
    /// A cell from `input_size` inputs to `hidden_size` units, the rest at ncps' defaults.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        CfcConfig {
            input_size,
            hidden_size,
            backbone_units: default_backbone_units(),
            backbone_layers: default_backbone_layers(),
            mode: CfcMode::Default,
            ts: default_ts(),
        }
    }

    /// With a backbone of `layers` layers of `units` units.
    pub fn with_backbone(mut self, units: usize, layers: usize) -> Self {
        self.backbone_units = units;
        self.backbone_layers = layers;
        self
    }

    /// With a mixing mode.
    pub fn with_mode(mut self, mode: CfcMode) -> Self {
        self.mode = mode;
        self
    }

    /// With a time span for every step.
    pub fn with_ts(mut self, ts: f64) -> Self {
        self.ts = ts;
        self
    }

    /// The width the heads read: the backbone's, or in + H without a backbone.
    pub fn head_input(&self) -> usize {
        if self.backbone_layers == 0 {
            self.input_size + self.hidden_size
        } else {
            self.backbone_units
        }
    }

    /// Checks the sizes (at least 1; the backbone's width when it has layers) and the time span
    /// (finite).
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("input_size", self.input_size),
            ("hidden_size (liquid_units)", self.hidden_size),
        ] {
            if v == 0 {
                return Err(LayerError::config(field, "0; expected at least 1"));
            }
        }
        if self.backbone_layers > 0 && self.backbone_units == 0 {
            return Err(LayerError::config(
                "backbone_units",
                format!(
                    "0 with {} backbone layers; expected at least 1 (or backbone_layers 0)",
                    self.backbone_layers
                ),
            ));
        }
        if !self.ts.is_finite() {
            return Err(LayerError::config(
                "ts",
                format!("{}; expected a finite time span", self.ts),
            ));
        }
        Ok(())
    }
}
