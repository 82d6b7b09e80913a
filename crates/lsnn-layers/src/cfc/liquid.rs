//! [`LiquidCell`]: a dense [`Cfc`], a [`WiredCfc`] or an [`Ltc`] behind one interface — what the
//! hybrid block and the [`super::CfcRnn`] wrapper run.

use super::op::Span;
use super::prepare::PreparedCfc;
use super::{Cfc, CfcConfig, CfcState, WiredCfc, WiredCfcConfig};
use crate::error::{LayerError, Result};
use crate::ltc::{Ltc, LtcConfig, LtcState};
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which cell: `{"dense": CfcConfig}`, `{"wired": WiredCfcConfig}` or `{"ltc": LtcConfig}` in
/// JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiquidCellConfig {
    /// ncps' `CfCCell`.
    Dense(CfcConfig),
    /// ncps' `WiredCfCCell`.
    Wired(WiredCfcConfig),
    /// ncps' `LTCCell` (dense or wired by its wiring).
    Ltc(LtcConfig),
}

impl LiquidCellConfig {
    /// Input width.
    pub fn input_size(&self) -> usize {
        match self {
            LiquidCellConfig::Dense(c) => c.input_size,
            LiquidCellConfig::Wired(c) => c.input_size(),
            LiquidCellConfig::Ltc(c) => c.input_size(),
        }
    }

    /// State width.
    pub fn state_size(&self) -> usize {
        match self {
            LiquidCellConfig::Dense(c) => c.hidden_size,
            LiquidCellConfig::Wired(c) => c.state_size(),
            LiquidCellConfig::Ltc(c) => c.state_size(),
        }
    }

    /// Output width (the state's for a dense cell, the last layer's for a wired one, the motor
    /// neurons' for an LTC).
    pub fn output_size(&self) -> usize {
        match self {
            LiquidCellConfig::Dense(c) => c.hidden_size,
            LiquidCellConfig::Wired(c) => c.output_size(),
            LiquidCellConfig::Ltc(c) => c.output_size(),
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        match self {
            LiquidCellConfig::Dense(c) => c.validate(),
            LiquidCellConfig::Wired(c) => c.validate(),
            LiquidCellConfig::Ltc(c) => c.validate(),
        }
    }
}

/// A dense or a wired CfC cell, or an LTC cell.
#[derive(Debug, Clone)]
pub enum LiquidCell {
    /// ncps' `CfCCell`.
    Dense(Cfc),
    /// ncps' `WiredCfCCell`.
    Wired(WiredCfc),
    /// ncps' `LTCCell`.
    Ltc(Ltc),
}

/// The error for what an LTC cell does not offer.
fn ltc_unsupported(feature: &str) -> LayerError {
    LayerError::Unsupported {
        feature: format!("{feature} with the LTC cell"),
        detail: "the LTC runs at a constant elapsed time (ncps' per-step timespans do not \
                 broadcast over a batch); use a CfC cell for per-step time spans"
            .into(),
    }
}

impl LiquidCell {
    /// Creates the cell's weights through `vb` (a wired cell's under `layer_{l}`).
    pub fn new(cfg: &LiquidCellConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            LiquidCellConfig::Dense(c) => LiquidCell::Dense(Cfc::new(c, vb)?),
            LiquidCellConfig::Wired(c) => LiquidCell::Wired(WiredCfc::new(c, vb)?),
            LiquidCellConfig::Ltc(c) => LiquidCell::Ltc(Ltc::new(c, vb)?),
        })
    }

    /// The same cell with detached parameters.
    pub fn detached(&self) -> Self {
        match self {
            LiquidCell::Dense(c) => LiquidCell::Dense(c.detached()),
            LiquidCell::Wired(c) => LiquidCell::Wired(c.detached()),
            LiquidCell::Ltc(c) => LiquidCell::Ltc(c.detached()),
        }
    }

    /// State width.
    pub fn state_size(&self) -> usize {
        match self {
            LiquidCell::Dense(c) => c.config().hidden_size,
            LiquidCell::Wired(c) => c.config().state_size(),
            LiquidCell::Ltc(c) => c.config().state_size(),
        }
    }

    /// Output width.
    pub fn output_size(&self) -> usize {
        match self {
            LiquidCell::Dense(c) => c.config().hidden_size,
            LiquidCell::Wired(c) => c.config().output_size(),
            LiquidCell::Ltc(c) => c.config().output_size(),
        }
    }

    /// ncps' `apply_weight_constraints` for an LTC under the explicit constraint (nothing for
    /// the other cells): call it after every optimizer step.
    pub fn apply_weight_constraints(&self) -> Result<()> {
        match self {
            LiquidCell::Ltc(c) => c.apply_weight_constraints(),
            _ => Ok(()),
        }
    }

    /// The outputs of states [.., state] (all of them for a dense cell, the last layer's for a
    /// wired one, the motor neurons through the output mapping for an LTC).
    pub fn output_of(&self, states: &Tensor) -> Result<Tensor> {
        if let LiquidCell::Ltc(c) = self {
            return c.output_of(states);
        }
        let (s, o) = (self.state_size(), self.output_size());
        if s == o {
            return Ok(states.clone());
        }
        Ok(states.narrow(states.rank() - 1, s - o, o)?)
    }

    /// Every state h_1..h_L [B, L, state] of x [B, L, in] from h_0 [B, state] at the constant
    /// span (the fused op on the CPU).
    pub fn sequence(&self, x: &Tensor, h0: &Tensor) -> Result<Tensor> {
        match self {
            LiquidCell::Dense(c) => c.sequence_from_projection(&c.input_projection(x)?, h0),
            LiquidCell::Wired(w) => w.states(x, None, Some(&CfcState { h: h0.clone() })),
            LiquidCell::Ltc(c) => c.states(x, Some(&LtcState { v: h0.clone() })),
        }
    }

    /// Every state with per-step spans [B, L] or [B, L, 1].
    pub fn sequence_timespans(
        &self,
        x: &Tensor,
        timespans: &Tensor,
        h0: &Tensor,
    ) -> Result<Tensor> {
        let state = CfcState { h: h0.clone() };
        match self {
            LiquidCell::Dense(c) => Ok(c.forward_timespans(x, timespans, Some(&state))?.0),
            LiquidCell::Wired(w) => w.states(x, Some(timespans), Some(&state)),
            LiquidCell::Ltc(_) => Err(ltc_unsupported("per-step time spans")),
        }
    }

    /// The packed per-step weights at the constant span (for [`LiquidCell::step_prepared`]); a
    /// CfC's only (an LTC steps with [`LiquidCell::step_constant`]).
    pub fn prepare(&self) -> Result<PreparedCfc> {
        match self {
            LiquidCell::Ltc(_) => Err(LayerError::Unsupported {
                feature: "prepare() on an LTC cell".into(),
                detail: "prepared weights are the CfC's; use step_constant".into(),
            }),
            LiquidCell::Dense(c) => c.prepare(),
            LiquidCell::Wired(w) => {
                let refs: Vec<&Cfc> = w.layers().iter().collect();
                PreparedCfc::new(&refs, Span::Constant(w.config().ts))
            }
        }
    }

    /// One step x [B, in], h [B, state] → h' with weights from [`LiquidCell::prepare`] (the
    /// streaming form of [`LiquidCell::sequence`]).
    pub fn step_prepared(&self, x: &Tensor, h: &Tensor, w: &PreparedCfc) -> Result<Tensor> {
        match self {
            LiquidCell::Dense(c) => c.step_projected(&c.input_projection(x)?, h, w),
            LiquidCell::Wired(_) => {
                super::reference::step_prepared(w, &w.layers[0].project(x)?, None, h)
            }
            LiquidCell::Ltc(c) => Ok(c.step(x, h)?.1),
        }
    }

    /// One step x [B, in], h [B, state] → h' at the constant span: a CfC's through its prepared
    /// weights, an LTC's solver step.
    pub fn step_constant(&self, x: &Tensor, h: &Tensor) -> Result<Tensor> {
        match self {
            LiquidCell::Ltc(c) => Ok(c.step(x, h)?.1),
            _ => self.step_prepared(x, h, &self.prepare()?),
        }
    }

    /// One step exactly as ncps computes it, with an optional span per row (`[B]` or `[B, 1]`):
    /// (output [B, out], new state [B, state]).
    pub fn step(&self, x: &Tensor, h: &Tensor, ts: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        match self {
            LiquidCell::Dense(c) => {
                let hn = match ts {
                    Some(t) => c.step_timespan(x, h, t)?,
                    None => super::reference::step(c, x, h)?,
                };
                Ok((hn.clone(), hn))
            }
            LiquidCell::Wired(w) => w.step(x, h, ts),
            LiquidCell::Ltc(c) => match ts {
                None => c.step(x, h),
                Some(_) => Err(ltc_unsupported("a per-row time span")),
            },
        }
    }
}
