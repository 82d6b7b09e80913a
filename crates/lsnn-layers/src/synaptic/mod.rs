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
mod config;
mod kernel;
mod layer;
mod op;
mod params;
pub mod reference;
pub(crate) mod reset;

pub use config::SynapticConfig;
pub use layer::Synaptic;
pub use params::{LearnedSynaptic, SynapticParams};

use crate::error::{LayerError, Result};
use crate::kernel::packing;
use crate::lif::op::Form;
use crate::lif::RateOutput;
use crate::rng::SeededRng;
use candle_core::Tensor;
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
}

/// One call of a form.
struct Call<'a> {
    form: Form,
    steps: usize,
    state: Option<&'a SynapticState>,
    emit_state: bool,
    dropout: Option<(f64, &'a mut SeededRng)>,
    params: Option<&'a SynapticParams>,
}

impl<'a> Call<'a> {
    fn new(form: Form, steps: usize, params: Option<&'a SynapticParams>) -> Self {
        Call {
            form,
            steps,
            state: None,
            emit_state: false,
            dropout: None,
            params,
        }
    }

    fn with_state(mut self, state: Option<&'a SynapticState>) -> Self {
        self.state = state;
        self.emit_state = true;
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
    cfg.validate()?;
    let what = if call.form.constant() {
        "synaptic constant current"
    } else {
        "synaptic currents [T, …]"
    };
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
    if let Some(s) = call.state {
        for (t, name) in [
            (&s.syn, "synaptic state (syn)"),
            (&s.mem, "synaptic state (mem)"),
        ] {
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

/// Runs a form on `x`: the main output and, when asked, the final state.
fn run(
    x: &Tensor,
    cfg: &SynapticConfig,
    call: Call<'_>,
) -> Result<(Tensor, Option<SynapticState>)> {
    let neurons = check(x, cfg, &call)?;
    let triples = match call.params {
        Some(p) => p.check(&neurons, x.dtype())?,
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
    let state = match call.state {
        Some(s) => Tensor::stack(&[&s.syn, &s.mem], 0)?.contiguous()?,
        None => none,
    };
    let x = x.contiguous()?;
    let out = x.apply_op3(&state, &params, op.clone())?;
    if !call.emit_state {
        return Ok((out, None));
    }
    let fin = x.apply_op3(&state, &params, SynStateOp { main: op })?;
    let st = SynapticState {
        syn: fin.get(0)?,
        mem: fin.get(1)?,
    };
    Ok((out, Some(st)))
}

fn run_composed(
    x: &Tensor,
    cfg: &SynapticConfig,
    call: Call<'_>,
) -> Result<(Tensor, Option<SynapticState>)> {
    let (p, st) = (call.params, call.state);
    let (out, state) = match call.form {
        Form::SeqSpikes => reference::spikes_with(x, cfg, p, st)?,
        Form::SeqRateMem => {
            let (r, s) = reference::rate_with(x, cfg, p, st)?;
            (Tensor::stack(&[r.rate, r.mean_mem], 0)?, s)
        }
        Form::ConstSpikes => {
            let (spk, s) = reference::const_spikes_with(x, call.steps, cfg, p, st)?;
            match call.dropout {
                Some((q, rng)) => (crate::fused::dropout(&spk, q, rng)?, s),
                None => (spk, s),
            }
        }
        Form::ConstRate => reference::const_rate_with(x, call.steps, cfg, p, st)?,
    };
    Ok((out, call.emit_state.then_some(state)))
}

/// The output and the final state of a call that asked for it.
fn with_state(r: (Tensor, Option<SynapticState>)) -> Result<(Tensor, SynapticState)> {
    match r {
        (out, Some(st)) => Ok((out, st)),
        (_, None) => Err(LayerError::config(
            "synaptic state",
            "the final state was asked for but not returned",
        )),
    }
}

/// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`), with learned α,
/// β, θ (`params`) in place of the config's when given; returns the spikes and the final state.
pub fn spikes_with(
    currents: &Tensor,
    cfg: &SynapticConfig,
    params: Option<&SynapticParams>,
    state: Option<&SynapticState>,
) -> Result<(Tensor, SynapticState)> {
    let call = Call::new(Form::SeqSpikes, 0, params).with_state(state);
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
    let call = Call::new(Form::SeqRateMem, 0, params).with_state(state);
    let (both, st) = with_state(run(currents, cfg, call)?)?;
    let out = RateOutput {
        rate: both.get(0)?,
        mean_mem: both.get(1)?.detach(),
    };
    Ok((out, st))
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
    let call = Call::new(Form::ConstSpikes, steps, params).with_state(state);
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
    let mut call = Call::new(Form::ConstSpikes, steps, params).with_state(state);
    call.dropout = Some((p, rng));
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
    let call = Call::new(Form::ConstRate, steps, params).with_state(state);
    with_state(run(current, cfg, call)?)
}

/// The stateless forms a model uses: zero initial state, no final state (the output is not split
/// and its gradient not re-assembled).
pub(crate) mod stateless {
    use super::*;

    /// [`super::spikes_with`] from zero, spikes only.
    pub(crate) fn spikes(
        currents: &Tensor,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
    ) -> Result<Tensor> {
        Ok(run(currents, cfg, Call::new(Form::SeqSpikes, 0, params))?.0)
    }

    /// [`super::rate_with`] from zero.
    pub(crate) fn rate(
        currents: &Tensor,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
    ) -> Result<RateOutput> {
        let both = run(currents, cfg, Call::new(Form::SeqRateMem, 0, params))?.0;
        Ok(RateOutput {
            rate: both.get(0)?,
            mean_mem: both.get(1)?.detach(),
        })
    }

    /// [`super::const_spikes_with`] (with dropout in training) from zero.
    pub(crate) fn const_spikes(
        current: &Tensor,
        steps: usize,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
        dropout: Option<(f64, &mut SeededRng)>,
    ) -> Result<Tensor> {
        let mut call = Call::new(Form::ConstSpikes, steps, params);
        call.dropout = dropout;
        Ok(run(current, cfg, call)?.0)
    }

    /// [`super::const_rate_with`] from zero.
    pub(crate) fn const_rate(
        current: &Tensor,
        steps: usize,
        cfg: &SynapticConfig,
        params: Option<&SynapticParams>,
    ) -> Result<Tensor> {
        Ok(run(current, cfg, Call::new(Form::ConstRate, steps, params))?.0)
    }
}
