//! The per-step composition of candle ops for the recurrent LIF: the reference the fused
//! kernels are tested and benchmarked against, and the path on every device without a fused
//! kernel (only ops every candle backend has). Each form takes an optional initial state and
//! returns the final one, as the fused forms do; β and θ are `[1]` or `[F]` tensors broadcast
//! over the neurons (the config's fixed values become `[1]` constants), in the kernels'
//! arithmetic order: m = (β·U + I) + rec, rec = S ⊙ V or (S·Wᵀ) + b.

use super::{RLeakyConfig, RLeakyState, Recurrent};
use crate::error::Result;
use crate::lif::reference::heaviside;
use crate::lif::{LifParams, RateOutput};
use crate::synaptic::reset::{with_syn_reset, SynReset};
use candle_core::Tensor;

/// β and θ as tensors for neurons like `like`: the learned ones, or the config's as constants.
fn coefs(cfg: &RLeakyConfig, params: Option<&LifParams>, like: &Tensor) -> Result<LifParams> {
    let p = match params {
        Some(p) => {
            p.check(like.dims(), like.dtype())?;
            p.clone()
        }
        None => {
            let c = |v: f64| Tensor::full(v, 1, like.device())?.to_dtype(like.dtype());
            LifParams::new(c(cfg.beta)?, c(cfg.threshold)?)
        }
    };
    if like.rank() > 0 {
        return Ok(p);
    }
    // Scalar neurons: a [1] coefficient would broadcast them to [1]; the fused ops keep [].
    Ok(LifParams::new(
        p.beta.reshape(())?,
        p.threshold.reshape(())?,
    ))
}

/// The recurrent current of spikes `s` [N…].
pub fn recurrent(rec: &Recurrent, s: &Tensor) -> Result<Tensor> {
    Ok(match rec {
        Recurrent::OneToOne { v } => match s.rank() {
            0 => s.broadcast_mul(&v.reshape(())?)?,
            _ => s.broadcast_mul(v)?,
        },
        Recurrent::AllToAll { weight, bias } => {
            let f = weight.dim(0)?;
            let rows = s.elem_count() / f.max(1);
            let y = s.reshape((rows, f))?.matmul(&weight.t()?)?;
            let y = match bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            };
            y.reshape(s.shape())?
        }
    })
}

fn step_r<R: SynReset>(
    st: &RLeakyState,
    i: &Tensor,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    p: &LifParams,
) -> Result<(RLeakyState, Tensor)> {
    // r_t = H(U_{t−1} − θ), detached.
    let r = st
        .mem
        .broadcast_sub(&p.threshold)?
        .gt(0.0)?
        .to_dtype(st.mem.dtype())?;
    let m = ((st.mem.broadcast_mul(&p.beta)? + i)? + recurrent(rec, &st.spk)?)?;
    let mem = R::mem_tensor(&m, &r, &p.threshold)?;
    let spk = heaviside(&mem.broadcast_sub(&p.threshold)?, &cfg.surrogate)?;
    Ok((
        RLeakyState {
            spk: spk.clone(),
            mem,
        },
        spk,
    ))
}

/// One step, snnTorch's `spk, mem = lif(cur, spk, mem)`: ((S_{t−1}, U_{t−1}), I_t) →
/// ((S_t, U_t), S_t), with learned β and θ when given.
pub fn step_with(
    state: &RLeakyState,
    current: &Tensor,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
) -> Result<(RLeakyState, Tensor)> {
    let p = coefs(cfg, params, current)?;
    with_syn_reset!(cfg.reset, |R| step_r::<R>(state, current, cfg, rec, &p))
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
#[allow(clippy::too_many_arguments)]
fn run(
    like: &Tensor,
    steps: usize,
    current: impl Fn(usize) -> candle_core::Result<Tensor>,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
    keep: Keep,
) -> Result<(Tensor, Tensor, RLeakyState)> {
    let p = coefs(cfg, params, like)?;
    let mut st = match state {
        Some(s) => s.clone(),
        None => RLeakyState::zeros_like(like)?,
    };
    let mut spikes = Vec::with_capacity(if keep == Keep::Spikes { steps } else { 0 });
    let mut count = like.zeros_like()?;
    let mut usum = like.zeros_like()?;
    for t in 0..steps {
        let i = current(t)?;
        let (next, s) = with_syn_reset!(cfg.reset, |R| step_r::<R>(&st, &i, cfg, rec, &p))?;
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
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let like = currents.get(0)?;
    let steps = currents.dim(0)?;
    let (s, _, st) = run(
        &like,
        steps,
        |t| currents.get(t),
        cfg,
        rec,
        params,
        state,
        Keep::Spikes,
    )?;
    Ok((s, st))
}

/// Per-step [`super::rate_with`].
pub fn rate_with(
    currents: &Tensor,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(RateOutput, RLeakyState)> {
    let like = currents.get(0)?;
    let steps = currents.dim(0)?;
    let (rate, mean_mem, st) = run(
        &like,
        steps,
        |t| currents.get(t),
        cfg,
        rec,
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
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let (s, _, st) = run(
        current,
        steps,
        |_| Ok(current.clone()),
        cfg,
        rec,
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
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let (r, _, st) = run(
        current,
        steps,
        |_| Ok(current.clone()),
        cfg,
        rec,
        params,
        state,
        Keep::Rate,
    )?;
    Ok((r, st))
}
