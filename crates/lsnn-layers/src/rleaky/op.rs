//! The fused recurrent LIF custom ops and their backward, by the packing convention
//! ([`crate::kernel::packing`]): operands (currents, packed state [2, N…] = (S, U) or empty,
//! packed parameters [β…, θ… | recurrent weights]). The parameter operand starts with the
//! learned (β, θ) — none (the config's fixed values), one shared pair, or one pair per feature
//! F = the last neuron dim — then holds the recurrent weights: V (1 or F values, one-to-one) or
//! W [F, F] then b [F] (all-to-all). The main op's output is the form's (spikes [T, N…], rate
//! [N…], or rate + mean membrane [2, N…]); when the final state is asked for, the main op leaves
//! it in a [`StateSlot`] and [`RlkStateOp`], applied right after to the same operands, returns it
//! [2, N…] with its own backward. When a backward will follow, the all-to-all forward also keeps
//! every step's membrane ([`HistSlot`]), so the backward never repeats the forward's gemm calls.

use super::kernel::{self, Grads, Input, Rec, Upstream};
use super::{Connection, RLeakyConfig};
use crate::fused::KeepMask;
use crate::kernel::packing::StateSlot;
use crate::kernel::{contiguous_slice, float_kernel, Real};
use crate::lif::coefs::{features, with_coefs, Coefs, Params};
use crate::lif::kernel::reduce_parts;
use crate::lif::op::Form;
use crate::lif::surrogate::with_surrogate;
use crate::synaptic::reset::with_syn_reset;
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// Where the forward leaves the membrane of every step [T, N] for the backward (kept as long as
/// the graph that holds the op).
pub(crate) type HistSlot = Arc<Mutex<Option<CpuStorage>>>;

/// The fused forward op.
#[derive(Debug, Clone)]
pub(crate) struct RlkOp {
    pub cfg: RLeakyConfig,
    pub form: Form,
    /// Steps of the constant-current forms.
    pub steps: usize,
    /// Dropout applied to the output spikes inside the op (never to the spikes fed back), and
    /// to their gradient in backward.
    pub dropout: Option<KeepMask>,
    /// Set when the final state is wanted.
    pub slot: Option<StateSlot>,
    /// Set when a backward may follow and the op keeps its membranes: all-to-all (so its
    /// backward does not repeat the forward's gemm), every form but the constant-current rate,
    /// whose backward replays the forward per block and never materialises [T, N]. One-to-one
    /// always replays: it has no gemm to save and the replay costs less than a [T, N] history.
    pub hist: Option<HistSlot>,
    /// (β, θ) pairs at the head of the parameter operand: 0, 1 or F.
    pub pairs: usize,
}

/// The sizes of a call: steps, neurons, features per row.
struct Sizes {
    steps: usize,
    n: usize,
    f: usize,
}

impl RlkOp {
    fn sizes(&self, dims: &[usize]) -> Sizes {
        let (steps, neurons) = self.form.split(dims, self.steps);
        Sizes {
            steps,
            n: neurons.iter().product(),
            f: features(&neurons),
        }
    }

    /// Checks the parameter operand of `len` values for F = `f` features; the recurrent part's
    /// length.
    fn check_params(&self, f: usize, len: usize, what: &str) -> candle_core::Result<usize> {
        if !(self.pairs == 0 || self.pairs == 1 || self.pairs == f) {
            candle_core::bail!(
                "{what}: {} (β, θ) pairs for {f} features; expected 0 (fixed), 1 or {f}",
                self.pairs
            );
        }
        if len < 2 * self.pairs {
            candle_core::bail!(
                "{what}: {len} parameter values, fewer than the {} (β, θ) values at their head",
                2 * self.pairs
            );
        }
        let rec = len - 2 * self.pairs;
        let ok = match self.cfg.connection {
            Connection::OneToOne => rec == 1 || rec == f,
            Connection::AllToAll => rec == f * f + f,
        };
        if !ok {
            let want = match self.cfg.connection {
                Connection::OneToOne => format!("1 or {f} (V)"),
                Connection::AllToAll => format!("{} (W [{f}, {f}] and b [{f}])", f * f + f),
            };
            candle_core::bail!(
                "{what}: {rec} recurrent weights after {} (β, θ) values; expected {want}",
                2 * self.pairs
            );
        }
        Ok(rec)
    }

    fn input<'a, T: Real>(
        &self,
        x: &'a [T],
        dims: &[usize],
        state0: Option<&'a [T]>,
        rec: &'a [T],
    ) -> Input<'a, T> {
        let s = self.sizes(dims);
        let rec = match self.cfg.connection {
            Connection::OneToOne => Rec::OneToOne(rec),
            Connection::AllToAll => {
                let (w, b) = rec.split_at(s.f * s.f);
                Rec::AllToAll { w, b }
            }
        };
        Input {
            cur: x,
            constant: self.form.constant(),
            steps: s.steps,
            n: s.n,
            f: s.f,
            state0,
            wt: kernel::transposed(rec, s.f),
            rec,
        }
    }

    fn fixed<T: Real>(&self) -> Params<T> {
        Params {
            beta: T::from_f64(self.cfg.beta),
            theta: T::from_f64(self.cfg.threshold),
        }
    }

    /// (main output, final state, membrane history) of a forward.
    #[allow(clippy::type_complexity)]
    fn run<T: Real>(
        &self,
        inp: &Input<'_, T>,
        params: Option<&[T]>,
    ) -> (Vec<T>, Option<Vec<T>>, Option<Vec<T>>) {
        let main = self.form.main();
        let mut out = vec![T::zero(); main.len(inp.steps, inp.n)];
        let mut fin = self.slot.as_ref().map(|_| vec![T::zero(); 2 * inp.n]);
        let mut hist = self
            .hist
            .as_ref()
            .map(|_| vec![T::zero(); inp.steps * inp.n]);
        let fixed = self.fixed::<T>();
        with_syn_reset!(self.cfg.reset, |R| with_coefs!(params, fixed, |c| {
            kernel::forward::<T, R, _>(
                c,
                inp,
                main,
                &mut out,
                fin.as_deref_mut(),
                hist.as_deref_mut(),
            )
        }));
        if let Some(m) = &self.dropout {
            m.apply_in_place(&mut out[..inp.steps * inp.n]);
        }
        (out, fin, hist)
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
        let op = RlkBwdOp {
            fwd: self.clone(),
            of,
            state_len: ns,
        };
        // candle's ops take three operands: the state and the parameters travel together.
        let both = match ns {
            0 => params.contiguous()?,
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
        let dp = packed.narrow(0, nx + ns, np)?.reshape(params.shape())?;
        Ok((Some(dx), ds, Some(dp)))
    }
}

/// The state operand's elements: none, or (S, U) for every neuron.
fn state_slice<'a, T: Real>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
    what: &str,
) -> candle_core::Result<Option<&'a [T]>> {
    match l.shape().elem_count() {
        0 => Ok(None),
        c if c == 2 * n => Ok(Some(contiguous_slice(s, l, what)?)),
        c => candle_core::bail!("{what}: a state of {c} values for 2 × {n} (spk, mem)"),
    }
}

impl CustomOp3 for RlkOp {
    fn name(&self) -> &'static str {
        match self.form {
            Form::SeqSpikes => "rleaky-seq-spikes",
            Form::SeqRateMem => "rleaky-seq-rate-mem",
            Form::ConstSpikes => "rleaky-const-spikes",
            Form::ConstRate => "rleaky-const-rate",
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
        let name = self.name();
        let dims = l1.dims();
        let (steps, neurons) = self.form.split(dims, self.steps);
        let sz = self.sizes(dims);
        self.check_params(sz.f, l3.shape().elem_count(), name)?;
        if let Some(m) = &self.dropout {
            if !m.fits(steps * sz.n) {
                candle_core::bail!(
                    "{name}: a dropout mask that does not fit {} spikes",
                    steps * sz.n
                );
            }
        }
        let (out, fin, hist) = float_kernel!(map name, s1.dtype(), |T| {
            let both = contiguous_slice::<T>(s3, l3, name)?;
            let (params, rec) = both.split_at(2 * self.pairs);
            let inp = self.input::<T>(
                contiguous_slice(s1, l1, name)?,
                dims,
                state_slice(s2, l2, sz.n, name)?,
                rec,
            );
            let params = (!params.is_empty()).then_some(params);
            let (out, fin, hist) = self.run(&inp, params);
            (T::storage(out), fin.map(T::storage), hist.map(T::storage))
        });
        if let (Some(slot), Some(fin)) = (&self.slot, fin) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(fin);
        }
        if let (Some(slot), Some(hist)) = (&self.hist, hist) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(hist);
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

/// The final state [2, N…] (S, U) of the main op just applied to the same operands (taken from
/// its slot), with the backward of the recurrence from that state's gradient.
#[derive(Debug, Clone)]
pub(crate) struct RlkStateOp {
    pub main: RlkOp,
}

impl CustomOp3 for RlkStateOp {
    fn name(&self) -> &'static str {
        "rleaky-final-state"
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
            Some(fin) => Ok((fin, Shape::from([&[2][..], &neurons].concat()))),
            None => candle_core::bail!("rleaky-final-state: applied without its main op's forward"),
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
/// output) → [dL/dI | d(S, U)_{−1} when a state was given | dL/dβ, dL/dθ when learned | dL/dV,
/// or dL/dW and dL/db].
#[derive(Debug, Clone)]
struct RlkBwdOp {
    fwd: RlkOp,
    of: Output,
    /// Elements of the state part of operand 2 (0 or 2n); the rest is the parameters.
    state_len: usize,
}

impl RlkBwdOp {
    fn run<T: Real>(
        &self,
        inp: &Input<'_, T>,
        hist: Option<&[T]>,
        params: Option<&[T]>,
        g: &[T],
    ) -> Vec<T> {
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
        let ns = if inp.state0.is_some() { 2 * n } else { 0 };
        let mut out = vec![T::zero(); nx + ns];
        let mut parts = vec![T::zero(); if params.is_some() { 2 * n } else { 0 }];
        let mut rec_parts = vec![T::zero(); n];
        let (dcur, dstate0) = out.split_at_mut(nx);
        let grads = Grads {
            dcur,
            dstate0: inp.state0.map(|_| dstate0),
            dparams: params.map(|_| &mut parts[..]),
            drec: &mut rec_parts,
        };
        let fixed = f.fixed::<T>();
        let (pairs, dw) =
            with_syn_reset!(f.cfg.reset, |R| with_surrogate!(&f.cfg.surrogate, |s| {
                with_coefs!(params, fixed, |c| {
                    let dw =
                        kernel::backward::<T, R, _, _>(c, s, inp, hist, f.form.main(), &up, grads);
                    (Coefs::<T>::pairs(c), dw)
                })
            }));
        if params.is_some() {
            out.extend(reduce_parts(&parts, n, 2, pairs));
        }
        match inp.rec {
            Rec::OneToOne(v) => out.extend(reduce_parts(&rec_parts, n, 1, v.len())),
            Rec::AllToAll { .. } => {
                let mut dw = dw;
                dw.resize(inp.f * inp.f, T::zero());
                out.extend(dw);
                out.extend(reduce_parts(&rec_parts, n, 1, inp.f));
            }
        }
        out
    }
}

impl CustomOp3 for RlkBwdOp {
    fn name(&self) -> &'static str {
        "rleaky-bwd"
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
        let sz = self.fwd.sizes(dims);
        let want = match self.of {
            Output::Main => self.fwd.form.main().len(sz.steps, sz.n),
            Output::State => 2 * sz.n,
        };
        if l3.shape().elem_count() != want {
            candle_core::bail!(
                "rleaky-bwd: a gradient of {} values for an output of {want}",
                l3.shape().elem_count()
            );
        }
        let ns = self.state_len;
        let np = l2.shape().elem_count().saturating_sub(ns);
        let rec_len = self.fwd.check_params(sz.f, np, "rleaky-bwd")?;
        let kept = self
            .fwd
            .hist
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()));
        let kept = match &kept {
            None => None,
            Some(g) => match g.as_ref() {
                Some(h) => Some(h),
                None => candle_core::bail!("rleaky-bwd: run before its forward kept the membranes"),
            },
        };
        let out = float_kernel!("rleaky-bwd", s1.dtype(), |T| {
            let both = contiguous_slice::<T>(s2, l2, "rleaky-bwd: state and parameters")?;
            let (state, rest) = both.split_at(ns.min(both.len()));
            let state = match state.len() {
                0 => None,
                c if c == 2 * sz.n => Some(state),
                c => candle_core::bail!("rleaky-bwd: a state of {c} values for 2 × {}", sz.n),
            };
            let (params, rec) = rest.split_at(2 * self.fwd.pairs);
            let hist = kept.map(|h| h.as_slice::<T>()).transpose()?;
            if hist.is_some_and(|h| h.len() != sz.steps * sz.n) {
                candle_core::bail!(
                    "rleaky-bwd: {} kept membranes for {} steps of {}",
                    hist.map_or(0, <[T]>::len),
                    sz.steps,
                    sz.n
                );
            }
            let cur = contiguous_slice(s1, l1, "rleaky-bwd: currents")?;
            let inp = self.fwd.input::<T>(cur, dims, state, rec);
            debug_assert_eq!(rec.len(), rec_len);
            let params = (!params.is_empty()).then_some(params);
            self.run(
                &inp,
                hist,
                params,
                contiguous_slice(s3, l3, "rleaky-bwd: grad")?,
            )
        });
        let len = l1.shape().elem_count() + ns + np;
        Ok((out, Shape::from(len)))
    }
}
