//! The per-step composition of candle ops for the current-based LIF: the reference the fused
//! kernels are tested and benchmarked against, and the path on every device without a fused
//! kernel (only ops every candle backend has). Each form takes an optional initial state and
//! returns the final one, as the fused forms do; α, β, θ are `[1]` or `[F]` tensors broadcast over
//! the neurons (the config's fixed values become `[1]` constants), in the kernels' arithmetic order.

use super::reset::{with_syn_reset, SynReset};
use super::{SynapticConfig, SynapticParams, SynapticState};
use crate::error::Result;
use crate::lif::reference::heaviside;
use crate::lif::RateOutput;
use candle_core::Tensor;

/// α, β, θ as tensors for neurons like `like`: the learned ones, or the config's as constants.
fn coefs(
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    like: &Tensor,
) -> Result<SynapticParams> {
    let p = match params {
        Some(p) => {
            p.check(like.dims(), like.dtype())?;
            p.clone()
        }
        None => {
            let c = |v: f64| Tensor::full(v, 1, like.device())?.to_dtype(like.dtype());
            SynapticParams::new(c(cfg.alpha)?, c(cfg.beta)?, c(cfg.threshold)?)
        }
    };
    if like.rank() > 0 {
        return Ok(p);
    }
    // Scalar neurons: a [1] coefficient would broadcast them to [1]; the fused ops keep [].
    let s = |t: &Tensor| t.reshape(());
    Ok(SynapticParams::new(
        s(&p.alpha)?,
        s(&p.beta)?,
        s(&p.threshold)?,
    ))
}

fn step_r<R: SynReset>(
    st: &SynapticState,
    i: &Tensor,
    cfg: &SynapticConfig,
    p: &SynapticParams,
) -> Result<(SynapticState, Tensor)> {
    // r_t = H(U_{t−1} − θ), detached.
    let r = st
        .mem
        .broadcast_sub(&p.threshold)?
        .gt(0.0)?
        .to_dtype(st.mem.dtype())?;
    let syn = (st.syn.broadcast_mul(&p.alpha)? + i)?;
    let m = (st.mem.broadcast_mul(&p.beta)? + &syn)?;
    let mem = R::mem_tensor(&m, &r, &p.threshold)?;
    let s = heaviside(&mem.broadcast_sub(&p.threshold)?, &cfg.surrogate)?;
    Ok((SynapticState { syn, mem }, s))
}

/// One step: ((syn_{t−1}, U_{t−1}), I_t) → ((syn_t, U_t), S_t), with learned α, β, θ when given.
pub fn step_with(
    state: &SynapticState,
    current: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
) -> Result<(SynapticState, Tensor)> {
    let p = coefs(cfg, params, current)?;
    with_syn_reset!(cfg.reset, |R| step_r::<R>(state, current, cfg, &p))
}

/// What a run keeps of each step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    Spikes,
    Rate,
    RateMem,
}

/// Runs `steps` steps of `current(t)` from `state` (zero when `None`): the spikes [steps, …] or
/// the rate, the mean membrane (detached; zero unless `keep` is `RateMem`) and the final state.
fn run(
    like: &Tensor,
    steps: usize,
    current: impl Fn(usize) -> candle_core::Result<Tensor>,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
    keep: Keep,
) -> Result<(Tensor, Tensor, SynapticState)> {
    let p = coefs(cfg, params, like)?;
    let mut st = match state {
        Some(s) => s.clone(),
        None => SynapticState::zeros_like(like)?,
    };
    let mut spikes = Vec::with_capacity(if keep == Keep::Spikes { steps } else { 0 });
    let mut count = like.zeros_like()?;
    let mut usum = like.zeros_like()?;
    for t in 0..steps {
        let (next, s) = with_syn_reset!(cfg.reset, |R| step_r::<R>(&st, &current(t)?, cfg, &p))?;
        match keep {
            Keep::Spikes => spikes.push(s),
            Keep::Rate => count = (count + s)?,
            Keep::RateMem => {
                count = (count + s)?;
                usum = (usum + next.mem.detach())?;
            }
        }
        st = next;
    }
    let inv = 1.0 / steps as f64;
    Ok(match keep {
        Keep::Spikes => (Tensor::stack(&spikes, 0)?, usum, st),
        Keep::Rate => (count.affine(inv, 0.0)?, usum, st),
        Keep::RateMem => (count.affine(inv, 0.0)?, usum.affine(inv, 0.0)?.detach(), st),
    })
}

/// Per-step [`super::spikes_with`].
pub fn spikes_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let like = currents.get(0)?;
    let (s, _, st) = run(
        &like,
        currents.dim(0)?,
        |t| currents.get(t),
        cfg,
        params,
        state,
        Keep::Spikes,
    )?;
    Ok((s, st))
}

/// Per-step [`super::rate_with`].
pub fn rate_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(RateOutput, SynapticState)> {
    let like = currents.get(0)?;
    let (rate, mean_mem, st) = run(
        &like,
        currents.dim(0)?,
        |t| currents.get(t),
        cfg,
        params,
        state,
        Keep::RateMem,
    )?;
    Ok((RateOutput { rate, mean_mem }, st))
}

/// Per-step [`super::const_spikes_with`].
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let (s, _, st) = run(
        current,
        steps,
        |_| Ok(current.clone()),
        cfg,
        params,
        state,
        Keep::Spikes,
    )?;
    Ok((s, st))
}

/// Per-step [`super::const_rate_with`].
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let (r, _, st) = run(
        current,
        steps,
        |_| Ok(current.clone()),
        cfg,
        params,
        state,
        Keep::Rate,
    )?;
    Ok((r, st))
}
