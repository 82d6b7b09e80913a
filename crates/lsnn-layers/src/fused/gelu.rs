//! Exact (erf) GELU, x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2, as one CPU op with its own backward
//! dx = dy·(Φ(x) + x·φ(x)). Reference: [`super::reference::gelu`].

use crate::kernel::lanes::gelu_in_place;
use crate::kernel::{contiguous_slice, float_kernel, fused_available, row_chunks, Real};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor,
};

/// Exact (erf) GELU: x·Φ(x) with Φ(x) = (1 + erf(x/√2))/2.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !fused_available(x) {
        return super::reference::gelu(x);
    }
    x.contiguous()?.apply_op1(GeluOp)
}

#[derive(Debug, Clone, Copy)]
struct GeluOp;

fn gelu_fwd<T: Real>(x: &[T]) -> Vec<T> {
    let mut y = x.to_vec();
    row_chunks(&mut y, 1, x.len(), 8 * x.len(), |_, out| {
        gelu_in_place::<T, false>(out)
    });
    y
}

/// dx = dy·(Φ(x) + x·φ(x)).
fn gelu_bwd<T: Real>(x: &[T], dy: &[T]) -> Vec<T> {
    let mut dx = x.to_vec();
    row_chunks(&mut dx, 1, x.len(), 8 * x.len(), |range, out| {
        gelu_in_place::<T, true>(out);
        for (o, &g) in out.iter_mut().zip(&dy[range]) {
            *o = g * *o;
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
