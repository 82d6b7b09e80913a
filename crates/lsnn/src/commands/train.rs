//! `lsnn train`: a fresh run from a config (lsnn's or the Python original's) or the default,
//! or the resume of a checkpointed run.

use crate::display::Display;
use crate::exit::{BadInput, INTERRUPTED, IO_FAILURE, SUCCESS};
use crate::output::{err, out};
use anyhow::{Context, Result};
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
    /// Where checkpoints go (default runs/default). A directory that holds a run is refused
    /// unless --overwrite replaces it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run already in --out (its checkpoints are removed once the new run's first
    /// one is saved).
    #[arg(long)]
    overwrite: bool,
    /// Continue the run in DIR (a run directory, or a checkpoint set inside one) exactly where
    /// it stopped; it keeps writing to its run directory.
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
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(format!("config {}: no such file", path.display())))
        }
        Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        bad(format!(
            "config {}: not UTF-8 (first bad byte at offset {}); expected a JSON text",
            path.display(),
            e.valid_up_to()
        ))
    })?;
    read_run_config(text).with_context(|| format!("config {}", path.display()))
}

type LmTrainer = Trainer<LanguageModel, TokenDataset>;

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// `lsnn train`: the exit code on success or interruption (errors are the caller's to map).
pub fn train(a: TrainArgs) -> Result<u8> {
    let started = std::time::Instant::now();
    let out_dir = match (&a.resume, &a.out) {
        (Some(r), None) => lsnn_train::checkpoint::run_dir_of(r),
        (Some(_), Some(_)) => {
            return Err(bad(
                "--resume writes to the resumed run's own directory; drop --out",
            ))
        }
        (None, o) => o.clone().unwrap_or_else(crate::default_out),
    };
    let mut opts = TrainOptions {
        out_dir: out_dir.clone(),
        max_batches: a.max_batches,
        eval_with_ema: a.eval_ema,
        overwrite: a.overwrite,
        stop: Some(crate::signals::stop_flag()),
        ..TrainOptions::default()
    };
    if let Some(b) = &a.memory_budget {
        opts.memory_budget = Some(parse_size(b).map_err(|e| bad(format!("--memory-budget: {e}")))?);
    }
    if a.max_batches == Some(0) {
        return Err(bad("--max-batches 0 trains nothing; expected at least 1"));
    }
    let mut trainer: LmTrainer = match &a.resume {
        Some(dir) => {
            if a.config.is_some()
                || a.data.is_some()
                || a.epochs.is_some()
                || a.seed.is_some()
                || a.device.is_some()
                || a.overwrite
            {
                return Err(bad("--resume continues the saved run as it was configured; drop --config, --data, --epochs, --seed, --device and --overwrite"));
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
                if e == 0 {
                    return Err(bad("--epochs 0 trains nothing; expected at least 1"));
                }
                cfg.train.num_epochs = e;
            }
            if let Some(s) = a.seed {
                cfg.train.seed = s;
            }
            if let Some(d) = &a.device {
                cfg.train.device = d.clone();
            }
            if cfg.train.mixed_precision && cfg.train.parse_device()?.is_none() {
                err("warning: mixed_precision has no effect on the CPU; training in f32");
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
    if summary.nothing_to_train {
        return Err(bad(format!(
            "nothing to train: the run in {} has finished all its epochs",
            out_dir.display()
        )));
    }
    let hwm = rss::peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    if summary.stop_requested {
        let why = if crate::output::broken() {
            "standard output closed"
        } else {
            "interrupted"
        };
        err(&format!(
            "{why}: checkpoint saved after {} batches ({} optimizer steps); resume with --resume {}",
            summary.batches,
            summary.steps,
            out_dir.display()
        ));
        return Ok(INTERRUPTED);
    }
    let mut lines = Vec::new();
    if summary.interrupted {
        lines.push(format!(
            "stopped after {} batches ({} optimizer steps); resume with --resume {}",
            summary.batches,
            summary.steps,
            out_dir.display()
        ));
    }
    if let Some(e) = &summary.last_eval {
        let vs = match &summary.baseline {
            Some((name, b)) => format!(
                " vs {name} {b:.4} ({:.1}% below)",
                100.0 * (1.0 - e.loss() / b)
            ),
            None => String::new(),
        };
        lines.push(format!("done: {}{vs}", super::metrics_line(e)));
    }
    lines.push(format!(
        "{} steps, {} skipped, {:.0} tokens/s, peak RSS {hwm:.0} MiB, {:.0} s; checkpoint in {}",
        summary.steps,
        summary.skipped,
        summary.tokens_per_s,
        started.elapsed().as_secs_f64(),
        out_dir.display()
    ));
    for l in lines {
        if !out(&l) {
            // The run is complete and saved; only its summary could not be shown.
            err(&format!(
                "standard output closed; the run finished and is saved in {}",
                out_dir.display()
            ));
            // Not "interrupted": there is nothing to resume. An output failure.
            return Ok(IO_FAILURE);
        }
    }
    Ok(SUCCESS)
}
