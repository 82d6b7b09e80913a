//! The block's gated residual y + σ(a) ⊙ x as one CPU op; backward recomputes σ(a). Reference:
//! [`super::reference::gated_residual`].

use crate::kernel::lanes::sigmoid_in_place;
use crate::kernel::{contiguous_slice, float_kernel, fused_available, row_chunks, Real};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};

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
    if !(fused_available(y) && y.dtype() == a.dtype() && y.dtype() == x.dtype()) {
        return super::reference::gated_residual(y, a, x);
    }
    y.contiguous()?
        .apply_op3(&a.contiguous()?, &x.contiguous()?, GatedResidualOp)
}

#[derive(Debug, Clone, Copy)]
struct GatedResidualOp;

fn gated_fwd<T: Real>(y: &[T], a: &[T], x: &[T]) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    row_chunks(&mut out, 1, y.len(), 4 * y.len(), |range, o| {
        o.copy_from_slice(&a[range.clone()]);
        sigmoid_in_place(o);
        for ((v, &yv), &xv) in o.iter_mut().zip(&y[range.clone()]).zip(&x[range]) {
            *v = yv + *v * xv;
        }
    });
    out
}

/// Packed [2·n]: da = g⊙x⊙σ(a)(1 − σ(a)), then dx = g⊙σ(a).
fn gated_bwd<T: Real>(a: &[T], x: &[T], g: &[T]) -> Vec<T> {
    let n = a.len();
    let mut out = vec![T::zero(); 2 * n];
    let (da, dx) = out.split_at_mut(n);
    dx.copy_from_slice(a);
    sigmoid_in_place(dx);
    for (((d, s), &xv), &gv) in da.iter_mut().zip(dx.iter_mut()).zip(x).zip(g) {
        let sv = *s;
        *d = gv * xv * sv * (T::one() - sv);
        *s = gv * sv;
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
