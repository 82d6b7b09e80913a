//! Validation metrics: the model's metrics averaged over the validation examples (batched,
//! evaluation mode, rows as weights), the derived ones, the data's own, and the spiking layers'
//! firing.

use super::{EvalResult, Trainer};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::model::TrainModel;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

/// Evaluates `model` on every validation example of `data`, `batch_size` at a time, and the
/// data's own metrics with at most `extra_budget` examples.
pub fn evaluate_model<M: TrainModel, D: Dataset<M>>(
    model: &M,
    data: &D,
    batch_size: usize,
    extra_budget: usize,
    device: &Device,
) -> Result<EvalResult> {
    evaluate_with_firing(model, data, batch_size, extra_budget, device, false)
}

/// [`evaluate_model`], with the model's spike statistics ([`TrainModel::layer_stats`]) merged
/// over every validation batch when `firing` is set (design §10.3).
pub fn evaluate_with_firing<M: TrainModel, D: Dataset<M>>(
    model: &M,
    data: &D,
    batch_size: usize,
    extra_budget: usize,
    device: &Device,
    firing: bool,
) -> Result<EvalResult> {
    let names = model.metric_names();
    let mut sums = vec![0f64; names.len()];
    let n = data.val_len();
    let bsz = batch_size.max(1);
    let mut count = 0usize;
    let mut weight = 0f64;
    let mut layer_stats = Vec::new();
    let mut i = 0;
    while i < n {
        let end = (i + bsz).min(n);
        let idx: Vec<u32> = (i as u32..end as u32).collect();
        let batch = data.val_batch(&idx, device)?;
        let rows = M::batch_rows(&batch);
        let w = M::batch_weight(&batch);
        let values = if firing {
            let (values, stats) = model.eval_batch_with_stats(&batch)?;
            lsnn_layers::firing::merge_all(&mut layer_stats, stats)?;
            values
        } else {
            model.eval_batch(&batch)?
        };
        if values.len() != names.len() {
            return Err(crate::TrainError::Config {
                field: "eval_batch".into(),
                message: format!(
                    "{} values for the {} metrics {names:?}",
                    values.len(),
                    names.len()
                ),
            });
        }
        for (s, v) in sums.iter_mut().zip(values) {
            *s += v * w;
        }
        count += rows;
        weight += w;
        i = end;
    }
    let mut metrics: Vec<(String, f64)> = names
        .into_iter()
        .zip(sums)
        .map(|(n, s)| (n, if weight > 0.0 { s / weight } else { s }))
        .collect();
    let derived = model.derived_metrics(&metrics);
    metrics.extend(derived);
    metrics.extend(data.extra_metrics(model, extra_budget)?);
    Ok(EvalResult {
        metrics,
        examples: count,
        firing: layer_stats,
    })
}

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// The validation metrics in evaluation mode, with the EMA weights when the options ask.
    pub fn evaluate(&self) -> Result<EvalResult> {
        let ema_model = self.evaluated_model()?;
        self.evaluate_by(ema_model.as_ref().unwrap_or(&self.model))
    }

    fn evaluate_by(&self, model: &M) -> Result<EvalResult> {
        evaluate_with_firing(
            model,
            &self.data,
            self.cfg.train.batch_size,
            self.opts.extra_metric_budget,
            &self.device,
            self.cfg.train.spike_stats,
        )
    }

    /// An epoch end's evaluation ([`Self::evaluate`]) and, when it measured the spiking
    /// layers, their spike trains on the first validation example by the same weights (design
    /// §10.6): a diagnostic, so its failure is returned beside the evaluation, not instead.
    pub(crate) fn evaluate_epoch_end(
        &self,
    ) -> Result<(EvalResult, Result<Vec<lsnn_layers::Raster>>)> {
        let ema_model = self.evaluated_model()?;
        let model = ema_model.as_ref().unwrap_or(&self.model);
        let eval = self.evaluate_by(model)?;
        let rasters = match eval.firing.is_empty() || self.data.val_len() == 0 {
            true => Ok(Vec::new()),
            false => self
                .data
                .val_batch(&[0], &self.device)
                .and_then(|batch| model.spike_rasters(&batch)),
        };
        Ok((eval, rasters))
    }

    /// The model of the EMA weights when the run evaluates with them (`None`: the model).
    fn evaluated_model(&self) -> Result<Option<M>> {
        if !self.opts.eval_with_ema {
            return Ok(None);
        }
        let tensors = self
            .ema
            .weights()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Some(M::build(
            &self.cfg.model,
            VarBuilder::from_tensors(tensors, DType::F32, &self.device),
        )?))
    }
}
