//! The fuzz harness (design §8.3): the readers that take a user's bytes — the config reader
//! (lsnn's own files and the Python original's), the checkpoint loader, the text data reader,
//! the sequence tasks' array files (.npz, .safetensors) —
//! each behind one function from bytes to an outcome. The same functions serve the
//! coverage-guided targets in `fuzz/` (cargo-fuzz, libFuzzer), the mutation campaign of
//! `cargo xtask fuzz`, and the short property run CI does (`tests/fuzz.rs`).
//!
//! A harness never panics on any input; a reader's refusal is an [`Outcome::Refused`] whose
//! message must stay short whatever the input's size.

mod arrays;
pub mod campaign;
mod checkpoint;
mod config;
pub mod mutate;
mod text;

pub use arrays::arrays;
pub use checkpoint::CheckpointHarness;
pub use config::config;
pub use text::text;

/// The longest message a refusal may carry (no message grows with the input).
pub const MAX_MESSAGE_BYTES: usize = 1200;

/// What one input got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The input was accepted (a readable config, a loadable set, a usable text).
    Accepted,
    /// The input was refused with this error message.
    Refused(String),
}

impl Outcome {
    /// `Accepted` for `Ok`, the error's message for `Err`.
    pub fn of<T, E: std::fmt::Display>(r: Result<T, E>) -> Self {
        match r {
            Ok(_) => Outcome::Accepted,
            Err(e) => Outcome::Refused(format!("{e:#}")),
        }
    }

    /// A refusal whose message grew past [`MAX_MESSAGE_BYTES`], if this is one.
    pub fn oversized_message(&self) -> Option<usize> {
        match self {
            Outcome::Refused(m) if m.len() > MAX_MESSAGE_BYTES => Some(m.len()),
            _ => None,
        }
    }
}

/// The readers fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// [`config`]: a config file of either kind.
    Config,
    /// [`CheckpointHarness::load`]: a checkpoint set with one file replaced or edited.
    Checkpoint,
    /// [`text`]: a text data file and a sequence length.
    Text,
    /// [`arrays`]: a sequence task's .npz or .safetensors data file.
    Arrays,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::Config,
        Target::Checkpoint,
        Target::Text,
        Target::Arrays,
    ];

    /// The target's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Config => "config",
            Target::Checkpoint => "checkpoint",
            Target::Text => "text",
            Target::Arrays => "arrays",
        }
    }

    /// The target named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}
