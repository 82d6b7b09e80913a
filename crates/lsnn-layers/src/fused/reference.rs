//! The compositions of candle ops that the fused row ops replace: the path on devices and dtypes
//! without a kernel (and whenever the composed path is forced, [`crate::kernel::composed`]), and
//! the reference the tests hold the kernels to, forward values and gradients.

use super::NormAct;
use crate::rng::SeededRng;
use candle_core::{DType, Tensor, D};

/// [`super::layer_norm`] from candle ops (mean, centre, variance, divide, scale, shift).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(w)?.broadcast_add(b)
}

/// [`super::gelu`] from candle ops: x/2·(1 + erf(x/√2)). (Not candle's `gelu_erf`, whose backward
/// rounds 1/√(2π) to 0.398942, a relative error of about 7e-7.)
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    (x * 0.5)? * ((x * std::f64::consts::FRAC_1_SQRT_2)?.erf()? + 1.0)?
}

/// [`super::masked_softmax`] from candle ops: affine, add of a −∞ mask, `candle_nn::ops::softmax`.
pub fn masked_softmax(scores: &Tensor, scale: f64, causal: bool) -> candle_core::Result<Tensor> {
    let dims = scores.dims();
    let (lq, lk) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let mut s = scores.affine(scale, 0.0)?;
    if causal {
        s = s.broadcast_add(&causal_mask(lq, lk, scores)?)?;
    }
    candle_nn::ops::softmax(&s, D::Minus1)
}

/// The additive causal mask [Lq, Lk] in `like`'s dtype and device: 0 where query i may see key j
/// (j ≤ i + Lk − Lq), −∞ elsewhere.
fn causal_mask(lq: usize, lk: usize, like: &Tensor) -> candle_core::Result<Tensor> {
    let off = lk - lq;
    let v: Vec<f32> = (0..lq)
        .flat_map(|i| (0..lk).map(move |j| if j > i + off { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(v, (lq, lk), like.device())?.to_dtype(like.dtype())
}

/// [`super::attention`] as lsnn computed attention before the tiled op: q·kᵀ,
/// [`super::masked_softmax`], a product with v (the [Lq, Lk] scores and probabilities are
/// materialised and kept for backward).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    // Two statements: the scores are a temporary of the first and freed at its end, before the
    // product allocates its output (in one expression they would live to the end of it).
    let p = super::masked_softmax(&q.matmul(&k.t()?)?, scale, causal)?;
    p.matmul(v)
}

/// [`super::attention_packed`] from candle ops: [`attention`] with the log-sum-exp of each query
/// row's scaled, masked scores as an extra last column (the shift by the row maximum is
/// detached: the log-sum-exp's gradient does not depend on it).
pub fn attention_packed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let out = attention(q, k, v, scale, causal)?;
    let dims = q.dims();
    let (lq, lk) = (dims[dims.len() - 2], k.dims()[dims.len() - 2]);
    let mut s = q.matmul(&k.t()?)?.affine(scale, 0.0)?;
    if causal {
        s = s.broadcast_add(&causal_mask(lq, lk, q)?)?;
    }
    let m = s.max_keepdim(D::Minus1)?.detach();
    let lse = (s.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()? + m)?;
    Tensor::cat(&[&out, &lse], D::Minus1)
}

/// [`super::cross_entropy_terms`] from `log_softmax`, `gather` and means.
pub fn cross_entropy_terms(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let nll = logp
        .gather(&targets.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?
        .mean_all()?;
    let uniform = logp.mean(D::Minus1)?.neg()?.mean_all()?;
    Tensor::stack(&[nll, uniform], 0)
}

/// [`super::norm_act`] from the separate ops (composed LayerNorm, composed GELU, dropout tensor mask).
pub fn norm_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    order: NormAct,
    dropout: Option<(f64, &mut SeededRng)>,
) -> candle_core::Result<Tensor> {
    let y = match order {
        NormAct::Norm => layer_norm(x, w, b, eps)?,
        NormAct::NormThenGelu => gelu(&layer_norm(x, w, b, eps)?)?,
        NormAct::GeluThenNorm => layer_norm(&gelu(x)?, w, b, eps)?,
    };
    match dropout {
        Some((p, rng)) if p > 0.0 => &y * rng.dropout_mask(y.shape(), p, y.dtype(), y.device())?,
        _ => Ok(y),
    }
}

/// [`super::gated_residual`] from candle ops (candle-nn's sigmoid, a product and a sum).
pub fn gated_residual(y: &Tensor, a: &Tensor, x: &Tensor) -> candle_core::Result<Tensor> {
    y + (candle_nn::ops::sigmoid(a)? * x)?
}

/// [`super::linear`] as two candle ops (a matmul, then a broadcast add of the bias).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (out_dim, in_dim) = w.dims2()?;
    let (x2, lead) = super::linear::as_matrix(x, in_dim, "linear input")?;
    let y = x2.matmul(&w.t()?)?.broadcast_add(b)?;
    y.reshape([lead, vec![out_dim]].concat())
}
