//! The LIF recurrence on slices: one forward pass over T and a one-pass BPTT backward, both in
//! blocks of neurons (parallel over blocks when the work is large), generic over the reset
//! mechanism and the surrogate so that every inner loop is branch-free.
//!
//! The membrane starts from U_{−1} (zero, or a given initial state) and the final U_{T−1} can be
//! written into a second buffer in the same pass. Backward recomputes the membrane history per block ((T + 1)
//! values per neuron of the block, never of all neurons) and runs
//! dL/dU_t = dL/dS_t·σ'(U_t − θ) + c_{t+1}·dL/dU_{t+1}, c = ∂U_{t+1}/∂U_t with the reset detached,
//! starting from the gradient of the final membrane; what is carried past t = 0 is dL/dU_{−1}.

use super::coefs::{Coefs, Lanes};
use super::reset::Reset;
use super::surrogate::SurrogateFn;
use crate::kernel::{for_ranges, wide_vectors, Real, SyncPtr};

/// 1 when U − θ > 0, else 0.
#[inline(always)]
pub(crate) fn h<T: Real>(u: T, theta: T) -> T {
    if u - theta > T::zero() {
        T::one()
    } else {
        T::zero()
    }
}

/// U_t from U_{t−1} and I_t.
#[inline(always)]
fn step<T: Real, R: Reset>(beta: T, theta: T, u: T, i: T) -> T {
    R::step(beta, theta, h(u, theta), u, i)
}

/// What the kernels read: the currents ([T, n], or a constant [n] for every step) and the
/// initial membrane ([n], or zero).
pub(crate) struct Input<'a, T> {
    pub cur: &'a [T],
    pub constant: bool,
    pub steps: usize,
    pub n: usize,
    pub mem0: Option<&'a [T]>,
}

impl<T: Copy> Input<'_, T> {
    /// The current of step `t` for neurons `[a, a + w)`.
    #[inline(always)]
    fn row(&self, t: usize, a: usize, w: usize) -> &[T] {
        if self.constant {
            &self.cur[a..a + w]
        } else {
            &self.cur[t * self.n + a..t * self.n + a + w]
        }
    }
}

/// What the forward writes as its main output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Main {
    /// Spikes [T, n].
    Spikes,
    /// The rate mean_t S_t [n].
    Rate,
    /// The rate [n], then the mean membrane mean_t U_t [n].
    RateMem,
}

impl Main {
    /// Elements of the main output.
    pub(crate) fn len(self, steps: usize, n: usize) -> usize {
        match self {
            Main::Spikes => steps * n,
            Main::Rate => n,
            Main::RateMem => 2 * n,
        }
    }
}

/// Writes the main output into `out` (`main.len()` elements) and, when given, the final membrane
/// into `fin` (n elements).
pub(crate) fn forward<T: Real, R: Reset, C: Coefs<T>>(
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &mut [T],
    fin: Option<&mut [T]>,
) {
    let n = inp.n;
    let out = SyncPtr(out.as_mut_ptr());
    let fin = fin.map(|f| SyncPtr(f.as_mut_ptr()));
    let wide = wide_vectors();
    for_ranges(n, inp.steps, |a, b| {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: `wide` is only true where the CPU has AVX2.
            return unsafe { fwd_block_avx2::<T, R, C>(c, inp, main, &out, fin.as_ref(), a, b) };
        }
        let _ = wide;
        fwd_block::<T, R, C>(c, inp, main, &out, fin.as_ref(), a, b)
    });
}

/// [`fwd_block`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fwd_block_avx2<T: Real, R: Reset, C: Coefs<T>>(
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &SyncPtr<T>,
    fin: Option<&SyncPtr<T>>,
    a: usize,
    b: usize,
) {
    fwd_block::<T, R, C>(c, inp, main, out, fin, a, b)
}

/// The forward of neurons `[a, b)`: their rows of `out` (and of `fin`) belong to this call only.
#[inline(always)]
fn fwd_block<T: Real, R: Reset, C: Coefs<T>>(
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &SyncPtr<T>,
    fin: Option<&SyncPtr<T>>,
    a: usize,
    b: usize,
) {
    let (steps, n) = (inp.steps, inp.n);
    let inv_t = T::from_f64(1.0 / steps as f64);
    let w = b - a;
    let l = c.lanes(a, w);
    let mut u = match inp.mem0 {
        Some(m) => m[a..b].to_vec(),
        None => vec![T::zero(); w],
    };
    let u = &mut u[..w];
    let mut count = vec![T::zero(); if main == Main::Spikes { 0 } else { w }];
    let mut usum = vec![T::zero(); if main == Main::RateMem { w } else { 0 }];
    for t in 0..steps {
        let row = &inp.row(t, a, w)[..w];
        match main {
            Main::Spikes => {
                // SAFETY: row t, neurons [a, b) belong to this task only.
                let o = &mut (unsafe { out.slice(t * n + a, w) })[..w];
                for j in 0..w {
                    // SAFETY: j < w, the width the lanes were made for.
                    let (be, th) = unsafe { l.at(j) };
                    let nu = step::<T, R>(be, th, u[j], row[j]);
                    u[j] = nu;
                    o[j] = h(nu, th);
                }
            }
            Main::Rate => {
                let cnt = &mut count[..w];
                for j in 0..w {
                    // SAFETY: j < w, the width the lanes were made for.
                    let (be, th) = unsafe { l.at(j) };
                    let nu = step::<T, R>(be, th, u[j], row[j]);
                    u[j] = nu;
                    cnt[j] += h(nu, th);
                }
            }
            Main::RateMem => {
                let (cnt, us) = (&mut count[..w], &mut usum[..w]);
                for j in 0..w {
                    // SAFETY: j < w, the width the lanes were made for.
                    let (be, th) = unsafe { l.at(j) };
                    let nu = step::<T, R>(be, th, u[j], row[j]);
                    u[j] = nu;
                    cnt[j] += h(nu, th);
                    us[j] += nu;
                }
            }
        }
    }
    if main != Main::Spikes {
        // SAFETY: neurons [a, b) of the rate (and of the membrane half) belong to this task.
        let o = unsafe { out.slice(a, w) };
        for (oj, &cj) in o.iter_mut().zip(&count) {
            *oj = cj * inv_t;
        }
        if main == Main::RateMem {
            // SAFETY: as above, in the second half of the output.
            let o = unsafe { out.slice(n + a, w) };
            for (oj, &sj) in o.iter_mut().zip(&usum) {
                *oj = sj * inv_t;
            }
        }
    }
    if let Some(f) = &fin {
        // SAFETY: neurons [a, b) of the final membrane belong to this task.
        unsafe { f.slice(a, w) }.copy_from_slice(u);
    }
}

/// Where the backward writes: dL/dI ([T, n], or [n] for a constant current), dL/dU_{−1} ([n],
/// when an initial membrane was given) and, when the parameters are learnable, the per-neuron
/// parts of dL/dβ and dL/dθ ([2n]: every β part, then every θ part; [`reduce_parts`] sums them
/// into the pairs).
pub(crate) struct Grads<'a, T> {
    pub dcur: &'a mut [T],
    pub dmem0: Option<&'a mut [T]>,
    pub dparams: Option<&'a mut [T]>,
}

/// BPTT from the gradient of the main output, `g_main` (spikes [T, n] per step, or a rate [n]
/// whose every step receives g/T; the mean-membrane half of `RateMem` is detached and ignored),
/// and/or of the final membrane, `g_state` [n]; an absent one is zero.
///
/// With learnable parameters it also sums, per neuron, dL/dβ = Σ_t dL/dU_t·∂U_t/∂β and
/// dL/dθ = Σ_t (−dL/dS_t·σ'(U_t − θ) + dL/dU_t·∂U_t/∂θ), the reset r_t detached as in the
/// carry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Real, R: Reset, S: SurrogateFn, C: Coefs<T>>(
    c: &C,
    sur: &S,
    inp: &Input<'_, T>,
    main: Main,
    g_main: Option<&[T]>,
    g_state: Option<&[T]>,
    out: Grads<'_, T>,
) {
    let (n, constant) = (inp.n, inp.constant);
    let rate = main != Main::Spikes && g_main.is_some();
    let up = Upstream {
        g_main,
        g_state,
        rate,
        inv_t: T::from_f64(1.0 / inp.steps as f64),
    };
    let k = sur.kernel::<T>();
    let dst = Dest {
        dcur: SyncPtr(out.dcur.as_mut_ptr()),
        dmem0: out.dmem0.map(|d| SyncPtr(d.as_mut_ptr())),
        dparams: out.dparams.map(|d| SyncPtr(d.as_mut_ptr())),
        n,
    };
    let learn = dst.dparams.is_some();
    let wide = wide_vectors();
    for_ranges(n, inp.steps, |a, b| match (constant, learn) {
        (false, false) => block_on::<T, R, S, C, false, false>(wide, c, &k, inp, &up, &dst, a, b),
        (false, true) => block_on::<T, R, S, C, false, true>(wide, c, &k, inp, &up, &dst, a, b),
        (true, false) => block_on::<T, R, S, C, true, false>(wide, c, &k, inp, &up, &dst, a, b),
        (true, true) => block_on::<T, R, S, C, true, true>(wide, c, &k, inp, &up, &dst, a, b),
    });
}

/// [`block`] in its AVX2 version when `wide`, else in the baseline one.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_on<
    T: Real,
    R: Reset,
    S: SurrogateFn,
    C: Coefs<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    wide: bool,
    c: &C,
    k: &S::Kernel<T>,
    inp: &Input<'_, T>,
    up: &Upstream<'_, T>,
    dst: &Dest<T>,
    a: usize,
    b: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is only true where the CPU has AVX2.
        return unsafe { block_avx2::<T, R, S, C, CONSTANT, LEARN>(c, k, inp, up, dst, a, b) };
    }
    block::<T, R, S, C, CONSTANT, LEARN>(false, c, k, inp, up, dst, a, b)
}

/// [`block`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn block_avx2<
    T: Real,
    R: Reset,
    S: SurrogateFn,
    C: Coefs<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    c: &C,
    k: &S::Kernel<T>,
    inp: &Input<'_, T>,
    up: &Upstream<'_, T>,
    dst: &Dest<T>,
    a: usize,
    b: usize,
) {
    block::<T, R, S, C, CONSTANT, LEARN>(true, c, k, inp, up, dst, a, b)
}

/// The upstream gradients of a backward.
struct Upstream<'a, T> {
    g_main: Option<&'a [T]>,
    g_state: Option<&'a [T]>,
    /// The main output is a rate: every step receives g/T.
    rate: bool,
    inv_t: T,
}

/// The backward's outputs, written by disjoint blocks of neurons.
struct Dest<T> {
    dcur: SyncPtr<T>,
    dmem0: Option<SyncPtr<T>>,
    dparams: Option<SyncPtr<T>>,
    n: usize,
}

/// The backward of neurons `[a, b)`: `CONSTANT` for a constant current (its gradient summed over
/// the steps), `LEARN` when the parameter gradients are wanted; `wide` when this is the AVX2
/// copy (the parameter pass, a function of its own, is then called in its AVX2 copy too).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<
    T: Real,
    R: Reset,
    S: SurrogateFn,
    C: Coefs<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    wide: bool,
    c: &C,
    k: &S::Kernel<T>,
    inp: &Input<'_, T>,
    up: &Upstream<'_, T>,
    dst: &Dest<T>,
    a: usize,
    b: usize,
) {
    let (steps, n, w) = (inp.steps, inp.n, b - a);
    let l = c.lanes(a, w);
    // The membrane of every step for this block; row 0 holds U_{−1}.
    let mut hist = vec![T::zero(); (steps + 1) * w];
    if let Some(m) = inp.mem0 {
        hist[..w].copy_from_slice(&m[a..b]);
    }
    for t in 0..steps {
        let row = &inp.row(t, a, w)[..w];
        let (prev, next) = hist.split_at_mut((t + 1) * w);
        let (prev, next) = (&prev[t * w..], &mut next[..w]);
        for j in 0..w {
            // SAFETY: j < w, the width the lanes were made for.
            let (be, th) = unsafe { l.at(j) };
            next[j] = step::<T, R>(be, th, prev[j], row[j]);
        }
    }
    let mut carry = match up.g_state {
        Some(g) => g[a..b].to_vec(),
        None => vec![T::zero(); w],
    };
    let carry = &mut carry[..w];
    let mut acc = vec![T::zero(); if CONSTANT { w } else { 0 }];
    // Sliced to w so that the inner loop indexes them without bounds checks (empty otherwise).
    let mut dbeta = vec![T::zero(); if LEARN { w } else { 0 }];
    let mut dtheta = vec![T::zero(); if LEARN { w } else { 0 }];
    let lw = if LEARN { w } else { 0 };
    let (dbeta, dtheta) = (&mut dbeta[..lw], &mut dtheta[..lw]);
    // One step's dL/dU and spike term, kept for the parameter pass.
    let (mut step_du, mut step_gs) = (vec![T::zero(); lw], vec![T::zero(); lw]);
    // A rate's g/T, or zeros when only the final membrane has a gradient.
    let per_step = up.g_main.is_some() && !up.rate;
    let mut scaled = vec![T::zero(); if per_step { 0 } else { w }];
    if let (true, Some(g)) = (up.rate, up.g_main) {
        for (s, &g) in scaled.iter_mut().zip(&g[a..b]) {
            *s = g * up.inv_t;
        }
    }
    for t in (0..steps).rev() {
        let g: &[T] = match up.g_main {
            Some(g) if per_step => &g[t * n + a..t * n + b],
            _ => &scaled,
        };
        let g = &g[..w];
        let u_t = &hist[(t + 1) * w..(t + 2) * w];
        let u_prev = &hist[t * w..(t + 1) * w];
        let o: &mut [T] = if CONSTANT {
            &mut acc[..w]
        } else {
            // SAFETY: row t, neurons [a, b) belong to this task only.
            &mut (unsafe { dst.dcur.slice(t * n + a, w) })[..w]
        };
        bwd_row::<T, R, S, _, CONSTANT, LEARN>(
            wide,
            &l,
            *k,
            g,
            u_t,
            u_prev,
            o,
            &mut *carry,
            [&mut step_du[..], &mut step_gs[..]],
            [&mut *dbeta, &mut *dtheta],
        );
    }
    if CONSTANT {
        // SAFETY: neurons [a, b) belong to this task only.
        unsafe { dst.dcur.slice(a, w) }.copy_from_slice(&acc);
    }
    if let Some(d) = &dst.dmem0 {
        // SAFETY: neurons [a, b) belong to this task only.
        unsafe { d.slice(a, w) }.copy_from_slice(carry);
    }
    if let (true, Some(d)) = (LEARN, &dst.dparams) {
        // SAFETY: neurons [a, b) of both halves belong to this task only.
        unsafe { d.slice(a, w) }.copy_from_slice(dbeta);
        unsafe { d.slice(dst.n + a, w) }.copy_from_slice(dtheta);
    }
}

/// One step of the BPTT over a block: upstream gradients `g`, membranes `u_t` and `u_prev`,
/// writing dL/dI (or adding it, `CONSTANT`) into `o`, the carry, and the parameter parts
/// (empty unless `LEARN`). Every slice is an argument of its own because only reference
/// arguments tell the compiler that they do not overlap — inside a struct they would not, and
/// the loop would stay scalar.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn bwd_row<
    T: Real,
    R: Reset,
    S: SurrogateFn,
    L: Lanes<T>,
    const CONSTANT: bool,
    const LEARN: bool,
>(
    wide: bool,
    l: &L,
    k: S::Kernel<T>,
    g: &[T],
    u_t: &[T],
    u_prev: &[T],
    o: &mut [T],
    carry: &mut [T],
    [s_du, s_gs]: [&mut [T]; 2],
    [dbeta, dtheta]: [&mut [T]; 2],
) {
    let w = o.len();
    let (g, u_t, u_prev, carry) = (&g[..w], &u_t[..w], &u_prev[..w], &mut carry[..w]);
    let lw = if LEARN { w } else { 0 };
    let (dbeta, dtheta) = (&mut dbeta[..lw], &mut dtheta[..lw]);
    let (s_du, s_gs) = (&mut s_du[..lw], &mut s_gs[..lw]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (be, th) = unsafe { l.at(j) };
        let r = h(u_prev[j], th);
        let gs = g[j] * S::grad(&k, u_t[j] - th);
        let du = gs + carry[j];
        if CONSTANT {
            o[j] += du;
        } else {
            o[j] = du;
        }
        if LEARN {
            s_du[j] = du;
            s_gs[j] = gs;
        }
        carry[j] = R::carry(be, r) * du;
    }
    if LEARN {
        // A second pass over what the first kept (du and the spike term), in a function of
        // its own (not inlined) whose slice arguments the compiler knows do not overlap: one
        // loop doing both, or this loop inlined here, stays scalar.
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: `wide` is only true in the AVX2 copy, run where the CPU has AVX2.
            unsafe { learn_row_avx2::<T, R, L>(l, u_prev, s_du, s_gs, dbeta, dtheta) };
            return;
        }
        learn_row::<T, R, L>(l, u_prev, s_du, s_gs, dbeta, dtheta);
    }
}

/// [`learn_row_body`] for the baseline instructions.
#[inline(never)]
fn learn_row<T: Real, R: Reset, L: Lanes<T>>(
    l: &L,
    u_prev: &[T],
    s_du: &[T],
    s_gs: &[T],
    dbeta: &mut [T],
    dtheta: &mut [T],
) {
    learn_row_body::<T, R, L>(l, u_prev, s_du, s_gs, dbeta, dtheta)
}

/// [`learn_row_body`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn learn_row_avx2<T: Real, R: Reset, L: Lanes<T>>(
    l: &L,
    u_prev: &[T],
    s_du: &[T],
    s_gs: &[T],
    dbeta: &mut [T],
    dtheta: &mut [T],
) {
    learn_row_body::<T, R, L>(l, u_prev, s_du, s_gs, dbeta, dtheta)
}

/// Adds one step's parts of dL/dβ and dL/dθ: dL/dU_t·∂U_t/∂β, and ∂U_t/∂θ·dL/dU_t minus the
/// spike term, from the step's dL/dU (`s_du`) and spike term (`s_gs`).
#[inline(always)]
fn learn_row_body<T: Real, R: Reset, L: Lanes<T>>(
    l: &L,
    u_prev: &[T],
    s_du: &[T],
    s_gs: &[T],
    dbeta: &mut [T],
    dtheta: &mut [T],
) {
    let w = dbeta.len();
    let (u_prev, s_du, s_gs, dtheta) = (&u_prev[..w], &s_du[..w], &s_gs[..w], &mut dtheta[..w]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (_, th) = unsafe { l.at(j) };
        let r = h(u_prev[j], th);
        dbeta[j] += s_du[j] * R::dbeta(r, u_prev[j]);
        dtheta[j] += R::dtheta(r) * s_du[j] - s_gs[j];
    }
}

/// Sums per-neuron parts, `groups` blocks of n (LIF: [dβ (n) | dθ (n)]), into `pairs` values per
/// group ([dβ (pairs) | dθ (pairs)]): neuron j belongs to value j mod `pairs`. Serial and in an
/// order fixed by n and `pairs` alone, so the sum does not depend on how the neurons were split
/// over threads.
pub(crate) fn reduce_parts<T: Real>(parts: &[T], n: usize, groups: usize, pairs: usize) -> Vec<T> {
    // One slice of n per group (none of them empty-skipped: zero neurons still give `groups`
    // zero sums).
    let halves = (0..groups).map(|g| &parts[g * n..(g + 1) * n]);
    if pairs == 0 {
        // No features (a row of zero neurons): no values to sum into.
        return Vec::new();
    }
    if pairs == 1 {
        return halves.map(lane_sum).collect();
    }
    let mut out = vec![T::zero(); groups * pairs];
    // n is a multiple of `pairs` (the last neuron dim), so the neurons come in whole rows.
    for (o, half) in out.chunks_exact_mut(pairs).zip(halves) {
        for row in half.chunks_exact(pairs) {
            for (oj, &v) in o.iter_mut().zip(row) {
                *oj += v;
            }
        }
    }
    out
}

/// The sum of `v` in eight interleaved partial sums (element i into sum i mod 8), added in order
/// at the end: the same order for the same length on every run, and a loop the compiler
/// vectorises (one running sum is a chain of dependent adds, 4 cycles each).
fn lane_sum<T: Real>(v: &[T]) -> T {
    const LANES: usize = 8;
    let mut acc = [T::zero(); LANES];
    let mut chunks = v.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    for (a, &x) in acc.iter_mut().zip(chunks.remainder()) {
        *a += x;
    }
    acc.iter().fold(T::zero(), |s, &a| s + a)
}
