//! The checks of a batch before any work: features, spans and lengths, and targets of the
//! task's kind and shape (each a typed error naming what was wrong and what was expected).

use super::{SeqInput, SequenceModel, Targets};
use crate::error::{LayerError, Result};
use crate::model::loss;
use crate::model::task::Task;
use candle_core::{DType, Tensor};

impl SequenceModel {
    /// The input's features as [B, L, F] (a classifier's [B, F] as one position), checked: the
    /// width, finite values, spans [B, L] and lengths in 1..=L.
    pub(super) fn checked_x(&self, input: &SeqInput) -> Result<Tensor> {
        let f = self.cfg.input_dim;
        let x = match (self.task, input.x.rank()) {
            (Task::Classification, 2) => input.x.unsqueeze(1)?,
            _ => input.x.clone(),
        };
        let expected = match self.task {
            Task::Classification => format!("[B, L, {f}] or [B, {f}] features"),
            _ => format!("[B, L, {f}] features"),
        };
        if x.rank() != 3 || x.dim(2)? != f || x.dim(0)? == 0 || x.dim(1)? == 0 {
            return Err(LayerError::Shape {
                what: "sequence model input",
                expected,
                actual: input.x.dims().to_vec(),
            });
        }
        if !x.dtype().is_float() {
            return Err(LayerError::Input {
                what: "sequence model input",
                message: format!("dtype {:?}; expected floating-point features", x.dtype()),
            });
        }
        crate::nn::check_finite(&x, "sequence model input")?;
        let (b, l, _) = x.dims3()?;
        if let Some(s) = &input.spans {
            if s.dims() != [b, l] {
                return Err(LayerError::Shape {
                    what: "time spans",
                    expected: format!("[{b}, {l}] (one per row and position)"),
                    actual: s.dims().to_vec(),
                });
            }
            crate::nn::check_finite(s, "time spans")?;
        }
        if let Some(lengths) = &input.lengths {
            if lengths.len() != b {
                return Err(LayerError::Input {
                    what: "sequence lengths",
                    message: format!(
                        "{} lengths for {b} rows; expected one per row",
                        lengths.len()
                    ),
                });
            }
            loss::check_lengths(lengths, l)?;
        }
        Ok(x)
    }

    /// Targets of the task's kind and shape for checked features `x` [B, L, F].
    pub(super) fn check_targets(&self, x: &Tensor, targets: &Targets) -> Result<()> {
        let (b, l, _) = x.dims3()?;
        match (self.task, targets) {
            (Task::Classification, Targets::Classes(c)) => {
                if c.dims() != [b] || c.dtype().is_float() {
                    return Err(LayerError::Shape {
                        what: "class targets",
                        expected: format!("integer class ids [{b}]"),
                        actual: c.dims().to_vec(),
                    });
                }
                let wide = c.to_dtype(DType::I64)?.to_vec1::<i64>()?;
                let classes = self.cfg.output_dim;
                if let Some((row, &bad)) = wide
                    .iter()
                    .enumerate()
                    .find(|(_, &k)| k < 0 || k as usize >= classes)
                {
                    return Err(LayerError::Input {
                        what: "class targets",
                        message: format!(
                            "row {row} has class {bad}; expected 0..{classes} (output_dim)"
                        ),
                    });
                }
            }
            (Task::Regression, Targets::Values(y)) => {
                let o = self.cfg.output_dim;
                if y.dims() != [b, l, o] || !y.dtype().is_float() {
                    return Err(LayerError::Shape {
                        what: "regression targets",
                        expected: format!("floating-point [{b}, {l}, {o}]"),
                        actual: y.dims().to_vec(),
                    });
                }
                crate::nn::check_finite(y, "regression targets")?;
            }
            (task, _) => {
                return Err(LayerError::Input {
                    what: "targets",
                    message: format!(
                        "the wrong kind for task \"{}\"; expected {}",
                        task.name(),
                        match task {
                            Task::Classification => "Targets::Classes",
                            _ => "Targets::Values",
                        }
                    ),
                })
            }
        }
        Ok(())
    }
}
