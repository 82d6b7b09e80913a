//! What every block of a two-decay backward shares (the current-based LIF's kernel, the alpha
//! neuron's and the adaptive LIF's): where it writes, the upstream gradient of each step, the final state's gradient as
//! the first carries, and the writes at the end, so that each kernel holds only its recurrence.

use super::kernel::{Grads, Input, Upstream};
use crate::kernel::{for_ranges, Real, SyncPtr};
use crate::lif::kernel::Main;

/// The backward's outputs, written by disjoint blocks of neurons.
struct Dest<T> {
    dcur: SyncPtr<T>,
    dstate0: Option<SyncPtr<T>>,
    dparams: Option<SyncPtr<T>>,
}

/// One block of neurons `[a, b)` of a backward.
pub(crate) struct Frame<'a, T> {
    /// What the kernels read.
    pub inp: &'a Input<'a, T>,
    up: &'a Upstream<'a, T>,
    dst: &'a Dest<T>,
    /// The main output is a rate: every step receives g/T.
    rate: bool,
    /// The first neuron of the block.
    pub a: usize,
    /// One past its last neuron.
    pub b: usize,
}

/// Runs `block` on every block of neurons (in parallel when the work is large), telling it
/// whether the parameter gradients are wanted.
pub(crate) fn for_blocks<T: Real>(
    inp: &Input<'_, T>,
    main: Main,
    up: &Upstream<'_, T>,
    out: Grads<'_, T>,
    block: impl Fn(&Frame<'_, T>, bool) + Sync,
) {
    let dst = Dest {
        dcur: SyncPtr(out.dcur.as_mut_ptr()),
        dstate0: out.dstate0.map(|d| SyncPtr(d.as_mut_ptr())),
        dparams: out.dparams.map(|d| SyncPtr(d.as_mut_ptr())),
    };
    let learn = dst.dparams.is_some();
    let rate = main != Main::Spikes;
    for_ranges(inp.n, inp.steps, |a, b| {
        let frame = Frame {
            inp,
            up,
            dst: &dst,
            rate,
            a,
            b,
        };
        block(&frame, learn)
    });
}

/// The upstream gradient of each step's spikes for one block.
pub(crate) struct StepGrads<'a, T> {
    g: Option<&'a [T]>,
    per_step: bool,
    /// A rate's g/T, or zeros when only the final state has a gradient.
    scaled: Vec<T>,
    n: usize,
    a: usize,
    b: usize,
}

impl<T: Real> StepGrads<'_, T> {
    /// dL/dS_t of the block's neurons.
    #[inline]
    pub(crate) fn at(&self, t: usize) -> &[T] {
        match self.g {
            Some(g) if self.per_step => &g[t * self.n + self.a..t * self.n + self.b],
            _ => &self.scaled,
        }
    }
}

impl<'a, T: Real> Frame<'a, T> {
    /// Neurons in the block.
    pub(crate) fn width(&self) -> usize {
        self.b - self.a
    }

    /// Part `k` of the final state's gradient for the block (where the carries start), zero
    /// without one.
    pub(crate) fn state_grad(&self, k: usize) -> Vec<T> {
        let (n, a, b) = (self.inp.n, self.a, self.b);
        match self.up.g_state {
            Some(g) => g[k * n + a..k * n + b].to_vec(),
            None => vec![T::zero(); b - a],
        }
    }

    /// The upstream gradient of every step.
    pub(crate) fn step_grads(&self) -> StepGrads<'a, T> {
        let (w, steps) = (self.width(), self.inp.steps);
        let per_step = self.up.g_main.is_some() && !self.rate;
        let mut scaled = vec![T::zero(); if per_step { 0 } else { w }];
        if let (true, Some(g)) = (self.rate, self.up.g_main) {
            let inv_t = T::from_f64(1.0 / steps as f64);
            for (sj, &gj) in scaled.iter_mut().zip(&g[self.a..self.b]) {
                *sj = gj * inv_t;
            }
        }
        StepGrads {
            g: self.up.g_main,
            per_step,
            scaled,
            n: self.inp.n,
            a: self.a,
            b: self.b,
        }
    }

    /// The block's row of dL/dx for step `t`.
    ///
    /// # Safety
    /// No other slice of the same row is alive (each row of a block is written once per
    /// backward; other blocks own other neurons).
    // A mutable slice from a shared frame is the point: blocks write disjoint neurons through
    // one shared pointer, as `SyncPtr::slice` does.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn dcur_row(&self, t: usize) -> &mut [T] {
        // SAFETY: row t, neurons [a, b) belong to this block only; the caller holds no other.
        unsafe { self.dst.dcur.slice(t * self.inp.n + self.a, self.width()) }
    }

    /// Writes what the block leaves: a constant current's summed gradient (`acc`, when the
    /// current is constant), the initial state's gradient (`carries`, one part per state tensor,
    /// when a state was given) and the per-neuron parameter parts (`dpar`: [α | β | θ] of `w`
    /// each, when the parameters are learned).
    pub(crate) fn finish(&self, acc: Option<&[T]>, carries: &[&[T]], dpar: &[T]) {
        let (n, a, w) = (self.inp.n, self.a, self.width());
        if let Some(acc) = acc {
            // SAFETY: neurons [a, b) belong to this block only.
            unsafe { self.dst.dcur.slice(a, w) }.copy_from_slice(acc);
        }
        if let Some(d) = &self.dst.dstate0 {
            for (k, part) in carries.iter().enumerate() {
                // SAFETY: neurons [a, b) of each part belong to this block only.
                unsafe { d.slice(k * n + a, w) }.copy_from_slice(part);
            }
        }
        if let (Some(d), true) = (&self.dst.dparams, w > 0) {
            for (p, part) in dpar.chunks_exact(w).enumerate() {
                // SAFETY: neurons [a, b) of each third belong to this block only.
                unsafe { d.slice(p * n + a, w) }.copy_from_slice(part);
            }
        }
    }
}
