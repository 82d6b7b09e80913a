//! Criterion benches at the lm-small sizes of design §9.1, fused against the per-step reference,
//! forward + backward. A layer's reference is the layer run with the composed path forced
//! ([`lsnn_layers::kernel::composed`]): what it computes on a device without the fused kernels.
//!
//! Run: `cargo bench -p lsnn-layers --bench layers`
//! Single-threaded figures: `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench ...`

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
use lsnn_layers::kernel::composed;
use lsnn_layers::lif::{self, reference, LifConfig, LifParams};
use lsnn_layers::{Mode, SeededInit, SeededRng};

fn lif_cfg() -> LifConfig {
    LifConfig::new(0.95).with_threshold(1.0)
}

fn bench_lif(c: &mut Criterion) {
    // lm-small's q/k/v: B·L·D = 8·64·128 = 65,536 neurons, T = 8 rate steps.
    let mut rng = SeededRng::new(1);
    let x = Var::from_tensor(
        &rng.normal_tensor(65_536, 0.8, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let cfg = lif_cfg();
    let mut g = c.benchmark_group("lif_const_rate_T8_N65536_fwd_bwd");
    g.bench_function("fused", |b| {
        b.iter(|| {
            let r = lif::const_rate(x.as_tensor(), 8, &cfg, None).unwrap().0;
            r.sum_all().unwrap().backward().unwrap()
        })
    });
    g.bench_function("reference", |b| {
        b.iter(|| {
            let r = reference::const_rate(x.as_tensor(), 8, &cfg, None)
                .unwrap()
                .0;
            r.sum_all().unwrap().backward().unwrap()
        })
    });
    g.finish();
    // The multi-step form on [T, N] currents.
    let xs = Var::from_tensor(
        &rng.normal_tensor((8, 65_536), 0.5, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let mut g = c.benchmark_group("lif_spikes_T8_N65536_fwd_bwd");
    g.bench_function("fused", |b| {
        b.iter(|| {
            lif::spikes(xs.as_tensor(), &cfg, None)
                .unwrap()
                .0
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.bench_function("reference", |b| {
        b.iter(|| {
            reference::spikes(xs.as_tensor(), &cfg, None)
                .unwrap()
                .0
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.finish();
}

/// Every surrogate, the multi-step form at T = 8, N = 65,536: fused against the per-step
/// reference (design §2.1's table of surrogates).
fn bench_surrogates(c: &mut Criterion) {
    let mut rng = SeededRng::new(11);
    let xs = Var::from_tensor(
        &rng.normal_tensor((8, 65_536), 0.5, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let mut g = c.benchmark_group("lif_spikes_surrogates_T8_N65536_fwd_bwd");
    g.sample_size(10);
    for s in lsnn_layers::lif::Surrogate::all_defaults() {
        let cfg = LifConfig {
            surrogate: s,
            ..lif_cfg()
        };
        let kind = serde_json::to_value(s).unwrap()["kind"]
            .as_str()
            .unwrap()
            .to_string();
        g.bench_function(format!("{kind}/fused"), |b| {
            b.iter(|| {
                lif::spikes(xs.as_tensor(), &cfg, None)
                    .unwrap()
                    .0
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
        g.bench_function(format!("{kind}/reference"), |b| {
            b.iter(|| {
                reference::spikes(xs.as_tensor(), &cfg, None)
                    .unwrap()
                    .0
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// Learned β and θ (shared, and one pair per feature of [T, 512, 128]) against the fixed
/// parameters, fused forward + backward at T = 8, N = 65,536, the parameter gradients included.
fn bench_learnable(c: &mut Criterion) {
    let mut rng = SeededRng::new(12);
    let xs = Var::from_tensor(
        &rng.normal_tensor((8, 512, 128), 0.5, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let cfg = lif_cfg();
    let param =
        |n: usize, v: f32| Var::from_tensor(&Tensor::full(v, n, &Device::Cpu).unwrap()).unwrap();
    let shared = (param(1, 0.95), param(1, 1.0));
    let per_feature = (param(128, 0.95), param(128, 1.0));
    let mut g = c.benchmark_group("lif_spikes_learnable_T8_N65536_fwd_bwd");
    g.sample_size(10);
    g.bench_function("fixed", |b| {
        b.iter(|| {
            let s = lif::spikes(xs.as_tensor(), &cfg, None).unwrap().0;
            s.sum_all().unwrap().backward().unwrap()
        })
    });
    for (name, (beta, theta)) in [("shared", &shared), ("per_feature", &per_feature)] {
        let p = LifParams::new(beta.as_tensor().clone(), theta.as_tensor().clone());
        g.bench_function(name, |b| {
            b.iter(|| {
                let s = lif::spikes_with(xs.as_tensor(), &cfg, Some(&p), None)
                    .unwrap()
                    .0;
                s.sum_all().unwrap().backward().unwrap()
            })
        });
    }
    g.finish();
}

fn bench_encoder(c: &mut Criterion) {
    let cfg = SpikingEncoderConfig::new(128, 64)
        .with_steps(4)
        .with_lif(lif_cfg())
        .with_dropout(0.2);
    let vm = VarMap::new();
    let enc = SpikingEncoder::new(
        &cfg,
        SeededInit::var_builder(&vm, SeededRng::new(2), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = SeededRng::new(3)
        .normal_tensor((512, 128), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let mut g = c.benchmark_group("spiking_encoder_lm_small_fwd_bwd");
    g.bench_function("fused", |b| {
        b.iter(|| {
            enc.rate(&x, &mut Mode::Eval)
                .unwrap()
                .spikes
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.bench_function("reference", |b| {
        b.iter(|| {
            composed(|| {
                enc.rate(&x, &mut Mode::Eval)
                    .unwrap()
                    .spikes
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        })
    });
    g.finish();
}

fn bench_attention(c: &mut Criterion) {
    let cfg = AttentionConfig::new(128, 4)
        .with_spike_steps(8)
        .with_lif(lif_cfg());
    let vm = VarMap::new();
    let att = MultiHeadSpikingAttention::new(
        &cfg,
        SeededInit::var_builder(&vm, SeededRng::new(4), DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = SeededRng::new(5)
        .normal_tensor((8, 64, 128), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let mut g = c.benchmark_group("attention_lm_small_fwd_bwd");
    g.bench_function("fused", |b| {
        b.iter(|| {
            att.forward(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap()
        })
    });
    g.bench_function("reference", |b| {
        b.iter(|| {
            composed(|| {
                att.forward(&x)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        })
    });
    g.finish();
}

/// The attention core alone, q/k/v [B, heads, L, dh] → [B, heads, L, dh], causal: the tiled op
/// against the materialised scores (product, fused masked softmax, product) it replaces; the
/// heads merged as the layer merges them.
fn bench_attention_core(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_core_causal_fwd_bwd");
    for (b, l) in [(8, 64), (8, 128), (1, 1024)] {
        let dims = (b, 4, l, 32);
        let var = |seed| {
            candle_core::Var::from_tensor(
                &SeededRng::new(seed)
                    .normal_tensor(dims, 0.0, 1.0, DType::F32, &Device::Cpu)
                    .unwrap(),
            )
            .unwrap()
        };
        let (q, k, v) = (var(1), var(2), var(3));
        let scale = 1.0 / 32f64.sqrt();
        g.bench_function(format!("B{b}_L{l}/tiled"), |bn| {
            bn.iter(|| {
                lsnn_layers::fused::attention(&q, &k, &v, scale, true)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .reshape((b, l, 128))
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
        g.bench_function(format!("B{b}_L{l}/materialised"), |bn| {
            bn.iter(|| {
                lsnn_layers::fused::reference::attention(&q, &k, &v, scale, true)
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .reshape((b, l, 128))
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_lif, bench_surrogates, bench_learnable, bench_encoder, bench_attention,
        bench_attention_core
}
criterion_main!(benches);
