//! `lsnn eval`: a checkpoint's validation metrics and trivial baselines, on its own data or a
//! given file, as a line or (`--json`) one JSON object; for a language model optionally with
//! the logits written out.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use clap::Args;
use lsnn_train::lm::{load_lm, validation_logits};
use lsnn_train::lsnn_layers::{SequenceModel, Task};
use lsnn_train::task::load_sequence;
use lsnn_train::{evaluate_model, Dataset, EvalResult, TokenDataset, TrainerState};
use std::path::PathBuf;

/// Arguments of `lsnn eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run (or checkpoint) directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Data to evaluate on: a UTF-8 text file (llm), or an .npz/.safetensors file whose
    /// x_val/y_val (else x/y) are evaluated (default: the validation split of the run's data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON object: each metric by name and each trivial baseline as `baseline_…`.
    #[arg(long)]
    json: bool,
    /// llm: write `ids` (I64 [N, L]) and `logits` (f32 [N, L, V]) of the evaluated windows here.
    #[arg(long, value_name = "FILE.safetensors")]
    dump_logits: Option<PathBuf>,
    /// Use the EMA weights.
    #[arg(long)]
    ema: bool,
    /// Device: cpu, cuda or cuda:N (default: the run's).
    #[arg(long)]
    device: Option<String>,
    /// The linears' matrix products: f32, or bf16 (operands rounded to bf16, sums in f32;
    /// needs a CPU with AVX-512 BF16).
    #[arg(long, default_value = "f32", value_parser = super::precision::CHOICES)]
    precision: String,
}

/// The result as one JSON object: metrics by name, baselines, the evaluated examples.
fn json_of(r: &EvalResult, baselines: &[(String, f64)]) -> String {
    let mut m = serde_json::Map::new();
    m.insert("examples".into(), r.examples.into());
    for (k, v) in r.metrics.iter().chain(baselines) {
        m.insert(k.clone(), serde_json::json!(v));
    }
    serde_json::Value::Object(m).to_string()
}

/// `lsnn eval`.
pub fn eval(a: EvalArgs) -> Result<()> {
    let precision = super::precision::parse(&a.precision, a.device.as_deref())?;
    lsnn_train::lsnn_layers::kernel::with_matmul_precision(precision, || {
        match lsnn_train::inference::task_of(&a.checkpoint)? {
            Task::Llm => eval_lm(a),
            _ => eval_sequence(a),
        }
    })
}

fn eval_sequence(a: EvalArgs) -> Result<()> {
    if a.dump_logits.is_some() {
        return Err(BadInput(
            "--dump-logits is for language models; use `lsnn predict` for a sequence model's outputs"
                .into(),
        )
        .into());
    }
    let s = load_sequence(&a.checkpoint, a.ema, a.device.as_deref())?;
    let data = match &a.data {
        Some(p) => s.evaluation_data(p)?,
        None => lsnn_train::data::SequenceData::from_description(&s.description)?,
    };
    let batch = s.config.train.batch_size;
    let r = evaluate_model::<SequenceModel, _>(&s.model, &data, batch, 0, &s.device)?;
    for n in &s.checkpoint.notices {
        crate::output::err(&format!("note: {n}"));
    }
    let baselines = Dataset::<SequenceModel>::baselines(&data);
    if a.json {
        return super::say(&json_of(&r, &baselines));
    }
    super::say(&format!(
        "{}, {} sequences",
        super::metrics_line(&r),
        r.examples
    ))?;
    super::say(&format!("baselines: {}", super::baselines_line(&baselines)))
}

fn eval_lm(a: EvalArgs) -> Result<()> {
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
    if a.json {
        let baselines = Dataset::<lsnn_train::lsnn_layers::LanguageModel>::baselines(&data);
        super::say(&json_of(&r, &baselines))?;
    } else {
        super::say(&format!(
            "{}, {} windows",
            super::metrics_line(&r),
            r.examples
        ))?;
    }
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
        // With --json the object is the whole of stdout; the note goes to stderr.
        let note = format!(
            "wrote ids [{n}, {l}] and logits [{n}, {l}, {v}] to {}",
            path.display()
        );
        if a.json {
            crate::output::err(&note);
        } else {
            super::say(&note)?;
        }
    }
    Ok(())
}
