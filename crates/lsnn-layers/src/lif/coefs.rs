//! Where the kernels read β and θ from: one pair for every neuron (the config's fixed values, or
//! one shared learnable pair), or one pair per feature (learnable per neuron, broadcast over the
//! leading neuron dims as snnTorch broadcasts a `beta` of shape [H]).
//!
//! The kernels are generic over the source, so the fixed path keeps its scalar inner loops and
//! only the per-feature path reads two more values per neuron (expanded once per block of
//! neurons, never per step).

use crate::kernel::Real;

/// F, the number of features a per-feature (β, θ) pair indexes: the last neuron dim (1 for
/// scalar neurons). Neuron j (flattened row-major) uses pair j mod F.
pub(crate) fn features(neurons: &[usize]) -> usize {
    neurons.last().copied().unwrap_or(1)
}

/// β and θ of neuron `j` of a block, as the inner loops read them.
pub(crate) trait Lanes<T> {
    /// (β, θ) of neuron `j` of the block.
    ///
    /// # Safety
    /// `j` is less than the width of the block the lanes were made for (the inner loops run
    /// `j` over `0..w`; unchecked so that the per-feature loops vectorise like the fixed ones).
    unsafe fn at(&self, j: usize) -> (T, T);
}

/// A source of β and θ for blocks of neurons.
pub(crate) trait Coefs<T: Real>: Sync {
    /// What one block reads.
    type Lanes: Lanes<T>;
    /// The coefficients of neurons `[a, a + w)`.
    fn lanes(&self, a: usize, w: usize) -> Self::Lanes;
    /// How many (β, θ) pairs there are: 1, or the feature count F (neuron j uses pair j mod F).
    fn pairs(&self) -> usize;
}

/// One β and one θ for every neuron.
#[derive(Clone, Copy)]
pub(crate) struct Params<T> {
    pub beta: T,
    pub theta: T,
}

impl<T: Copy> Lanes<T> for Params<T> {
    #[inline(always)]
    unsafe fn at(&self, _j: usize) -> (T, T) {
        (self.beta, self.theta)
    }
}

impl<T: Real> Coefs<T> for Params<T> {
    type Lanes = Params<T>;
    fn lanes(&self, _a: usize, _w: usize) -> Params<T> {
        *self
    }
    fn pairs(&self) -> usize {
        1
    }
}

/// One β and one θ per feature: neuron j (flattened row-major) uses pair j mod F.
pub(crate) struct PerFeature<'a, T> {
    pub beta: &'a [T],
    pub theta: &'a [T],
}

/// [`PerFeature`]'s coefficients laid out for one block.
pub(crate) struct Expanded<T> {
    beta: Vec<T>,
    theta: Vec<T>,
}

impl<T: Copy> Lanes<T> for Expanded<T> {
    #[inline(always)]
    unsafe fn at(&self, j: usize) -> (T, T) {
        debug_assert!(j < self.beta.len() && j < self.theta.len());
        // SAFETY: both vectors hold the block's w values and the caller keeps j < w.
        unsafe { (*self.beta.get_unchecked(j), *self.theta.get_unchecked(j)) }
    }
}

impl<T: Real> Coefs<T> for PerFeature<'_, T> {
    type Lanes = Expanded<T>;
    fn lanes(&self, a: usize, w: usize) -> Expanded<T> {
        let f = self.beta.len();
        // Whole runs of the F values copied at a time (an iterator cycling over them one value
        // at a time took 15% of a per-feature forward + backward).
        let lay = |v: &[T]| -> Vec<T> {
            let mut out = Vec::with_capacity(w);
            let mut from = a % f.max(1);
            while out.len() < w && !v.is_empty() {
                let take = (v.len() - from).min(w - out.len());
                out.extend_from_slice(&v[from..from + take]);
                from = 0;
            }
            out
        };
        let (beta, theta) = (lay(self.beta), lay(self.theta));
        // `Lanes::at` reads these unchecked for every j < w.
        assert!(
            beta.len() == w && theta.len() == w,
            "per-feature β/θ of {} and {} values cannot fill a block of {w}",
            self.beta.len(),
            self.theta.len()
        );
        Expanded { beta, theta }
    }
    fn pairs(&self) -> usize {
        self.beta.len()
    }
}

/// Runs `$body` with `$c` bound to the coefficient source of a parameter slice: `None` (the
/// fixed pair `$fixed`), a shared learnable pair `[β, θ]`, or `[β_0..β_F, θ_0..θ_F]`.
macro_rules! with_coefs {
    ($params:expr, $fixed:expr, |$c:ident| $body:expr) => {
        match $params {
            None => {
                let $c = &$fixed;
                $body
            }
            Some(p) if p.len() == 2 => {
                let $c = &$crate::lif::coefs::Params {
                    beta: p[0],
                    theta: p[1],
                };
                $body
            }
            Some(p) => {
                let (beta, theta) = p.split_at(p.len() / 2);
                let $c = &$crate::lif::coefs::PerFeature { beta, theta };
                $body
            }
        }
    };
}
pub(crate) use with_coefs;
