//! Backward: BPTT through the steps and, inside each step, through its unfolds. Each step is
//! recomputed from the saved potential before it (the op keeps nothing else), with every
//! intermediate kept for that one step.

use super::forward::{step, StepHistory, StepScratch};
use super::layout::{LtcLayout, Params};
use crate::kernel::Real;

/// The most row pieces backward splits a call into (and so the most packed gradients alive).
const MAX_PIECES: usize = 8;

/// Gradients of one row group: the packed parameters' (summed over its rows) and v_0's rows.
struct Partial<T> {
    params: Vec<T>,
    dv0: Vec<T>,
}

/// The reverse of [`super::forward::synapses`] for one set of synapses from `pre` `[P]`: given
/// d num and d den `[N]` (the same for every presynaptic p), accumulates the gradients of w, erev,
/// sigma and mu [P, N] and adds d pre `[P]` to `dpre`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn synapses_back<T: Real>(
    pre: &[T],
    sig: &[T],
    mu: &[T],
    w: &[T],
    erev: &[T],
    s: &[T],
    dnum: &[T],
    dden: &[T],
    grads: [&mut [T]; 4],
    dpre: &mut [T],
    tmp: &mut [T],
) {
    let n = dnum.len();
    let dden = &dden[..n];
    let tmp = &mut tmp[..n];
    let [dw, derev, dsig, dmu] = grads;
    for (p, &v) in pre.iter().enumerate() {
        let row = p * n..(p + 1) * n;
        let params = sig[row.clone()]
            .iter()
            .zip(&mu[row.clone()])
            .zip(&w[row.clone()])
            .zip(&erev[row.clone()])
            .zip(&s[row.clone()])
            .zip(dnum.iter().zip(dden));
        let grads = dw[row.clone()]
            .iter_mut()
            .zip(&mut derev[row.clone()])
            .zip(&mut dsig[row.clone()])
            .zip(&mut dmu[row]);
        // Each term of d pre goes to `tmp` and is summed after in eight fixed lanes: a running
        // scalar sum would keep the loop from vectorising.
        for (((((((&sg, &m), &wr), &er), &sj), (&dn, &dd)), (((gw, ge), gs), gm)), t) in
            params.zip(grads).zip(tmp.iter_mut())
        {
            let a = wr * sj;
            *ge += dn * a;
            let da = dn * er + dd;
            *gw += da * sj;
            let dz = da * wr * sj * (T::one() - sj);
            *gs += dz * (v - m);
            *gm -= dz * sg;
            *t = dz * sg;
        }
        dpre[p] += lane_sum(tmp);
    }
}

/// Σ v in eight interleaved partial sums (so the loop vectorises), added in a fixed order.
#[inline(always)]
fn lane_sum<T: Real>(v: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += *x;
        }
    }
    let mut total = T::zero();
    for l in lanes {
        total += l;
    }
    for x in rest {
        total += *x;
    }
    total
}

/// d x [B, L, I], d packed, d v_0 [B, N] from the saved inputs, parameters, v_0, the output
/// [B, L, N] and its gradient.
pub(super) fn backward<T: Real>(
    ly: &LtcLayout,
    x: &[T],
    packed: &[T],
    v0: &[T],
    out: &[T],
    grad: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (l, i, n) = (ly.l, ly.i, ly.n);
    let mut dx = vec![T::zero(); ly.b * l * i];
    let p = Params::new(ly, packed);
    let saved = Saved { x, v0, out, grad };
    let wide = crate::kernel::wide_vectors();
    let run = |rows: std::ops::Range<usize>, dx: &mut [T]| {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
            return unsafe { backward_rows_avx2(ly, &p, &saved, rows, dx) };
        }
        let _ = wide;
        backward_rows(ly, &p, &saved, rows, dx)
    };
    // At most MAX_PIECES pieces of consecutive rows, fixed by B alone (so the sums below give the
    // same bits on any thread count): each holds a whole packed gradient until they are summed.
    let per = ly.b.div_ceil(MAX_PIECES).max(1);
    let pieces: Vec<(std::ops::Range<usize>, &mut [T])> = dx
        .chunks_mut(per * l * i)
        .enumerate()
        .map(|(k, d)| (k * per..k * per + d.len() / (l * i), d))
        .collect();
    let parallel = crate::kernel::parallel_allowed()
        && rayon::current_num_threads() > 1
        && ly.b * ly.row_work() >= crate::kernel::threads::PAR_ROWS_MIN
        && pieces.len() >= 2;
    let parts: Vec<Partial<T>> = if parallel {
        use rayon::prelude::*;
        pieces.into_par_iter().map(|(r, d)| run(r, d)).collect()
    } else {
        pieces.into_iter().map(|(r, d)| run(r, d)).collect()
    };
    let mut dp = vec![T::zero(); ly.packed];
    let mut dv0 = Vec::with_capacity(ly.b * n);
    for part in parts {
        for (a, b) in dp.iter_mut().zip(&part.params) {
            *a += *b;
        }
        dv0.extend_from_slice(&part.dv0);
    }
    (dx, dp, dv0)
}

/// What the op saved: the inputs, v_0, the output and its gradient.
struct Saved<'a, T> {
    x: &'a [T],
    v0: &'a [T],
    out: &'a [T],
    grad: &'a [T],
}

/// [`backward_rows`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_rows_avx2<T: Real>(
    ly: &LtcLayout,
    p: &Params<T>,
    sv: &Saved<T>,
    rows: std::ops::Range<usize>,
    dx: &mut [T],
) -> Partial<T> {
    backward_rows(ly, p, sv, rows, dx)
}

/// BPTT of the rows `rows`: their rows of d x into `dx`, their share of the parameters'
/// gradient and their rows of d v_0.
#[inline(always)]
fn backward_rows<T: Real>(
    ly: &LtcLayout,
    p: &Params<T>,
    sv: &Saved<T>,
    rows: std::ops::Range<usize>,
    dx: &mut [T],
) -> Partial<T> {
    let (l, i, n) = (ly.l, ly.i, ly.n);
    let mut part = Partial {
        params: vec![T::zero(); ly.packed],
        dv0: Vec::with_capacity(rows.len() * n),
    };
    let mut hist = StepHistory::new(ly);
    let mut sc = StepScratch::new(n);
    let mut v_re = vec![T::zero(); n];
    let (mut g, mut gn) = (vec![T::zero(); n], vec![T::zero(); n]);
    let (mut dnum, mut dden) = (vec![T::zero(); n], vec![T::zero(); n]);
    let (mut dsn, mut dsd) = (vec![T::zero(); n], vec![T::zero(); n]);
    let mut tmp = vec![T::zero(); n];
    for (r, b) in rows.enumerate() {
        let o = &sv.out[b * l * n..(b + 1) * l * n];
        let go = &sv.grad[b * l * n..(b + 1) * l * n];
        g.copy_from_slice(&go[(l - 1) * n..]);
        for t in (0..l).rev() {
            let xt = &sv.x[(b * l + t) * i..(b * l + t + 1) * i];
            let v_in = if t == 0 {
                &sv.v0[b * n..(b + 1) * n]
            } else {
                &o[(t - 1) * n..t * n]
            };
            step(ly, p, xt, v_in, &mut v_re, &mut sc, Some(&mut hist));
            dsn.fill(T::zero());
            dsd.fill(T::zero());
            back_unfolds(
                ly,
                p,
                &hist,
                &mut part.params,
                &mut g,
                &mut gn,
                &mut dnum,
                &mut dden,
                &mut dsn,
                &mut dsd,
                &mut tmp,
            );
            // The sensory synapses: their sums entered every unfold.
            let dxt = &mut dx[(r * l + t) * i..(r * l + t + 1) * i];
            let [_, _, _, sig, mu, w, erev] = grads(ly, &mut part.params, true);
            synapses_back(
                xt,
                p.s_sigma,
                p.s_mu,
                p.s_w,
                p.s_erev,
                &hist.sensory,
                &dsn,
                &dsd,
                [w, erev, sig, mu],
                dxt,
                &mut tmp,
            );
            if t > 0 {
                for (gj, oj) in g.iter_mut().zip(&go[(t - 1) * n..t * n]) {
                    *gj += *oj;
                }
            }
        }
        part.dv0.extend_from_slice(&g);
    }
    part
}

/// The packed gradient's parts: gleak, vleak, cm, then sigma, mu, w, erev of the neuron
/// synapses (`sensory` false) or of the sensory ones.
fn grads<'a, T>(ly: &LtcLayout, dp: &'a mut [T], sensory: bool) -> [&'a mut [T]; 7] {
    let (head, rest) = dp.split_at_mut(ly.sigma.start);
    let (gleak, head) = head.split_at_mut(ly.n);
    let (vleak, cm) = head.split_at_mut(ly.n);
    let nn = ly.n * ly.n;
    let (neur, sens) = rest.split_at_mut(4 * nn);
    let (part, len) = if sensory {
        (sens, ly.i * ly.n)
    } else {
        (neur, nn)
    };
    let (sig, part) = part.split_at_mut(len);
    let (mu, part) = part.split_at_mut(len);
    let (w, erev) = part.split_at_mut(len);
    [gleak, vleak, cm, sig, mu, w, &mut erev[..len]]
}

/// Reverses one step's unfolds (K down to 1): on entry `g` holds d v_out, on exit d v_in;
/// the parameter gradients and the sensory sums' gradients `dsn`, `dsd` accumulate.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn back_unfolds<T: Real>(
    ly: &LtcLayout,
    p: &Params<T>,
    h: &StepHistory<T>,
    dp: &mut [T],
    g: &mut [T],
    gn: &mut [T],
    dnum: &mut [T],
    dden: &mut [T],
    dsn: &mut [T],
    dsd: &mut [T],
    tmp: &mut [T],
) {
    let n = ly.n;
    let dt = T::from_f64(ly.dt);
    let [dgleak, dvleak, dcm, dsig, dmu, dw, derev] = grads(ly, dp, false);
    for k in (0..ly.unfolds).rev() {
        let v_in = &h.v[k * n..(k + 1) * n];
        let v_out = &h.v[(k + 1) * n..(k + 2) * n];
        let den = &h.den[k * n..(k + 1) * n];
        for j in 0..n {
            let cm_t = p.cm[j] / dt;
            dnum[j] = g[j] / den[j];
            dden[j] = T::zero() - dnum[j] * v_out[j];
            gn[j] = dnum[j] * cm_t;
            dcm[j] += (dnum[j] * v_in[j] + dden[j]) / dt;
            dgleak[j] += dnum[j] * p.vleak[j] + dden[j];
            dvleak[j] += dnum[j] * p.gleak[j];
            dsn[j] += dnum[j];
            dsd[j] += dden[j];
        }
        synapses_back(
            v_in,
            p.sigma,
            p.mu,
            p.w,
            p.erev,
            &h.s[k * n * n..(k + 1) * n * n],
            dnum,
            dden,
            [&mut *dw, &mut *derev, &mut *dsig, &mut *dmu],
            gn,
            tmp,
        );
        g.copy_from_slice(gn);
    }
}
