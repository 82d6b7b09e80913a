//! Streaming: one position at a time, equal to the sequence call position by position.

use super::SequenceModel;
use crate::error::{LayerError, Result};
use crate::model::task::{Readout, Task};
use crate::model::trunk::TrunkState;
use candle_core::{Module, Tensor};

/// Streaming state: position, the stack's state and, for a mean readout, the running sum.
#[derive(Debug, Clone)]
pub struct SeqState {
    position: usize,
    trunk: TrunkState,
    sum: Option<Tensor>,
}

impl SeqState {
    /// Positions consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl SequenceModel {
    /// A fresh streaming state for `batch` rows whose attention caches hold `capacity`
    /// positions.
    pub fn new_state(&self, batch: usize, capacity: usize) -> Result<SeqState> {
        let dt = self.in_proj.weight().dtype();
        Ok(SeqState {
            position: 0,
            trunk: self.trunk.new_state(batch, capacity, dt, self.device())?,
            sum: None,
        })
    }

    /// One position per row, features x_t `[B, F]` (and this position's spans `[B]`) → the
    /// regression prediction [B, F_out], or the classifier's logits [B, C] for the sequence so
    /// far; evaluation mode, equal to the sequence call position by position.
    pub fn step(&self, x: &Tensor, span: Option<&Tensor>, state: &mut SeqState) -> Result<Tensor> {
        let f = self.cfg.input_dim;
        if x.rank() != 2 || x.dim(1)? != f || !x.dtype().is_float() {
            return Err(LayerError::Shape {
                what: "step features",
                expected: format!("floating-point [B, {f}]"),
                actual: x.dims().to_vec(),
            });
        }
        crate::nn::check_finite(x, "step features")?;
        let b = x.dim(0)?;
        if let Some(s) = span {
            if s.dims() != [b] && s.dims() != [b, 1] {
                return Err(LayerError::Shape {
                    what: "step time spans",
                    expected: format!("[{b}] (one per row)"),
                    actual: s.dims().to_vec(),
                });
            }
            crate::nn::check_finite(s, "step time spans")?;
        }
        let h = self.in_proj.forward(x)?;
        let h = self.trunk.step(&h, span, &mut state.trunk)?;
        state.position += 1;
        match (self.task, self.cfg.readout()) {
            (Task::Classification, Readout::Mean) => {
                let sum = match state.sum.take() {
                    None => h,
                    Some(s) => (s + h)?,
                };
                let mean = (&sum / state.position as f64)?;
                state.sum = Some(sum);
                Ok(self.head.forward(&mean)?.detach())
            }
            _ => Ok(self.head.forward(&h)?.detach()),
        }
    }
}
