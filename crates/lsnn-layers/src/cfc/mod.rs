//! Closed-form continuous-time cell, CfC (design §2.3; ncps `CfCCell`).
//!
//! ```text
//! z  = act(W_b·[x; h] + b_b)            act = lecun_tanh(x) = 1.7159·tanh(0.666·x), backbone_layers times
//! f1 = tanh(W_1·z + b_1),  f2 = tanh(W_2·z + b_2)
//! τ  = σ((W_a·z + b_a)·ts + (W_t·z + b_t))
//! h' = f1·(1 − τ) + τ·f2                (no_gate: h' = f1 + τ·f2)
//! ```
//! Keys (ncps names): `backbone.{k}.weight` ([U, in+H] for k = 0, [U, U] after), `.bias`;
//! `ff1`, `ff2`, `time_a`, `time_b` (`[H, U]`, `[H]`).
//!
//! [`Cfc`] implements candle's `Module` (a sequence [B, L, in] → the hidden states [B, L, H]
//! from a zero state) and `RNN` (whose `seq_init` runs the fused sequence op). For sequences the
//! input half of the first backbone layer is applied to every position at once
//! ([`Cfc::input_projection`]); the recurrence over the sequence is one fused CPU op (`op`,
//! forward and BPTT backward in one pass each) with [`reference`](mod@reference) as its composition.
//!
//! A loss over many of `RNN::seq`'s per-step states costs O(L²) in candle's backward: each state
//! is a `narrow` view of the sequence, and each narrow's backward builds a zero tensor of the
//! whole sequence. Take the loss over the whole-sequence tensor ([`Cfc::forward_state`], or
//! `Module::forward`) instead.

mod config;
pub(crate) mod op;
pub mod reference;

pub use config::{CfcConfig, CfcMode};
pub use reference::lecun_tanh;

use crate::error::Result;
use crate::nn::{check_width, Linear};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// The CfC cell.
#[derive(Debug, Clone)]
pub struct Cfc {
    backbone: Vec<Linear>,
    ff1: Linear,
    ff2: Linear,
    time_a: Linear,
    time_b: Linear,
    cfg: CfcConfig,
}

/// The recurrent state of a [`Cfc`]: h [B, H].
#[derive(Debug, Clone)]
pub struct CfcState {
    /// h [B, H].
    pub h: Tensor,
}

/// Per-sequence packed weights for fast recurrent steps (see [`Cfc::prepare`]).
#[derive(Debug, Clone)]
pub struct PreparedCfc {
    /// W_b0[:, in:]ᵀ, [H, U].
    w_h_t: Tensor,
    /// Deeper backbone layers' Wᵀ and b.
    deep: Vec<(Tensor, Tensor)>,
    /// [W_1; W_2; W_a·ts + W_t]ᵀ packed [U, 3H].
    w_head_t: Tensor,
    /// The matching bias [3H].
    b_head: Tensor,
}

impl Cfc {
    /// Creates the cell's weights through `vb` (Xavier-uniform weights as ncps).
    pub fn new(cfg: &CfcConfig, vb: VarBuilder) -> Result<Self> {
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
        let h = cfg.hidden_size;
        Ok(Cfc {
            backbone,
            ff1: Linear::xavier(u, h, vb.pp("ff1"))?,
            ff2: Linear::xavier(u, h, vb.pp("ff2"))?,
            time_a: Linear::xavier(u, h, vb.pp("time_a"))?,
            time_b: Linear::xavier(u, h, vb.pp("time_b"))?,
            cfg: cfg.clone(),
        })
    }

    /// The same cell with detached parameters (see [`crate::nn::Linear::detached`]).
    pub fn detached(&self) -> Self {
        Cfc {
            backbone: self.backbone.iter().map(Linear::detached).collect(),
            ff1: self.ff1.detached(),
            ff2: self.ff2.detached(),
            time_a: self.time_a.detached(),
            time_b: self.time_b.detached(),
            cfg: self.cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CfcConfig {
        &self.cfg
    }

    fn check_state(&self, h: &Tensor, batch: usize) -> Result<()> {
        check_width(h, "cfc state h [B, H]", 2, self.cfg.hidden_size)?;
        if h.dim(0)? != batch {
            return Err(crate::LayerError::Shape {
                what: "cfc state h [B, H]",
                expected: format!("[{batch}, {}]", self.cfg.hidden_size),
                actual: h.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// The hidden states h_1..h_L [B, L, H] of a sequence x [B, L, in] from `state` (zero when
    /// `None`), and the final state h_L.
    pub fn forward_state(
        &self,
        x: &Tensor,
        state: Option<&CfcState>,
    ) -> Result<(Tensor, CfcState)> {
        check_width(x, "cfc input [B, L, in]", 3, self.cfg.input_size)?;
        let (b, l, _) = x.dims3()?;
        if l == 0 {
            return Err(crate::LayerError::Shape {
                what: "cfc input [B, L, in]",
                expected: "at least one position (L >= 1)".into(),
                actual: x.dims().to_vec(),
            });
        }
        let h0 = match state {
            Some(s) => {
                self.check_state(&s.h, b)?;
                s.h.clone()
            }
            None => Tensor::zeros((b, self.cfg.hidden_size), x.dtype(), x.device())?,
        };
        let hs = self.sequence_from_projection(&self.input_projection(x)?, &h0)?;
        let h = hs.narrow(1, l - 1, 1)?.squeeze(1)?;
        Ok((hs, CfcState { h }))
    }

    /// The input half of the first backbone layer for every position: x [.., in] → [.., U],
    /// including the backbone bias (the first half of [`Cfc::forward_state`]).
    pub fn input_projection(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.backbone[0]
            .weight()
            .narrow(1, 0, self.cfg.input_size)?;
        let (x2, lead) = crate::fused::as_matrix(x, self.cfg.input_size, "cfc input projection")?;
        let y = x2.matmul(&w.t()?)?.broadcast_add(self.backbone[0].bias())?;
        Ok(y.reshape([lead, vec![self.cfg.backbone_units]].concat())?)
    }

    /// Packs the per-step weights (differentiably) for a sequence of steps.
    pub fn prepare(&self) -> Result<PreparedCfc> {
        let w0 = self.backbone[0].weight();
        let w_h_t = w0
            .narrow(1, self.cfg.input_size, self.cfg.hidden_size)?
            .t()?
            .contiguous()?;
        let deep = self.backbone[1..]
            .iter()
            .map(|l| Ok((l.weight().t()?.contiguous()?, l.bias().clone())))
            .collect::<Result<Vec<_>>>()?;
        let ts = self.cfg.ts;
        let w_time = (self.time_a.weight().affine(ts, 0.0)? + self.time_b.weight())?;
        let b_time = (self.time_a.bias().affine(ts, 0.0)? + self.time_b.bias())?;
        let w_head_t = Tensor::cat(&[self.ff1.weight(), self.ff2.weight(), &w_time], 0)?
            .t()?
            .contiguous()?;
        let b_head = Tensor::cat(&[self.ff1.bias(), self.ff2.bias(), &b_time], 0)?;
        Ok(PreparedCfc {
            w_h_t,
            deep,
            w_head_t,
            b_head,
        })
    }

    /// h_1..h_L [B, L, H] from the input projection proj [B, L, U] ([`Cfc::input_projection`])
    /// and h_0 [B, H] (the second half of [`Cfc::forward_state`]). On the CPU with one backbone
    /// layer this is one fused custom op (forward and BPTT backward in one pass each);
    /// otherwise [`reference::sequence_from_projection`].
    pub fn sequence_from_projection(&self, proj: &Tensor, h0: &Tensor) -> Result<Tensor> {
        let (b, l, u) = proj.dims3()?;
        self.check_state(h0, b)?;
        let fused = crate::kernel::fused_available(proj)
            && h0.dtype() == proj.dtype()
            && self.cfg.backbone_layers == 1
            && u == self.cfg.backbone_units;
        if !fused {
            return reference::sequence_from_projection(self, proj, h0);
        }
        let w = self.prepare()?;
        let packed = crate::kernel::packing::pack(&[&w.w_h_t, &w.w_head_t, &w.b_head])?;
        let op = op::CfcSeqOp {
            dims: op::Dims {
                b,
                l,
                u,
                h: self.cfg.hidden_size,
            },
            mode: self.cfg.mode,
        };
        Ok(proj
            .contiguous()?
            .apply_op3(&h0.contiguous()?, &packed, op)?)
    }

    /// One step of a precomputed projection p [B, U] with prepared weights (the streaming form of
    /// [`Cfc::sequence_from_projection`]).
    pub fn step_projected(&self, p: &Tensor, h: &Tensor, w: &PreparedCfc) -> Result<Tensor> {
        reference::step_projected(self, p, h, w)
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
