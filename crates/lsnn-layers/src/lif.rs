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
// Scalar kernel, generic over f32/f64. The arithmetic is written in exactly the order of the
// reference composition so that forward results agree bit for bit.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct K<T> {
    beta: T,
    theta: T,
    reset: ResetMechanism,
    surrogate: Surrogate,
}

impl<T: WithDType> K<T> {
    fn new(c: &LifConfig) -> Self {
        K {
            beta: T::from_f64(c.beta),
            theta: T::from_f64(c.threshold),
            reset: c.reset,
            surrogate: c.surrogate,
        }
    }

    #[inline(always)]
    fn fired(&self, u: T) -> bool {
        u - self.theta > T::zero()
    }

    /// U_t from U_{t−1} and I_t.
    #[inline(always)]
    fn step(&self, u: T, i: T) -> T {
        let r = if self.fired(u) { T::one() } else { T::zero() };
        match self.reset {
            ResetMechanism::Subtract => self.beta * u + i - r * self.theta,
            ResetMechanism::Zero => self.beta * ((T::one() - r) * u) + i,
            ResetMechanism::None => self.beta * u + i,
        }
    }

    /// σ'(U − θ).
    #[inline(always)]
    fn surrogate(&self, u: T) -> T {
        let x = u - self.theta;
        match self.surrogate {
            Surrogate::FastSigmoid { slope } => {
                let ax = if x < T::zero() { T::zero() - x } else { x };
                let d = T::from_f64(slope) * ax + T::one();
                T::one() / (d * d)
            }
            Surrogate::Atan { alpha } => {
                let y = T::from_f64(std::f64::consts::FRAC_PI_2 * alpha) * x;
                T::from_f64(alpha / 2.0) / (T::one() + y * y)
            }
        }
    }

    /// dU_t/dU_{t−1} as the BPTT carry sees it, given U_{t−1}.
    #[inline(always)]
    fn carry(&self, u_prev: T) -> T {
        match self.reset {
            ResetMechanism::Zero if self.fired(u_prev) => T::zero(),
            _ => self.beta,
        }
    }
}

/// Neurons handled by one rayon task.
const TASK: usize = 512;
/// Below this many neuron-steps the kernels run on the calling thread.
const PAR_MIN: usize = 1 << 15;

/// A raw pointer that may cross threads; every task writes a disjoint set of indices.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);
// SAFETY: used only for disjoint writes from rayon tasks that all finish before the owning
// buffer is read or dropped.
unsafe impl<T> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// # Safety
    /// `idx` is in bounds and no other thread writes it concurrently.
    #[inline(always)]
    unsafe fn write(self, idx: usize, v: T) {
        // SAFETY: guaranteed by the caller.
        unsafe { self.0.add(idx).write(v) }
    }
}

/// Runs `f(start, end)` over neuron ranges, in parallel when the work is large.
fn for_neuron_ranges(n: usize, steps: usize, f: impl Fn(usize, usize) + Sync) {
    if n * steps < PAR_MIN || n <= TASK {
        f(0, n);
    } else {
        (0..n.div_ceil(TASK))
            .into_par_iter()
            .for_each(|c| f(c * TASK, ((c + 1) * TASK).min(n)));
    }
}

/// Where the current of step t comes from.
#[derive(Clone, Copy)]
enum Current<'a, T> {
    /// [T, N] row-major.
    Seq(&'a [T]),
    /// [N], the same every step.
    Const(&'a [T]),
}

impl<T: Copy> Current<'_, T> {
    #[inline(always)]
    fn at(&self, t: usize, n: usize, j: usize) -> T {
        match self {
            Current::Seq(s) => s[t * n + j],
            Current::Const(s) => s[j],
        }
    }
}

/// What the forward kernel writes.
enum FwdOut<T> {
    /// Spikes [T, N].
    Spikes(SyncPtr<T>),
    /// Rate [N] (and, when the second pointer is given, mean membrane at offset N).
    Rate(SyncPtr<T>, bool),
}

fn forward_kernel<T: WithDType>(
    k: K<T>,
    cur: Current<'_, T>,
    steps: usize,
    n: usize,
    out: FwdOut<T>,
) {
    let inv_t = T::from_f64(1.0 / steps as f64);
    let out = &out;
    for_neuron_ranges(n, steps, |a, b| {
        let w = b - a;
        let mut u = vec![T::zero(); w];
        let mut count = vec![T::zero(); w];
        let mut usum = vec![T::zero(); w];
        for t in 0..steps {
            for j in 0..w {
                let nu = k.step(u[j], cur.at(t, n, a + j));
                u[j] = nu;
                let s = if k.fired(nu) { T::one() } else { T::zero() };
                match out {
                    // SAFETY: index t·N + a + j belongs to this task's neuron range.
                    FwdOut::Spikes(p) => unsafe { p.write(t * n + a + j, s) },
                    FwdOut::Rate(..) => {
                        count[j] += s;
                        usum[j] += nu;
                    }
                }
            }
        }
        if let FwdOut::Rate(p, with_mem) = out {
            for j in 0..w {
                // SAFETY: indices a + j and N + a + j belong to this task's neuron range.
                unsafe {
                    p.write(a + j, count[j] * inv_t);
                    if *with_mem {
                        p.write(n + a + j, usum[j] * inv_t);
                    }
                }
            }
        }
    });
}

/// Upstream gradient of S_t.
#[derive(Clone, Copy)]
enum UpGrad<'a, T> {
    /// [T, N].
    Seq(&'a [T]),
    /// [N], the gradient of a rate: every step receives g/T.
    Rate(&'a [T]),
}

/// BPTT: writes dL/dI ([T, N] for a sequence current, [N] for a constant one).
fn backward_kernel<T: WithDType>(
    k: K<T>,
    cur: Current<'_, T>,
    up: UpGrad<'_, T>,
    steps: usize,
    n: usize,
    out: SyncPtr<T>,
) {
    let inv_t = T::from_f64(1.0 / steps as f64);
    let is_const = matches!(cur, Current::Const(_));
    for_neuron_ranges(n, steps, |a, b| {
        let w = b - a;
        // Recompute the membrane of every step for this neuron range (U_{-1} = 0 at index 0).
        let mut hist = vec![T::zero(); (steps + 1) * w];
        for t in 0..steps {
            for j in 0..w {
                hist[(t + 1) * w + j] = k.step(hist[t * w + j], cur.at(t, n, a + j));
            }
        }
        let mut carry = vec![T::zero(); w];
        let mut acc = vec![T::zero(); w];
        for t in (0..steps).rev() {
            for j in 0..w {
                let u = hist[(t + 1) * w + j];
                let g = match up {
                    UpGrad::Seq(g) => g[t * n + a + j],
                    UpGrad::Rate(g) => g[a + j] * inv_t,
                };
                let du = g * k.surrogate(u) + carry[j];
                if is_const {
                    acc[j] += du;
                } else {
                    // SAFETY: index t·N + a + j belongs to this task's neuron range.
                    unsafe { out.write(t * n + a + j, du) };
                }
                carry[j] = k.carry(hist[t * w + j]) * du;
            }
        }
        if is_const {
            for (j, &g) in acc.iter().enumerate() {
                // SAFETY: index a + j belongs to this task's neuron range.
                unsafe { out.write(a + j, g) };
            }
        }
    });
}

fn contiguous<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let data = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
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
}

impl LifOp {
    fn run<T: WithDType>(&self, x: &[T], dims: &[usize]) -> (Vec<T>, Shape) {
        let k = K::<T>::new(&self.cfg);
        match self.form {
            Form::SeqSpikes | Form::SeqRateMem => {
                let steps = dims[0];
                let n = x.len() / steps.max(1);
                if self.form == Form::SeqSpikes {
                    let mut out = vec![T::zero(); x.len()];
                    forward_kernel(
                        k,
                        Current::Seq(x),
                        steps,
                        n,
                        FwdOut::Spikes(SyncPtr(out.as_mut_ptr())),
                    );
                    (out, Shape::from(dims))
                } else {
                    let mut out = vec![T::zero(); 2 * n];
                    forward_kernel(
                        k,
                        Current::Seq(x),
                        steps,
                        n,
                        FwdOut::Rate(SyncPtr(out.as_mut_ptr()), true),
                    );
                    let mut d = dims.to_vec();
                    d[0] = 2;
                    (out, Shape::from(d))
                }
            }
            Form::ConstSpikes => {
                let n = x.len();
                let mut out = vec![T::zero(); n * self.steps];
                forward_kernel(
                    k,
                    Current::Const(x),
                    self.steps,
                    n,
                    FwdOut::Spikes(SyncPtr(out.as_mut_ptr())),
                );
                let mut d = vec![self.steps];
                d.extend_from_slice(dims);
                (out, Shape::from(d))
            }
            Form::ConstRate => {
                let n = x.len();
                let mut out = vec![T::zero(); n];
                forward_kernel(
                    k,
                    Current::Const(x),
                    self.steps,
                    n,
                    FwdOut::Rate(SyncPtr(out.as_mut_ptr()), false),
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
        match s.dtype() {
            DType::F32 => {
                let (v, sh) = self.run(contiguous::<f32>(s, l, self.name())?, dims);
                Ok((CpuStorage::F32(v), sh))
            }
            DType::F64 => {
                let (v, sh) = self.run(contiguous::<f64>(s, l, self.name())?, dims);
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
        let k = K::<T>::new(&self.fwd.cfg);
        let mut out = vec![T::zero(); x.len()];
        let p = SyncPtr(out.as_mut_ptr());
        match self.fwd.form {
            Form::SeqSpikes | Form::SeqRateMem => {
                let steps = dims[0];
                let n = x.len() / steps.max(1);
                let up = if self.fwd.form == Form::SeqSpikes {
                    UpGrad::Seq(g)
                } else {
                    UpGrad::Rate(g)
                };
                backward_kernel(k, Current::Seq(x), up, steps, n, p);
            }
            Form::ConstSpikes => {
                backward_kernel(
                    k,
                    Current::Const(x),
                    UpGrad::Seq(g),
                    self.fwd.steps,
                    x.len(),
                    p,
                );
            }
            Form::ConstRate => {
                backward_kernel(
                    k,
                    Current::Const(x),
                    UpGrad::Rate(g),
                    self.fwd.steps,
                    x.len(),
                    p,
                );
            }
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
                contiguous::<f32>(s1, l1, "lif-bwd")?,
                dims,
                contiguous::<f32>(s2, l2, "lif-bwd")?,
            )),
            DType::F64 => CpuStorage::F64(self.run(
                contiguous::<f64>(s1, l1, "lif-bwd")?,
                dims,
                contiguous::<f64>(s2, l2, "lif-bwd")?,
            )),
            dt => candle_core::bail!("lif-bwd: dtype {dt:?} not supported"),
        };
        Ok((out, Shape::from(dims)))
    }
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
        let op = LifOp {
            cfg: *cfg,
            form: Form::SeqSpikes,
            steps: 0,
        };
        Ok(currents.contiguous()?.apply_op1(op)?)
    } else {
        reference::lif_spikes(currents, cfg)
    }
}

/// (mean_t S_t, mean_t U_t) from currents [T, …]; the mean membrane carries no gradient.
pub fn lif_rate_and_mean_mem(currents: &Tensor, cfg: &LifConfig) -> Result<(Tensor, Tensor)> {
    check_input(currents, "lif currents [T, …]", 1)?;
    check_time_axis(currents, "lif currents [T, …]")?;
    if fused_available(currents) {
        let op = LifOp {
            cfg: *cfg,
            form: Form::SeqRateMem,
            steps: 0,
        };
        let both = currents.contiguous()?.apply_op1(op)?;
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
        let op = LifOp {
            cfg: *cfg,
            form: Form::ConstSpikes,
            steps,
        };
        Ok(current.contiguous()?.apply_op1(op)?)
    } else {
        reference::lif_const_spikes(current, steps, cfg)
    }
}

/// The firing rate mean_t S_t […] of a constant current […] over `steps` steps, without
/// materialising [T, …] in forward or backward.
pub fn lif_const_rate(current: &Tensor, steps: usize, cfg: &LifConfig) -> Result<Tensor> {
    check_input(current, "lif constant current", 0)?;
    check_steps(steps)?;
    if fused_available(current) {
        let op = LifOp {
            cfg: *cfg,
            form: Form::ConstRate,
            steps,
        };
        Ok(current.contiguous()?.apply_op1(op)?)
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
                    contiguous::<f32>(s, l, "atan-spike")?
                        .iter()
                        .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
                        .collect(),
                ),
                DType::F64 => CpuStorage::F64(
                    contiguous::<f64>(s, l, "atan-spike")?
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
