//! The sizes of one call of the CfC stack op and where each layer's weights sit in the packed
//! parameter operand (design §2.3.2).

use crate::cfc::CfcMode;
use std::ops::Range;

/// One layer's sizes: input width, hidden units, backbone width and depth (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerDims {
    pub input: usize,
    pub hidden: usize,
    pub units: usize,
    pub depth: usize,
}

/// How a step's time span enters: a constant (folded into the gate's weights for the gated
/// modes) or one per row and step (the driving input's last column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Span {
    Constant(f64),
    PerStep,
}

/// One layer's place in the operands.
#[derive(Debug, Clone)]
pub(crate) struct LayerLayout {
    pub dims: LayerDims,
    /// Width of the layer's first linear map (the backbone's first layer, or the head).
    pub first: usize,
    /// Width of the head: 3H (gated, constant span), 4H (gated, per-step spans), H (pure).
    pub head: usize,
    /// The layer's columns in the packed state and in the output.
    pub state: Range<usize>,
    /// W_inᵀ [input × first] (layers after the first; the first layer's is outside the op).
    pub w_in_t: Range<usize>,
    /// W_recᵀ [hidden × first].
    pub w_rec_t: Range<usize>,
    /// b_in [first] (layers after the first).
    pub b_in: Range<usize>,
    /// Deeper backbone layers: Wᵀ [units × units], b [units].
    pub deep: Vec<(Range<usize>, Range<usize>)>,
    /// W_headᵀ [units × head] and b_head [head] (with a backbone).
    pub w_head_t: Range<usize>,
    pub b_head: Range<usize>,
    /// Pure mode's w_tau [hidden] and A [hidden].
    pub w_tau: Range<usize>,
    pub a: Range<usize>,
}

impl LayerLayout {
    /// Whether the head is the first map (no backbone).
    pub fn headless(&self) -> bool {
        self.dims.depth == 0
    }
}

/// Sizes of one call and the layout of its operands.
#[derive(Debug, Clone)]
pub(crate) struct StackLayout {
    pub b: usize,
    pub l: usize,
    pub mode: CfcMode,
    pub span: Span,
    pub layers: Vec<LayerLayout>,
    /// Σ hidden: the width of the state and of the output.
    pub state: usize,
    /// The driving input's row width: the first layer's first-map width, +1 for per-step spans.
    pub drive: usize,
    /// Elements of the packed parameters.
    pub packed: usize,
}

/// The head width of `hidden` units in `mode` with `span`.
pub(crate) fn head_width(mode: CfcMode, span: Span, hidden: usize) -> usize {
    match (mode, span) {
        (CfcMode::Pure, _) => hidden,
        (_, Span::PerStep) => 4 * hidden,
        _ => 3 * hidden,
    }
}

impl StackLayout {
    /// The layout of `layers` (layer l's input is layer l − 1's hidden state).
    pub fn new(b: usize, l: usize, mode: CfcMode, span: Span, dims: &[LayerDims]) -> Self {
        let mut at = 0usize;
        let mut take = |n: usize| {
            let r = at..at + n;
            at += n;
            r
        };
        let mut layers = Vec::with_capacity(dims.len());
        let mut col = 0;
        for (li, &d) in dims.iter().enumerate() {
            let head = head_width(mode, span, d.hidden);
            let first = if d.depth > 0 { d.units } else { head };
            let w_in_t = if li > 0 {
                take(d.input * first)
            } else {
                take(0)
            };
            let w_rec_t = take(d.hidden * first);
            let b_in = if li > 0 { take(first) } else { take(0) };
            let deep = (1..d.depth.max(1))
                .map(|_| (take(d.units * d.units), take(d.units)))
                .collect();
            let (w_head_t, b_head) = if d.depth > 0 {
                (take(d.units * head), take(head))
            } else {
                (take(0), take(0))
            };
            let (w_tau, a) = if mode == CfcMode::Pure {
                (take(d.hidden), take(d.hidden))
            } else {
                (take(0), take(0))
            };
            layers.push(LayerLayout {
                dims: d,
                first,
                head,
                state: col..col + d.hidden,
                w_in_t,
                w_rec_t,
                b_in,
                deep,
                w_head_t,
                b_head,
                w_tau,
                a,
            });
            col += d.hidden;
        }
        let drive = layers[0].first + usize::from(span == Span::PerStep);
        StackLayout {
            b,
            l,
            mode,
            span,
            layers,
            state: col,
            drive,
            packed: at,
        }
    }

    /// The time span of row `r` at step `t`.
    #[inline(always)]
    pub fn span_at<T: crate::kernel::Real>(&self, drive: &[T], r: usize, t: usize) -> T {
        match self.span {
            Span::Constant(ts) => T::from_f64(ts),
            Span::PerStep => drive[(r * self.l + t) * self.drive + self.drive - 1],
        }
    }
}
