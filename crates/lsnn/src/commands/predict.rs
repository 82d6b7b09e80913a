//! `lsnn predict`: a sequence model's predictions for a file's inputs, written as an `.npz`:
//! regression `y_pred` `[N, L, F_out]` (NaN at padded positions), classification `y_pred` `[N]`
//! (the arg-max class) and `logits` [N, C]; `lengths` when the input had padding.

use crate::exit::BadInput;
use anyhow::Result;
use clap::Args;
use lsnn_train::data::arrays::write_npz;
use lsnn_train::lsnn_layers::Task;
use lsnn_train::task::load_sequence;
use std::path::PathBuf;

/// Arguments of `lsnn predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The run (or checkpoint) directory of a regression or classification run.
    #[arg(long)]
    checkpoint: PathBuf,
    /// An .npz or .safetensors file with `x` (and `dt`, `lengths`/`mask` as the run's data had
    /// them); its targets, if any, are not read.
    #[arg(long)]
    data: PathBuf,
    /// Where the predictions go (.npz).
    #[arg(long)]
    out: PathBuf,
    /// One position at a time with the recurrent state (what a controller does), instead of
    /// whole sequences; the same numbers.
    #[arg(long)]
    stream: bool,
    /// Rows per forward pass (default: the run's batch size).
    #[arg(long)]
    batch: Option<usize>,
    /// Use the EMA weights.
    #[arg(long)]
    ema: bool,
    /// Device: cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    device: Option<String>,
}

/// `lsnn predict`.
pub fn predict(a: PredictArgs) -> Result<()> {
    if a.batch == Some(0) {
        return Err(BadInput("--batch 0; expected at least 1 row per pass".into()).into());
    }
    let task = lsnn_train::inference::task_of(&a.checkpoint)?;
    if task == Task::Llm {
        return Err(BadInput(format!(
            "{} holds a language-model run; predict is for regression and classification runs — use `lsnn generate`",
            a.checkpoint.display()
        ))
        .into());
    }
    let same = |p: &PathBuf, q: &PathBuf| match (p.canonicalize(), q.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    };
    if same(&a.out, &a.data) {
        return Err(BadInput(format!(
            "--out {} is the input file; expected another path (the input would be lost)",
            a.out.display()
        ))
        .into());
    }
    let s = load_sequence(&a.checkpoint, a.ema, a.device.as_deref())?;
    for n in &s.checkpoint.notices {
        crate::output::err(&format!("note: {n}"));
    }
    let inputs = s.read_inputs(&a.data)?;
    let batch = a.batch.unwrap_or(s.config.train.batch_size);
    let p = if a.stream {
        s.predict_streaming(&inputs, batch)?
    } else {
        s.predict(&inputs, batch)?
    };
    write_npz(&a.out, &p.arrays())?;
    let shapes: Vec<String> = p
        .arrays()
        .iter()
        .map(|(n, arr)| format!("{n} {:?}", arr.shape))
        .collect();
    super::say(&format!(
        "wrote {} to {}{}",
        shapes.join(", "),
        a.out.display(),
        if a.stream { " (streamed)" } else { "" }
    ))
}
