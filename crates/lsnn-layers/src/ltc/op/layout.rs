//! The sizes of one call of the LTC op and where each parameter sits in the packed operand
//! (design §2.14.2).

use std::ops::Range;

/// Sizes of one call and the layout of its packed parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LtcLayout {
    /// Rows.
    pub b: usize,
    /// Steps.
    pub l: usize,
    /// Sensory inputs.
    pub i: usize,
    /// Neurons.
    pub n: usize,
    /// Solver steps per time step.
    pub unfolds: usize,
    /// ε of the update's denominator.
    pub epsilon: f64,
    /// The elapsed time of one unfold, ts / unfolds (cm_t = cm / this).
    pub dt: f64,
    /// gleak⁺ `[N]`.
    pub gleak: Range<usize>,
    /// vleak `[N]`.
    pub vleak: Range<usize>,
    /// cm⁺ `[N]`.
    pub cm: Range<usize>,
    /// sigma [N, N] (pre, post).
    pub sigma: Range<usize>,
    /// mu [N, N].
    pub mu: Range<usize>,
    /// w⁺·mask [N, N].
    pub w: Range<usize>,
    /// erev [N, N].
    pub erev: Range<usize>,
    /// sensory_sigma [I, N].
    pub s_sigma: Range<usize>,
    /// sensory_mu [I, N].
    pub s_mu: Range<usize>,
    /// sensory_w⁺·sensory_mask [I, N].
    pub s_w: Range<usize>,
    /// sensory_erev [I, N].
    pub s_erev: Range<usize>,
    /// Elements of the packed parameters.
    pub packed: usize,
}

impl LtcLayout {
    /// The layout for `b` rows of `l` steps, `i` inputs, `n` neurons.
    pub fn new(b: usize, l: usize, i: usize, n: usize, unfolds: usize, eps: f64, ts: f64) -> Self {
        let mut at = 0;
        let mut take = |len: usize| {
            let r = at..at + len;
            at += len;
            r
        };
        let (gleak, vleak, cm) = (take(n), take(n), take(n));
        let (sigma, mu, w, erev) = (take(n * n), take(n * n), take(n * n), take(n * n));
        let (s_sigma, s_mu, s_w, s_erev) = (take(i * n), take(i * n), take(i * n), take(i * n));
        LtcLayout {
            b,
            l,
            i,
            n,
            unfolds,
            epsilon: eps,
            dt: ts / unfolds as f64,
            gleak,
            vleak,
            cm,
            sigma,
            mu,
            w,
            erev,
            s_sigma,
            s_mu,
            s_w,
            s_erev,
            packed: at,
        }
    }

    /// The work of one row over the sequence, in sigmoid evaluations (what threading decides by).
    pub fn row_work(&self) -> usize {
        self.l * (self.i * self.n + self.unfolds * self.n * self.n)
    }
}

/// The parameters of one call as slices of the packed operand.
pub(crate) struct Params<'a, T> {
    pub gleak: &'a [T],
    pub vleak: &'a [T],
    pub cm: &'a [T],
    pub sigma: &'a [T],
    pub mu: &'a [T],
    pub w: &'a [T],
    pub erev: &'a [T],
    pub s_sigma: &'a [T],
    pub s_mu: &'a [T],
    pub s_w: &'a [T],
    pub s_erev: &'a [T],
}

impl<'a, T> Params<'a, T> {
    pub fn new(ly: &LtcLayout, p: &'a [T]) -> Self {
        Params {
            gleak: &p[ly.gleak.clone()],
            vleak: &p[ly.vleak.clone()],
            cm: &p[ly.cm.clone()],
            sigma: &p[ly.sigma.clone()],
            mu: &p[ly.mu.clone()],
            w: &p[ly.w.clone()],
            erev: &p[ly.erev.clone()],
            s_sigma: &p[ly.s_sigma.clone()],
            s_mu: &p[ly.s_mu.clone()],
            s_w: &p[ly.s_w.clone()],
            s_erev: &p[ly.s_erev.clone()],
        }
    }
}
