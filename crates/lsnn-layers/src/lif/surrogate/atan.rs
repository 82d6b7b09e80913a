//! The arctangent surrogate, snnTorch `atan(alpha=α)`: σ'(x) = (α/2) / (1 + (π/2·α·x)²), the
//! derivative of (1/π)·arctan(π/2·α·x).

use super::{positive, SurrogateFn};
use crate::error::Result;
use crate::kernel::Real;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use std::f64::consts::FRAC_PI_2;

/// (α/2) / (1 + (π/2·α·x)²).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Atan {
    /// The sharpness α (snnTorch's default 2).
    pub alpha: f64,
}

impl Default for Atan {
    fn default() -> Self {
        Atan { alpha: 2.0 }
    }
}

impl SurrogateFn for Atan {
    /// (π/2·α, α/2).
    type Kernel<T: Real> = (T, T);

    fn kernel<T: Real>(&self) -> (T, T) {
        (
            T::from_f64(FRAC_PI_2 * self.alpha),
            T::from_f64(self.alpha / 2.0),
        )
    }

    #[inline(always)]
    fn grad<T: Real>(k: &(T, T), x: T) -> T {
        let y = k.0 * x;
        k.1 / (T::one() + y * y)
    }

    fn grad_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        (x.affine(FRAC_PI_2 * self.alpha, 0.0)?.sqr()? + 1.0)?
            .recip()?
            .affine(self.alpha / 2.0, 0.0)
    }

    fn validate(&self) -> Result<()> {
        positive("atan alpha", self.alpha)
    }
}
