//! The language model (SPEC §3.6) and its configuration: [`lm`] the network, [`config`] the
//! fields and their checks, [`original`] the rules for reading the Python original's files.

pub mod config;
pub mod lm;
pub mod original;

pub use config::{heads_error, ModelConfig, SurrogateKind};
pub use lm::{next_token_loss, LanguageModel, LmLoss, LmState};
