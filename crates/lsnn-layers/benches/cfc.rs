//! Criterion benches of the liquid cells at lm-small sizes (design §9.1: B = 8, L = 64, inputs
//! S = 64, H = 64): forward + backward over the 64-step sequence, the fused op against its
//! composed reference, for the dense CfC (backbone 128, one layer; constant and per-step time
//! spans), the wired CfC over AutoNCP(64, 19), and the LTC (6 unfolds) dense and over the same
//! AutoNCP — and the question the wired op answers: at the NCP wirings' real sparsities, is a
//! masked dense product or a sparse (CSR) one faster per step?
//!
//! Run: `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench -p lsnn-layers --bench cfc`
//! (the fused ops are single-threaded here; ncps' PyTorch side, CfC and LTC:
//! `scripts/bench/bench_cfc_ncps.py`).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcState, WiredCfc, WiredCfcConfig};
use lsnn_layers::kernel::composed;
use lsnn_layers::ltc::{Ltc, LtcConfig};
use lsnn_layers::wiring::{AutoNcpConfig, FullyConnectedConfig, Wiring};
use lsnn_layers::{SeededInit, SeededRng};

const B: usize = 8;
const L: usize = 64;
const S: usize = 64;

fn input(seed: u64) -> Var {
    Var::from_tensor(
        &SeededRng::new(seed)
            .normal_tensor((B, L, S), 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap()
}

fn bench_dense(c: &mut Criterion) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(1), DType::F32, &Device::Cpu);
    let cell = Cfc::new(&CfcConfig::new(S, 64).with_backbone(128, 1), vb).unwrap();
    let x = input(2);
    let ts = SeededRng::new(3)
        .uniform_tensor((B, L), 0.5, 1.5, DType::F32, &Device::Cpu)
        .unwrap();
    let run = |spans: bool| {
        let out = if spans {
            cell.forward_timespans(x.as_tensor(), &ts, None).unwrap().0
        } else {
            cell.forward_state(x.as_tensor(), None).unwrap().0
        };
        out.sum_all().unwrap().backward().unwrap()
    };
    for (name, spans) in [
        ("cfc_dense_B8_L64_U128_H64_fwd_bwd", false),
        ("cfc_dense_timespans_B8_L64_U128_H64_fwd_bwd", true),
    ] {
        let mut g = c.benchmark_group(name);
        g.bench_function("fused", |b| b.iter(|| run(spans)));
        g.bench_function("reference", |b| b.iter(|| composed(|| run(spans))));
        g.finish();
    }
}

fn bench_wired(c: &mut Criterion) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(4), DType::F32, &Device::Cpu);
    let wiring = AutoNcpConfig::new(64, 19).build(S).unwrap();
    let cell = WiredCfc::new(&WiredCfcConfig::new(wiring), vb).unwrap();
    let x = input(5);
    let h0 = Tensor::zeros((B, 64), DType::F32, &Device::Cpu).unwrap();
    let st = CfcState { h: h0 };
    let run = || {
        cell.forward_state(x.as_tensor(), Some(&st))
            .unwrap()
            .0
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    };
    let mut g = c.benchmark_group("cfc_wired_autoncp64_19_B8_L64_fwd_bwd");
    g.bench_function("fused", |b| b.iter(run));
    g.bench_function("reference", |b| b.iter(|| composed(run)));
    g.finish();
}

fn bench_ltc(c: &mut Criterion) {
    for (name, wiring) in [
        (
            "ltc_dense_B8_L64_H64_fwd_bwd",
            FullyConnectedConfig::new(64).build(S).unwrap(),
        ),
        (
            "ltc_wired_autoncp64_19_B8_L64_fwd_bwd",
            AutoNcpConfig::new(64, 19).build(S).unwrap(),
        ),
    ] {
        let vm = VarMap::new();
        let vb = SeededInit::var_builder(&vm, SeededRng::new(6), DType::F32, &Device::Cpu);
        let cell = Ltc::new(&LtcConfig::new(wiring), vb).unwrap();
        let x = input(8);
        let run = || {
            cell.forward_state(x.as_tensor(), None)
                .unwrap()
                .0
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        };
        let mut g = c.benchmark_group(name);
        g.bench_function("fused", |b| b.iter(run));
        g.bench_function("reference", |b| b.iter(|| composed(run)));
        g.finish();
    }
}

/// One layer's masked map W [F × K] (F = 3 heads × H rows, K = inputs + H) as dense rows and as
/// CSR (the nonzero columns of each row).
struct LayerMap {
    f: usize,
    k: usize,
    dense: Vec<f32>,
    row_start: Vec<usize>,
    cols: Vec<usize>,
    vals: Vec<f32>,
}

fn layer_maps(w: &Wiring) -> Vec<LayerMap> {
    let mut rng = SeededRng::new(7);
    (0..w.layer_list().len())
        .map(|l| {
            let mask = w.layer_input_mask(l);
            let (inp, h) = (mask.len(), mask[0].len());
            let (f, k) = (3 * h, inp + h);
            let vals_all = rng
                .normal_tensor(f * k, 0.0, 1.0, DType::F32, &Device::Cpu)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let mut dense = vec![0f32; f * k];
            let (mut row_start, mut cols, mut vals) = (vec![0], Vec::new(), Vec::new());
            for r in 0..f {
                let unit = r % h;
                // ff1 and ff2 (the first 2H rows) are masked; time_a/time_b read everything.
                let masked = r < 2 * h;
                for c in 0..k {
                    let keep = !masked || c >= inp || mask[c][unit] != 0.0;
                    if keep {
                        dense[r * k + c] = vals_all[r * k + c];
                        cols.push(c);
                        vals.push(vals_all[r * k + c]);
                    }
                }
                row_start.push(cols.len());
            }
            LayerMap {
                f,
                k,
                dense,
                row_start,
                cols,
                vals,
            }
        })
        .collect()
}

/// y [B × F] = x [B × K] · Wᵀ, densely (gemm over the masked matrix).
fn dense_product(m: &LayerMap, x: &[f32], y: &mut [f32]) {
    // SAFETY: x is [B × K], dense [F × K] row-major read as Wᵀ [K × F] (row stride 1, column
    // stride K), y [B × F]; all in bounds by construction.
    unsafe {
        gemm::gemm(
            B,
            m.f,
            m.k,
            y.as_mut_ptr(),
            1,
            m.f as isize,
            false,
            x.as_ptr(),
            1,
            m.k as isize,
            m.dense.as_ptr(),
            m.k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The same product over the nonzeros only.
fn csr_product(m: &LayerMap, x: &[f32], y: &mut [f32]) {
    for r in 0..B {
        let xr = &x[r * m.k..(r + 1) * m.k];
        for j in 0..m.f {
            let mut acc = 0f32;
            for i in m.row_start[j]..m.row_start[j + 1] {
                acc += m.vals[i] * xr[m.cols[i]];
            }
            y[r * m.f + j] = acc;
        }
    }
}

fn bench_sparsity(c: &mut Criterion) {
    let mut g = c.benchmark_group("cfc_wired_step_products_B8");
    for (units, outputs, sparsity) in [(64, 19, 0.5), (64, 19, 0.75), (128, 38, 0.9)] {
        let w = AutoNcpConfig::new(units, outputs)
            .with_sparsity(sparsity)
            .build(S)
            .unwrap();
        let maps = layer_maps(&w);
        let nnz: usize = maps.iter().map(|m| m.vals.len()).sum();
        let all: usize = maps.iter().map(|m| m.f * m.k).sum();
        let label = format!(
            "ncp{units}_sparsity{sparsity}_density{:.2}",
            nnz as f64 / all as f64
        );
        let xs: Vec<Vec<f32>> = maps.iter().map(|m| vec![0.5f32; B * m.k]).collect();
        let mut ys: Vec<Vec<f32>> = maps.iter().map(|m| vec![0f32; B * m.f]).collect();
        g.bench_with_input(
            BenchmarkId::new("masked_dense_gemm", &label),
            &(),
            |b, _| {
                b.iter(|| {
                    for ((m, x), y) in maps.iter().zip(&xs).zip(ys.iter_mut()) {
                        dense_product(m, x, y);
                    }
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("csr", &label), &(), |b, _| {
            b.iter(|| {
                for ((m, x), y) in maps.iter().zip(&xs).zip(ys.iter_mut()) {
                    csr_product(m, x, y);
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_dense, bench_wired, bench_ltc, bench_sparsity
}
criterion_main!(benches);
