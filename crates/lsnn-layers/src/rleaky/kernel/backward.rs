//! The BPTT backward: per block of rows, one reverse pass over the membranes the forward kept,
//! the recurrent weights' gradients summed per block and then over blocks in block order.

use super::{Input, Rec};
use crate::kernel::{Real, SyncPtr};
use crate::lif::coefs::{Coefs, Lanes};
use crate::lif::kernel::{h, Main};
use crate::lif::surrogate::SurrogateFn;
use crate::synaptic::reset::SynReset;

/// Where the backward writes: dL/dI ([T, n], or [n] for a constant current), the initial
/// state's gradient ([spikes (n) | U (n)], when a state was given), the per-neuron parts of
/// dL/dβ and dL/dθ ([2n], for learned ones) and of dL/dV or dL/db ([n]); dL/dW is returned.
pub(crate) struct Grads<'a, T> {
    pub dcur: &'a mut [T],
    pub dstate0: Option<&'a mut [T]>,
    pub dparams: Option<&'a mut [T]>,
    pub drec: &'a mut [T],
}

/// The upstream gradients of a backward.
pub(crate) struct Upstream<'a, T> {
    /// Of the main output: spikes [T, n], or a rate [n] whose every step receives g/T (the
    /// mean-membrane half of `RateMem` is detached and ignored).
    pub g_main: Option<&'a [T]>,
    /// Of the final state [spikes (n) | U (n)].
    pub g_state: Option<&'a [T]>,
}

/// The backward's outputs, written by disjoint blocks of neurons.
struct Dest<T> {
    dcur: SyncPtr<T>,
    dstate0: Option<SyncPtr<T>>,
    dparams: Option<SyncPtr<T>>,
    drec: SyncPtr<T>,
}

/// BPTT from the upstream gradients (an absent one is zero) over the membranes `hist` [T, n]
/// the forward kept (replayed per block when it kept none). Returns dL/dW [F, F] for an
/// all-to-all layer (empty otherwise); with learned parameters it also sums, per neuron,
/// dL/dβ = Σ dL/dm_t·U_{t−1} and dL/dθ = Σ (∂U_t/∂θ·dL/dU_t − dL/dS_t·σ'(U_t − θ)).
pub(crate) fn backward<T: Real, R: SynReset, S: SurrogateFn, C: Coefs<T>>(
    c: &C,
    sur: &S,
    inp: &Input<'_, T>,
    hist: Option<&[T]>,
    main: Main,
    up: &Upstream<'_, T>,
    out: Grads<'_, T>,
) -> Vec<T> {
    let k = sur.kernel::<T>();
    let dst = Dest {
        dcur: SyncPtr(out.dcur.as_mut_ptr()),
        dstate0: out.dstate0.map(|d| SyncPtr(d.as_mut_ptr())),
        dparams: out.dparams.map(|d| SyncPtr(d.as_mut_ptr())),
        drec: SyncPtr(out.drec.as_mut_ptr()),
    };
    let learn = dst.dparams.is_some();
    let run = |r0: usize, r1: usize| {
        let blk = Block {
            c,
            k: &k,
            inp,
            hist,
            up,
            dst: &dst,
            rate: main != Main::Spikes,
            r0,
            r1,
        };
        match (inp.constant, learn) {
            (false, false) => blk.run::<R, S, false, false>(),
            (false, true) => blk.run::<R, S, false, true>(),
            (true, false) => blk.run::<R, S, true, false>(),
            (true, true) => blk.run::<R, S, true, true>(),
        }
    };
    // Blocks run in groups, each group's dL/dW partials added in block order before the next
    // group starts: the sum does not depend on the thread count, and at most DW_GROUP partials
    // [F, F] are alive at once however many rows there are.
    let blocks = inp.blocks();
    let mut dw = Vec::new();
    for g in (0..blocks).step_by(DW_GROUP) {
        for p in inp.map_block_range(g..(g + DW_GROUP).min(blocks), run) {
            if dw.is_empty() {
                dw = p;
            } else {
                for (d, v) in dw.iter_mut().zip(p) {
                    *d += v;
                }
            }
        }
    }
    dw
}

/// Blocks whose dL/dW partials are alive at once.
const DW_GROUP: usize = 8;

/// One block of rows `[r0, r1)` of a backward.
struct Block<'a, T, C, K> {
    c: &'a C,
    k: &'a K,
    inp: &'a Input<'a, T>,
    hist: Option<&'a [T]>,
    up: &'a Upstream<'a, T>,
    dst: &'a Dest<T>,
    /// The main output is a rate: every step receives g/T.
    rate: bool,
    r0: usize,
    r1: usize,
}

impl<T: Real, C: Coefs<T>, K: Copy> Block<'_, T, C, K> {
    /// The backward of the block: `CONSTANT` for a constant current (its gradient summed over
    /// the steps), `LEARN` when the β and θ gradients are wanted. Returns the block's dL/dW.
    fn run<R: SynReset, S: SurrogateFn<Kernel<T> = K>, const CONSTANT: bool, const LEARN: bool>(
        &self,
    ) -> Vec<T> {
        let (inp, up, dst) = (self.inp, self.up, self.dst);
        let (steps, n, f) = (inp.steps, inp.n, inp.f);
        let (a, w) = (self.r0 * f, (self.r1 - self.r0) * f);
        let b = a + w;
        let l = self.c.lanes(a, w);
        let v = inp.v_lanes(a, w);
        let a2a = matches!(inp.rec, Rec::AllToAll { .. });
        let (s0, u0) = inp.start(a, w);
        let (mut cs, mut cu) = match up.g_state {
            Some(g) => (g[a..b].to_vec(), g[n + a..n + b].to_vec()),
            None => (vec![T::zero(); w], vec![T::zero(); w]),
        };
        let mut gm = vec![T::zero(); w];
        let mut s_prev = vec![T::zero(); w];
        // All-to-all: dL/dm and S_{t−1} of up to DW_STEPS steps, summed into dL/dW [F, F] by one
        // gemm whenever they fill (k = DW_STEPS × rows), so the buffers stay O(rows) in T.
        let chunk = steps.min(DW_STEPS);
        let (mut gm_hist, mut sp_hist) = match a2a {
            true => (vec![T::zero(); chunk * w], vec![T::zero(); chunk * w]),
            false => (Vec::new(), Vec::new()),
        };
        let mut dw = vec![T::zero(); if a2a { f * f } else { 0 }];
        // dL/dWᵀ from the steps whose S_{t−1} was sparse, added into dL/dW at the end (allocated
        // at the first such step).
        let mut dwt: Vec<T> = Vec::new();
        let mut held = 0;
        let mut drec = vec![T::zero(); w];
        let mut acc = vec![T::zero(); if CONSTANT { w } else { 0 }];
        let lw = if LEARN { w } else { 0 };
        let mut dpar = vec![T::zero(); 2 * lw];
        let per_step = up.g_main.is_some() && !self.rate;
        // A rate's g/T, or zeros when only the final state has a gradient.
        let mut scaled = vec![T::zero(); if per_step { 0 } else { w }];
        if let (true, Some(g)) = (self.rate, up.g_main) {
            let inv_t = T::from_f64(1.0 / steps as f64);
            for (sj, &gj) in scaled.iter_mut().zip(&g[a..b]) {
                *sj = gj * inv_t;
            }
        }
        let replayed;
        let (hist, stride, off) = match self.hist {
            Some(h) => (h, n, a),
            None => {
                let mut h = vec![T::zero(); steps * w];
                super::forward::replay::<T, R, _>(inp, &l, &v, a, w, &mut h);
                replayed = h;
                (&replayed[..], w, 0)
            }
        };
        let mem = |t: usize| &hist[t * stride + off..t * stride + off + w];
        for t in (0..steps).rev() {
            let g: &[T] = match up.g_main {
                Some(g) if per_step => &g[t * n + a..t * n + b],
                _ => &scaled,
            };
            let u_prev = if t == 0 { &u0[..] } else { mem(t - 1) };
            let o: &mut [T] = if CONSTANT {
                &mut acc[..]
            } else {
                // SAFETY: row t, neurons [a, b) belong to this block only.
                unsafe { dst.dcur.slice(t * n + a, w) }
            };
            let (db, dt) = dpar.split_at_mut(lw);
            row::<T, R, S, _, CONSTANT, LEARN>(
                &l,
                *self.k,
                [g, mem(t), u_prev],
                o,
                &mut gm,
                [&mut cs, &mut cu],
                [db, dt],
            );
            if t == 0 {
                s_prev.copy_from_slice(&s0);
            } else {
                spikes_of(&l, u_prev, &mut s_prev);
            }
            match inp.rec {
                Rec::OneToOne(_) => {
                    for j in 0..w {
                        drec[j] += gm[j] * s_prev[j];
                        cs[j] = v[j] * gm[j];
                    }
                }
                Rec::AllToAll { w: weight, .. } => {
                    crate::kernel::matmul(
                        crate::kernel::Gemm {
                            m: w / f,
                            n: f,
                            k: f,
                        },
                        &mut cs,
                        false,
                        (&gm, f, 1),
                        (weight, f, 1),
                        false,
                    );
                    for (d, &x) in drec.iter_mut().zip(&gm) {
                        *d += x;
                    }
                    if super::sparse(&s_prev) {
                        if dwt.is_empty() {
                            dwt = vec![T::zero(); f * f];
                        }
                        // dL/dWᵀ[i] += S_{t−1}[i]·dL/dm_t per row, for the active inputs i.
                        for (srow, grow) in s_prev.chunks_exact(f).zip(gm.chunks_exact(f)) {
                            for (i, &si) in srow.iter().enumerate() {
                                if si != T::zero() {
                                    super::axpy(&mut dwt[i * f..(i + 1) * f], si, grow);
                                }
                            }
                        }
                    } else {
                        gm_hist[held * w..(held + 1) * w].copy_from_slice(&gm);
                        sp_hist[held * w..(held + 1) * w].copy_from_slice(&s_prev);
                        held += 1;
                    }
                    if held > 0 && (held == chunk || t == 0) {
                        add_dw(&mut dw, &gm_hist[..held * w], &sp_hist[..held * w], f);
                        held = 0;
                    }
                }
            }
        }
        if CONSTANT {
            // SAFETY: neurons [a, b) belong to this block only.
            unsafe { dst.dcur.slice(a, w) }.copy_from_slice(&acc);
        }
        if let Some(d) = &dst.dstate0 {
            // SAFETY: neurons [a, b) of both halves belong to this block only.
            unsafe { d.slice(a, w) }.copy_from_slice(&cs);
            unsafe { d.slice(n + a, w) }.copy_from_slice(&cu);
        }
        if let (true, Some(d)) = (LEARN, &dst.dparams) {
            for (p, part) in dpar.chunks_exact(w).enumerate() {
                // SAFETY: neurons [a, b) of each half belong to this block only.
                unsafe { d.slice(p * n + a, w) }.copy_from_slice(part);
            }
        }
        // SAFETY: neurons [a, b) belong to this block only.
        unsafe { dst.drec.slice(a, w) }.copy_from_slice(&drec);
        for (i, row) in dwt.chunks_exact(f.max(1)).enumerate() {
            for (o, &x) in row.iter().enumerate() {
                dw[o * f + i] += x;
            }
        }
        dw
    }
}

/// Steps of dL/dm and S_{t−1} an all-to-all block holds before summing them into dL/dW.
const DW_STEPS: usize = 16;

/// dL/dW [F, F] += gmᵀ·sp for `gm`, `sp` [k, F] (k rows of any steps).
fn add_dw<T: Real>(dw: &mut [T], gm: &[T], sp: &[T], f: usize) {
    crate::kernel::matmul(
        crate::kernel::Gemm {
            m: f,
            n: f,
            k: gm.len() / f.max(1),
        },
        dw,
        true,
        (gm, 1, f),
        (sp, f, 1),
        false,
    );
}

/// S = H(U − θ) of a block's membranes `u`, into `s`.
fn spikes_of<T: Real, L: Lanes<T>>(l: &L, u: &[T], s: &mut [T]) {
    for (j, (sj, &uj)) in s.iter_mut().zip(u).enumerate() {
        // SAFETY: j < w, the width the lanes were made for (s and u hold w values).
        let (_, th) = unsafe { l.at(j) };
        *sj = h(uj, th);
    }
}

/// One step of the BPTT over a block from what it reads, [g_t, U_t, U_{t−1}]: dL/dm_t into
/// `gm` and into `o` (dL/dI, added when `CONSTANT`), the membrane carry β·dL/dm_t into `cu`
/// (`cs`, the spike carry, is read here and rewritten by the recurrence), the β and θ parts
/// added (empty unless `LEARN`). Not inlined, so that the loop vectorises.
#[inline(never)]
fn row<
    T: Real,
    R: SynReset,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    [g, u_t, u_prev]: [&[T]; 3],
    o: &mut [T],
    gm: &mut [T],
    [cs, cu]: [&mut [T]; 2],
    [db, dt]: [&mut [T]; 2],
) {
    let w = o.len();
    let (g, u_t, u_prev, gm, cs, cu) = (
        &g[..w],
        &u_t[..w],
        &u_prev[..w],
        &mut gm[..w],
        &cs[..w],
        &mut cu[..w],
    );
    let lw = if LEARN { w } else { 0 };
    let (db, dt) = (&mut db[..lw], &mut dt[..lw]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (be, th) = unsafe { l.at(j) };
        let r = h(u_prev[j], th);
        let gs = g[j] + cs[j];
        let sig = gs * S::grad(&k, u_t[j] - th);
        let gu = sig + cu[j];
        let gmj = R::gate(r) * gu;
        gm[j] = gmj;
        if CONSTANT {
            o[j] += gmj;
        } else {
            o[j] = gmj;
        }
        if LEARN {
            db[j] += gmj * u_prev[j];
            dt[j] += R::dtheta(r) * gu - sig;
        }
        cu[j] = be * gmj;
    }
}
