//! What a reset does to the alpha neuron's three states (design §2.12), as snnTorch 1.0.0's
//! `Alpha` does it. With E', I', M' the step's values before the reset, I_{t−1} the previous
//! inhibitory current and r_t = H(U_{t−1} − θ) detached:
//!
//! ```text
//! subtract: E = E' − r·θ    I = I' − r·I'    U = M' + r·I_{t−1}
//! zero:     E = E' − r·E'   I = I' − r·I'    U = M' − r·M'
//! none:     E = E'          I = I'           U = M'
//! ```
//!
//! (snnTorch subtracts, for the inhibitory current, the freshly computed β·I_{t−1} − x_t — so its
//! "subtract" clears I like the reset to zero — and, for the membrane, −I_{t−1}.) The mechanisms
//! are the synaptic ones' types ([`crate::synaptic::reset`]), so one dispatch serves both
//! neurons; each carries its map, its backward and the same map as candle ops for the reference,
//! in the same arithmetic order so that forward results agree bit for bit.

use crate::kernel::Real;
use crate::synaptic::reset::{NoReset, Subtract, ToZero};
use candle_core::{Result, Tensor};

/// The gradients a reset passes back: to (E', I', M'), directly to I_{t−1}, and to θ.
pub(crate) struct ResetGrads<T> {
    /// dL/dE'.
    pub e: T,
    /// dL/dI'.
    pub i: T,
    /// dL/dM'.
    pub m: T,
    /// dL/dI_{t−1} directly (the subtract reset's membrane term).
    pub i_prev: T,
    /// dL/dθ through the reset.
    pub theta: T,
}

/// A reset mechanism of the alpha neuron.
pub(crate) trait AlphaReset: Copy + Send + Sync + 'static {
    /// (E, I, U) from (E', I', M'), r, θ and I_{t−1}.
    fn apply<T: Real>(e: T, i: T, m: T, r: T, theta: T, i_prev: T) -> (T, T, T);
    /// The backward of [`AlphaReset::apply`] from dL/d(E, I, U), the reset detached.
    fn back<T: Real>(ge: T, gi: T, gm: T, r: T) -> ResetGrads<T>;
    /// [`AlphaReset::apply`] as candle ops, θ broadcast over the neurons.
    fn apply_tensor(
        e: &Tensor,
        i: &Tensor,
        m: &Tensor,
        r: &Tensor,
        theta: &Tensor,
        i_prev: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)>;
}

impl AlphaReset for Subtract {
    #[inline(always)]
    fn apply<T: Real>(e: T, i: T, m: T, r: T, theta: T, i_prev: T) -> (T, T, T) {
        (e - r * theta, i - r * i, m + r * i_prev)
    }
    #[inline(always)]
    fn back<T: Real>(ge: T, gi: T, gm: T, r: T) -> ResetGrads<T> {
        ResetGrads {
            e: ge,
            i: gi * (T::one() - r),
            m: gm,
            i_prev: gm * r,
            theta: T::zero() - ge * r,
        }
    }
    fn apply_tensor(
        e: &Tensor,
        i: &Tensor,
        m: &Tensor,
        r: &Tensor,
        theta: &Tensor,
        i_prev: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((
            (e - r.broadcast_mul(theta)?)?,
            (i - (r * i)?)?,
            (m + (r * i_prev)?)?,
        ))
    }
}

impl AlphaReset for ToZero {
    #[inline(always)]
    fn apply<T: Real>(e: T, i: T, m: T, r: T, _theta: T, _i_prev: T) -> (T, T, T) {
        (e - r * e, i - r * i, m - r * m)
    }
    #[inline(always)]
    fn back<T: Real>(ge: T, gi: T, gm: T, r: T) -> ResetGrads<T> {
        let keep = T::one() - r;
        ResetGrads {
            e: ge * keep,
            i: gi * keep,
            m: gm * keep,
            i_prev: T::zero(),
            theta: T::zero(),
        }
    }
    fn apply_tensor(
        e: &Tensor,
        i: &Tensor,
        m: &Tensor,
        r: &Tensor,
        _theta: &Tensor,
        _i_prev: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        Ok(((e - (r * e)?)?, (i - (r * i)?)?, (m - (r * m)?)?))
    }
}

impl AlphaReset for NoReset {
    #[inline(always)]
    fn apply<T: Real>(e: T, i: T, m: T, _r: T, _theta: T, _i_prev: T) -> (T, T, T) {
        (e, i, m)
    }
    #[inline(always)]
    fn back<T: Real>(ge: T, gi: T, gm: T, _r: T) -> ResetGrads<T> {
        ResetGrads {
            e: ge,
            i: gi,
            m: gm,
            i_prev: T::zero(),
            theta: T::zero(),
        }
    }
    fn apply_tensor(
        e: &Tensor,
        i: &Tensor,
        m: &Tensor,
        _r: &Tensor,
        _theta: &Tensor,
        _i_prev: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((e.clone(), i.clone(), m.clone()))
    }
}
