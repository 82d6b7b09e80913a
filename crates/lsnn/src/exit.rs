//! The exit codes of `lsnn` (README, "Exit codes"), and which errors map to which.

use lsnn_train::lsnn_layers::LayerError;
use lsnn_train::lsnn_memory::MemoryError;
use lsnn_train::TrainError;

/// Success (including a run stopped by `--max-batches`, as asked).
pub const SUCCESS: u8 = 0;
/// Any other failure (a bug, a device error).
pub const FAILURE: u8 = 1;
/// Bad input: arguments, a config, a data file, a checkpoint that fails verification, a run that
/// cannot fit its memory budget, or nothing to do.
pub const BAD_INPUT: u8 = 2;
/// Interrupted (SIGINT, SIGTERM, or stdout closed) with a checkpoint saved: resume it.
pub const INTERRUPTED: u8 = 3;
/// An I/O failure: a file that cannot be written (a full disk), or a run directory in use by
/// another trainer.
pub const IO_FAILURE: u8 = 4;

/// An error the command itself found in its input.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// An output that could not be written.
#[derive(Debug)]
pub struct OutputFailed;

impl std::fmt::Display for OutputFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot write to standard output (closed or full)")
    }
}

impl std::error::Error for OutputFailed {}

fn train_code(e: &TrainError) -> u8 {
    match e {
        TrainError::Io { .. } | TrainError::Locked { .. } => IO_FAILURE,
        TrainError::Memory(MemoryError::BudgetExceeded { .. }) => BAD_INPUT,
        TrainError::Memory(_) | TrainError::Candle(_) => FAILURE,
        TrainError::Layer(l) => layer_code(l),
        _ => BAD_INPUT,
    }
}

fn layer_code(e: &LayerError) -> u8 {
    match e {
        LayerError::Candle(_) => FAILURE,
        _ => BAD_INPUT,
    }
}

/// The exit code of an error: the first cause in its chain that says.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<TrainError>() {
            return train_code(e);
        }
        if let Some(e) = cause.downcast_ref::<LayerError>() {
            return layer_code(e);
        }
        if cause.downcast_ref::<BadInput>().is_some() {
            return BAD_INPUT;
        }
        if cause.downcast_ref::<OutputFailed>().is_some()
            || cause.downcast_ref::<std::io::Error>().is_some()
        {
            return IO_FAILURE;
        }
    }
    FAILURE
}
