//! # lsnn-train
//!
//! Training for any candle model (design §8.1): [`Trainer`] trains a [`TrainModel`] on a
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
//! This crate owns every file a training run reads or writes (design §4, §5; the trainer's
//! behaviour: design §8.1).
//!
//! ## Training a small language model for two batches
//!
//! ```
//! use lsnn_train::lsnn_layers::{LanguageModel, ModelConfig};
//! use lsnn_train::{ArithmeticTask, RunConfig, TokenDataset, TrainConfig, TrainOptions, Trainer};
//!
//! # fn main() -> lsnn_train::Result<()> {
//! let model = ModelConfig {
//!     input_dim: 16, embedding_dim: 16, hidden_dim: 16, spiking_units: 8, liquid_units: 8,
//!     num_attention_heads: 2, sequence_length: 16, max_position_embeddings: 16,
//!     backbone_units: 16,
//!     ..ModelConfig::default()
//! };
//! let train = TrainConfig { batch_size: 4, num_epochs: 1, ..TrainConfig::default() };
//! let data = ArithmeticTask::new(1).dataset(model.sequence_length)?;
//! let out = std::env::temp_dir().join(format!("lsnn-doc-{}", std::process::id()));
//! let opts = TrainOptions { out_dir: out.clone(), max_batches: Some(2), ..TrainOptions::default() };
//! let mut trainer: Trainer<LanguageModel, TokenDataset> =
//!     Trainer::new(RunConfig { model, train }, data, opts)?;
//! let summary = trainer.run(&mut |_event| {})?;
//! assert_eq!(summary.batches, 2);
//! assert!(summary.interrupted);                          // stopped by max_batches, checkpointed
//! drop(trainer);                                         // releases the run directory's lock
//! let resumed: Trainer<LanguageModel, TokenDataset> =
//!     Trainer::resume(&out, TrainOptions { out_dir: out.clone(), ..TrainOptions::default() },
//!                     lsnn_train::lm::token_data)?;
//! assert_eq!(resumed.state().batches_seen, 2);
//! # std::fs::remove_dir_all(&out).ok();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dataset;
mod error;
pub mod firing;
pub mod generate;
pub mod inference;
pub mod lm;
pub mod memory_stages;
pub mod model;
pub mod optim;
pub mod record;
pub mod shard;
pub mod task;
pub mod trainer;
pub mod workload;

pub use config::{RunConfig, TrainConfig};
pub use data::{ArithmeticTask, ByteTokenizer, DataSource, TokenDataset};
pub use dataset::Dataset;
pub use error::{Result, TrainError};
pub use model::{LayerStats, MemoryEstimate, StepLoss, TrainModel};
pub use optim::{inplace, schedule};
pub use trainer::{
    evaluate_model, evaluate_with_firing, EvalResult, Event, TrainOptions, TrainSummary, Trainer,
    TrainerState,
};

pub use lsnn_layers;
pub use lsnn_memory;
