//! The CfC as a loop of per-step compositions of candle ops: ncps' cell step exactly as ncps
//! computes it, and the sequence from a precomputed input projection — the reference of the
//! fused op (the crate-private `cfc::op`) and the path on devices without it.

use super::{Cfc, CfcMode, PreparedCfc};
use crate::error::Result;
use crate::nn::check_width;
use candle_core::{Module, Tensor, D};

/// lecun_tanh(x) = 1.7159·tanh(0.666·x).
pub fn lecun_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    x.affine(0.666, 0.0)?.tanh()?.affine(1.7159, 0.0)
}

fn mix(mode: CfcMode, f1: &Tensor, f2: &Tensor, tau: &Tensor) -> Result<Tensor> {
    Ok(match mode {
        CfcMode::Default => ((f1 * tau.affine(-1.0, 1.0)?)? + (tau * f2)?)?,
        CfcMode::NoGate => (f1 + (tau * f2)?)?,
    })
}

/// One step, exactly as ncps' `CfCCell` computes it: x [B, in], h [B, H] → h' [B, H].
pub fn step(cell: &Cfc, x: &Tensor, h: &Tensor) -> Result<Tensor> {
    let cfg = cell.config();
    check_width(x, "cfc input [B, in]", 2, cfg.input_size)?;
    check_width(h, "cfc state [B, H]", 2, cfg.hidden_size)?;
    let mut z = lecun_tanh(&cell.backbone[0].forward(&Tensor::cat(&[x, h], 1)?)?)?;
    for l in &cell.backbone[1..] {
        z = lecun_tanh(&l.forward(&z)?)?;
    }
    let f1 = cell.ff1.forward(&z)?.tanh()?;
    let f2 = cell.ff2.forward(&z)?.tanh()?;
    let ta = cell.time_a.forward(&z)?;
    let tb = cell.time_b.forward(&z)?;
    let tau = candle_nn::ops::sigmoid(&(ta.affine(cfg.ts, 0.0)? + tb)?)?;
    mix(cfg.mode, &f1, &f2, &tau)
}

/// One step from a precomputed input projection p [B, U] ([`Cfc::input_projection`]) and the
/// packed per-step weights ([`Cfc::prepare`]).
pub fn step_projected(cell: &Cfc, p: &Tensor, h: &Tensor, w: &PreparedCfc) -> Result<Tensor> {
    let mut z = lecun_tanh(&(p + h.matmul(&w.w_h_t)?)?)?;
    for (wt, b) in &w.deep {
        z = lecun_tanh(&z.matmul(wt)?.broadcast_add(b)?)?;
    }
    let hd = cell.config().hidden_size;
    let head = z.matmul(&w.w_head_t)?.broadcast_add(&w.b_head)?;
    let f = head.narrow(D::Minus1, 0, 2 * hd)?.tanh()?;
    let f1 = f.narrow(D::Minus1, 0, hd)?;
    let f2 = f.narrow(D::Minus1, hd, hd)?;
    let tau = candle_nn::ops::sigmoid(&head.narrow(D::Minus1, 2 * hd, hd)?)?;
    mix(cell.config().mode, &f1, &f2, &tau)
}

/// [`Cfc::sequence_from_projection`] as a loop of [`step_projected`].
pub fn sequence_from_projection(cell: &Cfc, proj: &Tensor, h0: &Tensor) -> Result<Tensor> {
    let (_, l, _) = proj.dims3()?;
    let prepared = cell.prepare()?;
    let mut h = h0.clone();
    let mut hs = Vec::with_capacity(l);
    for t in 0..l {
        h = step_projected(cell, &proj.narrow(1, t, 1)?.squeeze(1)?, &h, &prepared)?;
        hs.push(h.clone());
    }
    Ok(Tensor::stack(&hs, 1)?)
}
