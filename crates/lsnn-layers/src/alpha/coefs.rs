//! Where the alpha kernels read their coefficients: α, β, θ as the synaptic ones are given
//! ([`crate::synaptic::coefs`]: fixed, shared or per feature), with the membrane scale
//! τ = ln α / (ln β − ln α) + 1 and its derivatives computed once per triple and block, never per
//! step (two logarithms per neuron and step would cost more than the whole recurrence).

use crate::kernel::Real;
use crate::synaptic::coefs::{lay, Coefs, PerFeature, Triple};

/// What one neuron reads: α, β, θ, τ, ∂τ/∂α and ∂τ/∂β.
#[derive(Clone, Copy)]
pub(crate) struct Coef<T> {
    /// α.
    pub a: T,
    /// β.
    pub b: T,
    /// θ.
    pub theta: T,
    /// τ = ln α / (ln β − ln α) + 1.
    pub tau: T,
    /// ∂τ/∂α.
    pub dtau_da: T,
    /// ∂τ/∂β.
    pub dtau_db: T,
}

/// τ and its derivatives from α, β, θ, in the reference's arithmetic order for τ:
/// with d = ln β − ln α, ∂τ/∂α = ln β / (α·d²) and ∂τ/∂β = −ln α / (β·d²).
pub(crate) fn derive<T: Real>(a: T, b: T, theta: T) -> Coef<T> {
    let (la, lb) = (a.ln_(), b.ln_());
    let d = lb - la;
    let d2 = d * d;
    Coef {
        a,
        b,
        theta,
        tau: la / d + T::one(),
        dtau_da: lb / (a * d2),
        dtau_db: (T::zero() - la) / (b * d2),
    }
}

/// The coefficients of a block of neurons.
pub(crate) trait AlphaLanes<T> {
    /// Neuron `j`'s coefficients.
    ///
    /// # Safety
    /// `j` is less than the width of the block the lanes were made for.
    unsafe fn at(&self, j: usize) -> Coef<T>;
}

/// A coefficient source the alpha kernels take (the synaptic ones, extended).
pub(crate) trait AlphaCoefs<T: Real>: Coefs<T> {
    /// What one block reads.
    type Full: AlphaLanes<T>;
    /// The coefficients of neurons `[a, a + w)`.
    fn full(&self, a: usize, w: usize) -> Self::Full;
}

/// One coefficient set for every neuron.
pub(crate) struct Fixed<T>(Coef<T>);

impl<T: Copy> AlphaLanes<T> for Fixed<T> {
    #[inline(always)]
    unsafe fn at(&self, _j: usize) -> Coef<T> {
        self.0
    }
}

impl<T: Real> AlphaCoefs<T> for Triple<T> {
    type Full = Fixed<T>;
    fn full(&self, _a: usize, _w: usize) -> Fixed<T> {
        Fixed(derive(self.alpha, self.beta, self.theta))
    }
}

/// Per-feature coefficients laid out over a block, one vector per quantity.
pub(crate) struct Laid<T> {
    v: [Vec<T>; 6],
}

impl<T: Copy> AlphaLanes<T> for Laid<T> {
    #[inline(always)]
    unsafe fn at(&self, j: usize) -> Coef<T> {
        debug_assert!(self.v.iter().all(|v| j < v.len()));
        // SAFETY: each vector holds the block's w values and the caller keeps j < w.
        let g = |k: usize| unsafe { *self.v[k].get_unchecked(j) };
        Coef {
            a: g(0),
            b: g(1),
            theta: g(2),
            tau: g(3),
            dtau_da: g(4),
            dtau_db: g(5),
        }
    }
}

impl<T: Real> AlphaCoefs<T> for PerFeature<'_, T> {
    type Full = Laid<T>;
    fn full(&self, a: usize, w: usize) -> Laid<T> {
        let f = self.triples();
        let p = self.packed;
        let at = |j: usize| derive(p[j], p[f + j], p[2 * f + j]);
        // Derived once per feature the block covers: all F, laid out, when the block spans them,
        // else only its own w (a block of 1,024 neurons of a [T, N] layer with N features needs
        // 1,024 of them, not N).
        let (per, from): (Vec<Coef<T>>, usize) = match w >= f {
            true => ((0..f).map(at).collect(), a),
            false => ((a..a + w).map(|j| at(j % f)).collect(), 0),
        };
        let column = |get: fn(&Coef<T>) -> T| {
            let values: Vec<T> = per.iter().map(get).collect();
            lay(&values, from, w)
        };
        let v = [
            column(|c| c.a),
            column(|c| c.b),
            column(|c| c.theta),
            column(|c| c.tau),
            column(|c| c.dtau_da),
            column(|c| c.dtau_db),
        ];
        // `AlphaLanes::at` reads these unchecked for every j < w.
        assert!(
            v.iter().all(|c| c.len() == w),
            "per-feature α/β/θ of {f} values cannot fill a block of {w}"
        );
        Laid { v }
    }
}
