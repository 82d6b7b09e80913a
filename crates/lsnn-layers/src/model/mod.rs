//! The language model (design §2.6) and its configuration: [`lm`] the network, [`config`] the
//! fields and their checks (the rules for the Python original's files are lsnn-train's).

pub mod config;
pub mod lm;
pub mod size;

pub use config::{heads_error, ModelConfig, SurrogateKind};
pub use lm::{next_token_loss, LanguageModel, LmLoss, LmState};
