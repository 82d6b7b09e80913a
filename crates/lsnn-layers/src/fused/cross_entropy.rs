//! The next-token cross-entropy terms (the negative log-likelihood and the uniform term that
//! label smoothing mixes in) as one CPU op with its own backward. Reference:
//! [`super::reference::cross_entropy_terms`].

use crate::kernel::{contiguous_slice, float_kernel, fused_available, row_chunks, Real};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor,
};

/// The two cross-entropy terms of logits `[N, V]` against targets `[N]` (integer class ids), as
/// one tensor `[2]`: the mean negative log-likelihood mean_n(−log p[n, t_n]) and the mean uniform term
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
    // Checked in i64 on the targets' device, on every path (a cast to u32 would wrap a negative
    // or huge id into the range); the offending row is looked up only when there is one.
    let wide = targets.to_dtype(DType::I64)?;
    let lo = wide.min_all()?.to_scalar::<i64>()?;
    let hi = wide.max_all()?.to_scalar::<i64>()?;
    if lo < 0 || hi >= v as i64 {
        let t = wide.to_vec1::<i64>()?;
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
    if !fused_available(logits) {
        return super::reference::cross_entropy_terms(logits, &targets);
    }
    logits.contiguous()?.apply_op2(&targets, CrossEntropyOp)
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
