//! The forward pass: per block of rows, per step, the recurrent current then one elementwise
//! update of membranes and spikes.

use super::{recurrent, Input};
use crate::kernel::{Real, SyncPtr};
use crate::lif::coefs::{Coefs, Lanes};
use crate::lif::kernel::{h, Main};
use crate::synaptic::reset::SynReset;

/// Writes the main output into `out` (`main.len()` elements), when given the final state
/// [spikes (n) | U (n)] into `fin`, and when given the membrane of every step [T, n] into `hist`
/// (what the backward reads instead of re-running the forward).
pub(crate) fn forward<T: Real, R: SynReset, C: Coefs<T>>(
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    out: &mut [T],
    fin: Option<&mut [T]>,
    hist: Option<&mut [T]>,
) {
    let dst = Dest {
        out: SyncPtr(out.as_mut_ptr()),
        fin: fin.map(|f| SyncPtr(f.as_mut_ptr())),
        hist: hist.map(|f| SyncPtr(f.as_mut_ptr())),
    };
    inp.map_blocks(|r0, r1| block::<T, R, C>(c, inp, main, &dst, r0, r1));
}

/// Where the forward writes, by disjoint blocks of neurons.
struct Dest<T> {
    out: SyncPtr<T>,
    fin: Option<SyncPtr<T>>,
    hist: Option<SyncPtr<T>>,
}

/// What a forward row does with the step's spikes besides keeping them: write or add them.
const WRITE: u8 = 1;
/// See [`WRITE`].
const ADD: u8 = 2;

/// The forward of rows `[r0, r1)`.
fn block<T: Real, R: SynReset, C: Coefs<T>>(
    c: &C,
    inp: &Input<'_, T>,
    main: Main,
    dst: &Dest<T>,
    r0: usize,
    r1: usize,
) {
    let (steps, n, f) = (inp.steps, inp.n, inp.f);
    let (a, w) = (r0 * f, (r1 - r0) * f);
    let l = c.lanes(a, w);
    let v = inp.v_lanes(a, w);
    let (mut s, mut u) = inp.start(a, w);
    let mut rec = vec![T::zero(); w];
    let mut count = vec![T::zero(); if main == Main::Spikes { 0 } else { w }];
    let mut usum = vec![T::zero(); if main == Main::RateMem { w } else { 0 }];
    for t in 0..steps {
        recurrent(inp, &v, &s, &mut rec);
        let i = inp.row(t, a, w);
        if main == Main::Spikes {
            // SAFETY: row t, neurons [a, a + w) belong to this block only.
            let o = unsafe { dst.out.slice(t * n + a, w) };
            row::<T, R, _, WRITE>(&l, i, &rec, &mut u, &mut s, o);
        } else {
            row::<T, R, _, ADD>(&l, i, &rec, &mut u, &mut s, &mut count);
        }
        if let Some(hs) = &dst.hist {
            // SAFETY: as above, in the history.
            unsafe { hs.slice(t * n + a, w) }.copy_from_slice(&u);
        }
        if main == Main::RateMem {
            for (us, &uj) in usum.iter_mut().zip(&u) {
                *us += uj;
            }
        }
    }
    if main != Main::Spikes {
        let inv_t = T::from_f64(1.0 / steps as f64);
        // SAFETY: neurons [a, a + w) of the rate (and of the membrane half) belong to this block.
        for (oj, &cj) in unsafe { dst.out.slice(a, w) }.iter_mut().zip(&count) {
            *oj = cj * inv_t;
        }
        if main == Main::RateMem {
            // SAFETY: as above, in the second half of the output.
            for (oj, &sj) in unsafe { dst.out.slice(n + a, w) }.iter_mut().zip(&usum) {
                *oj = sj * inv_t;
            }
        }
    }
    if let Some(fs) = &dst.fin {
        // SAFETY: neurons [a, a + w) of both halves of the final state belong to this block.
        unsafe { fs.slice(a, w) }.copy_from_slice(&s);
        unsafe { fs.slice(n + a, w) }.copy_from_slice(&u);
    }
}

/// One step over a block: m = β·U + I + rec, U from the reset, S = H(U − θ) into `s` and, as
/// `OUT` says, written or added into `o`. Not inlined, so that the loop over slices that do
/// not overlap vectorises.
#[inline(never)]
fn row<T: Real, R: SynReset, L: Lanes<T>, const OUT: u8>(
    l: &L,
    i: &[T],
    rec: &[T],
    u: &mut [T],
    s: &mut [T],
    o: &mut [T],
) {
    let w = u.len();
    let (i, rec, s, o) = (&i[..w], &rec[..w], &mut s[..w], &mut o[..w]);
    for j in 0..w {
        // SAFETY: j < w, the width the lanes were made for.
        let (be, th) = unsafe { l.at(j) };
        let r = h(u[j], th);
        let m = be * u[j] + i[j] + rec[j];
        let nu = R::mem(m, r, th);
        let sp = h(nu, th);
        u[j] = nu;
        s[j] = sp;
        match OUT {
            WRITE => o[j] = sp,
            _ => o[j] += sp,
        }
    }
}

/// Replays the forward of the block of neurons `[a, a + w)` (whole rows), writing U_t into
/// `hist` [steps × w]: what the backward reads for a form whose forward kept no membranes
/// (the constant-current rate, which stays O(block) in memory over T).
pub(super) fn replay<T: Real, R: SynReset, L: Lanes<T>>(
    inp: &Input<'_, T>,
    l: &L,
    v: &[T],
    a: usize,
    w: usize,
    hist: &mut [T],
) {
    let (mut s, mut u) = inp.start(a, w);
    let mut rec = vec![T::zero(); w];
    let mut count = vec![T::zero(); w];
    for t in 0..inp.steps {
        recurrent(inp, v, &s, &mut rec);
        row::<T, R, _, ADD>(l, inp.row(t, a, w), &rec, &mut u, &mut s, &mut count);
        hist[t * w..(t + 1) * w].copy_from_slice(&u);
    }
}
