//! `lsnn train`: a fresh run from a config (lsnn's or the Python original's) or the default,
//! or the resume of a checkpointed run.

use crate::display::Display;
use anyhow::{bail, Context, Result};
use clap::Args;
use lsnn_train::config::read_run_config;
use lsnn_train::lsnn_layers::{LanguageModel, ModelConfig};
use lsnn_train::lsnn_memory::{parse_size, rss};
use lsnn_train::{ArithmeticTask, RunConfig, TokenDataset, TrainConfig, TrainOptions, Trainer};
use std::path::{Path, PathBuf};

/// Arguments of `lsnn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A config file: lsnn's own or one written by the Python original (design §5).
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
    /// Device: cpu, cuda or cuda:N (overrides the config's `device`).
    #[arg(long)]
    device: Option<String>,
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

fn load_config(path: &Path) -> Result<RunConfig<ModelConfig>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    read_run_config(&text).with_context(|| format!("config {}", path.display()))
}

type LmTrainer = Trainer<LanguageModel, TokenDataset>;

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
    let mut trainer: LmTrainer = match &a.resume {
        Some(dir) => {
            if a.config.is_some()
                || a.data.is_some()
                || a.epochs.is_some()
                || a.seed.is_some()
                || a.device.is_some()
            {
                bail!("--resume continues the saved run as it was configured; drop --config, --data, --epochs, --seed and --device");
            }
            Trainer::resume(dir, opts, lsnn_train::lm::token_data)?
        }
        None => {
            let mut cfg = match &a.config {
                Some(p) => load_config(p)?,
                None => RunConfig {
                    model: ModelConfig::default(),
                    train: TrainConfig::default(),
                },
            };
            if let Some(e) = a.epochs {
                cfg.train.num_epochs = e;
            }
            if let Some(s) = a.seed {
                cfg.train.seed = s;
            }
            if let Some(d) = &a.device {
                cfg.train.device = d.clone();
            }
            if cfg.train.mixed_precision && cfg.train.parse_device()?.is_none() {
                eprintln!("warning: mixed_precision has no effect on the CPU; training in f32");
            }
            let seq = cfg.model.sequence_length;
            let data = match &a.data {
                Some(p) => TokenDataset::from_text_file(p, seq)?,
                None => ArithmeticTask::new(cfg.train.seed).dataset(seq)?,
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
    if let Some(e) = &summary.last_eval {
        let vs = match &summary.baseline {
            Some((name, b)) => format!(
                " vs {name} {b:.4} ({:.1}% below)",
                100.0 * (1.0 - e.loss() / b)
            ),
            None => String::new(),
        };
        println!("done: {}{vs}", super::metrics_line(e));
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
