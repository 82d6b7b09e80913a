//! The neuron family side by side at T = 8, N = 65,536 (lm-small's q/k/v count, [T, 512, 128]),
//! multi-step spikes, forward + backward with the parameter gradients where they are learned:
//! each fused neuron (Synaptic, Alpha, adaptive LIF, one-to-one RLeaky) against its per-step reference and
//! against fused `Leaky`. Then the
//! all-to-all recurrent LIF at T = 8, batch 256 × width 256 (W [256, 256] and b trained): fused,
//! its per-step reference, and the per-step loop a candle user would write by hand
//! (`candle_nn::Linear` for the recurrence, scalar β and θ).
//!
//! Run: `cargo bench -p lsnn-layers --bench neurons`
//! Single-threaded figures: `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench ...`

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use lsnn_layers::alif::{self, AlifConfig};
use lsnn_layers::alpha::{self, AlphaConfig};
use lsnn_layers::lif::{self, LifConfig};
use lsnn_layers::rleaky::{self, Connection, RLeakyConfig, Recurrent};
use lsnn_layers::synaptic::{self, SynapticConfig, SynapticParams};
use lsnn_layers::SeededRng;

/// Runs forward + backward of `f` on the currents.
fn fwd_bwd(f: impl Fn(&Tensor) -> Tensor, xs: &Var) {
    f(xs.as_tensor()).sum_all().unwrap().backward().unwrap();
}

fn bench_neurons(c: &mut Criterion) {
    let mut rng = SeededRng::new(21);
    let xs = Var::from_tensor(
        &rng.normal_tensor((8, 512, 128), 0.3, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let leaky = LifConfig::new(0.95);
    let syn = SynapticConfig::new(0.9, 0.95);
    let param =
        |n: usize, v: f32| Var::from_tensor(&Tensor::full(v, n, &Device::Cpu).unwrap()).unwrap();
    let (a, b, t) = (param(128, 0.9), param(128, 0.95), param(128, 1.0));
    let learned = SynapticParams::new(
        a.as_tensor().clone(),
        b.as_tensor().clone(),
        t.as_tensor().clone(),
    );
    let mut g = c.benchmark_group("neurons_spikes_T8_N65536_fwd_bwd");
    g.sample_size(10);
    g.bench_function("leaky/fused", |bn| {
        bn.iter(|| fwd_bwd(|x| lif::spikes(x, &leaky, None).unwrap().0, &xs))
    });
    g.bench_function("synaptic/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| synaptic::spikes_with(x, &syn, None, None).unwrap().0,
                &xs,
            )
        })
    });
    g.bench_function("synaptic/reference", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    synaptic::reference::spikes_with(x, &syn, None, None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    g.bench_function("synaptic_per_feature/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    synaptic::spikes_with(x, &syn, Some(&learned), None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    let alpha_cfg = AlphaConfig::new(0.95, 0.9);
    g.bench_function("alpha/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| alpha::spikes_with(x, &alpha_cfg, None, None).unwrap().0,
                &xs,
            )
        })
    });
    g.bench_function("alpha/reference", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    alpha::reference::spikes_with(x, &alpha_cfg, None, None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    let (aa, ab) = (param(128, 0.95), param(128, 0.9));
    let alpha_learned = SynapticParams::new(
        aa.as_tensor().clone(),
        ab.as_tensor().clone(),
        t.as_tensor().clone(),
    );
    g.bench_function("alpha_per_feature/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    alpha::spikes_with(x, &alpha_cfg, Some(&alpha_learned), None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    // The adaptive LIF: the threshold rises by 0.2 per spike and decays with 0.9.
    let alif_cfg = AlifConfig::new(0.9, 0.8).with_adaptation(0.9, 0.2);
    g.bench_function("alif/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| alif::spikes_with(x, &alif_cfg, None, None).unwrap().0,
                &xs,
            )
        })
    });
    g.bench_function("alif/reference", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    alif::reference::spikes_with(x, &alif_cfg, None, None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    let (la, lb) = (param(128, 0.9), param(128, 0.8));
    let alif_learned = SynapticParams::new(
        la.as_tensor().clone(),
        lb.as_tensor().clone(),
        t.as_tensor().clone(),
    );
    g.bench_function("alif_per_feature/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    alif::spikes_with(x, &alif_cfg, Some(&alif_learned), None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    let o2o = RLeakyConfig::new(0.95, Connection::OneToOne);
    let v = param(128, 0.2);
    let rec = Recurrent::OneToOne {
        v: v.as_tensor().clone(),
    };
    g.bench_function("rleaky_o2o/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| rleaky::spikes_with(x, &o2o, &rec, None, None).unwrap().0,
                &xs,
            )
        })
    });
    g.bench_function("rleaky_o2o/reference", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    rleaky::reference::spikes_with(x, &o2o, &rec, None, None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    g.finish();
}

/// The per-step loop a candle user writes for an all-to-all recurrent LIF (snnTorch's `RLeaky`
/// update with `nn.Linear`), reset by subtraction, the fast-sigmoid surrogate.
fn hand_loop(x: &Tensor, lin: &candle_nn::Linear, beta: f64, theta: f64) -> Tensor {
    use candle_core::Module;
    let sur = lif::Surrogate::fast_sigmoid(25.0);
    let mut mem = x.get(0).unwrap().zeros_like().unwrap();
    let mut spk = mem.clone();
    let mut out = Vec::new();
    for t in 0..x.dim(0).unwrap() {
        let reset = (&mem - theta)
            .unwrap()
            .gt(0.0)
            .unwrap()
            .to_dtype(x.dtype())
            .unwrap();
        let m = ((&mem * beta).unwrap() + x.get(t).unwrap()).unwrap();
        let m = (m + lin.forward(&spk).unwrap()).unwrap();
        mem = (m - (reset * theta).unwrap()).unwrap();
        spk = lif::reference::heaviside(&(&mem - theta).unwrap(), &sur).unwrap();
        out.push(spk.clone());
    }
    Tensor::stack(&out, 0).unwrap()
}

fn bench_rleaky_all_to_all(c: &mut Criterion) {
    let mut rng = SeededRng::new(22);
    let xs = Var::from_tensor(
        &rng.normal_tensor((8, 256, 256), 0.3, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let w = Var::from_tensor(
        &rng.uniform_tensor((256, 256), -0.0625, 0.0625, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let b = Var::from_tensor(
        &rng.uniform_tensor(256, -0.0625, 0.0625, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let cfg = RLeakyConfig::new(0.95, Connection::AllToAll);
    let rec = Recurrent::AllToAll {
        weight: w.as_tensor().clone(),
        bias: Some(b.as_tensor().clone()),
    };
    let lin = candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone()));
    let mut g = c.benchmark_group("rleaky_a2a_T8_B256_F256_fwd_bwd");
    g.sample_size(10);
    g.bench_function("fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| rleaky::spikes_with(x, &cfg, &rec, None, None).unwrap().0,
                &xs,
            )
        })
    });
    g.bench_function("reference", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    rleaky::reference::spikes_with(x, &cfg, &rec, None, None)
                        .unwrap()
                        .0
                },
                &xs,
            )
        })
    });
    g.bench_function("hand_loop", |bn| {
        bn.iter(|| fwd_bwd(|x| hand_loop(x, &lin, 0.95, 1.0), &xs))
    });
    // Weaker currents, normal(−0.3, 1): about 6% of the neurons fire per step (30% above),
    // below the density where the op adds rows of Wᵀ per active input instead of a gemm.
    let weak = Var::from_tensor(
        &SeededRng::new(23)
            .normal_tensor((8, 256, 256), -0.3, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    g.bench_function("weak_input/fused", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| rleaky::spikes_with(x, &cfg, &rec, None, None).unwrap().0,
                &weak,
            )
        })
    });
    g.bench_function("weak_input/reference", |bn| {
        bn.iter(|| {
            fwd_bwd(
                |x| {
                    rleaky::reference::spikes_with(x, &cfg, &rec, None, None)
                        .unwrap()
                        .0
                },
                &weak,
            )
        })
    });
    g.bench_function("weak_input/hand_loop", |bn| {
        bn.iter(|| fwd_bwd(|x| hand_loop(x, &lin, 0.95, 1.0), &weak))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_neurons, bench_rleaky_all_to_all
}
criterion_main!(benches);
