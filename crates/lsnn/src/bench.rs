//! `lsnn bench`: the SPEC §7 measurement, so the figures compare with the PyTorch ones.
//!
//! Random byte tokens from a pool of 8 fixed batches, cycled. A training step is forward in
//! training mode (dropout on) → unsmoothed next-token cross-entropy → backward → AdamW
//! (lr 1e-3, weight decay 0.01), no clipping, no EMA, no accumulation, no cleanup; an inference
//! step is a batched [B, L] forward in evaluation mode. 3 warm-up steps, then timed steps;
//! tokens/s = B·L / median step time; peak RSS is the process's `VmHWM`.

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use lsnn_train::lsnn_layers::{init_model, Mode, ModelConfig, SeededRng};
use lsnn_train::lsnn_memory::{alloc, rss};
use lsnn_train::optim::{global_norm, AdamW, AdamWConfig, Ema};
use std::collections::BTreeMap;
use std::time::Instant;

/// Arguments of `lsnn bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// lm-small or lm-medium (SPEC §7).
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
}

/// The SPEC §7 workload configs.
pub fn workload(name: &str) -> Result<ModelConfig> {
    let mut c = ModelConfig::default();
    match name {
        "lm-small" => {}
        "lm-medium" => {
            c.embedding_dim = 256;
            c.input_dim = 256;
            c.hidden_dim = 256;
            c.spiking_units = 128;
            c.liquid_units = 128;
            c.num_layers = 4;
            c.num_attention_heads = 8;
            c.sequence_length = 128;
            c.max_position_embeddings = 128;
            c.batch_size = 16;
        }
        other => bail!("unknown workload {other:?}; expected lm-small or lm-medium"),
    }
    c.num_spike_steps = 4;
    c.attention_spike_steps = 8;
    c.backbone_units = 128;
    c.backbone_layers = 1;
    Ok(c)
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

/// `lsnn bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    if a.steps == 0 {
        bail!("--steps 0; expected at least 1");
    }
    let cfg = workload(&a.workload)?;
    let dev = Device::Cpu;
    let (model, vm) = init_model(&cfg, SeededRng::new(cfg.seed), &dev)?;
    let vars = lsnn_train::lsnn_layers::named_vars(&vm);
    let mut opt = AdamW::new(
        &vars,
        AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        },
    )?;
    let (b, l) = (cfg.batch_size, cfg.sequence_length);
    let mut rng = SeededRng::new(7);
    let pool: Vec<Tensor> = (0..8)
        .map(|_| {
            let v: Vec<u32> = (0..b * (l + 1)).map(|_| rng.below(256) as u32).collect();
            Tensor::from_vec(v, (b, l + 1), &dev)
        })
        .collect::<candle_core::Result<_>>()?;
    let mut dropout = SeededRng::new(11);
    let mut ema = if a.full {
        Some(Ema::new(&vars, 0.999)?)
    } else {
        None
    };
    let mut step = |i: usize, full: bool, opt: &mut AdamW, ema: &mut Option<Ema>| -> Result<()> {
        let ids = &pool[i % pool.len()];
        let (_, loss) = model.loss(ids, 0.0, &mut Mode::Train(&mut dropout))?;
        let grads = loss.objective.backward()?;
        let g: BTreeMap<String, Tensor> = vars
            .iter()
            .filter_map(|(k, v)| grads.get(v.as_tensor()).map(|g| (k.clone(), g.clone())))
            .collect();
        let mut scale = 1.0;
        if full {
            let n = global_norm(&g)?;
            if n > 1.0 {
                scale = 1.0 / n;
            }
        }
        opt.step(&g, 1e-3, scale)?;
        if let (true, Some(e)) = (full, ema.as_mut()) {
            e.update(&vars)?;
        }
        Ok(())
    };
    for i in 0..3 {
        step(i, false, &mut opt, &mut ema)?;
    }
    let mut times = Vec::with_capacity(a.steps);
    let allocs_before = alloc::allocation_count();
    let peak_window = alloc::PeakWindow::open();
    for i in 0..a.steps {
        let t = Instant::now();
        step(3 + i, false, &mut opt, &mut ema)?;
        times.push(t.elapsed().as_secs_f64());
    }
    let peak_live = peak_window.close();
    let allocs = (alloc::allocation_count() - allocs_before) as f64 / a.steps as f64;
    let train_ms = median(&mut times) * 1e3;
    let mut full_ms = None;
    if a.full {
        let mut ft = Vec::with_capacity(a.steps);
        for i in 0..a.steps {
            let t = Instant::now();
            step(i, true, &mut opt, &mut ema)?;
            ft.push(t.elapsed().as_secs_f64());
        }
        full_ms = Some(median(&mut ft) * 1e3);
    }
    let infer_ids: Vec<Tensor> = pool
        .iter()
        .map(|p| p.narrow(1, 0, l))
        .collect::<candle_core::Result<_>>()?;
    for i in 0..3 {
        model.forward(&infer_ids[i % 8], &mut Mode::Eval)?;
    }
    let mut it = Vec::with_capacity(a.steps);
    for i in 0..a.steps {
        let t = Instant::now();
        let out = model.forward(&infer_ids[i % 8], &mut Mode::Eval)?;
        let _ = out.to_dtype(DType::F32)?;
        it.push(t.elapsed().as_secs_f64());
    }
    let infer_ms = median(&mut it) * 1e3;
    let tokens = (b * l) as f64;
    let peak_rss_mib = rss::peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let mut j = serde_json::json!({
        "workload": a.workload,
        "batch": b,
        "seq_len": l,
        "steps": a.steps,
        "train_median_ms": train_ms,
        "train_tokens_per_s": tokens / (train_ms / 1e3),
        "infer_median_ms": infer_ms,
        "infer_tokens_per_s": tokens / (infer_ms / 1e3),
        "peak_rss_mib": peak_rss_mib,
        "peak_live_bytes": peak_live,
        "allocs_per_train_step": allocs,
        "rayon_threads": threads,
    });
    if let Some(f) = full_ms {
        j["train_full_median_ms"] = serde_json::json!(f);
        j["train_full_tokens_per_s"] = serde_json::json!(tokens / (f / 1e3));
    }
    if a.json {
        println!("{j}");
    } else {
        println!(
            "workload {} (B={b}, L={l}), {} timed steps each",
            a.workload, a.steps
        );
        println!(
            "  train:     median {train_ms:.2} ms  -> {:.0} tokens/s",
            tokens / (train_ms / 1e3)
        );
        if let Some(f) = full_ms {
            println!(
                "  train+clip+EMA: median {f:.2} ms -> {:.0} tokens/s",
                tokens / (f / 1e3)
            );
        }
        println!(
            "  inference: median {infer_ms:.2} ms  -> {:.0} tokens/s",
            tokens / (infer_ms / 1e3)
        );
        println!("  peak RSS {peak_rss_mib:.1} MiB, peak live {:.1} MiB, {allocs:.0} allocations per training step", peak_live as f64 / 1048576.0);
    }
    Ok(())
}
