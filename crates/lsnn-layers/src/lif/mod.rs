//! Leaky integrate-and-fire neurons with surrogate gradients (design §2.1, snnTorch `Leaky`).
//!
//! ```text
//! r_t = H(U_{t−1} − θ)                       reset from the previous step, no gradient
//! subtract: U_t = β·U_{t−1} + I_t − r_t·θ
//! zero:     U_t = β·(1 − r_t)·U_{t−1} + I_t
//! none:     U_t = β·U_{t−1} + I_t
//! S_t = H(U_t − θ)                           H(x) = 1 if x > 0 else 0
//! ```
//!
//! U_{−1} is zero or a given [`LifState`]; every form returns the final membrane, so a sequence
//! cut into chunks, each started from the previous chunk's state, equals one call (snnTorch's
//! `spk, mem = lif(cur, mem)`). Backward uses a [`Surrogate`] for dS/dU and back-propagates through
//! time with the reset detached: dL/dU_t = dL/dS_t·σ'(U_t − θ) + β·dL/dU_{t+1} (times
//! 1 − r_{t+1} for `zero`), dL/dI_t = dL/dU_t; the gradient reaches the initial membrane.
//!
//! Forms (time is the leading axis, everything after it is "neurons"):
//! - [`spikes`]: currents [T, …] → spikes [T, …];
//! - [`rate`]: currents [T, …] → mean_t S_t and mean_t U_t (detached), one pass;
//! - [`const_spikes`]: a constant current […] for T steps → spikes [T, …]
//!   ([`const_spikes_dropout`] with inverted dropout inside the op);
//! - [`const_rate`]: a constant current […] for T steps → mean_t S_t […], never materialising
//!   [T, …] in forward or backward (backward recomputes U per neuron).
//!
//! On the CPU each form is one fused custom op (`op` over `kernel`; parallel over neurons, one
//! pass over T, a one-pass BPTT backward), taking its state and returning it by the packing
//! convention of [`crate::kernel::packing`]. On other devices, and whenever the composed path is
//! forced ([`crate::kernel::composed`]), the same recurrence runs as the per-step composition of
//! candle ops in [`reference`](mod@reference); the fused forward equals it bit for bit. [`Leaky`] is the layer.

pub(crate) mod coefs;
mod config;
pub(crate) mod kernel;
mod leaky;
mod learnable;
pub(crate) mod op;
pub mod reference;
pub(crate) mod reset;
pub mod surrogate;

pub use config::LifConfig;
pub use leaky::Leaky;
pub use learnable::{BetaForm, Learn, LearnedLif, LifParams};
pub use reset::ResetMechanism;
pub use surrogate::Surrogate;

use crate::error::{LayerError, Result};
use crate::kernel::packing;
use crate::rng::SeededRng;
use candle_core::Tensor;
use op::{Form, LifOp};

/// The state of a LIF layer between calls: the membrane U [N…] after the last step.
#[derive(Debug, Clone)]
pub struct LifState {
    /// The membrane potential, one value per neuron.
    pub mem: Tensor,
}

impl LifState {
    /// A zero membrane for neurons shaped like `x` (snnTorch's `init_leaky`).
    pub fn zeros_like(x: &Tensor) -> Result<Self> {
        Ok(LifState {
            mem: x.zeros_like()?,
        })
    }

    /// The same state without its autograd graph (to carry it into the next chunk of a
    /// truncated sequence without keeping the previous chunk's graph alive).
    pub fn detach(&self) -> Self {
        LifState {
            mem: self.mem.detach(),
        }
    }
}

/// What the rate form returns.
#[derive(Debug, Clone)]
pub struct RateOutput {
    /// The firing rate mean_t S_t […].
    pub rate: Tensor,
    /// The mean membrane mean_t U_t […], detached.
    pub mean_mem: Tensor,
}

fn check_input(x: &Tensor, what: &'static str, min_rank: usize) -> Result<()> {
    if x.rank() < min_rank {
        return Err(LayerError::Shape {
            what,
            expected: format!("rank >= {min_rank}"),
            actual: x.dims().to_vec(),
        });
    }
    if !x.dtype().is_float() {
        return Err(LayerError::Shape {
            what,
            expected: "a floating-point tensor".into(),
            actual: x.dims().to_vec(),
        });
    }
    Ok(())
}

/// One call of a form: how many steps (constant forms), the initial state, whether the final
/// state is wanted, dropout on the output spikes, and learned β/θ in place of the config's.
pub(crate) struct Call<'a> {
    pub form: Form,
    pub steps: usize,
    pub state: Option<&'a LifState>,
    pub emit_state: bool,
    pub dropout: Option<(f64, &'a mut SeededRng)>,
    pub params: Option<&'a LifParams>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(form: Form, steps: usize) -> Self {
        Call {
            form,
            steps,
            state: None,
            emit_state: false,
            dropout: None,
            params: None,
        }
    }
}

/// Runs a form on `x`: the main output and, when asked, the final state.
pub(crate) fn run(
    x: &Tensor,
    cfg: &LifConfig,
    call: Call<'_>,
) -> Result<(Tensor, Option<LifState>)> {
    let what = if call.form.constant() {
        "lif constant current"
    } else {
        "lif currents [T, …]"
    };
    check_input(x, what, usize::from(!call.form.constant()))?;
    if call.form.constant() {
        if call.steps == 0 {
            return Err(LayerError::config("spike steps", "0; expected at least 1"));
        }
    } else if x.dim(0)? == 0 {
        return Err(LayerError::Shape {
            what,
            expected: "at least one time step (T >= 1)".into(),
            actual: x.dims().to_vec(),
        });
    }
    let (steps, neurons) = call.form.split(x.dims(), call.steps);
    if let Some(s) = call.state {
        if s.mem.dims() != neurons.as_slice() || s.mem.dtype() != x.dtype() {
            return Err(LayerError::Shape {
                what: "lif state (membrane)",
                expected: format!("{neurons:?} of {:?}, like one step of the input", x.dtype()),
                actual: s.mem.dims().to_vec(),
            });
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
    let pairs = match call.params {
        Some(p) => p.check(&neurons, x.dtype())?,
        None => 0,
    };
    if !crate::kernel::fused_available(x) {
        return run_composed(x, cfg, steps, call);
    }
    let mask = match call.dropout {
        Some((p, rng)) if p > 0.0 => {
            let spikes = steps * neurons.iter().product::<usize>();
            Some(crate::fused::KeepMask::draw(rng, spikes, p))
        }
        _ => None,
    };
    let op = LifOp {
        cfg: *cfg,
        form: call.form,
        steps: call.steps,
        dropout: mask,
        slot: call.emit_state.then(packing::StateSlot::default),
    };
    // One empty tensor serves every absent operand.
    let none = packing::empty(x)?;
    let params = match call.params {
        Some(p) => p.packed(pairs)?,
        None => none.clone(),
    };
    let state = match call.state {
        Some(s) => s.mem.unsqueeze(0)?.contiguous()?,
        None => none,
    };
    let x = x.contiguous()?;
    let out = x.apply_op3(&state, &params, op.clone())?;
    if !call.emit_state {
        return Ok((out, None));
    }
    // The final membrane, from the same forward pass (see `op`).
    let mem = x.apply_op3(&state, &params, op::LifStateOp { main: op })?;
    Ok((out, Some(LifState { mem })))
}

fn run_composed(
    x: &Tensor,
    cfg: &LifConfig,
    steps: usize,
    call: Call<'_>,
) -> Result<(Tensor, Option<LifState>)> {
    let p = call.params;
    let (out, state) = match call.form {
        Form::SeqSpikes => reference::spikes_with(x, cfg, p, call.state)?,
        Form::SeqRateMem => {
            let (r, s) = reference::rate_with(x, cfg, p, call.state)?;
            (Tensor::stack(&[r.rate, r.mean_mem], 0)?, s)
        }
        Form::ConstSpikes => {
            let (spk, s) = reference::const_spikes_with(x, steps, cfg, p, call.state)?;
            match call.dropout {
                Some((p, rng)) => (crate::fused::dropout(&spk, p, rng)?, s),
                None => (spk, s),
            }
        }
        Form::ConstRate => reference::const_rate_with(x, steps, cfg, p, call.state)?,
    };
    Ok((out, call.emit_state.then_some(state)))
}

/// Splits the rate form's [2, …] into the rate and the detached mean membrane.
fn rate_parts(both: &Tensor) -> Result<RateOutput> {
    Ok(RateOutput {
        rate: both.get(0)?,
        mean_mem: both.get(1)?.detach(),
    })
}

fn with_state(r: (Tensor, Option<LifState>)) -> (Tensor, LifState) {
    let (out, state) = r;
    (out, state.expect("the final state was asked for"))
}

/// Spikes [T, …] from currents [T, …], starting from `state` (zero when `None`); returns the
/// spikes and the final state.
pub fn spikes(
    currents: &Tensor,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    spikes_with(currents, cfg, None, state)
}

/// [`spikes`] with learned β and θ (`params`, see [`LearnedLif`]) in place of the config's
/// when given; their gradients come from the same fused backward.
pub fn spikes_with(
    currents: &Tensor,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    let mut call = Call::new(Form::SeqSpikes, 0);
    call.state = state;
    call.emit_state = true;
    call.params = params;
    Ok(with_state(run(currents, cfg, call)?))
}

/// (mean_t S_t, mean_t U_t) from currents [T, …], starting from `state`; the mean membrane
/// carries no gradient. Returns them and the final state.
pub fn rate(
    currents: &Tensor,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(RateOutput, LifState)> {
    rate_with(currents, cfg, None, state)
}

/// [`rate`] with learned β and θ when given.
pub fn rate_with(
    currents: &Tensor,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(RateOutput, LifState)> {
    let mut call = Call::new(Form::SeqRateMem, 0);
    call.state = state;
    call.emit_state = true;
    call.params = params;
    let (both, st) = with_state(run(currents, cfg, call)?);
    Ok((rate_parts(&both)?, st))
}

/// Spikes [steps, …] from a constant current […] applied for `steps` steps, starting from
/// `state`; returns the spikes and the final state.
pub fn const_spikes(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    const_spikes_with(current, steps, cfg, None, state)
}

/// [`const_spikes`] with learned β and θ when given.
pub fn const_spikes_with(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    let mut call = Call::new(Form::ConstSpikes, steps);
    call.state = state;
    call.emit_state = true;
    call.params = params;
    Ok(with_state(run(current, cfg, call)?))
}

/// [`const_spikes`] followed by inverted dropout with probability `p` (masks from `rng`), as
/// one op: the spike train before dropout is never kept for backward. The final state is the
/// membrane's, which dropout does not touch.
pub fn const_spikes_dropout(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    p: f64,
    rng: &mut SeededRng,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    let mut call = Call::new(Form::ConstSpikes, steps);
    call.state = state;
    call.emit_state = true;
    call.dropout = Some((p, rng));
    Ok(with_state(run(current, cfg, call)?))
}

/// The firing rate mean_t S_t […] of a constant current […] over `steps` steps, starting from
/// `state`, without materialising [T, …] in forward or backward; returns it and the final
/// state.
pub fn const_rate(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    const_rate_with(current, steps, cfg, None, state)
}

/// [`const_rate`] with learned β and θ when given.
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    params: Option<&LifParams>,
    state: Option<&LifState>,
) -> Result<(Tensor, LifState)> {
    let mut call = Call::new(Form::ConstRate, steps);
    call.state = state;
    call.emit_state = true;
    call.params = params;
    Ok(with_state(run(current, cfg, call)?))
}

/// The stateless forms the layers use inside a model: zero initial state, no final state (so
/// the output is not split and its gradient is not re-assembled), learned β/θ when given.
pub(crate) mod stateless {
    use super::*;

    /// [`super::spikes`] from zero, spikes only.
    pub(crate) fn spikes(
        currents: &Tensor,
        cfg: &LifConfig,
        params: Option<&LifParams>,
    ) -> Result<Tensor> {
        let mut call = Call::new(Form::SeqSpikes, 0);
        call.params = params;
        Ok(run(currents, cfg, call)?.0)
    }

    /// [`super::rate`] from zero.
    pub(crate) fn rate(
        currents: &Tensor,
        cfg: &LifConfig,
        params: Option<&LifParams>,
    ) -> Result<RateOutput> {
        let mut call = Call::new(Form::SeqRateMem, 0);
        call.params = params;
        rate_parts(&run(currents, cfg, call)?.0)
    }

    /// [`super::const_spikes`] (with dropout in training) from zero.
    pub(crate) fn const_spikes(
        current: &Tensor,
        steps: usize,
        cfg: &LifConfig,
        params: Option<&LifParams>,
        dropout: Option<(f64, &mut SeededRng)>,
    ) -> Result<Tensor> {
        let mut call = Call::new(Form::ConstSpikes, steps);
        call.dropout = dropout;
        call.params = params;
        Ok(run(current, cfg, call)?.0)
    }

    /// [`super::const_rate`] from zero.
    pub(crate) fn const_rate(
        current: &Tensor,
        steps: usize,
        cfg: &LifConfig,
        params: Option<&LifParams>,
    ) -> Result<Tensor> {
        let mut call = Call::new(Form::ConstRate, steps);
        call.params = params;
        Ok(run(current, cfg, call)?.0)
    }
}
