//! Row-wise ops fused into single CPU custom ops with their own backward: LayerNorm, exact GELU,
//! the scaled and (optionally) causally masked attention softmax, and the next-token
//! cross-entropy. Each replaces a chain of 5–10 candle ops; in candle's backward every op of a
//! chain costs a fresh zero gradient plus an add of its input's size, so a chain of `k` ops over
//! an [N, D] activation makes about 3·k passes over N·D values where the fused op makes two.
//!
//! Every op but dropout and `seed` has a `*_composed` form built from differentiable candle ops:
//! the path on devices and dtypes without a kernel (anything but CPU f32/f64), and the reference
//! the tests hold the fused kernels to (forward values and gradients). Dropout is tested against
//! the mask tensor of the same draws, `seed` against the product-and-sum it stands for.

use crate::kernel::{contiguous_slice, float_kernel, row_chunks, Real};
use crate::rng::SeededRng;
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape,
    Tensor, D,
};

/// True when the fused CPU kernels can run on `x`.
pub(crate) fn available(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// The last dimension of `x`, or an error naming `what` for a scalar.
fn last_dim(x: &Tensor, what: &str) -> candle_core::Result<usize> {
    match x.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => candle_core::bail!(
            "{what}: expected a non-empty last dimension, got {:?}",
            x.dims()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

/// LayerNorm over the last dimension (biased variance): y = (x − μ)/√(σ² + ε)·w + b, as one op
/// keeping only x for backward ([`norm_act`] with [`NormAct::Norm`] and no dropout).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    norm_act(x, w, b, eps, NormAct::Norm, None)
}

/// [`layer_norm`] from candle ops (mean, centre, variance, divide, scale, shift).
pub fn layer_norm_composed(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(w)?.broadcast_add(b)
}

/// Mean and 1/√(σ² + ε) of one row.
#[inline(always)]
fn moments<T: Real>(row: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(row.len() as f64);
    let mut s = T::zero();
    for &v in row {
        s += v;
    }
    let mean = s / n;
    let mut q = T::zero();
    for &v in row {
        let c = v - mean;
        q += c * c;
    }
    (mean, T::one() / (q / n + eps).sqrt_())
}

// ---------------------------------------------------------------------------------------------
// GELU

/// Exact (erf) GELU: x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !available(x) {
        return gelu_composed(x);
    }
    x.contiguous()?.apply_op1(GeluOp)
}

/// [`gelu`] from candle ops: x/2·(1 + erf(x/√2)). (Not candle's `gelu_erf`, whose backward
/// rounds 1/√(2π) to 0.398942, a relative error of about 7e-7.)
pub fn gelu_composed(x: &Tensor) -> candle_core::Result<Tensor> {
    (x * 0.5)? * ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)?
}

#[derive(Debug, Clone, Copy)]
struct GeluOp;

fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let r = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let mut y = vec![T::zero(); x.len()];
    row_chunks(&mut y, 1, x.len(), 8 * x.len(), |range, out| {
        for (o, &v) in out.iter_mut().zip(&x[range]) {
            *o = half * v * (T::one() + (v * r).erf_());
        }
    });
    y
}

/// dx = dy·(Φ(x) + x·φ(x)).
fn gelu_bwd<T: Real>(x: &[T], dy: &[T]) -> Vec<T> {
    let half = T::from_f64(0.5);
    let r = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
    let c = T::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt());
    let mut dx = vec![T::zero(); x.len()];
    row_chunks(&mut dx, 1, x.len(), 8 * x.len(), |range, out| {
        let start = range.start;
        for (i, o) in out.iter_mut().enumerate() {
            let v = x[start + i];
            let cdf = half * (T::one() + (v * r).erf_());
            let pdf = c * (T::zero() - half * v * v).exp_();
            *o = dy[start + i] * (cdf + v * pdf);
        }
    });
    dx
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), s.dtype(), |T| gelu_fwd::<T>(contiguous_slice(
            s, l, "gelu: x"
        )?));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&dy.contiguous()?, &GeluBwdOp)?))
    }
}

#[derive(Debug, Clone, Copy)]
struct GeluBwdOp;

impl CustomOp2 for GeluBwdOp {
    fn name(&self) -> &'static str {
        "gelu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), s1.dtype(), |T| gelu_bwd::<T>(
            contiguous_slice(s1, l1, "gelu-bwd: x")?,
            contiguous_slice(s2, l2, "gelu-bwd: dy")?,
        ));
        Ok((out, l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Attention softmax

/// softmax(scale·s + mask) over the last dimension of scores s [.., Lq, Lk]. With `causal`, query
/// row i may see keys j ≤ i + (Lk − Lq) (the queries are the last Lq positions of the keys'
/// sequence) and the rest get probability 0; `causal` needs Lk ≥ Lq.
pub fn masked_softmax(scores: &Tensor, scale: f64, causal: bool) -> candle_core::Result<Tensor> {
    let dims = scores.dims();
    if dims.len() < 2 || dims[dims.len() - 1] == 0 {
        candle_core::bail!("masked_softmax: expected scores [.., Lq, Lk], got {dims:?}");
    }
    let (lq, lk) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if causal && lk < lq {
        candle_core::bail!("masked_softmax: a causal mask needs Lk >= Lq, got Lq {lq}, Lk {lk}");
    }
    if !available(scores) {
        return masked_softmax_composed(scores, scale, causal);
    }
    let op = SoftmaxOp {
        scale,
        causal,
        lq,
        lk,
    };
    scores.contiguous()?.apply_op1(op)
}

/// [`masked_softmax`] from candle ops: affine, add of a −∞ mask, `candle_nn::ops::softmax`.
pub fn masked_softmax_composed(
    scores: &Tensor,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let dims = scores.dims();
    let (lq, lk) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mut s = scores.affine(scale, 0.0)?;
    if causal {
        let off = lk - lq;
        let v: Vec<f32> = (0..lq)
            .flat_map(|i| (0..lk).map(move |j| if j > i + off { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(v, (lq, lk), scores.device())?.to_dtype(scores.dtype())?;
        s = s.broadcast_add(&mask)?;
    }
    candle_nn::ops::softmax(&s, D::Minus1)
}

#[derive(Debug, Clone, Copy)]
struct SoftmaxOp {
    scale: f64,
    causal: bool,
    lq: usize,
    lk: usize,
}

impl SoftmaxOp {
    /// Keys row `r` may see: 0..visible(r).
    #[inline(always)]
    fn visible(&self, r: usize) -> usize {
        if self.causal {
            (r % self.lq) + (self.lk - self.lq) + 1
        } else {
            self.lk
        }
    }

    fn fwd<T: Real>(&self, s: &[T]) -> Vec<T> {
        let lk = self.lk;
        let rows = s.len() / lk;
        let scale = T::from_f64(self.scale);
        let mut p = vec![T::zero(); s.len()];
        row_chunks(&mut p, lk, rows, 4 * s.len(), |range, out| {
            for (i, r) in range.enumerate() {
                let n = self.visible(r);
                let sr = &s[r * lk..r * lk + n];
                let pr = &mut out[i * lk..i * lk + n];
                let mut m = sr[0] * scale;
                for &v in &sr[1..] {
                    let v = v * scale;
                    if v > m {
                        m = v;
                    }
                }
                let mut sum = T::zero();
                for (o, &v) in pr.iter_mut().zip(sr) {
                    let e = (v * scale - m).exp_();
                    *o = e;
                    sum += e;
                }
                let inv = T::one() / sum;
                for o in pr.iter_mut() {
                    *o *= inv;
                }
            }
        });
        p
    }

    /// ds = scale·p⊙(dp − Σ p⊙dp).
    fn bwd<T: Real>(&self, p: &[T], dp: &[T]) -> Vec<T> {
        let lk = self.lk;
        let rows = p.len() / lk;
        let scale = T::from_f64(self.scale);
        let mut ds = vec![T::zero(); p.len()];
        row_chunks(&mut ds, lk, rows, 3 * p.len(), |range, out| {
            for (i, r) in range.enumerate() {
                let n = self.visible(r);
                let pr = &p[r * lk..r * lk + n];
                let gr = &dp[r * lk..r * lk + n];
                let mut dot = T::zero();
                for (&a, &g) in pr.iter().zip(gr) {
                    dot += a * g;
                }
                for ((o, &a), &g) in out[i * lk..i * lk + n].iter_mut().zip(pr).zip(gr) {
                    *o = scale * a * (g - dot);
                }
            }
        });
        ds
    }
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), s.dtype(), |T| self.fwd::<T>(contiguous_slice(
            s,
            l,
            "masked-softmax: scores"
        )?));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _s: &Tensor, p: &Tensor, dp: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(p.apply_op2_no_bwd(
            &dp.contiguous()?,
            &SoftmaxBwdOp { fwd: *self },
        )?))
    }
}

#[derive(Debug, Clone, Copy)]
struct SoftmaxBwdOp {
    fwd: SoftmaxOp,
}

impl CustomOp2 for SoftmaxBwdOp {
    fn name(&self) -> &'static str {
        "masked-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = float_kernel!(self.name(), s1.dtype(), |T| self.fwd.bwd::<T>(
            contiguous_slice(s1, l1, "masked-softmax-bwd: p")?,
            contiguous_slice(s2, l2, "masked-softmax-bwd: dp")?,
        ));
        Ok((out, l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

/// The two cross-entropy terms of logits [N, V] against targets [N] (integer class ids), as one
/// tensor [2]: the mean negative log-likelihood mean_n(−log p[n, t_n]) and the mean uniform term
/// mean_n(−mean_v log p[n, v]) that label smoothing mixes in. A target outside 0..V is an error.
pub fn cross_entropy_terms(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let (n, v) = logits.dims2()?;
    if targets.dims() != [n] || targets.dtype().is_float() {
        candle_core::bail!(
            "cross_entropy: expected integer targets [{n}] for logits [{n}, {v}], got {:?} {:?}",
            targets.dtype(),
            targets.dims()
        );
    }
    if n == 0 || v == 0 {
        candle_core::bail!("cross_entropy: empty logits {:?}", logits.dims());
    }
    if targets.dtype() != DType::U32 {
        // Check in i64 first: a cast to u32 would wrap a negative or huge id into the range.
        let t = targets.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        if let Some((i, &bad)) = t
            .iter()
            .enumerate()
            .find(|(_, &c)| c < 0 || c as usize >= v)
        {
            candle_core::bail!(
                "cross_entropy: target {bad} at row {i} is outside the vocabulary 0..{v}"
            );
        }
    }
    let targets = targets.to_dtype(DType::U32)?.contiguous()?;
    if !available(logits) {
        return cross_entropy_terms_composed(logits, &targets);
    }
    logits.contiguous()?.apply_op2(&targets, CrossEntropyOp)
}

/// [`cross_entropy_terms`] from `log_softmax`, `gather` and means.
pub fn cross_entropy_terms_composed(
    logits: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp
        .gather(&targets.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .mean_all()?;
    let uniform = logp.mean(D::Minus1)?.neg()?.mean_all()?;
    Tensor::stack(&[nll, uniform], 0)
}

#[derive(Debug, Clone, Copy)]
struct CrossEntropyOp;

/// log Σ_v exp(x_v), stably.
#[inline(always)]
fn log_sum_exp<T: Real>(row: &[T]) -> T {
    let mut m = row[0];
    for &x in &row[1..] {
        if x > m {
            m = x;
        }
    }
    let mut s = T::zero();
    for &x in row {
        s += (x - m).exp_();
    }
    m + s.ln_()
}

fn check_targets(t: &[u32], v: usize) -> candle_core::Result<()> {
    if let Some((i, &bad)) = t.iter().enumerate().find(|(_, &c)| c as usize >= v) {
        candle_core::bail!(
            "cross_entropy: target {bad} at row {i} is outside the vocabulary 0..{v}"
        );
    }
    Ok(())
}

fn cross_entropy_fwd<T: Real>(x: &[T], t: &[u32]) -> Vec<T> {
    let n = t.len();
    let v = x.len() / n;
    let parts = row_chunks(&mut [] as &mut [T], 0, n, 2 * x.len(), |range, _| {
        let (mut nll, mut uni) = (0f64, 0f64);
        for r in range {
            let row = &x[r * v..(r + 1) * v];
            let lse = log_sum_exp(row).to_f64();
            let mut mean = 0f64;
            for &a in row {
                mean += a.to_f64();
            }
            nll += lse - row[t[r] as usize].to_f64();
            uni += lse - mean / v as f64;
        }
        (nll, uni)
    });
    let (nll, uni) = parts
        .into_iter()
        .fold((0f64, 0f64), |a, b| (a.0 + b.0, a.1 + b.1));
    vec![T::from_f64(nll / n as f64), T::from_f64(uni / n as f64)]
}

/// d logits = (g0·(p − onehot(t)) + g1·(p − 1/V)) / N.
fn cross_entropy_bwd<T: Real>(x: &[T], t: &[u32], g: &[T]) -> Vec<T> {
    let n = t.len();
    let v = x.len() / n;
    let inv_n = T::from_f64(1.0 / n as f64);
    let (g0, g1) = (g[0] * inv_n, g[1] * inv_n);
    let gs = g0 + g1;
    let uniform = g1 * T::from_f64(1.0 / v as f64);
    let mut dx = vec![T::zero(); x.len()];
    row_chunks(&mut dx, v, n, 3 * x.len(), |range, out| {
        for (i, r) in range.enumerate() {
            let row = &x[r * v..(r + 1) * v];
            let lse = log_sum_exp(row);
            let orow = &mut out[i * v..(i + 1) * v];
            for (o, &a) in orow.iter_mut().zip(row) {
                *o = gs * (a - lse).exp_() - uniform;
            }
            orow[t[r] as usize] -= g0;
        }
    });
    dx
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "cross-entropy"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let t: &[u32] = contiguous_slice(s2, l2, "cross-entropy: targets")?;
        check_targets(t, l1.dims()[1])?;
        let out = float_kernel!(self.name(), s1.dtype(), |T| cross_entropy_fwd::<T>(
            contiguous_slice(s1, l1, "cross-entropy: logits")?,
            t
        ));
        Ok((out, Shape::from(2)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let d = logits.apply_op3_no_bwd(targets, &g.contiguous()?, &CrossEntropyBwdOp)?;
        Ok((Some(d), None))
    }
}

#[derive(Debug, Clone, Copy)]
struct CrossEntropyBwdOp;

impl CustomOp3 for CrossEntropyBwdOp {
    fn name(&self) -> &'static str {
        "cross-entropy-bwd"
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
        let t: &[u32] = contiguous_slice(s2, l2, "cross-entropy-bwd: targets")?;
        let out = float_kernel!(self.name(), s1.dtype(), |T| cross_entropy_bwd::<T>(
            contiguous_slice(s1, l1, "cross-entropy-bwd: logits")?,
            t,
            contiguous_slice(s3, l3, "cross-entropy-bwd: grad")?,
        ));
        Ok((out, l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// Dropout

/// Inverted dropout: each element of `x` is zeroed with probability `p` ∈ [0, 1) and the rest
/// scaled by 1/(1 − p), the mask drawn from `rng` ([`SeededRng::dropout_bits`]). The op keeps
/// the mask as one bit per element (not a tensor of the input's size), and its backward is the
/// same masking applied to the gradient (no gradient is computed for a mask).
pub fn dropout(x: &Tensor, p: f64, rng: &mut SeededRng) -> candle_core::Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout: probability {p} outside [0, 1)");
    }
    if p == 0.0 {
        // Nothing to drop and nothing drawn, on every path.
        return Ok(x.clone());
    }
    if !available(x) {
        return x * rng.dropout_mask(x.shape(), p, x.dtype(), x.device())?;
    }
    x.contiguous()?
        .apply_op1(KeepMask::draw(rng, x.elem_count(), p))
}

/// An inverted-dropout mask, one bit per element (1 = kept, scaled by 1/(1 − p)). As a custom
/// op it masks its input, and its backward masks the gradient the same way.
#[derive(Debug, Clone)]
pub(crate) struct KeepMask {
    keep: std::sync::Arc<Vec<u64>>,
    scale: f64,
}

impl KeepMask {
    /// A mask for `n` elements dropped with probability `p` (checked by the caller).
    pub(crate) fn draw(rng: &mut SeededRng, n: usize, p: f64) -> Self {
        KeepMask {
            keep: std::sync::Arc::new(rng.dropout_bits(n, p)),
            scale: 1.0 / (1.0 - p),
        }
    }

    /// True when the mask has exactly the words `n` elements need.
    pub(crate) fn fits(&self, n: usize) -> bool {
        n.div_ceil(64) == self.keep.len()
    }

    /// `x` masked in place.
    pub(crate) fn apply_in_place<T: Real>(&self, x: &mut [T]) {
        let scale = T::from_f64(self.scale);
        for (xs, &word) in x.chunks_mut(64).zip(self.keep.iter()) {
            for (j, v) in xs.iter_mut().enumerate() {
                *v = if word >> j & 1 == 1 {
                    *v * scale
                } else {
                    T::zero()
                };
            }
        }
    }

    fn apply<T: Real>(&self, x: &[T]) -> Vec<T> {
        let mut out = x.to_vec();
        self.apply_in_place(&mut out);
        out
    }
}

impl CustomOp1 for KeepMask {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        if !self.fits(l.shape().elem_count()) {
            candle_core::bail!(
                "dropout: a mask of {} words for {} elements",
                self.keep.len(),
                l.shape().elem_count()
            );
        }
        let out = float_kernel!(self.name(), s.dtype(), |T| self
            .apply::<T>(contiguous_slice(s, l, "dropout: x")?));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

// ---------------------------------------------------------------------------------------------
// Seeding a backward pass with a given gradient

/// A scalar node whose backward hands `grad` (the shape of `x`) to `x`: `seed(x, g).backward()`
/// back-propagates g through x's graph, as `(x ⊙ g).sum().backward()` would without the extra
/// product and its gradients. For stage-by-stage back-propagation, where a later stage's
/// backward gives the gradient of this stage's output. Only meaningful as the root of a backward
/// pass (its own incoming gradient is taken to be 1).
pub fn seed(x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
    if x.shape() != grad.shape() {
        candle_core::bail!(
            "seed: gradient {:?} for a tensor {:?}",
            grad.dims(),
            x.dims()
        );
    }
    if !available(x) {
        return (x * grad.detach())?.sum_all();
    }
    x.apply_op1(SeedOp {
        grad: grad.detach(),
    })
}

#[derive(Debug, Clone)]
struct SeedOp {
    grad: Tensor,
}

impl CustomOp1 for SeedOp {
    fn name(&self) -> &'static str {
        "seed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, _l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s.dtype() {
            DType::F32 => CpuStorage::F32(vec![0.0]),
            DType::F64 => CpuStorage::F64(vec![0.0]),
            dt => candle_core::bail!("seed: dtype {dt:?} not supported, expected f32 or f64"),
        };
        Ok((out, Shape::from(())))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, _g: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(self.grad.clone()))
    }
}

// ---------------------------------------------------------------------------------------------
// LayerNorm, optionally with GELU, and dropout as one op

/// What [`norm_act`] computes before its dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormAct {
    /// LayerNorm(x) alone (the norm after each block).
    Norm,
    /// GELU(LayerNorm(x)) (the block's fusion output).
    NormThenGelu,
    /// LayerNorm(GELU(x)) (the output head).
    GeluThenNorm,
}

/// exact GELU and its derivative at v.
#[inline(always)]
fn gelu_and_slope<T: Real>(v: T) -> (T, T) {
    let half = T::from_f64(0.5);
    let cdf = half * (T::one() + (v * T::from_f64(std::f64::consts::FRAC_1_SQRT_2)).erf_());
    let pdf =
        T::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt()) * (T::zero() - half * v * v).exp_();
    (v * cdf, cdf + v * pdf)
}

/// LayerNorm (weight `w`, bias `b`, ε), alone or with exact GELU in the given order, then
/// inverted dropout with probability p when `dropout` is given, as one op that keeps only its
/// input (and the mask's bits) for backward: the normalised and activated intermediates are
/// recomputed there.
pub fn norm_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    order: NormAct,
    dropout: Option<(f64, &mut SeededRng)>,
) -> candle_core::Result<Tensor> {
    let d = last_dim(x, "layer_norm input")?;
    if w.dims() != [d] || b.dims() != [d] {
        candle_core::bail!(
            "layer_norm: weight {:?} and bias {:?} must both be [{d}] for input {:?}",
            w.dims(),
            b.dims(),
            x.dims()
        );
    }
    if let Some((p, _)) = &dropout {
        if !(0.0..1.0).contains(p) {
            candle_core::bail!("dropout: probability {p} outside [0, 1)");
        }
    }
    if !(available(x) && x.dtype() == w.dtype() && x.dtype() == b.dtype()) {
        let y = match order {
            NormAct::Norm => layer_norm_composed(x, w, b, eps)?,
            NormAct::NormThenGelu => gelu(&layer_norm_composed(x, w, b, eps)?)?,
            NormAct::GeluThenNorm => layer_norm_composed(&gelu(x)?, w, b, eps)?,
        };
        return match dropout {
            Some((p, rng)) if p > 0.0 => self::dropout(&y, p, rng),
            _ => Ok(y),
        };
    }
    let mask = match dropout {
        Some((p, rng)) if p > 0.0 => Some(KeepMask::draw(rng, x.elem_count(), p)),
        _ => None,
    };
    let x2 = x.reshape(((), d))?.contiguous()?;
    let op = NormActOp { eps, order, mask };
    x2.apply_op3(&w.contiguous()?, &b.contiguous()?, op)?
        .reshape(x.shape())
}

/// [`norm_act`] from the separate ops (composed LayerNorm, composed GELU, dropout tensor mask).
pub fn norm_act_composed(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    order: NormAct,
    dropout: Option<(f64, &mut SeededRng)>,
) -> candle_core::Result<Tensor> {
    let y = match order {
        NormAct::Norm => layer_norm_composed(x, w, b, eps)?,
        NormAct::NormThenGelu => gelu_composed(&layer_norm_composed(x, w, b, eps)?)?,
        NormAct::GeluThenNorm => layer_norm_composed(&gelu_composed(x)?, w, b, eps)?,
    };
    match dropout {
        Some((p, rng)) if p > 0.0 => &y * rng.dropout_mask(y.shape(), p, y.dtype(), y.device())?,
        _ => Ok(y),
    }
}

#[derive(Debug, Clone)]
struct NormActOp {
    eps: f64,
    order: NormAct,
    mask: Option<KeepMask>,
}

impl NormActOp {
    fn fwd<T: Real>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let d = w.len();
        let rows = x.len() / d;
        let eps = T::from_f64(self.eps);
        let mut y = vec![T::zero(); x.len()];
        row_chunks(&mut y, d, rows, 8 * x.len(), |range, out| {
            let mut g = vec![T::zero(); d];
            for (i, r) in range.enumerate() {
                let xr = &x[r * d..(r + 1) * d];
                let yr = &mut out[i * d..(i + 1) * d];
                match self.order {
                    NormAct::Norm => {
                        let (mean, rstd) = moments(xr, eps);
                        for j in 0..d {
                            yr[j] = (xr[j] - mean) * rstd * w[j] + b[j];
                        }
                    }
                    NormAct::NormThenGelu => {
                        let (mean, rstd) = moments(xr, eps);
                        for j in 0..d {
                            yr[j] = gelu_and_slope((xr[j] - mean) * rstd * w[j] + b[j]).0;
                        }
                    }
                    NormAct::GeluThenNorm => {
                        for j in 0..d {
                            g[j] = gelu_and_slope(xr[j]).0;
                        }
                        let (mean, rstd) = moments(&g, eps);
                        for j in 0..d {
                            yr[j] = (g[j] - mean) * rstd * w[j] + b[j];
                        }
                    }
                }
            }
        });
        if let Some(m) = &self.mask {
            m.apply_in_place(&mut y);
        }
        y
    }

    /// Packed [(N + 2)·D]: dx, dw, db, given dy already masked (the bias only enters GELU's
    /// slope in the norm-then-GELU order; `b` may be empty otherwise).
    fn bwd<T: Real>(&self, x: &[T], w: &[T], b: &[T], dy: &[T]) -> Vec<T> {
        let d = w.len();
        let rows = x.len() / d;
        let eps = T::from_f64(self.eps);
        let n = T::from_f64(d as f64);
        let mut out = vec![T::zero(); (rows + 2) * d];
        let (dx, tail) = out.split_at_mut(rows * d);
        let partials = row_chunks(dx, d, rows, 12 * x.len(), |range, o| {
            let mut dw = vec![T::zero(); d];
            let mut db = vec![T::zero(); d];
            // The LayerNorm's input row, the gradient at its output, GELU's slope at x.
            let mut u = vec![T::zero(); d];
            let mut du = vec![T::zero(); d];
            let mut slope = vec![T::zero(); d];
            for (i, r) in range.enumerate() {
                let xr = &x[r * d..(r + 1) * d];
                let dyr = &dy[r * d..(r + 1) * d];
                if self.order == NormAct::GeluThenNorm {
                    for j in 0..d {
                        (u[j], slope[j]) = gelu_and_slope(xr[j]);
                    }
                } else {
                    u.copy_from_slice(xr);
                }
                let (mean, rstd) = moments(&u, eps);
                if self.order == NormAct::NormThenGelu {
                    for j in 0..d {
                        let z = (u[j] - mean) * rstd * w[j] + b[j];
                        du[j] = dyr[j] * gelu_and_slope(z).1;
                    }
                } else {
                    du.copy_from_slice(dyr);
                }
                let (mut sg, mut sgx) = (T::zero(), T::zero());
                let orow = &mut o[i * d..(i + 1) * d];
                for j in 0..d {
                    let xh = (u[j] - mean) * rstd;
                    let gj = du[j] * w[j];
                    orow[j] = gj;
                    sg += gj;
                    sgx += gj * xh;
                    dw[j] += du[j] * xh;
                    db[j] += du[j];
                }
                let (mg, mgx) = (sg / n, sgx / n);
                for j in 0..d {
                    let xh = (u[j] - mean) * rstd;
                    let du_in = rstd * (orow[j] - mg - xh * mgx);
                    orow[j] = if self.order == NormAct::GeluThenNorm {
                        du_in * slope[j]
                    } else {
                        du_in
                    };
                }
            }
            (dw, db)
        });
        let (tdw, tdb) = tail.split_at_mut(d);
        for (dw, db) in partials {
            for j in 0..d {
                tdw[j] += dw[j];
                tdb[j] += db[j];
            }
        }
        out
    }
}

impl CustomOp3 for NormActOp {
    fn name(&self) -> &'static str {
        "norm-act"
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
        if let Some(m) = &self.mask {
            if !m.fits(l1.shape().elem_count()) {
                candle_core::bail!("norm-act: the dropout mask does not fit {:?}", l1.dims());
            }
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| self.fwd::<T>(
            contiguous_slice(s1, l1, "norm-act: x")?,
            contiguous_slice(s2, l2, "norm-act: weight")?,
            contiguous_slice(s3, l3, "norm-act: bias")?,
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let rows = x.dim(0)?;
        let dy = match &self.mask {
            Some(m) => dy.contiguous()?.apply_op1_no_bwd(m)?,
            None => dy.contiguous()?,
        };
        // The bias (D values) rides in the op: a custom op takes at most three tensors. Only
        // GELU's slope after the norm needs it.
        let bias = match self.order {
            NormAct::NormThenGelu => b.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            _ => Vec::new(),
        };
        let op = NormActBwdOp {
            fwd: self.clone(),
            bias,
        };
        let packed = x.apply_op3_no_bwd(w, &dy, &op)?;
        Ok((
            Some(packed.narrow(0, 0, rows)?),
            Some(packed.get(rows)?),
            Some(packed.get(rows + 1)?),
        ))
    }
}

#[derive(Debug, Clone)]
struct NormActBwdOp {
    fwd: NormActOp,
    bias: Vec<f64>,
}

impl CustomOp3 for NormActBwdOp {
    fn name(&self) -> &'static str {
        "norm-act-bwd"
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
        let (rows, d) = l1.shape().dims2()?;
        let needs_bias = self.fwd.order == NormAct::NormThenGelu;
        if needs_bias && self.bias.len() != d {
            candle_core::bail!("norm-act-bwd: bias of {} for width {d}", self.bias.len());
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| {
            let b: Vec<T> = self
                .bias
                .iter()
                .map(|&v| <T as candle_core::WithDType>::from_f64(v))
                .collect();
            self.fwd.bwd::<T>(
                contiguous_slice(s1, l1, "norm-act-bwd: x")?,
                contiguous_slice(s2, l2, "norm-act-bwd: weight")?,
                &b,
                contiguous_slice(s3, l3, "norm-act-bwd: dy")?,
            )
        });
        Ok((out, Shape::from((rows + 2, d))))
    }
}

// ---------------------------------------------------------------------------------------------
// Gated residual

/// y + σ(a) ⊙ x (the block's gated residual; all three of one shape) as one op: the gate σ(a)
/// and the product are not kept, backward recomputes σ(a) from a.
pub fn gated_residual(y: &Tensor, a: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    if y.shape() != a.shape() || y.shape() != x.shape() {
        candle_core::bail!(
            "gated_residual: y {:?}, a {:?} and x {:?} must have one shape",
            y.dims(),
            a.dims(),
            x.dims()
        );
    }
    if !(available(y) && y.dtype() == a.dtype() && y.dtype() == x.dtype()) {
        return gated_residual_composed(y, a, x);
    }
    y.contiguous()?
        .apply_op3(&a.contiguous()?, &x.contiguous()?, GatedResidualOp)
}

/// [`gated_residual`] from candle ops (candle-nn's sigmoid, a product and a sum).
pub fn gated_residual_composed(y: &Tensor, a: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    y + (candle_nn::ops::sigmoid(a)? * x)?
}

#[derive(Debug, Clone, Copy)]
struct GatedResidualOp;

#[inline(always)]
fn sigmoid<T: Real>(v: T) -> T {
    T::one() / (T::one() + (T::zero() - v).exp_())
}

fn gated_fwd<T: Real>(y: &[T], a: &[T], x: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    row_chunks(&mut out, 1, y.len(), 4 * y.len(), |range, o| {
        let s = range.start;
        for (i, v) in o.iter_mut().enumerate() {
            *v = y[s + i] + sigmoid(a[s + i]) * x[s + i];
        }
    });
    out
}

/// Packed [2·n]: da = g⊙x⊙σ(a)(1 − σ(a)), then dx = g⊙σ(a).
fn gated_bwd<T: Real>(a: &[T], x: &[T], g: &[T]) -> Vec<T> {
    let n = a.len();
    let mut out = vec![T::zero(); 2 * n];
    let (da, dx) = out.split_at_mut(n);
    for i in 0..n {
        let s = sigmoid(a[i]);
        da[i] = g[i] * x[i] * s * (T::one() - s);
        dx[i] = g[i] * s;
    }
    out
}

impl CustomOp3 for GatedResidualOp {
    fn name(&self) -> &'static str {
        "gated-residual"
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
        let out = float_kernel!(self.name(), s1.dtype(), |T| gated_fwd::<T>(
            contiguous_slice(s1, l1, "gated-residual: y")?,
            contiguous_slice(s2, l2, "gated-residual: a")?,
            contiguous_slice(s3, l3, "gated-residual: x")?,
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        a: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let packed = a.apply_op3_no_bwd(x, &g, &GatedResidualBwdOp)?;
        let n = a.elem_count();
        Ok((
            Some(g),
            Some(packed.narrow(0, 0, n)?.reshape(a.shape())?),
            Some(packed.narrow(0, n, n)?.reshape(x.shape())?),
        ))
    }
}

#[derive(Debug, Clone, Copy)]
struct GatedResidualBwdOp;

impl CustomOp3 for GatedResidualBwdOp {
    fn name(&self) -> &'static str {
        "gated-residual-bwd"
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
        let out = float_kernel!(self.name(), s1.dtype(), |T| gated_bwd::<T>(
            contiguous_slice(s1, l1, "gated-residual-bwd: a")?,
            contiguous_slice(s2, l2, "gated-residual-bwd: x")?,
            contiguous_slice(s3, l3, "gated-residual-bwd: g")?,
        ));
        Ok((out, Shape::from(2 * l1.shape().elem_count())))
    }
}
