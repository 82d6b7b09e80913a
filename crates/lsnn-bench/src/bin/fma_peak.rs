//! Prints the machine's f32 multiply-add peak (one and two threads, AVX2 and AVX-512) and the
//! `gemm` crate's rate on the project's shapes on one thread: the figures docs/performance.md
//! states every GFLOP/s against (design §9.4); and the bf16 matmul's rate on the same shapes
//! with each of its kernels (design §9.5).
//!
//! ```text
//! cargo run --release -p lsnn-bench --bin fma-peak [-- --seconds 1]
//! ```
//!
//! Each figure is the best of five runs of about the given time (the machine is shared).

use lsnn_bench::peak::{best_fma_gflops, bf16_gflops, gemm_gflops, Width, ACCUMULATORS};
use lsnn_layers::kernel::bf16::Bf16Kernel;

/// (what, m, n, k): lm-small's and lm-medium's largest linears as one shard of 4 rows × 64
/// positions sees them, forward; and the CfC's per-step product.
const SHAPES: [(&str, usize, usize, usize); 4] = [
    (
        "lm-small block linear [256 x 128] . [128 x 512]",
        256,
        512,
        128,
    ),
    (
        "lm-medium block linear [256 x 512] . [512 x 2048]",
        256,
        2048,
        512,
    ),
    ("lm-medium dW [512 x 256] . [256 x 2048]", 512, 2048, 256),
    ("CfC step [4 x 64] . [64 x 256]", 4, 256, 64),
];

fn main() {
    let mut seconds = 1.0f64;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => match it.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(v) if v > 0.0 && v.is_finite() => seconds = v,
                _ => {
                    eprintln!("fma-peak: --seconds takes a positive number of seconds");
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("fma-peak: unknown argument {other:?}; expected --seconds S");
                std::process::exit(2);
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "f32 FMA peak, {ACCUMULATORS} independent chains per thread, best of 5 runs of ~{seconds} s"
    );
    for width in [Width::Avx2, Width::Avx512] {
        if !width.available() {
            println!("{:<20} not available on this CPU", width.name());
            continue;
        }
        let mut counts = vec![1];
        if cores >= 2 {
            counts.push(2);
        }
        for threads in counts {
            let g = best_fma_gflops(width, threads, seconds, 5);
            println!(
                "{:<20} {threads} thread{}: {g:8.1} GFLOP/s",
                width.name(),
                if threads == 1 { " " } else { "s" }
            );
        }
    }
    println!("gemm crate, one thread (the path it picks on this CPU), best of 5:");
    for (what, m, n, k) in SHAPES {
        println!(
            "{what:<52} {:8.1} GFLOP/s",
            gemm_gflops(m, n, k, seconds, 5)
        );
    }
    println!("bf16 matmul (bf16 operands, f32 accumulation), one thread, best of 5:");
    for kernel in [Bf16Kernel::Avx512Bf16, Bf16Kernel::Portable] {
        for (what, m, n, k) in SHAPES {
            let rate = bf16_gflops(kernel, m, n, k, seconds, 5);
            match rate {
                Some(r) => println!("{:<12} {what:<52} {r:8.1} GFLOP/s", kernel.name()),
                None => println!("{:<12} not available on this CPU", kernel.name()),
            }
            if rate.is_none() {
                break;
            }
        }
    }
}
