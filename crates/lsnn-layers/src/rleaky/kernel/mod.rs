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
//! dL/dW = Σ_t dL/dm_tᵀ·S_{t−1} (one gemm per 16 dense steps, rows of dL/dm per active input
//! for the sparse ones) and dL/db = Σ dL/dm_t. The one-to-one op keeps no membranes: its
//! backward replays the forward per block, which costs less than a [T, n] history.

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
/// state ([spikes (n) | U (n)], or zero), the recurrent weights (and Wᵀ, for the sparse
/// products); n = rows × f.
pub(crate) struct Input<'a, T> {
    pub cur: &'a [T],
    pub constant: bool,
    pub steps: usize,
    pub n: usize,
    /// Features per row (the last neuron dim).
    pub f: usize,
    pub state0: Option<&'a [T]>,
    pub rec: Rec<'a, T>,
    /// Wᵀ [F (input), F (output)] row-major for an all-to-all layer; empty otherwise.
    pub wt: Vec<T>,
}

/// Wᵀ of an all-to-all layer's W [f, f] (empty for one-to-one).
pub(crate) fn transposed<T: Real>(rec: Rec<'_, T>, f: usize) -> Vec<T> {
    match rec {
        Rec::OneToOne(_) => Vec::new(),
        Rec::AllToAll { w, .. } => {
            let mut wt = vec![T::zero(); f * f];
            for (o, row) in w.chunks_exact(f.max(1)).enumerate() {
                for (i, &x) in row.iter().enumerate() {
                    wt[i * f + o] = x;
                }
            }
            wt
        }
    }
}

/// Spike trains at most this dense (nonzero values / all) take the sparse products: rows of Wᵀ
/// (or of dL/dm) added per active input instead of a dense gemm, whose work does not shrink
/// with the firing rate. Measured at 256 × 256, T = 8, one thread: with every train sparse at
/// 30% firing the op took 19.7 ms against the gemm's 14.6; at 6% firing 11.3 ms against 16.9.
const SPARSE_DENSITY: f64 = 0.15;

/// True when `s` is sparse enough for the sparse products.
pub(super) fn sparse<T: Real>(s: &[T]) -> bool {
    let nnz = s.iter().filter(|&&x| x != T::zero()).count();
    (nnz as f64) <= SPARSE_DENSITY * s.len() as f64
}

/// `o += a·x` over one row. Not inlined, so the loop vectorises.
#[inline(never)]
pub(super) fn axpy<T: Real>(o: &mut [T], a: T, x: &[T]) {
    let x = &x[..o.len()];
    for (oj, &xj) in o.iter_mut().zip(x) {
        *oj += a * xj;
    }
}

/// Neurons per block of an all-to-all layer: enough rows that each step's gemm is not
/// dominated by packing W (at 16 rows of 256 it was: 2× slower), few enough that a batch of a
/// few hundred rows still splits over two threads.
const A2A_BLOCK: usize = 32 * TASK;
/// The fewest rows an all-to-all block has, however wide the layer (fewer make each step's gemm
/// a thin one dominated by packing W).
const A2A_MIN_ROWS: usize = 32;

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
        match self.rec {
            Rec::OneToOne(_) => (TASK / self.f.max(1)).max(1),
            Rec::AllToAll { .. } => (A2A_BLOCK / self.f.max(1)).max(A2A_MIN_ROWS),
        }
    }

    /// How many blocks of rows there are.
    pub(super) fn blocks(&self) -> usize {
        self.rows().div_ceil(self.rows_per_block())
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
        self.map_block_range(0..self.blocks(), f)
    }

    /// [`Input::map_blocks`] over the blocks `range` only.
    pub(super) fn map_block_range<R: Send>(
        &self,
        range: std::ops::Range<usize>,
        f: impl Fn(usize, usize) -> R + Sync,
    ) -> Vec<R> {
        use rayon::prelude::*;
        let (rows, per) = (self.rows(), self.rows_per_block());
        let bounds = |c: usize| (c * per, ((c + 1) * per).min(rows));
        let parallel = range.len() > 1
            && self.n * self.steps >= PAR_MIN
            && crate::kernel::parallel_allowed()
            && rayon::current_num_threads() > 1;
        if parallel {
            range
                .into_par_iter()
                .map(|c| {
                    let (r0, r1) = bounds(c);
                    f(r0, r1)
                })
                .collect()
        } else {
            range
                .map(|c| {
                    let (r0, r1) = bounds(c);
                    f(r0, r1)
                })
                .collect()
        }
    }
}

/// rec = (S·Wᵀ) + b for the block's rows of f (all-to-all: the sparse products when `s` is
/// sparse, else one gemm), or V ⊙ S (one-to-one, `v` laid out for the block), into `out`.
pub(super) fn recurrent<T: Real>(inp: &Input<'_, T>, v: &[T], s: &[T], out: &mut [T]) {
    let f = inp.f;
    match inp.rec {
        Rec::OneToOne(_) => {
            let w = out.len();
            for ((o, &sj), &vj) in out.iter_mut().zip(&s[..w]).zip(&v[..w]) {
                *o = sj * vj;
            }
        }
        Rec::AllToAll { b, .. } if sparse(s) => {
            for (srow, orow) in s.chunks_exact(f).zip(out.chunks_exact_mut(f)) {
                orow.fill(T::zero());
                for (i, &si) in srow.iter().enumerate() {
                    if si != T::zero() {
                        axpy(orow, si, &inp.wt[i * f..(i + 1) * f]);
                    }
                }
                for (o, &bj) in orow.iter_mut().zip(b) {
                    *o += bj;
                }
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
