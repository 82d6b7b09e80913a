//! Where the current-based LIF kernels read α, β and θ: one triple for every neuron (the config's
//! fixed values, or one shared learnable triple), or one triple per feature (the last neuron dim,
//! neuron j using triple j mod F), laid out once per block of neurons, never per step.

use crate::kernel::Real;

/// α, β, θ of neuron `j` of a block.
pub(crate) trait Lanes<T> {
    /// (α, β, θ) of neuron `j` of the block.
    ///
    /// # Safety
    /// `j` is less than the width of the block the lanes were made for (unchecked so that the
    /// per-feature loops vectorise like the fixed ones).
    unsafe fn at(&self, j: usize) -> (T, T, T);
}

/// A source of α, β, θ for blocks of neurons.
pub(crate) trait Coefs<T: Real>: Sync {
    /// What one block reads.
    type Lanes: Lanes<T>;
    /// The coefficients of neurons `[a, a + w)`.
    fn lanes(&self, a: usize, w: usize) -> Self::Lanes;
    /// How many triples there are: 1, or the feature count F.
    fn triples(&self) -> usize;
}

/// One α, β, θ for every neuron.
#[derive(Clone, Copy)]
pub(crate) struct Triple<T> {
    pub alpha: T,
    pub beta: T,
    pub theta: T,
}

impl<T: Copy> Lanes<T> for Triple<T> {
    #[inline(always)]
    unsafe fn at(&self, _j: usize) -> (T, T, T) {
        (self.alpha, self.beta, self.theta)
    }
}

impl<T: Real> Coefs<T> for Triple<T> {
    type Lanes = Triple<T>;
    fn lanes(&self, _a: usize, _w: usize) -> Triple<T> {
        *self
    }
    fn triples(&self) -> usize {
        1
    }
}

/// One triple per feature, packed [α_0..α_F, β_0..β_F, θ_0..θ_F].
pub(crate) struct PerFeature<'a, T> {
    pub packed: &'a [T],
}

/// [`PerFeature`]'s coefficients laid out for one block.
pub(crate) struct Expanded<T> {
    alpha: Vec<T>,
    beta: Vec<T>,
    theta: Vec<T>,
}

impl<T: Copy> Lanes<T> for Expanded<T> {
    #[inline(always)]
    unsafe fn at(&self, j: usize) -> (T, T, T) {
        debug_assert!(j < self.alpha.len() && j < self.beta.len() && j < self.theta.len());
        // SAFETY: the three vectors hold the block's w values and the caller keeps j < w.
        unsafe {
            (
                *self.alpha.get_unchecked(j),
                *self.beta.get_unchecked(j),
                *self.theta.get_unchecked(j),
            )
        }
    }
}

/// `v`'s F values repeated to cover neurons `[a, a + w)` (neuron j takes v[j mod F]), copied a
/// whole run at a time.
pub(crate) fn lay<T: Copy>(v: &[T], a: usize, w: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(w);
    let mut from = a % v.len().max(1);
    while out.len() < w && !v.is_empty() {
        let take = (v.len() - from).min(w - out.len());
        out.extend_from_slice(&v[from..from + take]);
        from = 0;
    }
    out
}

impl<T: Real> Coefs<T> for PerFeature<'_, T> {
    type Lanes = Expanded<T>;
    fn lanes(&self, a: usize, w: usize) -> Expanded<T> {
        let f = self.triples();
        let (alpha, beta, theta) = (
            lay(&self.packed[..f], a, w),
            lay(&self.packed[f..2 * f], a, w),
            lay(&self.packed[2 * f..3 * f], a, w),
        );
        // `Lanes::at` reads these unchecked for every j < w.
        assert!(
            alpha.len() == w && beta.len() == w && theta.len() == w,
            "per-feature α/β/θ of {f} values cannot fill a block of {w}"
        );
        Expanded { alpha, beta, theta }
    }
    fn triples(&self) -> usize {
        self.packed.len() / 3
    }
}

/// Runs `$body` with `$c` bound to the coefficient source of a parameter slice: `None` (the
/// fixed triple `$fixed`), a shared learnable `[α, β, θ]`, or `[α_0..α_F, β_0..β_F, θ_0..θ_F]`.
macro_rules! with_syn_coefs {
    ($params:expr, $fixed:expr, |$c:ident| $body:expr) => {
        match $params {
            None => {
                let $c = &$fixed;
                $body
            }
            Some(p) if p.len() == 3 => {
                let $c = &$crate::synaptic::coefs::Triple {
                    alpha: p[0],
                    beta: p[1],
                    theta: p[2],
                };
                $body
            }
            Some(p) => {
                let $c = &$crate::synaptic::coefs::PerFeature { packed: p };
                $body
            }
        }
    };
}
pub(crate) use with_syn_coefs;
