//! Scaled dot-product attention, softmax(scale·q·kᵀ + mask)·v, as one CPU op that works in tiles
//! and never holds the [Lq, Lk] scores (design §2.5.1): forward keeps a running maximum and sum
//! per query row (the online softmax of the flash-attention scheme) and returns, beside each
//! output row, the row's log-sum-exp; backward recomputes each tile's probabilities from that
//! log-sum-exp. Memory is O(L) in the sequence length where the composed op
//! ([`super::reference::attention`]: a product, [`super::masked_softmax`], a product) keeps two
//! [Lq, Lk] tensors per head for backward.
//!
//! The op's output packs the log-sum-exp as an extra last column, [.., Lq, dh + 1]
//! ([`attention_packed`]); [`attention`] returns the first dh columns. The packed column is what
//! backward needs, so it travels in the output that candle keeps for backward anyway (the
//! packing convention, design §3.2, for a value the op itself needs again).

use crate::kernel::lanes::exp_shifted_in_place;
use crate::kernel::{float_kernel, fused_available, matmul, parallel_allowed, Gemm, Real};
use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor, D,
};

/// Query rows per tile.
const TILE_Q: usize = 64;
/// Key rows per tile.
const TILE_K: usize = 64;
/// Below this many multiply-adds (B·heads·Lq·Lk·dh) the op stays on the calling thread.
const PAR_MIN: usize = 1 << 20;

/// softmax(scale·q·kᵀ + mask)·v for q [.., Lq, dh] and k, v [.., Lk, dh] (equal leading
/// dimensions). With `causal`, query row i sees keys j ≤ i + (Lk − Lq) — the queries are the last
/// Lq positions of the keys' sequence — which needs Lk ≥ Lq. Returns [.., Lq, dh].
///
/// On the CPU in f32/f64 this is the tiled op; elsewhere (or with the composed path forced) it
/// is [`super::reference::attention`].
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let shape = AttnShape::of(q, k, v, causal)?;
    if !fused_available(q) {
        return super::reference::attention(q, k, v, scale, causal);
    }
    apply(q, k, v, scale, causal, shape)?.narrow(D::Minus1, 0, shape.dh)
}

/// [`attention`] with each query row's log-sum-exp of its (scaled, masked) scores as an extra
/// last column: [.., Lq, dh + 1]. Both parts are differentiable.
pub fn attention_packed(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    causal: bool,
) -> candle_core::Result<Tensor> {
    let shape = AttnShape::of(q, k, v, causal)?;
    if !fused_available(q) {
        return super::reference::attention_packed(q, k, v, scale, causal);
    }
    apply(q, k, v, scale, causal, shape)
}

fn apply(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    causal: bool,
    shape: AttnShape,
) -> candle_core::Result<Tensor> {
    let op = AttnOp {
        shape,
        scale,
        causal,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

/// The sizes of one attention call: `bh` independent (batch, head) pairs.
#[derive(Debug, Clone, Copy)]
struct AttnShape {
    bh: usize,
    lq: usize,
    lk: usize,
    dh: usize,
}

impl AttnShape {
    fn of(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> candle_core::Result<Self> {
        let (qd, kd) = (q.dims(), k.dims());
        if qd.len() < 2 || kd.len() != qd.len() {
            candle_core::bail!(
                "attention: expected q [.., Lq, dh] and k [.., Lk, dh] of the same rank, got {qd:?} and {kd:?}"
            );
        }
        let n = qd.len();
        if qd[..n - 2] != kd[..n - 2] || qd[n - 1] != kd[n - 1] {
            candle_core::bail!(
                "attention: q {qd:?} and k {kd:?} must agree in every dimension but the length"
            );
        }
        if v.dims() != kd {
            candle_core::bail!("attention: v {:?} must have k's shape {kd:?}", v.dims());
        }
        if q.dtype() != k.dtype() || q.dtype() != v.dtype() {
            candle_core::bail!(
                "attention: q, k, v must share a dtype, got {:?}, {:?}, {:?}",
                q.dtype(),
                k.dtype(),
                v.dtype()
            );
        }
        let (lq, lk, dh) = (qd[n - 2], kd[n - 2], qd[n - 1]);
        if lq == 0 || lk == 0 || dh == 0 {
            candle_core::bail!("attention: empty lengths or head width in q {qd:?}, k {kd:?}");
        }
        if causal && lk < lq {
            candle_core::bail!("attention: a causal mask needs Lk >= Lq, got Lq {lq}, Lk {lk}");
        }
        Ok(AttnShape {
            bh: qd[..n - 2].iter().product(),
            lq,
            lk,
            dh,
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct AttnOp {
    shape: AttnShape,
    scale: f64,
    causal: bool,
}

impl AttnOp {
    /// Keys query row `i` may see: 0..visible(i).
    #[inline(always)]
    fn visible(&self, i: usize) -> usize {
        let AttnShape { lq, lk, .. } = self.shape;
        if self.causal {
            i + (lk - lq) + 1
        } else {
            lk
        }
    }

    /// Whether a kernel splits over threads: enough work, more than one piece, and allowed.
    fn parallel(&self, pieces: usize) -> bool {
        let AttnShape { bh, lq, lk, dh } = self.shape;
        pieces > 1
            && bh * lq * lk * dh >= PAR_MIN
            && rayon::current_num_threads() > 1
            && parallel_allowed()
    }

    /// The packed output [bh, Lq, dh + 1]: each query tile of each (batch, head) pair is one
    /// independent piece, so no result depends on the thread count.
    fn fwd<T: Real>(&self, q: &[T], k: &[T], v: &[T]) -> Vec<T> {
        use rayon::prelude::*;
        let AttnShape { bh, lq, dh, .. } = self.shape;
        let w = dh + 1;
        let mut out = vec![T::zero(); bh * lq * w];
        let mut pieces = Vec::with_capacity(bh * lq.div_ceil(TILE_Q));
        let mut rest = out.as_mut_slice();
        for b in 0..bh {
            for i0 in (0..lq).step_by(TILE_Q) {
                let rows = TILE_Q.min(lq - i0);
                let (tile, tail) = rest.split_at_mut(rows * w);
                pieces.push((b, i0, tile));
                rest = tail;
            }
        }
        let run = |(b, i0, tile): (usize, usize, &mut [T])| self.fwd_tile(q, k, v, b, i0, tile);
        if self.parallel(pieces.len()) {
            pieces.into_par_iter().for_each(run);
        } else {
            pieces.into_iter().for_each(run);
        }
        out
    }

    /// One query tile (rows i0.. of pair b) into `out` ([rows, dh + 1]).
    fn fwd_tile<T: Real>(&self, q: &[T], k: &[T], v: &[T], b: usize, i0: usize, out: &mut [T]) {
        let AttnShape { lq, lk, dh, .. } = self.shape;
        let w = dh + 1;
        let nq = out.len() / w;
        let scale = T::from_f64(self.scale);
        let qs = &q[(b * lq + i0) * dh..(b * lq + i0 + nq) * dh];
        let (kb, vb) = (
            &k[b * lk * dh..(b + 1) * lk * dh],
            &v[b * lk * dh..(b + 1) * lk * dh],
        );
        let mut acc = vec![T::zero(); nq * dh];
        let mut s = vec![T::zero(); nq * TILE_K];
        let mut m = vec![T::from_f64(f64::NEG_INFINITY); nq];
        let mut l = vec![T::zero(); nq];
        let kend = self.visible(i0 + nq - 1).min(lk);
        for j0 in (0..kend).step_by(TILE_K) {
            let nk = TILE_K.min(kend - j0);
            let s = &mut s[..nq * nk];
            let kt = &kb[j0 * dh..(j0 + nk) * dh];
            scores(qs, kt, dh, s);
            for r in 0..nq {
                let row = &mut s[r * nk..(r + 1) * nk];
                let vis = self.visible(i0 + r).saturating_sub(j0).min(nk);
                if vis == 0 {
                    row.fill(T::zero());
                    continue;
                }
                let mut mx = m[r];
                for x in row[..vis].iter_mut() {
                    *x *= scale;
                    if *x > mx {
                        mx = *x;
                    }
                }
                exp_shifted_in_place(&mut row[..vis], T::one(), mx);
                let mut sum = T::zero();
                for &x in &row[..vis] {
                    sum += x;
                }
                row[vis..].fill(T::zero());
                // exp(−∞) = 0 on a row's first visible tile, where acc and l are still zero.
                let corr = (m[r] - mx).exp_();
                l[r] = l[r] * corr + sum;
                m[r] = mx;
                if corr != T::one() {
                    for a in acc[r * dh..(r + 1) * dh].iter_mut() {
                        *a *= corr;
                    }
                }
            }
            let vt = &vb[j0 * dh..(j0 + nk) * dh];
            product(nq, dh, nk, &mut acc, true, (s, nk, 1), (vt, dh, 1));
        }
        for r in 0..nq {
            // Every row sees key 0, so l[r] > 0 and m[r] is finite.
            let inv = T::one() / l[r];
            for c in 0..dh {
                out[r * w + c] = acc[r * dh + c] * inv;
            }
            out[r * w + dh] = m[r] + l[r].ln_();
        }
    }

    /// dq, dk, dv from the packed output `o` and its gradient `g` (both [bh, Lq, dh + 1]). Each
    /// (batch, head) pair is one piece, walked key tile by key tile: a key tile's dk and dv
    /// gather over the query tiles that see it while dq accumulates in place.
    fn bwd<T: Real>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        o: &[T],
        g: &[T],
    ) -> (Vec<T>, Vec<T>, Vec<T>) {
        use rayon::prelude::*;
        let AttnShape { bh, lq, lk, dh } = self.shape;
        let mut dq = vec![T::zero(); bh * lq * dh];
        let mut dk = vec![T::zero(); bh * lk * dh];
        let mut dv = vec![T::zero(); bh * lk * dh];
        let pieces: Vec<_> = dq
            .chunks_mut(lq * dh)
            .zip(dk.chunks_mut(lk * dh))
            .zip(dv.chunks_mut(lk * dh))
            .enumerate()
            .map(|(b, ((a, c), d))| (b, a, c, d))
            .collect();
        let run = |(b, dq, dk, dv): (usize, &mut [T], &mut [T], &mut [T])| {
            self.bwd_pair(q, k, v, o, g, b, dq, dk, dv)
        };
        if self.parallel(pieces.len()) {
            pieces.into_par_iter().for_each(run);
        } else {
            pieces.into_iter().for_each(run);
        }
        (dq, dk, dv)
    }

    #[allow(clippy::too_many_arguments)]
    fn bwd_pair<T: Real>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        o: &[T],
        g: &[T],
        b: usize,
        dq: &mut [T],
        dk: &mut [T],
        dv: &mut [T],
    ) {
        let AttnShape { lq, lk, dh, .. } = self.shape;
        let w = dh + 1;
        let scale = T::from_f64(self.scale);
        let qb = &q[b * lq * dh..(b + 1) * lq * dh];
        let (kb, vb) = (
            &k[b * lk * dh..(b + 1) * lk * dh],
            &v[b * lk * dh..(b + 1) * lk * dh],
        );
        let (ob, gb) = (
            &o[b * lq * w..(b + 1) * lq * w],
            &g[b * lq * w..(b + 1) * lq * w],
        );
        // With the log-sum-exp's own gradient γ: ds = p⊙(dp − Σ_j p·dp) + p·γ = p⊙(dp − δ) with
        // δ = Σ_c do⊙o − γ, since Σ_j p·dp = do·o.
        let delta: Vec<T> = (0..lq)
            .map(|i| {
                let (or, gr) = (&ob[i * w..i * w + dh], &gb[i * w..i * w + dh]);
                let mut d = T::zero();
                for (&a, &c) in or.iter().zip(gr) {
                    d += a * c;
                }
                d - gb[i * w + dh]
            })
            .collect();
        let mut p = [T::zero(); TILE_Q * TILE_K];
        let mut ds = [T::zero(); TILE_Q * TILE_K];
        for j0 in (0..lk).step_by(TILE_K) {
            let nk = TILE_K.min(lk - j0);
            let (kt, vt) = (&kb[j0 * dh..(j0 + nk) * dh], &vb[j0 * dh..(j0 + nk) * dh]);
            let (dkt, dvt) = (
                &mut dk[j0 * dh..(j0 + nk) * dh],
                &mut dv[j0 * dh..(j0 + nk) * dh],
            );
            // The first query row that sees key j0.
            let istart = if self.causal {
                // Causal calls have Lk ≥ Lq (checked); a non-causal one may have Lq > Lk.
                j0.saturating_sub(lk - lq)
            } else {
                0
            };
            for i0 in (istart..lq).step_by(TILE_Q) {
                let nq = TILE_Q.min(lq - i0);
                let (p, ds) = (&mut p[..nq * nk], &mut ds[..nq * nk]);
                let qt = &qb[i0 * dh..(i0 + nq) * dh];
                let got = &gb[i0 * w..];
                scores(qt, kt, dh, p);
                for r in 0..nq {
                    let i = i0 + r;
                    let lse = ob[i * w + dh];
                    let vis = self.visible(i).saturating_sub(j0).min(nk);
                    let row = &mut p[r * nk..(r + 1) * nk];
                    exp_shifted_in_place(&mut row[..vis], scale, lse);
                    row[vis..].fill(T::zero());
                }
                // dv += pᵀ·do (do read from the packed gradient, row stride dh + 1).
                product(nk, dh, nq, dvt, true, (p, 1, nk), (got, w, 1));
                // dp = do·vᵀ, then ds = scale·p⊙(dp − δ).
                product(nq, nk, dh, ds, false, (got, w, 1), (vt, 1, dh));
                for r in 0..nq {
                    let d = delta[i0 + r];
                    for (x, &pr) in ds[r * nk..(r + 1) * nk]
                        .iter_mut()
                        .zip(&p[r * nk..(r + 1) * nk])
                    {
                        *x = scale * pr * (*x - d);
                    }
                }
                let dqt = &mut dq[i0 * dh..(i0 + nq) * dh];
                product(nq, dh, nk, dqt, true, (ds, nk, 1), (kt, dh, 1));
                product(nk, dh, nq, dkt, true, (ds, 1, nk), (qt, dh, 1));
            }
        }
    }
}

/// dst [m × n] = (read ? dst : 0) + lhs·rhs on the calling thread (the op splits its work
/// itself), each operand as (slice, row stride, column stride).
fn product<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    read: bool,
    lhs: (&[T], usize, usize),
    rhs: (&[T], usize, usize),
) {
    matmul(Gemm { m, n, k }, dst, read, lhs, rhs, false)
}

/// The scores s = q·kᵀ [nq, nk] of a query tile q [nq, dh] and a key tile k [nk, dh] (kᵀ read
/// through strides: row stride 1, column stride dh).
fn scores<T: Real>(q: &[T], k: &[T], dh: usize, s: &mut [T]) {
    let (nq, nk) = (q.len() / dh, k.len() / dh);
    product(nq, nk, dh, s, false, (q, dh, 1), (k, 1, dh))
}

/// Runs `f` on the contiguous element slices of five CPU tensors without copying them. It holds
/// their storages' read locks together while `f` runs, as candle's own `apply_op3` holds its
/// operands'; backward's tensors are no one else's to write meanwhile.
fn with_slices<T: Real, R>(
    ts: [&Tensor; 5],
    f: impl FnOnce([&[T]; 5]) -> R,
) -> candle_core::Result<R> {
    let ts = ts
        .iter()
        .map(|t| t.contiguous())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: Vec<&[T]> = Vec::with_capacity(5);
    for (g, l) in &guards {
        match &**g {
            Storage::Cpu(s) => slices.push(crate::kernel::contiguous_slice(s, l, "attention")?),
            _ => candle_core::bail!("attention: the tiled op runs on the CPU only"),
        }
    }
    Ok(f([slices[0], slices[1], slices[2], slices[3], slices[4]]))
}

impl CustomOp3 for AttnOp {
    fn name(&self) -> &'static str {
        "tiled-attention"
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
        use crate::kernel::contiguous_slice as sl;
        let out = float_kernel!(self.name(), s1.dtype(), |T| self.fwd::<T>(
            sl(s1, l1, "attention: q")?,
            sl(s2, l2, "attention: k")?,
            sl(s3, l3, "attention: v")?,
        ));
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("rank checked") += 1;
        Ok((out, Shape::from(dims)))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dev = q.device();
        // Five tensors take part and an op takes at most three, so backward reads their
        // storages directly (this op only runs on the CPU).
        let (dq, dk, dv) = float_kernel!(map self.name(), q.dtype(), |T| {
            let (a, b, c) =
                with_slices::<T, _>([q, k, v, res, grad], |[q, k, v, o, g]| {
                    self.bwd::<T>(q, k, v, o, g)
                })?;
            (
                Tensor::from_vec(a, q.shape(), dev)?,
                Tensor::from_vec(b, k.shape(), dev)?,
                Tensor::from_vec(c, v.shape(), dev)?,
            )
        });
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}
