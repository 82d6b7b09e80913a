//! The fused two-decay neuron custom ops (the current-based LIF, the alpha neuron and the
//! adaptive LIF, see
//! [`Kind`]) and their backward, by the packing convention ([`crate::kernel::packing`]): operands
//! (currents, packed state [K, N…] = (syn, U), (syn_exc, syn_inh, U) or (syn, U, b), or empty,
//! packed parameters [α…, β…, θ…] — empty: the config's fixed values; three values: one shared
//! learnable triple; 3F values: one triple per feature F = the last neuron dim). The main op's
//! output is the form's (spikes [T, N…], rate [N…], or rate + mean membrane [2, N…]); when the
//! final state is asked for, the main op leaves it in a [`StateSlot`] and [`SynStateOp`], applied
//! right after to the same operands, returns it [K, N…] with its own backward.

use super::coefs::{with_syn_coefs, Coefs, Triple};
use super::kernel::{self, Grads, Input, Upstream};
use super::kind::Kind;
use super::reset::with_syn_reset;
use super::SynapticConfig;
use crate::alif::kernel as alif_kernel;
use crate::fused::KeepMask;
use crate::kernel::packing::StateSlot;
use crate::kernel::{contiguous_slice, float_kernel, Real};
use crate::lif::coefs::features;
use crate::lif::kernel::reduce_parts;
use crate::lif::op::Form;
use crate::lif::surrogate::with_surrogate;
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};

/// The fused forward op.
#[derive(Debug, Clone)]
pub(crate) struct SynOp {
    /// Which neuron.
    pub kind: Kind,
    pub cfg: SynapticConfig,
    pub form: Form,
    /// Steps of the constant-current forms.
    pub steps: usize,
    /// Dropout applied to the output spikes inside the op, and to their gradient in backward.
    pub dropout: Option<KeepMask>,
    /// Set when the final state is wanted.
    pub slot: Option<StateSlot>,
}

/// How many triples a parameter operand of `len` values holds for neurons `neurons`: 0 (none),
/// 1 (shared), or the last neuron dim F.
pub(crate) fn triples_of(neurons: &[usize], len: usize, what: &str) -> candle_core::Result<usize> {
    let f = features(neurons);
    match len {
        0 => Ok(0),
        3 => Ok(1),
        l if l == 3 * f => Ok(f),
        l => candle_core::bail!(
            "{what}: {l} parameter values; expected 3 (a shared α, β, θ) or {} (α, β, θ per feature of {f})",
            3 * f
        ),
    }
}

impl SynOp {
    fn fixed<T: Real>(&self) -> Triple<T> {
        Triple {
            alpha: T::from_f64(self.cfg.alpha),
            beta: T::from_f64(self.cfg.beta),
            theta: T::from_f64(self.cfg.threshold),
        }
    }

    /// (steps, neurons) of an input of `dims`.
    fn sizes(&self, dims: &[usize]) -> (usize, usize) {
        let (steps, neurons) = self.form.split(dims, self.steps);
        (steps, neurons.iter().product())
    }

    fn input<'a, T: Real>(
        &self,
        x: &'a [T],
        dims: &[usize],
        state0: Option<&'a [T]>,
    ) -> Input<'a, T> {
        let (steps, n) = self.sizes(dims);
        Input {
            cur: x,
            constant: self.form.constant(),
            steps,
            n,
            state0,
        }
    }

    fn run<T: Real>(&self, inp: &Input<'_, T>, params: Option<&[T]>) -> (Vec<T>, Option<Vec<T>>) {
        let main = self.form.main();
        let mut out = vec![T::zero(); main.len(inp.steps, inp.n)];
        let states = self.kind.states();
        let mut fin = self.slot.as_ref().map(|_| vec![T::zero(); states * inp.n]);
        let fixed = self.fixed::<T>();
        let fin_out = fin.as_deref_mut();
        match self.kind {
            // The adaptive LIF has one reset of its own: no reset type to choose.
            Kind::Alif(ad) => {
                let k = alif_kernel::Consts::new(&ad);
                with_syn_coefs!(params, fixed, |c| {
                    alif_kernel::forward(c, &k, inp, main, &mut out, fin_out)
                })
            }
            Kind::Synaptic => {
                with_syn_reset!(self.cfg.reset, |R| with_syn_coefs!(params, fixed, |c| {
                    kernel::forward::<T, R, _>(c, inp, main, &mut out, fin_out)
                }))
            }
            Kind::Alpha => {
                with_syn_reset!(self.cfg.reset, |R| with_syn_coefs!(params, fixed, |c| {
                    crate::alpha::kernel::forward::<T, R, _>(c, inp, main, &mut out, fin_out)
                }))
            }
        }
        if let Some(m) = &self.dropout {
            m.apply_in_place(&mut out[..inp.steps * inp.n]);
        }
        (out, fin)
    }

    fn check(&self, l1: &Layout, l3: &Layout, name: &str) -> candle_core::Result<()> {
        let (steps, neurons) = self.form.split(l1.dims(), self.steps);
        triples_of(&neurons, l3.shape().elem_count(), name)?;
        if let Some(m) = &self.dropout {
            let n: usize = neurons.iter().product();
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
        let op = SynBwdOp {
            fwd: self.clone(),
            of,
            state_len: ns,
        };
        // candle's ops take three operands: the state and the parameters travel together.
        let both = match (ns, np) {
            (_, 0) => state.flatten_all()?.contiguous()?,
            (0, _) => params.contiguous()?,
            _ => Tensor::cat(&[state.flatten_all()?, params.flatten_all()?], 0)?,
        };
        let packed = x
            .contiguous()?
            .apply_op3_no_bwd(&both, &g.contiguous()?, &op)?;
        let nx = x.elem_count();
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

/// The state operand's elements: none, or the `states` tensors of every neuron.
fn state_slice<'a, T: Real>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
    states: usize,
    what: &str,
) -> candle_core::Result<Option<&'a [T]>> {
    match l.shape().elem_count() {
        0 => Ok(None),
        c if c == states * n => Ok(Some(contiguous_slice(s, l, what)?)),
        c => candle_core::bail!("{what}: a state of {c} values for {states} × {n}"),
    }
}

impl CustomOp3 for SynOp {
    fn name(&self) -> &'static str {
        self.kind.op_name(self.form)
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
                state_slice(s2, l2, n, self.kind.states(), self.name())?,
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

/// The final state [K, N…] of the main op just applied to the same operands (taken
/// from its slot), with the backward of the recurrence from that state's gradient.
#[derive(Debug, Clone)]
pub(crate) struct SynStateOp {
    pub main: SynOp,
}

impl CustomOp3 for SynStateOp {
    fn name(&self) -> &'static str {
        self.main.kind.state_op_name()
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
            Some(fin) => Ok((
                fin,
                Shape::from([&[self.main.kind.states()][..], &neurons].concat()),
            )),
            None => candle_core::bail!("{}: applied without its main op's forward", self.name()),
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
/// output) → [dL/dI | the initial state's gradient when a state was given | dL/dα, dL/dβ,
/// dL/dθ when parameters were].
#[derive(Debug, Clone)]
struct SynBwdOp {
    fwd: SynOp,
    of: Output,
    /// Elements of the state part of operand 2 (0 or K·n); the rest is the parameters.
    state_len: usize,
}

impl SynBwdOp {
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
        let up = Upstream {
            g_main,
            g_state: (self.of == Output::State).then_some(g),
        };
        let nx = inp.cur.len();
        let ns = if inp.state0.is_some() {
            f.kind.states() * n
        } else {
            0
        };
        let np = params.map_or(0, <[T]>::len);
        let mut out = Vec::with_capacity(nx + ns + np);
        out.resize(nx + ns, T::zero());
        let mut parts = vec![T::zero(); if params.is_some() { 3 * n } else { 0 }];
        let (dcur, dstate0) = out.split_at_mut(nx);
        let grads = Grads {
            dcur,
            dstate0: inp.state0.map(|_| dstate0),
            dparams: params.map(|_| &mut parts[..]),
        };
        let fixed = f.fixed::<T>();
        let main = f.form.main();
        let triples = match f.kind {
            Kind::Alif(ad) => {
                let k = alif_kernel::Consts::new(&ad);
                with_surrogate!(&f.cfg.surrogate, |s| with_syn_coefs!(params, fixed, |c| {
                    alif_kernel::backward(c, &k, s, inp, main, &up, grads);
                    Coefs::<T>::triples(c)
                }))
            }
            Kind::Synaptic => with_syn_reset!(f.cfg.reset, |R| with_surrogate!(
                &f.cfg.surrogate,
                |s| with_syn_coefs!(params, fixed, |c| {
                    kernel::backward::<T, R, _, _>(c, s, inp, main, &up, grads);
                    Coefs::<T>::triples(c)
                })
            )),
            Kind::Alpha => with_syn_reset!(f.cfg.reset, |R| with_surrogate!(
                &f.cfg.surrogate,
                |s| with_syn_coefs!(params, fixed, |c| {
                    crate::alpha::kernel::backward::<T, R, _, _>(c, s, inp, main, &up, grads);
                    Coefs::<T>::triples(c)
                })
            )),
        };
        if params.is_some() {
            out.extend(reduce_parts(&parts, n, 3, triples));
        }
        out
    }
}

impl CustomOp3 for SynBwdOp {
    fn name(&self) -> &'static str {
        self.fwd.kind.bwd_name()
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
        let (name, k) = (self.name(), self.fwd.kind.states());
        let want = match self.of {
            Output::Main => self.fwd.form.main().len(steps, n),
            Output::State => k * n,
        };
        if l3.shape().elem_count() != want {
            candle_core::bail!(
                "{name}: a gradient of {} values for an output of {want}",
                l3.shape().elem_count()
            );
        }
        let ns = self.state_len;
        let np = l2.shape().elem_count().saturating_sub(ns);
        let (_, neurons) = self.fwd.form.split(dims, self.fwd.steps);
        triples_of(&neurons, np, name)?;
        let out = float_kernel!(name, s1.dtype(), |T| {
            let both = contiguous_slice::<T>(s2, l2, self.fwd.kind.bwd_operand(1))?;
            let (state, params) = both.split_at(ns.min(both.len()));
            let state = match state.len() {
                0 => None,
                c if c == k * n => Some(state),
                c => candle_core::bail!("{name}: a state of {c} values for {k} × {n}"),
            };
            let cur = contiguous_slice(s1, l1, self.fwd.kind.bwd_operand(0))?;
            let inp = self.fwd.input::<T>(cur, dims, state);
            let params = (!params.is_empty()).then_some(params);
            let grad = contiguous_slice(s3, l3, self.fwd.kind.bwd_operand(2))?;
            self.run(&inp, params, grad)
        });
        let len = l1.shape().elem_count() + ns + np;
        Ok((out, Shape::from(len)))
    }
}
