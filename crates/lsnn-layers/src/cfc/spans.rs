//! The checks of a CfC call's inputs: sequences, states and per-step time spans.

use crate::error::{LayerError, Result};
use crate::nn::check_width;
use candle_core::Tensor;

/// (B, L) of a sequence [B, L, width] with at least one position.
pub(crate) fn check_sequence(
    x: &Tensor,
    width: usize,
    what: &'static str,
) -> Result<(usize, usize)> {
    check_width(x, what, 3, width)?;
    let (b, l, _) = x.dims3()?;
    if l == 0 {
        return Err(LayerError::Shape {
            what,
            expected: "at least one position (L >= 1)".into(),
            actual: x.dims().to_vec(),
        });
    }
    Ok((b, l))
}

/// A state [batch, width].
pub(crate) fn check_state(
    h: &Tensor,
    batch: usize,
    width: usize,
    what: &'static str,
) -> Result<()> {
    if h.dims() != [batch, width] {
        return Err(LayerError::Shape {
            what,
            expected: format!("[{batch}, {width}]"),
            actual: h.dims().to_vec(),
        });
    }
    Ok(())
}

/// Per-step time spans [B, L] or [B, L, 1], finite, as [B, L, 1].
pub(crate) fn check_spans(ts: &Tensor, b: usize, l: usize) -> Result<Tensor> {
    let ok = ts.dims() == [b, l] || ts.dims() == [b, l, 1];
    if !ok {
        return Err(LayerError::Shape {
            what: "cfc timespans",
            expected: format!("[{b}, {l}] or [{b}, {l}, 1] (one span per row and step)"),
            actual: ts.dims().to_vec(),
        });
    }
    crate::nn::check_finite(ts, "cfc timespans")?;
    Ok(ts.reshape((b, l, 1))?)
}

/// One step's spans [B] or [B, 1], finite, as [B, 1].
pub(crate) fn check_step_span(ts: &Tensor, b: usize) -> Result<Tensor> {
    if ts.dims() != [b] && ts.dims() != [b, 1] {
        return Err(LayerError::Shape {
            what: "cfc step timespan",
            expected: format!("[{b}] or [{b}, 1] (one span per row)"),
            actual: ts.dims().to_vec(),
        });
    }
    crate::nn::check_finite(ts, "cfc step timespan")?;
    Ok(ts.reshape((b, 1))?)
}
