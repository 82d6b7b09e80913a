//! Inverted dropout with a one-bit-per-element mask drawn from the project's generator; the
//! mask is also how the LIF and LayerNorm ops drop inside themselves. Its reference is the mask
//! as a tensor of the same draws ([`SeededRng::dropout_mask`]).

use crate::kernel::{contiguous_slice, float_kernel, fused_available, Real};
use crate::rng::SeededRng;
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp1, Layout, Shape, Tensor};

/// Inverted dropout: each element of `x` is zeroed with probability `p` ∈ [0, 1) and the rest
/// scaled by 1/(1 − p), the mask drawn from `rng` ([`SeededRng::dropout_bits`]). The op keeps
/// the mask as one bit per element (not a tensor of the input's size), and its backward is the
/// same masking applied to the gradient (no gradient is computed for a mask).
pub fn dropout(x: &Tensor, p: f64, rng: &mut SeededRng) -> candle_core::Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout: probability {p} outside [0, 1)");
    }
    if p == 0.0 {
        // Nothing to drop and nothing drawn, on every path.
        return Ok(x.clone());
    }
    if !fused_available(x) {
        return x * rng.dropout_mask(x.shape(), p, x.dtype(), x.device())?;
    }
    x.contiguous()?
        .apply_op1(KeepMask::draw(rng, x.elem_count(), p))
}

/// An inverted-dropout mask, one bit per element (1 = kept, scaled by 1/(1 − p)). As a custom
/// op it masks its input, and its backward masks the gradient the same way.
#[derive(Debug, Clone)]
pub(crate) struct KeepMask {
    keep: std::sync::Arc<Vec<u64>>,
    scale: f64,
}

impl KeepMask {
    /// A mask for `n` elements dropped with probability `p` (checked by the caller).
    pub(crate) fn draw(rng: &mut SeededRng, n: usize, p: f64) -> Self {
        KeepMask {
            keep: std::sync::Arc::new(rng.dropout_bits(n, p)),
            scale: 1.0 / (1.0 - p),
        }
    }

    /// True when the mask has exactly the words `n` elements need.
    pub(crate) fn fits(&self, n: usize) -> bool {
        n.div_ceil(64) == self.keep.len()
    }

    /// `x` masked in place.
    pub(crate) fn apply_in_place<T: Real>(&self, x: &mut [T]) {
        let scale = T::from_f64(self.scale);
        for (xs, &word) in x.chunks_mut(64).zip(self.keep.iter()) {
            for (j, v) in xs.iter_mut().enumerate() {
                *v = if word >> j & 1 == 1 {
                    *v * scale
                } else {
                    T::zero()
                };
            }
        }
    }

    fn apply<T: Real>(&self, x: &[T]) -> Vec<T> {
        let mut out = x.to_vec();
        self.apply_in_place(&mut out);
        out
    }
}

impl CustomOp1 for KeepMask {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        if !self.fits(l.shape().elem_count()) {
            candle_core::bail!(
                "dropout: a mask of {} words for {} elements",
                self.keep.len(),
                l.shape().elem_count()
            );
        }
        let out = float_kernel!(self.name(), s.dtype(), |T| self
            .apply::<T>(contiguous_slice(s, l, "dropout: x")?));
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(self)?))
    }
}
