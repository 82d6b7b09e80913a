//! The alpha neuron (design §2.12, snnTorch `Alpha`): an excitatory synaptic current that decays
//! with α and an inhibitory one that decays with β < α, both driven by the same input with
//! opposite signs; the membrane is their sum scaled by τ, so a single input pulse draws the
//! alpha-shaped kernel τ·(α^k − β^k) over the following steps.
//!
//! ```text
//! r_t  = H(U_{t−1} − θ)                                 reset from the previous step, no gradient
//! E'_t = α·E_{t−1} + x_t      I'_t = β·I_{t−1} − x_t     τ = ln α / (ln β − ln α) + 1
//! M'_t = τ·(E'_t + I'_t)
//! (E_t, I_t, U_t) = reset(E'_t, I'_t, M'_t)              see [`reset`](mod@reset)
//! S_t  = H(U_t − θ)
//! ```
//!
//! The state is (syn_exc, syn_inh, mem), zero or a given [`AlphaState`]; every form returns the
//! final one, so a sequence cut into chunks, the state carried, equals one call (snnTorch's
//! `spk, syn_exc, syn_inh, mem = lif(cur, syn_exc, syn_inh, mem)`). Backward uses the layer's
//! [`crate::lif::Surrogate`] and reaches the currents, the initial state and learned α, β, θ
//! (snnTorch 1.0.0 cannot learn α: its `learn_alpha` raises; here it can, its gradient checked
//! against snnTorch's with α made a tensor that requires grad, design §2.12).
//!
//! The forms, the op and the packing are the current-based LIF's ([`crate::synaptic`], state
//! [3, N…]); the kernel ([`kernel`](self)) and the per-step composition in
//! [`reference`](mod@reference) are this neuron's, and the fused forward equals the composition
//! bit for bit. [`Alpha`] is the layer.

mod coefs;
mod config;
pub(crate) mod kernel;
mod layer;
pub mod reference;
pub(crate) mod reset;

pub use config::AlphaConfig;
pub(crate) use config::{check_alpha, check_beta, check_order};
pub use layer::Alpha;

/// α, β and θ of a call: one shared value or one per feature each, as the current-based LIF's.
pub use crate::synaptic::SynapticParams as AlphaParams;

use crate::error::Result;
use crate::lif::op::Form;
use crate::lif::RateOutput;
use crate::rng::SeededRng;
use crate::synaptic::kind::Kind;
use crate::synaptic::{missing_state, run, split_rate, Call};
use candle_core::Tensor;

/// The state of an alpha-neuron layer between calls, each [N…].
#[derive(Debug, Clone)]
pub struct AlphaState {
    /// The excitatory synaptic current E.
    pub syn_exc: Tensor,
    /// The inhibitory synaptic current I.
    pub syn_inh: Tensor,
    /// The membrane potential U.
    pub mem: Tensor,
}

impl AlphaState {
    /// A zero state for neurons shaped like `x` (snnTorch's `reset_mem`).
    pub fn zeros_like(x: &Tensor) -> Result<Self> {
        Ok(AlphaState {
            syn_exc: x.zeros_like()?,
            syn_inh: x.zeros_like()?,
            mem: x.zeros_like()?,
        })
    }

    /// The same state without its autograd graph (to carry it into the next chunk of a
    /// truncated sequence without keeping the previous chunk's graph alive).
    pub fn detach(&self) -> Self {
        AlphaState {
            syn_exc: self.syn_exc.detach(),
            syn_inh: self.syn_inh.detach(),
            mem: self.mem.detach(),
        }
    }

    /// The three tensors in the op's order (E, I, U).
    pub(crate) fn parts(&self) -> Vec<Tensor> {
        vec![self.syn_exc.clone(), self.syn_inh.clone(), self.mem.clone()]
    }

    /// The state from [`AlphaState::parts`]' order; a typed error for another count.
    pub(crate) fn from_parts(parts: Vec<Tensor>) -> Result<Self> {
        match <[Tensor; 3]>::try_from(parts) {
            Ok([syn_exc, syn_inh, mem]) => Ok(AlphaState {
                syn_exc,
                syn_inh,
                mem,
            }),
            Err(p) => Err(missing_state(p.len())),
        }
    }
}

/// Runs a form from `state`, the final state returned.
fn stateful(
    x: &Tensor,
    cfg: &AlphaConfig,
    form: Form,
    steps: usize,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
    dropout: Option<(f64, &mut SeededRng)>,
) -> Result<(Tensor, AlphaState)> {
    cfg.validate()?;
    let call = Call::new(Kind::Alpha, form, steps, params)
        .with_state(state.map(AlphaState::parts))
        .with_dropout(dropout);
    match run(x, &cfg.dynamics(), call)? {
        (out, Some(parts)) => Ok((out, AlphaState::from_parts(parts)?)),
        (_, None) => Err(missing_state(0)),
    }
}

/// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), with learned α,
/// β, θ (`params`) in place of the config's when given; returns the spikes and the final state.
pub fn spikes_with(
    currents: &Tensor,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    stateful(currents, cfg, Form::SeqSpikes, 0, params, state, None)
}

/// (mean_t S_t, mean_t U_t) from currents [T, …], starting from `state`; the mean membrane
/// carries no gradient. Returns them and the final state.
pub fn rate_with(
    currents: &Tensor,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(RateOutput, AlphaState)> {
    let (both, st) = stateful(currents, cfg, Form::SeqRateMem, 0, params, state, None)?;
    Ok((split_rate(&both)?, st))
}

/// Spikes [steps, …] from a constant current […] applied for `steps` steps, starting from
/// `state`; returns the spikes and the final state.
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    stateful(current, cfg, Form::ConstSpikes, steps, params, state, None)
}

/// [`const_spikes_with`] followed by inverted dropout with probability `p` (masks from `rng`), as
/// one op: the spike train before dropout is never kept for backward.
pub fn const_spikes_dropout(
    current: &Tensor,
    steps: usize,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    p: f64,
    rng: &mut SeededRng,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
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

/// The firing rate mean_t S_t […] of a constant current […] over `steps` steps, starting from
/// `state`, without materialising [T, …] in forward or backward; returns it and the final state.
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &AlphaConfig,
    params: Option<&AlphaParams>,
    state: Option<&AlphaState>,
) -> Result<(Tensor, AlphaState)> {
    stateful(current, cfg, Form::ConstRate, steps, params, state, None)
}
