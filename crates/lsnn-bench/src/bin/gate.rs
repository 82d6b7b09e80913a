//! `lsnn-gate`: the deterministic figures `cargo xtask bench-gate` compares with its baseline.
//!
//! ```text
//! lsnn-gate measure    JSON of allocation counts and peak live bytes (single-threaded),
//!                      and the fused/reference time ratios of each component
//! lsnn-gate instr      a fixed workload to run under valgrind's callgrind (instruction counts)
//! ```

use anyhow::{bail, Result};
use candle_core::{Device, Tensor, Var};
use lsnn_bench::{cases, components};
use lsnn_layers::{init_model, Mode, ModelConfig, SeededRng};
use lsnn_memory::{alloc, CountingAlloc, PeakWindow};
use lsnn_train::optim::{AdamW, AdamWConfig};
use std::collections::BTreeMap;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

struct Step {
    model: lsnn_layers::LanguageModel,
    vars: Vec<(String, Var)>,
    opt: AdamW,
    pool: Vec<Tensor>,
    rng: SeededRng,
    seq: usize,
}

impl Step {
    fn new(cfg: &ModelConfig) -> Result<Self> {
        let (model, vm) = init_model(cfg, SeededRng::new(cfg.seed), &Device::Cpu)?;
        let vars = lsnn_layers::named_vars(&vm);
        let opt = AdamW::new(&vars, AdamWConfig::default())?;
        let mut r = SeededRng::new(7);
        let (b, l) = (cfg.batch_size, cfg.sequence_length + 1);
        let pool = (0..8)
            .map(|_| {
                Tensor::from_vec(
                    (0..b * l)
                        .map(|_| r.below(256) as u32)
                        .collect::<Vec<u32>>(),
                    (b, l),
                    &Device::Cpu,
                )
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Step {
            model,
            vars,
            opt,
            pool,
            rng: SeededRng::new(11),
            seq: cfg.sequence_length,
        })
    }

    fn train(&mut self, i: usize) -> Result<()> {
        let (_, loss) = self
            .model
            .loss(&self.pool[i % 8], 0.0, &mut Mode::Train(&mut self.rng))?;
        let grads = loss.objective.backward()?;
        let g: BTreeMap<String, Tensor> = self
            .vars
            .iter()
            .filter_map(|(k, v)| grads.get(v.as_tensor()).map(|g| (k.clone(), g.clone())))
            .collect();
        drop(grads);
        self.opt.step(&g, 1e-3, 1.0)?;
        Ok(())
    }

    fn infer(&mut self, i: usize) -> Result<()> {
        let ids = self.pool[i % 8].narrow(1, 0, self.seq)?;
        self.model.forward(&ids, &mut Mode::Eval)?;
        Ok(())
    }
}

fn per_step(step: &mut Step, train: bool) -> Result<(u64, u64)> {
    for i in 0..3 {
        if train {
            step.train(i)?
        } else {
            step.infer(i)?
        }
    }
    let n = 4;
    let a0 = alloc::allocation_count();
    let start = alloc::live_bytes();
    let w = PeakWindow::open();
    for i in 0..n {
        if train {
            step.train(3 + i)?
        } else {
            step.infer(3 + i)?
        }
    }
    let peak = w.close().saturating_sub(start);
    Ok(((alloc::allocation_count() - a0) / n as u64, peak))
}

fn lm_small() -> ModelConfig {
    ModelConfig {
        num_spike_steps: 4,
        attention_spike_steps: 8,
        ..ModelConfig::default()
    }
}

fn measure() -> Result<()> {
    let mut m = BTreeMap::new();
    let mut s = Step::new(&lm_small())?;
    let (a, p) = per_step(&mut s, true)?;
    m.insert("lm-small.train_step.allocs".to_string(), a as f64);
    m.insert("lm-small.train_step.peak_live_bytes".to_string(), p as f64);
    let (a, p) = per_step(&mut s, false)?;
    m.insert("lm-small.infer_step.allocs".to_string(), a as f64);
    m.insert("lm-small.infer_step.peak_live_bytes".to_string(), p as f64);
    let mut ratios = BTreeMap::new();
    for c in components::measure_all(7)? {
        m.insert(
            format!("{}.fused_peak_bytes", c.name),
            c.fused_peak_bytes as f64,
        );
        m.insert(format!("{}.fused_allocs", c.name), c.fused_allocs as f64);
        ratios.insert(format!("{}.speedup", c.name), c.speedup);
        ratios.insert(format!("{}.peak_ratio", c.name), c.peak_ratio);
    }
    println!("{}", serde_json::json!({ "metrics": m, "ratios": ratios }));
    Ok(())
}

fn instr() -> Result<()> {
    // A fixed, small workload: two training steps and one inference of the leak-suite's tiny LM.
    let mut s = Step::new(&cases::tiny_config())?;
    s.train(0)?;
    s.train(1)?;
    s.infer(2)?;
    Ok(())
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("measure") => measure(),
        Some("instr") => instr(),
        _ => bail!("usage: lsnn-gate measure | instr"),
    }
}
