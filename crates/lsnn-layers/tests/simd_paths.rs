//! The LIF, current-based LIF, LTC and CfC kernels' and the row ops' element lanes (GELU, σ,
//! shifted exp) AVX2 version against their baseline (SSE2) version: the same Rust arithmetic
//! compiled twice, picked at run time, so every output and every gradient must agree bit for bit
//! — for each surrogate, reset, parameter source (fixed, one shared learned pair, one pair per
//! feature), sequence and constant-current forms, f32 and f64, over blocks that do not fill the
//! vector width. A test binary of its own: the switch is process-wide.

use candle_core::{DType, Device, Tensor, Var};
use lsnn_layers::cfc::CfcMode;
use lsnn_layers::kernel::{cpu_has_avx2, use_wide_vectors, wide_vectors};
use lsnn_layers::lif::{self, LifConfig, LifParams, LifState, ResetMechanism, Surrogate};
use lsnn_layers::synaptic::{self, SynapticConfig, SynapticParams, SynapticState};
use lsnn_layers::SeededRng;

/// Every output and gradient of one configuration, as raw bits.
fn run(dtype: DType, cfg: &LifConfig, learned: Option<(usize, usize)>) -> Vec<Vec<u64>> {
    let mut rng = SeededRng::new(5);
    let (t, rows, f) = (5, 3, 1_001);
    let mut n = |dims: &[usize], mean: f64| {
        Var::from_tensor(
            &rng.normal_tensor(dims, mean, 0.7, dtype, &Device::Cpu)
                .unwrap(),
        )
        .unwrap()
    };
    let x = n(&[t, rows, f], 0.4);
    let mem0 = n(&[rows, f], 0.2);
    let c = n(&[rows, f], 0.5);
    let params = learned.map(|(pb, pt)| {
        let beta = Var::from_tensor(
            &Tensor::full(0.9, pb, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        let theta = Var::from_tensor(
            &Tensor::full(1.1, pt, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        (beta, theta)
    });
    let p = params
        .as_ref()
        .map(|(b, th)| LifParams::new(b.as_tensor().clone(), th.as_tensor().clone()));
    let state = LifState {
        mem: mem0.as_tensor().clone(),
    };
    let (spikes, fin) = lif::spikes_with(x.as_tensor(), cfg, p.as_ref(), Some(&state)).unwrap();
    let (rate, _) = lif::rate_with(x.as_tensor(), cfg, p.as_ref(), None).unwrap();
    let (cs, _) = lif::const_spikes_with(c.as_tensor(), 6, cfg, p.as_ref(), None).unwrap();
    let (cr, _) = lif::const_rate_with(c.as_tensor(), 6, cfg, p.as_ref(), None).unwrap();
    let loss = [&spikes, &fin.mem, &rate.rate, &cs, &cr]
        .iter()
        .map(|s| (*s * weights(s, dtype)).unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut leaves = vec![
        x.as_tensor().clone(),
        mem0.as_tensor().clone(),
        c.as_tensor().clone(),
    ];
    if let Some((b, th)) = &params {
        leaves.push(b.as_tensor().clone());
        leaves.push(th.as_tensor().clone());
    }
    let mut out: Vec<Vec<u64>> = [&spikes, &fin.mem, &rate.rate, &rate.mean_mem, &cs, &cr]
        .iter()
        .map(|t| bits(t, dtype))
        .collect();
    for l in &leaves {
        out.push(bits(
            grads.get(l).expect("every leaf has a gradient"),
            dtype,
        ));
    }
    out
}

/// Distinct weights for the elements of `s`, so that every output position reaches the loss.
fn weights(s: &Tensor, dtype: DType) -> Tensor {
    let k = s.elem_count();
    Tensor::arange(0.0, k as f64, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
        .affine(0.37 / k as f64, -0.1)
        .unwrap()
        .reshape(s.shape())
        .unwrap()
}

/// The raw bits of a tensor's values.
fn bits(t: &Tensor, dtype: DType) -> Vec<u64> {
    let t = t.flatten_all().unwrap();
    match dtype {
        DType::F32 => t
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        _ => t
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
    }
}

/// The same for the current-based LIF: every form, both states, α, β, θ learned (`learned`
/// values each) or fixed.
fn run_synaptic(dtype: DType, cfg: &SynapticConfig, learned: Option<usize>) -> Vec<Vec<u64>> {
    let mut rng = SeededRng::new(6);
    let (t, rows, f) = (5, 3, 1_001);
    let mut n = |dims: &[usize], mean: f64| {
        Var::from_tensor(
            &rng.normal_tensor(dims, mean, 0.5, dtype, &Device::Cpu)
                .unwrap(),
        )
        .unwrap()
    };
    let x = n(&[t, rows, f], 0.3);
    let syn0 = n(&[rows, f], 0.1);
    let mem0 = n(&[rows, f], 0.2);
    let c = n(&[rows, f], 0.3);
    let full = |v: f64, k: usize| {
        Var::from_tensor(
            &Tensor::full(v, k, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap()
    };
    let params = learned.map(|k| [full(0.8, k), full(0.9, k), full(1.1, k)]);
    let p = params.as_ref().map(|[a, b, th]| {
        SynapticParams::new(
            a.as_tensor().clone(),
            b.as_tensor().clone(),
            th.as_tensor().clone(),
        )
    });
    let state = SynapticState {
        syn: syn0.as_tensor().clone(),
        mem: mem0.as_tensor().clone(),
    };
    let p = p.as_ref();
    let (spikes, fin) = synaptic::spikes_with(x.as_tensor(), cfg, p, Some(&state)).unwrap();
    let (rate, _) = synaptic::rate_with(x.as_tensor(), cfg, p, None).unwrap();
    let (cs, _) = synaptic::const_spikes_with(c.as_tensor(), 6, cfg, p, None).unwrap();
    let (cr, _) = synaptic::const_rate_with(c.as_tensor(), 6, cfg, p, None).unwrap();
    let outs = [
        &spikes,
        &fin.syn,
        &fin.mem,
        &rate.rate,
        &rate.mean_mem,
        &cs,
        &cr,
    ];
    let loss = outs
        .iter()
        .map(|s| (*s * weights(s, dtype)).unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut out: Vec<Vec<u64>> = outs.iter().map(|t| bits(t, dtype)).collect();
    let mut leaves = vec![&x, &syn0, &mem0, &c];
    if let Some(ps) = &params {
        leaves.extend(ps.iter());
    }
    for l in leaves {
        out.push(bits(
            grads.get(l.as_tensor()).expect("every leaf has a gradient"),
            dtype,
        ));
    }
    out
}

/// Asserts that the wide and baseline runs agree in every value.
fn assert_same(what: &str, wide: &[Vec<u64>], base: &[Vec<u64>]) {
    for (i, (w, b)) in wide.iter().zip(base).enumerate() {
        let diff = w.iter().zip(b).filter(|(x, y)| x != y).count();
        assert_eq!(
            diff,
            0,
            "{what}: output {i} differs in {diff} of {} values",
            w.len()
        );
    }
}

#[test]
fn avx2_and_baseline_kernels_agree_bit_for_bit() {
    // The fused kernels even when CI runs the suite with the composed path forced.
    lsnn_layers::kernel::force_composed(false);
    if !cpu_has_avx2() {
        // Nothing to compare on this CPU; the switch must then never claim wide vectors.
        use_wide_vectors(true);
        assert!(!wide_vectors(), "wide vectors on a CPU without AVX2");
        return;
    }
    let mut cases = 0;
    for dtype in [DType::F32, DType::F64] {
        for surrogate in Surrogate::all_defaults() {
            for reset in [
                ResetMechanism::Subtract,
                ResetMechanism::Zero,
                ResetMechanism::None,
            ] {
                for learned in [None, Some((1, 1)), Some((1_001, 1_001))] {
                    let cfg = LifConfig {
                        surrogate,
                        reset,
                        ..LifConfig::default()
                    };
                    use_wide_vectors(true);
                    assert!(wide_vectors());
                    let wide = run(dtype, &cfg, learned);
                    use_wide_vectors(false);
                    assert!(!wide_vectors());
                    let base = run(dtype, &cfg, learned);
                    let what = format!("{dtype:?} {surrogate:?} {reset:?} {learned:?}");
                    assert_same(&what, &wide, &base);
                    let syn = SynapticConfig::new(0.8, 0.9)
                        .with_surrogate(surrogate)
                        .with_reset(reset);
                    let learned_syn = learned.map(|(pb, _)| pb);
                    use_wide_vectors(true);
                    let wide = run_synaptic(dtype, &syn, learned_syn);
                    use_wide_vectors(false);
                    let base = run_synaptic(dtype, &syn, learned_syn);
                    assert_same(&format!("synaptic {what}"), &wide, &base);
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 2 * 6 * 3 * 3);
    // The LTC op (wired, implicit constraint, a neuron count that does not fill the vectors).
    for dtype in [DType::F32, DType::F64] {
        use_wide_vectors(true);
        let wide = run_ltc(dtype);
        use_wide_vectors(false);
        let base = run_ltc(dtype);
        assert_same(&format!("ltc {dtype:?}"), &wide, &base);
    }
    // The CfC op in every mode, with a constant span and with per-step spans, a two-layer
    // backbone and sizes that do not fill the vectors.
    for dtype in [DType::F32, DType::F64] {
        for mode in [CfcMode::Default, CfcMode::NoGate, CfcMode::Pure] {
            for per_step in [false, true] {
                use_wide_vectors(true);
                let wide = run_cfc(dtype, mode, per_step);
                use_wide_vectors(false);
                let base = run_cfc(dtype, mode, per_step);
                assert_same(
                    &format!("cfc {dtype:?} {mode:?} per-step spans {per_step}"),
                    &wide,
                    &base,
                );
            }
        }
    }
    // The row ops through the lanes: GELU, LayerNorm with GELU in both orders, the attention
    // softmax (plain and causal), the tiled attention (plain and causal), the gated residual.
    for dtype in [DType::F32, DType::F64] {
        use_wide_vectors(true);
        let wide = run_rows(dtype);
        use_wide_vectors(false);
        let base = run_rows(dtype);
        assert_same(&format!("row ops {dtype:?}"), &wide, &base);
    }
    use_wide_vectors(true);
}

/// The row ops' outputs and the gradients of their inputs, as raw bits: rows of 37 (not a
/// multiple of any vector width), values spread to GELU's tails.
fn run_rows(dtype: DType) -> Vec<Vec<u64>> {
    use lsnn_layers::fused::{attention, gated_residual, gelu, masked_softmax, norm_act, NormAct};
    let mut rng = SeededRng::new(41);
    let mut n = |dims: &[usize], std: f64| normal_var(&mut rng, dims, std, dtype);
    let (x, w, b) = (n(&[7, 37], 3.0), n(&[37], 1.0), n(&[37], 0.5));
    let (y, a) = (n(&[7, 37], 1.0), n(&[7, 37], 4.0));
    // Attention [B, H, L, dh] with L = 70: a full tile of 64 keys and a partial one.
    let (qa, ka, va) = (
        n(&[1, 2, 70, 5], 1.5),
        n(&[1, 2, 70, 5], 1.5),
        n(&[1, 2, 70, 5], 1.0),
    );
    let xt = x.as_tensor();
    let mut outs = vec![gelu(xt).unwrap()];
    for order in [NormAct::Norm, NormAct::NormThenGelu, NormAct::GeluThenNorm] {
        outs.push(norm_act(xt, w.as_tensor(), b.as_tensor(), 1e-5, order, None).unwrap());
    }
    let scores = xt.unsqueeze(0).unwrap();
    for causal in [false, true] {
        outs.push(masked_softmax(&scores, 0.37, causal).unwrap());
    }
    for causal in [false, true] {
        let (qt, kt, vt) = (qa.as_tensor(), ka.as_tensor(), va.as_tensor());
        outs.push(attention(qt, kt, vt, 0.45, causal).unwrap());
    }
    outs.push(gated_residual(y.as_tensor(), a.as_tensor(), xt).unwrap());
    let loss = outs
        .iter()
        .map(|o| (o * weights(o, dtype)).unwrap().sum_all().unwrap())
        .reduce(|p, q| (p + q).unwrap())
        .unwrap();
    let g = loss.backward().unwrap();
    for v in [&x, &w, &b, &y, &a, &qa, &ka, &va] {
        outs.push(g.get(v.as_tensor()).unwrap().clone());
    }
    outs.iter().map(|t| bits(t, dtype)).collect()
}

/// The CfC's outputs and every gradient (input, state, spans, parameters), as raw bits.
fn run_cfc(dtype: DType, mode: CfcMode, per_step: bool) -> Vec<Vec<u64>> {
    use lsnn_layers::cfc::{Cfc, CfcConfig, CfcState};
    let cfg = CfcConfig {
        input_size: 5,
        hidden_size: 11,
        backbone_units: 13,
        backbone_layers: 2,
        mode,
        ts: 0.7,
    };
    let vm = candle_nn::VarMap::new();
    let vb = lsnn_layers::SeededInit::var_builder(&vm, SeededRng::new(31), dtype, &Device::Cpu);
    let c = Cfc::new(&cfg, vb).unwrap();
    let mut rng = SeededRng::new(32);
    let mut n = |dims: &[usize], std: f64| normal_var(&mut rng, dims, std, dtype);
    let (x, h0, ts) = (n(&[3, 9, 5], 1.5), n(&[3, 11], 0.5), n(&[3, 9], 0.4));
    let state = CfcState {
        h: h0.as_tensor().clone(),
    };
    let (out, last) = if per_step {
        let spans = ts.as_tensor().abs().unwrap();
        c.forward_timespans(x.as_tensor(), &spans, Some(&state))
            .unwrap()
    } else {
        c.forward_state(x.as_tensor(), Some(&state)).unwrap()
    };
    let loss = (out.sqr().unwrap().sum_all().unwrap() + last.h.sum_all().unwrap()).unwrap();
    let g = loss.backward().unwrap();
    let mut all = vec![out, last.h];
    for v in [&x, &h0] {
        all.push(g.get(v.as_tensor()).unwrap().clone());
    }
    if per_step {
        all.push(g.get(ts.as_tensor()).unwrap().clone());
    }
    push_param_grads(&vm, &g, &mut all);
    all.iter().map(|t| bits(t, dtype)).collect()
}

/// The LTC's outputs and every gradient, as raw bits.
fn run_ltc(dtype: DType) -> Vec<Vec<u64>> {
    use lsnn_layers::ltc::{Ltc, LtcConfig, LtcConstraint, LtcState};
    let wiring = lsnn_layers::wiring::AutoNcpConfig::new(21, 5)
        .build(7)
        .unwrap();
    let cfg = LtcConfig::new(wiring).with_constraint(LtcConstraint::Implicit);
    let vm = candle_nn::VarMap::new();
    let vb = lsnn_layers::SeededInit::var_builder(&vm, SeededRng::new(21), dtype, &Device::Cpu);
    let c = Ltc::new(&cfg, vb).unwrap();
    let mut rng = SeededRng::new(22);
    let mut n = |dims: &[usize], std: f64| normal_var(&mut rng, dims, std, dtype);
    let (x, v0) = (n(&[3, 9, 7], 1.5), n(&[3, 21], 0.3));
    let (out, state) = c
        .forward_state(
            x.as_tensor(),
            Some(&LtcState {
                v: v0.as_tensor().clone(),
            }),
        )
        .unwrap();
    let loss = (out.sqr().unwrap().sum_all().unwrap() + state.v.sum_all().unwrap()).unwrap();
    let g = loss.backward().unwrap();
    let mut all = vec![out, state.v, g.get(x.as_tensor()).unwrap().clone()];
    all.push(g.get(v0.as_tensor()).unwrap().clone());
    push_param_grads(&vm, &g, &mut all);
    all.iter().map(|t| bits(t, dtype)).collect()
}

/// A variable of N(0, std²) values of `dims`.
fn normal_var(rng: &mut SeededRng, dims: &[usize], std: f64, dtype: DType) -> Var {
    Var::from_tensor(
        &rng.normal_tensor(dims, 0.0, std, dtype, &Device::Cpu)
            .unwrap(),
    )
    .unwrap()
}

/// Appends the gradient of every parameter in `vm`, in name order.
fn push_param_grads(
    vm: &candle_nn::VarMap,
    g: &candle_core::backprop::GradStore,
    all: &mut Vec<Tensor>,
) {
    let mut vars: Vec<_> = vm.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, v) in vars {
        all.push(g.get(v.as_tensor()).unwrap().clone());
    }
}
