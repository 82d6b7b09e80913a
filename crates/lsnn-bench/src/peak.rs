//! The machine's f32 arithmetic peak and the matmul's rate against it, measured (design §9.4):
//! independent FMA chains in registers on one thread and on two, with 256-bit (AVX2 + FMA) and,
//! where the CPU has them, 512-bit (AVX-512F) vectors; and the `gemm` crate — the matmul of
//! candle and of the fused kernels — on one of the project's shapes. `fma-peak` prints both;
//! `lsnn-gate` reports the gemm rate over the AVX2 peak as a ratio, which only an AVX-512 matmul
//! can lift above 1 (so losing that path fails the gate where the CPU has it).
//!
//! Twelve accumulators per thread hide the FMA latency (4 cycles on two ports needs eight in
//! flight); the loop body is nothing but FMAs on registers, so the figure is the cores'
//! arithmetic rate and nothing else (no memory, no packing).

use lsnn_layers::kernel::bf16::{matmul_bf16_on, Bf16Kernel, Operand};
use std::time::{Duration, Instant};

/// Independent FMA chains per thread (one FMA = 2 FLOP per lane).
pub const ACCUMULATORS: usize = 12;

/// The vector width of the FMA chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 256-bit AVX2 + FMA: 8 f32 lanes.
    Avx2,
    /// 512-bit AVX-512F: 16 f32 lanes.
    Avx512,
}

impl Width {
    /// f32 lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Width::Avx2 => 8,
            Width::Avx512 => 16,
        }
    }
    /// What the figure is called in the output.
    pub fn name(self) -> &'static str {
        match self {
            Width::Avx2 => "AVX2+FMA (256-bit)",
            Width::Avx512 => "AVX-512F (512-bit)",
        }
    }
    /// Whether this CPU has the instructions.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Width::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
                Width::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }
}

/// Runs `iters` iterations of the twelve FMA chains; returns a value that depends on every
/// chain so that none is optimised away (NaN where the CPU lacks the width's instructions).
pub fn chains(width: Width, iters: u64) -> f32 {
    if !width.available() {
        return f32::NAN;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `available` found the width's instructions on this CPU.
        unsafe {
            match width {
                Width::Avx2 => x86::chains_avx2(iters),
                Width::Avx512 => x86::chains_avx512(iters),
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (width, iters);
        0.0
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ACCUMULATORS;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn chains_avx2(iters: u64) -> f32 {
        // Multipliers just below 1 and small addends keep the values finite and normal.
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut out = [0f32; 8];
        // SAFETY: `out` holds the 8 lanes the store writes.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }

    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn chains_avx512(iters: u64) -> f32 {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }
}

/// GFLOP/s of `threads` threads each running the chains for `iters` iterations.
pub fn fma_gflops(width: Width, threads: usize, iters: u64) -> f64 {
    let start = Instant::now();
    let sink: f32 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || chains(width, iters)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    let flop = 2.0 * (width.lanes() * ACCUMULATORS) as f64 * iters as f64 * threads as f64;
    flop / secs / 1e9
}

/// Iterations of the chains that take about `seconds` on one thread.
pub fn calibrate(width: Width, seconds: f64) -> u64 {
    let mut iters = 100_000u64;
    loop {
        let t = Instant::now();
        std::hint::black_box(chains(width, iters));
        let el = t.elapsed();
        if el > Duration::from_millis(50) {
            return ((seconds / (el.as_secs_f64() / iters as f64)) as u64).max(1);
        }
        iters *= 4;
    }
}

/// The best of `reps` runs of [`fma_gflops`] for about `seconds` each.
pub fn best_fma_gflops(width: Width, threads: usize, seconds: f64, reps: usize) -> f64 {
    let iters = calibrate(width, seconds);
    (0..reps.max(1))
        .map(|_| fma_gflops(width, threads, iters))
        .fold(0.0, f64::max)
}

/// The best GFLOP/s of `reps` timings of enough calls of `product` (one product of `flop`
/// floating-point operations) to take about `seconds`, after two warm-up calls.
fn best_rate(flop: f64, seconds: f64, reps: usize, mut product: impl FnMut()) -> f64 {
    product();
    product();
    let t = Instant::now();
    product();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let count = ((seconds / once) as usize).max(1);
    let mut best = 0.0f64;
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        for _ in 0..count {
            product();
        }
        let secs = t.elapsed().as_secs_f64();
        best = best.max(flop * count as f64 / secs / 1e9);
    }
    best
}

/// Deterministic operands for a rate measurement: lhs [m × k] and rhs [k × n], row-major.
fn operands(m: usize, n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    (
        (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect(),
        (0..k * n).map(|i| ((i % 7) as f32 - 3.0) * 0.02).collect(),
    )
}

/// GFLOP/s of the `gemm` crate on one thread for dst [m × n] = lhs [m × k] · rhs [k × n], all
/// row-major f32: the best of `reps` timings of enough products to take about `seconds`.
pub fn gemm_gflops(m: usize, n: usize, k: usize, seconds: f64, reps: usize) -> f64 {
    let (lhs, rhs) = operands(m, n, k);
    let mut dst = vec![0f32; m * n];
    let flop = 2.0 * (m * n * k) as f64;
    best_rate(flop, seconds, reps, || {
        // SAFETY: dst holds m·n, lhs m·k and rhs k·n elements, each row-major with the
        // strides given; dst aliases neither input.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                lhs.as_ptr(),
                1,
                k as isize,
                rhs.as_ptr(),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        std::hint::black_box(dst[0]);
    })
}

/// GFLOP/s of the bf16 matmul (`lsnn_layers::kernel::bf16`, f32 operands rounded while packed,
/// f32 accumulation) on one thread with `kernel`, as [`gemm_gflops`] measures gemm; `None`
/// where the CPU cannot run `kernel`.
pub fn bf16_gflops(
    kernel: Bf16Kernel,
    m: usize,
    n: usize,
    k: usize,
    seconds: f64,
    reps: usize,
) -> Option<f64> {
    if !kernel.available() {
        return None;
    }
    let (lhs, rhs) = operands(m, n, k);
    let mut dst = vec![0f32; m * n];
    let flop = 2.0 * (m * n * k) as f64;
    Some(best_rate(flop, seconds, reps, || {
        let done = matmul_bf16_on(
            kernel,
            (m, n, k),
            &mut dst,
            false,
            Operand::row_major(&lhs, k),
            Operand::row_major(&rhs, n),
            false,
        );
        std::hint::black_box((done.is_ok(), dst[0]));
    }))
}
