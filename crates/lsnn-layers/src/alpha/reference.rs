//! The per-step composition of candle ops for the alpha neuron: the reference the fused kernels
//! are tested and benchmarked against, and the path on every device without a fused kernel (only
//! ops every candle backend has). Each form takes an optional initial state and returns the final
//! one, as the fused forms do; α, β, θ are `[1]` or `[F]` tensors broadcast over the neurons, τ is
//! computed from them as candle ops (so a learned α or β gets its gradient through τ as well), in
//! the kernels' arithmetic order.

use super::reset::AlphaReset;
use super::{AlphaConfig, AlphaParams, AlphaState};
use crate::error::Result;
use crate::lif::op::Form;
use crate::lif::reference::heaviside;
use crate::lif::RateOutput;
use crate::synaptic::kind::Kind;
use crate::synaptic::reference::{coefs, run_form, StepState};
use crate::synaptic::reset::with_syn_reset;
use crate::synaptic::SynapticConfig;
use candle_core::Tensor;

impl StepState for AlphaState {
    fn mem(&self) -> &Tensor {
        &self.mem
    }
}

/// α, β, θ and τ = ln α / (ln β − ln α) + 1 as tensors for neurons like `like`.
struct Coefs {
    p: AlphaParams,
    tau: Tensor,
}

/// [`Coefs`] for neurons like `like` (the learned values checked for the alpha neuron).
fn alpha_coefs(cfg: &SynapticConfig, params: Option<&AlphaParams>, like: &Tensor) -> Result<Coefs> {
    let p = coefs(Kind::Alpha, cfg, params, like)?;
    let (la, lb) = (p.alpha.log()?, p.beta.log()?);
    // α and β may be one shared value and one per feature: τ has the larger shape.
    let tau = (la.broadcast_div(&lb.broadcast_sub(&la)?)? + 1.0)?;
    Ok(Coefs { p, tau })
}

/// One step under reset `R` with coefficients `c`: the next state and the spikes.
fn step_r<R: AlphaReset>(
    st: &AlphaState,
    x: &Tensor,
    cfg: &SynapticConfig,
    c: &Coefs,
) -> Result<(AlphaState, Tensor)> {
    let p = &c.p;
    // r_t = H(U_{t−1} − θ), detached.
    let r = st
        .mem
        .broadcast_sub(&p.threshold)?
        .gt(0.0)?
        .to_dtype(st.mem.dtype())?;
    let e1 = (st.syn_exc.broadcast_mul(&p.alpha)? + x)?;
    let i1 = (st.syn_inh.broadcast_mul(&p.beta)? - x)?;
    let m1 = (&e1 + &i1)?.broadcast_mul(&c.tau)?;
    let (syn_exc, syn_inh, mem) = R::apply_tensor(&e1, &i1, &m1, &r, &p.threshold, &st.syn_inh)?;
    let s = heaviside(&mem.broadcast_sub(&p.threshold)?, &cfg.surrogate)?;
    let next = AlphaState {
        syn_exc,
        syn_inh,
        mem,
    };
    Ok((next, s))
}

/// Form `form` of the alpha neuron with the two-decay dynamics `cfg`, one step at a time.
pub(crate) fn form(
    form: Form,
    x: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    let like = match form.constant() {
        true => x.clone(),
        false => x.get(0)?,
    };
    let c = alpha_coefs(cfg, params, &like)?;
    with_syn_reset!(cfg.reset, |R| run_form(
        form,
        x,
        steps,
        state,
        AlphaState::zeros_like,
        |st, cur| step_r::<R>(st, cur, cfg, &c),
    ))
}

/// One step: ((E, I, U)_{t−1}, x_t) → ((E, I, U)_t, S_t), with learned α, β, θ when given.
pub fn step_with(
    state: &AlphaState,
    current: &Tensor,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
) -> Result<(AlphaState, Tensor)> {
    cfg.validate()?;
    let dynamics = cfg.dynamics();
    let c = alpha_coefs(&dynamics, params, current)?;
    with_syn_reset!(cfg.reset, |R| step_r::<R>(state, current, &dynamics, &c))
}

/// Per-step [`super::spikes_with`].
pub fn spikes_with(
    currents: &Tensor,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    cfg.validate()?;
    form(Form::SeqSpikes, currents, 0, &cfg.dynamics(), params, state)
}

/// Per-step [`super::rate_with`].
pub fn rate_with(
    currents: &Tensor,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(RateOutput, AlphaState)> {
    cfg.validate()?;
    let (both, st) = form(
        Form::SeqRateMem,
        currents,
        0,
        &cfg.dynamics(),
        params,
        state,
    )?;
    Ok((crate::synaptic::split_rate(&both)?, st))
}

/// Per-step [`super::const_spikes_with`].
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    cfg.validate()?;
    form(
        Form::ConstSpikes,
        current,
        steps,
        &cfg.dynamics(),
        params,
        state,
    )
}

/// Per-step [`super::const_rate_with`].
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    cfg.validate()?;
    form(
        Form::ConstRate,
        current,
        steps,
        &cfg.dynamics(),
        params,
        state,
    )
}
