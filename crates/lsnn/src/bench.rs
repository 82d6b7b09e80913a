//! `lsnn bench`: the design §9.1 measurement, so the figures compare with the PyTorch ones.
//!
//! A pool of 8 fixed batches, cycled: random byte tokens (lm-small, lm-medium) or random
//! features and targets (ts-small, cls-small). A training step is forward in training mode
//! (dropout on) → the unsmoothed loss → backward → AdamW (lr 1e-3, weight decay 0.01), no
//! clipping, no EMA, no accumulation, no cleanup; an inference step is a batched forward in
//! evaluation mode. 3 warm-up steps, then timed steps; tokens/s = B·L / median step time
//! (positions for the sequence workloads); peak RSS is the process's `VmHWM`.

use anyhow::{bail, Result};
use clap::Args;
use lsnn_train::lsnn_layers::ModelConfig;
use lsnn_train::lsnn_memory::{alloc, rss};
use lsnn_train::workload::{workload, StepBench};
use lsnn_train::RunConfig;
use std::time::Instant;

/// Arguments of `lsnn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// lm-small, lm-medium, ts-small, cls-small, lm-long-1k or lm-long-4k (design §9.1).
    #[arg(long, default_value = "lm-small")]
    workload: String,
    /// Print one flat JSON object.
    #[arg(long)]
    json: bool,
    /// Timed steps of each kind.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Also measure a training step with clipping and EMA (reported separately).
    #[arg(long)]
    full: bool,
    /// Changes a field of the workload's config, as `train --set` does (repeatable): e.g.
    /// `recompute_activations=true`, `tbptt=128`, `attention_kernel=materialized`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Device: cpu (default), cuda or cuda:N. On CUDA every step ends with a device
    /// synchronise, so a step's time is its work, not its queueing.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The fused linears' matrix products: f32, or bf16 (operands rounded to bf16, sums in f32;
    /// needs a CPU with AVX-512 BF16).
    #[arg(long, default_value = "f32", value_parser = crate::commands::precision::CHOICES)]
    precision: String,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The workload's config with `--set` applied (validated; an unknown key is an error naming it).
fn with_sets(cfg: RunConfig<ModelConfig>, sets: &[String]) -> Result<RunConfig<ModelConfig>> {
    if sets.is_empty() {
        return Ok(cfg);
    }
    let mut map = match serde_json::from_str(&cfg.to_json()?)? {
        serde_json::Value::Object(m) => m,
        _ => unreachable!("a config serialises to an object"),
    };
    for s in sets {
        let (k, v) = crate::commands::config::parse_set(s)?;
        map.insert(k, v);
    }
    let cfg = RunConfig::<ModelConfig>::from_json(&serde_json::Value::Object(map).to_string())?;
    cfg.model.validate()?;
    Ok(cfg)
}

/// `lsnn bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    use lsnn_train::lsnn_layers::kernel::with_matmul_precision;
    if a.steps == 0 {
        bail!("--steps 0; expected at least 1");
    }
    let precision = crate::commands::precision::parse(&a.precision, Some(&a.device))?;
    with_matmul_precision(precision, || measure(a))
}

/// The measurement itself, in the precision the caller set.
fn measure(a: BenchArgs) -> Result<()> {
    let device = lsnn_train::config::candle_device(&a.device)?;
    let cfg = with_sets(workload(&a.workload)?, &a.set)?;
    let mut bench = StepBench::new_on(&cfg, &device)?;
    let sync = || -> Result<()> { Ok(device.synchronize()?) };
    for i in 0..3 {
        bench.train_step(i, false)?;
    }
    sync()?;
    let mut times = Vec::with_capacity(a.steps);
    let allocs_before = alloc::allocation_count();
    let peak_window = alloc::PeakWindow::open();
    for i in 0..a.steps {
        let t = Instant::now();
        bench.train_step(3 + i, false)?;
        sync()?;
        times.push(t.elapsed().as_secs_f64());
    }
    let largest_alloc = peak_window.largest_allocation();
    let peak_live = peak_window.close();
    // On a device, what its driver says is in use after the training steps (the host figures
    // below measure the host side only).
    let device_used = match device.is_cpu() {
        true => None,
        false => Some(lsnn_train::lsnn_memory::probe_for(&device)?.live_bytes()?),
    };
    let allocs = (alloc::allocation_count() - allocs_before) as f64 / a.steps as f64;
    let train_ms = median(&mut times) * 1e3;
    let mut full_ms = None;
    if a.full {
        let mut ft = Vec::with_capacity(a.steps);
        for i in 0..a.steps {
            let t = Instant::now();
            bench.train_step(i, true)?;
            sync()?;
            ft.push(t.elapsed().as_secs_f64());
        }
        full_ms = Some(median(&mut ft) * 1e3);
    }
    for i in 0..3 {
        bench.infer_step(i)?;
    }
    sync()?;
    let mut it = Vec::with_capacity(a.steps);
    for i in 0..a.steps {
        let t = Instant::now();
        bench.infer_step(i)?;
        sync()?;
        it.push(t.elapsed().as_secs_f64());
    }
    let (b, l) = (
        bench.config().train.batch_size,
        bench.config().model.sequence_length,
    );
    let infer_ms = median(&mut it) * 1e3;
    let tokens = (b * l) as f64;
    let peak_rss_mib = rss::peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let mut j = serde_json::json!({
        "workload": a.workload,
        "set": a.set,
        "device": a.device,
        "batch": b,
        "seq_len": l,
        "steps": a.steps,
        "train_median_ms": train_ms,
        "train_tokens_per_s": tokens / (train_ms / 1e3),
        "infer_median_ms": infer_ms,
        "infer_tokens_per_s": tokens / (infer_ms / 1e3),
        "peak_rss_mib": peak_rss_mib,
        "peak_live_bytes": peak_live,
        "largest_alloc_bytes": largest_alloc,
        "allocs_per_train_step": allocs,
        "rayon_threads": threads,
        "precision": a.precision,
    });
    if let Some(u) = device_used {
        j["device_used_mib"] = serde_json::json!(u as f64 / (1024.0 * 1024.0));
    }
    if let Some(f) = full_ms {
        j["train_full_median_ms"] = serde_json::json!(f);
        j["train_full_tokens_per_s"] = serde_json::json!(tokens / (f / 1e3));
    }
    let mut lines = Vec::new();
    if a.json {
        lines.push(j.to_string());
    } else {
        lines.push(format!(
            "workload {} (B={b}, L={l}), {} timed steps each, {} matmuls",
            a.workload, a.steps, a.precision
        ));
        lines.push(format!(
            "  train:     median {train_ms:.2} ms  -> {:.0} tokens/s",
            tokens / (train_ms / 1e3)
        ));
        if let Some(f) = full_ms {
            lines.push(format!(
                "  train+clip+EMA: median {f:.2} ms -> {:.0} tokens/s",
                tokens / (f / 1e3)
            ));
        }
        lines.push(format!(
            "  inference: median {infer_ms:.2} ms  -> {:.0} tokens/s",
            tokens / (infer_ms / 1e3)
        ));
        lines.push(format!(
            "  peak RSS {peak_rss_mib:.1} MiB, peak live {:.1} MiB, largest allocation {:.2} MiB, {allocs:.0} allocations per training step",
            peak_live as f64 / 1048576.0,
            largest_alloc as f64 / 1048576.0
        ));
    }
    for line in lines {
        if !crate::output::out(&line) {
            return Err(crate::exit::OutputFailed.into());
        }
    }
    Ok(())
}
