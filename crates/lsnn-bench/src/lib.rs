//! # lsnn-bench
//!
//! The project's proof (design §7): leak regression cases for every component and path, each with
//! a deliberately leaky **control** that the same check must flag, run by lsnn-memory's leak
//! runner (`lsnn_memory::leak::runner`, a child process per case); per-component peak memory of
//! the fused forms against the per-step references; and the deterministic figures the
//! benchmark gate compares with its baseline.
//!
//! Binaries: `lsnn-leakcheck` (driven by `cargo xtask leakcheck`) and `lsnn-gate` (driven by
//! `cargo xtask bench-gate`). Both install the counting allocator.
#![deny(missing_docs)]

pub mod cases;
pub mod components;
pub mod fuzz;
pub mod peak;

/// Errors of a case.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// From candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// From the layers.
    #[error(transparent)]
    Layer(#[from] lsnn_layers::LayerError),
    /// From training.
    #[error(transparent)]
    Train(#[from] lsnn_train::TrainError),
    /// From the memory crate.
    #[error(transparent)]
    Memory(#[from] lsnn_memory::MemoryError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, BenchError>;

/// One iteration of a case, with this crate's error (see [`iteration`]).
pub type Iteration = Box<dyn FnMut(usize) -> Result<()> + Send>;

/// A case's iteration as the lsnn-memory runner takes it.
pub fn iteration(mut f: Iteration) -> lsnn_memory::leak::runner::Iteration {
    Box::new(move |i| f(i).map_err(|e| Box::new(e) as lsnn_memory::leak::runner::CaseError))
}
