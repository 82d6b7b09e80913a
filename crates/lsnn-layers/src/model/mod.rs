//! The language model (design §2.6) and its configuration: [`lm`] the network, [`config`] the
//! fields and their checks (the rules for the Python original's files are lsnn-train's).

pub mod config;
pub mod lm;
pub mod loss;
pub mod sequence;
pub mod size;
pub mod task;
mod trunk;

pub use config::{heads_error, ModelConfig, SurrogateKind};
pub use lm::{next_token_loss, LanguageModel, LmLoss, LmState};
pub use sequence::{SeqInput, SeqLoss, SeqState, SequenceModel, Targets};
pub use task::{Readout, Task};
