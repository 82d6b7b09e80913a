//! The CfC as a loop of per-step compositions of candle ops: ncps' cell step exactly as ncps
//! computes it ([`step`], [`step_with_span`]), and the sequence of a stack of layers from the
//! first layer's precomputed input projection — the reference of the fused op (the crate-private
//! `cfc::op`) and the path on devices without it.

use super::prepare::{PreparedCfc, PreparedLayer};
use super::{Cfc, CfcMode, Heads};
use crate::cfc::op::Span;
use crate::error::Result;
use crate::nn::check_width;
use candle_core::{Module, Tensor, D};

/// lecun_tanh(x) = 1.7159·tanh(0.666·x).
pub fn lecun_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    x.affine(0.666, 0.0)?.tanh()?.affine(1.7159, 0.0)
}

fn mix(mode: CfcMode, f1: &Tensor, f2: &Tensor, tau: &Tensor) -> Result<Tensor> {
    Ok(match mode {
        CfcMode::NoGate => (f1 + (tau * f2)?)?,
        _ => ((f1 * tau.affine(-1.0, 1.0)?)? + (tau * f2)?)?,
    })
}

/// ts·x for a time span that is a constant or a per-row column [B, 1].
fn scale(x: &Tensor, ts: &SpanValue<'_>) -> Result<Tensor> {
    Ok(match ts {
        SpanValue::Constant(v) => x.affine(*v, 0.0)?,
        SpanValue::Rows(t) => x.broadcast_mul(t)?,
    })
}

/// A step's time span: a constant, or one per row ([B, 1]).
enum SpanValue<'a> {
    Constant(f64),
    Rows(&'a Tensor),
}

/// The pure-mode state: −A·exp(−ts·(|w_tau| + |f|))·f + A.
fn pure_value(f: &Tensor, w_tau: &Tensor, a: &Tensor, ts: &SpanValue<'_>) -> Result<Tensor> {
    let rate = f.abs()?.broadcast_add(&w_tau.abs()?)?;
    let e = scale(&rate, ts)?.neg()?.exp()?;
    Ok(e.broadcast_mul(&a.neg()?)?.mul(f)?.broadcast_add(a)?)
}

/// One step, exactly as ncps' `CfCCell` computes it with the configured constant time span:
/// x [B, in], h [B, H] → h' [B, H].
pub fn step(cell: &Cfc, x: &Tensor, h: &Tensor) -> Result<Tensor> {
    ncps_step(cell, x, h, SpanValue::Constant(cell.config().ts))
}

/// One step as ncps' `CfCCell` computes it with a time span per row, ts [B, 1].
pub fn step_with_span(cell: &Cfc, x: &Tensor, h: &Tensor, ts: &Tensor) -> Result<Tensor> {
    ncps_step(cell, x, h, SpanValue::Rows(ts))
}

fn ncps_step(cell: &Cfc, x: &Tensor, h: &Tensor, ts: SpanValue<'_>) -> Result<Tensor> {
    let cfg = cell.config();
    check_width(x, "cfc input [B, in]", 2, cfg.input_size)?;
    check_width(h, "cfc state [B, H]", 2, cfg.hidden_size)?;
    let mut z = Tensor::cat(&[x, h], 1)?;
    for l in &cell.backbone {
        z = lecun_tanh(&l.forward(&z)?)?;
    }
    let masked_linear = |lin: &crate::nn::Linear| -> Result<Tensor> {
        Ok(match &cell.mask {
            Some(m) => z
                .matmul(&(lin.weight() * m)?.t()?)?
                .broadcast_add(lin.bias())?,
            None => lin.forward(&z)?,
        })
    };
    let ff1 = masked_linear(&cell.ff1)?;
    match &cell.heads {
        Heads::Pure { w_tau, a } => pure_value(&ff1, w_tau, a, &ts),
        Heads::Gated {
            ff2,
            time_a,
            time_b,
        } => {
            let f1 = ff1.tanh()?;
            let f2 = masked_linear(ff2)?.tanh()?;
            let ta = time_a.forward(&z)?;
            let tb = time_b.forward(&z)?;
            let tau = candle_nn::ops::sigmoid(&(scale(&ta, &ts)? + tb)?)?;
            mix(cfg.mode, &f1, &f2, &tau)
        }
    }
}

/// One layer's step from its first map's value a [B, F].
fn layer_from_first(
    prep: &PreparedCfc,
    layer: &PreparedLayer,
    a: Tensor,
    ts: &SpanValue<'_>,
) -> Result<Tensor> {
    let head = match &layer.head {
        Some((w_head_t, b_head)) => {
            let mut z = lecun_tanh(&a)?;
            for (wt, b) in &layer.deep {
                z = lecun_tanh(&z.matmul(wt)?.broadcast_add(b)?)?;
            }
            z.matmul(w_head_t)?.broadcast_add(b_head)?
        }
        None => a,
    };
    let hd = layer.dims.hidden;
    if let Some((w_tau, a)) = &layer.pure {
        return pure_value(&head, w_tau, a, ts);
    }
    let f = head.narrow(D::Minus1, 0, 2 * hd)?.tanh()?;
    let f1 = f.narrow(D::Minus1, 0, hd)?;
    let f2 = f.narrow(D::Minus1, hd, hd)?;
    let pre = match prep.span {
        Span::Constant(_) => head.narrow(D::Minus1, 2 * hd, hd)?,
        Span::PerStep => {
            (scale(&head.narrow(D::Minus1, 2 * hd, hd)?, ts)?
                + head.narrow(D::Minus1, 3 * hd, hd)?)?
        }
    };
    let tau = candle_nn::ops::sigmoid(&pre)?;
    mix(prep.mode, &f1, &f2, &tau)
}

/// One step of every layer from the first layer's projection p [B, F₀], the step's spans
/// ([B, 1] for per-step spans) and the stacked state h [B, Σ H].
pub(crate) fn step_prepared(
    prep: &PreparedCfc,
    p: &Tensor,
    ts: Option<&Tensor>,
    h: &Tensor,
) -> Result<Tensor> {
    let span = match (prep.span, ts) {
        (Span::PerStep, Some(t)) => SpanValue::Rows(t),
        (Span::Constant(v), _) => SpanValue::Constant(v),
        (Span::PerStep, None) => {
            return Err(crate::LayerError::config(
                "timespans",
                "missing for weights prepared for per-step spans; expected [B, 1]",
            ))
        }
    };
    if prep.layers.len() == 1 {
        let l = &prep.layers[0];
        return layer_from_first(prep, l, (p + h.matmul(&l.w_rec_t)?)?, &span);
    }
    let mut col = 0;
    let mut input: Option<Tensor> = None;
    let mut out = Vec::with_capacity(prep.layers.len());
    for l in &prep.layers {
        let hl = h.narrow(1, col, l.dims.hidden)?;
        col += l.dims.hidden;
        let a = match &input {
            None => (p + hl.matmul(&l.w_rec_t)?)?,
            Some(x) => (l.project(x)? + hl.matmul(&l.w_rec_t)?)?,
        };
        let hn = layer_from_first(prep, l, a, &span)?;
        input = Some(hn.clone());
        out.push(hn);
    }
    Ok(Tensor::cat(&out, 1)?)
}

/// [`PreparedCfc::sequence`] as a loop of [`step_prepared`].
pub(crate) fn sequence_prepared(
    prep: &PreparedCfc,
    proj: &Tensor,
    spans: Option<&Tensor>,
    h0: &Tensor,
) -> Result<Tensor> {
    let (_, l, _) = proj.dims3()?;
    let mut h = h0.clone();
    let mut hs = Vec::with_capacity(l);
    for t in 0..l {
        let ts = match spans {
            Some(s) => Some(s.narrow(1, t, 1)?.squeeze(1)?),
            None => None,
        };
        h = step_prepared(prep, &proj.narrow(1, t, 1)?.squeeze(1)?, ts.as_ref(), &h)?;
        hs.push(h.clone());
    }
    Ok(Tensor::stack(&hs, 1)?)
}

/// One step from a precomputed input projection p [B, F] ([`Cfc::input_projection`]) and the
/// packed per-step weights ([`Cfc::prepare`]), at the configured constant span.
pub fn step_projected(_cell: &Cfc, p: &Tensor, h: &Tensor, w: &PreparedCfc) -> Result<Tensor> {
    step_prepared(w, p, None, h)
}

/// [`Cfc::sequence_from_projection`] as a loop of [`step_projected`].
pub fn sequence_from_projection(cell: &Cfc, proj: &Tensor, h0: &Tensor) -> Result<Tensor> {
    sequence_prepared(&cell.prepare()?, proj, None, h0)
}
