//! Input checks of the public entry points (design §8.2). The finiteness check reduces on the tensor's own
//! device and brings back one scalar (two only when something is wrong), instead of copying the
//! whole input to the host.

use crate::error::{LayerError, Result};
use candle_core::{DType, Tensor};

/// Checks that `x` has `rank` dimensions with the last one equal to `width`.
pub fn check_width(x: &Tensor, what: &'static str, rank: usize, width: usize) -> Result<()> {
    if x.rank() != rank || x.dims()[rank - 1] != width {
        return Err(LayerError::Shape {
            what,
            expected: format!("rank {rank} with last dimension {width}"),
            actual: x.dims().to_vec(),
        });
    }
    Ok(())
}

/// Fails with [`LayerError::NonFinite`] if `x` holds NaN or infinity.
///
/// `x − x` is 0 exactly where x is finite and NaN where it is not (∞ − ∞ and NaN − NaN are NaN),
/// so its sum is 0 or NaN whatever the magnitudes: summing `x` itself would overflow to ∞ for
/// large finite values. The count of bad values is computed only when there are some.
pub fn check_finite(x: &Tensor, what: &'static str) -> Result<()> {
    if !x.dtype().is_float() || x.elem_count() == 0 {
        return Ok(());
    }
    #[allow(clippy::eq_op)] // x − x is the point: 0 where finite, NaN elsewhere
    let diff = (x - x)?;
    let sum = diff.sum_all()?.to_dtype(DType::F32)?.to_scalar::<f32>()?;
    if sum == 0.0 {
        return Ok(());
    }
    let count = diff
        .ne(&diff)?
        .to_dtype(DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize;
    Err(LayerError::NonFinite { what, count })
}

/// A dropout probability must lie in [0, 1).
pub fn check_probability(field: &str, p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(LayerError::config(
            field,
            format!("{p}; expected a value in [0, 1)"),
        ))
    }
}

/// A user's string as it appears in an error message: at most 64 characters (and the length),
/// so that no message grows with the size of the bad input.
pub fn clip(s: &str) -> String {
    const MAX: usize = 64;
    let n = s.chars().count();
    if n <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}… ({n} characters)")
    }
}
