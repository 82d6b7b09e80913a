//! # lsnn-train
//!
//! Training for any candle model (SPEC §5): [`Trainer`] trains a [`TrainModel`] on a
//! [`Dataset`] — AdamW ([`optim::AdamW`], saveable state, in-place updates), global-norm
//! clipping, warm-up + cosine schedule, gradient accumulation, in-place EMA, the memory cleanup
//! schedule, non-finite batches skipped and counted, early stopping and the best checkpoint by a
//! monitored metric, atomic [`checkpoint`]s with exact resume, batches split into shards run on
//! separate threads ([`shard`]). The run's settings are [`TrainConfig`]; with the model's own
//! config they make a [`RunConfig`], the flat `config.json` beside a checkpoint.
//!
//! lsnn-layers' language model is one such model ([`lm`]), on token data ([`data`]: the byte
//! tokenizer, text files, the built-in arithmetic task), with generation ([`generate`]) and
//! the Python original's config files ([`config::original`]).
//!
//! This crate owns every file a training run reads or writes.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dataset;
mod error;
pub mod generate;
pub mod lm;
pub mod model;
pub mod optim;
pub mod shard;
pub mod trainer;
pub mod workload;

pub use config::{RunConfig, TrainConfig};
pub use data::{ArithmeticTask, ByteTokenizer, DataSource, TokenDataset};
pub use dataset::Dataset;
pub use error::{Result, TrainError};
pub use model::{LayerStats, StepLoss, TrainModel};
pub use optim::{inplace, schedule};
pub use trainer::{
    evaluate_model, EvalResult, Event, TrainOptions, TrainSummary, Trainer, TrainerState,
};

pub use lsnn_layers;
pub use lsnn_memory;
