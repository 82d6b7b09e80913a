//! Seeding a backward pass with a given gradient (stage-by-stage back-propagation). Its
//! reference is the product-and-sum it stands for.

use crate::kernel::fused_available;
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};

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
    if !fused_available(x) {
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
