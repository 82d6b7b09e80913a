//! lsnn-layers' [`SequenceModel`] as a [`TrainModel`] and [`SequenceData`] as its [`Dataset`]
//! (design §2.9, §8.4): regression reports `val_loss` (Smooth-L1), `val_mse` and `val_mae`,
//! classification `val_loss` (the unsmoothed cross-entropy) and `val_accuracy`; both over the
//! valid positions only, each batch weighted by what it scores.

use crate::data::sequence::{batch_of, SeqDescription, SequenceData};
use crate::dataset::{fnv1a, Dataset};
use crate::error::{Result, TrainError};
use crate::model::{LayerStats, MemoryEstimate, StepLoss, TrainModel};
use crate::RunConfig;
use candle_core::backprop::GradStore;
use candle_core::Device;
use candle_nn::VarBuilder;
use lsnn_layers::{Mode, ModelConfig, SeqInput, SeqLoss, SequenceModel, Targets, Task};

/// A batch of a sequence task: the model's input and its targets.
#[derive(Debug, Clone)]
pub struct SeqBatch {
    /// Features, spans, lengths.
    pub input: SeqInput,
    /// Targets.
    pub targets: Targets,
}

impl SeqBatch {
    /// Valid positions over all rows.
    pub fn valid_positions(&self) -> usize {
        let (b, l) = match self.input.x.dims() {
            [b, l, _] => (*b, *l),
            [b, _] => (*b, 1),
            _ => (0, 0),
        };
        match &self.input.lengths {
            Some(n) => n.iter().sum(),
            None => b * l,
        }
    }
}

/// The memory a model of `cfg` needs at `batch_size` (any task), from the config's numbers.
pub fn memory_estimate_of(cfg: &ModelConfig, batch_size: usize) -> Option<MemoryEstimate> {
    let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    Some(MemoryEstimate {
        parameter_bytes: clamp(cfg.parameter_count().ok()?.saturating_mul(4)),
        step_activation_bytes: clamp(cfg.training_step_bytes(batch_size).ok()?),
    })
}

impl TrainModel for SequenceModel {
    type Config = ModelConfig;
    type Batch = SeqBatch;

    fn build(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(SequenceModel::new(cfg, vb)?)
    }

    /// An LTC cell's clamp of its positive parameters under the explicit constraint.
    fn after_step(&self) -> Result<()> {
        Ok(SequenceModel::apply_weight_constraints(self)?)
    }

    fn memory_estimate(cfg: &ModelConfig, batch_size: usize) -> Option<MemoryEstimate> {
        memory_estimate_of(cfg, batch_size)
    }

    fn loss_and_grads(
        &self,
        batch: &SeqBatch,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(StepLoss, Option<GradStore>)> {
        let (l, grads) =
            SequenceModel::loss_and_grads(self, &batch.input, &batch.targets, mode, scale)?;
        let objective = l
            .objective
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
        Ok((
            StepLoss {
                objective,
                loss: l.loss,
            },
            grads,
        ))
    }

    fn metric_names(&self) -> Vec<String> {
        match self.task() {
            Task::Classification => vec!["val_loss".into(), "val_accuracy".into()],
            _ => vec!["val_loss".into(), "val_mse".into(), "val_mae".into()],
        }
    }

    fn eval_batch(&self, batch: &SeqBatch) -> Result<Vec<f64>> {
        // Detached parameters: no graph is built.
        let (_, l) = self
            .detached()
            .loss(&batch.input, &batch.targets, &mut Mode::Eval)?;
        Ok(metric_values(self.task(), &l))
    }

    fn layer_stats(&self, batch: &SeqBatch) -> Result<Vec<LayerStats>> {
        Ok(self.eval_batch_with_stats(batch)?.1)
    }

    fn spike_rasters(&self, batch: &SeqBatch) -> Result<Vec<lsnn_layers::Raster>> {
        Ok(self.detached().spike_rasters(&batch.input)?)
    }

    fn eval_batch_with_stats(&self, batch: &SeqBatch) -> Result<(Vec<f64>, Vec<LayerStats>)> {
        let (l, firing) = self
            .detached()
            .loss_with_firing(&batch.input, &batch.targets)?;
        Ok((metric_values(self.task(), &l), firing))
    }

    fn batch_rows(batch: &SeqBatch) -> usize {
        batch.input.rows()
    }

    fn batch_part(batch: &SeqBatch, start: usize, len: usize) -> Option<Result<SeqBatch>> {
        let part = || -> Result<SeqBatch> {
            Ok(SeqBatch {
                input: batch.input.rows_part(start, len)?,
                targets: batch.targets.rows_part(start, len)?,
            })
        };
        Some(part())
    }

    fn batch_weight(batch: &SeqBatch) -> f64 {
        match &batch.targets {
            // The regression loss is a mean over valid positions × outputs.
            Targets::Values(y) => {
                (batch.valid_positions() * y.dims().last().copied().unwrap_or(1)) as f64
            }
            Targets::Classes(_) => batch.input.rows() as f64,
        }
    }

    fn batch_items(batch: &SeqBatch) -> u64 {
        batch.valid_positions() as u64
    }
}

fn rows_of(indices: &[u32], len: usize, what: &str) -> Result<Vec<usize>> {
    match indices.iter().find(|&&i| i as usize >= len) {
        Some(bad) => Err(TrainError::Config {
            field: format!("{what} row index"),
            message: format!("{bad}; the data has {len} {what} rows"),
        }),
        None => Ok(indices.iter().map(|&i| i as usize).collect()),
    }
}

fn seq_batch(
    split: &crate::data::sequence::Split,
    rows: &[usize],
    device: &Device,
    encoding: Option<&crate::data::sequence::Encoding>,
) -> Result<SeqBatch> {
    let (input, targets) = batch_of(split, rows, device, encoding)?;
    let targets = targets.ok_or_else(|| TrainError::Config {
        field: "targets".into(),
        message: "the split has no targets; expected y".into(),
    })?;
    Ok(SeqBatch { input, targets })
}

impl Dataset<SequenceModel> for SequenceData {
    fn train_len(&self) -> usize {
        self.train().n
    }

    fn val_len(&self) -> usize {
        self.val().n
    }

    fn train_batch(&self, indices: &[u32], device: &Device) -> Result<SeqBatch> {
        seq_batch(
            self.train(),
            &rows_of(indices, self.train().n, "training")?,
            device,
            self.encoding(),
        )
    }

    fn val_batch(&self, indices: &[u32], device: &Device) -> Result<SeqBatch> {
        seq_batch(
            self.val(),
            &rows_of(indices, self.val().n, "validation")?,
            device,
            self.encoding(),
        )
    }

    fn fingerprint(&self) -> String {
        let tag = match self.task() {
            Task::Classification => 2,
            _ => 1,
        };
        // The encoding's settings count: the same features encoded otherwise are other data.
        let encoding = self
            .encoding()
            .map(|e| serde_json::to_string(e).unwrap_or_default())
            .unwrap_or_default();
        let words = [tag, self.outputs() as u64]
            .into_iter()
            .chain(self.train().words())
            .chain(self.val().words())
            .chain(encoding.bytes().map(u64::from));
        fnv1a(words)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::to_value(self.description()).unwrap_or(serde_json::Value::Null)
    }

    fn check_train(&self, train: &crate::TrainConfig) -> Result<()> {
        let data = self.encoding().map(|e| e.spike);
        if train.spike_encoding != data {
            let show = |e: Option<lsnn_layers::spikegen::SpikeEncoding>| match e {
                Some(e) => serde_json::to_string(&e).unwrap_or_default(),
                None => "none".into(),
            };
            return Err(TrainError::Config {
                field: "spike_encoding".into(),
                message: format!(
                    "{} in the config, {} in the data; expected the same (build the data with \
                     the config's spike_encoding)",
                    show(train.spike_encoding),
                    show(data)
                ),
            });
        }
        Ok(())
    }

    fn check_model(&self, cfg: &ModelConfig) -> Result<()> {
        let task = cfg.task()?;
        if task != self.task() {
            return Err(TrainError::Config {
                field: "task_type".into(),
                message: format!(
                    "\"{}\" but the data is for {}",
                    lsnn_layers::nn::clip(&cfg.task_type),
                    self.task().name()
                ),
            });
        }
        let mismatch = |field: &str, config: usize, data: usize, what: &str| TrainError::Config {
            field: field.into(),
            message: format!("{config} but the data has {data} {what}"),
        };
        if cfg.input_dim != self.features() {
            return Err(mismatch(
                "input_dim",
                cfg.input_dim,
                self.features(),
                "features per position",
            ));
        }
        if cfg.output_dim != self.outputs() {
            let what = match task {
                Task::Classification => "classes",
                _ => "outputs per position",
            };
            return Err(mismatch("output_dim", cfg.output_dim, self.outputs(), what));
        }
        if cfg.liquid_backbone == "ltc" && self.description().spans {
            // Refused here, before the first batch, rather than by the cell at its first step.
            return Err(TrainError::Config {
                field: "liquid_backbone".into(),
                message: "\"ltc\" with data that has per-position time spans (dt); the LTC runs \
                          at one constant elapsed time (cfc_time_span): use \"cfc\" or \"ncp\" \
                          for per-step spans, or data without dt"
                    .into(),
            });
        }
        Ok(())
    }

    fn baseline(&self) -> Option<(String, f64)> {
        let (name, key) = match self.task() {
            Task::Classification => (
                "class-prior baseline (cross-entropy)",
                "baseline_prior_loss",
            ),
            _ => ("mean-predictor baseline (Smooth-L1)", "baseline_mean_loss"),
        };
        self.baseline_values()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| (name.to_string(), *v))
    }

    fn baselines(&self) -> Vec<(String, f64)> {
        self.baseline_values().to_vec()
    }
}

/// The sequence data a run trained on, rebuilt from the description its checkpoint recorded:
/// pass it to [`crate::Trainer::resume`].
pub fn sequence_data(
    _cfg: &RunConfig<ModelConfig>,
    source: &serde_json::Value,
) -> Result<SequenceData> {
    let desc: SeqDescription =
        serde_json::from_value(source.clone()).map_err(|e| TrainError::Config {
            field: "data_source".into(),
            message: format!("{e}; expected a recorded sequence data source"),
        })?;
    SequenceData::from_description(&desc)
}

/// A batch's metric values in [`TrainModel::metric_names`]' order.
fn metric_values(task: Task, l: &SeqLoss) -> Vec<f64> {
    match task {
        Task::Classification => vec![l.loss, l.metrics.0],
        _ => vec![l.loss, l.metrics.0, l.metrics.1],
    }
}
