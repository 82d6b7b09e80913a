//! The composed LTC: ncps' `LTCCell` step by step in candle ops, the fused op's reference and
//! its path on devices without the kernel (design §2.14).

use super::params::LtcParams;
use super::Ltc;
use crate::error::Result;
use candle_core::{Tensor, D};

/// The parameters one step reads, the positive ones through the constraint.
pub(crate) struct Effective {
    pub gleak: Tensor,
    pub vleak: Tensor,
    pub cm: Tensor,
    pub w: Tensor,
    pub sensory_w: Tensor,
}

impl Effective {
    pub fn new(cell: &Ltc) -> Result<Self> {
        let p = cell.params();
        let c = cell.config().constraint;
        Ok(Effective {
            gleak: LtcParams::positive(&p.gleak, c)?,
            vleak: p.vleak.clone(),
            cm: LtcParams::positive(&p.cm, c)?,
            w: LtcParams::positive(&p.w, c)?,
            sensory_w: LtcParams::positive(&p.sensory_w, c)?,
        })
    }
}

/// ncps' `_sigmoid`: σ(sigma·(pre − mu)) for pre [B, P] over synapses [P, N] → [B, P, N].
fn synapse_sigmoid(pre: &Tensor, mu: &Tensor, sigma: &Tensor) -> Result<Tensor> {
    let d = pre.unsqueeze(D::Minus1)?.broadcast_sub(mu)?;
    Ok(candle_nn::ops::sigmoid(&d.broadcast_mul(sigma)?)?)
}

/// Σ_pre of w·σ(…)·mask·erev and of w·σ(…)·mask, each [B, N], as ncps sums them.
fn synapse_sums(
    pre: &Tensor,
    mu: &Tensor,
    sigma: &Tensor,
    w: &Tensor,
    mask: &Tensor,
    erev: &Tensor,
) -> Result<(Tensor, Tensor)> {
    let a = synapse_sigmoid(pre, mu, sigma)?
        .broadcast_mul(w)?
        .broadcast_mul(mask)?;
    let num = a.broadcast_mul(erev)?.sum(1)?;
    Ok((num, a.sum(1)?))
}

/// One step of the solver from mapped inputs x̃ [B, I] and v [B, N] (ncps' `_ode_solver`).
pub(crate) fn solve(cell: &Ltc, e: &Effective, x: &Tensor, v: &Tensor) -> Result<Tensor> {
    let p = cell.params();
    let cfg = cell.config();
    let (sens_num, sens_den) = synapse_sums(
        x,
        &p.sensory_mu,
        &p.sensory_sigma,
        &e.sensory_w,
        &p.sensory_mask,
        &p.sensory_erev,
    )?;
    let cm_t = (&e.cm / (cfg.ts / cfg.ode_unfolds as f64))?;
    let mut v = v.clone();
    for _ in 0..cfg.ode_unfolds {
        let (num, den) = synapse_sums(&v, &p.mu, &p.sigma, &e.w, &p.mask, &p.erev)?;
        let numerator = v
            .broadcast_mul(&cm_t)?
            .broadcast_add(&(&e.gleak * &e.vleak)?)?
            .add(&(num + &sens_num)?)?;
        let denominator = (den + &sens_den)?.broadcast_add(&(&cm_t + &e.gleak)?)?;
        v = (numerator / (denominator + cfg.epsilon)?)?;
    }
    Ok(v)
}

/// One step as ncps' `LTCCell.forward`: x [B, I], v [B, N] → (output [B, O], new state [B, N]).
pub fn step(cell: &Ltc, x: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
    let e = Effective::new(cell)?;
    let vn = solve(cell, &e, &cell.map_inputs(x)?, v)?;
    Ok((cell.output_of(&vn)?, vn))
}

/// Every state v_1..v_L [B, L, N] of mapped inputs x̃ [B, L, I] from v_0 [B, N], step by step.
pub fn sequence(cell: &Ltc, x: &Tensor, v0: &Tensor) -> Result<Tensor> {
    let e = Effective::new(cell)?;
    let mut v = v0.clone();
    let mut out = Vec::with_capacity(x.dim(1)?);
    for t in 0..x.dim(1)? {
        v = solve(cell, &e, &x.narrow(1, t, 1)?.squeeze(1)?, &v)?;
        out.push(v.clone());
    }
    Ok(Tensor::stack(&out, 1)?)
}
