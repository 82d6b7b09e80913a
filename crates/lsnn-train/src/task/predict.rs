//! A trained sequence model on new data: a file's inputs read and normalised as the run's
//! training data was, predictions in batches ([`LoadedSequence::predict`]) or one position at
//! a time with the recurrent state ([`LoadedSequence::predict_streaming`], equal to the batched
//! call), and the evaluation data of another file.

use crate::data::arrays::{read_arrays, Array, ElemType, Elems};
use crate::data::sequence::{
    batch_of, read_file, read_split, SeqDescription, SeqSource, SequenceData, Split, SplitSpec,
};
use crate::error::{Result, TrainError};
use crate::inference::load_trained;
use crate::RunConfig;
use candle_core::{DType, Device, Tensor};
use lsnn_layers::{Mode, ModelConfig, SequenceModel, Task};
use std::path::Path;

/// A sequence model loaded from a run for inference.
#[derive(Debug)]
pub struct LoadedSequence {
    /// The model, its parameters detached.
    pub model: SequenceModel,
    /// The run's configuration.
    pub config: RunConfig<ModelConfig>,
    /// What the run recorded of its data: the normalisation, widths, time spans.
    pub description: SeqDescription,
    /// The checkpoint.
    pub checkpoint: crate::checkpoint::LoadedCheckpoint,
    /// The device the model is on.
    pub device: Device,
}

/// Predictions of a file's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Regression: [N, L, F_out] with NaN at padded positions; classification: logits [N, C].
    pub values: Array,
    /// Classification: the arg-max class of each row `[N]`.
    pub classes: Option<Array>,
    /// The rows' valid lengths `[N]`, when the input had padding.
    pub lengths: Option<Array>,
}

impl Prediction {
    /// The arrays to write (`y_pred`, and `logits` + `lengths` where they apply).
    pub fn arrays(&self) -> Vec<(&str, &Array)> {
        let mut out = Vec::new();
        match &self.classes {
            Some(c) => {
                out.push(("y_pred", c));
                out.push(("logits", &self.values));
            }
            None => out.push(("y_pred", &self.values)),
        }
        if let Some(l) = &self.lengths {
            out.push(("lengths", l));
        }
        out
    }
}

/// Loads the current set of `dir`, which must be a sequence task's run.
pub fn load_sequence(dir: &Path, ema: bool, device: Option<&str>) -> Result<LoadedSequence> {
    let t = load_trained::<SequenceModel>(dir, ema, device)?;
    let description: SeqDescription =
        serde_json::from_value(t.state.data_source.clone()).map_err(|e| {
            TrainError::ckpt(
                &t.checkpoint.dir,
                format!("its data description is not a sequence task's: {e}"),
            )
        })?;
    Ok(LoadedSequence {
        model: t.model.detached(),
        config: t.config,
        description,
        checkpoint: t.checkpoint,
        device: t.device,
    })
}

fn data_error(path: &Path, message: String) -> TrainError {
    TrainError::Data {
        path: path.to_path_buf(),
        message,
    }
}

impl LoadedSequence {
    /// The task.
    pub fn task(&self) -> Task {
        self.model.task()
    }

    /// Checks a split's widths and time spans against the run's, and normalises it (and, for a
    /// spike-encoded run, that every row encodes).
    fn prepare(&self, path: &Path, mut split: Split, x_name: &str) -> Result<Split> {
        let d = &self.description;
        if split.f != d.features {
            return Err(data_error(
                path,
                format!(
                    "array {x_name:?} has {} features per position; the model was trained on {}",
                    split.f, d.features
                ),
            ));
        }
        match (split.spans.is_some(), d.spans) {
            (false, true) => {
                return Err(data_error(
                    path,
                    "no time spans (dt); the model was trained with them, expected dt [N, L]"
                        .into(),
                ))
            }
            (true, false) => {
                return Err(data_error(
                    path,
                    "time spans (dt) given; the model was trained without them, expected none"
                        .into(),
                ))
            }
            _ => {}
        }
        split.normalize(&d.normalization);
        if let Some(e) = &d.encoding {
            e.check(&split, self.task(), x_name)
                .map_err(|m| data_error(path, m))?;
        }
        Ok(split)
    }

    /// The inputs of a file to predict: `x` and, where the run had them, `dt`, with `lengths`
    /// or `mask` for padding (targets and validation arrays may be present and are not read).
    pub fn read_inputs(&self, path: &Path) -> Result<Split> {
        let bytes = read_file(path)?;
        let arrays = read_arrays(&bytes).map_err(|e| data_error(path, e.to_string()))?;
        crate::data::sequence::check_names(&arrays).map_err(|m| data_error(path, m))?;
        let spec = SplitSpec {
            task: self.task(),
            suffix: "",
            targets: false,
        };
        let mut split = read_split(&arrays, spec)
            .map_err(|m| data_error(path, m))?
            .ok_or_else(|| {
                data_error(path, "array \"x\" is missing; expected the features".into())
            })?;
        split.y = None;
        self.prepare(path, split, "x")
    }

    /// The evaluation data of a file: its `x_val`/`y_val` when it has them, else `x`/`y`,
    /// normalised as the run's data; its baselines are computed from its own targets (the mean
    /// and majority of the evaluated rows).
    pub fn evaluation_data(&self, path: &Path) -> Result<SequenceData> {
        let bytes = read_file(path)?;
        let arrays = read_arrays(&bytes).map_err(|e| data_error(path, e.to_string()))?;
        crate::data::sequence::check_names(&arrays).map_err(|m| data_error(path, m))?;
        let suffix = if arrays.contains_key("x_val") {
            "_val"
        } else {
            ""
        };
        let spec = SplitSpec {
            task: self.task(),
            suffix,
            targets: true,
        };
        let split = read_split(&arrays, spec)
            .map_err(|m| data_error(path, m))?
            .ok_or_else(|| {
                data_error(path, "array \"x\" is missing; expected the features".into())
            })?;
        let x_name = format!("x{suffix}");
        let split = self.prepare(path, split, &x_name)?;
        let source = SeqSource::File {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            sha256: crate::checkpoint::manifest::sha256_hex(&bytes),
            task: self.task().name().into(),
            split_seed: 0,
            shuffle_time: false,
            classes: Some(self.description.outputs),
        };
        SequenceData::for_evaluation(
            self.task(),
            split,
            self.description.outputs,
            &self.description.normalization,
            source,
            self.description.encoding,
        )
        .map_err(|m| data_error(path, m))
    }

    /// Predictions of a prepared split ([`Self::read_inputs`]), `batch` rows at a time, in
    /// evaluation mode.
    pub fn predict(&self, split: &Split, batch: usize) -> Result<Prediction> {
        let mut values = Vec::new();
        for rows in row_chunks(split.n, batch) {
            let (input, _) = batch_of(
                split,
                &rows,
                &self.device,
                self.description.encoding.as_ref(),
            )?;
            let out = self.model.forward(&input, &mut Mode::Eval)?;
            values.extend(out.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(self.assemble(split, values))
    }

    /// The same predictions one position at a time, every row's recurrent state and attention
    /// caches carried from step to step ([`SequenceModel::step`]); a classifier's logits are
    /// those after each row's last valid position.
    pub fn predict_streaming(&self, split: &Split, batch: usize) -> Result<Prediction> {
        let f = split.f;
        let width = self.description.outputs;
        let mut values = Vec::new();
        for rows in row_chunks(split.n, batch) {
            let mut part = split.select(&rows);
            if let Some(e) = &self.description.encoding {
                part = e.encode(&part)?;
            }
            // A spike-encoded static row streams its T encoded positions.
            let l = part.l;
            let b = rows.len();
            let x = Tensor::from_vec(part.x.clone(), (b, l, f), &self.device)?;
            let spans = part
                .spans
                .as_ref()
                .map(|s| Tensor::from_vec(s.clone(), (b, l), &self.device))
                .transpose()?;
            let mut state = self.model.new_state(b, l)?;
            let mut chunk = vec![0f32; b * l * width];
            for t in 0..l {
                let xt = x.narrow(1, t, 1)?.squeeze(1)?;
                let st = spans
                    .as_ref()
                    .map(|s| s.narrow(1, t, 1)?.squeeze(1))
                    .transpose()?;
                let out = self.model.step(&xt, st.as_ref(), &mut state)?;
                let out = out.to_dtype(DType::F32)?.to_vec2::<f32>()?;
                for (r, row) in out.iter().enumerate() {
                    match self.task() {
                        Task::Classification => {
                            if t + 1 == part.len_of(r) {
                                chunk[r * width..(r + 1) * width].copy_from_slice(row);
                            }
                        }
                        _ => {
                            chunk[(r * l + t) * width..(r * l + t + 1) * width].copy_from_slice(row)
                        }
                    }
                }
            }
            if self.task() == Task::Classification {
                chunk.truncate(b * width);
            }
            values.extend(chunk);
        }
        Ok(self.assemble(split, values))
    }

    /// The outputs as arrays: padded positions NaN, a classifier's arg-max beside its logits.
    fn assemble(&self, split: &Split, mut values: Vec<f32>) -> Prediction {
        let (n, l) = (split.n, split.l);
        let width = self.description.outputs;
        let lengths = split.lengths.as_ref().map(|v| Array {
            dtype: ElemType::I64,
            shape: vec![n],
            elems: Elems::I64(v.iter().map(|&x| x as i64).collect()),
        });
        match self.task() {
            Task::Classification => {
                let classes: Vec<i64> = values
                    .chunks(width)
                    .map(|row| {
                        row.iter()
                            .enumerate()
                            .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                                if v > best.1 {
                                    (i, v)
                                } else {
                                    best
                                }
                            })
                            .0 as i64
                    })
                    .collect();
                Prediction {
                    values: Array {
                        dtype: ElemType::F32,
                        shape: vec![n, width],
                        elems: Elems::F32(values),
                    },
                    classes: Some(Array {
                        dtype: ElemType::I64,
                        shape: vec![n],
                        elems: Elems::I64(classes),
                    }),
                    lengths,
                }
            }
            _ => {
                for r in 0..n {
                    for t in split.len_of(r)..l {
                        values[(r * l + t) * width..(r * l + t + 1) * width].fill(f32::NAN);
                    }
                }
                Prediction {
                    values: Array {
                        dtype: ElemType::F32,
                        shape: vec![n, l, width],
                        elems: Elems::F32(values),
                    },
                    classes: None,
                    lengths,
                }
            }
        }
    }
}

/// `0..n` in consecutive chunks of at most `batch` rows.
fn row_chunks(n: usize, batch: usize) -> Vec<Vec<usize>> {
    let b = batch.max(1);
    (0..n)
        .step_by(b)
        .map(|s| (s..(s + b).min(n)).collect())
        .collect()
}
