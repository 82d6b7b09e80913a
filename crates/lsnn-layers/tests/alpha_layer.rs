//! The alpha neuron as a layer and in the model: typed errors (α ≤ β above all), a learnable
//! layer that trains, stepping, dropout inside the op, the encoder and attention with the alpha
//! neuron fused against composed, the model's `neuron` field, and zero or scalar neurons.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{bits, close, f64s, randn};
use lsnn_layers::alpha::{self, reference, Alpha, AlphaConfig, AlphaParams, AlphaState};
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
    let ok = AlphaConfig::new(0.9, 0.8);
    // α must exceed β; β = 1 (a division by zero in τ) and α = 0 (ln 0) are out of range.
    assert_eq!(
        config_field(Alpha::new(&AlphaConfig::new(0.8, 0.9))),
        "alpha"
    );
    assert_eq!(
        config_field(Alpha::new(&AlphaConfig::new(0.8, 0.8))),
        "alpha"
    );
    assert_eq!(
        config_field(Alpha::new(&AlphaConfig::new(1.0, 1.0))),
        "beta"
    );
    assert_eq!(
        config_field(Alpha::new(&AlphaConfig::new(0.0, 0.5))),
        "alpha"
    );
    assert_eq!(
        config_field(Alpha::new(&AlphaConfig::new(0.9, 0.0))),
        "beta"
    );
    assert_eq!(
        config_field(Alpha::new(&ok.with_threshold(-1.0))),
        "spike_threshold"
    );
    assert_eq!(
        config_field(alpha::spikes_with(
            &x,
            &AlphaConfig::new(0.5, 0.7),
            None,
            None
        )),
        "alpha"
    );
    let learn_beta = ok.with_learn(Learn::Fixed, Learn::Shared, Learn::Fixed);
    assert_eq!(config_field(Alpha::new(&learn_beta)), "learn_beta");
    assert_eq!(
        config_field(alpha::const_rate_with(&x, 0, &ok, None, None)),
        "spike steps"
    );
    let z = |n: usize| Tensor::zeros(n, DType::F32, &dev).unwrap();
    let bad_state = AlphaState {
        syn_exc: z(3),
        syn_inh: z(4),
        mem: z(3),
    };
    assert!(matches!(
        alpha::spikes_with(&x, &ok, None, Some(&bad_state)),
        Err(LayerError::Shape {
            what: "alpha state (syn_inh)",
            ..
        })
    ));
    let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
    let wrong_len = AlphaParams::new(t(&[0.9, 0.9]), t(&[0.8]), t(&[1.0]));
    assert!(matches!(
        alpha::spikes_with(&x, &ok, Some(&wrong_len), None),
        Err(LayerError::Shape {
            what: "alpha learned alpha",
            ..
        })
    ));
    // A learned α that an update took below β, feature by feature (α shared, β per feature).
    let crossed = AlphaParams::new(t(&[0.85]), t(&[0.5, 0.9, 0.5]), t(&[1.0]));
    for fused in [true, false] {
        let r = match fused {
            true => alpha::spikes_with(&x, &ok, Some(&crossed), None),
            false => reference::spikes_with(&x, &ok, Some(&crossed), None),
        };
        match r {
            Err(LayerError::Config { field, message }) => {
                assert_eq!(field, "alpha");
                assert!(message.contains("feature 1"), "{message}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
    // Zero features take shared values only: [0] "per feature" values are refused, not read.
    let none = Tensor::zeros((4, 0), DType::F32, &dev).unwrap();
    let zero_len = AlphaParams::new(t(&[]), t(&[0.8]), t(&[1.0]));
    assert!(matches!(
        alpha::spikes_with(&none, &ok, Some(&zero_len), None),
        Err(LayerError::Shape {
            what: "alpha learned alpha",
            ..
        })
    ));
    let beta_one = AlphaParams::new(t(&[0.9]), t(&[1.0]), t(&[1.0]));
    assert_eq!(
        config_field(alpha::spikes_with(&x, &ok, Some(&beta_one), None)),
        "beta"
    );
    let empty = Tensor::zeros((0, 3), DType::F32, &dev).unwrap();
    assert!(matches!(
        alpha::spikes_with(&empty, &ok, None, None),
        Err(LayerError::Shape { .. })
    ));
}

/// A learnable layer owns `alpha`, `beta`, `threshold` variables of the configured sizes, and a
/// few SGD steps on a firing-rate target move all three and lower the loss.
#[test]
fn learnable_alpha_trains() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg = AlphaConfig::new(0.9, 0.7).with_learn(Learn::PerNeuron, Learn::Shared, Learn::Shared);
    let layer = Alpha::learnable(&cfg, 6, vb).unwrap();
    let data = vm.data().lock().unwrap().clone();
    let dims = |k: &str| data[k].as_tensor().dims().to_vec();
    assert_eq!(
        (dims("alpha"), dims("beta"), dims("threshold")),
        (vec![6], vec![1], vec![1])
    );
    let mut rng = SeededRng::new(3);
    let x = rng
        .normal_tensor(&[12, 4, 6], 0.3, 0.3, DType::F32, &Device::Cpu)
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
    // The rate is piecewise constant in the parameters: steps large enough to flip spikes (the
    // gradients are ~1e-2), small enough to keep α in (β, 1].
    for _ in 0..10 {
        let g = loss().backward().unwrap();
        for v in &vars {
            if let Some(gv) = g.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - (gv * 0.5).unwrap()).unwrap())
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

/// `Alpha::step` T times equals one `forward_state` over T, state for state.
#[test]
fn stepping_equals_one_call() {
    let lif = Alpha::new(&AlphaConfig::new(0.9, 0.7).with_threshold(0.6)).unwrap();
    let x = randn(&mut SeededRng::new(6), &[11, 3, 5], 0.3, 0.6);
    let (all, fin) = lif.forward_state(&x, None).unwrap();
    let mut st = lif.zero_state(&x.get(0).unwrap()).unwrap();
    for t in 0..11 {
        let (s, next) = lif.step(&x.get(t).unwrap(), &st).unwrap();
        assert_eq!(bits(&s), bits(&all.get(t).unwrap()), "step {t}");
        st = next;
    }
    assert_eq!(bits(&st.syn_exc), bits(&fin.syn_exc));
    assert_eq!(bits(&st.syn_inh), bits(&fin.syn_inh));
    assert_eq!(bits(&st.mem), bits(&fin.mem));
    assert!(f64s(&all).iter().any(|&s| s > 0.0));
}

/// Dropout inside the constant-current op: fused and composed draw the same masks from the same
/// seed (outputs and gradients equal), and the final state is untouched by dropout.
#[test]
fn const_spikes_dropout_equals_the_composed_path() {
    let cfg = AlphaConfig::new(0.9, 0.7).with_threshold(0.4);
    let c = Var::from_tensor(&randn(&mut SeededRng::new(7), &[6, 40], 0.3, 0.3)).unwrap();
    let run = || {
        let mut rng = SeededRng::new(70);
        let (s, st) =
            alpha::const_spikes_dropout(c.as_tensor(), 5, &cfg, None, 0.25, &mut rng, None)
                .unwrap();
        let w = randn(&mut SeededRng::new(71), s.dims(), 0.0, 1.0);
        let g = (&s * w).unwrap().sum_all().unwrap().backward().unwrap();
        (s, st, g.get(c.as_tensor()).unwrap().clone())
    };
    let (sf, stf, gf) = run();
    let (sr, str_, gr) = lsnn_layers::kernel::composed(run);
    assert_eq!(bits(&sf), bits(&sr));
    let (_, plain) = alpha::const_spikes_with(c.as_tensor(), 5, &cfg, None, None).unwrap();
    let parts = |s: &AlphaState| [s.syn_exc.clone(), s.syn_inh.clone(), s.mem.clone()];
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

/// The encoder and the attention with the alpha neuron (α learned per feature, β shared, both in
/// the sigmoid form) in
/// training: the fused path equals the composed one (the encoder's rate bit for bit, the
/// attention's output within 1e-12, every gradient within 1e-9, f64), spikes fire, and α, β reach
/// both encoder layers and the attention's rate code.
#[test]
fn alpha_encoder_and_attention_equal_the_composed_path() {
    use lsnn_layers::lif::{BetaForm, LifConfig};
    use lsnn_layers::neuron::Neuron;
    // Both decays in the sigmoid form: the gradient reaches the logits through candle's sigmoid
    // on both paths.
    let lif = LifConfig::new(0.7)
        .with_threshold(0.3)
        .with_learn_beta(Learn::Shared, BetaForm::Sigmoid);
    let neuron = Neuron::Alpha {
        alpha: 0.9,
        learn_alpha: Learn::PerNeuron,
        alpha_form: BetaForm::Sigmoid,
    };
    // The alpha kernel rises from zero over a few steps: eight of them for spikes to reach the
    // second layer.
    let r = common::encoder_attention_parity("alpha", lif, neuron, 8);
    assert_eq!(bits(&r.rate.0), bits(&r.rate.1), "encoder rate");
    close("attention output", &r.out.0, &r.out.1, 1e-12).unwrap();
    let rate = r.rate.0.mean_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(rate > 0.02 && rate < 0.95, "rate {rate}");
    let want: Vec<(String, Vec<usize>)> = [
        ("att.lif.alpha_logit", 8),
        ("att.lif.beta_logit", 1),
        ("enc.lif1.alpha_logit", 16),
        ("enc.lif1.beta_logit", 1),
        ("enc.lif2.alpha_logit", 8),
        ("enc.lif2.beta_logit", 1),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), vec![*k]))
    .collect();
    assert_eq!(r.lif_vars, want);
}

/// The `neuron` field of a model config for the alpha neuron: read with its α (default 0.97),
/// saved and read back, and α not above the model's β refused naming the field.
#[test]
fn model_config_neuron_field() {
    use lsnn_layers::neuron::Neuron;
    use lsnn_layers::ModelConfig;
    let a: ModelConfig =
        serde_json::from_str(r#"{"neuron": {"kind": "alpha", "learn_alpha": "shared"}}"#).unwrap();
    a.validate().unwrap();
    assert_eq!(
        a.neuron,
        Neuron::Alpha {
            alpha: 0.97,
            learn_alpha: Learn::Shared,
            alpha_form: lsnn_layers::lif::BetaForm::Direct,
        }
    );
    assert_eq!(a.block().encoder().neuron, a.neuron);
    assert_eq!(a.attention().neuron, a.neuron);
    let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(back, a);
    let below: ModelConfig =
        serde_json::from_str(r#"{"neuron": {"kind": "alpha", "alpha": 0.9}, "beta": 0.95}"#)
            .unwrap();
    assert_eq!(config_field(below.validate()), "alpha");
    let typo = r#"{"neuron": {"kind": "alpha", "alpah": 0.99}}"#;
    assert!(serde_json::from_str::<ModelConfig>(typo).is_err());
}

/// Edge shapes: zero neurons with shared learned parameters (their gradient is zero, not a
/// panic), and scalar neurons (currents [T] or a constant []), whose fused and composed outputs
/// and states have the same shapes and bits.
#[test]
fn zero_and_scalar_neurons() {
    let dev = Device::Cpu;
    let cfg = AlphaConfig::new(0.9, 0.7).with_threshold(0.5);
    let one = |v: f64| Var::from_tensor(&Tensor::new(&[v], &dev).unwrap()).unwrap();
    let (a, b, t) = (one(0.9), one(0.7), one(0.5));
    let p = AlphaParams::new(
        a.as_tensor().clone(),
        b.as_tensor().clone(),
        t.as_tensor().clone(),
    );
    let empty = Var::from_tensor(&Tensor::zeros((4, 0), DType::F64, &dev).unwrap()).unwrap();
    let (spk, st) = alpha::spikes_with(empty.as_tensor(), &cfg, Some(&p), None).unwrap();
    assert_eq!((spk.dims(), st.mem.dims()), (&[4, 0][..], &[0][..]));
    let g = (spk.sum_all().unwrap() + st.mem.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    for v in [&a, &b, &t] {
        assert_eq!(g.get(v.as_tensor()).map_or(vec![0.0], f64s), vec![0.0]);
    }
    let seq = randn(&mut SeededRng::new(4), &[9], 0.4, 0.5);
    let c = Tensor::new(0.3f64, &dev).unwrap();
    for learned in [false, true] {
        let p = learned.then_some(&p);
        let (f, fs) = alpha::spikes_with(&seq, &cfg, p, None).unwrap();
        let (r, rs) = reference::spikes_with(&seq, &cfg, p, None).unwrap();
        assert_eq!((f.dims(), fs.mem.dims()), (&[9][..], &[][..]));
        assert_eq!((r.dims(), rs.syn_inh.dims()), (&[9][..], &[][..]));
        assert_eq!(bits(&f), bits(&r));
        let (f, fs) = alpha::const_spikes_with(&c, 6, &cfg, p, None).unwrap();
        let (r, rs) = reference::const_spikes_with(&c, 6, &cfg, p, None).unwrap();
        assert_eq!(
            (f.dims(), r.dims(), rs.mem.dims()),
            (&[6][..], &[6][..], &[][..])
        );
        assert_eq!(bits(&f), bits(&r));
        assert_eq!(bits(&fs.mem), bits(&rs.mem));
        assert!(
            f64s(&f).iter().any(|&s| s > 0.0),
            "the constant current fires"
        );
        alpha::const_spikes_with(&c, 2, &cfg, p, Some(&fs)).unwrap();
        reference::const_spikes_with(&c, 2, &cfg, p, Some(&rs)).unwrap();
    }
}

/// The sigmoid forms of a learned α and β (variables `alpha_logit`, `beta_logit` starting at
/// logit of the config's values): the decays the call takes start at the config's values, and
/// large SGD steps toward firing more take a direct α past 1 (a typed error on the next call)
/// while the sigmoid one stays below 1 and keeps training — for the alpha neuron and for the
/// current-based LIF.
#[test]
fn sigmoid_forms_keep_learned_decays_in_range() {
    use lsnn_layers::lif::BetaForm;
    use lsnn_layers::synaptic::{Synaptic, SynapticConfig};
    let x = SeededRng::new(8)
        .normal_tensor(&[10, 4, 6], 0.3, 0.3, DType::F32, &Device::Cpu)
        .unwrap();
    let learn = (Learn::PerNeuron, Learn::Shared, Learn::Fixed);
    for form in [BetaForm::Direct, BetaForm::Sigmoid] {
        for neuron in ["alpha", "synaptic"] {
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            // A rate from each layer, and its learned α as the call takes it.
            type Rate = Box<dyn Fn() -> lsnn_layers::Result<(Tensor, Tensor)>>;
            let rate: Rate = if neuron == "alpha" {
                let cfg = AlphaConfig::new(0.95, 0.6)
                    .with_learn(learn.0, learn.1, learn.2)
                    .with_forms(form, form);
                let layer = Alpha::learnable(&cfg, 6, vb).unwrap();
                let x = x.clone();
                Box::new(move || {
                    let p = layer.params(&x)?.expect("learned");
                    Ok((layer.rate(&x, None)?.0.rate, p.alpha))
                })
            } else {
                let cfg = SynapticConfig::new(0.95, 0.6)
                    .with_learn(learn.0, learn.1, learn.2)
                    .with_forms(form, form);
                let layer = Synaptic::learnable(&cfg, 6, vb).unwrap();
                let x = x.clone();
                Box::new(move || {
                    let p = layer.params(&x)?.expect("learned");
                    Ok((layer.rate(&x, None)?.0.rate, p.alpha))
                })
            };
            let names: Vec<String> = {
                let mut n: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
                n.sort();
                n
            };
            let want: Vec<String> = match form {
                BetaForm::Direct => vec!["alpha".into(), "beta".into()],
                BetaForm::Sigmoid => vec!["alpha_logit".into(), "beta_logit".into()],
            };
            assert_eq!(names, want, "{neuron} {form:?}");
            let (_, a0) = rate().unwrap();
            assert!(
                f64s(&a0).iter().all(|&a| (a - 0.95).abs() < 1e-6),
                "{neuron} {form:?}: α starts at the config's value"
            );
            let vars = vm.all_vars();
            let mut refused = None;
            for step in 0..40 {
                let (r, _) = match rate() {
                    Ok(v) => v,
                    Err(e) => {
                        refused = Some((step, e));
                        break;
                    }
                };
                let loss = (r - 1.0).unwrap().sqr().unwrap().mean_all().unwrap();
                let g = loss.backward().unwrap();
                for v in &vars {
                    if let Some(gv) = g.get(v.as_tensor()) {
                        v.set(&(v.as_tensor() - (gv * 20.0).unwrap()).unwrap())
                            .unwrap();
                    }
                }
            }
            match form {
                BetaForm::Direct => match refused {
                    Some((_, LayerError::Config { field, .. })) => {
                        assert!(field == "alpha" || field == "beta", "{neuron}: {field}")
                    }
                    other => panic!(
                        "{neuron}: a direct decay out of range must be refused, got {other:?}"
                    ),
                },
                BetaForm::Sigmoid => {
                    assert!(refused.is_none(), "{neuron}: {refused:?}");
                    let (_, a) = rate().unwrap();
                    let a = f64s(&a);
                    assert!(a.iter().all(|&v| v < 1.0), "{neuron}: α = {a:?}");
                    assert!(a.iter().any(|&v| v > 0.96), "{neuron}: α moved up: {a:?}");
                }
            }
        }
    }
}
