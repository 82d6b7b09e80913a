//! The subcommands: [`train()`], [`generate()`], [`eval()`]. Each parses its arguments, calls
//! lsnn-train, and prints; the work itself is the library's.

mod eval;
mod generate;
mod train;

pub use eval::{eval, EvalArgs};
pub use generate::{generate, GenerateArgs};
pub use train::{train, TrainArgs};

use lsnn_train::EvalResult;

/// An evaluation's metrics as one line: the language model's by their usual names, any other
/// as `name value`.
pub fn metrics_line(e: &EvalResult) -> String {
    let mut parts = Vec::new();
    for (name, v) in &e.metrics {
        parts.push(match name.as_str() {
            "val_loss" => format!("val loss {v:.4}"),
            "val_ppl" => format!("(ppl {v:.3})"),
            "accuracy" => format!("exact-match accuracy {:.1}%", v * 100.0),
            other => format!("{other} {v:.4}"),
        });
    }
    parts.join(", ").replace(", (ppl", " (ppl")
}

/// One line to stdout, or [`crate::exit::OutputFailed`] when it cannot be written.
pub fn say(line: &str) -> anyhow::Result<()> {
    if crate::output::out(line) {
        Ok(())
    } else {
        Err(crate::exit::OutputFailed.into())
    }
}
