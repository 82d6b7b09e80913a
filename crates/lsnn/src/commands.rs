//! `lsnn train`, `lsnn generate`, `lsnn eval`.

use crate::display::Display;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use clap::Args;
use lsnn_train::checkpoint;
use lsnn_train::lsnn_layers::{LanguageModel, Mode, ModelConfig, SeededRng};
use lsnn_train::lsnn_memory::{parse_size, rss};
use lsnn_train::{
    evaluate_model, ArithmeticTask, ByteTokenizer, DataSource, TokenDataset, TrainOptions, Trainer,
    TrainerState,
};
use std::path::{Path, PathBuf};

/// Arguments of `lsnn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A config file: lsnn's own or one written by the Python original (SPEC §3.8).
    #[arg(long)]
    config: Option<PathBuf>,
    /// A UTF-8 text file to train on (default: the built-in arithmetic task).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Epochs (overrides the config).
    #[arg(long)]
    epochs: Option<usize>,
    /// Where checkpoints go (default runs/default; with --resume, the resumed directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run checkpointed in DIR exactly where it stopped.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Seed (overrides the config).
    #[arg(long)]
    seed: Option<u64>,
    /// Memory budget, e.g. 2GiB or 50%.
    #[arg(long, value_name = "SIZE")]
    memory_budget: Option<String>,
    /// Stop after this many batches in total, writing a checkpoint to resume from.
    #[arg(long, value_name = "N")]
    max_batches: Option<u64>,
    /// Evaluate with the EMA weights.
    #[arg(long)]
    eval_ema: bool,
}

fn load_config(path: &Path) -> Result<ModelConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    ModelConfig::from_json_str(&text).with_context(|| format!("config {}", path.display()))
}

/// `lsnn train`.
pub fn train(a: TrainArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let out = a
        .out
        .clone()
        .or_else(|| a.resume.clone())
        .unwrap_or_else(crate::default_out);
    let mut opts = TrainOptions {
        out_dir: out.clone(),
        max_batches: a.max_batches,
        eval_with_ema: a.eval_ema,
        ..TrainOptions::default()
    };
    if let Some(b) = &a.memory_budget {
        opts.memory_budget = Some(parse_size(b)?);
    }
    let mut trainer: Trainer = match &a.resume {
        Some(dir) => {
            if a.config.is_some() || a.data.is_some() || a.epochs.is_some() || a.seed.is_some() {
                bail!("--resume continues the saved run as it was configured; drop --config, --data, --epochs and --seed");
            }
            Trainer::resume(dir, opts)?
        }
        None => {
            let mut cfg = match &a.config {
                Some(p) => load_config(p)?,
                None => ModelConfig::default(),
            };
            if let Some(e) = a.epochs {
                cfg.num_epochs = e;
            }
            if let Some(s) = a.seed {
                cfg.seed = s;
            }
            if cfg.mixed_precision && cfg.parse_device()?.is_none() {
                eprintln!("warning: mixed_precision has no effect on the CPU; training in f32");
            }
            let data = match &a.data {
                Some(p) => TokenDataset::from_text_file(p, cfg.sequence_length)?,
                None => ArithmeticTask::new(cfg.seed).dataset(cfg.sequence_length)?,
            };
            Trainer::new(cfg, data, opts)?
        }
    };
    let mut display = Display::new();
    let summary = trainer.run(&mut |e| display.on_event(e))?;
    display.finish();
    let hwm = rss::peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    if summary.interrupted {
        println!(
            "stopped after {} batches ({} optimizer steps); resume with --resume {}",
            summary.batches,
            summary.steps,
            out.display()
        );
    }
    if let Some(e) = summary.last_eval {
        let below = 100.0 * (1.0 - e.loss / summary.bigram_baseline);
        println!(
            "done: val loss {:.4} nats/token (ppl {:.3}) vs bigram baseline {:.4} ({below:.1}% below){}",
            e.loss,
            e.perplexity,
            summary.bigram_baseline,
            e.accuracy.map(|x| format!("; exact-match accuracy {:.1}%", 100.0 * x)).unwrap_or_default()
        );
    }
    println!(
        "{} steps, {} skipped, {:.0} tokens/s, peak RSS {hwm:.0} MiB, {:.0} s; checkpoint in {}",
        summary.steps,
        summary.skipped,
        summary.tokens_per_s,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn load_model(
    dir: &Path,
    ema: bool,
) -> Result<(LanguageModel, ModelConfig, checkpoint::LoadedCheckpoint)> {
    let ck = checkpoint::load(dir)?;
    let cfg = ModelConfig::from_json_str(&ck.config_json).context("checkpoint config.json")?;
    let weights = if ema {
        ck.ema.clone()
    } else {
        ck.model.clone()
    };
    let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
    let model = LanguageModel::new(&cfg, vb).context("building the model from the checkpoint")?;
    Ok((model, cfg, ck))
}

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
}

/// `lsnn generate`.
pub fn generate(a: GenerateArgs) -> Result<()> {
    if !(a.temperature.is_finite() && a.temperature >= 0.0) {
        bail!(
            "--temperature {} is invalid; expected a number >= 0",
            a.temperature
        );
    }
    let (model, cfg, _) = load_model(&a.checkpoint, a.ema)?;
    let prompt = ByteTokenizer.encode(&a.prompt);
    if prompt.is_empty() {
        bail!("--prompt is empty; expected at least one character");
    }
    let limit = cfg.max_position_embeddings;
    if prompt.len() + a.max_tokens > limit {
        bail!(
            "prompt ({} tokens) + --max-tokens {} = {} positions exceeds the model's max_position_embeddings = {limit}",
            prompt.len(),
            a.max_tokens,
            prompt.len() + a.max_tokens
        );
    }
    let mut rng = SeededRng::new(a.seed);
    let mut state = model.new_state(1)?;
    let mut logits = None;
    for &t in &prompt {
        logits = Some(model.step(&Tensor::new(&[t], &Device::Cpu)?, &mut state)?);
    }
    let mut out = Vec::with_capacity(a.max_tokens);
    for k in 0..a.max_tokens {
        let l = logits
            .take()
            .expect("a prompt token was consumed")
            .squeeze(0)?;
        let next = if a.temperature == 0.0 {
            l.argmax(D::Minus1)?.to_scalar::<u32>()?
        } else {
            let p = candle_nn::ops::softmax(&(l / a.temperature)?, D::Minus1)?.to_vec1::<f32>()?;
            let r = rng.next_f64() as f32;
            let mut acc = 0f32;
            let mut pick = p.len() - 1;
            for (i, &pi) in p.iter().enumerate() {
                acc += pi;
                if r < acc {
                    pick = i;
                    break;
                }
            }
            pick as u32
        };
        out.push(next);
        if k + 1 < a.max_tokens {
            logits = Some(model.step(&Tensor::new(&[next], &Device::Cpu)?, &mut state)?);
        }
    }
    println!("{}{}", a.prompt, ByteTokenizer.decode(&out));
    Ok(())
}

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
}

/// `lsnn eval`.
pub fn eval(a: EvalArgs) -> Result<()> {
    let (model, cfg, ck) = load_model(&a.checkpoint, a.ema)?;
    let state: TrainerState = serde_json::from_str(&ck.state_json).context("trainer_state.json")?;
    let data = match &a.data {
        Some(p) => TokenDataset::from_text_file(p, cfg.sequence_length)?,
        None => TokenDataset::from_source(&state.data_source, cfg.sequence_length)?,
    };
    let task = match data.source() {
        DataSource::Arithmetic { seed } => Some(ArithmeticTask::new(*seed)),
        DataSource::TextFile { .. } => None,
    };
    let r = evaluate_model(&model, &cfg, &data, task.as_ref(), 1000, &Device::Cpu)?;
    println!(
        "val loss {:.4} nats/token, perplexity {:.3}, {} windows{}",
        r.loss,
        r.perplexity,
        r.windows,
        r.accuracy
            .map(|x| format!(", exact-match accuracy {:.1}%", 100.0 * x))
            .unwrap_or_default()
    );
    if let Some(path) = &a.dump_logits {
        let l = cfg.sequence_length;
        let n = data.val_windows();
        let mut ids = Vec::with_capacity(n * l);
        for w in 0..n {
            ids.extend(data.val_window(w)[..l].iter().map(|&t| t as i64));
        }
        let ids = Tensor::from_vec(ids, (n, l), &Device::Cpu)?;
        let mut chunks = Vec::new();
        for start in (0..n).step_by(cfg.batch_size.max(1)) {
            let len = cfg.batch_size.min(n - start);
            chunks.push(model.forward(&ids.narrow(0, start, len)?, &mut Mode::Eval)?);
        }
        let logits = Tensor::cat(&chunks, 0)?;
        candle_core::safetensors::save(
            &[("ids".to_string(), ids), ("logits".to_string(), logits)]
                .into_iter()
                .collect(),
            path,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote ids [{n}, {l}] and logits [{n}, {l}, {}] to {}",
            cfg.vocab_size,
            path.display()
        );
    }
    Ok(())
}
