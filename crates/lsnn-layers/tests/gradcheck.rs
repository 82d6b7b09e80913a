//! Finite-difference gradient checks in f64 (central differences) of the smooth parts: the CfC
//! cell, the hybrid block's non-spiking parameters, and attention given its firing rates.

use candle_core::{DType, Device, IndexOp, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::attention::{AttentionConfig, AttentionKernel, MultiHeadSpikingAttention};
use lsnn_layers::block::{BlockConfig, BlockState, HybridLiquidSpikingBlock};
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcMode};
use lsnn_layers::lif::{LifConfig, ResetMechanism, Surrogate};
use lsnn_layers::{Mode, SeededInit, SeededRng};

const EPS: f64 = 1e-6;

fn randn(rng: &mut SeededRng, dims: &[usize]) -> Tensor {
    rng.normal_tensor(dims, 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn value(loss: &Tensor) -> f64 {
    loss.to_scalar::<f64>().unwrap()
}

/// Sets entry `idx` of `var` (flattened) to `v`.
fn set_entry(var: &Var, idx: usize, v: f64) {
    let mut data = f64s(var.as_tensor());
    data[idx] = v;
    let t = Tensor::from_vec(data, var.shape(), var.device()).unwrap();
    var.set(&t).unwrap();
}

/// Central difference of `loss` w.r.t. entry `idx` of `var`, restoring the entry afterwards.
fn central_difference(var: &Var, idx: usize, loss: &dyn Fn() -> f64) -> f64 {
    let orig = f64s(var.as_tensor())[idx];
    set_entry(var, idx, orig + EPS);
    let up = loss();
    set_entry(var, idx, orig - EPS);
    let down = loss();
    set_entry(var, idx, orig);
    (up - down) / (2.0 * EPS)
}

/// Compares autograd with central differences at `samples` random entries of `var` (every entry
/// when it has fewer); returns how many entries were checked.
fn check_var(
    what: &str,
    var: &Var,
    autograd: &Tensor,
    samples: usize,
    rng: &mut SeededRng,
    tol: f64,
    loss: &dyn Fn() -> f64,
) -> usize {
    assert_eq!(autograd.dims(), var.dims(), "{what}: gradient shape");
    let ag = f64s(autograd);
    let n = ag.len();
    let idxs: Vec<usize> = if n <= samples {
        (0..n).collect()
    } else {
        (0..samples)
            .map(|_| rng.below(std::num::NonZeroU64::new(n as u64).unwrap()) as usize)
            .collect()
    };
    for &i in &idxs {
        let fd = central_difference(var, i, loss);
        let a = ag[i];
        assert!(
            (fd - a).abs() <= tol * fd.abs().max(a.abs()) + 1e-8,
            "{what}[{i}]: autograd {a} vs finite difference {fd}"
        );
    }
    idxs.len()
}

fn named_vars(vm: &VarMap) -> Vec<(String, Var)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn cfc_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    for mode in [CfcMode::Default, CfcMode::NoGate] {
        for layers in [1usize, 2] {
            let vm = VarMap::new();
            let vb = SeededInit::var_builder(&vm, SeededRng::new(3), DType::F64, &dev);
            let cfg = CfcConfig {
                input_size: 5,
                hidden_size: 4,
                backbone_units: 6,
                backbone_layers: layers,
                mode,
                ts: 0.7,
            };
            let cell = Cfc::new(&cfg, vb).unwrap();
            let mut rng = SeededRng::new(17 + layers as u64);
            let x = Var::from_tensor(&randn(&mut rng, &[3, 5])).unwrap();
            let h = Var::from_tensor(&randn(&mut rng, &[3, 4])).unwrap();
            let w = randn(&mut rng, &[3, 4]);
            // Both the plain ncps step and the packed fast path used by the block.
            for projected in [false, true] {
                let run = || -> Tensor {
                    let out = if projected {
                        let p = cell.input_projection(x.as_tensor()).unwrap();
                        cell.step_projected(&p, h.as_tensor(), &cell.prepare().unwrap())
                            .unwrap()
                    } else {
                        lsnn_layers::cfc::reference::step(&cell, x.as_tensor(), h.as_tensor())
                            .unwrap()
                    };
                    (out * &w).unwrap().sum_all().unwrap()
                };
                let loss = || value(&run());
                let grads = run().backward().unwrap();
                let what = format!("{mode:?}/{layers} layers/projected={projected}");
                let mut checked = 0;
                checked += check_var(
                    &format!("{what} x"),
                    &x,
                    grads.get(x.as_tensor()).unwrap(),
                    100,
                    &mut rng,
                    1e-5,
                    &loss,
                );
                checked += check_var(
                    &format!("{what} h"),
                    &h,
                    grads.get(h.as_tensor()).unwrap(),
                    100,
                    &mut rng,
                    1e-5,
                    &loss,
                );
                let vars = named_vars(&vm);
                assert_eq!(vars.len(), 2 * (layers + 4), "{what}: weights");
                for (name, var) in &vars {
                    let g = grads
                        .get(var.as_tensor())
                        .unwrap_or_else(|| panic!("{what}: no gradient for {name}"));
                    checked +=
                        check_var(&format!("{what} {name}"), var, g, 6, &mut rng, 1e-5, &loss);
                }
                assert!(checked > 50, "{what}: only {checked} entries checked");
            }
        }
    }
}

fn block_config() -> BlockConfig {
    BlockConfig::new(8, 6, 5)
        .with_spike_steps(4)
        .with_lif(
            LifConfig::new(0.9)
                .with_threshold(0.5)
                .with_reset(ResetMechanism::Subtract)
                .with_surrogate(Surrogate::default()),
        )
        .with_backbone(7, 2)
        .with_cfc_mode(CfcMode::Default)
}

#[test]
fn hybrid_block_smooth_parameters_match_finite_differences() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(21), DType::F64, &dev);
    let block = HybridLiquidSpikingBlock::new(&block_config(), vb).unwrap();
    let mut rng = SeededRng::new(4);
    let (b, l) = (2usize, 4usize);
    let x = (randn(&mut rng, &[b, l, 8]) * 2.0).unwrap();
    let h0 = Var::from_tensor(&randn(&mut rng, &[b, 5])).unwrap();
    let w_out = randn(&mut rng, &[b, l, 8]);
    let w_h = randn(&mut rng, &[b, 5]);

    // The spikes fire, and they depend only on the encoder weights and x.
    let rate = block
        .encoder()
        .rate(&x.reshape((b * l, 8)).unwrap(), &mut Mode::Eval)
        .unwrap()
        .spikes;
    let mean_rate = rate.mean_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(
        mean_rate > 0.05 && mean_rate < 0.95,
        "encoder firing rate {mean_rate}"
    );

    let run = || -> Tensor {
        let state = BlockState {
            h: h0.as_tensor().clone(),
        };
        let (out, BlockState { h }) = block.forward(&x, Some(&state), &mut Mode::Eval).unwrap();
        ((out * &w_out).unwrap().sum_all().unwrap() + (h * &w_h).unwrap().sum_all().unwrap())
            .unwrap()
    };
    let loss = || value(&run());
    let grads = run().backward().unwrap();

    let smooth = ["fuse.", "fuse_norm.", "gate.", "pnorm.", "cfc."];
    let mut seen = std::collections::BTreeSet::new();
    let mut checked = 0;
    for (name, var) in named_vars(&vm) {
        let Some(prefix) = smooth.iter().find(|p| name.starts_with(*p)) else {
            assert!(name.starts_with("encoder."), "unexpected parameter {name}");
            continue;
        };
        seen.insert(*prefix);
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        assert!(
            f64s(g).iter().any(|v| *v != 0.0),
            "{name}: all-zero gradient"
        );
        checked += check_var(&name, &var, g, 5, &mut rng, 1e-5, &loss);
    }
    assert_eq!(seen.len(), smooth.len(), "every smooth group was checked");
    checked += check_var(
        "h0",
        &h0,
        grads.get(h0.as_tensor()).unwrap(),
        100,
        &mut rng,
        1e-5,
        &loss,
    );
    assert!(checked > 60, "only {checked} entries checked");

    // Perturbing the smooth parameters really leaves the spikes alone (the premise of the check).
    let (name, var) = named_vars(&vm)
        .into_iter()
        .find(|(n, _)| n == "gate.weight")
        .unwrap();
    let before = f64s(var.as_tensor());
    set_entry(&var, 0, before[0] + 0.5);
    let rate2 = block
        .encoder()
        .rate(&x.reshape((b * l, 8)).unwrap(), &mut Mode::Eval)
        .unwrap()
        .spikes;
    assert_eq!(f64s(&rate), f64s(&rate2), "{name} changed the spikes");
    set_entry(&var, 0, before[0]);
}

#[test]
fn attention_given_rates_matches_finite_differences() {
    attention_given_rates_case(AttentionKernel::Materialized);
}

#[test]
fn tiled_attention_given_rates_matches_finite_differences() {
    attention_given_rates_case(AttentionKernel::Tiled);
}

fn attention_given_rates_case(kernel: AttentionKernel) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(8), DType::F64, &dev);
    let cfg = AttentionConfig {
        d_model: 8,
        heads: 2,
        spike_steps: 4,
        lif: LifConfig::default(),
        neuron: Default::default(),
        causal: true,
        kernel,
    };
    let attn = MultiHeadSpikingAttention::new(&cfg, vb).unwrap();
    let mut rng = SeededRng::new(12);
    let (b, l) = (2usize, 5usize);
    let uni = |rng: &mut SeededRng| {
        Var::from_tensor(
            &rng.uniform_tensor((b, l, 8), 0.0, 1.0, DType::F64, &dev)
                .unwrap(),
        )
        .unwrap()
    };
    let (q, k, v) = (uni(&mut rng), uni(&mut rng), uni(&mut rng));
    let w = randn(&mut rng, &[b, l, 8]);
    let run = || -> Tensor {
        let out = attn
            .attend(q.as_tensor(), k.as_tensor(), v.as_tensor())
            .unwrap();
        (out * &w).unwrap().sum_all().unwrap()
    };
    let loss = || value(&run());
    let grads = run().backward().unwrap();
    for (name, var) in [("q", &q), ("k", &k), ("v", &v)] {
        let g = grads.get(var.as_tensor()).unwrap();
        assert!(f64s(g).iter().all(|x| x.is_finite()), "{name}: non-finite");
        check_var(name, var, g, 30, &mut rng, 1e-5, &loss);
    }
    let vars = named_vars(&vm);
    for (name, var) in &vars {
        match grads.get(var.as_tensor()) {
            Some(g) if name.starts_with("o.") => {
                check_var(name, var, g, 12, &mut rng, 1e-5, &loss);
            }
            None if !name.starts_with("o.") => {} // q/k/v projections are not used by attend
            other => panic!("{name}: unexpected gradient presence {}", other.is_some()),
        }
    }
    assert!(vars.iter().any(|(n, _)| n == "o.weight"));

    // The causal mask: the output at position 1 depends on keys and values 0 and 1 only.
    let second = attn
        .attend(q.as_tensor(), k.as_tensor(), v.as_tensor())
        .unwrap()
        .i((.., 1, ..))
        .unwrap();
    let g1 = (second * w.i((.., 1, ..)).unwrap())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in [("k", &k), ("v", &v)] {
        let g = g1.get(var.as_tensor()).unwrap();
        let later = g.i((.., 2.., ..)).unwrap();
        assert!(
            f64s(&later).iter().all(|x| *x == 0.0),
            "{name}: position 1 sees the future"
        );
        for p in 0..2 {
            assert!(
                f64s(&g.i((.., p, ..)).unwrap()).iter().any(|x| *x != 0.0),
                "{name}: position 1 ignores position {p}"
            );
        }
    }
}
