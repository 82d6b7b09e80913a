//! The one f32/f64 dispatch of the CPU kernels, and the element trait they are written for.

use candle_core::WithDType;

/// Runs `$body` with `$t` bound to the element type of `$dt` (f32 or f64) and wraps the `Vec`
/// it returns in the matching `CpuStorage`; other dtypes are an error naming the op. With
/// `map` instead of a storage the body's value is returned as it is (for kernels returning
/// several buffers).
macro_rules! float_kernel {
    ($name:expr, $dt:expr, |$t:ident| $body:expr) => {
        match $dt {
            candle_core::DType::F32 => {
                type $t = f32;
                candle_core::CpuStorage::F32($body)
            }
            candle_core::DType::F64 => {
                type $t = f64;
                candle_core::CpuStorage::F64($body)
            }
            dt => candle_core::bail!("{}: dtype {dt:?} not supported, expected f32 or f64", $name),
        }
    };
    (map $name:expr, $dt:expr, |$t:ident| $body:expr) => {
        match $dt {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            dt => candle_core::bail!("{}: dtype {dt:?} not supported, expected f32 or f64", $name),
        }
    };
}

pub(crate) use float_kernel;

/// The floating-point element types the CPU kernels are written for (f32, f64), with the
/// transcendental functions they need.
pub(crate) trait Real: WithDType {
    fn tanh_(self) -> Self;
    fn exp_(self) -> Self;
    fn ln_(self) -> Self;
    fn sqrt_(self) -> Self;
    fn erf_(self) -> Self;
    fn abs_(self) -> Self;
    /// The CPU storage holding `v`.
    fn storage(v: Vec<Self>) -> candle_core::CpuStorage;
}

/// `Real` for a primitive float type whose inherent methods give tanh, exp, ln, sqrt and abs;
/// erf comes from libm.
macro_rules! impl_real {
    ($t:ty, $erf:path, $variant:ident) => {
        impl Real for $t {
            #[inline(always)]
            fn tanh_(self) -> Self {
                self.tanh()
            }
            #[inline(always)]
            fn exp_(self) -> Self {
                self.exp()
            }
            #[inline(always)]
            fn ln_(self) -> Self {
                self.ln()
            }
            #[inline(always)]
            fn sqrt_(self) -> Self {
                self.sqrt()
            }
            #[inline(always)]
            fn erf_(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn abs_(self) -> Self {
                self.abs()
            }
            fn storage(v: Vec<Self>) -> candle_core::CpuStorage {
                candle_core::CpuStorage::$variant(v)
            }
        }
    };
}

impl_real!(f32, libm::erff, F32);
impl_real!(f64, libm::erf, F64);
