//! The triangular surrogate: σ'(x) = max(0, 1 − |x| / w), a triangle of height 1 and half-width
//! w centred on the threshold (Esser et al. 2016; Bellec et al. 2018 with w = 1).
//!
//! Not snnTorch's `triangular(threshold)`: snnTorch 1.0's backward returns +threshold below the
//! threshold and −threshold at and above it, whatever the distance — a sign step, not a triangle,
//! and a gradient that pushes membranes above threshold further up. Its fixture records that
//! behaviour (`tests/fixtures/surrogates.json`), and this type is checked against its formula in
//! f64 instead.

use super::{positive, SurrogateFn};
use crate::error::Result;
use crate::kernel::Real;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// max(0, 1 − |x| / w).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Triangular {
    /// The half-width w (default 1: the gradient reaches zero one threshold unit away).
    pub width: f64,
}

impl Default for Triangular {
    fn default() -> Self {
        Triangular { width: 1.0 }
    }
}

impl SurrogateFn for Triangular {
    /// 1 / w.
    type Kernel<T: Real> = T;

    fn kernel<T: Real>(&self) -> T {
        T::from_f64(1.0 / self.width)
    }

    #[inline(always)]
    fn grad<T: Real>(inv_w: &T, x: T) -> T {
        let v = T::one() - x.abs_() * *inv_w;
        if v > T::zero() {
            v
        } else {
            T::zero()
        }
    }

    fn grad_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.abs()?.affine(-1.0 / self.width, 1.0)?.relu()
    }

    fn validate(&self) -> Result<()> {
        positive("triangular width", self.width)
    }
}
