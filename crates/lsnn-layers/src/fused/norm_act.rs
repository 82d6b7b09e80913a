//! LayerNorm, optionally with exact GELU before or after it, then inverted dropout, as one CPU op
//! that keeps only its input (and the mask's bits) for backward. Reference:
//! [`super::reference::norm_act`].

use super::dropout::KeepMask;
use super::last_dim;
use super::layer_norm::moments;
use crate::kernel::lanes::{gelu_in_place, gelu_with_slope};
use crate::kernel::{contiguous_slice, float_kernel, fused_available, row_chunks, Real};
use crate::rng::SeededRng;
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

/// What [`norm_act`] computes before its dropout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormAct {
    /// LayerNorm(x) alone (the norm after each block).
    Norm,
    /// GELU(LayerNorm(x)) (the block's fusion output).
    NormThenGelu,
    /// LayerNorm(GELU(x)) (the output head).
    GeluThenNorm,
}

/// LayerNorm (weight `w`, bias `b`, ε), alone or with exact GELU in the given order, then
/// inverted dropout with probability p when `dropout` is given, as one op that keeps only its
/// input (and the mask's bits) for backward: the normalised and activated intermediates are
/// recomputed there.
pub fn norm_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
    order: NormAct,
    dropout: Option<(f64, &mut SeededRng)>,
) -> candle_core::Result<Tensor> {
    let d = last_dim(x, "layer_norm input")?;
    if w.dims() != [d] || b.dims() != [d] {
        candle_core::bail!(
            "layer_norm: weight {:?} and bias {:?} must both be [{d}] for input {:?}",
            w.dims(),
            b.dims(),
            x.dims()
        );
    }
    if let Some((p, _)) = &dropout {
        if !(0.0..1.0).contains(p) {
            candle_core::bail!("dropout: probability {p} outside [0, 1)");
        }
    }
    if !(fused_available(x) && x.dtype() == w.dtype() && x.dtype() == b.dtype()) {
        return super::reference::norm_act(x, w, b, eps, order, dropout);
    }
    let mask = match dropout {
        Some((p, rng)) if p > 0.0 => Some(KeepMask::draw(rng, x.elem_count(), p)),
        _ => None,
    };
    let op = NormActOp { eps, order, mask };
    // The op reads x as rows of D whatever its leading dimensions: no reshape nodes around it
    // (each would cost a zero-filled gradient and an add in backward).
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

#[derive(Debug, Clone)]
struct NormActOp {
    eps: f64,
    order: NormAct,
    mask: Option<KeepMask>,
}

impl NormActOp {
    fn fwd<T: Real>(&self, x: &[T], w: &[T], b: &[T]) -> Vec<T> {
        let d = w.len();
        let rows = x.len() / d;
        let eps = T::from_f64(self.eps);
        let mut y = vec![T::zero(); x.len()];
        row_chunks(&mut y, d, rows, 8 * x.len(), |range, out| {
            let mut g = vec![T::zero(); d];
            for (i, r) in range.enumerate() {
                let xr = &x[r * d..(r + 1) * d];
                let yr = &mut out[i * d..(i + 1) * d];
                match self.order {
                    NormAct::Norm => {
                        let (mean, rstd) = moments(xr, eps);
                        for j in 0..d {
                            yr[j] = (xr[j] - mean) * rstd * w[j] + b[j];
                        }
                    }
                    NormAct::NormThenGelu => {
                        let (mean, rstd) = moments(xr, eps);
                        for j in 0..d {
                            yr[j] = (xr[j] - mean) * rstd * w[j] + b[j];
                        }
                        gelu_in_place::<T, false>(yr);
                    }
                    NormAct::GeluThenNorm => {
                        g.copy_from_slice(xr);
                        gelu_in_place::<T, false>(&mut g);
                        let (mean, rstd) = moments(&g, eps);
                        for j in 0..d {
                            yr[j] = (g[j] - mean) * rstd * w[j] + b[j];
                        }
                    }
                }
            }
        });
        if let Some(m) = &self.mask {
            m.apply_in_place(&mut y);
        }
        y
    }

    /// Packed [(N + 2)·D]: dx, dw, db, given dy already masked (the bias only enters GELU's
    /// slope in the norm-then-GELU order; `b` may be empty otherwise).
    fn bwd<T: Real>(&self, x: &[T], w: &[T], b: &[T], dy: &[T]) -> Vec<T> {
        let d = w.len();
        let rows = x.len() / d;
        let eps = T::from_f64(self.eps);
        let n = T::from_f64(d as f64);
        let mut out = vec![T::zero(); (rows + 2) * d];
        let (dx, tail) = out.split_at_mut(rows * d);
        let partials = row_chunks(dx, d, rows, 12 * x.len(), |range, o| {
            let mut dw = vec![T::zero(); d];
            let mut db = vec![T::zero(); d];
            // The LayerNorm's input row, the gradient at its output, GELU's slope at x.
            let mut u = vec![T::zero(); d];
            let mut du = vec![T::zero(); d];
            let mut slope = vec![T::zero(); d];
            for (i, r) in range.enumerate() {
                let xr = &x[r * d..(r + 1) * d];
                let dyr = &dy[r * d..(r + 1) * d];
                if self.order == NormAct::GeluThenNorm {
                    gelu_with_slope(xr, &mut u, &mut slope);
                } else {
                    u.copy_from_slice(xr);
                }
                let (mean, rstd) = moments(&u, eps);
                if self.order == NormAct::NormThenGelu {
                    for j in 0..d {
                        du[j] = (u[j] - mean) * rstd * w[j] + b[j];
                    }
                    gelu_in_place::<T, true>(&mut du);
                    for j in 0..d {
                        du[j] = dyr[j] * du[j];
                    }
                } else {
                    du.copy_from_slice(dyr);
                }
                let (mut sg, mut sgx) = (T::zero(), T::zero());
                let orow = &mut o[i * d..(i + 1) * d];
                for j in 0..d {
                    let xh = (u[j] - mean) * rstd;
                    let gj = du[j] * w[j];
                    orow[j] = gj;
                    sg += gj;
                    sgx += gj * xh;
                    dw[j] += du[j] * xh;
                    db[j] += du[j];
                }
                let (mg, mgx) = (sg / n, sgx / n);
                for j in 0..d {
                    let xh = (u[j] - mean) * rstd;
                    let du_in = rstd * (orow[j] - mg - xh * mgx);
                    orow[j] = if self.order == NormAct::GeluThenNorm {
                        du_in * slope[j]
                    } else {
                        du_in
                    };
                }
            }
            (dw, db)
        });
        let (tdw, tdb) = tail.split_at_mut(d);
        for (dw, db) in partials {
            for j in 0..d {
                tdw[j] += dw[j];
                tdb[j] += db[j];
            }
        }
        out
    }
}

impl CustomOp3 for NormActOp {
    fn name(&self) -> &'static str {
        "norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if let Some(m) = &self.mask {
            if !m.fits(l1.shape().elem_count()) {
                candle_core::bail!("norm-act: the dropout mask does not fit {:?}", l1.dims());
            }
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| self.fwd::<T>(
            contiguous_slice(s1, l1, "norm-act: x")?,
            contiguous_slice(s2, l2, "norm-act: weight")?,
            contiguous_slice(s3, l3, "norm-act: bias")?,
        ));
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let rows = x.elem_count() / w.elem_count().max(1);
        let dy = match &self.mask {
            Some(m) => dy.contiguous()?.apply_op1_no_bwd(m)?,
            None => dy.contiguous()?,
        };
        // The bias (D values) rides in the op: a custom op takes at most three tensors. Only
        // GELU's slope after the norm needs it.
        let bias = match self.order {
            NormAct::NormThenGelu => b.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            _ => Vec::new(),
        };
        let op = NormActBwdOp {
            fwd: self.clone(),
            bias,
        };
        let packed = x.apply_op3_no_bwd(w, &dy, &op)?;
        Ok((
            Some(packed.narrow(0, 0, rows)?.reshape(x.shape())?),
            Some(packed.get(rows)?),
            Some(packed.get(rows + 1)?),
        ))
    }
}

#[derive(Debug, Clone)]
struct NormActBwdOp {
    fwd: NormActOp,
    bias: Vec<f64>,
}

impl CustomOp3 for NormActBwdOp {
    fn name(&self) -> &'static str {
        "norm-act-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = l2.shape().elem_count();
        let rows = l1.shape().elem_count() / d.max(1);
        let needs_bias = self.fwd.order == NormAct::NormThenGelu;
        if needs_bias && self.bias.len() != d {
            candle_core::bail!("norm-act-bwd: bias of {} for width {d}", self.bias.len());
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| {
            let b: Vec<T> = self
                .bias
                .iter()
                .map(|&v| <T as candle_core::WithDType>::from_f64(v))
                .collect();
            self.fwd.bwd::<T>(
                contiguous_slice(s1, l1, "norm-act-bwd: x")?,
                contiguous_slice(s2, l2, "norm-act-bwd: weight")?,
                &b,
                contiguous_slice(s3, l3, "norm-act-bwd: dy")?,
            )
        });
        Ok((out, Shape::from((rows + 2, d))))
    }
}
