//! The attention softmax: softmax(scale·s + causal mask) over the last dimension as one CPU op
//! with its own backward (candle-nn's `softmax_last_dim` has none). Reference:
//! [`super::reference::masked_softmax`].

use crate::kernel::lanes::exp_shifted_in_place;
use crate::kernel::{contiguous_slice, float_kernel, fused_available, row_chunks, Real};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor,
};

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
    if !fused_available(scores) {
        return super::reference::masked_softmax(scores, scale, causal);
    }
    let op = SoftmaxOp {
        scale,
        causal,
        lq,
        lk,
    };
    scores.contiguous()?.apply_op1(op)
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
                pr.copy_from_slice(sr);
                exp_shifted_in_place(pr, scale, m);
                let mut sum = T::zero();
                for &e in pr.iter() {
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
