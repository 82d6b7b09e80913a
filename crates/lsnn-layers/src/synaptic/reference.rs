//! The per-step composition of candle ops for the current-based LIF: the reference the fused
//! kernels are tested and benchmarked against, and the path on every device without a fused
//! kernel (only ops every candle backend has). Each form takes an optional initial state and
//! returns the final one, as the fused forms do; α, β, θ are `[1]` or `[F]` tensors broadcast over
//! the neurons (the config's fixed values become `[1]` constants), in the kernels' arithmetic order.

use super::kind::Kind;
use super::reset::{with_syn_reset, SynReset};
use super::{SynapticConfig, SynapticParams, SynapticState};
use crate::error::Result;
use crate::lif::kernel::Main;
use crate::lif::op::Form;
use crate::lif::reference::heaviside;
use crate::lif::RateOutput;
use candle_core::Tensor;

/// α, β, θ as tensors for neurons like `like`: the learned ones (checked for `kind`), or the
/// config's as constants.
pub(crate) fn coefs(
    kind: Kind,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    like: &Tensor,
) -> Result<SynapticParams> {
    let p = match params {
        Some(p) => {
            p.check_for(kind, like.dims(), like.dtype())?;
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
    let p = coefs(Kind::Synaptic, cfg, params, current)?;
    with_syn_reset!(cfg.reset, |R| step_r::<R>(state, current, cfg, &p))
}

/// A state a per-step reference carries: its membrane is what the sequence rate averages.
pub(crate) trait StepState: Clone {
    /// The membrane potential after the step.
    fn mem(&self) -> &Tensor;
}

impl StepState for SynapticState {
    fn mem(&self) -> &Tensor {
        &self.mem
    }
}

/// Runs form `form` on `x` (currents [T, …], or a constant current applied for `steps` steps)
/// one `step` at a time from `state` (`zero` of one step's shape when `None`): the form's main
/// output (spikes; a rate; or rate and detached mean membrane stacked [2, …]) and the final state.
pub(crate) fn run_form<S: StepState>(
    form: Form,
    x: &Tensor,
    steps: usize,
    state: Option<&S>,
    zero: impl Fn(&Tensor) -> Result<S>,
    step: impl Fn(&S, &Tensor) -> Result<(S, Tensor)>,
) -> Result<(Tensor, S)> {
    let (like, steps) = match form.constant() {
        true => (x.clone(), steps),
        false => (x.get(0)?, x.dim(0)?),
    };
    let mut st = match state {
        Some(s) => s.clone(),
        None => zero(&like)?,
    };
    let mut spikes = Vec::with_capacity(if form.main() == Main::Spikes {
        steps
    } else {
        0
    });
    let mut count = like.zeros_like()?;
    let mut usum = like.zeros_like()?;
    for t in 0..steps {
        let cur = match form.constant() {
            true => x.clone(),
            false => x.get(t)?,
        };
        let (next, s) = step(&st, &cur)?;
        match form.main() {
            Main::Spikes => spikes.push(s),
            Main::Rate => count = (count + s)?,
            Main::RateMem => {
                count = (count + s)?;
                usum = (usum + next.mem().detach())?;
            }
        }
        st = next;
    }
    let inv = 1.0 / steps as f64;
    let out = match form.main() {
        Main::Spikes => Tensor::stack(&spikes, 0)?,
        Main::Rate => count.affine(inv, 0.0)?,
        Main::RateMem => Tensor::stack(
            &[count.affine(inv, 0.0)?, usum.affine(inv, 0.0)?.detach()],
            0,
        )?,
    };
    Ok((out, st))
}

/// Form `form` of the current-based LIF, one step at a time (see [`run_form`]).
pub(crate) fn form(
    form: Form,
    x: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let like = match form.constant() {
        true => x.clone(),
        false => x.get(0)?,
    };
    let p = coefs(Kind::Synaptic, cfg, params, &like)?;
    with_syn_reset!(cfg.reset, |R| run_form(
        form,
        x,
        steps,
        state,
        SynapticState::zeros_like,
        |st, cur| step_r::<R>(st, cur, cfg, &p),
    ))
}

/// Per-step [`super::spikes_with`].
pub fn spikes_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    form(Form::SeqSpikes, currents, 0, cfg, params, state)
}

/// Per-step [`super::rate_with`].
pub fn rate_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(RateOutput, SynapticState)> {
    let (both, st) = form(Form::SeqRateMem, currents, 0, cfg, params, state)?;
    Ok((super::split_rate(&both)?, st))
}

/// Per-step [`super::const_spikes_with`].
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    form(Form::ConstSpikes, current, steps, cfg, params, state)
}

/// Per-step [`super::const_rate_with`].
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    form(Form::ConstRate, current, steps, cfg, params, state)
}
