//! Backward: the BPTT recurrence in one reverse pass over the steps, each layer's step
//! recomputed from the saved states (h_{t−1} and the previous layer's h_t are outputs), the
//! weight gradients accumulated with gemm.

use super::forward::{layer_head, mm, sigmoid, Input, Scratch, LECUN_A, LECUN_B};
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
    /// dL/dhead, and dL/d(backbone activations) in two buffers.
    dhead: Vec<T>,
    dz: Vec<T>,
    dz2: Vec<T>,
}

/// dL/dhead of layer `ly` at step t from dL/dh (`dh`, [B × hidden]); accumulates the pure
/// parameters' gradients into `dpacked` and the time spans' into `dts`.
#[allow(clippy::too_many_arguments)]
fn head_backward<T: Real>(
    s: &StackLayout,
    ly: &LayerLayout,
    packed: &[T],
    drive: &[T],
    t: usize,
    head: &[T],
    dh: &dyn Fn(usize, usize) -> T,
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
        let ts = s.span_at(drive, r, t);
        for j in 0..h {
            let g = dh(r, j);
            match s.mode {
                CfcMode::Pure => {
                    let (w, a) = (packed[ly.w_tau.start + j], packed[ly.a.start + j]);
                    let f = hd[j];
                    let sum = w.abs_() + f.abs_();
                    let e = (T::zero() - ts * sum).exp_();
                    dd[j] = g * (T::zero() - a) * e * (one - ts * f.abs_());
                    dpacked[ly.a.start + j] += g * (one - e * f);
                    dpacked[ly.w_tau.start + j] += g * a * f * e * ts * sign(w);
                    dts[r] += g * a * f * e * sum;
                }
                mode => {
                    let f1 = hd[j].tanh_();
                    let f2 = hd[h + j].tanh_();
                    let pre = if per_step {
                        hd[2 * h + j] * ts + hd[3 * h + j]
                    } else {
                        hd[2 * h + j]
                    };
                    let tau = sigmoid(pre);
                    let (df1, df2, dtau) = match mode {
                        CfcMode::NoGate => (g, g * tau, g * f2),
                        _ => (g * (one - tau), g * tau, g * (f2 - f1)),
                    };
                    dd[j] = df1 * (one - f1 * f1);
                    dd[h + j] = df2 * (one - f2 * f2);
                    let dpre = dtau * tau * (one - tau);
                    if per_step {
                        dd[2 * h + j] = dpre * ts;
                        dd[3 * h + j] = dpre;
                        dts[r] += dpre * hd[2 * h + j];
                    } else {
                        dd[2 * h + j] = dpre;
                    }
                }
            }
        }
    }
}

/// In place: d(pre-activation) = d(activation) · lecun_tanh'(pre), from the activation z.
fn lecun_backward<T: Real>(dz: &mut [T], z: &[T]) {
    let (la, lb) = (T::from_f64(LECUN_A), T::from_f64(LECUN_B));
    for (d, &zv) in dz.iter_mut().zip(z) {
        let s = zv / la;
        *d = *d * la * lb * (T::one() - s * s);
    }
}

/// (d drive, d packed, d h0).
pub(super) fn backward<T: Real>(
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
                let (carry_rec, carry_in) = (&gr.carry_rec, &gr.carry_in);
                let dh = |r: usize, j: usize| {
                    let v = g[(r * l + t) * sw + st + j] + carry_rec[r * hdim + j];
                    if last {
                        v
                    } else {
                        v + carry_in[r * hdim + j]
                    }
                };
                head_backward(
                    s,
                    ly,
                    packed,
                    drive,
                    t,
                    sc.head(ly),
                    &dh,
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
