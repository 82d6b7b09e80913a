//! The fused LIF custom ops and their backward, by the packing convention
//! ([`crate::kernel::packing`]): operands (currents, packed state [1, N…] or empty, packed
//! parameters [β…, θ…] — empty: β and θ are the config's fixed values; two values: one learnable
//! pair shared by every neuron; 2F values: one pair per feature F = the last neuron dim). The main op's output is the form's (spikes [T, N…], rate
//! [N…] or rate + mean membrane [2, N…]); when the final membrane is asked for, the main op
//! leaves it in a [`StateSlot`] during its forward pass and [`LifStateOp`] — applied right after
//! to the same operands — returns it as its own output with its own backward.

use super::coefs::{with_coefs, Params};
use super::kernel::{self, Grads, Input, Main};
use super::reset::with_reset;
use super::surrogate::with_surrogate;
use super::LifConfig;
use crate::fused::KeepMask;
use crate::kernel::packing::StateSlot;
use crate::kernel::{contiguous_slice, float_kernel, Real};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};

/// Which form an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// Currents [T, …] → spikes [T, …].
    SeqSpikes,
    /// Currents [T, …] → [2, …]: the rate, then the mean membrane (no gradient).
    SeqRateMem,
    /// A constant current […] → spikes [steps, …].
    ConstSpikes,
    /// A constant current […] → the rate […], never materialising [steps, …].
    ConstRate,
}

impl Form {
    pub(crate) fn constant(self) -> bool {
        matches!(self, Form::ConstSpikes | Form::ConstRate)
    }

    pub(crate) fn main(self) -> Main {
        match self {
            Form::SeqSpikes | Form::ConstSpikes => Main::Spikes,
            Form::SeqRateMem => Main::RateMem,
            Form::ConstRate => Main::Rate,
        }
    }

    /// (steps, neuron dims) of an input of `dims` (`steps` for the constant forms).
    pub(crate) fn split(self, dims: &[usize], steps: usize) -> (usize, Vec<usize>) {
        if self.constant() {
            (steps, dims.to_vec())
        } else {
            (dims[0], dims[1..].to_vec())
        }
    }

    /// The main output's dims for `steps` steps of neurons `neurons`.
    pub(crate) fn main_dims(self, steps: usize, neurons: &[usize]) -> Vec<usize> {
        match self {
            Form::SeqSpikes | Form::ConstSpikes => [&[steps][..], neurons].concat(),
            Form::SeqRateMem => [&[2][..], neurons].concat(),
            Form::ConstRate => neurons.to_vec(),
        }
    }
}

/// The fused forward op.
#[derive(Debug, Clone)]
pub(crate) struct LifOp {
    pub cfg: LifConfig,
    pub form: Form,
    /// Steps of the constant-current forms.
    pub steps: usize,
    /// Dropout applied to the output spikes inside the op (so the undropped train is never
    /// kept), and to their gradient in backward.
    pub dropout: Option<KeepMask>,
    /// Set when the final membrane is wanted.
    pub slot: Option<StateSlot>,
}

impl LifOp {
    fn params<T: Real>(&self) -> Params<T> {
        Params {
            beta: T::from_f64(self.cfg.beta),
            theta: T::from_f64(self.cfg.threshold),
        }
    }

    fn sizes(&self, dims: &[usize]) -> (usize, usize) {
        let (steps, neurons) = self.form.split(dims, self.steps);
        (steps, neurons.iter().product())
    }

    fn input<'a, T: Real>(
        &self,
        x: &'a [T],
        dims: &[usize],
        mem0: Option<&'a [T]>,
    ) -> Input<'a, T> {
        let (steps, n) = self.sizes(dims);
        Input {
            cur: x,
            constant: self.form.constant(),
            steps,
            n,
            mem0,
        }
    }

    /// The main output, and the final membrane when a slot waits for it; `params` the packed
    /// learnable parameters, if any.
    fn run<T: Real>(&self, inp: &Input<'_, T>, params: Option<&[T]>) -> (Vec<T>, Option<Vec<T>>) {
        let main = self.form.main();
        let mut out = vec![T::zero(); main.len(inp.steps, inp.n)];
        let mut fin = self.slot.as_ref().map(|_| vec![T::zero(); inp.n]);
        let fixed = self.params::<T>();
        with_reset!(self.cfg.reset, |R| with_coefs!(params, fixed, |c| {
            kernel::forward::<T, R, _>(c, inp, main, &mut out, fin.as_deref_mut())
        }));
        if let Some(m) = &self.dropout {
            m.apply_in_place(&mut out[..inp.steps * inp.n]);
        }
        (out, fin)
    }

    fn check(&self, l1: &Layout, l3: &Layout, name: &str) -> candle_core::Result<()> {
        let (steps, n) = self.sizes(l1.dims());
        pairs_of(
            self.form,
            l1.dims(),
            self.steps,
            l3.shape().elem_count(),
            name,
        )?;
        if let Some(m) = &self.dropout {
            if !m.fits(steps * n) {
                candle_core::bail!(
                    "{name}: a dropout mask that does not fit {} spikes",
                    steps * n
                );
            }
        }
        Ok(())
    }

    /// Backward from the gradient `g` of one of the two outputs.
    fn backward(
        &self,
        x: &Tensor,
        state: &Tensor,
        params: &Tensor,
        g: &Tensor,
        of: Output,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (ns, np) = (state.elem_count(), params.elem_count());
        let op = LifBwdOp {
            fwd: self.clone(),
            of,
            state_len: ns,
        };
        // candle's ops take three operands: the state and the parameters travel together.
        let both = match (ns, np) {
            (_, 0) => state.contiguous()?,
            (0, _) => params.contiguous()?,
            _ => Tensor::cat(&[state.flatten_all()?, params.flatten_all()?], 0)?,
        };
        let packed = x
            .contiguous()?
            .apply_op3_no_bwd(&both, &g.contiguous()?, &op)?;
        let nx = x.elem_count();
        if ns == 0 && np == 0 {
            return Ok((Some(packed.reshape(x.shape())?), None, None));
        }
        let dx = packed.narrow(0, 0, nx)?.reshape(x.shape())?;
        let ds = match ns {
            0 => None,
            _ => Some(packed.narrow(0, nx, ns)?.reshape(state.shape())?),
        };
        let dp = match np {
            0 => None,
            _ => Some(packed.narrow(0, nx + ns, np)?.reshape(params.shape())?),
        };
        Ok((Some(dx), ds, dp))
    }
}

/// How many (β, θ) pairs a parameter operand of `len` values holds for an input of `dims`:
/// 0 (none), 1 (shared), or the last neuron dim F.
pub(crate) fn pairs_of(
    form: Form,
    dims: &[usize],
    steps: usize,
    len: usize,
    what: &str,
) -> candle_core::Result<usize> {
    let (_, neurons) = form.split(dims, steps);
    let f = super::coefs::features(&neurons);
    match len {
        0 => Ok(0),
        2 => Ok(1),
        l if l == 2 * f => Ok(f),
        l => candle_core::bail!(
            "{what}: {l} parameter values; expected 2 (a shared β, θ) or {} (β, θ per feature of {f})",
            2 * f
        ),
    }
}

/// The state operand's elements: none, or one membrane per neuron.
fn state_slice<'a, T: Real>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
    what: &str,
) -> candle_core::Result<Option<&'a [T]>> {
    match l.shape().elem_count() {
        0 => Ok(None),
        c if c == n => Ok(Some(contiguous_slice(s, l, what)?)),
        c => candle_core::bail!("{what}: a state of {c} values for {n} neurons"),
    }
}

impl CustomOp3 for LifOp {
    fn name(&self) -> &'static str {
        match self.form {
            Form::SeqSpikes => "lif-seq-spikes",
            Form::SeqRateMem => "lif-seq-rate-mem",
            Form::ConstSpikes => "lif-const-spikes",
            Form::ConstRate => "lif-const-rate",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.check(l1, l3, self.name())?;
        let dims = l1.dims();
        let (steps, neurons) = self.form.split(dims, self.steps);
        let n = neurons.iter().product();
        let (out, fin) = float_kernel!(map self.name(), s1.dtype(), |T| {
            let inp = self.input::<T>(
                contiguous_slice(s1, l1, self.name())?,
                dims,
                state_slice(s2, l2, n, self.name())?,
            );
            let params = match l3.shape().elem_count() {
                0 => None,
                _ => Some(contiguous_slice::<T>(s3, l3, self.name())?),
            };
            let (out, fin) = self.run(&inp, params);
            (T::storage(out), fin.map(T::storage))
        });
        if let (Some(slot), Some(fin)) = (&self.slot, fin) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(fin);
        }
        Ok((out, Shape::from(self.form.main_dims(steps, &neurons))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        state: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, state, params, grad, Output::Main)
    }
}

/// The final membrane [N…] of the main op just applied to the same operands (taken from its
/// slot), with the backward of the recurrence from that membrane's gradient.
#[derive(Debug, Clone)]
pub(crate) struct LifStateOp {
    pub main: LifOp,
}

impl CustomOp3 for LifStateOp {
    fn name(&self) -> &'static str {
        "lif-final-state"
    }

    fn cpu_fwd(
        &self,
        _s1: &CpuStorage,
        l1: &Layout,
        _s2: &CpuStorage,
        _l2: &Layout,
        _s3: &CpuStorage,
        _l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (_, neurons) = self.main.form.split(l1.dims(), self.main.steps);
        let taken = self
            .main
            .slot
            .as_ref()
            .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take());
        match taken {
            Some(fin) => Ok((fin, Shape::from(neurons))),
            None => candle_core::bail!("lif-final-state: applied without its main op's forward"),
        }
    }

    fn bwd(
        &self,
        x: &Tensor,
        state: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.main.backward(x, state, params, grad, Output::State)
    }
}

/// Which output a backward starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Main,
    State,
}

/// The fused backward: (currents, [state | parameters] as given to the forward, gradient of one
/// output) → [dL/dI | dL/dU_{−1} when a state was given | dL/dβ, dL/dθ when parameters were].
#[derive(Debug, Clone)]
struct LifBwdOp {
    fwd: LifOp,
    of: Output,
    /// Elements of the state part of operand 2 (0 or n); the rest is the parameters.
    state_len: usize,
}

impl LifBwdOp {
    fn run<T: Real>(&self, inp: &Input<'_, T>, params: Option<&[T]>, g: &[T]) -> Vec<T> {
        let f = &self.fwd;
        let (steps, n) = (inp.steps, inp.n);
        let masked;
        let g_main = match (self.of, &f.dropout) {
            (Output::State, _) => None,
            (Output::Main, Some(m)) => {
                let mut v = g.to_vec();
                m.apply_in_place(&mut v[..steps * n]);
                masked = v;
                Some(&masked[..])
            }
            (Output::Main, None) => Some(g),
        };
        let g_state = (self.of == Output::State).then_some(g);
        let nx = inp.cur.len();
        let ns = if inp.mem0.is_some() { n } else { 0 };
        // Room for the parameter gradients too, so that appending them does not copy dL/dI.
        let np = params.map_or(0, <[T]>::len);
        let mut out = Vec::with_capacity(nx + ns + np);
        out.resize(nx + ns, T::zero());
        let mut parts = vec![T::zero(); if params.is_some() { 2 * n } else { 0 }];
        let (dcur, dmem0) = out.split_at_mut(nx);
        let grads = Grads {
            dcur,
            dmem0: inp.mem0.map(|_| dmem0),
            dparams: params.map(|_| &mut parts[..]),
        };
        let fixed = f.params::<T>();
        let pairs = with_reset!(f.cfg.reset, |R| with_surrogate!(&f.cfg.surrogate, |s| {
            with_coefs!(params, fixed, |c| {
                kernel::backward::<T, R, _, _>(c, s, inp, f.form.main(), g_main, g_state, grads);
                super::coefs::Coefs::<T>::pairs(c)
            })
        }));
        if params.is_some() {
            out.extend(kernel::reduce_parts(&parts, n, 2, pairs));
        }
        out
    }
}

impl CustomOp3 for LifBwdOp {
    fn name(&self) -> &'static str {
        "lif-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        let (steps, n) = self.fwd.sizes(dims);
        let want = match self.of {
            Output::Main => self.fwd.form.main().len(steps, n),
            Output::State => n,
        };
        if l3.shape().elem_count() != want {
            candle_core::bail!(
                "lif-bwd: a gradient of {} values for an output of {want}",
                l3.shape().elem_count()
            );
        }
        let ns = self.state_len;
        let np = l2.shape().elem_count().saturating_sub(ns);
        pairs_of(self.fwd.form, dims, self.fwd.steps, np, "lif-bwd")?;
        let out = float_kernel!("lif-bwd", s1.dtype(), |T| {
            let both = contiguous_slice::<T>(s2, l2, "lif-bwd: state and parameters")?;
            let (state, params) = both.split_at(ns.min(both.len()));
            let state = match state.len() {
                0 => None,
                c if c == n => Some(state),
                c => candle_core::bail!("lif-bwd: a state of {c} values for {n} neurons"),
            };
            let inp =
                self.fwd
                    .input::<T>(contiguous_slice(s1, l1, "lif-bwd: currents")?, dims, state);
            let params = (!params.is_empty()).then_some(params);
            self.run(&inp, params, contiguous_slice(s3, l3, "lif-bwd: grad")?)
        });
        let len = l1.shape().elem_count() + ns + np;
        Ok((out, Shape::from(len)))
    }
}
