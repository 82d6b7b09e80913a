//! Leaky integrate-and-fire neurons with surrogate gradients (SPEC §3.1, snnTorch `Leaky`).
//!
//! ```text
//! r_t = H(U_{t−1} − θ)                       reset from the previous step, no gradient
//! subtract: U_t = β·U_{t−1} + I_t − r_t·θ
//! zero:     U_t = β·(1 − r_t)·U_{t−1} + I_t
//! none:     U_t = β·U_{t−1} + I_t
//! S_t = H(U_t − θ)                           H(x) = 1 if x > 0 else 0, U_{−1} = 0
//! ```
//!
//! Backward uses a surrogate for dS/dU (`fast_sigmoid(k)`: 1/(k|x|+1)², `atan(α)`:
//! (α/2)/(1+(π/2·α·x)²)) and back-propagates through time with the reset detached:
//! dL/dU_t = dL/dS_t·σ'(U_t − θ) + β·dL/dU_{t+1} (times 1 − r_{t+1} for `zero`), dL/dI_t = dL/dU_t.
//!
//! Forms (time is the leading axis, everything after it is "neurons"):
//! - [`lif_spikes`]: currents [T, …] → spikes [T, …];
//! - [`lif_rate_and_mean_mem`]: currents [T, …] → (mean_t S_t, mean_t U_t detached), one pass;
//! - [`lif_const_spikes`]: a constant current […] for T steps → spikes [T, …];
//! - [`lif_const_rate`]: a constant current […] for T steps → mean_t S_t […], never materialising
//!   [T, …] in forward or backward (backward recomputes U per neuron).
//!
//! On the CPU each form is one fused custom op (parallel over neurons, one pass over T, a one-pass
//! BPTT backward). On other devices, and in [`reference`], the same recurrence is a per-step
//! composition of candle ops; the fused forward equals it bit for bit.

use crate::error::{LayerError, Result};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor,
    WithDType,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How the membrane is reset after a spike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResetMechanism {
    /// Subtract the threshold (snnTorch's default).
    #[default]
    Subtract,
    /// Set the membrane to zero.
    Zero,
    /// No reset.
    None,
}

/// The surrogate used for dS/dU in backward.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Surrogate {
    /// 1 / (k·|x| + 1)², snnTorch `fast_sigmoid(slope=k)`.
    FastSigmoid {
        /// The slope k (default 25).
        slope: f64,
    },
    /// (α/2) / (1 + (π/2·α·x)²), snnTorch `atan(alpha=α)`.
    Atan {
        /// The sharpness α (default 2).
        alpha: f64,
    },
}

impl Default for Surrogate {
    fn default() -> Self {
        Surrogate::FastSigmoid { slope: 25.0 }
    }
}

impl Surrogate {
    /// σ'(x) in f64.
    pub fn derivative(&self, x: f64) -> f64 {
        match *self {
            Surrogate::FastSigmoid { slope } => {
                let d = slope * x.abs() + 1.0;
                1.0 / (d * d)
            }
            Surrogate::Atan { alpha } => {
                let y = std::f64::consts::FRAC_PI_2 * alpha * x;
                (alpha / 2.0) / (1.0 + y * y)
            }
        }
    }
}

/// Parameters of a LIF layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LifConfig {
    /// Membrane decay β ∈ (0, 1] (default 0.95).
    pub beta: f64,
    /// Firing threshold θ > 0 (default 1.0).
    pub threshold: f64,
    /// Reset mechanism (default subtract).
    pub reset: ResetMechanism,
    /// Surrogate gradient (default fast_sigmoid(25)).
    pub surrogate: Surrogate,
}

impl Default for LifConfig {
    fn default() -> Self {
        LifConfig {
            beta: 0.95,
            threshold: 1.0,
            reset: ResetMechanism::Subtract,
            surrogate: Surrogate::default(),
        }
    }
}

impl LifConfig {
    /// Checks the ranges: β ∈ (0, 1], θ finite and > 0, surrogate parameter finite and > 0.
    pub fn validate(&self) -> Result<()> {
        if !(self.beta > 0.0 && self.beta <= 1.0) {
            return Err(LayerError::config(
                "beta",
                format!("{} is outside (0, 1]", self.beta),
            ));
        }
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(LayerError::config(
                "spike_threshold",
                format!("{} is not a positive finite number", self.threshold),
            ));
        }
        let s = match self.surrogate {
            Surrogate::FastSigmoid { slope } => slope,
            Surrogate::Atan { alpha } => alpha,
        };
        if !(s.is_finite() && s > 0.0) {
            return Err(LayerError::config(
                "surrogate",
                format!("parameter {s} is not a positive finite number"),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar kernels, generic over f32/f64. The arithmetic is written in exactly the order of the
// reference composition so that forward results agree bit for bit. The reset mechanism and the
// surrogate are const generics so that every inner loop is branch-free and vectorisable.
// ---------------------------------------------------------------------------------------------

const SUBTRACT: u8 = 0;
const ZERO: u8 = 1;
const NONE: u8 = 2;
const FAST_SIGMOID: u8 = 0;
const ATAN: u8 = 1;

#[derive(Clone, Copy)]
struct K<T> {
    beta: T,
    theta: T,
    /// fast_sigmoid: k; atan: π/2·α.
    s1: T,
    /// atan: α/2.
    s2: T,
}

impl<T: WithDType> K<T> {
    fn new(c: &LifConfig) -> Self {
        let (s1, s2) = match c.surrogate {
            Surrogate::FastSigmoid { slope } => (slope, 0.0),
            Surrogate::Atan { alpha } => (std::f64::consts::FRAC_PI_2 * alpha, alpha / 2.0),
        };
        K {
            beta: T::from_f64(c.beta),
            theta: T::from_f64(c.threshold),
            s1: T::from_f64(s1),
            s2: T::from_f64(s2),
        }
    }

    /// 1 when U − θ > 0, else 0.
    #[inline(always)]
    fn h(&self, u: T) -> T {
        if u - self.theta > T::zero() {
            T::one()
        } else {
            T::zero()
        }
    }

    /// U_t from U_{t−1} and I_t.
    #[inline(always)]
    fn step<const R: u8>(&self, u: T, i: T) -> T {
        let r = self.h(u);
        match R {
            SUBTRACT => self.beta * u + i - r * self.theta,
            ZERO => self.beta * ((T::one() - r) * u) + i,
            _ => self.beta * u + i,
        }
    }

    /// σ'(U − θ).
    #[inline(always)]
    fn surrogate<const S: u8>(&self, u: T) -> T {
        let x = u - self.theta;
        match S {
            FAST_SIGMOID => {
                let ax = if x < T::zero() { T::zero() - x } else { x };
                let d = self.s1 * ax + T::one();
                T::one() / (d * d)
            }
            _ => {
                let y = self.s1 * x;
                self.s2 / (T::one() + y * y)
            }
        }
    }

    /// dU_t/dU_{t−1} as the BPTT carry sees it, given U_{t−1}.
    #[inline(always)]
    fn carry<const R: u8>(&self, u_prev: T) -> T {
        match R {
            ZERO => self.beta * (T::one() - self.h(u_prev)),
            _ => self.beta,
        }
    }
}

/// Neurons handled by one rayon task (and one block of the sequential path).
#[doc(hidden)]
pub const TASK: usize = 1024;
/// Below this many neuron-steps the kernels run on the calling thread.
#[doc(hidden)]
pub const PAR_MIN: usize = 1 << 16;

/// A raw pointer that may cross threads; every task writes a disjoint set of indices.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: used only for disjoint writes from rayon tasks that all finish before the owning
// buffer is read or dropped.
unsafe impl<T: Send> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The sub-slice `[start, start + len)` of the buffer.
    ///
    /// # Safety
    /// The range is in bounds and no other thread accesses it while the slice lives.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

/// Runs `f(start, end)` over neuron ranges, in parallel when the work is large.
fn for_neuron_ranges(n: usize, steps: usize, f: impl Fn(usize, usize) + Sync) {
    if n * steps < PAR_MIN || n <= TASK || !crate::kernel::parallel_allowed() {
        // Sequential, but still in blocks of TASK neurons, so that backward's recomputed
        // membrane history is (T + 1)·TASK values, never (T + 1)·N.
        for c in 0..n.div_ceil(TASK) {
            f(c * TASK, ((c + 1) * TASK).min(n));
        }
    } else {
        (0..n.div_ceil(TASK))
            .into_par_iter()
            .for_each(|c| f(c * TASK, ((c + 1) * TASK).min(n)));
    }
}

/// The current of step `t` for neurons `[a, a + w)`: a row of [T, N], or the constant [N].
#[inline(always)]
fn current_row<T>(cur: &[T], constant: bool, t: usize, n: usize, a: usize, w: usize) -> &[T] {
    if constant {
        &cur[a..a + w]
    } else {
        &cur[t * n + a..t * n + a + w]
    }
}

/// What the forward kernel writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FwdOut {
    /// Spikes [T, N].
    Spikes,
    /// Rate [N].
    Rate,
    /// Rate [N] then mean membrane [N].
    RateMem,
}

fn forward_kernel<T: WithDType, const R: u8>(
    k: K<T>,
    cur: &[T],
    constant: bool,
    steps: usize,
    n: usize,
    kind: FwdOut,
    out: SyncPtr<T>,
) {
    let inv_t = T::from_f64(1.0 / steps as f64);
    for_neuron_ranges(n, steps, |a, b| {
        let w = b - a;
        let mut u = vec![T::zero(); w];
        let mut count = vec![T::zero(); if kind == FwdOut::Spikes { 0 } else { w }];
        let mut usum = vec![T::zero(); if kind == FwdOut::RateMem { w } else { 0 }];
        for t in 0..steps {
            let row = current_row(cur, constant, t, n, a, w);
            match kind {
                FwdOut::Spikes => {
                    // SAFETY: row t, neurons [a, b) belong to this task only.
                    let o = unsafe { out.slice(t * n + a, w) };
                    for ((uj, &ij), oj) in u.iter_mut().zip(row).zip(o.iter_mut()) {
                        let nu = k.step::<R>(*uj, ij);
                        *uj = nu;
                        *oj = k.h(nu);
                    }
                }
                FwdOut::Rate => {
                    for ((uj, &ij), cj) in u.iter_mut().zip(row).zip(count.iter_mut()) {
                        let nu = k.step::<R>(*uj, ij);
                        *uj = nu;
                        *cj += k.h(nu);
                    }
                }
                FwdOut::RateMem => {
                    for (((uj, &ij), cj), sj) in u
                        .iter_mut()
                        .zip(row)
                        .zip(count.iter_mut())
                        .zip(usum.iter_mut())
                    {
                        let nu = k.step::<R>(*uj, ij);
                        *uj = nu;
                        *cj += k.h(nu);
                        *sj += nu;
                    }
                }
            }
        }
        if kind != FwdOut::Spikes {
            // SAFETY: neurons [a, b) of the rate (and of the membrane half) belong to this task.
            let o = unsafe { out.slice(a, w) };
            for (oj, &cj) in o.iter_mut().zip(&count) {
                *oj = cj * inv_t;
            }
            if kind == FwdOut::RateMem {
                // SAFETY: as above, in the second half of the output.
                let o = unsafe { out.slice(n + a, w) };
                for (oj, &sj) in o.iter_mut().zip(&usum) {
                    *oj = sj * inv_t;
                }
            }
        }
    });
}

/// BPTT: writes dL/dI ([T, N] for a sequence current, [N] for a constant one). The upstream
/// gradient is [T, N] per step (`rate = false`) or [N] of a rate (every step receives g/T).
#[allow(clippy::too_many_arguments)]
fn backward_kernel<T: WithDType, const R: u8, const S: u8>(
    k: K<T>,
    cur: &[T],
    constant: bool,
    up: &[T],
    rate: bool,
    steps: usize,
    n: usize,
    out: SyncPtr<T>,
) {
    let inv_t = T::from_f64(1.0 / steps as f64);
    for_neuron_ranges(n, steps, |a, b| {
        let w = b - a;
        // Recompute the membrane of every step for this neuron range (row 0 holds U_{-1} = 0).
        let mut hist = vec![T::zero(); (steps + 1) * w];
        for t in 0..steps {
            let row = current_row(cur, constant, t, n, a, w);
            let (prev, next) = hist.split_at_mut((t + 1) * w);
            let prev = &prev[t * w..];
            for ((nx, &p), &i) in next[..w].iter_mut().zip(prev).zip(row) {
                *nx = k.step::<R>(p, i);
            }
        }
        let mut carry = vec![T::zero(); w];
        let mut acc = vec![T::zero(); if constant { w } else { 0 }];
        let mut scaled = vec![T::zero(); if rate { w } else { 0 }];
        if rate {
            for (s, &g) in scaled.iter_mut().zip(&up[a..b]) {
                *s = g * inv_t;
            }
        }
        for t in (0..steps).rev() {
            let g: &[T] = if rate {
                &scaled
            } else {
                &up[t * n + a..t * n + b]
            };
            let u_t = &hist[(t + 1) * w..(t + 2) * w];
            let u_prev = &hist[t * w..(t + 1) * w];
            if constant {
                for ((((c, &gj), &u), &up_), aj) in carry
                    .iter_mut()
                    .zip(g)
                    .zip(u_t)
                    .zip(u_prev)
                    .zip(acc.iter_mut())
                {
                    let du = gj * k.surrogate::<S>(u) + *c;
                    *aj += du;
                    *c = k.carry::<R>(up_) * du;
                }
            } else {
                // SAFETY: row t, neurons [a, b) belong to this task only.
                let o = unsafe { out.slice(t * n + a, w) };
                for ((((c, &gj), &u), &up_), oj) in carry
                    .iter_mut()
                    .zip(g)
                    .zip(u_t)
                    .zip(u_prev)
                    .zip(o.iter_mut())
                {
                    let du = gj * k.surrogate::<S>(u) + *c;
                    *oj = du;
                    *c = k.carry::<R>(up_) * du;
                }
            }
        }
        if constant {
            // SAFETY: neurons [a, b) belong to this task only.
            let o = unsafe { out.slice(a, w) };
            o.copy_from_slice(&acc);
        }
    });
}

fn reset_code(r: ResetMechanism) -> u8 {
    match r {
        ResetMechanism::Subtract => SUBTRACT,
        ResetMechanism::Zero => ZERO,
        ResetMechanism::None => NONE,
    }
}

fn forward_dispatch<T: WithDType>(
    c: &LifConfig,
    cur: &[T],
    constant: bool,
    steps: usize,
    n: usize,
    kind: FwdOut,
    out: SyncPtr<T>,
) {
    let k = K::<T>::new(c);
    match reset_code(c.reset) {
        SUBTRACT => forward_kernel::<T, SUBTRACT>(k, cur, constant, steps, n, kind, out),
        ZERO => forward_kernel::<T, ZERO>(k, cur, constant, steps, n, kind, out),
        _ => forward_kernel::<T, NONE>(k, cur, constant, steps, n, kind, out),
    }
}

#[allow(clippy::too_many_arguments)]
fn backward_dispatch<T: WithDType>(
    c: &LifConfig,
    cur: &[T],
    constant: bool,
    up: &[T],
    rate: bool,
    steps: usize,
    n: usize,
    out: SyncPtr<T>,
) {
    let k = K::<T>::new(c);
    let s = match c.surrogate {
        Surrogate::FastSigmoid { .. } => FAST_SIGMOID,
        Surrogate::Atan { .. } => ATAN,
    };
    match (reset_code(c.reset), s) {
        (SUBTRACT, FAST_SIGMOID) => {
            backward_kernel::<T, SUBTRACT, FAST_SIGMOID>(k, cur, constant, up, rate, steps, n, out)
        }
        (SUBTRACT, _) => {
            backward_kernel::<T, SUBTRACT, ATAN>(k, cur, constant, up, rate, steps, n, out)
        }
        (ZERO, FAST_SIGMOID) => {
            backward_kernel::<T, ZERO, FAST_SIGMOID>(k, cur, constant, up, rate, steps, n, out)
        }
        (ZERO, _) => backward_kernel::<T, ZERO, ATAN>(k, cur, constant, up, rate, steps, n, out),
        (_, FAST_SIGMOID) => {
            backward_kernel::<T, NONE, FAST_SIGMOID>(k, cur, constant, up, rate, steps, n, out)
        }
        (_, _) => backward_kernel::<T, NONE, ATAN>(k, cur, constant, up, rate, steps, n, out),
    }
}

/// Which fused form an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// [T, …] → spikes [T, …].
    SeqSpikes,
    /// [T, …] → [2, …]: rate, then mean membrane (no gradient).
    SeqRateMem,
    /// […] → spikes [T, …].
    ConstSpikes,
    /// […] → rate […].
    ConstRate,
}

/// The fused forward op.
#[derive(Debug, Clone)]
struct LifOp {
    cfg: LifConfig,
    form: Form,
    /// Steps for the constant-current forms.
    steps: usize,
    /// Dropout applied to the output spikes inside the op (so the undropped train is never
    /// kept), and to the incoming gradient in backward.
    dropout: Option<crate::fused::KeepMask>,
}

impl LifOp {
    fn run<T: WithDType>(&self, x: &[T], dims: &[usize]) -> (Vec<T>, Shape) {
        let c = &self.cfg;
        match self.form {
            Form::SeqSpikes => {
                let steps = dims[0];
                let n = x.len() / steps.max(1);
                let mut out = vec![T::zero(); x.len()];
                forward_dispatch(
                    c,
                    x,
                    false,
                    steps,
                    n,
                    FwdOut::Spikes,
                    SyncPtr(out.as_mut_ptr()),
                );
                (out, Shape::from(dims))
            }
            Form::SeqRateMem => {
                let steps = dims[0];
                let n = x.len() / steps.max(1);
                let mut out = vec![T::zero(); 2 * n];
                forward_dispatch(
                    c,
                    x,
                    false,
                    steps,
                    n,
                    FwdOut::RateMem,
                    SyncPtr(out.as_mut_ptr()),
                );
                let mut d = dims.to_vec();
                d[0] = 2;
                (out, Shape::from(d))
            }
            Form::ConstSpikes => {
                let n = x.len();
                let mut out = vec![T::zero(); n * self.steps];
                forward_dispatch(
                    c,
                    x,
                    true,
                    self.steps,
                    n,
                    FwdOut::Spikes,
                    SyncPtr(out.as_mut_ptr()),
                );
                let mut d = vec![self.steps];
                d.extend_from_slice(dims);
                (out, Shape::from(d))
            }
            Form::ConstRate => {
                let n = x.len();
                let mut out = vec![T::zero(); n];
                forward_dispatch(
                    c,
                    x,
                    true,
                    self.steps,
                    n,
                    FwdOut::Rate,
                    SyncPtr(out.as_mut_ptr()),
                );
                (out, Shape::from(dims))
            }
        }
    }
}

impl CustomOp1 for LifOp {
    fn name(&self) -> &'static str {
        match self.form {
            Form::SeqSpikes => "lif-seq-spikes",
            Form::SeqRateMem => "lif-seq-rate-mem",
            Form::ConstSpikes => "lif-const-spikes",
            Form::ConstRate => "lif-const-rate",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        if let Some(m) = &self.dropout {
            let n = l.shape().elem_count() * self.steps;
            if !m.fits(n) {
                candle_core::bail!(
                    "{}: a dropout mask that does not fit {n} spikes",
                    self.name()
                );
            }
        }
        match s.dtype() {
            DType::F32 => {
                let (mut v, sh) = self.run(
                    crate::kernel::contiguous_slice::<f32>(s, l, self.name())?,
                    dims,
                );
                if let Some(m) = &self.dropout {
                    m.apply_in_place(&mut v);
                }
                Ok((CpuStorage::F32(v), sh))
            }
            DType::F64 => {
                let (mut v, sh) = self.run(
                    crate::kernel::contiguous_slice::<f64>(s, l, self.name())?,
                    dims,
                );
                if let Some(m) = &self.dropout {
                    m.apply_in_place(&mut v);
                }
                Ok((CpuStorage::F64(v), sh))
            }
            dt => candle_core::bail!(
                "{}: dtype {dt:?} not supported, expected f32 or f64",
                self.name()
            ),
        }
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = match self.form {
            // Only the rate half carries a gradient; the mean membrane is detached by definition.
            Form::SeqRateMem => grad.get(0)?.contiguous()?,
            _ => grad.contiguous()?,
        };
        let grad = match &self.dropout {
            Some(m) => grad.apply_op1_no_bwd(m)?,
            None => grad,
        };
        let op = LifBwdOp { fwd: self.clone() };
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad, &op)?))
    }
}

/// The fused backward: (currents, upstream gradient) → gradient of the currents.
#[derive(Debug, Clone)]
struct LifBwdOp {
    fwd: LifOp,
}

impl LifBwdOp {
    fn run<T: WithDType>(&self, x: &[T], dims: &[usize], g: &[T]) -> Vec<T> {
        let c = &self.fwd.cfg;
        let mut out = vec![T::zero(); x.len()];
        let p = SyncPtr(out.as_mut_ptr());
        match self.fwd.form {
            Form::SeqSpikes | Form::SeqRateMem => {
                let steps = dims[0];
                let n = x.len() / steps.max(1);
                let rate = self.fwd.form == Form::SeqRateMem;
                backward_dispatch(c, x, false, g, rate, steps, n, p);
            }
            Form::ConstSpikes => {
                backward_dispatch(c, x, true, g, false, self.fwd.steps, x.len(), p)
            }
            Form::ConstRate => backward_dispatch(c, x, true, g, true, self.fwd.steps, x.len(), p),
        }
        out
    }
}

impl CustomOp2 for LifBwdOp {
    fn name(&self) -> &'static str {
        "lif-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        let out = match s1.dtype() {
            DType::F32 => CpuStorage::F32(self.run(
                crate::kernel::contiguous_slice::<f32>(s1, l1, "lif-bwd")?,
                dims,
                crate::kernel::contiguous_slice::<f32>(s2, l2, "lif-bwd")?,
            )),
            DType::F64 => CpuStorage::F64(self.run(
                crate::kernel::contiguous_slice::<f64>(s1, l1, "lif-bwd")?,
                dims,
                crate::kernel::contiguous_slice::<f64>(s2, l2, "lif-bwd")?,
            )),
            dt => candle_core::bail!("lif-bwd: dtype {dt:?} not supported"),
        };
        Ok((out, Shape::from(dims)))
    }
}

/// `x` through the fused op of `form` (no dropout unless given).
fn fused(
    x: &Tensor,
    cfg: &LifConfig,
    form: Form,
    steps: usize,
    dropout: Option<crate::fused::KeepMask>,
) -> Result<Tensor> {
    let op = LifOp {
        cfg: *cfg,
        form,
        steps,
        dropout,
    };
    Ok(x.contiguous()?.apply_op1(op)?)
}

fn fused_available(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
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

/// A multi-step call needs at least one step on its time axis.
fn check_time_axis(x: &Tensor, what: &'static str) -> Result<()> {
    if x.dim(0)? == 0 {
        return Err(LayerError::Shape {
            what,
            expected: "at least one time step (T >= 1)".into(),
            actual: x.dims().to_vec(),
        });
    }
    Ok(())
}

fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(LayerError::config(
            "spike steps",
            "0; expected at least 1".to_string(),
        ));
    }
    Ok(())
}

/// Spikes [T, …] from currents [T, …].
pub fn lif_spikes(currents: &Tensor, cfg: &LifConfig) -> Result<Tensor> {
    check_input(currents, "lif currents [T, …]", 1)?;
    check_time_axis(currents, "lif currents [T, …]")?;
    if fused_available(currents) {
        fused(currents, cfg, Form::SeqSpikes, 0, None)
    } else {
        reference::lif_spikes(currents, cfg)
    }
}

/// (mean_t S_t, mean_t U_t) from currents [T, …]; the mean membrane carries no gradient.
pub fn lif_rate_and_mean_mem(currents: &Tensor, cfg: &LifConfig) -> Result<(Tensor, Tensor)> {
    check_input(currents, "lif currents [T, …]", 1)?;
    check_time_axis(currents, "lif currents [T, …]")?;
    if fused_available(currents) {
        let both = fused(currents, cfg, Form::SeqRateMem, 0, None)?;
        Ok((both.get(0)?, both.get(1)?.detach()))
    } else {
        reference::lif_rate_and_mean_mem(currents, cfg)
    }
}

/// Spikes [T, …] from a constant current […] applied for `steps` steps.
pub fn lif_const_spikes(current: &Tensor, steps: usize, cfg: &LifConfig) -> Result<Tensor> {
    check_input(current, "lif constant current", 0)?;
    check_steps(steps)?;
    if fused_available(current) {
        fused(current, cfg, Form::ConstSpikes, steps, None)
    } else {
        reference::lif_const_spikes(current, steps, cfg)
    }
}

/// [`lif_const_spikes`] followed by inverted dropout with probability `p` (masks from `rng`), as
/// one op: the spike train before dropout is never kept for backward.
pub fn lif_const_spikes_dropout(
    current: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    p: f64,
    rng: &mut crate::rng::SeededRng,
) -> Result<Tensor> {
    check_input(current, "lif constant current", 0)?;
    check_steps(steps)?;
    if !(0.0..1.0).contains(&p) {
        return Err(LayerError::config(
            "dropout",
            format!("{p}; expected [0, 1)"),
        ));
    }
    if fused_available(current) {
        let mask =
            (p > 0.0).then(|| crate::fused::KeepMask::draw(rng, current.elem_count() * steps, p));
        fused(current, cfg, Form::ConstSpikes, steps, mask)
    } else {
        let s = reference::lif_const_spikes(current, steps, cfg)?;
        Ok(crate::fused::dropout(&s, p, rng)?)
    }
}

/// The firing rate mean_t S_t […] of a constant current […] over `steps` steps, without
/// materialising [T, …] in forward or backward.
pub fn lif_const_rate(current: &Tensor, steps: usize, cfg: &LifConfig) -> Result<Tensor> {
    check_input(current, "lif constant current", 0)?;
    check_steps(steps)?;
    if fused_available(current) {
        fused(current, cfg, Form::ConstRate, steps, None)
    } else {
        reference::lif_const_rate(current, steps, cfg)
    }
}

/// The per-step composition of candle ops: the reference the fused kernels are tested and
/// benchmarked against, and the path on devices without a fused kernel.
pub mod reference {
    use super::*;

    /// H(x) forward with the surrogate σ'(x) as its gradient.
    ///
    /// `fast_sigmoid` is built from standard ops (a straight-through term whose derivative is
    /// the surrogate), so it runs on every device; `atan` uses a small custom op (CPU).
    pub fn heaviside(x: &Tensor, surrogate: &Surrogate) -> Result<Tensor> {
        let h = x.gt(0.0)?.to_dtype(x.dtype())?;
        match *surrogate {
            Surrogate::FastSigmoid { slope } => {
                // d/dx [x / (k|x| + 1)] = 1 / (k|x| + 1)²; the bracket is exactly 0 in forward.
                let sg = (x / x.abs()?.affine(slope, 1.0)?)?;
                Ok(h.add(&sg.sub(&sg.detach())?)?)
            }
            Surrogate::Atan { alpha } => Ok(x.apply_op1(AtanSpike { alpha })?),
        }
    }

    #[derive(Debug, Clone, Copy)]
    struct AtanSpike {
        alpha: f64,
    }

    impl CustomOp1 for AtanSpike {
        fn name(&self) -> &'static str {
            "atan-spike"
        }
        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
            let out = match s.dtype() {
                DType::F32 => CpuStorage::F32(
                    crate::kernel::contiguous_slice::<f32>(s, l, "atan-spike")?
                        .iter()
                        .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                        .collect(),
                ),
                DType::F64 => CpuStorage::F64(
                    crate::kernel::contiguous_slice::<f64>(s, l, "atan-spike")?
                        .iter()
                        .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                        .collect(),
                ),
                dt => candle_core::bail!("atan-spike: dtype {dt:?} not supported"),
            };
            Ok((out, l.shape().clone()))
        }
        fn bwd(
            &self,
            x: &Tensor,
            _res: &Tensor,
            g: &Tensor,
        ) -> candle_core::Result<Option<Tensor>> {
            let y = (x * (std::f64::consts::FRAC_PI_2 * self.alpha))?;
            let d = (y.sqr()? + 1.0)?.recip()?.affine(self.alpha / 2.0, 0.0)?;
            Ok(Some((g * d)?))
        }
    }

    /// One step: (U_{t−1}, I_t) → (U_t, S_t).
    pub fn step(u: &Tensor, i: &Tensor, cfg: &LifConfig) -> Result<(Tensor, Tensor)> {
        let th = cfg.threshold;
        // r_t = H(U_{t−1} − θ), detached.
        let r = (u - th)?.gt(0.0)?.to_dtype(u.dtype())?;
        let nu = match cfg.reset {
            ResetMechanism::Subtract => ((u.affine(cfg.beta, 0.0)? + i)? - r.affine(th, 0.0)?)?,
            ResetMechanism::Zero => {
                let keep = r.affine(-1.0, 1.0)?;
                ((u * keep)?.affine(cfg.beta, 0.0)? + i)?
            }
            ResetMechanism::None => (u.affine(cfg.beta, 0.0)? + i)?,
        };
        let s = heaviside(&(&nu - th)?, &cfg.surrogate)?;
        Ok((nu, s))
    }

    /// Per-step [`super::lif_spikes`].
    pub fn lif_spikes(currents: &Tensor, cfg: &LifConfig) -> Result<Tensor> {
        let steps = currents.dim(0)?;
        let mut u = currents.get(0)?.zeros_like()?;
        let mut out = Vec::with_capacity(steps);
        for t in 0..steps {
            let (nu, s) = step(&u, &currents.get(t)?, cfg)?;
            u = nu;
            out.push(s);
        }
        Ok(Tensor::stack(&out, 0)?)
    }

    /// Per-step [`super::lif_rate_and_mean_mem`].
    pub fn lif_rate_and_mean_mem(currents: &Tensor, cfg: &LifConfig) -> Result<(Tensor, Tensor)> {
        let steps = currents.dim(0)?;
        let mut u = currents.get(0)?.zeros_like()?;
        let mut count = u.zeros_like()?;
        let mut usum = u.zeros_like()?;
        for t in 0..steps {
            let (nu, s) = step(&u, &currents.get(t)?, cfg)?;
            count = (count + s)?;
            usum = (usum + nu.detach())?;
            u = nu;
        }
        let inv = 1.0 / steps as f64;
        Ok((count.affine(inv, 0.0)?, usum.affine(inv, 0.0)?.detach()))
    }

    /// Per-step [`super::lif_const_spikes`].
    pub fn lif_const_spikes(current: &Tensor, steps: usize, cfg: &LifConfig) -> Result<Tensor> {
        let mut u = current.zeros_like()?;
        let mut out = Vec::with_capacity(steps);
        for _ in 0..steps {
            let (nu, s) = step(&u, current, cfg)?;
            u = nu;
            out.push(s);
        }
        Ok(Tensor::stack(&out, 0)?)
    }

    /// Per-step [`super::lif_const_rate`].
    pub fn lif_const_rate(current: &Tensor, steps: usize, cfg: &LifConfig) -> Result<Tensor> {
        let mut u = current.zeros_like()?;
        let mut count = current.zeros_like()?;
        for _ in 0..steps {
            let (nu, s) = step(&u, current, cfg)?;
            u = nu;
            count = (count + s)?;
        }
        Ok(count.affine(1.0 / steps as f64, 0.0)?)
    }
}
