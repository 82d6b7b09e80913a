//! The recurrent LIF recurrence on slices (design §2.11): one forward pass over T and a one-pass
//! BPTT backward, both in blocks of whole rows of F neurons (the recurrence mixes a row's
//! features, never rows), parallel over blocks when the work is large, generic over the reset,
//! the surrogate and the (β, θ) source so that every inner loop is branch-free.
//!
//! Per step the recurrent current of the previous spikes comes first — V ⊙ S elementwise, or
//! S·Wᵀ + b as one gemm over the block's rows — then one elementwise pass updates the membranes
//! and the spikes. The forward keeps the membrane of every step when the caller will need a
//! backward, so the backward never re-runs the forward's gemm; it runs, with r_t detached and σ'
//! the surrogate,
//!
//! ```text
//! dL/dS_t = g_t + rec'(dL/dm_{t+1})            V ⊙ dL/dm_{t+1}, or dL/dm_{t+1}·W
//! dL/dU_t = dL/dS_t·σ'(U_t − θ) + β·dL/dm_{t+1}
//! dL/dm_t = ∂U_t/∂m_t · dL/dU_t                 = dL/dI_t
//! ```
//!
//! from the final state's gradients, and sums dL/dV = Σ_t dL/dm_t ⊙ S_{t−1} (per feature) or
//! dL/dW = Σ_t dL/dm_tᵀ·S_{t−1} (one gemm over all steps at the end) and dL/db = Σ dL/dm_t.

mod backward;
mod forward;

pub(crate) use backward::{backward, Grads, Upstream};
pub(crate) use forward::forward;

use crate::kernel::threads::{PAR_MIN, TASK};
use crate::kernel::Real;

/// The recurrent weights as the kernels read them.
#[derive(Clone, Copy)]
pub(crate) enum Rec<'a, T> {
    /// V: one value for every neuron, or one per feature.
    OneToOne(&'a [T]),
    /// W [F, F] row-major (output feature, input feature), as `nn.Linear`'s weight, and b [F].
    AllToAll { w: &'a [T], b: &'a [T] },
}

/// What the kernels read: the currents ([T, n], or a constant [n] for every step), the initial
/// state ([spikes (n) | U (n)], or zero), the recurrent weights; n = rows × f.
pub(crate) struct Input<'a, T> {
    pub cur: &'a [T],
    pub constant: bool,
    pub steps: usize,
    pub n: usize,
    /// Features per row (the last neuron dim).
    pub f: usize,
    pub state0: Option<&'a [T]>,
    pub rec: Rec<'a, T>,
}

/// Neurons per block of an all-to-all layer: enough rows that each step's gemm is not
/// dominated by packing W (at 16 rows of 256 it was: 2× slower), few enough that a batch of a
/// few hundred rows still splits over two threads.
const A2A_BLOCK: usize = 32 * TASK;

impl<T: Real> Input<'_, T> {
    /// The current of step `t` for neurons `[a, a + w)`.
    #[inline(always)]
    pub(super) fn row(&self, t: usize, a: usize, w: usize) -> &[T] {
        if self.constant {
            &self.cur[a..a + w]
        } else {
            &self.cur[t * self.n + a..t * self.n + a + w]
        }
    }

    /// (S_{−1}, U_{−1}) of neurons `[a, a + w)`.
    pub(super) fn start(&self, a: usize, w: usize) -> (Vec<T>, Vec<T>) {
        match self.state0 {
            Some(s) => (s[a..a + w].to_vec(), s[self.n + a..self.n + a + w].to_vec()),
            None => (vec![T::zero(); w], vec![T::zero(); w]),
        }
    }

    /// Rows of f neurons.
    pub(super) fn rows(&self) -> usize {
        self.n.checked_div(self.f).unwrap_or(0)
    }

    /// Rows per block: the blocks depend on the sizes alone, never on the thread count, so
    /// the per-block sums of the backward add up to the same bits on one thread or many.
    fn rows_per_block(&self) -> usize {
        let per = match self.rec {
            Rec::OneToOne(_) => TASK,
            Rec::AllToAll { .. } => A2A_BLOCK,
        };
        (per / self.f.max(1)).max(1)
    }

    /// V laid out for neurons `[a, a + w)` (neuron j takes V[j mod len]); empty for all-to-all.
    pub(super) fn v_lanes(&self, a: usize, w: usize) -> Vec<T> {
        match self.rec {
            Rec::OneToOne(v) if !v.is_empty() => (a..a + w).map(|j| v[j % v.len()]).collect(),
            _ => Vec::new(),
        }
    }

    /// Runs `f(r0, r1)` over the blocks of rows, in parallel when the work is large and
    /// splitting is allowed; the results in block order.
    pub(super) fn map_blocks<R: Send>(&self, f: impl Fn(usize, usize) -> R + Sync) -> Vec<R> {
        use rayon::prelude::*;
        let (rows, per) = (self.rows(), self.rows_per_block());
        let blocks = rows.div_ceil(per);
        let range = |c: usize| (c * per, ((c + 1) * per).min(rows));
        let parallel = blocks > 1
            && self.n * self.steps >= PAR_MIN
            && crate::kernel::parallel_allowed()
            && rayon::current_num_threads() > 1;
        if parallel {
            (0..blocks)
                .into_par_iter()
                .map(|c| {
                    let (r0, r1) = range(c);
                    f(r0, r1)
                })
                .collect()
        } else {
            (0..blocks)
                .map(|c| {
                    let (r0, r1) = range(c);
                    f(r0, r1)
                })
                .collect()
        }
    }
}

/// rec = (S·Wᵀ) + b for `rows` rows of f (all-to-all), or V ⊙ S (one-to-one, `v` laid out for
/// the block), into `out`.
pub(super) fn recurrent<T: Real>(rec: Rec<'_, T>, v: &[T], s: &[T], out: &mut [T], f: usize) {
    match rec {
        Rec::OneToOne(_) => {
            let w = out.len();
            for ((o, &sj), &vj) in out.iter_mut().zip(&s[..w]).zip(&v[..w]) {
                *o = sj * vj;
            }
        }
        Rec::AllToAll { w, b } => {
            let rows = out.len() / f;
            crate::kernel::matmul(
                crate::kernel::Gemm {
                    m: rows,
                    n: f,
                    k: f,
                },
                out,
                false,
                (s, f, 1),
                (w, 1, f),
                false,
            );
            for row in out.chunks_exact_mut(f) {
                for (o, &bj) in row.iter_mut().zip(b) {
                    *o += bj;
                }
            }
        }
    }
}
