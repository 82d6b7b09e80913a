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
mod sigmoid;
mod spike_rate_escape;
mod straight_through;
mod triangular;

pub use atan::Atan;
pub use fast_sigmoid::FastSigmoid;
pub use sigmoid::Sigmoid;
pub use spike_rate_escape::SpikeRateEscape;
pub use straight_through::StraightThrough;
pub use triangular::Triangular;

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
    /// k·e^(−kx) / (1 + e^(−kx))², snnTorch `sigmoid(slope=k)`.
    Sigmoid(Sigmoid),
    /// max(0, 1 − |x| / w): a triangle (not snnTorch's `triangular`, see [`Triangular`]).
    Triangular(Triangular),
    /// 1, snnTorch `straight_through_estimator()`.
    StraightThrough(StraightThrough),
    /// k·e^(−β|x|), snnTorch `spike_rate_escape(beta=β, slope=k)` centred on the threshold (see
    /// [`SpikeRateEscape`]).
    SpikeRateEscape(SpikeRateEscape),
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
            $crate::lif::Surrogate::Sigmoid($s) => $body,
            $crate::lif::Surrogate::Triangular($s) => $body,
            $crate::lif::Surrogate::StraightThrough($s) => $body,
            $crate::lif::Surrogate::SpikeRateEscape($s) => $body,
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

    /// sigmoid with slope k.
    pub const fn sigmoid(slope: f64) -> Self {
        Surrogate::Sigmoid(Sigmoid { slope })
    }

    /// The triangle of half-width w.
    pub const fn triangular(width: f64) -> Self {
        Surrogate::Triangular(Triangular { width })
    }

    /// The straight-through estimator.
    pub const fn straight_through() -> Self {
        Surrogate::StraightThrough(StraightThrough {})
    }

    /// spike_rate_escape with decay β and peak k.
    pub const fn spike_rate_escape(beta: f64, slope: f64) -> Self {
        Surrogate::SpikeRateEscape(SpikeRateEscape { beta, slope })
    }

    /// Every kind with its default parameters (for tests and benchmarks that cover them all).
    pub fn all_defaults() -> [Surrogate; 6] {
        [
            Surrogate::FastSigmoid(FastSigmoid::default()),
            Surrogate::Atan(Atan::default()),
            Surrogate::Sigmoid(Sigmoid::default()),
            Surrogate::Triangular(Triangular::default()),
            Surrogate::StraightThrough(StraightThrough::default()),
            Surrogate::SpikeRateEscape(SpikeRateEscape::default()),
        ]
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
