//! The sequence tasks' data (design §8.4): regression and classification examples from an
//! `.npz` / `.safetensors` file or from a built-in generator ([`super::builtin`]), split into
//! training and validation rows (the file's `x_val`/`y_val`, else a seeded 10%), features
//! normalised by the training split's mean and standard deviation (recorded with the run, and
//! applied to every later input), optionally time-shuffled as a control, optionally spike
//! encoded as batches are built ([`encode`]).

pub mod encode;
mod load;
mod split;

pub use encode::Encoding;
pub use load::{check_names, read_split, SplitSpec, ARRAY_NAMES};
pub use split::{baselines, Normalization, Split, SplitTargets};

use crate::data::arrays::read_arrays;
use crate::error::{Result, TrainError};
use candle_core::{Device, Tensor};
use lsnn_layers::spikegen::SpikeEncoding;
use lsnn_layers::{SeededRng, SeqInput, Targets, Task};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The share of rows held out when a file has no validation arrays.
pub const SEQ_VAL_FRACTION: f64 = 0.1;

/// Where a sequence data set came from: enough to rebuild it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SeqSource {
    /// A built-in generated task ([`super::builtin`]).
    Builtin {
        /// `"regression"` or `"classification"`.
        task: String,
        /// The generator's seed.
        seed: u64,
        /// The time-shuffled control.
        shuffle_time: bool,
    },
    /// An `.npz` or `.safetensors` file.
    File {
        /// Its absolute path.
        path: PathBuf,
        /// SHA-256 of its bytes.
        sha256: String,
        /// The task it was read for.
        task: String,
        /// Seed of the validation split (used when the file has no validation arrays) and of
        /// the time shuffle.
        split_seed: u64,
        /// The time-shuffled control.
        shuffle_time: bool,
        /// The class count the config fixed (None: from the labels).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<usize>,
    },
}

/// What a run records about its sequence data (the `data_source` of its trainer state): the
/// source, and what inference needs without the data — the normalisation, the widths, whether
/// the model takes time spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeqDescription {
    /// Where the data came from.
    pub source: SeqSource,
    /// The training split's feature normalisation.
    pub normalization: Normalization,
    /// Features F.
    pub features: usize,
    /// F_out (regression) or the class count (classification).
    pub outputs: usize,
    /// Whether the data has per-position time spans (`dt`), which every input must then have.
    pub spans: bool,
    /// The spike encoding every input goes through (absent: the features as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

/// A sequence task's data set.
#[derive(Debug, Clone)]
pub struct SequenceData {
    task: Task,
    train: Split,
    val: Split,
    outputs: usize,
    norm: Normalization,
    source: SeqSource,
    baselines: Vec<(String, f64)>,
    encoding: Option<Encoding>,
}

impl SequenceData {
    /// From training and validation splits (unnormalised, targets present): checks that they
    /// agree, computes the baselines and the normalisation, optionally time-shuffles, and
    /// normalises both. With an `encoding` the features are not normalised (the encoder reads
    /// them in the data's own units; the recorded normalisation is the identity) and every row
    /// is checked to encode (errors name the rows as sequences of `x` and `x_val`).
    pub fn from_splits(
        task: Task,
        train: Split,
        val: Split,
        classes: Option<usize>,
        shuffle_seed: Option<u64>,
        source: SeqSource,
        encoding: Option<Encoding>,
    ) -> std::result::Result<Self, String> {
        if let Some(e) = &encoding {
            e.check(&train, task, "x")?;
            e.check(&val, task, "x_val")?;
        }
        Self::assemble(task, train, val, classes, shuffle_seed, source, encoding)
    }

    /// [`SequenceData::from_splits`] of splits whose encoding the caller has checked.
    fn assemble(
        task: Task,
        mut train: Split,
        mut val: Split,
        classes: Option<usize>,
        shuffle_seed: Option<u64>,
        source: SeqSource,
        encoding: Option<Encoding>,
    ) -> std::result::Result<Self, String> {
        if train.f != val.f {
            return Err(format!(
                "x_val has {} features per position, x has {}; expected the same",
                val.f, train.f
            ));
        }
        if train.spans.is_some() != val.spans.is_some() {
            return Err(
                "time spans (dt) given for one split only; expected dt and dt_val both or neither"
                    .into(),
            );
        }
        let outputs = match (&train.y, &val.y) {
            (
                Some(SplitTargets::Values { width: a, .. }),
                Some(SplitTargets::Values { width: b, .. }),
            ) => {
                if a != b {
                    return Err(format!(
                        "y_val has {b} outputs per position, y has {a}; expected the same"
                    ));
                }
                *a
            }
            (Some(SplitTargets::Classes(a)), Some(SplitTargets::Classes(b))) => {
                let seen = a.iter().chain(b).copied().max().unwrap_or(0) as usize + 1;
                match classes {
                    Some(c) => {
                        if let Some((which, r, &bad)) = [("y", a), ("y_val", b)]
                            .iter()
                            .flat_map(|(w, v)| v.iter().enumerate().map(move |(r, k)| (*w, r, k)))
                            .find(|(_, _, &k)| k as usize >= c)
                        {
                            return Err(format!(
                                "array {which:?}: sequence {r} has class {bad}; expected 0..{c} (output_dim)"
                            ));
                        }
                        c
                    }
                    None if seen < 2 => {
                        return Err(format!(
                            "array \"y\": every label is {}; expected at least two classes",
                            seen - 1
                        ))
                    }
                    None => seen,
                }
            }
            _ => return Err("targets missing or of the wrong kind for the task".into()),
        };
        let baselines = baselines(&train, &val);
        let norm = match encoding {
            Some(_) => Normalization::identity(train.f),
            None => train.normalization(),
        };
        if let Some(seed) = shuffle_seed {
            let mut rng = SeededRng::new(seed ^ 0x5EED_71FE);
            train.shuffle_time(&mut rng);
            val.shuffle_time(&mut rng);
        }
        train.normalize(&norm);
        val.normalize(&norm);
        Ok(SequenceData {
            task,
            train,
            val,
            outputs,
            norm,
            source,
            baselines,
            encoding,
        })
    }

    /// Data to evaluate a trained model on: `split` (targets present, unnormalised) as the
    /// validation rows, normalised with the run's `norm` and encoded with its `encoding`,
    /// `outputs` the model's; the baselines come from the split's own targets. No training rows.
    /// The rows are not checked against the encoding here (`Encoding::check` them first, as
    /// `lsnn_train::task::predict` does, to have a bad row refused before any batch).
    pub fn for_evaluation(
        task: Task,
        mut split: Split,
        outputs: usize,
        norm: &Normalization,
        source: SeqSource,
        encoding: Option<Encoding>,
    ) -> std::result::Result<Self, String> {
        match &split.y {
            Some(SplitTargets::Values { width, .. }) if *width != outputs => {
                return Err(format!(
                    "the targets have {width} outputs per position; the model has {outputs}"
                ))
            }
            Some(SplitTargets::Classes(c)) => {
                if let Some((r, &bad)) = c.iter().enumerate().find(|(_, &k)| k as usize >= outputs)
                {
                    return Err(format!(
                        "sequence {r} has class {bad}; the model has {outputs} classes (0..{outputs})"
                    ));
                }
            }
            None => return Err("no targets; expected y (or y_val)".into()),
            _ => {}
        }
        let baselines = baselines(&split, &split);
        split.normalize(norm);
        Ok(SequenceData {
            task,
            train: split.select(&[]),
            val: split,
            outputs,
            norm: norm.clone(),
            source,
            baselines,
            encoding,
        })
    }

    /// The data of an `.npz` or `.safetensors` file for `task`: `x`, `y` and the optional arrays
    /// of [`ARRAY_NAMES`]; without `x_val`, a seeded [`SEQ_VAL_FRACTION`] of the rows is held
    /// out. `classes` fixes a classifier's class count (else the largest label + 1). With
    /// `spike`, batches are spike encoded ([`encode`]; the draws seeded by `split_seed`).
    pub fn from_file(
        path: &Path,
        task: Task,
        split_seed: u64,
        shuffle_time: bool,
        classes: Option<usize>,
        spike: Option<SpikeEncoding>,
    ) -> Result<Self> {
        let bytes = read_file(path)?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self::from_bytes(
            &bytes,
            &path,
            task,
            split_seed,
            shuffle_time,
            classes,
            spike,
        )
    }

    /// [`SequenceData::from_file`] of a file's bytes, read by the caller from `path` (recorded
    /// as the source, with the bytes' hash).
    pub fn from_bytes(
        bytes: &[u8],
        path: &Path,
        task: Task,
        split_seed: u64,
        shuffle_time: bool,
        classes: Option<usize>,
        spike: Option<SpikeEncoding>,
    ) -> Result<Self> {
        let path = path.to_path_buf();
        let source = SeqSource::File {
            path: path.clone(),
            sha256: crate::checkpoint::manifest::sha256_hex(bytes),
            task: task.name().into(),
            split_seed,
            shuffle_time,
            classes,
        };
        let bad = |message: String| TrainError::Data {
            path: path.clone(),
            message,
        };
        let arrays = read_arrays(bytes).map_err(|e| bad(e.to_string()))?;
        load::check_names(&arrays).map_err(bad)?;
        let spec = |suffix| SplitSpec {
            task,
            suffix,
            targets: true,
        };
        let all = read_split(&arrays, spec(""))
            .map_err(bad)?
            .ok_or_else(|| bad("array \"x\" is missing; expected the features".into()))?;
        let encoding = spike.map(|s| Encoding::new(s, split_seed));
        // Checked before the split, so that an error names the file's own sequence.
        if let Some(e) = &encoding {
            e.check(&all, task, "x").map_err(bad)?;
        }
        let (train, val) = match read_split(&arrays, spec("_val")).map_err(bad)? {
            Some(val) => {
                if let Some(e) = &encoding {
                    e.check(&val, task, "x_val").map_err(bad)?;
                }
                (all, val)
            }
            None => {
                if all.n < 2 {
                    return Err(bad(format!(
                        "{} sequence(s) and no x_val; expected at least 2 to hold 10% out",
                        all.n
                    )));
                }
                let mut rows: Vec<u32> = (0..all.n as u32).collect();
                SeededRng::new(split_seed ^ 0x5A11_7000).shuffle(&mut rows);
                let n_val =
                    ((all.n as f64 * SEQ_VAL_FRACTION).round() as usize).clamp(1, all.n - 1);
                let mut val_rows: Vec<usize> = rows[..n_val].iter().map(|&r| r as usize).collect();
                let mut train_rows: Vec<usize> =
                    rows[n_val..].iter().map(|&r| r as usize).collect();
                val_rows.sort_unstable();
                train_rows.sort_unstable();
                (all.select(&train_rows), all.select(&val_rows))
            }
        };
        Self::assemble(
            task,
            train,
            val,
            classes,
            shuffle_time.then_some(split_seed),
            source,
            encoding,
        )
        .map_err(bad)
    }

    /// Rebuilds the data a run recorded ([`SeqDescription`]); a file must still hold the bytes
    /// it held then.
    pub fn from_description(desc: &SeqDescription) -> Result<Self> {
        let spike = desc.encoding.map(|e| e.spike);
        let data = match &desc.source {
            SeqSource::Builtin {
                task,
                seed,
                shuffle_time,
            } => super::builtin::builtin(Task::of(task)?, *seed, *shuffle_time, spike)?,
            SeqSource::File {
                path,
                sha256,
                task,
                split_seed,
                shuffle_time,
                classes,
            } => {
                let d = Self::from_file(
                    path,
                    Task::of(task)?,
                    *split_seed,
                    *shuffle_time,
                    *classes,
                    spike,
                )?;
                if let SeqSource::File { sha256: now, .. } = &d.source {
                    if now != sha256 {
                        return Err(TrainError::Data {
                            path: path.clone(),
                            message: format!(
                                "its SHA-256 is {now}, the run was trained on {sha256}; the file changed since"
                            ),
                        });
                    }
                }
                d
            }
        };
        Ok(data)
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The training split (normalised).
    pub fn train(&self) -> &Split {
        &self.train
    }

    /// The validation split (normalised).
    pub fn val(&self) -> &Split {
        &self.val
    }

    /// Features F.
    pub fn features(&self) -> usize {
        self.train.f
    }

    /// Positions of the model's input: the splits' longest rows, after encoding.
    pub fn positions(&self) -> usize {
        let l = self.train.l.max(self.val.l);
        self.encoding.map_or(l, |e| e.positions(l))
    }

    /// The spike encoding batches go through.
    pub fn encoding(&self) -> Option<&Encoding> {
        self.encoding.as_ref()
    }

    /// F_out (regression) or the class count.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The feature normalisation.
    pub fn normalization(&self) -> &Normalization {
        &self.norm
    }

    /// The source.
    pub fn source(&self) -> &SeqSource {
        &self.source
    }

    /// The trivial baselines of the validation split (`baseline_…` names).
    pub fn baseline_values(&self) -> &[(String, f64)] {
        &self.baselines
    }

    /// What a run records.
    pub fn description(&self) -> SeqDescription {
        SeqDescription {
            source: self.source.clone(),
            normalization: self.norm.clone(),
            features: self.features(),
            outputs: self.outputs,
            spans: self.train.spans.is_some(),
            encoding: self.encoding,
        }
    }
}

/// A data file's bytes, after checking that the machine can hold them.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    let bad = |message: String| TrainError::Data {
        path: path.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if let Ok(free) = lsnn_memory::rss::available_memory_bytes() {
        if meta.len() > free {
            return Err(bad(format!(
                "{} bytes; {free} bytes of memory are available",
                meta.len()
            )));
        }
    }
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    if bytes.is_empty() {
        return Err(bad(
            "empty; expected an .npz or .safetensors file of arrays".into(),
        ));
    }
    Ok(bytes)
}

/// Rows `rows` of `split` as the model's input and targets on `device`, spike encoded when
/// `encoding` is given.
pub fn batch_of(
    split: &Split,
    rows: &[usize],
    device: &Device,
    encoding: Option<&Encoding>,
) -> Result<(SeqInput, Option<Targets>)> {
    let mut part = split.select(rows);
    if let Some(e) = encoding {
        part = e.encode(&part)?;
    }
    let b = rows.len();
    let x = Tensor::from_vec(part.x, (b, part.l, part.f), device)?;
    let mut input = SeqInput::new(x);
    if let Some(s) = part.spans {
        input = input.with_spans(Tensor::from_vec(s, (b, part.l), device)?);
    }
    if let Some(len) = part.lengths {
        input = input.with_lengths(len.iter().map(|&n| n as usize).collect());
    }
    let targets = match part.y {
        None => None,
        Some(SplitTargets::Values { data, width }) => Some(Targets::Values(Tensor::from_vec(
            data,
            (b, part.l, width),
            device,
        )?)),
        Some(SplitTargets::Classes(c)) => Some(Targets::Classes(Tensor::from_vec(c, b, device)?)),
    };
    Ok((input, targets))
}
