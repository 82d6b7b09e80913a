//! Closed-form continuous-time cell, CfC (SPEC §3.3; ncps `CfCCell`).
//!
//! ```text
//! z  = act(W_b·[x; h] + b_b)            act = lecun_tanh(x) = 1.7159·tanh(0.666·x), backbone_layers times
//! f1 = tanh(W_1·z + b_1),  f2 = tanh(W_2·z + b_2)
//! τ  = σ((W_a·z + b_a)·ts + (W_t·z + b_t))
//! h' = f1·(1 − τ) + τ·f2                (no_gate: h' = f1 + τ·f2)
//! ```
//! Keys (ncps names): `backbone.{k}.weight` ([U, in+H] for k = 0, [U, U] after), `.bias`;
//! `ff1`, `ff2`, `time_a`, `time_b` ([H, U], [H]).
//!
//! For sequences the input half of the first backbone layer is applied to every position at once
//! ([`Cfc::input_projection`]); [`Cfc::prepare`] then packs the per-step weights once so that each
//! recurrent step is two matmuls and a few elementwise ops.

use crate::error::{LayerError, Result};
use crate::nn::{check_width, Linear};
use candle_core::{Module, Tensor, D};
use candle_nn::VarBuilder;
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
}

/// Hyperparameters of a [`Cfc`].
#[derive(Debug, Clone, PartialEq)]
pub struct CfcConfig {
    /// Input width.
    pub input_size: usize,
    /// Hidden units H.
    pub hidden_size: usize,
    /// Backbone width U (default 128).
    pub backbone_units: usize,
    /// Backbone depth (default 1).
    pub backbone_layers: usize,
    /// Mixing mode.
    pub mode: CfcMode,
    /// Time span ts (default 1.0).
    pub ts: f64,
}

/// lecun_tanh(x) = 1.7159·tanh(0.666·x).
pub fn lecun_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    x.affine(0.666, 0.0)?.tanh()?.affine(1.7159, 0.0)
}

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

    /// Creates the cell's weights through `vb` (Xavier-uniform weights as ncps).
    pub fn new(cfg: &CfcConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.backbone_layers == 0 || cfg.backbone_units == 0 || cfg.hidden_size == 0 {
            return Err(LayerError::config(
                "backbone_layers/backbone_units/liquid_units",
                "must be at least 1",
            ));
        }
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

    /// The configuration.
    pub fn config(&self) -> &CfcConfig {
        &self.cfg
    }

    /// One step, exactly as ncps computes it: x [B, in], h [B, H] → h' [B, H].
    pub fn step(&self, x: &Tensor, h: &Tensor) -> Result<Tensor> {
        check_width(x, "cfc input [B, in]", 2, self.cfg.input_size)?;
        check_width(h, "cfc state [B, H]", 2, self.cfg.hidden_size)?;
        let mut z = lecun_tanh(&self.backbone[0].forward(&Tensor::cat(&[x, h], 1)?)?)?;
        for l in &self.backbone[1..] {
            z = lecun_tanh(&l.forward(&z)?)?;
        }
        let f1 = self.ff1.forward(&z)?.tanh()?;
        let f2 = self.ff2.forward(&z)?.tanh()?;
        let ta = self.time_a.forward(&z)?;
        let tb = self.time_b.forward(&z)?;
        let tau = candle_nn::ops::sigmoid(&(ta.affine(self.cfg.ts, 0.0)? + tb)?)?;
        self.mix(&f1, &f2, &tau)
    }

    fn mix(&self, f1: &Tensor, f2: &Tensor, tau: &Tensor) -> Result<Tensor> {
        Ok(match self.cfg.mode {
            CfcMode::Default => ((f1 * tau.affine(-1.0, 1.0)?)? + (tau * f2)?)?,
            CfcMode::NoGate => (f1 + (tau * f2)?)?,
        })
    }

    /// The input half of the first backbone layer for every position: x [.., in] → [.., U],
    /// including the backbone bias.
    pub fn input_projection(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.backbone[0]
            .weight()
            .narrow(1, 0, self.cfg.input_size)?;
        let (x2, lead) = crate::nn::as_matrix(x, self.cfg.input_size, "cfc input projection")?;
        let y = x2.matmul(&w.t()?)?.broadcast_add(self.backbone[0].bias())?;
        Ok(y.reshape([lead, vec![self.cfg.backbone_units]].concat())?)
    }

    /// Packs the per-step weights (differentiably) for a sequence of [`Cfc::step_projected`].
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

    /// h_1..h_L [B, L, H] from the input projection proj [B, L, U] (see [`Cfc::input_projection`])
    /// and h_0 [B, H]. On the CPU with one backbone layer this is one fused custom op (forward and
    /// BPTT backward in one pass each); otherwise [`Cfc::sequence_composed`].
    pub fn sequence(&self, proj: &Tensor, h0: &Tensor) -> Result<Tensor> {
        let (b, l, u) = proj.dims3()?;
        check_width(h0, "cfc initial state [B, H]", 2, self.cfg.hidden_size)?;
        let fused = proj.device().is_cpu()
            && matches!(
                proj.dtype(),
                candle_core::DType::F32 | candle_core::DType::F64
            )
            && h0.dtype() == proj.dtype()
            && self.cfg.backbone_layers == 1
            && u == self.cfg.backbone_units
            && h0.dim(0)? == b;
        if !fused {
            return self.sequence_composed(proj, h0);
        }
        let w = self.prepare()?;
        let packed = Tensor::cat(
            &[
                w.w_h_t.flatten_all()?,
                w.w_head_t.flatten_all()?,
                w.b_head.clone(),
            ],
            0,
        )?;
        let op = crate::cfc_fused::CfcSeqOp {
            dims: crate::cfc_fused::Dims {
                b,
                l,
                u,
                h: self.cfg.hidden_size,
            },
            mode: self.cfg.mode,
        };
        Ok(proj
            .contiguous()?
            .apply_op3(&packed, &h0.contiguous()?, op)?)
    }

    /// [`Cfc::sequence`] as a loop of [`Cfc::step_projected`] (the reference of the fused op, and
    /// the path elsewhere).
    pub fn sequence_composed(&self, proj: &Tensor, h0: &Tensor) -> Result<Tensor> {
        let (_, l, _) = proj.dims3()?;
        let prepared = self.prepare()?;
        let mut h = h0.clone();
        let mut hs = Vec::with_capacity(l);
        for t in 0..l {
            h = self.step_projected(&proj.narrow(1, t, 1)?.squeeze(1)?, &h, &prepared)?;
            hs.push(h.clone());
        }
        Ok(Tensor::stack(&hs, 1)?)
    }

    /// One step from a precomputed input projection p [B, U] (see [`Cfc::input_projection`]).
    pub fn step_projected(&self, p: &Tensor, h: &Tensor, w: &PreparedCfc) -> Result<Tensor> {
        let mut z = lecun_tanh(&(p + h.matmul(&w.w_h_t)?)?)?;
        for (wt, b) in &w.deep {
            z = lecun_tanh(&z.matmul(wt)?.broadcast_add(b)?)?;
        }
        let hd = self.cfg.hidden_size;
        let head = z.matmul(&w.w_head_t)?.broadcast_add(&w.b_head)?;
        let f = head.narrow(D::Minus1, 0, 2 * hd)?.tanh()?;
        let f1 = f.narrow(D::Minus1, 0, hd)?;
        let f2 = f.narrow(D::Minus1, hd, hd)?;
        let tau = candle_nn::ops::sigmoid(&head.narrow(D::Minus1, 2 * hd, hd)?)?;
        self.mix(&f1, &f2, &tau)
    }
}
