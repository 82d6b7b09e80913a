//! The byte-level tokenizer and token data sets: train and validation streams cut into windows
//! of `sequence_length + 1` tokens, from a UTF-8 text file or from the built-in task.

use crate::error::{Result, TrainError};
use lsnn_layers::SeededRng;
use std::path::{Path, PathBuf};

/// Byte-level tokenizer: token = byte, vocabulary 256.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// The vocabulary size.
    pub const VOCAB: usize = 256;

    /// Tokens of `text`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        text.bytes().map(u32::from).collect()
    }

    /// Text of `tokens` (invalid UTF-8 replaced; ids ≥ 256 are skipped).
    pub fn decode(&self, tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens
            .iter()
            .filter_map(|&t| u8::try_from(t).ok())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Where a data set came from (recorded in checkpoints so `eval` can rebuild it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// The built-in arithmetic task with its seed.
    Arithmetic {
        /// Seed of the problem split.
        seed: u64,
    },
    /// A UTF-8 text file.
    TextFile {
        /// The file, absolute (so that a run evaluates and resumes from any working directory;
        /// runs recorded before this was so hold the path as given).
        path: PathBuf,
        /// SHA-256 of the file's content when it was read (absent in older runs): a rebuild
        /// refuses a file that changed, even at the same length.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha256: Option<String>,
    },
}

/// Train and validation token streams cut into windows of `seq_len + 1` tokens.
#[derive(Debug, Clone)]
pub struct TokenDataset {
    train: Vec<u32>,
    val: Vec<u32>,
    seq_len: usize,
    source: DataSource,
}

/// `seq_len + 1`, the tokens of one window, or an error naming `origin` for a length of zero
/// (windows would not advance) or one that overflows.
fn window_len(seq_len: usize, origin: &Path) -> Result<usize> {
    match seq_len.checked_add(1) {
        Some(need) if seq_len > 0 => Ok(need),
        _ => Err(TrainError::Data {
            path: origin.to_path_buf(),
            message: format!(
                "sequence length {seq_len}; expected at least 1 and at most {}",
                usize::MAX - 1
            ),
        }),
    }
}

/// Fraction of a text file held out for validation (its tail).
pub const VAL_FRACTION: f64 = 0.1;

impl TokenDataset {
    /// A data set from token streams; both must hold at least one window.
    pub fn new(train: Vec<u32>, val: Vec<u32>, seq_len: usize, source: DataSource) -> Result<Self> {
        let origin = match &source {
            DataSource::TextFile { path, .. } => path.clone(),
            DataSource::Arithmetic { .. } => PathBuf::from("<builtin arithmetic>"),
        };
        let need = window_len(seq_len, &origin)?;
        if train.len() < need || val.len() < need {
            return Err(TrainError::Data {
                path: origin,
                message: format!(
                    "too short: {} train and {} validation tokens, expected at least {need} each (sequence_length + 1)",
                    train.len(),
                    val.len()
                ),
            });
        }
        Ok(TokenDataset {
            train,
            val,
            seq_len,
            source,
        })
    }

    /// A UTF-8 text file: the last 10% (at least one window) is the validation split.
    pub fn from_text_file(path: &Path, seq_len: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| TrainError::Data {
            path: path.into(),
            message: format!("cannot read: {e}"),
        })?;
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Self::from_text_bytes(&bytes, seq_len, &path)
    }

    /// The content of a UTF-8 text file, read by the caller from `path` (recorded as the data
    /// source, with the content's hash); split as [`TokenDataset::from_text_file`] splits it.
    pub fn from_text_bytes(bytes: &[u8], seq_len: usize, path: &Path) -> Result<Self> {
        if bytes.is_empty() {
            return Err(TrainError::Data {
                path: path.into(),
                message: "empty; expected UTF-8 text".into(),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| TrainError::Data {
            path: path.into(),
            message: format!(
                "not valid UTF-8 (first bad byte at offset {}); expected UTF-8 text",
                e.valid_up_to()
            ),
        })?;
        let tokens = ByteTokenizer.encode(text);
        let need = window_len(seq_len, path)?;
        if tokens.len() / 2 < need {
            return Err(TrainError::Data {
                path: path.into(),
                message: format!(
                    "too short: {} bytes, expected at least {} (two windows of sequence_length + 1 = {need})",
                    tokens.len(),
                    need.saturating_mul(2)
                ),
            });
        }
        let n_val = ((tokens.len() as f64 * VAL_FRACTION) as usize).max(need);
        let split = tokens.len() - n_val;
        let val = tokens[split..].to_vec();
        let mut train = tokens;
        train.truncate(split);
        let sha256 = Some(crate::checkpoint::manifest::sha256_hex(bytes));
        let path = path.to_path_buf();
        Self::new(train, val, seq_len, DataSource::TextFile { path, sha256 })
    }

    /// Rebuilds the data set a checkpoint was trained on; a text file must still have the content
    /// it had then.
    pub fn from_source(source: &DataSource, seq_len: usize) -> Result<Self> {
        match source {
            DataSource::Arithmetic { seed } => super::ArithmeticTask::new(*seed).dataset(seq_len),
            DataSource::TextFile { path, sha256 } => {
                let data = Self::from_text_file(path, seq_len).map_err(|e| match e {
                    TrainError::Data { path: p, message } if path.is_relative() => {
                        TrainError::Data {
                            path: p,
                            message: format!(
                                "{message} (the run recorded this path relative to the directory \
                                 it was trained in; run from there)"
                            ),
                        }
                    }
                    other => other,
                })?;
                if let (
                    Some(want),
                    DataSource::TextFile {
                        sha256: Some(got), ..
                    },
                ) = (sha256, data.source())
                {
                    if got != want {
                        return Err(TrainError::Data {
                            path: path.clone(),
                            message: format!(
                                "content hash {}…, the run was trained on {}…: the file changed \
                                 since (even at the same length); restore it, or train a new run",
                                got.chars().take(12).collect::<String>(),
                                want.chars().take(12).collect::<String>()
                            ),
                        });
                    }
                }
                Ok(data)
            }
        }
    }

    /// Where the data came from.
    pub fn source(&self) -> &DataSource {
        &self.source
    }

    /// The window length minus one.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Training windows (non-overlapping, stride `seq_len`).
    pub fn train_windows(&self) -> usize {
        (self.train.len() - 1) / self.seq_len
    }

    /// Validation windows.
    pub fn val_windows(&self) -> usize {
        (self.val.len() - 1) / self.seq_len
    }

    /// Training window `i`: `seq_len + 1` tokens.
    pub fn train_window(&self, i: usize) -> &[u32] {
        &self.train[i * self.seq_len..i * self.seq_len + self.seq_len + 1]
    }

    /// Validation window `i`.
    pub fn val_window(&self, i: usize) -> &[u32] {
        &self.val[i * self.seq_len..i * self.seq_len + self.seq_len + 1]
    }

    /// The training tokens.
    pub fn train_tokens(&self) -> &[u32] {
        &self.train
    }

    /// The validation tokens.
    pub fn val_tokens(&self) -> &[u32] {
        &self.val
    }

    /// A shuffled order of the training windows.
    pub fn epoch_order(&self, rng: &mut SeededRng) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.train_windows() as u32).collect();
        rng.shuffle(&mut order);
        order
    }
}
