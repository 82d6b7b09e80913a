//! The per-step composition of candle ops: the reference the fused kernels are tested and
//! benchmarked against, and the path on every device without a fused kernel (it uses only ops
//! every candle backend has). Each form takes an optional initial membrane and returns the final
//! one, as the fused forms do.

use super::reset::{with_reset, Reset};
use super::surrogate::{with_surrogate, SurrogateFn};
use super::{LifConfig, LifParams, LifState, RateOutput, Surrogate};
use crate::error::Result;
use candle_core::Tensor;

/// H(x) in forward with the surrogate σ'(x) as its gradient, in the straight-through form
/// H(x) + x·g − stop_gradient(x·g) with g = σ'(x) detached: the bracket is exactly 0 in
/// forward and has derivative g, so it needs no op candle lacks (candle has no `atan`).
pub fn heaviside(x: &Tensor, surrogate: &Surrogate) -> Result<Tensor> {
    let h = x.gt(0.0)?.to_dtype(x.dtype())?;
    let g = with_surrogate!(surrogate, |s| s.grad_tensor(&x.detach()))?;
    let t = (x * g)?;
    Ok((h + (&t - t.detach())?)?)
}

fn step_fixed<R: Reset>(u: &Tensor, i: &Tensor, cfg: &LifConfig) -> Result<(Tensor, Tensor)> {
    let th = cfg.threshold;
    // r_t = H(U_{t−1} − θ), detached.
    let r = (u - th)?.gt(0.0)?.to_dtype(u.dtype())?;
    let nu = R::step_tensor(cfg.beta, th, &r, u, i)?;
    let s = heaviside(&(&nu - th)?, &cfg.surrogate)?;
    Ok((nu, s))
}

/// The step with β and θ as tensors: the gradient reaches them through the membrane (β, and θ
/// in the subtract reset) and through the spike's shift U − θ.
fn step_learned<R: Reset>(
    u: &Tensor,
    i: &Tensor,
    cfg: &LifConfig,
    p: &LifParams,
) -> Result<(Tensor, Tensor)> {
    let r = u
        .broadcast_sub(&p.threshold)?
        .gt(0.0)?
        .to_dtype(u.dtype())?;
    let nu = R::step_tensor_var(&p.beta, &p.threshold, &r, u, i)?;
    let s = heaviside(&nu.broadcast_sub(&p.threshold)?, &cfg.surrogate)?;
    Ok((nu, s))
}

/// One step: (U_{t−1}, I_t) → (U_t, S_t).
pub fn step(u: &Tensor, i: &Tensor, cfg: &LifConfig) -> Result<(Tensor, Tensor)> {
    step_with(u, i, cfg, None)
}

/// [`step`] with learned β and θ when given.
pub fn step_with(
    u: &Tensor,
    i: &Tensor,
    cfg: &LifConfig,
    params: Option<&LifParams>,
) -> Result<(Tensor, Tensor)> {
    with_reset!(cfg.reset, |R| match params {
        None => step_fixed::<R>(u, i, cfg),
        Some(p) => step_learned::<R>(u, i, cfg, p),
    })
}

/// Checks learned parameters against neurons shaped like `one_step` (as the fused forms do).
fn check_params(params: Option<&LifParams>, one_step: &Tensor) -> Result<()> {
    if let Some(p) = params {
        p.check(one_step.dims(), one_step.dtype())?;
    }
    Ok(())
}

fn start(like: &Tensor, state: Option<&LifState>) -> Result<Tensor> {
    match state {
        Some(s) => Ok(s.mem.clone()),
        None => Ok(like.zeros_like()?),
    }
}

/// Per-step [`super::spikes`].
pub fn spikes(
    currents: &Tensor,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    spikes_with(currents, cfg, None, state)
}

/// Per-step [`super::spikes_with`].
pub fn spikes_with(
    currents: &Tensor,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    let steps = currents.dim(0)?;
    check_params(params, &currents.get(0)?)?;
    let mut u = start(&currents.get(0)?, state)?;
    let mut out = Vec::with_capacity(steps);
    for t in 0..steps {
        let (nu, s) = step_with(&u, &currents.get(t)?, cfg, params)?;
        u = nu;
        out.push(s);
    }
    Ok((Tensor::stack(&out, 0)?, LifState { mem: u }))
}

/// Per-step [`super::rate`].
pub fn rate(
    currents: &Tensor,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(RateOutput, LifState)> {
    rate_with(currents, cfg, None, state)
}

/// Per-step [`super::rate_with`].
pub fn rate_with(
    currents: &Tensor,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(RateOutput, LifState)> {
    let steps = currents.dim(0)?;
    check_params(params, &currents.get(0)?)?;
    let mut u = start(&currents.get(0)?, state)?;
    let mut count = u.zeros_like()?;
    let mut usum = u.zeros_like()?;
    for t in 0..steps {
        let (nu, s) = step_with(&u, &currents.get(t)?, cfg, params)?;
        count = (count + s)?;
        usum = (usum + nu.detach())?;
        u = nu;
    }
    let inv = 1.0 / steps as f64;
    let out = RateOutput {
        rate: count.affine(inv, 0.0)?,
        mean_mem: usum.affine(inv, 0.0)?.detach(),
    };
    Ok((out, LifState { mem: u }))
}

/// Per-step [`super::const_spikes`].
pub fn const_spikes(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    const_spikes_with(current, steps, cfg, None, state)
}

/// Per-step [`super::const_spikes_with`].
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    check_params(params, current)?;
    let mut u = start(current, state)?;
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let (nu, s) = step_with(&u, current, cfg, params)?;
        u = nu;
        out.push(s);
    }
    Ok((Tensor::stack(&out, 0)?, LifState { mem: u }))
}

/// Per-step [`super::const_rate`].
pub fn const_rate(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    const_rate_with(current, steps, cfg, None, state)
}

/// Per-step [`super::const_rate_with`].
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    check_params(params, current)?;
    let mut u = start(current, state)?;
    let mut count = current.zeros_like()?;
    for _ in 0..steps {
        let (nu, s) = step_with(&u, current, cfg, params)?;
        u = nu;
        count = (count + s)?;
    }
    Ok((count.affine(1.0 / steps as f64, 0.0)?, LifState { mem: u }))
}
