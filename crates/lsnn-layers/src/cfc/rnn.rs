//! [`CfcRnn`] (design §2.3.1): ncps' `CfC` sequence wrapper over a dense or a wired cell, with
//! its options — `return_sequences`, `proj_size` (a linear readout) and `mixed_memory` (an
//! [`LstmCell`] run before the cell at every step).
//!
//! Keys (ncps names): `rnn_cell.…` (the cell), `lstm.…` (mixed memory), `fc.weight` / `fc.bias`
//! (`proj_size`). Without mixed memory the sequence runs as the fused op; with it the LSTM sits
//! between steps, so the sequence is the per-step composition (ncps' own loop).
//!
//! Time spans apply per row, as ncps' cell computes them for ts [B, 1]. (ncps' wrapper passes
//! `timespans[:, t].squeeze()`, of shape [B], which broadcasts against the hidden axis unless
//! B = 1; lsnn does what the cell's equation says.)

use super::liquid::{LiquidCell, LiquidCellConfig};
use super::lstm::{LstmCell, LstmState};
use super::spans;
use crate::error::{LayerError, Result};
use crate::nn::Linear;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

fn default_true() -> bool {
    true
}

/// The wrapper's configuration (ncps' `CfC` arguments).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CfcRnnConfig {
    /// The cell.
    pub cell: LiquidCellConfig,
    /// A linear readout to this width (ncps' `proj_size`; default none).
    #[serde(default)]
    pub proj_size: Option<usize>,
    /// Every step's readout (default), or only the last step's.
    #[serde(default = "default_true")]
    pub return_sequences: bool,
    /// An LSTM memory cell before the cell at every step (default false).
    #[serde(default)]
    pub mixed_memory: bool,
}

impl CfcRnnConfig {
    /// A wrapper over `cell` with ncps' defaults (sequences returned, no readout, no memory).
    pub fn new(cell: LiquidCellConfig) -> Self {
        CfcRnnConfig {
            cell,
            proj_size: None,
            return_sequences: true,
            mixed_memory: false,
        }
    }

    /// With a linear readout to `proj_size`.
    pub fn with_proj_size(mut self, proj_size: usize) -> Self {
        self.proj_size = Some(proj_size);
        self
    }

    /// Returning every step's readout (`true`) or only the last one's.
    pub fn with_return_sequences(mut self, return_sequences: bool) -> Self {
        self.return_sequences = return_sequences;
        self
    }

    /// With (or without) the LSTM memory cell.
    pub fn with_mixed_memory(mut self, mixed_memory: bool) -> Self {
        self.mixed_memory = mixed_memory;
        self
    }

    /// Checks the cell and the readout width.
    pub fn validate(&self) -> Result<()> {
        self.cell.validate()?;
        if self.proj_size == Some(0) {
            return Err(LayerError::config(
                "proj_size",
                "0; expected at least 1 (or none)",
            ));
        }
        Ok(())
    }
}

/// The wrapper's state: the cell's h [B, state] and, with mixed memory, the LSTM's c [B, state].
#[derive(Debug, Clone)]
pub struct CfcRnnState {
    /// h [B, state].
    pub h: Tensor,
    /// c [B, state] with mixed memory.
    pub c: Option<Tensor>,
}

/// What [`CfcRnn::forward`] returns.
#[derive(Debug, Clone)]
pub struct CfcRnnOutput {
    /// [B, L, out] with `return_sequences`, else [B, out] (out = `proj_size` or the cell's
    /// output width).
    pub readout: Tensor,
    /// The state after the last step.
    pub state: CfcRnnState,
}

/// ncps' `CfC`: a liquid cell over a sequence, with its wrapper options.
#[derive(Debug, Clone)]
pub struct CfcRnn {
    cell: LiquidCell,
    lstm: Option<LstmCell>,
    fc: Option<Linear>,
    cfg: CfcRnnConfig,
}

impl CfcRnn {
    /// Creates the weights through `vb`.
    pub fn new(cfg: &CfcRnnConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let cell = LiquidCell::new(&cfg.cell, vb.pp("rnn_cell"))?;
        let (inp, state) = (cfg.cell.input_size(), cfg.cell.state_size());
        let lstm = if cfg.mixed_memory {
            Some(LstmCell::new(inp, state, vb.pp("lstm"))?)
        } else {
            None
        };
        let fc = match cfg.proj_size {
            Some(p) => Some(Linear::new(cfg.cell.output_size(), p, vb.pp("fc"))?),
            None => None,
        };
        Ok(CfcRnn {
            cell,
            lstm,
            fc,
            cfg: cfg.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CfcRnnConfig {
        &self.cfg
    }

    /// The cell.
    pub fn cell(&self) -> &LiquidCell {
        &self.cell
    }

    /// The cell's post-step constraint (an LTC's clamp under the explicit constraint, nothing
    /// for a CfC): call it after every optimizer step.
    pub fn apply_weight_constraints(&self) -> crate::error::Result<()> {
        self.cell().apply_weight_constraints()
    }

    fn readout(&self, y: &Tensor) -> Result<Tensor> {
        Ok(match &self.fc {
            Some(fc) => fc.forward(y)?,
            None => y.clone(),
        })
    }

    fn initial(&self, x: &Tensor, b: usize, state: Option<&CfcRnnState>) -> Result<CfcRnnState> {
        let n = self.cell.state_size();
        let zeros = || Tensor::zeros((b, n), x.dtype(), x.device());
        let Some(s) = state else {
            return Ok(CfcRnnState {
                h: zeros()?,
                c: if self.lstm.is_some() {
                    Some(zeros()?)
                } else {
                    None
                },
            });
        };
        spans::check_state(&s.h, b, n, "cfc rnn state h [B, state]")?;
        let c = match (&self.lstm, &s.c) {
            (Some(_), Some(c)) => {
                spans::check_state(c, b, n, "cfc rnn state c [B, state]")?;
                Some(c.clone())
            }
            (Some(_), None) => {
                return Err(LayerError::config(
                    "state",
                    "no LSTM cell state c with mixed_memory; expected (h, c)",
                ))
            }
            (None, Some(_)) => {
                return Err(LayerError::config(
                    "state",
                    "an LSTM cell state c without mixed_memory; expected h only",
                ))
            }
            (None, None) => None,
        };
        Ok(CfcRnnState { h: s.h.clone(), c })
    }

    /// The readout of x [B, L, in] from `state` (zero when `None`), with optional per-step time
    /// spans ([B, L] or [B, L, 1]; the cell's constant span otherwise).
    pub fn forward(
        &self,
        x: &Tensor,
        state: Option<&CfcRnnState>,
        timespans: Option<&Tensor>,
    ) -> Result<CfcRnnOutput> {
        let inp = self.cfg.cell.input_size();
        let (b, l) = spans::check_sequence(x, inp, "cfc rnn input [B, L, in]")?;
        let ts = timespans.map(|t| spans::check_spans(t, b, l)).transpose()?;
        let init = self.initial(x, b, state)?;
        let (outputs, state) = match &self.lstm {
            None => {
                let hs = match &ts {
                    Some(t) => self.cell.sequence_timespans(x, t, &init.h)?,
                    None => self.cell.sequence(x, &init.h)?,
                };
                let h = hs.narrow(1, l - 1, 1)?.squeeze(1)?;
                (self.cell.output_of(&hs)?, CfcRnnState { h, c: None })
            }
            Some(lstm) => {
                let mut mem = LstmState {
                    h: init.h,
                    c: init.c.expect("checked: mixed memory has c"),
                };
                let mut outs = Vec::with_capacity(l);
                for t in 0..l {
                    let xt = x.narrow(1, t, 1)?.squeeze(1)?;
                    mem = lstm.step(&xt, &mem)?;
                    let tst = match &ts {
                        Some(s) => Some(s.narrow(1, t, 1)?.squeeze(1)?),
                        None => None,
                    };
                    let (out, h) = self.cell.step(&xt, &mem.h, tst.as_ref())?;
                    mem.h = h;
                    outs.push(out);
                }
                (
                    Tensor::stack(&outs, 1)?,
                    CfcRnnState {
                        h: mem.h,
                        c: Some(mem.c),
                    },
                )
            }
        };
        let readout = if self.cfg.return_sequences {
            self.readout(&outputs)?
        } else {
            self.readout(&outputs.narrow(1, l - 1, 1)?.squeeze(1)?)?
        };
        Ok(CfcRnnOutput { readout, state })
    }
}

impl Module for CfcRnn {
    /// The readout of x [B, L, in] from a zero state at the constant span.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(CfcRnn::forward(self, x, None, None)?.readout)
    }
}
