//! The neuron family side by side at T = 8, N = 65,536 (lm-small's q/k/v count, [T, 512, 128]),
//! multi-step spikes, forward + backward with the parameter gradients where they are learned:
//! each fused neuron against its per-step reference and against fused `Leaky`.
//!
//! Run: `cargo bench -p lsnn-layers --bench neurons`
//! Single-threaded figures: `RAYON_NUM_THREADS=1 CANDLE_NUM_THREADS=1 cargo bench ...`

use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use lsnn_layers::lif::{self, LifConfig};
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
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_neurons
}
criterion_main!(benches);
