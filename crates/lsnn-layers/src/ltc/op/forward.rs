//! Forward: one time step (sensory synapses, then the unfolds), also backward's recomputation,
//! and the whole sequence.

use super::layout::{LtcLayout, Params};
use crate::kernel::Real;

/// Synapses from `pre` `[P]` onto N neurons, rows of `sigma`, `mu`, `w`, `erev` [P, N]: adds
/// Σ_p w·σ(sigma·(pre_p − mu))·erev to `num` and Σ_p w·σ(…) to `den`, and keeps each σ in
/// `keep` [P, N] when given.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn synapses<T: Real>(
    pre: &[T],
    sigma: &[T],
    mu: &[T],
    w: &[T],
    erev: &[T],
    num: &mut [T],
    den: &mut [T],
    mut keep: Option<&mut [T]>,
) {
    let n = num.len();
    let den = &mut den[..n];
    for (p, &v) in pre.iter().enumerate() {
        let row = p * n..(p + 1) * n;
        // Zipped slices of one length: no bounds checks, so the loop vectorises.
        let syn = sigma[row.clone()]
            .iter()
            .zip(&mu[row.clone()])
            .zip(&w[row.clone()])
            .zip(&erev[row.clone()]);
        match keep.as_deref_mut() {
            Some(k) => {
                for (((((&sg, &m), &wr), &er), (nm, dn)), kp) in
                    syn.zip(num.iter_mut().zip(den.iter_mut())).zip(&mut k[row])
                {
                    let s = (sg * (v - m)).sigmoid_();
                    *kp = s;
                    let a = wr * s;
                    *nm += a * er;
                    *dn += a;
                }
            }
            None => {
                for ((((&sg, &m), &wr), &er), (nm, dn)) in
                    syn.zip(num.iter_mut().zip(den.iter_mut()))
                {
                    let a = wr * (sg * (v - m)).sigmoid_();
                    *nm += a * er;
                    *dn += a;
                }
            }
        }
    }
}

/// What backward keeps of one recomputed step: the potentials before and after each unfold
/// [(K + 1) × N], each unfold's denominator + ε [K × N], its synapses' σ [K × N × N], and the
/// sensory synapses' σ [I × N].
pub(super) struct StepHistory<T> {
    pub v: Vec<T>,
    pub den: Vec<T>,
    pub s: Vec<T>,
    pub sensory: Vec<T>,
}

impl<T: Real> StepHistory<T> {
    pub fn new(ly: &LtcLayout) -> Self {
        let (n, k) = (ly.n, ly.unfolds);
        StepHistory {
            v: vec![T::zero(); (k + 1) * n],
            den: vec![T::zero(); k * n],
            s: vec![T::zero(); k * n * n],
            sensory: vec![T::zero(); ly.i * n],
        }
    }
}

/// Scratch of one step: the sensory sums, the unfold's sums and its new potentials, `[N]` each.
pub(super) struct StepScratch<T> {
    pub sens_num: Vec<T>,
    pub sens_den: Vec<T>,
    num: Vec<T>,
    den: Vec<T>,
    v: Vec<T>,
}

impl<T: Real> StepScratch<T> {
    pub fn new(n: usize) -> Self {
        StepScratch {
            sens_num: vec![T::zero(); n],
            sens_den: vec![T::zero(); n],
            num: vec![T::zero(); n],
            den: vec![T::zero(); n],
            v: vec![T::zero(); n],
        }
    }
}

/// One time step of one row: x `[I]` (mapped), v_in `[N]` → v_out `[N]`. With `hist`, every
/// intermediate backward needs is kept (the arithmetic is the same either way, so a recomputed
/// step gives the forward's bits).
#[inline(always)]
pub(super) fn step<T: Real>(
    ly: &LtcLayout,
    p: &Params<T>,
    x: &[T],
    v_in: &[T],
    v_out: &mut [T],
    sc: &mut StepScratch<T>,
    mut hist: Option<&mut StepHistory<T>>,
) {
    let n = ly.n;
    let eps = T::from_f64(ly.epsilon);
    let dt = T::from_f64(ly.dt);
    sc.sens_num.fill(T::zero());
    sc.sens_den.fill(T::zero());
    synapses(
        x,
        p.s_sigma,
        p.s_mu,
        p.s_w,
        p.s_erev,
        &mut sc.sens_num,
        &mut sc.sens_den,
        hist.as_deref_mut().map(|h| &mut h.sensory[..]),
    );
    sc.v.copy_from_slice(v_in);
    if let Some(h) = hist.as_deref_mut() {
        h.v[..n].copy_from_slice(v_in);
    }
    for k in 0..ly.unfolds {
        sc.num.fill(T::zero());
        sc.den.fill(T::zero());
        let keep = hist
            .as_deref_mut()
            .map(|h| &mut h.s[k * n * n..(k + 1) * n * n]);
        synapses(
            &sc.v,
            p.sigma,
            p.mu,
            p.w,
            p.erev,
            &mut sc.num,
            &mut sc.den,
            keep,
        );
        for j in 0..n {
            let cm_t = p.cm[j] / dt;
            let numer = cm_t * sc.v[j] + p.gleak[j] * p.vleak[j] + (sc.num[j] + sc.sens_num[j]);
            let denom = cm_t + p.gleak[j] + (sc.den[j] + sc.sens_den[j]) + eps;
            sc.num[j] = numer / denom;
            sc.den[j] = denom;
        }
        sc.v.copy_from_slice(&sc.num);
        if let Some(h) = hist.as_deref_mut() {
            h.v[(k + 1) * n..(k + 2) * n].copy_from_slice(&sc.v);
            h.den[k * n..(k + 1) * n].copy_from_slice(&sc.den);
        }
    }
    v_out.copy_from_slice(&sc.v);
}

/// The potentials of every step [B, L, N] from the mapped inputs x [B, L, I], the packed
/// parameters and v_0 [B, N].
pub(super) fn forward<T: Real>(ly: &LtcLayout, x: &[T], packed: &[T], v0: &[T]) -> Vec<T> {
    let (l, n) = (ly.l, ly.n);
    let p = Params::new(ly, packed);
    let mut out = vec![T::zero(); ly.b * l * n];
    let wide = crate::kernel::wide_vectors();
    crate::kernel::row_chunks(&mut out, l * n, ly.b, ly.b * ly.row_work(), |rows, out| {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
            return unsafe { forward_rows_avx2(ly, &p, x, v0, rows, out) };
        }
        let _ = wide;
        forward_rows(ly, &p, x, v0, rows, out)
    });
    out
}

/// [`forward_rows`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn forward_rows_avx2<T: Real>(
    ly: &LtcLayout,
    p: &Params<T>,
    x: &[T],
    v0: &[T],
    rows: std::ops::Range<usize>,
    out: &mut [T],
) {
    forward_rows(ly, p, x, v0, rows, out)
}

/// The rows `rows` of the sequence into `out` (theirs only).
#[inline(always)]
fn forward_rows<T: Real>(
    ly: &LtcLayout,
    p: &Params<T>,
    x: &[T],
    v0: &[T],
    rows: std::ops::Range<usize>,
    out: &mut [T],
) {
    let (l, i, n) = (ly.l, ly.i, ly.n);
    let mut sc = StepScratch::new(n);
    for (r, b) in rows.enumerate() {
        let o = &mut out[r * l * n..(r + 1) * l * n];
        for t in 0..l {
            let xt = &x[(b * l + t) * i..(b * l + t + 1) * i];
            let (done, rest) = o.split_at_mut(t * n);
            let v_in = if t == 0 {
                &v0[b * n..(b + 1) * n]
            } else {
                &done[(t - 1) * n..]
            };
            step(ly, p, xt, v_in, &mut rest[..n], &mut sc, None);
        }
    }
}
