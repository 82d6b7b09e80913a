//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `lsnn-train`.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A data file that cannot be used.
    #[error("data file {path}: {message}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A file or directory of a run's record (TensorBoard's) that cannot be used: a path that
    /// is not a directory, a CRC that does not match, a malformed record.
    #[error("run record {path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint directory that is missing, incomplete, corrupted or inconsistent.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The directory or file.
        path: PathBuf,
        /// What disagrees or is missing.
        message: String,
    },
    /// Another process holds the run directory's lock (design §4.4).
    #[error("run directory {dir} is in use by another trainer{}; wait for it to finish, or choose another --out", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The run directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
    },
    /// A fresh run asked to write where a run already is.
    #[error("{dir} already holds a run ({what}); continue it with --resume {dir}, choose another --out, or replace it with --overwrite")]
    RunExists {
        /// The run directory.
        dir: PathBuf,
        /// What was found there.
        what: String,
    },
    /// A file of a checkpoint set whose content differs from what the set recorded.
    #[error("checkpoint file {path} is corrupted: {message}")]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// An invalid setting: of a config file (either part), of the trainer, or of a request
    /// (generation's `max_tokens`, `temperature`).
    #[error("invalid setting `{field}`: {message}")]
    Config {
        /// The setting.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// Malformed JSON.
    #[error("json error in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A config key neither lsnn nor the Python original knows (a typo?).
    #[error("unknown config field `{field}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownField {
        /// The key.
        field: String,
        /// The closest known key.
        suggestion: Option<String>,
    },
    /// A feature of the Python original or of a configuration that lsnn does not have.
    #[error("{feature} is not supported: {detail}")]
    Unsupported {
        /// The feature.
        feature: String,
        /// Why and what to do instead.
        detail: String,
    },
    /// A device the config or `--device` names that this machine does not have (a CUDA build
    /// on a machine without that GPU, or without a driver).
    #[error("device \"{device}\" is not available: {reason}; expected a CUDA device this machine has, or \"cpu\"")]
    DeviceUnavailable {
        /// The device as named.
        device: String,
        /// What the driver said.
        reason: String,
    },
    /// A vocabulary that does not match the tokenizer of the data.
    #[error("vocab_size {config} does not match the tokenizer's {tokenizer} tokens")]
    VocabMismatch {
        /// From the config.
        config: usize,
        /// From the tokenizer.
        tokenizer: usize,
    },
    /// A config text that is not JSON. (The parser's message is part of this one, not a
    /// `source`: a chain printer would say it twice.)
    #[error("cannot parse config: {0}")]
    ConfigJson(serde_json::Error),
    /// An error from the layers.
    #[error(transparent)]
    Layer(#[from] lsnn_layers::LayerError),
    /// An error from the memory crate.
    #[error(transparent)]
    Memory(#[from] lsnn_memory::MemoryError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { path, source }
    }

    pub(crate) fn ckpt(path: impl Into<PathBuf>, message: impl Into<String>) -> TrainError {
        TrainError::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }
}

pub use lsnn_layers::nn::clip;

impl From<serde_json::Error> for TrainError {
    fn from(e: serde_json::Error) -> Self {
        TrainError::ConfigJson(e)
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, TrainError>;
