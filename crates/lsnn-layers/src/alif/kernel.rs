//! The adaptive LIF's recurrence on slices (design §2.13): one forward pass over T and a
//! one-pass BPTT backward, in blocks of neurons (parallel over blocks when the work is large),
//! generic over the surrogate and the coefficient source so that every inner loop is
//! branch-free. The inputs, outputs and blocks are the current-based LIF's
//! ([`crate::synaptic::kernel`]); the state is (i, v, b) = (syn, mem, adapt), and an absent one
//! is norse's resting state (0, v_leak, θ), not zero.
//!
//! Forward, with g = 1 − β and q = 1 − ρ, in norse's arithmetic order:
//!
//! ```text
//! m_t = v_{t−1} + g·((v_leak − v_{t−1}) + i_{t−1})     a_t = b_{t−1} + q·(θ − b_{t−1})
//! z_t = H(m_t − a_t)
//! v_t = (1 − z_t)·m_t + z_t·v_reset     b_t = a_t + J·z_t     i_t = α·i_{t−1} + x_t
//! ```
//!
//! The spike reaches the reset and the adaptation with its gradient (norse detaches neither):
//! with σ' the surrogate at m_t − a_t and the carries (ḡi, ḡv, ḡb) of (i_t, v_t, b_t),
//!
//! ```text
//! ḡz = dL/dz_t + ḡv·(v_reset − m_t) + ḡb·J      ḡm = ḡv·(1 − z_t) + ḡz·σ'     ḡa = ḡb − ḡz·σ'
//! dL/dx_t = ḡi      carries: α·ḡi + g·ḡm,  β·ḡm,  ρ·ḡa
//! dL/dα += ḡi·i_{t−1}    dL/dβ −= ḡm·((v_leak − v_{t−1}) + i_{t−1})    dL/dθ += ḡa·q
//! ```

use super::Adaptation;
use crate::kernel::{for_ranges, wide_vectors, Real, SyncPtr};
use crate::lif::kernel::{h, Main};
use crate::lif::surrogate::SurrogateFn;
use crate::synaptic::coefs::{Coefs, Lanes};
use crate::synaptic::forward::{forward_block, SpikesTo};
use crate::synaptic::frame::{for_blocks, Frame};
use crate::synaptic::kernel::{Grads, Input, Upstream, ADD, DROP, WRITE};

/// The fixed adaptation and potentials in the kernels' type.
#[derive(Clone, Copy)]
pub(crate) struct Consts<T> {
    /// ρ, the adaptation's decay.
    rho: T,
    /// q = 1 − ρ.
    q: T,
    /// J.
    jump: T,
    leak: T,
    reset: T,
}

impl<T: Real> Consts<T> {
    pub(crate) fn new(a: &Adaptation) -> Self {
        Consts {
            rho: T::from_f64(a.decay),
            q: T::from_f64(1.0 - a.decay),
            jump: T::from_f64(a.jump),
            leak: T::from_f64(a.leak),
            reset: T::from_f64(a.reset),
        }
    }
}

/// The initial state of neurons `[a, a + w)`: the given one, or (0, v_leak, θ).
fn start<T: Real, L: Lanes<T>>(
    inp: &Input<'_, T>,
    k: &Consts<T>,
    l: &L,
    a: usize,
    w: usize,
) -> [Vec<T>; 3] {
    if inp.state0.is_some() {
        return [0, 1, 2].map(|p| inp.start_part(p, a, w));
    }
    // SAFETY: j < w, the width the lanes were made for.
    let theta = (0..w).map(|j| unsafe { l.at(j) }.2).collect();
    [vec![T::zero(); w], vec![k.leak; w], theta]
}

/// Writes the main output into `out` (`main.len()` elements) and, when given, the final state
/// [i (n) | v (n) | b (n)] into `fin`.
pub(crate) fn forward<T: Real, C: Coefs<T>>(
    c: &C,
    k: &Consts<T>,
    inp: &Input<'_, T>,
    main: Main,
    out: &mut [T],
    fin: Option<&mut [T]>,
) {
    let out = SyncPtr(out.as_mut_ptr());
    let fin = fin.map(|f| SyncPtr(f.as_mut_ptr()));
    let wide = wide_vectors();
    for_ranges(inp.n, inp.steps, |a, b| {
        fwd_block::<T, C>(wide, c, k, inp, main, &out, fin.as_ref(), a, b)
    });
}

/// The forward of neurons `[a, b)` ([`forward_block`]).
#[allow(clippy::too_many_arguments)]
fn fwd_block<T: Real, C: Coefs<T>>(
    wide: bool,
    c: &C,
    k: &Consts<T>,
    inp: &Input<'_, T>,
    main: Main,
    out: &SyncPtr<T>,
    fin: Option<&SyncPtr<T>>,
    a: usize,
    b: usize,
) {
    let l = c.lanes(a, b - a);
    let st = start(inp, k, &l, a, b - a);
    forward_block(
        inp,
        main,
        out,
        fin,
        a,
        b,
        st,
        1,
        |row, [i, v, bb], to| match to {
            SpikesTo::Write(o) => fwd_row_on::<T, _, WRITE>(wide, &l, k, row, [i, v, bb], o),
            SpikesTo::Add(o) => fwd_row_on::<T, _, ADD>(wide, &l, k, row, [i, v, bb], o),
        },
    );
}

/// One step over a block: (i, v, b) updated in place from the currents `x`, the spikes handled
/// as `OUT` says into `o`.
#[inline(always)]
fn fwd_row<T: Real, L: Lanes<T>, const OUT: u8>(
    l: &L,
    k: &Consts<T>,
    x: &[T],
    [i, v, b]: [&mut [T]; 3],
    o: &mut [T],
) {
    let w = i.len();
    let (x, v, b) = (&x[..w], &mut v[..w], &mut b[..w]);
    let o = &mut o[..if OUT == DROP { 0 } else { w }];
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (al, be, th) = unsafe { l.at(j) };
        let g = T::one() - be;
        let m = v[j] + g * ((k.leak - v[j]) + i[j]);
        let a = b[j] + k.q * (th - b[j]);
        let z = h(m, a);
        v[j] = (T::one() - z) * m + z * k.reset;
        b[j] = a + z * k.jump;
        i[j] = al * i[j] + x[j];
        match OUT {
            WRITE => o[j] = z,
            ADD => o[j] += z,
            _ => {}
        }
    }
}

/// [`fwd_row`] in its AVX2 copy when `wide`, else in the baseline one (each a function of its
/// own, not inlined, so that the compiler keeps knowing the slices do not overlap).
#[inline(always)]
fn fwd_row_on<T: Real, L: Lanes<T>, const OUT: u8>(
    wide: bool,
    l: &L,
    k: &Consts<T>,
    x: &[T],
    st: [&mut [T]; 3],
    o: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only true where the CPU has AVX2.
        return unsafe { fwd_row_avx2::<T, L, OUT>(l, k, x, st, o) };
    }
    let _ = wide;
    fwd_row_base::<T, L, OUT>(l, k, x, st, o)
}

/// [`fwd_row`] for the baseline instructions.
#[inline(never)]
fn fwd_row_base<T: Real, L: Lanes<T>, const OUT: u8>(
    l: &L,
    k: &Consts<T>,
    x: &[T],
    st: [&mut [T]; 3],
    o: &mut [T],
) {
    fwd_row::<T, L, OUT>(l, k, x, st, o)
}

/// [`fwd_row`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn fwd_row_avx2<T: Real, L: Lanes<T>, const OUT: u8>(
    l: &L,
    k: &Consts<T>,
    x: &[T],
    st: [&mut [T]; 3],
    o: &mut [T],
) {
    fwd_row::<T, L, OUT>(l, k, x, st, o)
}

/// BPTT from the upstream gradients (an absent one is zero) into `out` (dL/dx; the initial
/// state's gradient [i | v | b] when a state was given; per-neuron parts of dL/dα, dL/dβ,
/// dL/dθ, summed per triple by the caller), as the module's formulas say.
pub(crate) fn backward<T: Real, S: SurrogateFn, C: Coefs<T>>(
    c: &C,
    k: &Consts<T>,
    sur: &S,
    inp: &Input<'_, T>,
    main: Main,
    up: &Upstream<'_, T>,
    out: Grads<'_, T>,
) {
    let sk = sur.kernel::<T>();
    let wide = wide_vectors();
    for_blocks(inp, main, up, out, |f, learn| match (inp.constant, learn) {
        (false, false) => run_block::<T, S, C, false, false>(f, c, k, sk, wide),
        (false, true) => run_block::<T, S, C, false, true>(f, c, k, sk, wide),
        (true, false) => run_block::<T, S, C, true, false>(f, c, k, sk, wide),
        (true, true) => run_block::<T, S, C, true, true>(f, c, k, sk, wide),
    });
}

/// The backward of one block: `CONSTANT` for a constant current (its gradient summed over the
/// steps), `LEARN` when the parameter gradients are wanted.
fn run_block<T: Real, S: SurrogateFn, C: Coefs<T>, const CONSTANT: bool, const LEARN: bool>(
    f: &Frame<'_, T>,
    c: &C,
    k: &Consts<T>,
    sk: S::Kernel<T>,
    wide: bool,
) {
    let (inp, steps, a, w) = (f.inp, f.inp.steps, f.a, f.width());
    let l = c.lanes(a, w);
    // Every step's state for this block, row t holding the state after step t − 1 (row 0 the
    // initial one): the backward of step t reads row t.
    let mut hist = [0, 1, 2].map(|_| vec![T::zero(); (steps + 1) * w]);
    let st0 = start(inp, k, &l, a, w);
    for (h, s) in hist.iter_mut().zip(&st0) {
        h[..w].copy_from_slice(s);
    }
    for t in 0..steps {
        let row = &inp.row(t, a, w)[..w];
        let [hi, hv, hb] = &mut hist;
        let next = |h: &mut Vec<T>| {
            let (prev, next) = h.split_at_mut((t + 1) * w);
            next[..w].copy_from_slice(&prev[t * w..]);
        };
        next(hi);
        next(hv);
        next(hb);
        let r = (t + 1) * w..(t + 2) * w;
        let (i, v, b) = (&mut hi[r.clone()], &mut hv[r.clone()], &mut hb[r]);
        fwd_row_on::<T, _, DROP>(wide, &l, k, row, [i, v, b], &mut []);
    }
    let mut carry = [0, 1, 2].map(|p| f.state_grad(p));
    let mut acc = vec![T::zero(); if CONSTANT { w } else { 0 }];
    let lw = if LEARN { w } else { 0 };
    let mut dpar = vec![T::zero(); 3 * lw];
    let grads = f.step_grads();
    for t in (0..steps).rev() {
        let o: &mut [T] = if CONSTANT {
            &mut acc[..]
        } else {
            // SAFETY: the only slice of row t this block takes.
            unsafe { f.dcur_row(t) }
        };
        let (da, rest) = dpar.split_at_mut(lw);
        let (db, dt) = rest.split_at_mut(lw);
        let r = t * w..(t + 1) * w;
        let [ci, cv, cb] = &mut carry;
        bwd_row_on::<T, S, _, CONSTANT, LEARN>(
            wide,
            &l,
            k,
            sk,
            [
                &grads.at(t)[..w],
                &hist[0][r.clone()],
                &hist[1][r.clone()],
                &hist[2][r],
            ],
            o,
            [ci, cv, cb],
            [da, db, dt],
        );
    }
    let [ci, cv, cb] = &carry;
    f.finish(CONSTANT.then_some(&acc[..]), &[ci, cv, cb], &dpar);
}

/// [`bwd_row`] in its AVX2 copy when `wide`, else in the baseline one (not inlined, as
/// [`fwd_row_on`]'s).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_row_on<T: Real, S: SurrogateFn, L: Lanes<T>, const CONSTANT: bool, const LEARN: bool>(
    wide: bool,
    l: &L,
    k: &Consts<T>,
    sk: S::Kernel<T>,
    reads: [&[T]; 4],
    o: &mut [T],
    carries: [&mut [T]; 3],
    parts: [&mut [T]; 3],
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only true where the CPU has AVX2.
        return unsafe {
            bwd_row_avx2::<T, S, L, CONSTANT, LEARN>(l, k, sk, reads, o, carries, parts)
        };
    }
    let _ = wide;
    bwd_row_base::<T, S, L, CONSTANT, LEARN>(l, k, sk, reads, o, carries, parts)
}

/// [`bwd_row`] for the baseline instructions.
#[inline(never)]
fn bwd_row_base<T: Real, S: SurrogateFn, L: Lanes<T>, const CONSTANT: bool, const LEARN: bool>(
    l: &L,
    k: &Consts<T>,
    sk: S::Kernel<T>,
    reads: [&[T]; 4],
    o: &mut [T],
    carries: [&mut [T]; 3],
    parts: [&mut [T]; 3],
) {
    bwd_row::<T, S, L, CONSTANT, LEARN>(l, k, sk, reads, o, carries, parts)
}

/// [`bwd_row`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn bwd_row_avx2<
    T: Real,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: &Consts<T>,
    sk: S::Kernel<T>,
    reads: [&[T]; 4],
    o: &mut [T],
    carries: [&mut [T]; 3],
    parts: [&mut [T]; 3],
) {
    bwd_row::<T, S, L, CONSTANT, LEARN>(l, k, sk, reads, o, carries, parts)
}

/// One step of the BPTT over a block from what it reads, [dL/dz_t, i_{t−1}, v_{t−1}, b_{t−1}]:
/// dL/dx into `o` (added, `CONSTANT`), the carries [ḡi, ḡv, ḡb] of the previous step written,
/// the parameter parts added (empty unless `LEARN`). Every slice is an argument of its own so
/// that the loop vectorises.
#[inline(always)]
fn bwd_row<T: Real, S: SurrogateFn, L: Lanes<T>, const CONSTANT: bool, const LEARN: bool>(
    l: &L,
    k: &Consts<T>,
    sk: S::Kernel<T>,
    [g, ip, vp, bp]: [&[T]; 4],
    o: &mut [T],
    [ci, cv, cb]: [&mut [T]; 3],
    [da, db, dt]: [&mut [T]; 3],
) {
    let w = o.len();
    let (g, ip, vp, bp) = (&g[..w], &ip[..w], &vp[..w], &bp[..w]);
    let (ci, cv, cb) = (&mut ci[..w], &mut cv[..w], &mut cb[..w]);
    let lw = if LEARN { w } else { 0 };
    let (da, db, dt) = (&mut da[..lw], &mut db[..lw], &mut dt[..lw]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (al, be, th) = unsafe { l.at(j) };
        let gg = T::one() - be;
        let drive = (k.leak - vp[j]) + ip[j];
        let m = vp[j] + gg * drive;
        let a = bp[j] + k.q * (th - bp[j]);
        let z = h(m, a);
        let s = S::grad(&sk, m - a);
        let gz = g[j] + cv[j] * (k.reset - m) + cb[j] * k.jump;
        let gzs = gz * s;
        let gm = cv[j] * (T::one() - z) + gzs;
        let ga = cb[j] - gzs;
        let gi = ci[j];
        if CONSTANT {
            o[j] += gi;
        } else {
            o[j] = gi;
        }
        if LEARN {
            da[j] += gi * ip[j];
            db[j] -= gm * drive;
            dt[j] += ga * k.q;
        }
        ci[j] = al * gi + gg * gm;
        cv[j] = be * gm;
        cb[j] = k.rho * ga;
    }
}
