//! Data: the byte-level tokenizer, text-file data sets split into train and validation windows of
//! `sequence_length + 1` tokens, the built-in arithmetic task, and the bigram baseline.

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
        /// The file.
        path: PathBuf,
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

/// Fraction of a text file held out for validation (its tail).
pub const VAL_FRACTION: f64 = 0.1;

impl TokenDataset {
    /// A data set from token streams; both must hold at least one window.
    pub fn new(train: Vec<u32>, val: Vec<u32>, seq_len: usize, source: DataSource) -> Result<Self> {
        let need = seq_len + 1;
        let origin = match &source {
            DataSource::TextFile { path } => path.clone(),
            DataSource::Arithmetic { .. } => PathBuf::from("<builtin arithmetic>"),
        };
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
        if bytes.is_empty() {
            return Err(TrainError::Data {
                path: path.into(),
                message: "empty; expected UTF-8 text".into(),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| TrainError::Data {
            path: path.into(),
            message: format!(
                "not valid UTF-8 (first bad byte at offset {}); expected UTF-8 text",
                e.utf8_error().valid_up_to()
            ),
        })?;
        let tokens = ByteTokenizer.encode(&text);
        let need = seq_len + 1;
        if tokens.len() < 2 * need {
            return Err(TrainError::Data {
                path: path.into(),
                message: format!(
                    "too short: {} bytes, expected at least {} (two windows of sequence_length + 1 = {need})",
                    tokens.len(),
                    2 * need
                ),
            });
        }
        let n_val = ((tokens.len() as f64 * VAL_FRACTION) as usize).max(need);
        let split = tokens.len() - n_val;
        let val = tokens[split..].to_vec();
        let mut train = tokens;
        train.truncate(split);
        Self::new(
            train,
            val,
            seq_len,
            DataSource::TextFile { path: path.into() },
        )
    }

    /// Rebuilds the data set a checkpoint was trained on.
    pub fn from_source(source: &DataSource, seq_len: usize) -> Result<Self> {
        match source {
            DataSource::Arithmetic { seed } => ArithmeticTask::new(*seed).dataset(seq_len),
            DataSource::TextFile { path } => Self::from_text_file(path, seq_len),
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

/// The built-in task: lines `ab+cd=efg` (two-digit operands, three-digit sum, zero-padded so
/// every prompt has the same length), 10,000 problems of which 1,000 are held out for validation.
#[derive(Debug, Clone)]
pub struct ArithmeticTask {
    seed: u64,
    train: Vec<(u32, u32)>,
    val: Vec<(u32, u32)>,
}

/// Held-out problems.
pub const ARITH_VAL_PROBLEMS: usize = 1000;

impl ArithmeticTask {
    /// The problem split for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut all: Vec<(u32, u32)> = (0..100)
            .flat_map(|a| (0..100).map(move |b| (a, b)))
            .collect();
        SeededRng::new(seed ^ 0xA11CE).shuffle(&mut all);
        let val = all.split_off(all.len() - ARITH_VAL_PROBLEMS);
        ArithmeticTask {
            seed,
            train: all,
            val,
        }
    }

    /// One problem's line, newline included.
    pub fn line(a: u32, b: u32) -> String {
        format!("{a:02}+{b:02}={:03}\n", a + b)
    }

    /// The prompt for a problem: the previous line's end, then `ab+cd=`.
    pub fn prompt(a: u32, b: u32) -> String {
        format!("\n{a:02}+{b:02}=")
    }

    /// The expected answer after the prompt.
    pub fn answer(a: u32, b: u32) -> String {
        format!("{:03}", a + b)
    }

    /// Held-out problems.
    pub fn val_problems(&self) -> &[(u32, u32)] {
        &self.val
    }

    /// Training problems.
    pub fn train_problems(&self) -> &[(u32, u32)] {
        &self.train
    }

    /// The text data set: training lines and held-out lines, each as one stream.
    pub fn dataset(&self, seq_len: usize) -> Result<TokenDataset> {
        let text = |ps: &[(u32, u32)]| {
            ps.iter()
                .map(|&(a, b)| Self::line(a, b))
                .collect::<String>()
        };
        TokenDataset::new(
            ByteTokenizer.encode(&text(&self.train)),
            ByteTokenizer.encode(&text(&self.val)),
            seq_len,
            DataSource::Arithmetic { seed: self.seed },
        )
    }
}

/// Validation cross-entropy (nats per token) of an add-one-smoothed bigram model fitted on the
/// training tokens, over the same next-token targets the model is scored on.
pub fn bigram_baseline(ds: &TokenDataset, vocab: usize) -> f64 {
    let mut counts = vec![1f64; vocab * vocab];
    let mut rows = vec![vocab as f64; vocab];
    for w in ds.train_tokens().windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        counts[a * vocab + b] += 1.0;
        rows[a] += 1.0;
    }
    let (mut total, mut n) = (0f64, 0usize);
    for i in 0..ds.val_windows() {
        for w in ds.val_window(i).windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            total -= (counts[a * vocab + b] / rows[a]).ln();
            n += 1;
        }
    }
    total / n as f64
}
