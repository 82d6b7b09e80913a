//! LayerNorm over the last dimension (biased variance): y = (x − μ)/√(σ² + ε)·w + b. The op is
//! [`super::norm_act`] without activation or dropout; [`moments`] is the row statistic every
//! LayerNorm kernel shares. Reference: [`super::reference::layer_norm`].

use super::norm_act::{norm_act, NormAct};
use crate::kernel::Real;
use candle_core::Tensor;

/// LayerNorm over the last dimension (biased variance): y = (x − μ)/√(σ² + ε)·w + b, as one op
/// keeping only x for backward ([`norm_act`] with [`NormAct::Norm`] and no dropout).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    norm_act(x, w, b, eps, NormAct::Norm, None)
}

/// Mean and 1/√(σ² + ε) of one row.
#[inline(always)]
pub(crate) fn moments<T: Real>(row: &[T], eps: T) -> (T, T) {
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
