//! What a reset does to the current-based LIF (design §2.10): with m_t = β·U_{t−1} + syn_t and
//! r_t = H(U_{t−1} − θ) detached,
//!
//! ```text
//! subtract: U_t = m_t − r_t·θ
//! zero:     U_t = m_t·(1 − r_t)      (the synaptic current is not reset, as in snnTorch)
//! none:     U_t = m_t
//! ```
//!
//! Unlike the plain LIF's reset to zero (β·(1 − r)·U_{t−1} + I_t, which keeps the step's input),
//! snnTorch's `Synaptic` clears the whole new membrane, input included; each mechanism is a type
//! with its membrane map, its derivative ∂U_t/∂m_t and ∂U_t/∂θ as the kernels see them, and the
//! same map as candle ops for the reference (in the same arithmetic order, so that forward results
//! agree bit for bit).

use crate::kernel::Real;
use candle_core::{Result, Tensor};

/// A reset mechanism of the current-based LIF, as the kernels use it.
pub(crate) trait SynReset: Copy + Send + Sync + 'static {
    /// U_t from m_t, r_t and θ.
    fn mem<T: Real>(m: T, r: T, theta: T) -> T;
    /// ∂U_t/∂m_t with the reset detached.
    fn gate<T: Real>(r: T) -> T;
    /// ∂U_t/∂θ through the reset term (r itself detached).
    fn dtheta<T: Real>(r: T) -> T;
    /// [`SynReset::mem`] as candle ops, θ broadcast over the neurons (a [1] or [F] tensor).
    fn mem_tensor(m: &Tensor, r: &Tensor, theta: &Tensor) -> Result<Tensor>;
}

/// Reset by subtraction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subtract;
/// Reset to zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ToZero;
/// No reset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoReset;

impl SynReset for Subtract {
    #[inline(always)]
    fn mem<T: Real>(m: T, r: T, theta: T) -> T {
        m - r * theta
    }
    #[inline(always)]
    fn gate<T: Real>(_r: T) -> T {
        T::one()
    }
    #[inline(always)]
    fn dtheta<T: Real>(r: T) -> T {
        T::zero() - r
    }
    fn mem_tensor(m: &Tensor, r: &Tensor, theta: &Tensor) -> Result<Tensor> {
        m - r.broadcast_mul(theta)?
    }
}

impl SynReset for ToZero {
    #[inline(always)]
    fn mem<T: Real>(m: T, r: T, _theta: T) -> T {
        m * (T::one() - r)
    }
    #[inline(always)]
    fn gate<T: Real>(r: T) -> T {
        T::one() - r
    }
    #[inline(always)]
    fn dtheta<T: Real>(_r: T) -> T {
        T::zero()
    }
    fn mem_tensor(m: &Tensor, r: &Tensor, _theta: &Tensor) -> Result<Tensor> {
        m * r.affine(-1.0, 1.0)?
    }
}

impl SynReset for NoReset {
    #[inline(always)]
    fn mem<T: Real>(m: T, _r: T, _theta: T) -> T {
        m
    }
    #[inline(always)]
    fn gate<T: Real>(_r: T) -> T {
        T::one()
    }
    #[inline(always)]
    fn dtheta<T: Real>(_r: T) -> T {
        T::zero()
    }
    fn mem_tensor(m: &Tensor, _r: &Tensor, _theta: &Tensor) -> Result<Tensor> {
        Ok(m.clone())
    }
}

/// Runs `$body` with `$r` bound to the [`SynReset`] type of a [`crate::lif::ResetMechanism`].
macro_rules! with_syn_reset {
    ($mech:expr, |$r:ident| $body:expr) => {
        match $mech {
            $crate::lif::ResetMechanism::Subtract => {
                type $r = $crate::synaptic::reset::Subtract;
                $body
            }
            $crate::lif::ResetMechanism::Zero => {
                type $r = $crate::synaptic::reset::ToZero;
                $body
            }
            $crate::lif::ResetMechanism::None => {
                type $r = $crate::synaptic::reset::NoReset;
                $body
            }
        }
    };
}
pub(crate) use with_syn_reset;
