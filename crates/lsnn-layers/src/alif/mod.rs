//! The adaptive leaky integrate-and-fire neuron (design §2.13, norse's `LSNNCell`, Bellec et al.
//! 2018): a current-based LIF whose threshold rises by J with each spike and decays back to its
//! baseline θ, so a neuron that has just fired needs more drive to fire again.
//!
//! ```text
//! m_t = v_{t−1} + (1 − β)·((v_leak − v_{t−1}) + i_{t−1})     membrane, Euler step of norse's ODE
//! a_t = b_{t−1} + (1 − ρ)·(θ − b_{t−1})                       the threshold decays back to θ
//! z_t = H(m_t − a_t)
//! v_t = (1 − z_t)·m_t + z_t·v_reset     b_t = a_t + J·z_t     i_t = α·i_{t−1} + x_t
//! ```
//!
//! The spike reaches the reset and the adaptation with its surrogate gradient (norse detaches
//! neither), and the input of step t reaches the membrane at step t + 1, as in norse. The state
//! is (syn, mem, adapt) = (i, v, b); without a given [`AlifState`] it starts at norse's resting
//! state (0, v_leak, θ), θ detached. Every form returns the final state, so a sequence cut into
//! chunks, the state carried, equals one call. [`AlifConfig::from_norse`] maps norse's
//! continuous-time parameters; backward reaches the currents, the initial state and learned α,
//! β, θ (norse's τ_syn⁻¹, τ_mem⁻¹, v_th by the chain rule of that map).
//!
//! The forms, the op and the packing are the current-based LIF's ([`crate::synaptic`], state
//! [3, N…]); the kernel ([`kernel`](self)) and the per-step composition in
//! [`reference`](mod@reference) are this neuron's, and the fused forward equals the composition
//! bit for bit. [`Alif`] is the layer.

mod config;
pub(crate) mod kernel;
mod layer;
pub mod reference;

pub(crate) use config::{check_beta, check_reset_below, Adaptation};
pub use config::{AlifConfig, NorseLsnn};
pub use layer::Alif;

/// α, β and θ of a call: one shared value or one per feature each, as the current-based LIF's.
pub use crate::synaptic::SynapticParams as AlifParams;

use crate::error::Result;
use crate::lif::op::Form;
use crate::lif::RateOutput;
use crate::rng::SeededRng;
use crate::synaptic::kind::Kind;
use crate::synaptic::{missing_state, run, split_rate, Call};
use candle_core::Tensor;

/// The state of an adaptive-LIF layer between calls, each [N…].
#[derive(Debug, Clone)]
pub struct AlifState {
    /// The synaptic current i.
    pub syn: Tensor,
    /// The membrane potential v.
    pub mem: Tensor,
    /// The adaptive threshold b.
    pub adapt: Tensor,
}

impl AlifState {
    /// norse's resting state for neurons shaped like `x` under `cfg`: no current, the membrane at
    /// v_leak, the threshold at θ (the learned one, per feature, when `params` are given), all
    /// without gradient.
    pub fn rest(x: &Tensor, cfg: &AlifConfig, params: Option<&AlifParams>) -> Result<Self> {
        let theta = match params {
            Some(p) => {
                p.check_for(Kind::Alif(cfg.adaptation()), x.dims(), x.dtype())?;
                // Scalar neurons: a [1] θ would broadcast the state to [1].
                match x.rank() {
                    0 => p.threshold.reshape(())?,
                    _ => p.threshold.clone(),
                }
            }
            None => Tensor::full(cfg.threshold, (), x.device())?.to_dtype(x.dtype())?,
        };
        reference::rest(x, cfg.v_leak, &theta)
    }

    /// The same state without its autograd graph (to carry it into the next chunk of a
    /// truncated sequence without keeping the previous chunk's graph alive).
    pub fn detach(&self) -> Self {
        AlifState {
            syn: self.syn.detach(),
            mem: self.mem.detach(),
            adapt: self.adapt.detach(),
        }
    }

    /// The three tensors in the op's order (i, v, b).
    pub(crate) fn parts(&self) -> Vec<Tensor> {
        vec![self.syn.clone(), self.mem.clone(), self.adapt.clone()]
    }

    /// The state from [`AlifState::parts`]' order; a typed error for another count.
    pub(crate) fn from_parts(parts: Vec<Tensor>) -> Result<Self> {
        match <[Tensor; 3]>::try_from(parts) {
            Ok([syn, mem, adapt]) => Ok(AlifState { syn, mem, adapt }),
            Err(p) => Err(missing_state(p.len())),
        }
    }
}

/// Runs a form from `state`, the final state returned.
fn stateful(
    x: &Tensor,
    cfg: &AlifConfig,
    form: Form,
    steps: usize,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
    dropout: Option<(f64, &mut SeededRng)>,
) -> Result<(Tensor, AlifState)> {
    cfg.validate()?;
    let call = Call::new(Kind::Alif(cfg.adaptation()), form, steps, params)
        .with_state(state.map(AlifState::parts))
        .with_dropout(dropout);
    match run(x, &cfg.dynamics(), call)? {
        (out, Some(parts)) => Ok((out, AlifState::from_parts(parts)?)),
        (_, None) => Err(missing_state(0)),
    }
}

/// Spikes [T, …] from currents [T, …], starting from `state` (norse's resting state when
/// `None`), with learned α, β, θ (`params`) in place of the config's when given; returns the
/// spikes and the final state.
pub fn spikes_with(
    currents: &Tensor,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    stateful(currents, cfg, Form::SeqSpikes, 0, params, state, None)
}

/// (mean_t z_t, mean_t v_t) from currents [T, …], starting from `state`; the mean membrane
/// carries no gradient. Returns them and the final state.
pub fn rate_with(
    currents: &Tensor,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(RateOutput, AlifState)> {
    let (both, st) = stateful(currents, cfg, Form::SeqRateMem, 0, params, state, None)?;
    Ok((split_rate(&both)?, st))
}

/// Spikes [steps, …] from a constant current […] applied for `steps` steps, starting from
/// `state`; returns the spikes and the final state.
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    stateful(current, cfg, Form::ConstSpikes, steps, params, state, None)
}

/// [`const_spikes_with`] followed by inverted dropout with probability `p` (masks from `rng`), as
/// one op: the spike train before dropout is never kept for backward.
pub fn const_spikes_dropout(
    current: &Tensor,
    steps: usize,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    p: f64,
    rng: &mut SeededRng,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    let dropout = Some((p, rng));
    stateful(
        current,
        cfg,
        Form::ConstSpikes,
        steps,
        params,
        state,
        dropout,
    )
}

/// The firing rate mean_t z_t […] of a constant current […] over `steps` steps, starting from
/// `state`, without materialising [T, …] in forward or backward (the backward's scratch is
/// 3·(T + 1) values per neuron of each block of at most 1,024 in flight); returns it and the final
/// state.
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlifConfig,
    params: Option<&AlifParams>,
    state: Option<&AlifState>,
) -> Result<(Tensor, AlifState)> {
    stateful(current, cfg, Form::ConstRate, steps, params, state, None)
}
