//! Surrogate gradients: the forward pass of a spike is the exact Heaviside H(U − θ); backward
//! replaces its derivative by a smooth σ'(U − θ) (design §2.1).
//!
//! Each surrogate is one type in its own file implementing the crate's `SurrogateFn`: its
//! parameters as
//! plain serialisable data (snnTorch's closure-valued surrogates could not be pickled, its bug
//! #420), σ' for the CPU kernels (a `Kernel` of precomputed constants, so the inner loops stay
//! branch-free), and σ' as candle ops for the composed reference. [`Surrogate`] is the
//! serialisable choice among them; the crate's `with_surrogate!` macro is the one place that
//! dispatches on it.

mod atan;
mod fast_sigmoid;

pub use atan::Atan;
pub use fast_sigmoid::FastSigmoid;

use crate::error::Result;
use crate::kernel::Real;
use serde::{Deserialize, Serialize};

/// A surrogate gradient as the kernels and the reference use it.
pub(crate) trait SurrogateFn: Copy + Send + Sync + 'static {
    /// The constants σ' needs, in the kernel's element type.
    type Kernel<T: Real>: Copy + Send + Sync;
    /// The constants for element type `T`.
    fn kernel<T: Real>(&self) -> Self::Kernel<T>;
    /// σ'(x) in the kernels.
    fn grad<T: Real>(k: &Self::Kernel<T>, x: T) -> T;
    /// σ'(x) as candle ops, for the composed reference.
    fn grad_tensor(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor>;
    /// Checks the parameters.
    fn validate(&self) -> Result<()>;
}

/// The surrogate gradient of a LIF layer (plain data; in JSON
/// `{"kind": "fast_sigmoid", "slope": 25.0}`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Surrogate {
    /// 1 / (k·|x| + 1)², snnTorch `fast_sigmoid(slope=k)`.
    FastSigmoid(FastSigmoid),
    /// (α/2) / (1 + (π/2·α·x)²), snnTorch `atan(alpha=α)`.
    Atan(Atan),
}

impl Default for Surrogate {
    fn default() -> Self {
        Surrogate::FastSigmoid(FastSigmoid::default())
    }
}

/// Runs `$body` with `$s` bound to the concrete surrogate type inside a [`Surrogate`].
macro_rules! with_surrogate {
    ($sur:expr, |$s:ident| $body:expr) => {
        match $sur {
            $crate::lif::Surrogate::FastSigmoid($s) => $body,
            $crate::lif::Surrogate::Atan($s) => $body,
        }
    };
}
pub(crate) use with_surrogate;

impl Surrogate {
    /// fast_sigmoid with slope k.
    pub const fn fast_sigmoid(slope: f64) -> Self {
        Surrogate::FastSigmoid(FastSigmoid { slope })
    }

    /// atan with sharpness α.
    pub const fn atan(alpha: f64) -> Self {
        Surrogate::Atan(Atan { alpha })
    }

    /// σ'(x) in f64.
    pub fn derivative(&self, x: f64) -> f64 {
        fn d<S: SurrogateFn>(s: &S, x: f64) -> f64 {
            S::grad(&s.kernel::<f64>(), x)
        }
        with_surrogate!(self, |s| d(s, x))
    }

    /// Checks the parameters (finite and positive).
    pub fn validate(&self) -> Result<()> {
        with_surrogate!(self, |s| s.validate())
    }
}

/// A surrogate parameter must be finite and positive.
fn positive(name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(crate::LayerError::config(
            "surrogate",
            format!("{name} {v} is not a positive finite number"),
        ))
    }
}
