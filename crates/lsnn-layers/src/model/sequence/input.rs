//! What a sequence model takes and gives: a batch's inputs, its targets, its loss and metrics.

use crate::error::Result;
use candle_core::Tensor;

/// A batch's inputs: features [B, L, F] (a classifier also takes [B, F], one position), and
/// optionally a time span per row and position [B, L] and each row's valid length (right
/// padding).
#[derive(Debug, Clone)]
pub struct SeqInput {
    /// Features [B, L, F] (or [B, F] for a classifier).
    pub x: Tensor,
    /// Time spans [B, L] for the CfC (irregular sampling); the config's constant span when
    /// `None`.
    pub spans: Option<Tensor>,
    /// Each row's valid length, 1..=L; every row whole when `None`.
    pub lengths: Option<Vec<usize>>,
}

impl SeqInput {
    /// Whole rows at the constant span.
    pub fn new(x: Tensor) -> Self {
        SeqInput {
            x,
            spans: None,
            lengths: None,
        }
    }

    /// With time spans [B, L].
    pub fn with_spans(mut self, spans: Tensor) -> Self {
        self.spans = Some(spans);
        self
    }

    /// With each row's valid length.
    pub fn with_lengths(mut self, lengths: Vec<usize>) -> Self {
        self.lengths = Some(lengths);
        self
    }

    /// Rows B.
    pub fn rows(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
    }

    /// Rows `start..start + len` as an input of their own.
    pub fn rows_part(&self, start: usize, len: usize) -> Result<SeqInput> {
        Ok(SeqInput {
            x: self.x.narrow(0, start, len)?,
            spans: self
                .spans
                .as_ref()
                .map(|s| s.narrow(0, start, len))
                .transpose()?,
            lengths: self
                .lengths
                .as_ref()
                .map(|l| l[start..start + len].to_vec()),
        })
    }
}

/// What a batch is scored against.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Regression targets [B, L, F_out].
    Values(Tensor),
    /// Class ids `[B]` (integer).
    Classes(Tensor),
}

impl Targets {
    /// Rows `start..start + len`.
    pub fn rows_part(&self, start: usize, len: usize) -> Result<Targets> {
        Ok(match self {
            Targets::Values(t) => Targets::Values(t.narrow(0, start, len)?),
            Targets::Classes(t) => Targets::Classes(t.narrow(0, start, len)?),
        })
    }
}

/// A batch's loss and metrics.
#[derive(Debug, Clone)]
pub struct SeqLoss {
    /// The training objective (label-smoothed cross-entropy for a classifier when the config
    /// smooths), a scalar with its graph.
    pub objective: Tensor,
    /// The reported loss (Smooth-L1, or the unsmoothed cross-entropy), detached.
    pub loss: f64,
    /// Regression: (MSE, MAE) over the valid elements; classification: (accuracy, 0).
    pub metrics: (f64, f64),
    /// What the loss is a mean over: valid elements (regression) or rows (classification).
    pub weight: f64,
}
