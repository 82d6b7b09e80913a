//! The alpha neuron's recurrence on slices (design §2.12): one forward pass over T and a
//! one-pass BPTT backward, in blocks of neurons (parallel over blocks when the work is large),
//! generic over the reset, the surrogate and the coefficient source so that every inner loop is
//! branch-free. The inputs, outputs and blocks are the current-based LIF's
//! ([`crate::synaptic::kernel`]); the state is (E, I, U) = (syn_exc, syn_inh, mem).
//!
//! Forward, with r_t = H(U_{t−1} − θ) detached:
//!
//! ```text
//! E'_t = α·E_{t−1} + x_t     I'_t = β·I_{t−1} − x_t     M'_t = τ·(E'_t + I'_t)
//! (E_t, I_t, U_t) = reset(E'_t, I'_t, M'_t, r_t, θ, I_{t−1})       S_t = H(U_t − θ)
//! ```
//!
//! Backward recomputes the membranes per block (and E, I when the parameters are learned: all
//! three arrive together, so a learned θ alone keeps them too) and runs, from
//! the final state's gradients, dL/dU_t = dL/dS_t·σ'(U_t − θ) + dL/dU_t(carried, only at the last
//! step: the membrane reaches the next step through the detached reset alone), the reset's
//! backward to (E', I', M'), then dL/dE' += τ·dL/dM', dL/dI' += τ·dL/dM',
//! dL/dx_t = dL/dE' − dL/dI', and carries α·dL/dE', β·dL/dI' (+ the subtract reset's direct
//! dL/dI_{t−1}).

use super::coefs::{AlphaCoefs, AlphaLanes};
use super::reset::AlphaReset;
use crate::kernel::{for_ranges, wide_vectors, Real, SyncPtr};
use crate::lif::kernel::{h, Main};
use crate::lif::surrogate::SurrogateFn;
use crate::synaptic::forward::{forward_block, SpikesTo};
use crate::synaptic::frame::{for_blocks, Frame};
use crate::synaptic::kernel::{Grads, Input, Upstream, ADD, DROP, WRITE};

/// Writes the main output into `out` (`main.len()` elements) and, when given, the final state
/// [E (n) | I (n) | U (n)] into `fin`.
pub(crate) fn forward<T: Real, R: AlphaReset, C: AlphaCoefs<T>>(
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &mut [T],
    fin: Option<&mut [T]>,
) {
    let out = SyncPtr(out.as_mut_ptr());
    let fin = fin.map(|f| SyncPtr(f.as_mut_ptr()));
    let wide = wide_vectors();
    for_ranges(inp.n, inp.steps, |a, b| {
        fwd_block::<T, R, C>(wide, c, inp, main, &out, fin.as_ref(), a, b)
    });
}

/// The forward of neurons `[a, b)` ([`forward_block`]).
#[allow(clippy::too_many_arguments)]
fn fwd_block<T: Real, R: AlphaReset, C: AlphaCoefs<T>>(
    wide: bool,
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &SyncPtr<T>,
    fin: Option<&SyncPtr<T>>,
    a: usize,
    b: usize,
) {
    let w = b - a;
    let l = c.full(a, w);
    let st = [0, 1, 2].map(|k| inp.start_part(k, a, w));
    forward_block(
        inp,
        main,
        out,
        fin,
        a,
        b,
        st,
        2,
        |row, [e, i, u], to| match to {
            SpikesTo::Write(o) => fwd_row_on::<T, R, _, WRITE>(wide, &l, row, [e, i, u], o),
            SpikesTo::Add(o) => fwd_row_on::<T, R, _, ADD>(wide, &l, row, [e, i, u], o),
        },
    );
}

/// One step over a block: (E, I, U) updated in place from the currents `x`, the spikes handled
/// as `OUT` says into `o`.
#[inline(always)]
fn fwd_row<T: Real, R: AlphaReset, L: AlphaLanes<T>, const OUT: u8>(
    l: &L,
    x: &[T],
    [e, i, u]: [&mut [T]; 3],
    o: &mut [T],
) {
    let w = e.len();
    let (x, i, u) = (&x[..w], &mut i[..w], &mut u[..w]);
    let o = &mut o[..if OUT == DROP { 0 } else { w }];
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let c = unsafe { l.at(j) };
        let r = h(u[j], c.theta);
        let e1 = c.a * e[j] + x[j];
        let i1 = c.b * i[j] - x[j];
        let m1 = c.tau * (e1 + i1);
        let (en, inn, un) = R::apply(e1, i1, m1, r, c.theta, i[j]);
        e[j] = en;
        i[j] = inn;
        u[j] = un;
        match OUT {
            WRITE => o[j] = h(un, c.theta),
            ADD => o[j] += h(un, c.theta),
            _ => {}
        }
    }
}

/// [`fwd_row`] in its AVX2 copy when `wide`, else in the baseline one (each a function of its
/// own, not inlined, so that the compiler keeps knowing the slices do not overlap).
#[inline(always)]
fn fwd_row_on<T: Real, R: AlphaReset, L: AlphaLanes<T>, const OUT: u8>(
    wide: bool,
    l: &L,
    x: &[T],
    st: [&mut [T]; 3],
    o: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only true where the CPU has AVX2.
        return unsafe { fwd_row_avx2::<T, R, L, OUT>(l, x, st, o) };
    }
    let _ = wide;
    fwd_row_base::<T, R, L, OUT>(l, x, st, o)
}

/// [`fwd_row`] for the baseline instructions.
#[inline(never)]
fn fwd_row_base<T: Real, R: AlphaReset, L: AlphaLanes<T>, const OUT: u8>(
    l: &L,
    x: &[T],
    st: [&mut [T]; 3],
    o: &mut [T],
) {
    fwd_row::<T, R, L, OUT>(l, x, st, o)
}

/// [`fwd_row`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn fwd_row_avx2<T: Real, R: AlphaReset, L: AlphaLanes<T>, const OUT: u8>(
    l: &L,
    x: &[T],
    st: [&mut [T]; 3],
    o: &mut [T],
) {
    fwd_row::<T, R, L, OUT>(l, x, st, o)
}

/// BPTT from the upstream gradients (an absent one is zero) into `out` (dL/dx; the initial
/// state's gradient [E | I | U], the last always zero as the membrane only feeds the detached
/// reset; per-neuron parts of dL/dα, dL/dβ, dL/dθ, summed per triple by the caller). With learned
/// parameters, dL/dα = Σ dL/dE'_t·E_{t−1} + dL/dM'_t·(E'_t + I'_t)·∂τ/∂α, dL/dβ likewise with
/// I and ∂τ/∂β, dL/dθ = Σ (the reset's ∂/∂θ − dL/dS_t·σ'(U_t − θ)).
pub(crate) fn backward<T: Real, R: AlphaReset, S: SurrogateFn, C: AlphaCoefs<T>>(
    c: &C,
    sur: &S,
    inp: &Input<'_, T>,
    main: Main,
    up: &Upstream<'_, T>,
    out: Grads<'_, T>,
) {
    let k = sur.kernel::<T>();
    let wide = wide_vectors();
    for_blocks(inp, main, up, out, |f, learn| match (inp.constant, learn) {
        (false, false) => run_block::<T, R, S, C, false, false>(f, c, k, wide),
        (false, true) => run_block::<T, R, S, C, false, true>(f, c, k, wide),
        (true, false) => run_block::<T, R, S, C, true, false>(f, c, k, wide),
        (true, true) => run_block::<T, R, S, C, true, true>(f, c, k, wide),
    });
}

/// The backward of one block: `CONSTANT` for a constant current (its gradient summed over the
/// steps), `LEARN` when the parameter gradients are wanted.
fn run_block<
    T: Real,
    R: AlphaReset,
    S: SurrogateFn,
    C: AlphaCoefs<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    f: &Frame<'_, T>,
    c: &C,
    k: S::Kernel<T>,
    wide: bool,
) {
    let (inp, steps, a, w) = (f.inp, f.inp.steps, f.a, f.width());
    let l = c.full(a, w);
    // Every step's membrane for this block, row 0 holding U_{−1}; E and I likewise, kept only
    // when dL/dα, dL/dβ are wanted.
    let keep = if LEARN { (steps + 1) * w } else { 0 };
    let mut hist_u = vec![T::zero(); (steps + 1) * w];
    let (mut hist_e, mut hist_i) = (vec![T::zero(); keep], vec![T::zero(); keep]);
    let (mut e, mut i) = (inp.start_part(0, a, w), inp.start_part(1, a, w));
    hist_u[..w].copy_from_slice(&inp.start_part(2, a, w));
    if LEARN {
        hist_e[..w].copy_from_slice(&e);
        hist_i[..w].copy_from_slice(&i);
    }
    for t in 0..steps {
        let row = &inp.row(t, a, w)[..w];
        let (prev, next) = hist_u.split_at_mut((t + 1) * w);
        let next = &mut next[..w];
        next.copy_from_slice(&prev[t * w..]);
        fwd_row_on::<T, R, _, DROP>(wide, &l, row, [&mut e, &mut i, next], &mut []);
        if LEARN {
            hist_e[(t + 1) * w..(t + 2) * w].copy_from_slice(&e);
            hist_i[(t + 1) * w..(t + 2) * w].copy_from_slice(&i);
        }
    }
    let mut carry = [0, 1, 2].map(|k| f.state_grad(k));
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
        let (e_prev, i_prev): (&[T], &[T]) = match LEARN {
            true => (&hist_e[t * w..(t + 1) * w], &hist_i[t * w..(t + 1) * w]),
            false => (&[], &[]),
        };
        let x: &[T] = if LEARN { inp.row(t, a, w) } else { &[] };
        let [ce, ci, cu] = &mut carry;
        bwd_row_on::<T, R, S, _, CONSTANT, LEARN>(
            wide,
            &l,
            k,
            [
                &grads.at(t)[..w],
                &hist_u[(t + 1) * w..(t + 2) * w],
                &hist_u[t * w..(t + 1) * w],
                e_prev,
                i_prev,
                x,
            ],
            o,
            [ce, ci, cu],
            [da, db, dt],
        );
    }
    let [ce, ci, cu] = &carry;
    f.finish(CONSTANT.then_some(&acc[..]), &[ce, ci, cu], &dpar);
}

/// [`bwd_row`] in its AVX2 copy when `wide`, else in the baseline one (not inlined, as
/// [`fwd_row_on`]'s).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_row_on<
    T: Real,
    R: AlphaReset,
    S: SurrogateFn,
    L: AlphaLanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    wide: bool,
    l: &L,
    k: S::Kernel<T>,
    reads: [&[T]; 6],
    o: &mut [T],
    carries: [&mut [T]; 3],
    parts: [&mut [T]; 3],
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only true where the CPU has AVX2.
        return unsafe {
            bwd_row_avx2::<T, R, S, L, CONSTANT, LEARN>(l, k, reads, o, carries, parts)
        };
    }
    let _ = wide;
    bwd_row_base::<T, R, S, L, CONSTANT, LEARN>(l, k, reads, o, carries, parts)
}

/// [`bwd_row`] for the baseline instructions.
#[inline(never)]
fn bwd_row_base<
    T: Real,
    R: AlphaReset,
    S: SurrogateFn,
    L: AlphaLanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    reads: [&[T]; 6],
    o: &mut [T],
    carries: [&mut [T]; 3],
    parts: [&mut [T]; 3],
) {
    bwd_row::<T, R, S, L, CONSTANT, LEARN>(l, k, reads, o, carries, parts)
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
    R: AlphaReset,
    S: SurrogateFn,
    L: AlphaLanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    reads: [&[T]; 6],
    o: &mut [T],
    carries: [&mut [T]; 3],
    parts: [&mut [T]; 3],
) {
    bwd_row::<T, R, S, L, CONSTANT, LEARN>(l, k, reads, o, carries, parts)
}

/// One step of the BPTT over a block from what it reads, [dL/dS_t, U_t, U_{t−1}, E_{t−1},
/// I_{t−1}, x_t] (the last three empty unless `LEARN`): dL/dx into `o` (added, `CONSTANT`), the
/// carries [dL/dE, dL/dI, dL/dU] of the previous step written, the parameter parts added (empty
/// unless `LEARN`). Every slice is an argument of its own so that the loop vectorises.
#[inline(always)]
fn bwd_row<
    T: Real,
    R: AlphaReset,
    S: SurrogateFn,
    L: AlphaLanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    [g, u_t, u_prev, e_prev, i_prev, x]: [&[T]; 6],
    o: &mut [T],
    [ce, ci, cu]: [&mut [T]; 3],
    [da, db, dt]: [&mut [T]; 3],
) {
    let w = o.len();
    let (g, u_t, u_prev) = (&g[..w], &u_t[..w], &u_prev[..w]);
    let (ce, ci, cu) = (&mut ce[..w], &mut ci[..w], &mut cu[..w]);
    let lw = if LEARN { w } else { 0 };
    let (e_prev, i_prev, x) = (&e_prev[..lw], &i_prev[..lw], &x[..lw]);
    let (da, db, dt) = (&mut da[..lw], &mut db[..lw], &mut dt[..lw]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let c = unsafe { l.at(j) };
        let r = h(u_prev[j], c.theta);
        let sig = g[j] * S::grad(&k, u_t[j] - c.theta);
        let rg = R::back(ce[j], ci[j], sig + cu[j], r);
        let through = c.tau * rg.m;
        let ge = rg.e + through;
        let gi = rg.i + through;
        let gx = ge - gi;
        if CONSTANT {
            o[j] += gx;
        } else {
            o[j] = gx;
        }
        if LEARN {
            let sum = (c.a * e_prev[j] + x[j]) + (c.b * i_prev[j] - x[j]);
            da[j] += ge * e_prev[j] + rg.m * sum * c.dtau_da;
            db[j] += gi * i_prev[j] + rg.m * sum * c.dtau_db;
            dt[j] += rg.theta - sig;
        }
        ce[j] = c.a * ge;
        ci[j] = c.b * gi + rg.i_prev;
        cu[j] = T::zero();
    }
}
