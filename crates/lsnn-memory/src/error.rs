//! The crate's error type: one enum, structured fields, lower-case messages.

use std::path::PathBuf;

/// Everything that can go wrong in `lsnn-memory`.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// A request for memory that the budget (or the device) cannot hold.
    #[error(
        "memory budget exceeded by {what}: requested {requested} bytes, available {available} bytes \
         (budget {budget} bytes, in use {in_use} bytes)"
    )]
    BudgetExceeded {
        /// What asked for the memory (`safe_zeros`, `safe_cat`, …).
        what: &'static str,
        /// Bytes the request needs.
        requested: u64,
        /// Bytes that were still free under the budget.
        available: u64,
        /// The budget (or the device's usable memory when no budget is set).
        budget: u64,
        /// Bytes already in use when the request was made.
        in_use: u64,
    },
    /// The byte size of a request does not fit in 64 bits.
    #[error("size of {what} overflows: shape {shape:?} of {dtype_bytes}-byte elements")]
    SizeOverflow {
        /// What asked for the memory.
        what: &'static str,
        /// The requested shape.
        shape: Vec<usize>,
        /// Bytes per element.
        dtype_bytes: usize,
    },
    /// Inputs whose shapes, dtypes or devices do not fit the operation.
    #[error("{op}: {message}")]
    Shape {
        /// The operation (`safe_cat`, `safe_stack`, …).
        op: &'static str,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A configuration value outside its valid range.
    #[error("invalid memory configuration: {0}")]
    InvalidConfig(String),
    /// Reading a `/proc` file failed or it had an unexpected format.
    #[error("cannot read {path}: {message}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing an export failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A measurement this platform or device does not offer.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, MemoryError>;
