//! `lsnn eval`: a checkpoint's validation metrics on its own data or a given file, optionally
//! with the logits written out.

use anyhow::{Context, Result};
use clap::Args;
use lsnn_train::lm::{load_lm, validation_logits};
use lsnn_train::{evaluate_model, TokenDataset, TrainerState};
use std::path::PathBuf;

/// Arguments of `lsnn eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run (or checkpoint) directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// A UTF-8 text file (default: the validation split of the run's own data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write `ids` (I64 [N, L]) and `logits` (f32 [N, L, V]) of the evaluated windows here.
    #[arg(long, value_name = "FILE.safetensors")]
    dump_logits: Option<PathBuf>,
    /// Use the EMA weights.
    #[arg(long)]
    ema: bool,
    /// Device: cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    device: Option<String>,
}

/// `lsnn eval`.
pub fn eval(a: EvalArgs) -> Result<()> {
    let lm = load_lm(&a.checkpoint, a.ema, a.device.as_deref())?;
    let seq = lm.config.model.sequence_length;
    let data = match &a.data {
        Some(p) => TokenDataset::from_text_file(p, seq)?,
        None => {
            let ck = &lm.checkpoint;
            let state = TrainerState::from_json(
                &ck.state_json,
                &ck.dir.join(lsnn_train::checkpoint::STATE_FILE),
            )?;
            lsnn_train::lm::token_data(&lm.config, &state.data_source)?
        }
    };
    let batch = lm.config.train.batch_size;
    let r = evaluate_model(&lm.model, &data, batch, 1000, &lm.device)?;
    for n in &lm.checkpoint.notices {
        crate::output::err(&format!("note: {n}"));
    }
    super::say(&format!(
        "{}, {} windows",
        super::metrics_line(&r),
        r.examples
    ))?;
    if let Some(path) = &a.dump_logits {
        let (ids, logits) = validation_logits(&lm.model, &data, batch, &lm.device)?;
        let (n, l, v) = logits.dims3()?;
        candle_core::safetensors::save(
            &[("ids".to_string(), ids), ("logits".to_string(), logits)]
                .into_iter()
                .collect(),
            path,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        super::say(&format!(
            "wrote ids [{n}, {l}] and logits [{n}, {l}, {v}] to {}",
            path.display()
        ))?;
    }
    Ok(())
}
