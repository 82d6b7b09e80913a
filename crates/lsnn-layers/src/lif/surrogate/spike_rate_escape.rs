//! The spike-rate-escape surrogate (Gerstner & Kistler 2002, an escape-noise firing rate),
//! snnTorch `spike_rate_escape(beta=β, slope=k)`: σ'(x) = k·e^(−β|x|), centred on the threshold.
//!
//! snnTorch 1.0 documents k·e^(−β|U − 1|) (with U the membrane and its default threshold 1) but
//! computes k·e^(−β|x − 1|) of x = U − θ, one unit above the threshold. This type is the documented
//! one; its fixture test shows the two agree up to that shift (`ours(x) = snnTorch(x + 1)`).

use super::{positive, SurrogateFn};
use crate::error::Result;
use crate::kernel::Real;
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

/// k·e^(−β|x|).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeRateEscape {
    /// The decay β of the rate away from the threshold (snnTorch's default 1).
    pub beta: f64,
    /// The peak k (snnTorch's default 25).
    pub slope: f64,
}

impl Default for SpikeRateEscape {
    fn default() -> Self {
        SpikeRateEscape {
            beta: 1.0,
            slope: 25.0,
        }
    }
}

impl SurrogateFn for SpikeRateEscape {
    /// (β, k).
    type Kernel<T: Real> = (T, T);

    fn kernel<T: Real>(&self) -> (T, T) {
        (T::from_f64(self.beta), T::from_f64(self.slope))
    }

    #[inline(always)]
    fn grad<T: Real>(k: &(T, T), x: T) -> T {
        k.1 * (T::zero() - k.0 * x.abs_()).exp_nonpositive()
    }

    fn grad_tensor(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.abs()?
            .affine(-self.beta, 0.0)?
            .exp()?
            .affine(self.slope, 0.0)
    }

    fn validate(&self) -> Result<()> {
        positive("spike_rate_escape beta", self.beta)?;
        positive("spike_rate_escape slope", self.slope)
    }
}
