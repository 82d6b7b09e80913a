//! `lsnn generate`: continue a prompt one token at a time with the model's streaming state.

use crate::exit::BadInput;
use anyhow::Result;
use clap::Args;
use lsnn_train::generate::{continue_prompts, Sampler};
use lsnn_train::lm::load_lm;
use lsnn_train::lsnn_layers::SeededRng;
use lsnn_train::ByteTokenizer;
use std::path::PathBuf;

/// Arguments of `lsnn generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The run (or checkpoint) directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
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

/// `lsnn generate`.
pub fn generate(a: GenerateArgs) -> Result<()> {
    if !(a.temperature.is_finite() && a.temperature >= 0.0) {
        return Err(BadInput(format!(
            "--temperature {} is invalid; expected a number >= 0",
            a.temperature
        ))
        .into());
    }
    let precision = super::precision::parse(&a.precision, a.device.as_deref())?;
    let prompt = ByteTokenizer.encode(&a.prompt);
    if prompt.is_empty() {
        return Err(BadInput("--prompt is empty; expected at least one character".into()).into());
    }
    let task = lsnn_train::inference::task_of(&a.checkpoint)?;
    if task != lsnn_train::lsnn_layers::Task::Llm {
        return Err(BadInput(format!(
            "{} holds a {} run; generate continues text with a language model (llm) — use `lsnn predict`",
            a.checkpoint.display(),
            task.name()
        ))
        .into());
    }
    let lm = load_lm(&a.checkpoint, a.ema, a.device.as_deref())?;
    for n in &lm.checkpoint.notices {
        crate::output::err(&format!("note: {n}"));
    }
    let mut rng = SeededRng::new(a.seed);
    let sampler = if a.temperature == 0.0 {
        Sampler::Greedy
    } else {
        Sampler::Temperature {
            temperature: a.temperature,
            rng: &mut rng,
        }
    };
    let out = lsnn_train::lsnn_layers::kernel::with_matmul_precision(precision, || {
        continue_prompts(&lm.model, &[prompt], a.max_tokens, sampler)
    })?;
    super::say(&format!("{}{}", a.prompt, ByteTokenizer.decode(&out[0])))
}
