//! A batch's loss and metrics: Smooth-L1 with MSE and MAE over the valid elements
//! (regression), cross-entropy with accuracy (classification).

use super::{SeqInput, SeqLoss, SequenceModel, Targets};
use crate::error::Result;
use crate::model::loss::{self, length_mask};
use candle_core::{DType, Tensor};

impl SequenceModel {
    /// The loss of the head's output `out` (with its graph) against checked targets.
    pub(super) fn score(
        &self,
        out: &Tensor,
        x: &Tensor,
        input: &SeqInput,
        targets: &Targets,
    ) -> Result<SeqLoss> {
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        match targets {
            Targets::Values(y) => {
                let (b, l, _) = x.dims3()?;
                let mask = match &input.lengths {
                    Some(n) => length_mask(n, l, out.dtype(), out.device())?,
                    None => None,
                };
                let y = y.to_dtype(out.dtype())?;
                let objective = loss::smooth_l1(out, &y, mask.as_ref())?;
                let (pred, mask) = (out.detach(), mask.as_ref());
                let valid = match &input.lengths {
                    Some(n) => n.iter().sum::<usize>(),
                    None => b * l,
                };
                Ok(SeqLoss {
                    loss: scalar(&objective)?,
                    metrics: (
                        scalar(&loss::mse(&pred, &y, mask)?)?,
                        scalar(&loss::mae(&pred, &y, mask)?)?,
                    ),
                    weight: (valid * self.cfg.output_dim) as f64,
                    objective,
                })
            }
            Targets::Classes(c) => {
                let terms = crate::fused::cross_entropy_terms(out, c)?;
                let nll = terms.get(0)?;
                let eps = self.cfg.label_smoothing;
                let objective = if eps > 0.0 {
                    ((&nll * (1.0 - eps))? + (terms.get(1)? * eps)?)?
                } else {
                    nll.clone()
                };
                Ok(SeqLoss {
                    loss: scalar(&nll)?,
                    metrics: (loss::accuracy(&out.detach(), c)?, 0.0),
                    weight: out.dim(0)? as f64,
                    objective,
                })
            }
        }
    }
}
