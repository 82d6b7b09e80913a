//! Current-based leaky integrate-and-fire neurons (design §2.10, snnTorch `Synaptic`): a synaptic
//! current that decays with α feeds a membrane that decays with β.
//!
//! ```text
//! r_t   = H(U_{t−1} − θ)                     reset from the previous step, no gradient
//! syn_t = α·syn_{t−1} + I_t
//! m_t   = β·U_{t−1} + syn_t
//! subtract: U_t = m_t − r_t·θ     zero: U_t = m_t·(1 − r_t)     none: U_t = m_t
//! S_t   = H(U_t − θ)
//! ```
//!
//! The state is the pair (syn, U), zero or a given [`SynapticState`]; every form returns the final
//! one, so a sequence cut into chunks, the state carried, equals one call (snnTorch's
//! `spk, syn, mem = lif(cur, syn, mem)`). Backward uses the layer's [`crate::lif::Surrogate`] and
//! reaches the currents, the initial state and learned α, β, θ.
//!
//! The forms are those of [`crate::lif`]: [`spikes_with`], [`rate_with`] (rate and detached mean
//! membrane), [`const_spikes_with`] (with [`const_spikes_dropout`]) and [`const_rate_with`] (O(1)
//! memory over T). On the
//! CPU each is one fused custom op ([`op`](self) over a one-pass kernel, parallel over neurons)
//! taking its state [2, N…] and parameters by the packing convention of
//! [`crate::kernel::packing`]; elsewhere, and whenever the composed path is forced, the per-step
//! composition in [`reference`](mod@reference) runs, and the fused forward equals it bit for bit.
//! [`Synaptic`] is the layer.

pub(crate) mod coefs;
pub(crate) mod config;
pub(crate) mod forward;
pub(crate) mod frame;
pub(crate) mod kernel;
pub(crate) mod kind;
mod layer;
mod op;
mod params;
pub mod reference;
pub(crate) mod reset;

pub use config::SynapticConfig;
pub use layer::Synaptic;
pub use params::{LearnedSynaptic, SynapticParams};

use crate::alif::AlifState;
use crate::alpha::AlphaState;
use crate::error::{LayerError, Result};
use crate::kernel::packing;
use crate::lif::op::Form;
use crate::lif::RateOutput;
use crate::rng::SeededRng;
use candle_core::Tensor;
use kind::Kind;
use op::{SynOp, SynStateOp};

/// The state of a current-based LIF layer between calls: the synaptic current and the membrane
/// after the last step, each [N…].
#[derive(Debug, Clone)]
pub struct SynapticState {
    /// The synaptic current, one value per neuron.
    pub syn: Tensor,
    /// The membrane potential, one value per neuron.
    pub mem: Tensor,
}

impl SynapticState {
    /// A zero state for neurons shaped like `x` (snnTorch's `reset_mem`).
    pub fn zeros_like(x: &Tensor) -> Result<Self> {
        Ok(SynapticState {
            syn: x.zeros_like()?,
            mem: x.zeros_like()?,
        })
    }

    /// The same state without its autograd graph (to carry it into the next chunk of a
    /// truncated sequence without keeping the previous chunk's graph alive).
    pub fn detach(&self) -> Self {
        SynapticState {
            syn: self.syn.detach(),
            mem: self.mem.detach(),
        }
    }

    fn parts(&self) -> Vec<Tensor> {
        vec![self.syn.clone(), self.mem.clone()]
    }

    fn from_parts(parts: Vec<Tensor>) -> Result<Self> {
        match <[Tensor; 2]>::try_from(parts) {
            Ok([syn, mem]) => Ok(SynapticState { syn, mem }),
            Err(p) => Err(missing_state(p.len())),
        }
    }
}

/// A final state of `got` tensors where the neuron's whole state was expected.
pub(crate) fn missing_state(got: usize) -> LayerError {
    LayerError::config(
        "neuron state",
        format!("the final state was asked for but {got} of its tensors were returned"),
    )
}

/// One call of a form: which neuron, and its state (the [`Kind`]'s tensors, in order).
pub(crate) struct Call<'a> {
    kind: Kind,
    form: Form,
    steps: usize,
    state: Option<Vec<Tensor>>,
    emit_state: bool,
    dropout: Option<(f64, &'a mut SeededRng)>,
    params: Option<&'a SynapticParams>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        kind: Kind,
        form: Form,
        steps: usize,
        params: Option<&'a SynapticParams>,
    ) -> Self {
        Call {
            kind,
            form,
            steps,
            state: None,
            emit_state: false,
            dropout: None,
            params,
        }
    }

    /// Starting from `state` (zero when `None`), the final state returned.
    pub(crate) fn with_state(mut self, state: Option<Vec<Tensor>>) -> Self {
        self.state = state;
        self.emit_state = true;
        self
    }

    /// With dropout on the output spikes.
    pub(crate) fn with_dropout(mut self, dropout: Option<(f64, &'a mut SeededRng)>) -> Self {
        self.dropout = dropout;
        self
    }
}

fn bad_shape(what: &'static str, expected: String, actual: &[usize]) -> LayerError {
    LayerError::Shape {
        what,
        expected,
        actual: actual.to_vec(),
    }
}

/// Checks the input, the state, dropout and the parameters of a call; the neuron dims.
fn check(x: &Tensor, cfg: &SynapticConfig, call: &Call<'_>) -> Result<Vec<usize>> {
    cfg.validate_for(call.kind)?;
    let what = call.kind.input_name(call.form.constant());
    if !x.dtype().is_float() {
        return Err(bad_shape(what, "a floating-point tensor".into(), x.dims()));
    }
    if call.form.constant() {
        if call.steps == 0 {
            return Err(LayerError::config("spike steps", "0; expected at least 1"));
        }
    } else if x.rank() == 0 || x.dim(0)? == 0 {
        return Err(bad_shape(
            what,
            "at least one time step [T >= 1, …]".into(),
            x.dims(),
        ));
    }
    let (_, neurons) = call.form.split(x.dims(), call.steps);
    if let Some(s) = &call.state {
        let names = call.kind.state_names();
        if s.len() != names.len() {
            return Err(LayerError::config(
                "neuron state",
                format!("{} tensors; expected {}", s.len(), names.len()),
            ));
        }
        for (t, &name) in s.iter().zip(names) {
            if t.dims() != neurons.as_slice() || t.dtype() != x.dtype() {
                let want = format!("{neurons:?} of {:?}, like one step of the input", x.dtype());
                return Err(bad_shape(name, want, t.dims()));
            }
        }
    }
    if let Some((p, _)) = &call.dropout {
        if !(0.0..1.0).contains(p) {
            return Err(LayerError::config(
                "dropout",
                format!("{p}; expected [0, 1)"),
            ));
        }
    }
    Ok(neurons)
}

/// Runs a form of a neuron on `x`: the main output and, when asked, the final state.
pub(crate) fn run(
    x: &Tensor,
    cfg: &SynapticConfig,
    call: Call<'_>,
) -> Result<(Tensor, Option<Vec<Tensor>>)> {
    let neurons = check(x, cfg, &call)?;
    let triples = match call.params {
        Some(p) => p.check_for(call.kind, &neurons, x.dtype())?,
        None => 0,
    };
    if !crate::kernel::fused_available(x) {
        return run_composed(x, cfg, call);
    }
    let (steps, _) = call.form.split(x.dims(), call.steps);
    let mask = match call.dropout {
        Some((p, rng)) if p > 0.0 => {
            let spikes = steps * neurons.iter().product::<usize>();
            Some(crate::fused::KeepMask::draw(rng, spikes, p))
        }
        _ => None,
    };
    let op = SynOp {
        kind: call.kind,
        cfg: *cfg,
        form: call.form,
        steps: call.steps,
        dropout: mask,
        slot: call.emit_state.then(packing::StateSlot::default),
    };
    let none = packing::empty(x)?;
    let params = match call.params {
        Some(p) => p.packed(triples)?,
        None => none.clone(),
    };
    let state = match &call.state {
        Some(s) => Tensor::stack(s, 0)?.contiguous()?,
        None => none,
    };
    let x = x.contiguous()?;
    let out = x.apply_op3(&state, &params, op.clone())?;
    if !call.emit_state {
        return Ok((out, None));
    }
    let fin = x.apply_op3(&state, &params, SynStateOp { main: op })?;
    let parts = (0..call.kind.states())
        .map(|k| fin.get(k))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok((out, Some(parts)))
}

fn run_composed(
    x: &Tensor,
    cfg: &SynapticConfig,
    call: Call<'_>,
) -> Result<(Tensor, Option<Vec<Tensor>>)> {
    let (form, steps, p) = (call.form, call.steps, call.params);
    let (out, state) = match call.kind {
        Kind::Synaptic => {
            let st = call.state.map(SynapticState::from_parts).transpose()?;
            let (out, st) = reference::form(form, x, steps, cfg, p, st.as_ref())?;
            (out, st.parts())
        }
        Kind::Alpha => {
            let st = call.state.map(AlphaState::from_parts).transpose()?;
            let (out, st) = crate::alpha::reference::form(form, x, steps, cfg, p, st.as_ref())?;
            (out, st.parts())
        }
        Kind::Alif(ad) => {
            let st = call.state.map(AlifState::from_parts).transpose()?;
            let (out, st) = crate::alif::reference::form(form, x, steps, cfg, &ad, p, st.as_ref())?;
            (out, st.parts())
        }
    };
    let out = match (form, call.dropout) {
        (Form::ConstSpikes, Some((q, rng))) => crate::fused::dropout(&out, q, rng)?,
        _ => out,
    };
    Ok((out, call.emit_state.then_some(state)))
}

/// The output and the final state of a call that asked for it.
fn with_state(r: (Tensor, Option<Vec<Tensor>>)) -> Result<(Tensor, SynapticState)> {
    match r {
        (out, Some(st)) => Ok((out, SynapticState::from_parts(st)?)),
        (_, None) => Err(missing_state(0)),
    }
}

/// A call of the current-based LIF from `state`, the final state returned.
fn stateful<'a>(
    form: Form,
    steps: usize,
    params: Option<&'a SynapticParams>,
    state: Option<&SynapticState>,
) -> Call<'a> {
    Call::new(Kind::Synaptic, form, steps, params).with_state(state.map(SynapticState::parts))
}

/// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), with learned α,
/// β, θ (`params`) in place of the config's when given; returns the spikes and the final state.
pub fn spikes_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let call = stateful(Form::SeqSpikes, 0, params, state);
    with_state(run(currents, cfg, call)?)
}

/// (mean_t S_t, mean_t U_t) from currents [T, …], starting from `state`; the mean membrane
/// carries no gradient. Returns them and the final state.
pub fn rate_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(RateOutput, SynapticState)> {
    let call = stateful(Form::SeqRateMem, 0, params, state);
    let (both, st) = with_state(run(currents, cfg, call)?)?;
    Ok((split_rate(&both)?, st))
}

/// The rate and the detached mean membrane of a sequence-rate output [2, N…].
pub(crate) fn split_rate(both: &Tensor) -> Result<RateOutput> {
    Ok(RateOutput {
        rate: both.get(0)?,
        mean_mem: both.get(1)?.detach(),
    })
}

/// Spikes [steps, …] from a constant current […] applied for `steps` steps, starting from
/// `state`; returns the spikes and the final state.
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let call = stateful(Form::ConstSpikes, steps, params, state);
    with_state(run(current, cfg, call)?)
}

/// [`const_spikes_with`] followed by inverted dropout with probability `p` (masks from `rng`), as
/// one op: the spike train before dropout is never kept for backward.
pub fn const_spikes_dropout(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    p: f64,
    rng: &mut SeededRng,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let call = stateful(Form::ConstSpikes, steps, params, state).with_dropout(Some((p, rng)));
    with_state(run(current, cfg, call)?)
}

/// The firing rate mean_t S_t […] of a constant current […] over `steps` steps, starting from
/// `state`, without materialising [T, …] in forward or backward; returns it and the final state.
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let call = stateful(Form::ConstRate, steps, params, state);
    with_state(run(current, cfg, call)?)
}

/// The stateless forms a model uses, for any of the neurons ([`Kind`]): no initial state (zero;
/// the adaptive LIF's resting state), no final
/// state (the output is not split and its gradient not re-assembled).
pub(crate) mod stateless {
    use super::*;

    /// [`super::spikes_with`] from zero, spikes only.
    pub(crate) fn spikes(
        kind: Kind,
        currents: &Tensor,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
    ) -> Result<Tensor> {
        Ok(run(currents, cfg, Call::new(kind, Form::SeqSpikes, 0, params))?.0)
    }

    /// [`super::rate_with`] from zero.
    pub(crate) fn rate(
        kind: Kind,
        currents: &Tensor,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
    ) -> Result<RateOutput> {
        let both = run(currents, cfg, Call::new(kind, Form::SeqRateMem, 0, params))?.0;
        split_rate(&both)
    }

    /// [`super::const_spikes_with`] (with dropout in training) from zero.
    pub(crate) fn const_spikes(
        kind: Kind,
        current: &Tensor,
        steps: usize,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
        dropout: Option<(f64, &mut SeededRng)>,
    ) -> Result<Tensor> {
        let call = Call::new(kind, Form::ConstSpikes, steps, params).with_dropout(dropout);
        Ok(run(current, cfg, call)?.0)
    }

    /// [`super::const_rate_with`] from zero.
    pub(crate) fn const_rate(
        kind: Kind,
        current: &Tensor,
        steps: usize,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
    ) -> Result<Tensor> {
        Ok(run(
            current,
            cfg,
            Call::new(kind, Form::ConstRate, steps, params),
        )?
        .0)
    }
}
