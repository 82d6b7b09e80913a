//! Configuration: the trainer's own settings ([`TrainConfig`]), a run's whole configuration
//! ([`RunConfig`], the flat `config.json` beside a checkpoint), and the rules for reading the
//! Python original's files ([`original`]).

pub mod original;
mod run;
mod train;

pub use original::read_run_config;
pub use run::RunConfig;
pub use train::{candle_device, parse_device, MonitorMode, SizeSetting, TrainConfig, MAX_COUNT};
