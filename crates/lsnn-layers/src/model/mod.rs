//! The models (design §2.6, §2.9) and their configuration: [`lm`] the language model,
//! [`sequence`] the regression and classification models, `trunk` the stack they share,
//! [`config`] the fields and their checks ([`liquid`] the liquid backbone's), [`task`] which
//! model a config builds (the rules for the Python original's files are lsnn-train's).

pub mod config;
pub mod liquid;
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
