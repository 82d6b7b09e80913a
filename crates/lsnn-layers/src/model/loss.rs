//! The sequence tasks' losses and metrics (design §2.9), over the valid positions only: a
//! `[B, L, 1]` mask of 1 at positions below each row's length and 0 at padding, or no mask when
//! every row is whole. Composed from candle ops, so they differentiate on every device.

use crate::error::{LayerError, Result};
use candle_core::{DType, Device, Tensor, D};

/// The `[B, L, 1]` mask of rows of `lengths` (each in 1..=L) in `dtype`, or `None` when every
/// row is whole (no mask needed). A length of 0 or above L is an error naming the row.
pub fn length_mask(
    lengths: &[usize],
    l: usize,
    dtype: DType,
    device: &Device,
) -> Result<Option<Tensor>> {
    check_lengths(lengths, l)?;
    if lengths.iter().all(|&n| n == l) {
        return Ok(None);
    }
    let mut m = vec![0f32; lengths.len() * l];
    for (row, &n) in lengths.iter().enumerate() {
        m[row * l..row * l + n].fill(1.0);
    }
    Ok(Some(
        Tensor::from_vec(m, (lengths.len(), l, 1), device)?.to_dtype(dtype)?,
    ))
}

/// Each length in 1..=L.
pub fn check_lengths(lengths: &[usize], l: usize) -> Result<()> {
    if let Some((row, &n)) = lengths.iter().enumerate().find(|(_, &n)| n == 0 || n > l) {
        return Err(LayerError::Input {
            what: "sequence lengths",
            message: format!("row {row} has length {n}; expected 1..={l} (the padded length)"),
        });
    }
    Ok(())
}

/// Σ over the valid elements of `e` [B, L, F] (all of them without a mask), and their count.
fn masked_sum(e: &Tensor, mask: Option<&Tensor>) -> Result<(Tensor, f64)> {
    let (b, l, f) = e.dims3()?;
    Ok(match mask {
        None => (e.sum_all()?, (b * l * f) as f64),
        Some(m) => {
            let valid = m.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            (e.broadcast_mul(m)?.sum_all()?, valid * f as f64)
        }
    })
}

/// Smooth-L1 (β = 1, PyTorch's `smooth_l1_loss`) of `pred` against `target` [B, L, F], averaged
/// over the valid elements: 0.5·d² where |d| < 1, else |d| − 0.5. As 0.5·m² + (|d| − m) with
/// m = min(|d|, 1), which is continuous and has the same gradient on both sides: d where |d| < 1,
/// sign(d) beyond, and 0 at d = 0 (no lower clamp, whose tie at 0 would halve a gradient).
pub fn smooth_l1(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let a = (pred - target)?.abs()?;
    let m = a.minimum(1.0)?;
    let e = ((m.sqr()? * 0.5)? + (&a - &m)?)?;
    let (sum, n) = masked_sum(&e, mask)?;
    Ok((sum / n)?)
}

/// Mean squared error over the valid elements (a metric; no graph is needed).
pub fn mse(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (sum, n) = masked_sum(&(pred - target)?.sqr()?, mask)?;
    Ok((sum / n)?)
}

/// Mean absolute error over the valid elements.
pub fn mae(pred: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let (sum, n) = masked_sum(&(pred - target)?.abs()?, mask)?;
    Ok((sum / n)?)
}

/// The fraction of rows of logits `[B, C]` whose arg-max is the class in `classes` `[B]`.
pub fn accuracy(logits: &Tensor, classes: &Tensor) -> Result<f64> {
    let pred = logits.argmax(D::Minus1)?.to_dtype(DType::U32)?;
    let hits = pred
        .eq(&classes.to_dtype(DType::U32)?)?
        .to_dtype(DType::F64)?
        .sum_all()?
        .to_scalar::<f64>()?;
    Ok(hits / logits.dim(0)? as f64)
}
