//! The liquid backbone's part of [`ModelConfig`]: which cell (`liquid_backbone`: the dense CfC,
//! the wired CfC over an AutoNCP, or the LTC dense or wired), its own fields' rules, and the
//! settings the blocks are built from (design §2.3, §2.14, §5).

use super::config::ModelConfig;
use crate::cfc::CfcMode;
use crate::error::{LayerError, Result};
use crate::ltc::LtcSettings;
use crate::wiring::AutoNcpConfig;
use serde::{Deserialize, Serialize};

/// The LTC's wiring (`liquid_backbone: "ltc"`), as written in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LtcWiring {
    /// Every neuron feeds every neuron (ncps' `FullyConnected`, all neurons outputs): the dense
    /// LTC.
    #[default]
    FullyConnected,
    /// The AutoNCP of `ncp_outputs`, `ncp_sparsity`, `ncp_seed`: the wired LTC.
    Ncp,
}

impl ModelConfig {
    /// The backbone's name and its own fields: a known backbone, and the LTC's fields only
    /// with `"ltc"`.
    pub(super) fn check_liquid(&self) -> Result<()> {
        match self.liquid_backbone.as_str() {
            "cfc" | "ncp" => {
                for (field, set) in [
                    ("ltc_wiring", self.ltc_wiring.is_some()),
                    ("ltc_ode_unfolds", self.ltc_ode_unfolds.is_some()),
                    ("ltc_constraint", self.ltc_constraint.is_some()),
                ] {
                    if set {
                        return Err(LayerError::config(
                            field,
                            format!(
                                "set with liquid_backbone \"{}\"; expected it only with \"ltc\"",
                                self.liquid_backbone
                            ),
                        ));
                    }
                }
                Ok(())
            }
            "ltc" => {
                if self.ltc_ode_unfolds == Some(0) {
                    return Err(LayerError::config(
                        "ltc_ode_unfolds",
                        "0; expected at least 1 solver step per position",
                    ));
                }
                if self.cfc_mode != CfcMode::Default {
                    return Err(LayerError::config(
                        "cfc_mode",
                        format!(
                            "{:?} with liquid_backbone \"ltc\"; the CfC's mode does not apply to the LTC (leave it at its default)",
                            self.cfc_mode
                        ),
                    ));
                }
                if !(self.cfc_time_span.is_finite() && self.cfc_time_span > 0.0) {
                    return Err(LayerError::config(
                        "cfc_time_span",
                        format!(
                            "{} with liquid_backbone \"ltc\"; expected a finite elapsed time > 0",
                            self.cfc_time_span
                        ),
                    ));
                }
                Ok(())
            }
            other => Err(LayerError::config(
                "liquid_backbone",
                format!(
                    "\"{}\"; expected \"cfc\", \"ncp\" or \"ltc\"",
                    crate::nn::clip(other)
                ),
            )),
        }
    }

    /// The LTC's settings for `"ltc"` (None for another backbone), defaults filled in.
    pub fn ltc(&self) -> Option<LtcSettings> {
        (self.liquid_backbone == "ltc").then(|| LtcSettings {
            ode_unfolds: self.ltc_ode_unfolds.unwrap_or(6),
            constraint: self
                .ltc_constraint
                .unwrap_or(LtcSettings::default().constraint),
            ..LtcSettings::default()
        })
    }

    /// The AutoNCP wiring of `"ncp"`, or of `"ltc"` with `ltc_wiring: "ncp"` (None otherwise),
    /// with the defaults filled in.
    pub fn ncp(&self) -> Option<AutoNcpConfig> {
        let wired = self.liquid_backbone == "ncp"
            || (self.liquid_backbone == "ltc" && self.ltc_wiring == Some(LtcWiring::Ncp));
        wired.then(|| {
            let outputs = self
                .ncp_outputs
                .unwrap_or(((0.3 * self.liquid_units as f64) as usize).max(1));
            let mut c = AutoNcpConfig::new(self.liquid_units, outputs);
            if let Some(s) = self.ncp_sparsity {
                c = c.with_sparsity(s);
            }
            if let Some(seed) = self.ncp_seed {
                c = c.with_seed(seed);
            }
            c
        })
    }

    /// The wiring's fields: an AutoNCP that ncps would build (sizes, sparsity, fan-ins), and no
    /// `ncp_*` field where there is no AutoNCP.
    pub(super) fn check_wiring(&self) -> Result<()> {
        if let Some(ncp) = self.ncp() {
            // Building the wiring runs every check ncps makes (sizes, sparsity, fan-ins).
            ncp.build(self.spiking_units)?;
        } else if self.ncp_outputs.is_some()
            || self.ncp_sparsity.is_some()
            || self.ncp_seed.is_some()
        {
            return Err(LayerError::config(
                "ncp_outputs / ncp_sparsity / ncp_seed",
                format!(
                    "set with liquid_backbone \"{}\"{}; expected them only with \"ncp\" (or \"ltc\" with ltc_wiring \"ncp\")",
                    self.liquid_backbone,
                    if self.liquid_backbone == "ltc" { " and a fully connected wiring" } else { "" }
                ),
            ));
        }
        Ok(())
    }
}
