//! The whole CfC recurrence over a sequence as one CPU custom op (design §2.3, backbone_layers = 1).
//!
//! Operands, by the packing convention ([`crate::kernel::packing`]): the input projection
//! P [B, L, U] (the first backbone layer applied to every position, bias included), the state
//! h_0 [B, H], and the packed per-step weights `[W_hᵀ (H×U); W_headᵀ (U×3H); b_head (3H)]`.
//! Output: h_1..h_L as [B, L, H] (the final state is its last position). Per step:
//!
//! ```text
//! z = lecun_tanh(P_t + h_{t−1}·W_hᵀ)          head = z·W_headᵀ + b_head = [a1 | a2 | a3]
//! f1 = tanh(a1), f2 = tanh(a2), τ = σ(a3)    h_t = f1·(1 − τ) + τ·f2   (no_gate: f1 + τ·f2)
//! ```
//! where W_head packs [W_1; W_2; ts·W_a + W_t] (see [`crate::cfc::Cfc::prepare`]). Forward is two
//! small gemm calls and one elementwise pass per step; backward recomputes each step from the
//! saved outputs (h_{t−1} is the previous output) and runs the BPTT recurrence in one reverse pass,
//! accumulating the weight gradients with gemm. Nothing but the inputs and the output is kept.

use super::CfcMode;
use crate::kernel::{contiguous_slice, float_kernel, Real};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};

const LECUN_A: f64 = 1.7159;
const LECUN_B: f64 = 0.666;

/// Sizes of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub b: usize,
    pub l: usize,
    pub u: usize,
    pub h: usize,
}

/// The op.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CfcSeqOp {
    pub dims: Dims,
    pub mode: CfcMode,
}

/// Sequential gemm (the CfC's matrices are far too small to split across threads).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn mm<T: candle_core::WithDType>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    read: bool,
    lhs: &[T],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[T],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    crate::kernel::matmul(
        crate::kernel::Gemm { m, n, k },
        dst,
        read,
        (lhs, lhs_rs, lhs_cs),
        (rhs, rhs_rs, rhs_cs),
        false,
    );
}

struct Weights<'a, T> {
    wht: &'a [T],
    wheadt: &'a [T],
    bhead: &'a [T],
}

fn split<T>(packed: &[T], d: Dims) -> Weights<'_, T> {
    let (hu, u3h) = (d.h * d.u, d.u * 3 * d.h);
    Weights {
        wht: &packed[..hu],
        wheadt: &packed[hu..hu + u3h],
        bhead: &packed[hu + u3h..hu + u3h + 3 * d.h],
    }
}

/// One step's activations for all rows: z (after lecun_tanh) and the head [B, 3H].
fn step_forward<T: Real>(
    d: Dims,
    w: &Weights<'_, T>,
    proj: &[T],
    t: usize,
    h_prev: &[T],
    z: &mut [T],
    head: &mut [T],
) {
    let (b, l, u, h) = (d.b, d.l, d.u, d.h);
    for r in 0..b {
        z[r * u..(r + 1) * u].copy_from_slice(&proj[(r * l + t) * u..(r * l + t + 1) * u]);
        head[r * 3 * h..(r + 1) * 3 * h].copy_from_slice(w.bhead);
    }
    mm(b, u, h, z, true, h_prev, h, 1, w.wht, u, 1);
    let (la, lb) = (T::from_f64(LECUN_A), T::from_f64(LECUN_B));
    for v in z.iter_mut() {
        *v = la * (lb * *v).tanh_();
    }
    mm(b, 3 * h, u, head, true, z, u, 1, w.wheadt, 3 * h, 1);
}

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (T::zero() - x).exp_())
}

fn forward<T: Real>(op: &CfcSeqOp, proj: &[T], packed: &[T], h0: &[T]) -> Vec<T> {
    let d = op.dims;
    let (b, l, u, h) = (d.b, d.l, d.u, d.h);
    let w = split(packed, d);
    let mut hs = vec![T::zero(); b * l * h];
    let mut h_prev = h0.to_vec();
    let mut z = vec![T::zero(); b * u];
    let mut head = vec![T::zero(); b * 3 * h];
    for t in 0..l {
        step_forward(d, &w, proj, t, &h_prev, &mut z, &mut head);
        for r in 0..b {
            let hd = &head[r * 3 * h..(r + 1) * 3 * h];
            for j in 0..h {
                let f1 = hd[j].tanh_();
                let f2 = hd[h + j].tanh_();
                let tau = sigmoid(hd[2 * h + j]);
                let v = match op.mode {
                    CfcMode::Default => f1 * (T::one() - tau) + tau * f2,
                    CfcMode::NoGate => f1 + tau * f2,
                };
                hs[(r * l + t) * h + j] = v;
                h_prev[r * h + j] = v;
            }
        }
    }
    hs
}

/// (d proj, d packed, d h0).
fn backward<T: Real>(
    op: &CfcSeqOp,
    proj: &[T],
    packed: &[T],
    h0: &[T],
    hs: &[T],
    g: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let d = op.dims;
    let (b, l, u, h) = (d.b, d.l, d.u, d.h);
    let w = split(packed, d);
    let mut dproj = vec![T::zero(); b * l * u];
    let mut dpacked = vec![T::zero(); packed.len()];
    let (dwht, rest) = dpacked.split_at_mut(h * u);
    let (dwheadt, dbhead) = rest.split_at_mut(u * 3 * h);
    let mut carry = vec![T::zero(); b * h];
    let mut h_prev = vec![T::zero(); b * h];
    let mut z = vec![T::zero(); b * u];
    let mut head = vec![T::zero(); b * 3 * h];
    let mut dhead = vec![T::zero(); b * 3 * h];
    let mut dz = vec![T::zero(); b * u];
    let (la, lb) = (T::from_f64(LECUN_A), T::from_f64(LECUN_B));
    let one = T::one();
    for t in (0..l).rev() {
        if t == 0 {
            h_prev.copy_from_slice(h0);
        } else {
            for r in 0..b {
                h_prev[r * h..(r + 1) * h]
                    .copy_from_slice(&hs[(r * l + t - 1) * h..(r * l + t) * h]);
            }
        }
        step_forward(d, &w, proj, t, &h_prev, &mut z, &mut head);
        for r in 0..b {
            let hd = &head[r * 3 * h..(r + 1) * 3 * h];
            let dd = &mut dhead[r * 3 * h..(r + 1) * 3 * h];
            for j in 0..h {
                let f1 = hd[j].tanh_();
                let f2 = hd[h + j].tanh_();
                let tau = sigmoid(hd[2 * h + j]);
                let dh = g[(r * l + t) * h + j] + carry[r * h + j];
                let (df1, df2, dtau) = match op.mode {
                    CfcMode::Default => (dh * (one - tau), dh * tau, dh * (f2 - f1)),
                    CfcMode::NoGate => (dh, dh * tau, dh * f2),
                };
                dd[j] = df1 * (one - f1 * f1);
                dd[h + j] = df2 * (one - f2 * f2);
                dd[2 * h + j] = dtau * tau * (one - tau);
            }
        }
        for r in 0..b {
            for (acc, &v) in dbhead.iter_mut().zip(&dhead[r * 3 * h..(r + 1) * 3 * h]) {
                *acc += v;
            }
        }
        // dW_headᵀ [U, 3H] += zᵀ·dhead
        mm(u, 3 * h, b, dwheadt, true, &z, 1, u, &dhead, 3 * h, 1);
        // dz [B, U] = dhead·W_head (W_headᵀ is [U, 3H]: its transpose has row stride 1, column stride 3H)
        mm(
            b,
            u,
            3 * h,
            &mut dz,
            false,
            &dhead,
            3 * h,
            1,
            w.wheadt,
            1,
            3 * h,
        );
        for r in 0..b {
            for c in 0..u {
                let s = z[r * u + c] / la;
                let dzp = dz[r * u + c] * la * lb * (one - s * s);
                dz[r * u + c] = dzp;
                dproj[(r * l + t) * u + c] = dzp;
            }
        }
        // dW_hᵀ [H, U] += h_prevᵀ·dzp
        mm(h, u, b, dwht, true, &h_prev, 1, h, &dz, u, 1);
        // carry [B, H] = dzp·W_h (W_hᵀ is [H, U]: its transpose has row stride 1, column stride U)
        mm(b, h, u, &mut carry, false, &dz, u, 1, w.wht, 1, u);
    }
    (dproj, dpacked, carry)
}

impl CustomOp3 for CfcSeqOp {
    fn name(&self) -> &'static str {
        "cfc-seq"
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
        let d = self.dims;
        if l1.shape().elem_count() != d.b * d.l * d.u
            || l2.shape().elem_count() != d.b * d.h
            || l3.shape().elem_count() != d.h * d.u + d.u * 3 * d.h + 3 * d.h
        {
            candle_core::bail!("cfc-seq: operand sizes do not match {d:?}");
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| forward::<T>(
            self,
            contiguous_slice(s1, l1, "cfc-seq: proj")?,
            contiguous_slice(s3, l3, "cfc-seq: weights")?,
            contiguous_slice(s2, l2, "cfc-seq: h0")?,
        ));
        Ok((out, Shape::from((d.b, d.l, d.h))))
    }

    fn bwd(
        &self,
        proj: &Tensor,
        h0: &Tensor,
        packed: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dev = proj.device();
        // Five tensors take part and an op takes at most three, so backward reads them as
        // host vectors (this op only runs on the CPU).
        let (dp, dh, dw) = float_kernel!(map self.name(), proj.dtype(), |T| {
            let v = |x: &Tensor| x.flatten_all()?.to_vec1::<T>();
            let (a, b, c) =
                backward::<T>(self, &v(proj)?, &v(packed)?, &v(h0)?, &v(res)?, &v(grad)?);
            (
                Tensor::from_vec(a, proj.shape(), dev)?,
                Tensor::from_vec(c, h0.shape(), dev)?,
                Tensor::from_vec(b, packed.shape(), dev)?,
            )
        });
        Ok((Some(dp), Some(dh), Some(dw)))
    }
}
