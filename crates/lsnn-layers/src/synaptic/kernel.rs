//! The current-based LIF recurrence on slices (design §2.10): one forward pass over T and a
//! one-pass BPTT backward, both in blocks of neurons (parallel over blocks when the work is
//! large), generic over the reset, the surrogate and the coefficient source so that every inner
//! loop is branch-free.
//!
//! The state (syn, U) starts from (syn_{−1}, U_{−1}) — zero, or a given state [2, n] — and the
//! final one can be written into a second buffer in the same pass. Backward recomputes the
//! history per block and runs, with r_t detached and σ' the surrogate,
//!
//! ```text
//! dL/dU_t   = dL/dS_t·σ'(U_t − θ) + β·dL/dm_{t+1}
//! dL/dm_t   = ∂U_t/∂m_t · dL/dU_t
//! dL/dsyn_t = dL/dm_t + α·dL/dsyn_{t+1}          = dL/dI_t
//! ```
//!
//! starting from the final state's gradients; what is carried past t = 0 is the initial state's.

use super::coefs::{Coefs, Lanes};
use super::forward::{forward_block, SpikesTo};
use super::frame::{for_blocks, Frame};
use super::reset::SynReset;
use crate::kernel::{for_ranges, wide_vectors, Real, SyncPtr};
use crate::lif::kernel::{h, Main};
use crate::lif::surrogate::SurrogateFn;

/// What the kernels read: the currents ([T, n], or a constant [n] for every step) and the
/// initial state ([syn (n) | U (n)] — the alpha neuron's [syn_exc | syn_inh | U], the adaptive
/// LIF's [syn | U | b] — or none: zero, or the adaptive LIF's resting state).
pub(crate) struct Input<'a, T> {
    pub cur: &'a [T],
    pub constant: bool,
    pub steps: usize,
    pub n: usize,
    pub state0: Option<&'a [T]>,
}

impl<T: Copy> Input<'_, T> {
    /// The current of step `t` for neurons `[a, a + w)`.
    #[inline(always)]
    pub(crate) fn row(&self, t: usize, a: usize, w: usize) -> &[T] {
        if self.constant {
            &self.cur[a..a + w]
        } else {
            &self.cur[t * self.n + a..t * self.n + a + w]
        }
    }

    /// (syn_{−1}, U_{−1}) of neurons `[a, a + w)`.
    fn start(&self, a: usize, w: usize) -> (Vec<T>, Vec<T>)
    where
        T: Real,
    {
        (self.start_part(0, a, w), self.start_part(1, a, w))
    }

    /// Part `k` of the initial state (the k-th [n] of a given state, zero without one) for
    /// neurons `[a, a + w)`.
    pub(crate) fn start_part(&self, k: usize, a: usize, w: usize) -> Vec<T>
    where
        T: Real,
    {
        match self.state0 {
            Some(s) => s[k * self.n + a..k * self.n + a + w].to_vec(),
            None => vec![T::zero(); w],
        }
    }
}

/// One step for neuron j: (syn_{t−1}, U_{t−1}, I_t) → (syn_t, U_t).
#[inline(always)]
fn step<T: Real, R: SynReset>(alpha: T, beta: T, theta: T, s: T, u: T, i: T) -> (T, T) {
    let r = h(u, theta);
    let sn = alpha * s + i;
    let m = beta * u + sn;
    (sn, R::mem(m, r, theta))
}

/// Writes the main output into `out` (`main.len()` elements) and, when given, the final state
/// [syn (n) | U (n)] into `fin`.
pub(crate) fn forward<T: Real, R: SynReset, C: Coefs<T>>(
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

/// The forward of neurons `[a, b)` ([`forward_block`]), the per-step rows in their AVX2 copies
/// when `wide`.
#[allow(clippy::too_many_arguments)]
fn fwd_block<T: Real, R: SynReset, C: Coefs<T>>(
    wide: bool,
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &SyncPtr<T>,
    fin: Option<&SyncPtr<T>>,
    a: usize,
    b: usize,
) {
    let l = c.lanes(a, b - a);
    let (s0, u0) = inp.start(a, b - a);
    forward_block(
        inp,
        main,
        out,
        fin,
        a,
        b,
        [s0, u0],
        1,
        |row, [s, u], to| match to {
            SpikesTo::Write(o) => fwd_row_on::<T, R, _, WRITE>(wide, &l, row, s, u, o),
            SpikesTo::Add(o) => fwd_row_on::<T, R, _, ADD>(wide, &l, row, s, u, o),
        },
    );
}

/// What a forward row does with the step's spikes: drop them, write them, or add them.
pub(crate) const DROP: u8 = 0;
/// See [`DROP`].
pub(crate) const WRITE: u8 = 1;
/// See [`DROP`].
pub(crate) const ADD: u8 = 2;

/// One step over a block: (syn, U) updated in place from the currents `i`, the spikes handled as
/// `OUT` says into `o`.
#[inline(always)]
fn fwd_row<T: Real, R: SynReset, L: Lanes<T>, const OUT: u8>(
    l: &L,
    i: &[T],
    s: &mut [T],
    u: &mut [T],
    o: &mut [T],
) {
    let w = s.len();
    let (i, u) = (&i[..w], &mut u[..w]);
    let o = &mut o[..if OUT == DROP { 0 } else { w }];
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (al, be, th) = unsafe { l.at(j) };
        let (sn, nu) = step::<T, R>(al, be, th, s[j], u[j], i[j]);
        s[j] = sn;
        u[j] = nu;
        match OUT {
            WRITE => o[j] = h(nu, th),
            ADD => o[j] += h(nu, th),
            _ => {}
        }
    }
}

/// [`fwd_row`] in its AVX2 copy when `wide`, else in the baseline one. Each copy is a function of
/// its own, not inlined: inlined into a loop over steps, the compiler no longer knows that the
/// slices (and the per-feature lanes) do not overlap, and the row stays scalar.
#[inline(always)]
fn fwd_row_on<T: Real, R: SynReset, L: Lanes<T>, const OUT: u8>(
    wide: bool,
    l: &L,
    i: &[T],
    s: &mut [T],
    u: &mut [T],
    o: &mut [T],
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only true where the CPU has AVX2.
        return unsafe { fwd_row_avx2::<T, R, L, OUT>(l, i, s, u, o) };
    }
    let _ = wide;
    fwd_row_base::<T, R, L, OUT>(l, i, s, u, o)
}

/// [`fwd_row`] for the baseline instructions.
#[inline(never)]
fn fwd_row_base<T: Real, R: SynReset, L: Lanes<T>, const OUT: u8>(
    l: &L,
    i: &[T],
    s: &mut [T],
    u: &mut [T],
    o: &mut [T],
) {
    fwd_row::<T, R, L, OUT>(l, i, s, u, o)
}

/// [`fwd_row`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn fwd_row_avx2<T: Real, R: SynReset, L: Lanes<T>, const OUT: u8>(
    l: &L,
    i: &[T],
    s: &mut [T],
    u: &mut [T],
    o: &mut [T],
) {
    fwd_row::<T, R, L, OUT>(l, i, s, u, o)
}

/// Where the backward writes: dL/dI ([T, n], or [n] for a constant current), the initial state's
/// gradient ([syn (n) | U (n)], when a state was given) and, for learnable parameters, the
/// per-neuron parts of dL/dα, dL/dβ, dL/dθ ([3n]; [`crate::lif::kernel::reduce_parts`] sums them
/// per triple).
pub(crate) struct Grads<'a, T> {
    pub dcur: &'a mut [T],
    pub dstate0: Option<&'a mut [T]>,
    pub dparams: Option<&'a mut [T]>,
}

/// The upstream gradients of a backward.
pub(crate) struct Upstream<'a, T> {
    /// Of the main output: spikes [T, n], or a rate [n] whose every step receives g/T (the
    /// mean-membrane half of `RateMem` is detached and ignored).
    pub g_main: Option<&'a [T]>,
    /// Of the final state [syn (n) | U (n)].
    pub g_state: Option<&'a [T]>,
}

/// BPTT from the upstream gradients (an absent one is zero); with learnable parameters it also
/// sums, per neuron, dL/dα = Σ dL/dsyn_t·syn_{t−1}, dL/dβ = Σ dL/dm_t·U_{t−1} and
/// dL/dθ = Σ (∂U_t/∂θ·dL/dU_t − dL/dS_t·σ'(U_t − θ)).
pub(crate) fn backward<T: Real, R: SynReset, S: SurrogateFn, C: Coefs<T>>(
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
/// steps), `LEARN` when the parameter gradients are wanted; the per-step rows in their AVX2
/// copies when `wide`.
fn run_block<
    T: Real,
    R: SynReset,
    S: SurrogateFn,
    C: Coefs<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    f: &Frame<'_, T>,
    c: &C,
    k: S::Kernel<T>,
    wide: bool,
) {
    let (inp, steps, a, w) = (f.inp, f.inp.steps, f.a, f.width());
    let l = c.lanes(a, w);
    // The membrane of every step for this block, row 0 holding U_{−1}; the synaptic current
    // likewise, kept only when dL/dα is wanted.
    let mut hist_u = vec![T::zero(); (steps + 1) * w];
    let mut hist_s = vec![T::zero(); if LEARN { (steps + 1) * w } else { 0 }];
    let (mut s, u0) = inp.start(a, w);
    let s = &mut s[..w];
    hist_u[..w].copy_from_slice(&u0);
    if LEARN {
        hist_s[..w].copy_from_slice(s);
    }
    for t in 0..steps {
        let row = &inp.row(t, a, w)[..w];
        let (prev, next) = hist_u.split_at_mut((t + 1) * w);
        let next = &mut next[..w];
        next.copy_from_slice(&prev[t * w..]);
        fwd_row_on::<T, R, _, DROP>(wide, &l, row, s, next, &mut []);
        if LEARN {
            hist_s[(t + 1) * w..(t + 2) * w].copy_from_slice(s);
        }
    }
    let (mut cs, mut cu) = (f.state_grad(0), f.state_grad(1));
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
        let s_prev: &[T] = if LEARN {
            &hist_s[t * w..(t + 1) * w]
        } else {
            &[]
        };
        bwd_row_on::<T, R, S, _, CONSTANT, LEARN>(
            wide,
            &l,
            k,
            [
                &grads.at(t)[..w],
                &hist_u[(t + 1) * w..(t + 2) * w],
                &hist_u[t * w..(t + 1) * w],
                s_prev,
            ],
            o,
            [&mut cs[..], &mut cu[..]],
            [da, db, dt],
        );
    }
    f.finish(CONSTANT.then_some(&acc[..]), &[&cs, &cu], &dpar);
}

/// [`bwd_row`] in its AVX2 copy when `wide`, else in the baseline one (not inlined, as
/// [`fwd_row_on`]'s).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_row_on<
    T: Real,
    R: SynReset,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    wide: bool,
    l: &L,
    k: S::Kernel<T>,
    reads: [&[T]; 4],
    o: &mut [T],
    carries: [&mut [T]; 2],
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
    R: SynReset,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    reads: [&[T]; 4],
    o: &mut [T],
    carries: [&mut [T]; 2],
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
    R: SynReset,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    reads: [&[T]; 4],
    o: &mut [T],
    carries: [&mut [T]; 2],
    parts: [&mut [T]; 3],
) {
    bwd_row::<T, R, S, L, CONSTANT, LEARN>(l, k, reads, o, carries, parts)
}

/// One step of the BPTT over a block from what it reads, [dL/dS_t, U_t, U_{t−1}, syn_{t−1}]
/// (syn_{t−1} empty unless `LEARN`): dL/dI into `o` (added, `CONSTANT`), the carries
/// [α·dL/dsyn, β·dL/dm] updated, the parameter parts added (empty unless `LEARN`). Every slice
/// is an argument of its own: only reference arguments tell the compiler that they do not
/// overlap, and the loop vectorises only then.
#[inline(always)]
fn bwd_row<
    T: Real,
    R: SynReset,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    l: &L,
    k: S::Kernel<T>,
    [g, u_t, u_prev, s_prev]: [&[T]; 4],
    o: &mut [T],
    [cs, cu]: [&mut [T]; 2],
    [da, db, dt]: [&mut [T]; 3],
) {
    let w = o.len();
    let (g, u_t, u_prev, cs, cu) = (&g[..w], &u_t[..w], &u_prev[..w], &mut cs[..w], &mut cu[..w]);
    let lw = if LEARN { w } else { 0 };
    let (s_prev, da, db, dt) = (&s_prev[..lw], &mut da[..lw], &mut db[..lw], &mut dt[..lw]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (al, be, th) = unsafe { l.at(j) };
        let r = h(u_prev[j], th);
        let sig = g[j] * S::grad(&k, u_t[j] - th);
        let gu = sig + cu[j];
        let gm = R::gate(r) * gu;
        let gs = gm + cs[j];
        if CONSTANT {
            o[j] += gs;
        } else {
            o[j] = gs;
        }
        if LEARN {
            da[j] += gs * s_prev[j];
            db[j] += gm * u_prev[j];
            dt[j] += R::dtheta(r) * gu - sig;
        }
        cu[j] = be * gm;
        cs[j] = al * gs;
    }
}
