//! Closed-form continuous-time cells, CfC (design §2.3; ncps `CfCCell`, `WiredCfCCell`, `CfC`).
//!
//! ```text
//! z  = act(W_b·[x; h] + b_b)            act = lecun_tanh(x) = 1.7159·tanh(0.666·x), backbone_layers times
//!                                        (backbone_layers = 0: z = [x; h])
//! f1 = tanh(W_1·z + b_1),  f2 = tanh(W_2·z + b_2)
//! τ  = σ((W_a·z + b_a)·ts + (W_t·z + b_t))
//! h' = f1·(1 − τ) + τ·f2                (no_gate: h' = f1 + τ·f2)
//! pure: h' = −A·exp(−ts·(|w_tau| + |W_1·z + b_1|))·(W_1·z + b_1) + A
//! ```
//! ts is the step's time span: the configured constant (ncps' 1.0 without `timespans`), or one
//! per row and step ([`Cfc::forward_timespans`]). A sparsity mask M (ncps' `sparsity_mask`)
//! multiplies W_1 and W_2 elementwise.
//!
//! Keys (ncps names): `backbone.{k}.weight` ([U, in+H] for k = 0, [U, U] after), `.bias`;
//! `ff1`, `ff2`, `time_a`, `time_b` (`[H, U]`, `[H]`; `[H, in+H]` without a backbone); pure mode
//! `ff1`, `w_tau` and `A` (`[1, H]`). ncps' `backbone.{2k}` (its `Sequential` counts the
//! activations) is lsnn's `backbone.{k}`; a mask is not a parameter (ncps stores it as a frozen
//! one).
//!
//! - [`Cfc`]: the cell (candle's `Module` and `RNN`); sequences run as one fused CPU op
//!   (forward and BPTT backward in one pass each, the crate-private `op`) with
//!   [`reference`](mod@reference) as its composition;
//! - [`WiredCfc`]: one CfC layer per layer of a [`crate::wiring::Wiring`], masked by it;
//! - [`CfcRnn`]: ncps' `CfC` sequence wrapper — `return_sequences`, `proj_size`,
//!   `mixed_memory` ([`LstmCell`]) — over either cell.
//!
//! A loss over many of `RNN::seq`'s per-step states costs O(L²) in candle's backward: each state
//! is a `narrow` view of the sequence, and each narrow's backward builds a zero tensor of the
//! whole sequence. Take the loss over the whole-sequence tensor ([`Cfc::forward_state`], or
//! `Module::forward`) instead.

mod config;
mod liquid;
mod lstm;
pub(crate) mod op;
mod prepare;
pub mod reference;
mod rnn;
pub(crate) mod spans;
mod wired;

pub use config::{CfcConfig, CfcMode};
pub use liquid::{LiquidCell, LiquidCellConfig};
pub use lstm::{LstmCell, LstmState};
pub use prepare::PreparedCfc;
pub use reference::lecun_tanh;
pub use rnn::{CfcRnn, CfcRnnConfig, CfcRnnOutput, CfcRnnState};
pub use wired::{WiredCfc, WiredCfcConfig};

use crate::error::{LayerError, Result};
use crate::nn::Linear;
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};
use op::Span;

/// The maps after the first head: the gate's (default and no_gate) or pure mode's parameters.
#[derive(Debug, Clone)]
pub(crate) enum Heads {
    Gated {
        ff2: Linear,
        time_a: Linear,
        time_b: Linear,
    },
    Pure {
        /// [1, H].
        w_tau: Tensor,
        /// [1, H].
        a: Tensor,
    },
}

/// The CfC cell.
#[derive(Debug, Clone)]
pub struct Cfc {
    pub(crate) backbone: Vec<Linear>,
    pub(crate) ff1: Linear,
    pub(crate) heads: Heads,
    /// ncps' sparsity mask, transposed to the weights' layout [H, head input].
    pub(crate) mask: Option<Tensor>,
    cfg: CfcConfig,
}

/// The recurrent state of a [`Cfc`] or a [`WiredCfc`]: h [B, state size].
#[derive(Debug, Clone)]
pub struct CfcState {
    /// h [B, H] (a wired cell: every layer's units side by side, in layer order).
    pub h: Tensor,
}

/// Xavier-uniform over a [rows, cols] weight, as ncps' `init_weights` for every 2-D parameter.
fn xavier(vb: &VarBuilder, rows: usize, cols: usize, name: &str) -> Result<Tensor> {
    let a = (6.0 / (rows + cols) as f64).sqrt();
    Ok(vb.get_with_hints((rows, cols), name, Init::Uniform { lo: -a, up: a })?)
}

impl Cfc {
    /// Creates the cell's weights through `vb` (Xavier-uniform weights as ncps).
    pub fn new(cfg: &CfcConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(cfg, None, vb)
    }

    /// A cell whose first two heads read through ncps' `sparsity_mask`, given as ncps takes it:
    /// [in + H, H] (input and recurrent rows by unit columns), values used as |m|. Only without
    /// a backbone (ncps applies the mask to the heads, which then read [x; h]).
    pub fn with_mask(cfg: &CfcConfig, sparsity_mask: &Tensor, vb: VarBuilder) -> Result<Self> {
        let k = cfg.input_size + cfg.hidden_size;
        if cfg.backbone_layers != 0 {
            return Err(LayerError::config(
                "backbone_layers",
                format!(
                    "{} with a sparsity mask; expected 0 (the mask applies to heads reading [x; h])",
                    cfg.backbone_layers
                ),
            ));
        }
        if sparsity_mask.dims() != [k, cfg.hidden_size] {
            return Err(LayerError::Shape {
                what: "cfc sparsity mask [in + H, H]",
                expected: format!("[{k}, {}]", cfg.hidden_size),
                actual: sparsity_mask.dims().to_vec(),
            });
        }
        crate::nn::check_finite(sparsity_mask, "cfc sparsity mask")?;
        let m = sparsity_mask
            .abs()?
            .t()?
            .contiguous()?
            .to_dtype(vb.dtype())?
            .to_device(vb.device())?;
        Self::build(cfg, Some(m), vb)
    }

    fn build(cfg: &CfcConfig, mask: Option<Tensor>, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let mut backbone = Vec::with_capacity(cfg.backbone_layers);
        let u = cfg.backbone_units;
        for k in 0..cfg.backbone_layers {
            let in_dim = if k == 0 {
                cfg.input_size + cfg.hidden_size
            } else {
                u
            };
            backbone.push(Linear::xavier(in_dim, u, vb.pp(format!("backbone.{k}")))?);
        }
        let (h, k) = (cfg.hidden_size, cfg.head_input());
        let ff1 = Linear::xavier(k, h, vb.pp("ff1"))?;
        let heads = match cfg.mode {
            CfcMode::Pure => Heads::Pure {
                w_tau: xavier(&vb, 1, h, "w_tau")?,
                a: xavier(&vb, 1, h, "A")?,
            },
            _ => Heads::Gated {
                ff2: Linear::xavier(k, h, vb.pp("ff2"))?,
                time_a: Linear::xavier(k, h, vb.pp("time_a"))?,
                time_b: Linear::xavier(k, h, vb.pp("time_b"))?,
            },
        };
        Ok(Cfc {
            backbone,
            ff1,
            heads,
            mask,
            cfg: cfg.clone(),
        })
    }

    /// The same cell with detached parameters (see [`crate::nn::Linear::detached`]).
    pub fn detached(&self) -> Self {
        Cfc {
            backbone: self.backbone.iter().map(Linear::detached).collect(),
            ff1: self.ff1.detached(),
            heads: match &self.heads {
                Heads::Gated {
                    ff2,
                    time_a,
                    time_b,
                } => Heads::Gated {
                    ff2: ff2.detached(),
                    time_a: time_a.detached(),
                    time_b: time_b.detached(),
                },
                Heads::Pure { w_tau, a } => Heads::Pure {
                    w_tau: w_tau.detach(),
                    a: a.detach(),
                },
            },
            mask: self.mask.clone(),
            cfg: self.cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CfcConfig {
        &self.cfg
    }

    /// The sparsity mask in the weights' layout [H, head input], if any.
    pub fn mask(&self) -> Option<&Tensor> {
        self.mask.as_ref()
    }

    pub(crate) fn check_state(&self, h: &Tensor, batch: usize) -> Result<()> {
        spans::check_state(h, batch, self.cfg.hidden_size, "cfc state h [B, H]")
    }

    /// The hidden states h_1..h_L [B, L, H] of a sequence x [B, L, in] from `state` (zero when
    /// `None`) at the configured constant time span, and the final state h_L.
    pub fn forward_state(
        &self,
        x: &Tensor,
        state: Option<&CfcState>,
    ) -> Result<(Tensor, CfcState)> {
        self.run(x, None, state)
    }

    /// [`Cfc::forward_state`] with a time span per row and step (ncps' `timespans`): [B, L] or
    /// [B, L, 1], finite.
    pub fn forward_timespans(
        &self,
        x: &Tensor,
        timespans: &Tensor,
        state: Option<&CfcState>,
    ) -> Result<(Tensor, CfcState)> {
        self.run(x, Some(timespans), state)
    }

    fn run(
        &self,
        x: &Tensor,
        timespans: Option<&Tensor>,
        state: Option<&CfcState>,
    ) -> Result<(Tensor, CfcState)> {
        let (b, l) = spans::check_sequence(x, self.cfg.input_size, "cfc input [B, L, in]")?;
        let spans = timespans.map(|t| spans::check_spans(t, b, l)).transpose()?;
        let h0 = match state {
            Some(s) => {
                self.check_state(&s.h, b)?;
                s.h.clone()
            }
            None => Tensor::zeros((b, self.cfg.hidden_size), x.dtype(), x.device())?,
        };
        let hs = match &spans {
            None => self.sequence_from_projection(&self.input_projection(x)?, &h0)?,
            Some(ts) => {
                let prep = PreparedCfc::new(&[self], Span::PerStep)?;
                prep.sequence(&prep.layers[0].project(x)?, Some(ts), &h0)?
            }
        };
        let h = hs.narrow(1, l - 1, 1)?.squeeze(1)?;
        Ok((hs, CfcState { h }))
    }

    /// The first linear map's input half for every position at the configured constant span:
    /// x [.., in] → [.., F] with the map's bias — the backbone's first layer ([.., U]), or the
    /// heads without a backbone (the first half of [`Cfc::forward_state`]).
    pub fn input_projection(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(first) = self.backbone.first() {
            let inp = self.cfg.input_size;
            let w = first.weight().narrow(1, 0, inp)?;
            let (x2, lead) = crate::fused::as_matrix(x, inp, "cfc input projection")?;
            let y = x2.matmul(&w.t()?)?.broadcast_add(first.bias())?;
            return Ok(y.reshape([lead, vec![self.cfg.backbone_units]].concat())?);
        }
        prepare::PreparedLayer::new(self, Span::Constant(self.cfg.ts))?.project(x)
    }

    /// Packs the per-step weights (differentiably) for a sequence of steps at the configured
    /// constant span.
    pub fn prepare(&self) -> Result<PreparedCfc> {
        PreparedCfc::new(&[self], Span::Constant(self.cfg.ts))
    }

    /// h_1..h_L [B, L, H] from the input projection proj [B, L, F] ([`Cfc::input_projection`])
    /// and h_0 [B, H] (the second half of [`Cfc::forward_state`]). On the CPU one fused custom
    /// op (forward and BPTT backward in one pass each); otherwise
    /// [`reference::sequence_from_projection`].
    pub fn sequence_from_projection(&self, proj: &Tensor, h0: &Tensor) -> Result<Tensor> {
        let prep = self.prepare()?;
        let f = prep.layers[0].first_width()?;
        let (b, _) = spans::check_sequence(proj, f, "cfc input projection [B, L, F]")?;
        self.check_state(h0, b)?;
        prep.sequence(proj, None, h0)
    }

    /// One step of a precomputed projection p [B, F] with prepared weights (the streaming form of
    /// [`Cfc::sequence_from_projection`]).
    pub fn step_projected(&self, p: &Tensor, h: &Tensor, w: &PreparedCfc) -> Result<Tensor> {
        reference::step_projected(self, p, h, w)
    }

    /// One step with a time span per row, ts `[B]` or `[B, 1]`: x [B, in], h [B, H] → h'.
    pub fn step_timespan(&self, x: &Tensor, h: &Tensor, ts: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        reference::step_with_span(self, x, h, &spans::check_step_span(ts, b)?)
    }
}

impl Module for Cfc {
    /// The hidden states [B, L, H] of a sequence x [B, L, in] from a zero state.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.forward_state(x, None)?.0)
    }
}

impl candle_nn::rnn::RNN for Cfc {
    type State = CfcState;

    fn zero_state(&self, batch_dim: usize) -> candle_core::Result<CfcState> {
        let w = self.ff1.weight();
        Ok(CfcState {
            h: Tensor::zeros((batch_dim, self.cfg.hidden_size), w.dtype(), w.device())?,
        })
    }

    /// One step exactly as ncps computes it: input [B, in] → the new state.
    fn step(&self, input: &Tensor, state: &CfcState) -> candle_core::Result<CfcState> {
        Ok(CfcState {
            h: reference::step(self, input, &state.h)?,
        })
    }

    /// The whole sequence through the fused op; each state is a view of its output (see the
    /// module docs for the cost of a loss over many of them).
    fn seq_init(&self, input: &Tensor, init: &CfcState) -> candle_core::Result<Vec<CfcState>> {
        let (hs, _) = self.forward_state(input, Some(init))?;
        (0..hs.dim(1)?)
            .map(|t| {
                Ok(CfcState {
                    h: hs.narrow(1, t, 1)?.squeeze(1)?,
                })
            })
            .collect()
    }

    fn states_to_tensor(&self, states: &[CfcState]) -> candle_core::Result<Tensor> {
        let hs: Vec<&Tensor> = states.iter().map(|s| &s.h).collect();
        Tensor::stack(&hs, 1)
    }
}
