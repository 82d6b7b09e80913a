//! The subcommands: [`train()`], [`generate()`], [`eval()`]. Each parses its arguments, calls
//! lsnn-train, and prints; the work itself is the library's.

pub(crate) mod config;
mod eval;
mod generate;
pub(crate) mod precision;
mod predict;
mod train;

pub use eval::{eval, EvalArgs};
pub use generate::{generate, GenerateArgs};
pub use predict::{predict, PredictArgs};
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
            "val_accuracy" => format!("accuracy {:.1}%", v * 100.0),
            "val_mse" => format!("mse {v:.4}"),
            "val_mae" => format!("mae {v:.4}"),
            other => format!("{other} {v:.4}"),
        });
    }
    parts.join(", ").replace(", (ppl", " (ppl")
}

/// The baselines of a sequence task as one line: `persistence mse 0.41, mae 0.52; mean mse
/// …; majority-class accuracy 17.0%`.
pub fn baselines_line(baselines: &[(String, f64)]) -> String {
    let get = |k: &str| baselines.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    let mut parts = Vec::new();
    for kind in ["persistence", "mean"] {
        if let (Some(mse), Some(mae)) = (
            get(&format!("baseline_{kind}_mse")),
            get(&format!("baseline_{kind}_mae")),
        ) {
            parts.push(format!("{kind} mse {mse:.4}, mae {mae:.4}"));
        }
    }
    if let Some(a) = get("baseline_majority_accuracy") {
        parts.push(format!("majority-class accuracy {:.1}%", a * 100.0));
    }
    parts.join("; ")
}

/// One line to stdout, or [`crate::exit::OutputFailed`] when it cannot be written.
pub fn say(line: &str) -> anyhow::Result<()> {
    if crate::output::out(line) {
        Ok(())
    } else {
        Err(crate::exit::OutputFailed.into())
    }
}
