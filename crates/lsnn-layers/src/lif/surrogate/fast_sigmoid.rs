//! The fast-sigmoid surrogate, snnTorch `fast_sigmoid(slope=k)`: σ'(x) = 1 / (k·|x| + 1)².

use super::{positive, SurrogateFn};
use crate::error::Result;
use crate::kernel::Real;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// 1 / (k·|x| + 1)².
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FastSigmoid {
    /// The slope k (snnTorch's default 25).
    pub slope: f64,
}

impl Default for FastSigmoid {
    fn default() -> Self {
        FastSigmoid { slope: 25.0 }
    }
}

impl SurrogateFn for FastSigmoid {
    type Kernel<T: Real> = T;

    fn kernel<T: Real>(&self) -> T {
        T::from_f64(self.slope)
    }

    #[inline(always)]
    fn grad<T: Real>(k: &T, x: T) -> T {
        let d = *k * x.abs_() + T::one();
        T::one() / (d * d)
    }

    fn grad_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.abs()?.affine(self.slope, 1.0)?.sqr()?.recip()
    }

    fn validate(&self) -> Result<()> {
        positive("fast_sigmoid slope", self.slope)
    }
}
