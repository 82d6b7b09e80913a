//! The LIF recurrence on slices: one forward pass over T and a one-pass BPTT backward, both in
//! blocks of neurons (parallel over blocks when the work is large), generic over the reset
//! mechanism and the surrogate so that every inner loop is branch-free.
//!
//! The membrane starts from U_{−1} (zero, or a given initial state) and the final U_{T−1} can be
//! written into a second buffer in the same pass. Backward recomputes the membrane history per block ((T + 1)
//! values per neuron of the block, never of all neurons) and runs
//! dL/dU_t = dL/dS_t·σ'(U_t − θ) + c_{t+1}·dL/dU_{t+1}, c = ∂U_{t+1}/∂U_t with the reset detached,
//! starting from the gradient of the final membrane; what is carried past t = 0 is dL/dU_{−1}.

use super::reset::Reset;
use super::surrogate::SurrogateFn;
use crate::kernel::{for_ranges, Real, SyncPtr};

/// β and θ in the kernel's element type.
#[derive(Clone, Copy)]
pub(crate) struct Params<T> {
    pub beta: T,
    pub theta: T,
}

impl<T: Real> Params<T> {
    /// 1 when U − θ > 0, else 0.
    #[inline(always)]
    fn h(&self, u: T) -> T {
        if u - self.theta > T::zero() {
            T::one()
        } else {
            T::zero()
        }
    }

    /// U_t from U_{t−1} and I_t.
    #[inline(always)]
    fn step<R: Reset>(&self, u: T, i: T) -> T {
        R::step(self.beta, self.theta, self.h(u), u, i)
    }
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
pub(crate) fn forward<T: Real, R: Reset>(
    p: Params<T>,
    inp: &Input<'_, T>,
    main: Main,
    out: &mut [T],
    fin: Option<&mut [T]>,
) {
    let (steps, n) = (inp.steps, inp.n);
    let inv_t = T::from_f64(1.0 / steps as f64);
    let out = SyncPtr(out.as_mut_ptr());
    let fin = fin.map(|f| SyncPtr(f.as_mut_ptr()));
    for_ranges(n, steps, |a, b| {
        let w = b - a;
        let mut u = match inp.mem0 {
            Some(m) => m[a..b].to_vec(),
            None => vec![T::zero(); w],
        };
        let mut count = vec![T::zero(); if main == Main::Spikes { 0 } else { w }];
        let mut usum = vec![T::zero(); if main == Main::RateMem { w } else { 0 }];
        for t in 0..steps {
            let row = inp.row(t, a, w);
            match main {
                Main::Spikes => {
                    // SAFETY: row t, neurons [a, b) belong to this task only.
                    let o = unsafe { out.slice(t * n + a, w) };
                    for ((uj, &ij), oj) in u.iter_mut().zip(row).zip(o.iter_mut()) {
                        let nu = p.step::<R>(*uj, ij);
                        *uj = nu;
                        *oj = p.h(nu);
                    }
                }
                Main::Rate => {
                    for ((uj, &ij), cj) in u.iter_mut().zip(row).zip(count.iter_mut()) {
                        let nu = p.step::<R>(*uj, ij);
                        *uj = nu;
                        *cj += p.h(nu);
                    }
                }
                Main::RateMem => {
                    for (((uj, &ij), cj), sj) in u
                        .iter_mut()
                        .zip(row)
                        .zip(count.iter_mut())
                        .zip(usum.iter_mut())
                    {
                        let nu = p.step::<R>(*uj, ij);
                        *uj = nu;
                        *cj += p.h(nu);
                        *sj += nu;
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
            unsafe { f.slice(a, w) }.copy_from_slice(&u);
        }
    });
}

/// BPTT from the gradient of the main output, `g_main` (spikes [T, n] per step, or a rate [n]
/// whose every step receives g/T; the mean-membrane half of `RateMem` is detached and ignored),
/// and/or of the final membrane, `g_state` [n]; an absent one is zero. Writes dL/dI into `dcur`
/// ([T, n], or [n] for a constant current) and dL/dU_{−1} into `dmem0`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Real, R: Reset, S: SurrogateFn>(
    p: Params<T>,
    sur: &S,
    inp: &Input<'_, T>,
    main: Main,
    g_main: Option<&[T]>,
    g_state: Option<&[T]>,
    dcur: &mut [T],
    dmem0: Option<&mut [T]>,
) {
    let (steps, n, constant) = (inp.steps, inp.n, inp.constant);
    let rate = main != Main::Spikes && g_main.is_some();
    let k = sur.kernel::<T>();
    let inv_t = T::from_f64(1.0 / steps as f64);
    let dcur = SyncPtr(dcur.as_mut_ptr());
    let dmem0 = dmem0.map(|d| SyncPtr(d.as_mut_ptr()));
    for_ranges(n, steps, |a, b| {
        let w = b - a;
        // The membrane of every step for this block; row 0 holds U_{−1}.
        let mut hist = vec![T::zero(); (steps + 1) * w];
        if let Some(m) = inp.mem0 {
            hist[..w].copy_from_slice(&m[a..b]);
        }
        for t in 0..steps {
            let row = inp.row(t, a, w);
            let (prev, next) = hist.split_at_mut((t + 1) * w);
            let prev = &prev[t * w..];
            for ((nx, &u), &i) in next[..w].iter_mut().zip(prev).zip(row) {
                *nx = p.step::<R>(u, i);
            }
        }
        let mut carry = match g_state {
            Some(g) => g[a..b].to_vec(),
            None => vec![T::zero(); w],
        };
        let mut acc = vec![T::zero(); if constant { w } else { 0 }];
        // A rate's g/T, or zeros when only the final membrane has a gradient.
        let mut scaled = vec![T::zero(); if rate || g_main.is_none() { w } else { 0 }];
        if let (true, Some(up)) = (rate, g_main) {
            for (s, &g) in scaled.iter_mut().zip(&up[a..b]) {
                *s = g * inv_t;
            }
        }
        for t in (0..steps).rev() {
            let g: &[T] = match g_main {
                Some(up) if !rate => &up[t * n + a..t * n + b],
                _ => &scaled,
            };
            let u_t = &hist[(t + 1) * w..(t + 2) * w];
            let u_prev = &hist[t * w..(t + 1) * w];
            if constant {
                for ((((c, &gj), &u), &u0), aj) in carry
                    .iter_mut()
                    .zip(g)
                    .zip(u_t)
                    .zip(u_prev)
                    .zip(acc.iter_mut())
                {
                    let du = gj * S::grad(&k, u - p.theta) + *c;
                    *aj += du;
                    *c = R::carry(p.beta, p.h(u0)) * du;
                }
            } else {
                // SAFETY: row t, neurons [a, b) belong to this task only.
                let o = unsafe { dcur.slice(t * n + a, w) };
                for ((((c, &gj), &u), &u0), oj) in carry
                    .iter_mut()
                    .zip(g)
                    .zip(u_t)
                    .zip(u_prev)
                    .zip(o.iter_mut())
                {
                    let du = gj * S::grad(&k, u - p.theta) + *c;
                    *oj = du;
                    *c = R::carry(p.beta, p.h(u0)) * du;
                }
            }
        }
        if constant {
            // SAFETY: neurons [a, b) belong to this task only.
            unsafe { dcur.slice(a, w) }.copy_from_slice(&acc);
        }
        if let Some(d) = &dmem0 {
            // SAFETY: neurons [a, b) belong to this task only.
            unsafe { d.slice(a, w) }.copy_from_slice(&carry);
        }
    });
}
