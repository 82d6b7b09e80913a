//! Recurrent leaky integrate-and-fire neurons (design §2.11, snnTorch `RLeaky`): the spikes of
//! step t−1 come back as a recurrent current, one-to-one (a weight per neuron, V ⊙ S) or
//! all-to-all over the last dim (S·Wᵀ + b, `nn.Linear(F, F)`).
//!
//! ```text
//! r_t = H(U_{t−1} − θ)                       reset from the previous step, no gradient
//! m_t = β·U_{t−1} + I_t + rec(S_{t−1})
//! subtract: U_t = m_t − r_t·θ     zero: U_t = m_t·(1 − r_t)     none: U_t = m_t
//! S_t = H(U_t − θ)
//! ```
//!
//! The state is the pair (S, U), zero or a given [`RLeakyState`]; every form returns the final
//! one, so a sequence cut into chunks, the state carried, equals one call (snnTorch's
//! `spk, mem = lif(cur, spk, mem)`). Backward uses the config's [`crate::lif::Surrogate`] and
//! reaches the currents, the initial state, the recurrent weights and learned β, θ.
//!
//! The forms are those of [`crate::lif`]: [`spikes_with`], [`rate_with`] (rate and detached mean
//! membrane), [`const_spikes_with`] (with [`const_spikes_dropout`]) and [`const_rate_with`]. On
//! the CPU each is one fused custom op ([`op`](self) over a one-pass kernel, blocks of rows in
//! parallel, one gemm per step for all-to-all) taking its state [2, N…] and parameters by the
//! packing convention of [`crate::kernel::packing`]; elsewhere, and whenever the composed path is
//! forced, the per-step composition in [`reference`](mod@reference) runs. [`RLeaky`] is the layer.

mod config;
mod kernel;
mod layer;
mod op;
pub mod reference;

pub use config::{Connection, RLeakyConfig};
pub use layer::RLeaky;

use crate::error::{LayerError, Result};
use crate::kernel::packing;
use crate::lif::coefs::features;
use crate::lif::op::Form;
use crate::lif::{LifParams, RateOutput};
use crate::rng::SeededRng;
use candle_core::Tensor;
use op::{RlkOp, RlkStateOp};

/// The state of a recurrent LIF layer between calls: the spikes and the membrane after the last
/// step, each [N…].
#[derive(Debug, Clone)]
pub struct RLeakyState {
    /// The last step's spikes (fed back at the next step).
    pub spk: Tensor,
    /// The membrane potential.
    pub mem: Tensor,
}

impl RLeakyState {
    /// A zero state for neurons shaped like `x` (snnTorch's `reset_mem`).
    pub fn zeros_like(x: &Tensor) -> Result<Self> {
        Ok(RLeakyState {
            spk: x.zeros_like()?,
            mem: x.zeros_like()?,
        })
    }

    /// The same state without its autograd graph (to carry it into the next chunk of a
    /// truncated sequence without keeping the previous chunk's graph alive).
    pub fn detach(&self) -> Self {
        RLeakyState {
            spk: self.spk.detach(),
            mem: self.mem.detach(),
        }
    }
}

/// The recurrent weights of a call, over the last neuron dim F.
#[derive(Debug, Clone)]
pub enum Recurrent {
    /// One-to-one: `v` is `[1]` (shared) or `[F]`; rec = S ⊙ V.
    OneToOne {
        /// V.
        v: Tensor,
    },
    /// All-to-all: `weight` `[F, F]` (output feature, input feature, as `nn.Linear`) and an
    /// optional `bias` `[F]`; rec = S·Wᵀ + b.
    AllToAll {
        /// W.
        weight: Tensor,
        /// b.
        bias: Option<Tensor>,
    },
}

impl Recurrent {
    /// The connection these weights make.
    pub fn connection(&self) -> Connection {
        match self {
            Recurrent::OneToOne { .. } => Connection::OneToOne,
            Recurrent::AllToAll { .. } => Connection::AllToAll,
        }
    }

    /// Checks the shapes and dtypes for F = `f` features of `like`'s dtype.
    fn check(&self, f: usize, like: &Tensor) -> Result<()> {
        let bad = |what: &'static str, expected: String, t: &Tensor| {
            Err(LayerError::Shape {
                what,
                expected,
                actual: t.dims().to_vec(),
            })
        };
        let dt = like.dtype();
        match self {
            Recurrent::OneToOne { v } => {
                let n = v.elem_count();
                if v.rank() != 1 || !(n == 1 || n == f) || v.dtype() != dt {
                    return bad(
                        "rleaky recurrent V",
                        format!("[1] or [{f}] of {dt:?} (shared, or one per feature)"),
                        v,
                    );
                }
            }
            Recurrent::AllToAll { weight, bias } => {
                if weight.dims() != [f, f] || weight.dtype() != dt {
                    return bad(
                        "rleaky recurrent weight",
                        format!("[{f}, {f}] of {dt:?}"),
                        weight,
                    );
                }
                if let Some(b) = bias {
                    if b.dims() != [f] || b.dtype() != dt {
                        return bad("rleaky recurrent bias", format!("[{f}] of {dt:?}"), b);
                    }
                }
            }
        }
        Ok(())
    }

    /// The weights as the tail of the op's parameter operand.
    fn packed(&self) -> Result<Vec<Tensor>> {
        Ok(match self {
            Recurrent::OneToOne { v } => vec![v.clone()],
            Recurrent::AllToAll { weight, bias } => {
                let f = weight.dim(0)?;
                let b = match bias {
                    Some(b) => b.clone(),
                    None => Tensor::zeros(f, weight.dtype(), weight.device())?,
                };
                vec![weight.flatten_all()?, b]
            }
        })
    }
}

/// One call of a form.
struct Call<'a> {
    form: Form,
    steps: usize,
    rec: &'a Recurrent,
    params: Option<&'a LifParams>,
    state: Option<&'a RLeakyState>,
    emit_state: bool,
    dropout: Option<(f64, &'a mut SeededRng)>,
}

impl<'a> Call<'a> {
    fn new(form: Form, steps: usize, rec: &'a Recurrent, params: Option<&'a LifParams>) -> Self {
        Call {
            form,
            steps,
            rec,
            params,
            state: None,
            emit_state: false,
            dropout: None,
        }
    }

    fn with_state(mut self, state: Option<&'a RLeakyState>) -> Self {
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

/// Checks the input, the state, the recurrent weights and dropout of a call; the neuron dims.
fn check(x: &Tensor, cfg: &RLeakyConfig, call: &Call<'_>) -> Result<Vec<usize>> {
    cfg.validate()?;
    let what = if call.form.constant() {
        "rleaky constant current"
    } else {
        "rleaky currents [T, …]"
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
    if call.rec.connection() != cfg.connection {
        return Err(LayerError::config(
            "connection",
            format!(
                "the config says {:?} but the weights given are {:?}; expected weights of the config's connection",
                cfg.connection,
                call.rec.connection()
            ),
        ));
    }
    let (_, neurons) = call.form.split(x.dims(), call.steps);
    call.rec.check(features(&neurons), x)?;
    if let Some(s) = call.state {
        for (t, name) in [
            (&s.spk, "rleaky state (spk)"),
            (&s.mem, "rleaky state (mem)"),
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
fn run(x: &Tensor, cfg: &RLeakyConfig, call: Call<'_>) -> Result<(Tensor, Option<RLeakyState>)> {
    let neurons = check(x, cfg, &call)?;
    let pairs = match call.params {
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
    let mut parts = match call.params {
        Some(p) => vec![p.packed(pairs)?],
        None => Vec::new(),
    };
    parts.extend(call.rec.packed()?);
    let params = packing::pack(&parts.iter().collect::<Vec<_>>())?;
    let state = match call.state {
        Some(s) => Tensor::stack(&[&s.spk, &s.mem], 0)?.contiguous()?,
        None => packing::empty(x)?,
    };
    let x = x.contiguous()?;
    // The membranes are kept for a backward only when one can follow, by the all-to-all op
    // (whose backward would otherwise repeat the forward's gemm), and never by the
    // constant-current rate (its backward replays the forward per block and never materialises
    // [T, N]).
    let tracked = x.track_op() || state.track_op() || params.track_op();
    let keep = tracked && call.form != Form::ConstRate && cfg.connection == Connection::AllToAll;
    let op = RlkOp {
        cfg: *cfg,
        form: call.form,
        steps: call.steps,
        dropout: mask,
        slot: call.emit_state.then(packing::StateSlot::default),
        hist: keep.then(op::HistSlot::default),
        pairs,
    };
    let out = x.apply_op3(&state, &params, op.clone())?;
    if !call.emit_state {
        return Ok((out, None));
    }
    let fin = x.apply_op3(&state, &params, RlkStateOp { main: op })?;
    let st = RLeakyState {
        spk: fin.get(0)?,
        mem: fin.get(1)?,
    };
    Ok((out, Some(st)))
}

fn run_composed(
    x: &Tensor,
    cfg: &RLeakyConfig,
    call: Call<'_>,
) -> Result<(Tensor, Option<RLeakyState>)> {
    let (rec, p, st) = (call.rec, call.params, call.state);
    let (out, state) = match call.form {
        Form::SeqSpikes => reference::spikes_with(x, cfg, rec, p, st)?,
        Form::SeqRateMem => {
            let (r, s) = reference::rate_with(x, cfg, rec, p, st)?;
            (Tensor::stack(&[r.rate, r.mean_mem], 0)?, s)
        }
        Form::ConstSpikes => {
            let (spk, s) = reference::const_spikes_with(x, call.steps, cfg, rec, p, st)?;
            match call.dropout {
                Some((q, rng)) => (crate::fused::dropout(&spk, q, rng)?, s),
                None => (spk, s),
            }
        }
        Form::ConstRate => reference::const_rate_with(x, call.steps, cfg, rec, p, st)?,
    };
    Ok((out, call.emit_state.then_some(state)))
}

/// The output and the final state of a call that asked for it.
fn with_state(r: (Tensor, Option<RLeakyState>)) -> Result<(Tensor, RLeakyState)> {
    match r {
        (out, Some(st)) => Ok((out, st)),
        (_, None) => Err(LayerError::config(
            "rleaky state",
            "the final state was asked for but not returned",
        )),
    }
}

/// Spikes [T, …] from currents [T, …] with recurrent weights `rec`, starting from `state` (zero
/// when `None`), with learned β and θ (`params`) in place of the config's when given; returns
/// the spikes and the final state.
pub fn spikes_with(
    currents: &Tensor,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let call = Call::new(Form::SeqSpikes, 0, rec, params).with_state(state);
    with_state(run(currents, cfg, call)?)
}

/// (mean_t S_t, mean_t U_t) from currents [T, …], starting from `state`; the mean membrane
/// carries no gradient. Returns them and the final state.
pub fn rate_with(
    currents: &Tensor,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(RateOutput, RLeakyState)> {
    let call = Call::new(Form::SeqRateMem, 0, rec, params).with_state(state);
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
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let call = Call::new(Form::ConstSpikes, steps, rec, params).with_state(state);
    with_state(run(current, cfg, call)?)
}

/// [`const_spikes_with`] followed by inverted dropout with probability `p` (masks from `rng`)
/// on the output (the spikes fed back are never dropped), as one op.
#[allow(clippy::too_many_arguments)]
pub fn const_spikes_dropout(
    current: &Tensor,
    steps: usize,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    p: f64,
    rng: &mut SeededRng,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let mut call = Call::new(Form::ConstSpikes, steps, rec, params).with_state(state);
    call.dropout = Some((p, rng));
    with_state(run(current, cfg, call)?)
}

/// The firing rate mean_t S_t […] of a constant current […] over `steps` steps, starting from
/// `state`, without materialising [T, …] in forward or backward (the backward replays the
/// forward per block of rows); returns it and the final state.
pub fn const_rate_with(
    current: &Tensor,
    steps: usize,
    cfg: &RLeakyConfig,
    rec: &Recurrent,
    params: Option<&LifParams>,
    state: Option<&RLeakyState>,
) -> Result<(Tensor, RLeakyState)> {
    let call = Call::new(Form::ConstRate, steps, rec, params).with_state(state);
    with_state(run(current, cfg, call)?)
}

/// The stateless forms a model uses: zero initial state, no final state.
pub(crate) mod stateless {
    use super::*;

    /// [`super::spikes_with`] from zero, spikes only.
    pub(crate) fn spikes(
        currents: &Tensor,
        cfg: &RLeakyConfig,
        rec: &Recurrent,
        params: Option<&LifParams>,
    ) -> Result<Tensor> {
        Ok(run(currents, cfg, Call::new(Form::SeqSpikes, 0, rec, params))?.0)
    }

    /// [`super::rate_with`] from zero.
    pub(crate) fn rate(
        currents: &Tensor,
        cfg: &RLeakyConfig,
        rec: &Recurrent,
        params: Option<&LifParams>,
    ) -> Result<RateOutput> {
        let both = run(currents, cfg, Call::new(Form::SeqRateMem, 0, rec, params))?.0;
        Ok(RateOutput {
            rate: both.get(0)?,
            mean_mem: both.get(1)?.detach(),
        })
    }

    /// [`super::const_spikes_with`] (with dropout in training) from zero.
    pub(crate) fn const_spikes(
        current: &Tensor,
        steps: usize,
        cfg: &RLeakyConfig,
        rec: &Recurrent,
        params: Option<&LifParams>,
        dropout: Option<(f64, &mut SeededRng)>,
    ) -> Result<Tensor> {
        let mut call = Call::new(Form::ConstSpikes, steps, rec, params);
        call.dropout = dropout;
        Ok(run(current, cfg, call)?.0)
    }

    /// [`super::const_rate_with`] from zero.
    pub(crate) fn const_rate(
        current: &Tensor,
        steps: usize,
        cfg: &RLeakyConfig,
        rec: &Recurrent,
        params: Option<&LifParams>,
    ) -> Result<Tensor> {
        Ok(run(current, cfg, Call::new(Form::ConstRate, steps, rec, params))?.0)
    }
}
