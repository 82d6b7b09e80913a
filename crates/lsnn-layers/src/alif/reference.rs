//! The per-step composition of candle ops for the adaptive LIF: the reference the fused kernels
//! are tested and benchmarked against, and the path on every device without a fused kernel (only
//! ops every candle backend has). Each form takes an optional initial state (norse's resting
//! state (0, v_leak, θ) without one) and returns the final one, as the fused forms do; α, β, θ
//! are `[1]` or `[F]` tensors broadcast over the neurons, in the kernels' arithmetic order, and
//! the spike reaches the reset and the adaptation with its surrogate gradient as in norse.

use super::{Adaptation, AlifConfig, AlifParams, AlifState};
use crate::error::Result;
use crate::lif::op::Form;
use crate::lif::reference::heaviside;
use crate::lif::RateOutput;
use crate::synaptic::kind::Kind;
use crate::synaptic::reference::{coefs, run_form, StepState};
use crate::synaptic::SynapticConfig;
use candle_core::Tensor;

impl StepState for AlifState {
    fn mem(&self) -> &Tensor {
        &self.mem
    }
}

/// α, β, θ as tensors for neurons like `like`, and g = 1 − β.
struct Coefs {
    p: AlifParams,
    g: Tensor,
}

fn alif_coefs(
    cfg: &SynapticConfig,
    ad: &Adaptation,
    params: Option<&AlifParams>,
    like: &Tensor,
) -> Result<Coefs> {
    let p = coefs(Kind::Alif(*ad), cfg, params, like)?;
    let g = p.beta.affine(-1.0, 1.0)?;
    Ok(Coefs { p, g })
}

/// norse's resting state for neurons like `like`: no current, the membrane at v_leak, the
/// threshold at θ (detached, as norse's `initial_state` takes `v_th.detach()`).
pub(crate) fn rest(like: &Tensor, leak: f64, theta: &Tensor) -> Result<AlifState> {
    let zero = like.zeros_like()?.detach();
    Ok(AlifState {
        syn: zero.clone(),
        mem: (&zero + leak)?,
        adapt: zero.broadcast_add(&theta.detach())?,
    })
}

/// One step with coefficients `c`: the next state and the spikes.
fn step(
    st: &AlifState,
    x: &Tensor,
    cfg: &SynapticConfig,
    ad: &Adaptation,
    c: &Coefs,
) -> Result<(AlifState, Tensor)> {
    let p = &c.p;
    // m = v + g·((v_leak − v) + i)
    let drive = (st.mem.affine(-1.0, ad.leak)? + &st.syn)?;
    let m = (&st.mem + drive.broadcast_mul(&c.g)?)?;
    // a = b + q·(θ − b)
    let a = (&st.adapt + (p.threshold.broadcast_sub(&st.adapt)? * (1.0 - ad.decay))?)?;
    let z = heaviside(&(&m - &a)?, &cfg.surrogate)?;
    let mem = ((z.affine(-1.0, 1.0)? * &m)? + (&z * ad.reset)?)?;
    let adapt = (&a + (&z * ad.jump)?)?;
    let syn = (st.syn.broadcast_mul(&p.alpha)? + x)?;
    Ok((AlifState { syn, mem, adapt }, z))
}

/// Form `form` of the adaptive LIF with the dynamics `cfg` and adaptation `ad`, one step at a
/// time.
pub(crate) fn form(
    form: Form,
    x: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    ad: &Adaptation,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    let like = match form.constant() {
        true => x.clone(),
        false => x.get(0)?,
    };
    let c = alif_coefs(cfg, ad, params, &like)?;
    run_form(
        form,
        x,
        steps,
        state,
        |like| rest(like, ad.leak, &c.p.threshold),
        |st, cur| step(st, cur, cfg, ad, &c),
    )
}

/// One step: ((i, v, b)_{t−1}, x_t) → ((i, v, b)_t, z_t), with learned α, β, θ when given.
pub fn step_with(
    state: &AlifState,
    current: &Tensor,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
) -> Result<(AlifState, Tensor)> {
    cfg.validate()?;
    let (dynamics, ad) = (cfg.dynamics(), cfg.adaptation());
    let c = alif_coefs(&dynamics, &ad, params, current)?;
    step(state, current, &dynamics, &ad, &c)
}

/// Runs `form` per step from `cfg`.
fn run(
    f: Form,
    x: &Tensor,
    steps: usize,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    cfg.validate()?;
    form(
        f,
        x,
        steps,
        &cfg.dynamics(),
        &cfg.adaptation(),
        params,
        state,
    )
}

/// Per-step [`super::spikes_with`].
pub fn spikes_with(
    currents: &Tensor,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    run(Form::SeqSpikes, currents, 0, cfg, params, state)
}

/// Per-step [`super::rate_with`].
pub fn rate_with(
    currents: &Tensor,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(RateOutput, AlifState)> {
    let (both, st) = run(Form::SeqRateMem, currents, 0, cfg, params, state)?;
    Ok((crate::synaptic::split_rate(&both)?, st))
}

/// Per-step [`super::const_spikes_with`].
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    run(Form::ConstSpikes, current, steps, cfg, params, state)
}

/// Per-step [`super::const_rate_with`].
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    run(Form::ConstRate, current, steps, cfg, params, state)
}
