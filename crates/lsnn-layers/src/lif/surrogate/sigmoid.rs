//! The sigmoid surrogate, snnTorch `sigmoid(slope=k)`: σ'(x) = k·e^(−kx) / (1 + e^(−kx))², the
//! derivative of the logistic function 1 / (1 + e^(−kx)).

use super::{positive, SurrogateFn};
use crate::error::Result;
use crate::kernel::Real;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// k·e^(−kx) / (1 + e^(−kx))².
///
/// Computed as k·e / (1 + e)² with e = e^(−k|x|) (the function is even): e never exceeds 1, so
/// the gradient is 0, not snnTorch's ∞/∞ = NaN, far below the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sigmoid {
    /// The slope k (snnTorch's default 25).
    pub slope: f64,
}

impl Default for Sigmoid {
    fn default() -> Self {
        Sigmoid { slope: 25.0 }
    }
}

impl SurrogateFn for Sigmoid {
    type Kernel<T: Real> = T;

    fn kernel<T: Real>(&self) -> T {
        T::from_f64(self.slope)
    }

    #[inline(always)]
    fn grad<T: Real>(k: &T, x: T) -> T {
        let e = (T::zero() - *k * x.abs_()).exp_nonpositive();
        let d = T::one() + e;
        *k * e / (d * d)
    }

    fn grad_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let e = x.abs()?.affine(-self.slope, 0.0)?.exp()?;
        let d = (&e + 1.0)?.sqr()?;
        e.affine(self.slope, 0.0)? / d
    }

    fn validate(&self) -> Result<()> {
        positive("sigmoid slope", self.slope)
    }
}
