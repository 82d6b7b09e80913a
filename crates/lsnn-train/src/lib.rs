//! # lsnn-train
//!
//! Training for lsnn models (SPEC §5): [`Trainer`] with AdamW ([`optim::AdamW`], saveable
//! state, in-place updates), global-norm clipping, warm-up + cosine schedule, gradient
//! accumulation, in-place EMA, the memory cleanup schedule, non-finite batches skipped and
//! counted, early stopping, atomic [`checkpoint`]s with exact resume, the byte tokenizer and data
//! sets ([`data`]), and the built-in arithmetic task.
//!
//! This crate owns every file a training run reads or writes.
#![deny(missing_docs)]

pub mod checkpoint;
pub mod data;
mod error;
pub mod inplace;
pub mod model;
pub mod optim;
pub mod schedule;
pub mod shard;
pub mod trainer;
pub mod workload;

pub use data::{ArithmeticTask, ByteTokenizer, DataSource, TokenDataset};
pub use error::{Result, TrainError};
pub use model::TrainableModel;
pub use trainer::{
    evaluate_model, EvalResult, Event, TrainOptions, TrainSummary, Trainer, TrainerState,
};

pub use lsnn_layers;
pub use lsnn_memory;
