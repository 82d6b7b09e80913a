//! Forward: one layer's step (also backward's recomputation) and the whole sequence.

use super::layout::{LayerLayout, StackLayout};
use crate::cfc::CfcMode;
use crate::kernel::Real;

pub(super) const LECUN_A: f64 = 1.7159;
pub(super) const LECUN_B: f64 = 0.666;

/// Sequential gemm (the CfC's matrices are far too small to split across threads): dst
/// [m × n] (+)= lhs [m × k] · rhs [k × n], each operand (slice, row stride, column stride).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn mm<T: candle_core::WithDType>(
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

/// A layer's activations at one step: `acts[0]` the first map (after lecun_tanh when there is
/// a backbone), `acts[k]` the k-th deeper backbone layer, and the head.
pub(super) struct Scratch<T> {
    pub acts: Vec<Vec<T>>,
    pub head: Vec<T>,
}

impl<T: Real> Scratch<T> {
    pub fn new(b: usize, ly: &LayerLayout) -> Self {
        let depth = ly.dims.depth.max(1);
        let mut acts = vec![vec![T::zero(); b * ly.first]];
        for _ in 1..depth {
            acts.push(vec![T::zero(); b * ly.dims.units]);
        }
        let head = if ly.headless() {
            Vec::new()
        } else {
            vec![T::zero(); b * ly.head]
        };
        Scratch { acts, head }
    }

    /// The head's values (the first map itself without a backbone).
    pub fn head(&self, ly: &LayerLayout) -> &[T] {
        if ly.headless() {
            &self.acts[0]
        } else {
            &self.head
        }
    }
}

/// Where a layer's step reads its input: the driving input's rows at step t (the first layer)
/// or the previous layer's new state (columns `cols` of rows of width `stride`).
pub(super) enum Input<'a, T> {
    Drive {
        drive: &'a [T],
        t: usize,
    },
    State {
        h: &'a [T],
        cols: usize,
        stride: usize,
    },
}

/// Layer `ly`'s step up to its head: the first map from the input and h_{t−1} (`h_prev`, the
/// layer's columns of rows of width `s.state`), the backbone, the head.
#[inline(always)]
pub(super) fn layer_head<T: Real>(
    s: &StackLayout,
    ly: &LayerLayout,
    packed: &[T],
    input: Input<'_, T>,
    h_prev: &[T],
    sc: &mut Scratch<T>,
) {
    let (b, f, hd) = (s.b, ly.first, ly.dims.hidden);
    {
        let first = &mut sc.acts[0];
        match input {
            Input::Drive { drive, t } => {
                for r in 0..b {
                    let at = (r * s.l + t) * s.drive;
                    first[r * f..(r + 1) * f].copy_from_slice(&drive[at..at + f]);
                }
            }
            Input::State { h, cols, stride } => {
                let b_in = &packed[ly.b_in.clone()];
                for r in 0..b {
                    first[r * f..(r + 1) * f].copy_from_slice(b_in);
                }
                let w_in_t = &packed[ly.w_in_t.clone()];
                mm(
                    b,
                    f,
                    ly.dims.input,
                    first,
                    true,
                    &h[cols..],
                    stride,
                    1,
                    w_in_t,
                    f,
                    1,
                );
            }
        }
        let w_rec_t = &packed[ly.w_rec_t.clone()];
        mm(
            b,
            f,
            hd,
            first,
            true,
            &h_prev[ly.state.start..],
            s.state,
            1,
            w_rec_t,
            f,
            1,
        );
    }
    if ly.headless() {
        return;
    }
    let (la, lb) = (T::from_f64(LECUN_A), T::from_f64(LECUN_B));
    let u = ly.dims.units;
    for v in sc.acts[0].iter_mut() {
        *v = la * (lb * *v).tanh_lanes();
    }
    for (k, (w, bias)) in ly.deep.iter().enumerate() {
        let (lo, hi) = sc.acts.split_at_mut(k + 1);
        let z = &mut hi[0];
        for r in 0..b {
            z[r * u..(r + 1) * u].copy_from_slice(&packed[bias.clone()]);
        }
        mm(b, u, u, z, true, &lo[k], u, 1, &packed[w.clone()], u, 1);
        for v in z.iter_mut() {
            *v = la * (lb * *v).tanh_lanes();
        }
    }
    let head = &mut sc.head;
    for r in 0..b {
        head[r * ly.head..(r + 1) * ly.head].copy_from_slice(&packed[ly.b_head.clone()]);
    }
    let last = sc.acts.last().expect("at least the first map");
    mm(
        b,
        ly.head,
        u,
        head,
        true,
        last,
        u,
        1,
        &packed[ly.w_head_t.clone()],
        ly.head,
        1,
    );
}

/// h' of one row from its head `hd` (the gated modes: [head₁ | head₂ | head₃ (| head₄)], each
/// `out.len()` wide) and the time span, into `out`. The mode is decided once per row and each
/// mode's loop runs over contiguous slices with branch-free, call-free tanh and σ, so that it
/// vectorises (the per-element `tanhf`/`expf` calls were a tenth of a training step).
#[inline(always)]
fn gated_row<T: Real>(mode: CfcMode, per_step: bool, hd: &[T], ts: T, out: &mut [T]) {
    let h = out.len();
    let (f1, rest) = hd.split_at(h);
    let (f2, rest) = rest.split_at(h);
    let (pa, pb) = rest.split_at(h);
    let one = T::one();
    match (mode, per_step) {
        (CfcMode::NoGate, false) => {
            for (((o, &a), &b), &p) in out.iter_mut().zip(f1).zip(f2).zip(pa) {
                *o = a.tanh_lanes() + p.sigmoid_lanes() * b.tanh_lanes();
            }
        }
        (CfcMode::NoGate, true) => {
            for ((((o, &a), &b), &p), &q) in out.iter_mut().zip(f1).zip(f2).zip(pa).zip(pb) {
                *o = a.tanh_lanes() + (p * ts + q).sigmoid_lanes() * b.tanh_lanes();
            }
        }
        (_, false) => {
            for (((o, &a), &b), &p) in out.iter_mut().zip(f1).zip(f2).zip(pa) {
                let tau = p.sigmoid_lanes();
                *o = a.tanh_lanes() * (one - tau) + tau * b.tanh_lanes();
            }
        }
        (_, true) => {
            for ((((o, &a), &b), &p), &q) in out.iter_mut().zip(f1).zip(f2).zip(pa).zip(pb) {
                let tau = (p * ts + q).sigmoid_lanes();
                *o = a.tanh_lanes() * (one - tau) + tau * b.tanh_lanes();
            }
        }
    }
}

/// Pure mode's h' of one row: −A·exp(−ts·(|w_tau| + |head|))·head + A.
#[inline(always)]
fn pure_row<T: Real>(hd: &[T], w_tau: &[T], a: &[T], ts: T, out: &mut [T]) {
    for (((o, &f), &w), &a) in out.iter_mut().zip(hd).zip(w_tau).zip(a) {
        let e = (T::zero() - ts * (w.abs_() + f.abs_())).exp_();
        *o = (T::zero() - a) * e * f + a;
    }
}

/// Writes layer `ly`'s new state into `h_new` (its columns) from the head in `sc`.
#[inline(always)]
pub(super) fn layer_output<T: Real>(
    s: &StackLayout,
    ly: &LayerLayout,
    packed: &[T],
    drive: &[T],
    t: usize,
    sc: &Scratch<T>,
    h_new: &mut [T],
) {
    let hdim = ly.dims.hidden;
    let per_step = s.span == super::layout::Span::PerStep;
    let head = sc.head(ly);
    let (w_tau, a) = (&packed[ly.w_tau.clone()], &packed[ly.a.clone()]);
    for r in 0..s.b {
        let hd = &head[r * ly.head..(r + 1) * ly.head];
        let ts = s.span_at(drive, r, t);
        let at = r * s.state + ly.state.start;
        let out = &mut h_new[at..at + hdim];
        if s.mode == CfcMode::Pure {
            pure_row(hd, w_tau, a, ts, out);
        } else {
            gated_row(s.mode, per_step, hd, ts, out);
        }
    }
}

/// The whole sequence: h_1..h_L of every layer, [B, L, Σ hidden]. The AVX2 copy where the CPU
/// has it (the same arithmetic in the same order, so the same bits: `kernel::simd`).
pub(super) fn forward<T: Real>(s: &StackLayout, drive: &[T], packed: &[T], h0: &[T]) -> Vec<T> {
    #[cfg(target_arch = "x86_64")]
    if crate::kernel::wide_vectors() {
        // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
        return unsafe { forward_avx2(s, drive, packed, h0) };
    }
    forward_steps(s, drive, packed, h0)
}

/// [`forward_steps`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_avx2<T: Real>(s: &StackLayout, drive: &[T], packed: &[T], h0: &[T]) -> Vec<T> {
    forward_steps(s, drive, packed, h0)
}

#[inline(always)]
fn forward_steps<T: Real>(s: &StackLayout, drive: &[T], packed: &[T], h0: &[T]) -> Vec<T> {
    let (b, l, sw) = (s.b, s.l, s.state);
    let mut hs = vec![T::zero(); b * l * sw];
    let mut h_prev = h0.to_vec();
    let mut h_new = vec![T::zero(); b * sw];
    let mut scratch: Vec<Scratch<T>> = s.layers.iter().map(|ly| Scratch::new(b, ly)).collect();
    for t in 0..l {
        for (li, ly) in s.layers.iter().enumerate() {
            let input = if li == 0 {
                Input::Drive { drive, t }
            } else {
                Input::State {
                    h: &h_new,
                    cols: s.layers[li - 1].state.start,
                    stride: sw,
                }
            };
            // The input borrows h_new (earlier layers' columns); the output writes this
            // layer's columns after the head is computed.
            layer_head(s, ly, packed, input, &h_prev, &mut scratch[li]);
            layer_output(s, ly, packed, drive, t, &scratch[li], &mut h_new);
        }
        for r in 0..b {
            hs[(r * l + t) * sw..(r * l + t + 1) * sw]
                .copy_from_slice(&h_new[r * sw..(r + 1) * sw]);
        }
        std::mem::swap(&mut h_prev, &mut h_new);
    }
    hs
}
