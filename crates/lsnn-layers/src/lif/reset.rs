//! Reset mechanisms (design §2.1): what a spike of the previous step does to the membrane. The
//! reset r_t = H(U_{t−1} − θ) carries no gradient.
//!
//! ```text
//! subtract: U_t = β·U_{t−1} + I_t − r_t·θ
//! zero:     U_t = β·(1 − r_t)·U_{t−1} + I_t
//! none:     U_t = β·U_{t−1} + I_t
//! ```
//! Each mechanism is a type with its step and its BPTT carry ∂U_t/∂U_{t−1} as the kernels see
//! them (the arithmetic in exactly the order of the composed reference, so that forward results
//! agree bit for bit), and the same step as candle ops for the reference.

use crate::kernel::Real;
use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// How the membrane is reset after a spike (plain data for config files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ResetMechanism {
    /// Subtract the threshold (snnTorch's default).
    #[default]
    Subtract,
    /// Set the membrane to zero.
    Zero,
    /// No reset.
    None,
}

/// A reset mechanism as the kernels use it.
pub(crate) trait Reset: Copy + Send + Sync + 'static {
    /// U_t from U_{t−1} and I_t; `r` = H(U_{t−1} − θ).
    fn step<T: Real>(beta: T, theta: T, r: T, u: T, i: T) -> T;
    /// ∂U_t/∂U_{t−1} with the reset detached, given r = H(U_{t−1} − θ).
    fn carry<T: Real>(beta: T, r: T) -> T;
    /// ∂U_t/∂β given r and U_{t−1}.
    fn dbeta<T: Real>(r: T, u: T) -> T;
    /// ∂U_t/∂θ through the reset term (r itself detached), given r.
    fn dtheta<T: Real>(r: T) -> T;
    /// [`Reset::step`] as candle ops (the reference), `r` as a 0/1 tensor.
    fn step_tensor(beta: f64, theta: f64, r: &Tensor, u: &Tensor, i: &Tensor) -> Result<Tensor>;
    /// [`Reset::step`] as candle ops with β and θ as tensors broadcast over the neurons (the
    /// reference of learnable parameters; the same arithmetic order as the kernels).
    fn step_tensor_var(
        beta: &Tensor,
        theta: &Tensor,
        r: &Tensor,
        u: &Tensor,
        i: &Tensor,
    ) -> Result<Tensor>;
}

/// [`ResetMechanism::Subtract`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subtract;
/// [`ResetMechanism::Zero`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ToZero;
/// [`ResetMechanism::None`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoReset;

impl Reset for Subtract {
    #[inline(always)]
    fn step<T: Real>(beta: T, theta: T, r: T, u: T, i: T) -> T {
        beta * u + i - r * theta
    }
    #[inline(always)]
    fn carry<T: Real>(beta: T, _r: T) -> T {
        beta
    }
    #[inline(always)]
    fn dbeta<T: Real>(_r: T, u: T) -> T {
        u
    }
    #[inline(always)]
    fn dtheta<T: Real>(r: T) -> T {
        T::zero() - r
    }
    fn step_tensor(beta: f64, theta: f64, r: &Tensor, u: &Tensor, i: &Tensor) -> Result<Tensor> {
        (u.affine(beta, 0.0)? + i)? - r.affine(theta, 0.0)?
    }
    fn step_tensor_var(
        beta: &Tensor,
        theta: &Tensor,
        r: &Tensor,
        u: &Tensor,
        i: &Tensor,
    ) -> Result<Tensor> {
        (u.broadcast_mul(beta)? + i)? - r.broadcast_mul(theta)?
    }
}

impl Reset for ToZero {
    #[inline(always)]
    fn step<T: Real>(beta: T, _theta: T, r: T, u: T, i: T) -> T {
        beta * ((T::one() - r) * u) + i
    }
    #[inline(always)]
    fn carry<T: Real>(beta: T, r: T) -> T {
        beta * (T::one() - r)
    }
    #[inline(always)]
    fn dbeta<T: Real>(r: T, u: T) -> T {
        (T::one() - r) * u
    }
    #[inline(always)]
    fn dtheta<T: Real>(_r: T) -> T {
        T::zero()
    }
    fn step_tensor(beta: f64, _theta: f64, r: &Tensor, u: &Tensor, i: &Tensor) -> Result<Tensor> {
        (u * r.affine(-1.0, 1.0)?)?.affine(beta, 0.0)? + i
    }
    fn step_tensor_var(
        beta: &Tensor,
        _theta: &Tensor,
        r: &Tensor,
        u: &Tensor,
        i: &Tensor,
    ) -> Result<Tensor> {
        (u * r.affine(-1.0, 1.0)?)?.broadcast_mul(beta)? + i
    }
}

impl Reset for NoReset {
    #[inline(always)]
    fn step<T: Real>(beta: T, _theta: T, _r: T, u: T, i: T) -> T {
        beta * u + i
    }
    #[inline(always)]
    fn carry<T: Real>(beta: T, _r: T) -> T {
        beta
    }
    #[inline(always)]
    fn dbeta<T: Real>(_r: T, u: T) -> T {
        u
    }
    #[inline(always)]
    fn dtheta<T: Real>(_r: T) -> T {
        T::zero()
    }
    fn step_tensor(beta: f64, _theta: f64, _r: &Tensor, u: &Tensor, i: &Tensor) -> Result<Tensor> {
        u.affine(beta, 0.0)? + i
    }
    fn step_tensor_var(
        beta: &Tensor,
        _theta: &Tensor,
        _r: &Tensor,
        u: &Tensor,
        i: &Tensor,
    ) -> Result<Tensor> {
        u.broadcast_mul(beta)? + i
    }
}

/// Runs `$body` with `$r` bound to the reset type of a [`ResetMechanism`].
macro_rules! with_reset {
    ($mech:expr, |$r:ident| $body:expr) => {
        match $mech {
            $crate::lif::ResetMechanism::Subtract => {
                type $r = $crate::lif::reset::Subtract;
                $body
            }
            $crate::lif::ResetMechanism::Zero => {
                type $r = $crate::lif::reset::ToZero;
                $body
            }
            $crate::lif::ResetMechanism::None => {
                type $r = $crate::lif::reset::NoReset;
                $body
            }
        }
    };
}
pub(crate) use with_reset;
