//! `lsnn-gate`: the deterministic figures `cargo xtask bench-gate` compares with its baseline.
//!
//! ```text
//! lsnn-gate measure    JSON of allocation counts and peak live bytes (single-threaded),
//!                      and the fused/reference time ratios of each component, and
//!                      where the CPU has AVX-512F the matmul's rate over the AVX2 peak,
//!                      and where it has AVX-512 BF16 the bf16 matmul's rate over gemm's
//! lsnn-gate instr      a fixed workload to run under valgrind's callgrind (instruction counts)
//! ```

use anyhow::{bail, Result};
use lsnn_bench::peak::{best_fma_gflops, bf16_gflops, gemm_gflops, Width};
use lsnn_bench::{cases, components};
use lsnn_layers::kernel::bf16::Bf16Kernel;
use lsnn_memory::{alloc, CountingAlloc, PeakWindow};
use lsnn_train::workload::{workload, StepBench};
use std::collections::BTreeMap;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The ratio that guards the matmul's AVX-512 path.
const MATMUL_RATIO: &str = "matmul avx512: gemm [256x512].[512x2048] over the AVX2 peak";
/// The ratio that guards the bf16 matmul's AVX-512 BF16 kernel.
const BF16_RATIO: &str = "matmul bf16: avx512_bf16 [256x512].[512x2048] over f32 gemm";

fn per_step(step: &mut StepBench, train: bool) -> Result<(u64, u64)> {
    for i in 0..3 {
        if train {
            step.train_step(i, false)?
        } else {
            step.infer_step(i)?
        }
    }
    let n = 4;
    let a0 = alloc::allocation_count();
    let start = alloc::live_bytes();
    let w = PeakWindow::open();
    for i in 0..n {
        if train {
            step.train_step(3 + i, false)?
        } else {
            step.infer_step(3 + i)?
        }
    }
    let peak = w.close().saturating_sub(start);
    Ok(((alloc::allocation_count() - a0) / n as u64, peak))
}

fn measure() -> Result<()> {
    let mut m = BTreeMap::new();
    let mut s = StepBench::new(&workload("lm-small")?)?;
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
    // The matmul's AVX-512 path, which valgrind cannot see: gemm on lm-medium's block linear
    // over the AVX2 FMA peak, both on one thread in this run. Only 512-bit kernels can pass 1 —
    // on a CPU whose 512-bit FMA is really wider (two full ports); where it is not (Zen 4 runs
    // it in two 256-bit halves) the ratio cannot tell the paths apart and is not reported.
    if Width::Avx512.available() {
        let avx2 = best_fma_gflops(Width::Avx2, 1, 0.25, 3);
        let avx512 = best_fma_gflops(Width::Avx512, 1, 0.25, 3);
        if avx512 >= 1.5 * avx2 {
            let rate = gemm_gflops(256, 2048, 512, 0.25, 3);
            ratios.insert(MATMUL_RATIO.to_string(), rate / avx2);
        } else {
            eprintln!(
                "lsnn-gate: AVX-512 FMA peak {avx512:.0} GFLOP/s is not 1.5x the AVX2 one \
                 ({avx2:.0}); {MATMUL_RATIO} not measured"
            );
        }
    } else {
        eprintln!("lsnn-gate: no AVX-512F on this CPU; {MATMUL_RATIO} not measured");
    }
    // The bf16 kernel, which valgrind cannot see either: its rate over gemm's f32 rate on the
    // same shape, one thread each, in this run. Only the bf16 dot products (two products per
    // lane per instruction, half the bytes to load) can lift it far above 1.
    let (m_, n_, k_) = (256, 2048, 512);
    match bf16_gflops(Bf16Kernel::Avx512Bf16, m_, n_, k_, 0.25, 3) {
        Some(bf16) => {
            let f32_rate = gemm_gflops(m_, n_, k_, 0.25, 3);
            ratios.insert(BF16_RATIO.to_string(), bf16 / f32_rate);
        }
        None => eprintln!("lsnn-gate: no AVX-512 BF16 on this CPU; {BF16_RATIO} not measured"),
    }
    println!("{}", serde_json::json!({ "metrics": m, "ratios": ratios }));
    Ok(())
}

fn instr() -> Result<()> {
    // A fixed, small workload: two training steps and one inference of the leak-suite's tiny LM.
    let mut s = StepBench::new(&cases::tiny_config())?;
    s.train_step(0, false)?;
    s.train_step(1, false)?;
    s.infer_step(2)?;
    Ok(())
}

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref() {
        Some("measure") => measure(),
        Some("instr") => instr(),
        _ => bail!("usage: lsnn-gate measure | instr"),
    }
}
