//! Backward: the BPTT recurrence in one reverse pass over the steps, each layer's step
//! recomputed from the saved states (h_{t−1} and the previous layer's h_t are outputs), the
//! weight gradients accumulated with gemm.

use super::forward::{layer_head, mm, Input, Scratch, LECUN_A, LECUN_B};
use super::layout::{LayerLayout, Span, StackLayout};
use crate::cfc::CfcMode;
use crate::kernel::Real;

#[inline(always)]
fn sign<T: Real>(x: T) -> T {
    if x > T::zero() {
        T::one()
    } else if x < T::zero() {
        T::zero() - T::one()
    } else {
        T::zero()
    }
}

/// Per-layer buffers of the reverse pass.
struct Grads<T> {
    /// dL/dh_{t} arriving through the recurrent map from step t + 1.
    carry_rec: Vec<T>,
    /// dL/dh_{t} arriving from the next layer's input map at step t.
    carry_in: Vec<T>,
    /// dL/dh_t of this layer at the current step, [B × hidden].
    dh: Vec<T>,
    /// dL/dhead, and dL/d(backbone activations) in two buffers.
    dhead: Vec<T>,
    dz: Vec<T>,
    dz2: Vec<T>,
}

/// dL/dhead of layer `ly` at step t from dL/dh (`dh`, [B × hidden]); accumulates the pure
/// parameters' gradients into `dpacked` and the time spans' into `dts`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn head_backward<T: Real>(
    s: &StackLayout,
    ly: &LayerLayout,
    packed: &[T],
    drive: &[T],
    t: usize,
    head: &[T],
    dh: &[T],
    dhead: &mut [T],
    dpacked: &mut [T],
    dts: &mut [T],
) {
    let h = ly.dims.hidden;
    let one = T::one();
    let per_step = s.span == Span::PerStep;
    for r in 0..s.b {
        let hd = &head[r * ly.head..(r + 1) * ly.head];
        let dd = &mut dhead[r * ly.head..(r + 1) * ly.head];
        let g = &dh[r * h..(r + 1) * h];
        let ts = s.span_at(drive, r, t);
        match (s.mode, per_step) {
            (CfcMode::Pure, _) => {
                for (j, &g) in g.iter().enumerate() {
                    let (w, a) = (packed[ly.w_tau.start + j], packed[ly.a.start + j]);
                    let f = hd[j];
                    let sum = w.abs_() + f.abs_();
                    let e = (T::zero() - ts * sum).exp_();
                    dd[j] = g * (T::zero() - a) * e * (one - ts * f.abs_());
                    dpacked[ly.a.start + j] += g * (one - e * f);
                    dpacked[ly.w_tau.start + j] += g * a * f * e * ts * sign(w);
                    dts[r] += g * a * f * e * sum;
                }
            }
            (CfcMode::NoGate, false) => gated_row_backward::<T, true, false>(hd, g, ts, dd),
            (CfcMode::NoGate, true) => {
                gated_row_backward::<T, true, true>(hd, g, ts, dd);
                dts[r] += span_gradient(hd, dd, h);
            }
            (_, false) => gated_row_backward::<T, false, false>(hd, g, ts, dd),
            (_, true) => {
                gated_row_backward::<T, false, true>(hd, g, ts, dd);
                dts[r] += span_gradient(hd, dd, h);
            }
        }
    }
}

/// One row of a gated head's backward: dL/dhead (`dd`, laid out as the head) from dL/dh' (`g`),
/// the head's values `hd` and the span. One loop over contiguous slices with branch-free,
/// call-free tanh and σ (recomputed from the head), so that it vectorises; the mode and the span
/// kind are constants of the instance.
#[inline(always)]
fn gated_row_backward<T: Real, const NO_GATE: bool, const PER_STEP: bool>(
    hd: &[T],
    g: &[T],
    ts: T,
    dd: &mut [T],
) {
    let h = g.len();
    let one = T::one();
    let (h1, rest) = hd.split_at(h);
    let (h2, rest) = rest.split_at(h);
    let (pa, rest) = rest.split_at(h);
    let (d1, drest) = dd.split_at_mut(h);
    let (d2, drest) = drest.split_at_mut(h);
    let (d3, d4) = drest.split_at_mut(h);
    // The fourth quarter exists only with per-step spans; cut to h so that the compiler sees one
    // trip count and no bounds checks.
    let (pb, d4) = if PER_STEP {
        (&rest[..h], &mut d4[..h])
    } else {
        (&rest[..0], &mut d4[..0])
    };
    for j in 0..h {
        let (f1, f2) = (h1[j].tanh_lanes(), h2[j].tanh_lanes());
        let pre = if PER_STEP { pa[j] * ts + pb[j] } else { pa[j] };
        let tau = pre.sigmoid_lanes();
        let gj = g[j];
        let (df1, df2, dtau) = if NO_GATE {
            (gj, gj * tau, gj * f2)
        } else {
            (gj * (one - tau), gj * tau, gj * (f2 - f1))
        };
        d1[j] = df1 * (one - f1 * f1);
        d2[j] = df2 * (one - f2 * f2);
        let dpre = dtau * tau * (one - tau);
        if PER_STEP {
            d3[j] = dpre * ts;
            d4[j] = dpre;
        } else {
            d3[j] = dpre;
        }
    }
}

/// dL/dts of one row with per-step spans: Σ_j d pre_j · head₃_j, summed in j order (a separate
/// pass so that the loop above has no running sum).
#[inline(always)]
fn span_gradient<T: Real>(hd: &[T], dd: &[T], h: usize) -> T {
    let mut acc = T::zero();
    for (&dpre, &p) in dd[3 * h..4 * h].iter().zip(&hd[2 * h..3 * h]) {
        acc += dpre * p;
    }
    acc
}

/// In place: d(pre-activation) = d(activation) · lecun_tanh'(pre), from the activation z.
#[inline(always)]
fn lecun_backward<T: Real>(dz: &mut [T], z: &[T]) {
    let (la, lb) = (T::from_f64(LECUN_A), T::from_f64(LECUN_B));
    for (d, &zv) in dz.iter_mut().zip(z) {
        let s = zv / la;
        *d = *d * la * lb * (T::one() - s * s);
    }
}

/// (d drive, d packed, d h0). The AVX2 copy where the CPU has it (the same bits).
pub(super) fn backward<T: Real>(
    s: &StackLayout,
    drive: &[T],
    packed: &[T],
    h0: &[T],
    hs: &[T],
    g: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    #[cfg(target_arch = "x86_64")]
    if crate::kernel::wide_vectors() {
        // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
        return unsafe { backward_avx2(s, drive, packed, h0, hs, g) };
    }
    backward_steps(s, drive, packed, h0, hs, g)
}

/// [`backward_steps`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn backward_avx2<T: Real>(
    s: &StackLayout,
    drive: &[T],
    packed: &[T],
    h0: &[T],
    hs: &[T],
    g: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    backward_steps(s, drive, packed, h0, hs, g)
}

#[inline(always)]
fn backward_steps<T: Real>(
    s: &StackLayout,
    drive: &[T],
    packed: &[T],
    h0: &[T],
    hs: &[T],
    g: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (b, l, sw) = (s.b, s.l, s.state);
    let nl = s.layers.len();
    let mut ddrive = vec![T::zero(); b * l * s.drive];
    let mut dpacked = vec![T::zero(); packed.len()];
    let mut grads: Vec<Grads<T>> = s
        .layers
        .iter()
        .map(|ly| {
            let u = if ly.headless() { 0 } else { ly.dims.units };
            Grads {
                carry_rec: vec![T::zero(); b * ly.dims.hidden],
                carry_in: vec![T::zero(); b * ly.dims.hidden],
                dh: vec![T::zero(); b * ly.dims.hidden],
                dhead: vec![T::zero(); b * ly.head],
                dz: vec![T::zero(); b * u],
                dz2: vec![T::zero(); b * u],
            }
        })
        .collect();
    let mut scratch: Vec<Scratch<T>> = s.layers.iter().map(|ly| Scratch::new(b, ly)).collect();
    let mut h_prev = vec![T::zero(); b * sw];
    let mut h_cur = vec![T::zero(); b * sw];
    let mut dts = vec![T::zero(); b];
    for t in (0..l).rev() {
        for r in 0..b {
            h_cur[r * sw..(r + 1) * sw]
                .copy_from_slice(&hs[(r * l + t) * sw..(r * l + t + 1) * sw]);
            if t == 0 {
                h_prev[r * sw..(r + 1) * sw].copy_from_slice(&h0[r * sw..(r + 1) * sw]);
            } else {
                h_prev[r * sw..(r + 1) * sw]
                    .copy_from_slice(&hs[(r * l + t - 1) * sw..(r * l + t) * sw]);
            }
        }
        dts.iter_mut().for_each(|v| *v = T::zero());
        for li in (0..nl).rev() {
            let ly = &s.layers[li];
            let input = if li == 0 {
                Input::Drive { drive, t }
            } else {
                Input::State {
                    h: &h_cur,
                    cols: s.layers[li - 1].state.start,
                    stride: sw,
                }
            };
            layer_head(s, ly, packed, input, &h_prev, &mut scratch[li]);
            let (hdim, st) = (ly.dims.hidden, ly.state.start);
            let sc = &scratch[li];
            let gr = &mut grads[li];
            {
                let last = li + 1 == nl;
                for r in 0..b {
                    let out = &mut gr.dh[r * hdim..(r + 1) * hdim];
                    let at = (r * l + t) * sw + st;
                    let (gt, rec) = (&g[at..at + hdim], &gr.carry_rec[r * hdim..(r + 1) * hdim]);
                    if last {
                        for ((o, &a), &c) in out.iter_mut().zip(gt).zip(rec) {
                            *o = a + c;
                        }
                    } else {
                        let inp = &gr.carry_in[r * hdim..(r + 1) * hdim];
                        for (((o, &a), &c), &i) in out.iter_mut().zip(gt).zip(rec).zip(inp) {
                            *o = a + c + i;
                        }
                    }
                }
                head_backward(
                    s,
                    ly,
                    packed,
                    drive,
                    t,
                    sc.head(ly),
                    &gr.dh,
                    &mut gr.dhead,
                    &mut dpacked,
                    &mut dts,
                );
            }
            let f = ly.first;
            // dfirst: [B × first], the gradient of the layer's first map.
            if !ly.headless() {
                let u = ly.dims.units;
                for r in 0..b {
                    for (acc, &v) in dpacked[ly.b_head.clone()]
                        .iter_mut()
                        .zip(&gr.dhead[r * ly.head..(r + 1) * ly.head])
                    {
                        *acc += v;
                    }
                }
                let z_last = sc.acts.last().expect("at least the first map");
                // dW_headᵀ [U, head] += z_lastᵀ·dhead
                mm(
                    u,
                    ly.head,
                    b,
                    &mut dpacked[ly.w_head_t.clone()],
                    true,
                    z_last,
                    1,
                    u,
                    &gr.dhead,
                    ly.head,
                    1,
                );
                // dz [B, U] = dhead·W_head (W_headᵀ is [U, head]: its transpose has strides (1, head))
                mm(
                    b,
                    u,
                    ly.head,
                    &mut gr.dz,
                    false,
                    &gr.dhead,
                    ly.head,
                    1,
                    &packed[ly.w_head_t.clone()],
                    1,
                    ly.head,
                );
                for k in (1..ly.dims.depth).rev() {
                    let (w, bias) = &ly.deep[k - 1];
                    lecun_backward(&mut gr.dz, &sc.acts[k]);
                    for r in 0..b {
                        for (acc, &v) in dpacked[bias.clone()]
                            .iter_mut()
                            .zip(&gr.dz[r * u..(r + 1) * u])
                        {
                            *acc += v;
                        }
                    }
                    mm(
                        u,
                        u,
                        b,
                        &mut dpacked[w.clone()],
                        true,
                        &sc.acts[k - 1],
                        1,
                        u,
                        &gr.dz,
                        u,
                        1,
                    );
                    mm(
                        b,
                        u,
                        u,
                        &mut gr.dz2,
                        false,
                        &gr.dz,
                        u,
                        1,
                        &packed[w.clone()],
                        1,
                        u,
                    );
                    std::mem::swap(&mut gr.dz, &mut gr.dz2);
                }
                lecun_backward(&mut gr.dz, &sc.acts[0]);
            }
            let dfirst: &[T] = if ly.headless() { &gr.dhead } else { &gr.dz };
            if li == 0 {
                for r in 0..b {
                    let at = (r * l + t) * s.drive;
                    ddrive[at..at + f].copy_from_slice(&dfirst[r * f..(r + 1) * f]);
                }
            } else {
                for r in 0..b {
                    for (acc, &v) in dpacked[ly.b_in.clone()]
                        .iter_mut()
                        .zip(&dfirst[r * f..(r + 1) * f])
                    {
                        *acc += v;
                    }
                }
                let (ps, pin) = (s.layers[li - 1].state.start, ly.dims.input);
                // dW_inᵀ [in, F] += h_{l−1,t}ᵀ·dfirst
                mm(
                    pin,
                    f,
                    b,
                    &mut dpacked[ly.w_in_t.clone()],
                    true,
                    &h_cur[ps..],
                    1,
                    sw,
                    dfirst,
                    f,
                    1,
                );
                // the previous layer's dL/dh_t through this layer's input map
                let (lo, hi) = grads.split_at_mut(li);
                let dfirst: &[T] = if ly.headless() {
                    &hi[0].dhead
                } else {
                    &hi[0].dz
                };
                mm(
                    b,
                    pin,
                    f,
                    &mut lo[li - 1].carry_in,
                    false,
                    dfirst,
                    f,
                    1,
                    &packed[ly.w_in_t.clone()],
                    1,
                    f,
                );
            }
            let gr = &mut grads[li];
            let dfirst: &[T] = if ly.headless() { &gr.dhead } else { &gr.dz };
            // dW_recᵀ [H, F] += h_{t−1}ᵀ·dfirst
            mm(
                hdim,
                f,
                b,
                &mut dpacked[ly.w_rec_t.clone()],
                true,
                &h_prev[st..],
                1,
                sw,
                dfirst,
                f,
                1,
            );
            // dL/dh_{t−1} through the recurrent map
            let mut carry = std::mem::take(&mut gr.carry_rec);
            mm(
                b,
                hdim,
                f,
                &mut carry,
                false,
                dfirst,
                f,
                1,
                &packed[ly.w_rec_t.clone()],
                1,
                f,
            );
            gr.carry_rec = carry;
        }
        if s.span == Span::PerStep {
            for (r, &v) in dts.iter().enumerate() {
                ddrive[(r * l + t) * s.drive + s.drive - 1] = v;
            }
        }
    }
    let mut dh0 = vec![T::zero(); b * sw];
    for (ly, gr) in s.layers.iter().zip(&grads) {
        let hdim = ly.dims.hidden;
        for r in 0..b {
            dh0[r * sw + ly.state.start..r * sw + ly.state.end]
                .copy_from_slice(&gr.carry_rec[r * hdim..(r + 1) * hdim]);
        }
    }
    (ddrive, dpacked, dh0)
}
