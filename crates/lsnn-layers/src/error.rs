//! The crate's error type.

/// Everything that can go wrong in `lsnn-layers`.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// A tensor of the wrong rank or width.
    #[error("{what}: expected {expected}, got shape {actual:?}")]
    Shape {
        /// Which input.
        what: &'static str,
        /// What was expected.
        expected: String,
        /// The shape received.
        actual: Vec<usize>,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} at batch {batch}, position {position} is outside the vocabulary of {vocab} tokens (expected 0..{vocab})")]
    TokenOutOfRange {
        /// The offending id.
        id: i64,
        /// The vocabulary size.
        vocab: usize,
        /// Row in the batch.
        batch: usize,
        /// Position in the sequence.
        position: usize,
    },
    /// A sequence longer than the position table.
    #[error("sequence of {len} positions (starting at {start}) is longer than max_position_embeddings = {max}")]
    SequenceTooLong {
        /// Positions requested.
        len: usize,
        /// First position.
        start: usize,
        /// The table's size.
        max: usize,
    },
    /// NaN or infinity in an input.
    #[error(
        "{what} contains {count} non-finite values (NaN or infinity); expected finite numbers"
    )]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// How many values are not finite.
        count: usize,
    },
    /// An input whose values (not its shape) are wrong: a sequence length outside 1..=L, a
    /// class id outside the classes.
    #[error("{what}: {message}")]
    Input {
        /// Which input.
        what: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A configuration value that is invalid.
    #[error("invalid config field `{field}`: {message}")]
    Config {
        /// The field.
        field: String,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A feature of the Python original or of the spec that lsnn does not have (yet).
    #[error("{feature} is not supported: {detail}")]
    Unsupported {
        /// The feature.
        feature: String,
        /// Why and what to do instead.
        detail: String,
    },
    /// `hidden_dim` not divisible by `num_attention_heads`.
    #[error("hidden_dim {hidden} is not divisible by num_attention_heads {heads}; use {suggest_heads} heads, or hidden_dim {suggest_hidden}")]
    HeadsDoNotDivide {
        /// hidden_dim.
        hidden: usize,
        /// num_attention_heads.
        heads: usize,
        /// The nearest head counts that divide hidden_dim.
        suggest_heads: String,
        /// The nearest hidden sizes divisible by the head count.
        suggest_hidden: String,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// So that lsnn's layers can be used with `?` inside a function returning `candle_core::Result`
/// (a user's own `Module`): a candle error comes back as itself, any other as
/// `candle_core::Error::Wrapped` holding this error (its message intact).
impl From<LayerError> for candle_core::Error {
    fn from(e: LayerError) -> Self {
        match e {
            LayerError::Candle(c) => c,
            other => candle_core::Error::wrap(other),
        }
    }
}

impl LayerError {
    /// A [`LayerError::Config`].
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        LayerError::Config {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, LayerError>;
