//! The straight-through estimator, snnTorch `straight_through_estimator()`: σ'(x) = 1, the
//! incoming gradient passed through the spike unchanged (Bengio et al. 2013).

use super::SurrogateFn;
use crate::error::Result;
use crate::kernel::Real;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// σ'(x) = 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StraightThrough {}

impl SurrogateFn for StraightThrough {
    type Kernel<T: Real> = ();

    fn kernel<T: Real>(&self) {}

    #[inline(always)]
    fn grad<T: Real>(_: &(), _: T) -> T {
        T::one()
    }

    fn grad_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.ones_like()
    }

    fn validate(&self) -> Result<()> {
        Ok(())
    }
}
