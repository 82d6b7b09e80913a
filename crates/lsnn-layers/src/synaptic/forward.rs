//! What every block of a two-decay forward shares (the current-based LIF's kernel, the alpha
//! neuron's and the adaptive LIF's): the step loop, where each step's spikes go, the rate and
//! mean membrane of the rate forms and the final state, so that each kernel supplies only its
//! starting state and its per-step row.

use super::kernel::Input;
use crate::kernel::{Real, SyncPtr};
use crate::lif::kernel::Main;

/// Where one step's spikes go: written to the output's row, or added to the block's count.
pub(crate) enum SpikesTo<'a, T> {
    /// The spike form's row t.
    Write(&'a mut [T]),
    /// The rate forms' running count.
    Add(&'a mut [T]),
}

/// The forward of neurons `[a, b)` (their rows of `out` and of `fin` belong to this call only):
/// the `K` state parts start at `st`, `step` advances them by one step from that step's currents
/// and puts its spikes where it is told; part `mem` is the membrane the rate form averages. Writes
/// the main output and, when given, the final state [part 0 (n) | part 1 (n) | …] into `fin`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_block<T: Real, const K: usize>(
    inp: &Input<'_, T>,
    main: Main,
    out: &SyncPtr<T>,
    fin: Option<&SyncPtr<T>>,
    a: usize,
    b: usize,
    mut st: [Vec<T>; K],
    mem: usize,
    mut step: impl FnMut(&[T], &mut [Vec<T>; K], SpikesTo<'_, T>),
) {
    let (steps, n, w) = (inp.steps, inp.n, b - a);
    let mut count = vec![T::zero(); if main == Main::Spikes { 0 } else { w }];
    let mut msum = vec![T::zero(); if main == Main::RateMem { w } else { 0 }];
    for t in 0..steps {
        let row = &inp.row(t, a, w)[..w];
        if main == Main::Spikes {
            // SAFETY: row t, neurons [a, b) belong to this task only.
            let o = unsafe { out.slice(t * n + a, w) };
            step(row, &mut st, SpikesTo::Write(o));
        } else {
            step(row, &mut st, SpikesTo::Add(&mut count));
        }
        if main == Main::RateMem {
            for (ms, &mj) in msum.iter_mut().zip(st[mem].iter()) {
                *ms += mj;
            }
        }
    }
    if main != Main::Spikes {
        let inv_t = T::from_f64(1.0 / steps as f64);
        // SAFETY: neurons [a, b) of the rate (and of the membrane half) belong to this task.
        for (oj, &cj) in unsafe { out.slice(a, w) }.iter_mut().zip(&count) {
            *oj = cj * inv_t;
        }
        if main == Main::RateMem {
            // SAFETY: as above, in the second half of the output.
            for (oj, &sj) in unsafe { out.slice(n + a, w) }.iter_mut().zip(&msum) {
                *oj = sj * inv_t;
            }
        }
    }
    if let Some(f) = &fin {
        for (k, part) in st.iter().enumerate() {
            // SAFETY: neurons [a, b) of each part of the final state belong to this task.
            unsafe { f.slice(k * n + a, w) }.copy_from_slice(part);
        }
    }
}
