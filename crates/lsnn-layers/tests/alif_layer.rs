//! The adaptive LIF as a layer and in the model: typed errors, a learnable layer that trains,
//! stepping, dropout inside the op, the encoder and attention with the adaptive neuron fused
//! against composed, the model's `neuron` field, and zero or scalar neurons.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{bits, close, f64s, randn};
use lsnn_layers::alif::{self, reference, Alif, AlifConfig, AlifParams, AlifState};
use lsnn_layers::lif::Learn;
use lsnn_layers::{LayerError, SeededRng};

mod common;

fn config_field(r: lsnn_layers::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(LayerError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// Values and shapes a call must refuse, each with a typed error naming what was wrong.
#[test]
fn bad_input_is_a_typed_error() {
    let dev = Device::Cpu;
    let x = Tensor::ones((4, 3), DType::F32, &dev).unwrap();
    let ok = AlifConfig::new(0.8, 0.9).with_adaptation(0.9, 0.3);
    let field = |c: AlifConfig| config_field(Alif::new(&c));
    assert_eq!(field(ok.with_adaptation(1.01, 0.3)), "adapt_decay");
    assert_eq!(field(ok.with_adaptation(-0.1, 0.3)), "adapt_decay");
    assert_eq!(field(ok.with_adaptation(0.9, -0.5)), "adapt_jump");
    assert_eq!(field(ok.with_adaptation(0.9, f64::NAN)), "adapt_jump");
    assert_eq!(field(ok.with_potentials(f64::INFINITY, 0.0)), "v_leak");
    assert_eq!(field(ok.with_potentials(0.0, 1.0)), "v_reset");
    assert_eq!(field(AlifConfig::new(1.2, 0.9)), "alpha");
    // β = 1 would shut the input out (the membrane moves 1 − β of the way each step); β = 0
    // (norse's dt = τ_mem) is a valid membrane.
    assert_eq!(field(AlifConfig::new(0.8, 1.0)), "beta");
    assert_eq!(field(AlifConfig::new(0.8, -0.1)), "beta");
    let zero_beta = AlifConfig::new(0.8, 0.0);
    Alif::new(&zero_beta).unwrap();
    alif::spikes_with(&x, &zero_beta, None, None).unwrap();
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let learn_beta = zero_beta.with_learn(Learn::Fixed, Learn::Shared, Learn::Fixed);
    Alif::learnable(&learn_beta, 3, vb).unwrap();
    assert_eq!(field(ok.with_threshold(0.0)), "spike_threshold");
    let learn = ok.with_learn(Learn::Shared, Learn::Fixed, Learn::Fixed);
    assert_eq!(config_field(Alif::new(&learn)), "learn_alpha");
    assert_eq!(
        config_field(alif::const_rate_with(&x, 0, &ok, None, None)),
        "spike steps"
    );
    let z = |n: usize| Tensor::zeros(n, DType::F32, &dev).unwrap();
    let bad_state = AlifState {
        syn: z(3),
        mem: z(3),
        adapt: z(2),
    };
    for fused in [true, false] {
        let r = match fused {
            true => alif::spikes_with(&x, &ok, None, Some(&bad_state)).map(|_| ()),
            false => lsnn_layers::kernel::composed(|| {
                alif::spikes_with(&x, &ok, None, Some(&bad_state)).map(|_| ())
            }),
        };
        assert!(
            matches!(
                r,
                Err(LayerError::Shape {
                    what: "alif state (adapt)",
                    ..
                })
            ),
            "fused {fused}: {r:?}"
        );
    }
    let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
    let wrong_len = AlifParams::new(t(&[0.8]), t(&[0.9, 0.9]), t(&[1.0]));
    assert!(matches!(
        alif::spikes_with(&x, &ok, Some(&wrong_len), None),
        Err(LayerError::Shape {
            what: "alif learned beta",
            ..
        })
    ));
    // A learned β that an update took to 1, named by feature, on both paths.
    let beta_one = AlifParams::new(t(&[0.8]), t(&[0.9, 1.0, 0.9]), t(&[1.0]));
    for fused in [true, false] {
        let r = match fused {
            true => alif::spikes_with(&x, &ok, Some(&beta_one), None),
            false => reference::spikes_with(&x, &ok, Some(&beta_one), None),
        };
        match r {
            Err(LayerError::Config { field, message }) => {
                assert_eq!(field, "beta");
                assert!(message.contains("feature 1"), "{message}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    // A learned θ that an update took below v_reset, on both paths.
    let above = ok.with_potentials(0.0, 0.3);
    let low_theta = AlifParams::new(t(&[0.8]), t(&[0.9]), t(&[1.0, 0.25, 1.0]));
    for fused in [true, false] {
        let r = match fused {
            true => alif::spikes_with(&x, &above, Some(&low_theta), None),
            false => reference::spikes_with(&x, &above, Some(&low_theta), None),
        };
        match r {
            Err(LayerError::Config { field, message }) => {
                assert_eq!(field, "threshold");
                assert!(message.contains("feature 1"), "{message}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    let empty = Tensor::zeros((0, 3), DType::F32, &dev).unwrap();
    assert!(matches!(
        alif::spikes_with(&empty, &ok, None, None),
        Err(LayerError::Shape { .. })
    ));
    let ints = Tensor::ones((4, 3), DType::U32, &dev).unwrap();
    assert!(matches!(
        alif::spikes_with(&ints, &ok, None, None),
        Err(LayerError::Shape { .. })
    ));
}

/// A learnable layer owns `alpha`, `beta`, `threshold` variables of the configured sizes, and a
/// few SGD steps on a firing-rate target move all three and lower the loss.
#[test]
fn learnable_alif_trains() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = AlifConfig::new(0.8, 0.8)
        .with_adaptation(0.9, 0.3)
        .with_learn(Learn::PerNeuron, Learn::Shared, Learn::Shared);
    let layer = Alif::learnable(&cfg, 6, vb).unwrap();
    let data = vm.data().lock().unwrap().clone();
    let dims = |k: &str| data[k].as_tensor().dims().to_vec();
    assert_eq!(
        (dims("alpha"), dims("beta"), dims("threshold")),
        (vec![6], vec![1], vec![1])
    );
    let x = SeededRng::new(3)
        .normal_tensor(&[12, 4, 6], 0.5, 0.4, DType::F32, &Device::Cpu)
        .unwrap();
    let loss = || {
        let (r, _) = layer.rate(&x, None).unwrap();
        (r.rate - 0.4).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let before: Vec<Vec<f32>> = ["alpha", "beta", "threshold"]
        .iter()
        .map(|k| data[*k].as_tensor().to_vec1::<f32>().unwrap())
        .collect();
    let l0 = loss().to_scalar::<f32>().unwrap();
    let vars = vm.all_vars();
    for _ in 0..10 {
        let g = loss().backward().unwrap();
        for v in &vars {
            if let Some(gv) = g.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - (gv * 0.05).unwrap()).unwrap())
                    .unwrap();
            }
        }
    }
    let l1 = loss().to_scalar::<f32>().unwrap();
    assert!(l1 < l0, "loss {l0} → {l1}");
    for (k, b) in ["alpha", "beta", "threshold"].iter().zip(&before) {
        assert_ne!(
            &data[*k].as_tensor().to_vec1::<f32>().unwrap(),
            b,
            "{k} moved"
        );
    }
}

/// `Alif::step` T times from the resting state equals one `forward_state` over T, state for
/// state, and the adaptation is seen at work: a constant drive fires less once the threshold
/// has risen than with no jump.
#[test]
fn stepping_equals_one_call() {
    let cfg = AlifConfig::new(0.8, 0.8).with_adaptation(0.95, 0.5);
    let lif = Alif::new(&cfg).unwrap();
    let x = randn(&mut SeededRng::new(6), &[11, 3, 5], 0.6, 0.6);
    let (all, fin) = lif.forward_state(&x, None).unwrap();
    let mut st = lif.rest_state(&x.get(0).unwrap()).unwrap();
    for t in 0..11 {
        let (s, next) = lif.step(&x.get(t).unwrap(), &st).unwrap();
        assert_eq!(bits(&s), bits(&all.get(t).unwrap()), "step {t}");
        st = next;
    }
    assert_eq!(bits(&st.syn), bits(&fin.syn));
    assert_eq!(bits(&st.mem), bits(&fin.mem));
    assert_eq!(bits(&st.adapt), bits(&fin.adapt));
    let drive = Tensor::full(1.0f64, 64, &Device::Cpu).unwrap();
    let rate = |jump: f64| {
        let c = cfg.with_adaptation(0.95, jump);
        let (r, _) = alif::const_rate_with(&drive, 40, &c, None, None).unwrap();
        f64s(&r)[0]
    };
    let (adapting, plain) = (rate(0.5), rate(0.0));
    assert!(
        adapting > 0.0 && adapting < 0.7 * plain,
        "{adapting} vs {plain}"
    );
}

/// Dropout inside the constant-current op: fused and composed draw the same masks from the same
/// seed (outputs and gradients equal), and the final state is untouched by dropout.
#[test]
fn const_spikes_dropout_equals_the_composed_path() {
    let cfg = AlifConfig::new(0.8, 0.8).with_adaptation(0.9, 0.3);
    let c = Var::from_tensor(&randn(&mut SeededRng::new(7), &[6, 40], 0.8, 0.4)).unwrap();
    let run = || {
        let mut rng = SeededRng::new(70);
        let (s, st) =
            alif::const_spikes_dropout(c.as_tensor(), 5, &cfg, None, 0.25, &mut rng, None).unwrap();
        let w = randn(&mut SeededRng::new(71), s.dims(), 0.0, 1.0);
        let g = (&s * w).unwrap().sum_all().unwrap().backward().unwrap();
        (s, st, g.get(c.as_tensor()).unwrap().clone())
    };
    let (sf, stf, gf) = run();
    let (sr, str_, gr) = lsnn_layers::kernel::composed(run);
    assert_eq!(bits(&sf), bits(&sr));
    let (_, plain) = alif::const_spikes_with(c.as_tensor(), 5, &cfg, None, None).unwrap();
    let parts = |s: &AlifState| [s.syn.clone(), s.mem.clone(), s.adapt.clone()];
    for ((f, r), p) in parts(&stf).iter().zip(parts(&str_)).zip(parts(&plain)) {
        assert_eq!(bits(f), bits(&r), "fused and composed states");
        assert_eq!(bits(f), bits(&p), "dropout leaves the state alone");
    }
    close("d current", &gf, &gr, 1e-12).unwrap();
    let v = f64s(&sf);
    let kept = v
        .iter()
        .filter(|&&x| (x - 1.0 / 0.75).abs() < 1e-12)
        .count();
    let zero = v.iter().filter(|&&x| x == 0.0).count();
    assert_eq!(kept + zero, v.len(), "every value is 0 or 1/(1 − p)");
    assert!(kept > 0 && zero > 0);
}

/// The encoder and the attention with the adaptive neuron (α learned per feature in the sigmoid
/// form, θ shared) in training: the fused path equals the composed one (the encoder's rate bit
/// for bit, the attention's output within 1e-12, every gradient within 1e-9, f64), spikes fire,
/// and α, θ reach both encoder layers and the attention's rate code.
#[test]
fn alif_encoder_and_attention_equal_the_composed_path() {
    use lsnn_layers::lif::{BetaForm, LifConfig, ResetMechanism};
    use lsnn_layers::neuron::Neuron;
    let lif = LifConfig::new(0.7)
        .with_threshold(0.3)
        .with_reset(ResetMechanism::Zero)
        .with_learn_threshold(Learn::Shared);
    let neuron = Neuron::Alif {
        alpha: 0.8,
        adapt_decay: 0.9,
        adapt_jump: 0.2,
        v_leak: 0.0,
        v_reset: 0.0,
        learn_alpha: Learn::PerNeuron,
        alpha_form: BetaForm::Sigmoid,
    };
    // The membrane sees a current one step late: eight steps for spikes to reach layer two.
    let r = common::encoder_attention_parity("alif", lif, neuron, 8);
    assert_eq!(bits(&r.rate.0), bits(&r.rate.1), "encoder rate");
    close("attention output", &r.out.0, &r.out.1, 1e-12).unwrap();
    let rate = r.rate.0.mean_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(rate > 0.02 && rate < 0.95, "rate {rate}");
    let want: Vec<(String, Vec<usize>)> = [
        ("att.lif.alpha_logit", 8),
        ("att.lif.threshold", 1),
        ("enc.lif1.alpha_logit", 16),
        ("enc.lif1.threshold", 1),
        ("enc.lif2.alpha_logit", 8),
        ("enc.lif2.threshold", 1),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), vec![*k]))
    .collect();
    assert_eq!(r.lif_vars, want);
}

/// The `neuron` field of a model config for the adaptive LIF: read with its defaults, saved and
/// read back, a reset mechanism other than zero refused naming the field, and a misspelt field
/// refused.
#[test]
fn model_config_neuron_field() {
    use lsnn_layers::neuron::Neuron;
    use lsnn_layers::ModelConfig;
    let a: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "alif", "adapt_jump": 0.3}, "reset_mechanism": "zero"}"#,
    )
    .unwrap();
    a.validate().unwrap();
    assert_eq!(a.neuron, Neuron::alif(0.9, 0.3));
    assert_eq!(a.block().encoder().neuron, a.neuron);
    assert_eq!(a.attention().neuron, a.neuron);
    let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(back, a);
    let subtract: ModelConfig =
        serde_json::from_str(r#"{"neuron": {"kind": "alif"}, "reset_mechanism": "subtract"}"#)
            .unwrap();
    assert_eq!(config_field(subtract.validate()), "reset_mechanism");
    let jump: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "alif", "adapt_jump": -1}, "reset_mechanism": "zero"}"#,
    )
    .unwrap();
    assert_eq!(config_field(jump.validate()), "adapt_jump");
    // The input reaches the membrane a step late: the encoder's two layers need three steps,
    // the attention's rate code two, or the output would not depend on the input.
    for (steps, att, field) in [
        (2, 6, Some("num_spike_steps")),
        (3, 1, Some("attention_spike_steps")),
        (3, 2, None),
    ] {
        let mut c = a.clone();
        c.num_spike_steps = steps;
        c.attention_spike_steps = att;
        match field {
            Some(f) => assert_eq!(config_field(c.validate()), f),
            None => c.validate().unwrap(),
        }
    }
    let enc = lsnn_layers::encoder::SpikingEncoderConfig::new(4, 4)
        .with_steps(2)
        .with_lif(a.lif())
        .with_neuron(a.neuron);
    assert_eq!(config_field(enc.validate()), "steps");
    let typo = r#"{"neuron": {"kind": "alif", "adapt_jmup": 0.3}}"#;
    assert!(serde_json::from_str::<ModelConfig>(typo).is_err());
}

/// Edge shapes: zero neurons with shared learned parameters (their gradient is zero, not a
/// panic), and scalar neurons (currents [T] or a constant []), whose fused and composed outputs
/// and states have the same shapes and bits.
#[test]
fn zero_and_scalar_neurons() {
    let dev = Device::Cpu;
    let cfg = AlifConfig::new(0.8, 0.8)
        .with_adaptation(0.9, 0.2)
        .with_threshold(0.5);
    let one = |v: f64| Var::from_tensor(&Tensor::new(&[v], &dev).unwrap()).unwrap();
    let (a, b, t) = (one(0.8), one(0.8), one(0.5));
    let p = AlifParams::new(
        a.as_tensor().clone(),
        b.as_tensor().clone(),
        t.as_tensor().clone(),
    );
    let empty = Var::from_tensor(&Tensor::zeros((4, 0), DType::F64, &dev).unwrap()).unwrap();
    let (spk, st) = alif::spikes_with(empty.as_tensor(), &cfg, Some(&p), None).unwrap();
    assert_eq!((spk.dims(), st.adapt.dims()), (&[4, 0][..], &[0][..]));
    let g = (spk.sum_all().unwrap() + st.mem.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    for v in [&a, &b, &t] {
        assert_eq!(g.get(v.as_tensor()).map_or(vec![0.0], f64s), vec![0.0]);
    }
    let seq = randn(&mut SeededRng::new(4), &[9], 0.8, 0.5);
    let c = Tensor::new(0.9f64, &dev).unwrap();
    for learned in [false, true] {
        let p = learned.then_some(&p);
        let (f, fs) = alif::spikes_with(&seq, &cfg, p, None).unwrap();
        let (r, rs) = reference::spikes_with(&seq, &cfg, p, None).unwrap();
        assert_eq!((f.dims(), fs.adapt.dims()), (&[9][..], &[][..]));
        assert_eq!((r.dims(), rs.adapt.dims()), (&[9][..], &[][..]));
        assert_eq!(bits(&f), bits(&r));
        let (f, fs) = alif::const_spikes_with(&c, 6, &cfg, p, None).unwrap();
        let (r, rs) = reference::const_spikes_with(&c, 6, &cfg, p, None).unwrap();
        assert_eq!(
            (f.dims(), r.dims(), rs.mem.dims()),
            (&[6][..], &[6][..], &[][..])
        );
        assert_eq!(bits(&f), bits(&r));
        assert_eq!(bits(&fs.adapt), bits(&rs.adapt));
        assert!(
            f64s(&f).iter().any(|&s| s > 0.0),
            "the constant current fires"
        );
        alif::const_spikes_with(&c, 2, &cfg, p, Some(&fs)).unwrap();
        reference::const_spikes_with(&c, 2, &cfg, p, Some(&rs)).unwrap();
        // The resting state of scalar neurons is scalar too, learned θ or not, and a step takes it.
        let rest = AlifState::rest(&c, &cfg, p).unwrap();
        assert_eq!(
            (rest.syn.dims(), rest.mem.dims(), rest.adapt.dims()),
            (&[][..], &[][..], &[][..])
        );
        let (z, _) = alif::spikes_with(&c.unsqueeze(0).unwrap(), &cfg, p, Some(&rest)).unwrap();
        assert_eq!(z.dims(), &[1]);
    }
}
