//! Learnable β and θ: the fused op against the composed reference (bit for bit in forward, 1e-9
//! relative in every gradient, f64), against snnTorch 1.0.0's `learn_beta` / `learn_threshold`
//! (fixture), against central differences on the membrane path, the sigmoid form's chain rule,
//! and the typed errors for values and shapes a call must refuse.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{neuron_dims, Form, FORMS, RESETS, SURROGATES};
use lsnn_layers::lif::{
    self, reference, BetaForm, Leaky, Learn, LearnedLif, LifConfig, LifParams, LifState,
    ResetMechanism, Surrogate,
};
use lsnn_layers::{LayerError, SeededRng};
use proptest::prelude::*;

mod common;

fn randn(rng: &mut SeededRng, dims: &[usize], mean: f64, std: f64) -> Tensor {
    rng.normal_tensor(dims, mean, std, DType::F64, &Device::Cpu)
        .unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

fn bits(t: &Tensor) -> Vec<u64> {
    f64s(t).iter().map(|v| v.to_bits()).collect()
}

/// |a − b| ≤ tol·max(1, |b|) elementwise.
fn close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<(), String> {
    if a.dims() != b.dims() {
        return Err(format!("{what}: shapes {:?} vs {:?}", a.dims(), b.dims()));
    }
    for (i, (x, y)) in f64s(a).iter().zip(f64s(b)).enumerate() {
        if (x - y).abs() > tol * y.abs().max(1.0) || !x.is_finite() {
            return Err(format!("{what}[{i}]: {x} vs {y}"));
        }
    }
    Ok(())
}

/// The tensors one side of a comparison trains: currents, initial membrane, β, θ.
struct Leaves {
    x: Var,
    mem0: Var,
    beta: Var,
    theta: Var,
}

impl Leaves {
    fn new(x: &Tensor, mem0: &Tensor, beta: &Tensor, theta: &Tensor) -> Self {
        let v = |t: &Tensor| Var::from_tensor(t).unwrap();
        Leaves {
            x: v(x),
            mem0: v(mem0),
            beta: v(beta),
            theta: v(theta),
        }
    }

    fn params(&self) -> LifParams {
        LifParams::new(
            self.beta.as_tensor().clone(),
            self.theta.as_tensor().clone(),
        )
    }

    fn state(&self) -> LifState {
        LifState {
            mem: self.mem0.as_tensor().clone(),
        }
    }
}

/// One form with learned β (`beta_pairs` values) and θ (`theta_pairs`), from a random initial
/// membrane (`with_state`) or from zero, fused and reference: the main output (and the rate
/// form's mean membrane) and the final membrane bit for bit, and the gradients of
/// sum(out·w) + sum(mem·w2) for currents, membrane, β and θ within 1e-9.
#[allow(clippy::too_many_arguments)]
fn learned_vs_reference(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &LifConfig,
    beta_pairs: usize,
    theta_pairs: usize,
    with_state: bool,
    seed: u64,
) -> Result<f64, String> {
    let mut rng = SeededRng::new(seed);
    let in_dims: Vec<usize> = match form {
        Form::Spikes | Form::RateMem => [&[steps][..], neurons].concat(),
        Form::ConstSpikes | Form::ConstRate => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, 0.5, 0.8);
    let mem0 = randn(&mut rng, neurons, 0.2, 0.5);
    let beta = rng
        .uniform_tensor(beta_pairs, 0.6, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let theta = rng
        .uniform_tensor(theta_pairs, 0.5, 1.4, DType::F64, &Device::Cpu)
        .unwrap();
    let (f, r) = (
        Leaves::new(&x, &mem0, &beta, &theta),
        Leaves::new(&x, &mem0, &beta, &theta),
    );
    let run = |l: &Leaves, fused: bool| -> (Tensor, Tensor) {
        let (x, p, s) = (l.x.as_tensor(), Some(l.params()), l.state());
        let (p, s) = (p.as_ref(), with_state.then_some(&s));
        let (out, st) = match (form, fused) {
            (Form::Spikes, true) => lif::spikes_with(x, cfg, p, s).unwrap(),
            (Form::Spikes, false) => reference::spikes_with(x, cfg, p, s).unwrap(),
            // The rate and the (detached) mean membrane side by side.
            (Form::RateMem, true) => {
                let (o, st) = lif::rate_with(x, cfg, p, s).unwrap();
                (Tensor::cat(&[o.rate, o.mean_mem], 0).unwrap(), st)
            }
            (Form::RateMem, false) => {
                let (o, st) = reference::rate_with(x, cfg, p, s).unwrap();
                (Tensor::cat(&[o.rate, o.mean_mem], 0).unwrap(), st)
            }
            (Form::ConstSpikes, true) => lif::const_spikes_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstSpikes, false) => {
                reference::const_spikes_with(x, steps, cfg, p, s).unwrap()
            }
            (Form::ConstRate, true) => lif::const_rate_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstRate, false) => reference::const_rate_with(x, steps, cfg, p, s).unwrap(),
        };
        (out, st.mem)
    };
    let (of, mf) = run(&f, true);
    let (or, mr) = run(&r, false);
    if bits(&of) != bits(&or) {
        return Err(format!("{form:?}: forward differs from the reference"));
    }
    if bits(&mf) != bits(&mr) {
        return Err(format!(
            "{form:?}: final membrane differs from the reference"
        ));
    }
    let w = randn(&mut rng, of.dims(), 0.0, 1.0);
    let w2 = randn(&mut rng, neurons, 0.0, 1.0);
    let loss = |o: &Tensor, m: &Tensor| {
        ((o * &w).unwrap().sum_all().unwrap() + (m * &w2).unwrap().sum_all().unwrap()).unwrap()
    };
    let gf = loss(&of, &mf).backward().unwrap();
    let gr = loss(&or, &mr).backward().unwrap();
    let leaves = [
        ("currents", &f.x, &r.x),
        ("membrane", &f.mem0, &r.mem0),
        ("beta", &f.beta, &r.beta),
        ("threshold", &f.theta, &r.theta),
    ];
    for (what, a, b) in leaves.iter().filter(|l| with_state || l.0 != "membrane") {
        let (ga, gb) = (gf.get(a.as_tensor()), gr.get(b.as_tensor()));
        let (ga, gb) = (
            ga.ok_or(format!("no fused {what} gradient"))?,
            gb.ok_or(format!("no reference {what} gradient"))?,
        );
        close(&format!("{form:?} d{what}"), ga, gb, 1e-9)?;
    }
    // The firing rate (the rate form's first half), so that callers can see spikes fire.
    let spikes = match form {
        Form::RateMem => of.narrow(0, 0, neurons[0]).unwrap(),
        _ => of,
    };
    Ok(spikes.mean_all().unwrap().to_scalar::<f64>().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn learned_fused_equals_reference(
        neurons in neuron_dims(),
        steps in 1usize..=10,
        reset in 0usize..3,
        surrogate in 0usize..SURROGATES.len(),
        per_feature in (any::<bool>(), any::<bool>()),
        with_state in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cfg = LifConfig {
            reset: RESETS[reset],
            surrogate: SURROGATES[surrogate],
            ..LifConfig::default()
        };
        let f = *neurons.last().unwrap();
        let pairs = |pf: bool| if pf { f } else { 1 };
        for (k, form) in FORMS.iter().enumerate() {
            let r = learned_vs_reference(
                *form, &neurons, steps, &cfg, pairs(per_feature.0), pairs(per_feature.1),
                with_state, seed.wrapping_add(k as u64),
            );
            prop_assert!(r.is_ok(), "{:?} {:?} T={} {:?}: {}", form, neurons, steps, cfg, r.unwrap_err());
        }
    }
}

/// Every form, reset and surrogate on a fixed grid, spikes seen to fire, and enough neurons
/// (not a multiple of the block) for the threaded path with per-feature parameters.
#[test]
fn learned_fused_equals_reference_every_mode() {
    for reset in RESETS {
        for surrogate in SURROGATES {
            let cfg = LifConfig {
                reset,
                surrogate,
                ..LifConfig::default()
            };
            for form in FORMS {
                for with_state in [true, false] {
                    let rate = learned_vs_reference(form, &[3, 17], 7, &cfg, 17, 1, with_state, 5)
                        .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
                    assert!(rate > 0.05 && rate < 0.95, "{form:?} {cfg:?}: rate {rate}");
                }
            }
        }
    }
    // Blocks of 1,024 neurons that start inside a row of 517 features (a mod F ≠ 0), threaded.
    let cfg = LifConfig {
        reset: ResetMechanism::Zero,
        surrogate: Surrogate::atan(2.0),
        ..LifConfig::default()
    };
    for form in FORMS {
        learned_vs_reference(form, &[70, 517], 6, &cfg, 517, 517, false, 9)
            .unwrap_or_else(|e| panic!("{form:?} large: {e}"));
    }
}

/// snnTorch 1.0.0 with `learn_beta=True, learn_threshold=True`: spikes and final membrane
/// equal, gradients of currents, β and θ within 1e-6 (snnTorch's float32 spike).
#[test]
fn learned_parameters_match_snntorch() {
    let f = common::load("learnable.safetensors");
    for (case, reset) in [
        ("sub_pf", ResetMechanism::Subtract),
        ("zero_pt", ResetMechanism::Zero),
    ] {
        let get = |k: &str| f[&format!("{case}.{k}")].clone();
        let cfg = LifConfig {
            reset,
            surrogate: Surrogate::fast_sigmoid(25.0),
            ..LifConfig::default()
        };
        let l = Leaves::new(
            &get("current"),
            &get("mem").zeros_like().unwrap(),
            &get("beta"),
            &get("threshold"),
        );
        let p = l.params();
        let (spk, st) = lif::spikes_with(l.x.as_tensor(), &cfg, Some(&p), None).unwrap();
        assert_eq!(f64s(&spk), f64s(&get("spikes")), "{case}: spikes");
        close(&format!("{case} mem"), &st.mem, &get("mem"), 1e-12).unwrap();
        let loss = ((&spk * get("grad_out")).unwrap().sum_all().unwrap()
            + (&st.mem * get("grad_mem")).unwrap().sum_all().unwrap())
        .unwrap();
        let g = loss.backward().unwrap();
        for (what, var, want) in [
            ("grad_current", &l.x, "grad_current"),
            ("grad_beta", &l.beta, "grad_beta"),
            ("grad_threshold", &l.theta, "grad_threshold"),
        ] {
            close(
                &format!("{case} {what}"),
                g.get(var.as_tensor()).unwrap(),
                &get(want),
                1e-6,
            )
            .unwrap();
        }
    }
}

/// Central differences (f64) of a loss on the final membrane — the path where the reset is
/// piecewise constant, so the exact derivative exists and must equal the BPTT's — for β per
/// feature and θ shared, under each reset.
#[test]
fn membrane_gradients_match_central_differences() {
    const EPS: f64 = 1e-6;
    for reset in RESETS {
        let cfg = LifConfig {
            reset,
            ..LifConfig::default()
        };
        let mut rng = SeededRng::new(31);
        let x = randn(&mut rng, &[9, 3, 5], 0.6, 0.8);
        let w = randn(&mut rng, &[3, 5], 0.0, 1.0);
        let beta = rng
            .uniform_tensor(5, 0.6, 0.95, DType::F64, &Device::Cpu)
            .unwrap();
        let theta = Tensor::new(&[0.9f64], &Device::Cpu).unwrap();
        let loss = |b: &Tensor, t: &Tensor| -> Tensor {
            let p = LifParams::new(b.clone(), t.clone());
            let (_, st) = lif::spikes_with(&x, &cfg, Some(&p), None).unwrap();
            (st.mem * &w).unwrap().sum_all().unwrap()
        };
        let (bv, tv) = (
            Var::from_tensor(&beta).unwrap(),
            Var::from_tensor(&theta).unwrap(),
        );
        let g = loss(bv.as_tensor(), tv.as_tensor()).backward().unwrap();
        let (gb, gt) = (
            f64s(g.get(bv.as_tensor()).unwrap()),
            // No gradient at all (the composed path, where θ reaches the membrane only through
            // the detached reset under zero and none) is a zero gradient.
            g.get(tv.as_tensor()).map_or(vec![0.0], f64s),
        );
        let value = |b: Vec<f64>, t: Vec<f64>| {
            let b = Tensor::new(b, &Device::Cpu).unwrap();
            let t = Tensor::new(t, &Device::Cpu).unwrap();
            loss(&b, &t).to_scalar::<f64>().unwrap()
        };
        let (b0, t0) = (f64s(&beta), f64s(&theta));
        for j in 0..5 {
            let (mut up, mut down) = (b0.clone(), b0.clone());
            up[j] += EPS;
            down[j] -= EPS;
            let fd = (value(up, t0.clone()) - value(down, t0.clone())) / (2.0 * EPS);
            assert!(
                (fd - gb[j]).abs() < 1e-6 * fd.abs().max(1.0),
                "{reset:?} dβ[{j}]: bptt {} vs fd {fd}",
                gb[j]
            );
        }
        let fd = (value(b0.clone(), vec![t0[0] + EPS]) - value(b0.clone(), vec![t0[0] - EPS]))
            / (2.0 * EPS);
        assert!(
            (fd - gt[0]).abs() < 1e-6 * fd.abs().max(1.0),
            "{reset:?} dθ: bptt {} vs fd {fd}",
            gt[0]
        );
        if reset == ResetMechanism::Subtract {
            assert!(
                fd.abs() > 1e-3,
                "the subtract reset makes the membrane depend on θ"
            );
        }
    }
}

fn learned(cfg: &LifConfig, features: usize) -> (VarMap, LearnedLif) {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu);
    let l = LearnedLif::new(cfg, features, vb).unwrap();
    (vm, l)
}

/// β = sigmoid(w): the gradient of w is dL/dβ·β(1 − β), β starts at the config's value, and a
/// learned layer at its initial values computes what the fixed layer computes.
#[test]
fn sigmoid_form_and_initial_values() {
    let mut rng = SeededRng::new(4);
    let x = randn(&mut rng, &[8, 2, 6], 0.6, 0.8);
    let fixed = LifConfig::new(0.8).with_threshold(0.9);
    let sig = fixed
        .with_learn_beta(Learn::PerNeuron, BetaForm::Sigmoid)
        .with_learn_threshold(Learn::Shared);
    let direct = fixed.with_learn_beta(Learn::PerNeuron, BetaForm::Direct);
    let (vm_s, ls) = learned(&sig, 6);
    let (vm_d, ld) = learned(&direct, 6);
    let ps = ls.params(DType::F64, &Device::Cpu).unwrap().unwrap();
    let pd = ld.params(DType::F64, &Device::Cpu).unwrap().unwrap();
    close("sigmoid β at start", &ps.beta, &pd.beta, 1e-15).unwrap();
    let want = lif::spikes(&x, &fixed, None).unwrap().0;
    let got = lif::spikes_with(&x, &fixed, Some(&pd), None).unwrap().0;
    assert_eq!(
        bits(&got),
        bits(&want),
        "learned at its initial values = fixed"
    );
    let w = randn(&mut rng, &[8, 2, 6], 0.0, 1.0);
    let loss = |p: &LifParams| {
        let (s, _) = lif::spikes_with(&x, &fixed, Some(p), None).unwrap();
        (s * &w).unwrap().sum_all().unwrap()
    };
    let gs = loss(&ps).backward().unwrap();
    let gd = loss(&pd).backward().unwrap();
    let var = |vm: &VarMap, name: &str| vm.data().lock().unwrap()[name].as_tensor().clone();
    let dw = gs.get(&var(&vm_s, "beta_logit")).unwrap();
    let db = gd.get(&var(&vm_d, "beta")).unwrap();
    let b = &pd.beta;
    let chain = (db * (b * b.affine(-1.0, 1.0).unwrap()).unwrap()).unwrap();
    close("dw = dβ·β(1−β)", dw, &chain, 1e-12).unwrap();
    assert!(gs.get(&var(&vm_s, "threshold")).is_some(), "θ learned");
}

fn config_error(r: lsnn_layers::Result<impl std::fmt::Debug>) -> (String, String) {
    match r {
        Err(LayerError::Config { field, message }) => (field, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// Values a call must refuse, never clamp: β outside (0, 1], θ ≤ 0 or NaN, wrong shapes; a
/// sigmoid form that cannot start at β = 1; a fixed-parameter constructor for a learning config.
#[test]
fn invalid_learned_values_are_typed_errors() {
    let x = Tensor::ones((4, 2, 3), DType::F64, &Device::Cpu).unwrap();
    let cfg = LifConfig::default();
    let t = |v: &[f64]| Tensor::new(v, &Device::Cpu).unwrap();
    let call = |b: &[f64], th: &[f64]| {
        lif::spikes_with(&x, &cfg, Some(&LifParams::new(t(b), t(th))), None).map(|r| r.0)
    };
    let (field, msg) = config_error(call(&[0.9, 1.2, 0.9], &[1.0]));
    assert_eq!(field, "beta");
    assert!(
        msg.contains("feature 1") && msg.contains("1.2") && msg.contains("(0, 1]"),
        "{msg}"
    );
    let (field, _) = config_error(call(&[0.0], &[1.0]));
    assert_eq!(field, "beta");
    let (field, msg) = config_error(call(&[0.9], &[1.0, -0.5, 1.0]));
    assert_eq!(field, "spike_threshold");
    assert!(msg.contains("-0.5"), "{msg}");
    config_error(call(&[0.9], &[f64::NAN]));
    match call(&[0.9, 0.9], &[1.0]) {
        Err(LayerError::Shape { what, expected, .. }) => {
            assert_eq!(what, "lif learned beta");
            assert!(expected.contains("[1] or [3]"), "{expected}");
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let f32s = LifParams::new(t(&[0.9]).to_dtype(DType::F32).unwrap(), t(&[1.0]));
    assert!(matches!(
        lif::spikes_with(&x, &cfg, Some(&f32s), None),
        Err(LayerError::Shape { .. })
    ));
    // The same refusal on the composed path.
    let composed = lsnn_layers::kernel::composed(|| call(&[1.5], &[1.0]));
    assert_eq!(config_error(composed).0, "beta");
    let sig_one = LifConfig::new(1.0).with_learn_beta(Learn::Shared, BetaForm::Sigmoid);
    let (field, msg) = config_error(sig_one.validate());
    assert_eq!(field, "beta");
    assert!(msg.contains("sigmoid"), "{msg}");
    let learn = cfg.with_learn_threshold(Learn::Shared);
    let (_, msg) = config_error(Leaky::new(&learn));
    assert!(msg.contains("Leaky::learnable"), "{msg}");
}

/// A learnable `Leaky` trains its β and θ: a few SGD steps on a target firing pattern move
/// them, and the state carried between chunks equals one call.
#[test]
fn learnable_leaky_trains_and_chunks() {
    let cfg = LifConfig::new(0.8)
        .with_learn_beta(Learn::PerNeuron, BetaForm::Sigmoid)
        .with_learn_threshold(Learn::PerNeuron);
    let vm = VarMap::new();
    let lif = Leaky::learnable(
        &cfg,
        4,
        VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu),
    )
    .unwrap();
    let mut rng = SeededRng::new(8);
    let cur = randn(&mut rng, &[10, 3, 4], 0.5, 0.6);
    let (a, st) = lif
        .forward_state(&cur.narrow(0, 0, 4).unwrap(), None)
        .unwrap();
    let (b, _) = lif
        .forward_state(&cur.narrow(0, 4, 6).unwrap(), Some(&st))
        .unwrap();
    let (all, _) = lif.forward_state(&cur, None).unwrap();
    assert_eq!(bits(&Tensor::cat(&[a, b], 0).unwrap()), bits(&all));
    let before: Vec<f64> = vm
        .all_vars()
        .iter()
        .flat_map(|v| f64s(v.as_tensor()))
        .collect();
    let mut opt = candle_nn::SGD::new(vm.all_vars(), 0.05).unwrap();
    use candle_nn::Optimizer;
    for _ in 0..5 {
        let (s, _) = lif.forward_state(&cur, None).unwrap();
        let loss = s.mean_all().unwrap();
        opt.backward_step(&loss).unwrap();
    }
    let after: Vec<f64> = vm
        .all_vars()
        .iter()
        .flat_map(|v| f64s(v.as_tensor()))
        .collect();
    assert_eq!(before.len(), 8);
    assert!(
        before.iter().zip(&after).any(|(x, y)| (x - y).abs() > 1e-6),
        "β/θ moved"
    );
}

/// The encoder with learned β and θ in both LIF layers, in training (dropout inside the
/// constant-current op, parameters and no state — the path every model layer takes): fused
/// against the composed path, the rate bit for bit, every variable's gradient within 1e-9 (f64).
#[test]
fn learned_encoder_in_training_equals_the_composed_path() {
    use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
    use lsnn_layers::{Mode, SeededInit};
    let lif = LifConfig::new(0.9)
        .with_threshold(0.8)
        .with_surrogate(Surrogate::sigmoid(5.0))
        .with_learn_beta(Learn::PerNeuron, BetaForm::Sigmoid)
        .with_learn_threshold(Learn::PerNeuron);
    let cfg = SpikingEncoderConfig::new(12, 10)
        .with_steps(5)
        .with_lif(lif)
        .with_dropout(0.2);
    let vm = VarMap::new();
    let enc = SpikingEncoder::new(
        &cfg,
        SeededInit::var_builder(&vm, SeededRng::new(2), DType::F64, &Device::Cpu),
    )
    .unwrap();
    let x = randn(&mut SeededRng::new(3), &[7, 12], 0.0, 1.5);
    let run = || {
        let out = enc
            .rate(&x, &mut Mode::Train(&mut SeededRng::new(40)))
            .unwrap();
        let w = randn(&mut SeededRng::new(41), out.spikes.dims(), 0.0, 1.0);
        let g = (&out.spikes * w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        (out.spikes, g)
    };
    let (sf, gf) = run();
    let (sr, gr) = lsnn_layers::kernel::composed(run);
    assert_eq!(bits(&sf), bits(&sr), "rate");
    let rate = sf.mean_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(rate > 0.05 && rate < 0.95, "rate {rate}");
    let vars = vm.data().lock().unwrap();
    let mut learned = 0;
    for (name, var) in vars.iter() {
        let (a, b) = (gf.get(var.as_tensor()), gr.get(var.as_tensor()));
        let (a, b) = (
            a.unwrap_or_else(|| panic!("{name}: no fused gradient")),
            b.unwrap(),
        );
        close(name, a, b, 1e-9).unwrap();
        learned += usize::from(name.contains("lif"));
    }
    assert_eq!(learned, 4, "β and θ of both LIF layers");
}

/// Zero neurons with a shared learned pair: the pair's gradient is zero, not a panic.
#[test]
fn zero_neurons_with_shared_parameters() {
    let dev = Device::Cpu;
    let one = |v: f64| Var::from_tensor(&Tensor::new(&[v], &dev).unwrap()).unwrap();
    let (b, t) = (one(0.9), one(1.0));
    let p = LifParams::new(b.as_tensor().clone(), t.as_tensor().clone());
    let x = Tensor::zeros((5, 0), DType::F64, &dev).unwrap();
    let (spk, st) = lif::spikes_with(&x, &LifConfig::default(), Some(&p), None).unwrap();
    assert_eq!(spk.dims(), &[5, 0]);
    let g = (spk.sum_all().unwrap() + st.mem.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    // (The composed path gives no gradient at all for them: the same zero.)
    for v in [&b, &t] {
        assert_eq!(g.get(v.as_tensor()).map_or(vec![0.0], f64s), vec![0.0]);
    }
}
