//! The fused LIF custom op and its backward, by the packing convention
//! ([`crate::kernel::packing`]): operands (currents, packed state [1, N…] or empty, parameters —
//! empty: β and θ are the op's own), output the main part (spikes [T, N…], rate [N…] or
//! rate + mean membrane [2, N…]) followed, when asked, by the final membrane [N…].

use super::kernel::{self, Input, Main, Params};
use super::reset::with_reset;
use super::surrogate::with_surrogate;
use super::LifConfig;
use crate::fused::KeepMask;
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

    fn main(self) -> Main {
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
    /// Append the final membrane to the output.
    pub emit_state: bool,
    /// Dropout applied to the output spikes inside the op (so the undropped train is never
    /// kept), and to their gradient in backward.
    pub dropout: Option<KeepMask>,
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

    fn run<T: Real>(&self, x: &[T], dims: &[usize], mem0: Option<&[T]>) -> Vec<T> {
        let (steps, n) = self.sizes(dims);
        let main = self.form.main();
        let mut out = vec![T::zero(); main.len(steps, n) + if self.emit_state { n } else { 0 }];
        let inp = Input {
            cur: x,
            constant: self.form.constant(),
            steps,
            n,
            mem0,
        };
        with_reset!(self.cfg.reset, |R| kernel::forward::<T, R>(
            self.params(),
            &inp,
            main,
            &mut out
        ));
        if let Some(m) = &self.dropout {
            m.apply_in_place(&mut out[..steps * n]);
        }
        out
    }

    fn out_shape(&self, dims: &[usize]) -> Shape {
        let (steps, neurons) = self.form.split(dims, self.steps);
        let main = self.form.main_dims(steps, &neurons);
        if self.emit_state {
            Shape::from(main.iter().product::<usize>() + neurons.iter().product::<usize>())
        } else {
            Shape::from(main)
        }
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
        _s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        let (steps, n) = self.sizes(dims);
        if l3.shape().elem_count() != 0 {
            candle_core::bail!("{}: the LIF op takes no parameter operand yet", self.name());
        }
        if let Some(m) = &self.dropout {
            if !m.fits(steps * n) {
                candle_core::bail!(
                    "{}: a dropout mask that does not fit {} spikes",
                    self.name(),
                    steps * n
                );
            }
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| self.run::<T>(
            contiguous_slice(s1, l1, self.name())?,
            dims,
            state_slice(s2, l2, n, self.name())?,
        ));
        Ok((out, self.out_shape(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        state: &Tensor,
        _params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = LifBwdOp { fwd: self.clone() };
        let packed =
            x.contiguous()?
                .apply_op3_no_bwd(&state.contiguous()?, &grad.contiguous()?, &op)?;
        let nx = x.elem_count();
        if state.elem_count() == 0 {
            return Ok((Some(packed.reshape(x.shape())?), None, None));
        }
        let dx = packed.narrow(0, 0, nx)?.reshape(x.shape())?;
        let ds = packed
            .narrow(0, nx, state.elem_count())?
            .reshape(state.shape())?;
        Ok((Some(dx), Some(ds), None))
    }
}

/// The fused backward: (currents, state, upstream gradient of the whole output) →
/// [dL/dI | dL/dU_{−1} when a state was given].
#[derive(Debug, Clone)]
struct LifBwdOp {
    fwd: LifOp,
}

impl LifBwdOp {
    fn run<T: Real>(&self, x: &[T], dims: &[usize], mem0: Option<&[T]>, g: &[T]) -> Vec<T> {
        let f = &self.fwd;
        let (steps, n) = f.sizes(dims);
        let main = f.form.main();
        let masked;
        let up: &[T] = match &f.dropout {
            Some(m) => {
                let mut v = g.to_vec();
                m.apply_in_place(&mut v[..steps * n]);
                masked = v;
                &masked
            }
            None => g,
        };
        let mut out = vec![T::zero(); x.len() + if mem0.is_some() { n } else { 0 }];
        let (dcur, dmem0) = out.split_at_mut(x.len());
        let inp = Input {
            cur: x,
            constant: f.form.constant(),
            steps,
            n,
            mem0,
        };
        let dmem0 = mem0.map(|_| dmem0);
        with_reset!(f.cfg.reset, |R| with_surrogate!(&f.cfg.surrogate, |s| {
            kernel::backward::<T, R, _>(f.params(), s, &inp, main, up, dcur, dmem0)
        }));
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
        let (_, n) = self.fwd.sizes(dims);
        let want = self.fwd.out_shape(dims).elem_count();
        if l3.shape().elem_count() != want {
            candle_core::bail!(
                "lif-bwd: a gradient of {} values for an output of {want}",
                l3.shape().elem_count()
            );
        }
        let has_state = l2.shape().elem_count() != 0;
        let out = float_kernel!("lif-bwd", s1.dtype(), |T| self.run::<T>(
            contiguous_slice(s1, l1, "lif-bwd: currents")?,
            dims,
            state_slice(s2, l2, n, "lif-bwd: state")?,
            contiguous_slice(s3, l3, "lif-bwd: grad")?,
        ));
        let len = l1.shape().elem_count() + if has_state { n } else { 0 };
        Ok((out, Shape::from(len)))
    }
}
