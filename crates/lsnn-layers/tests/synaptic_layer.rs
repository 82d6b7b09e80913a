//! The current-based LIF (`synaptic`) as a layer and in the model: typed errors, a learnable
//! layer that trains, the encoder and attention with the synaptic neuron fused against
//! composed, the model's `neuron` field, zero or scalar neurons, stepping, and dropout inside
//! the op. (The kernel's parity with snnTorch and the reference is in `synaptic.rs`.)

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{bits, close, f64s, randn};
use lsnn_layers::lif::Learn;
use lsnn_layers::synaptic::{
    self, reference, Synaptic, SynapticConfig, SynapticParams, SynapticState,
};
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
    let ok = SynapticConfig::new(0.8, 0.9);
    assert_eq!(
        config_field(Synaptic::new(&SynapticConfig::new(1.5, 0.9))),
        "alpha"
    );
    assert_eq!(
        config_field(Synaptic::new(&SynapticConfig::new(0.5, 0.0))),
        "beta"
    );
    assert_eq!(
        config_field(Synaptic::new(&ok.with_threshold(f64::NAN))),
        "spike_threshold"
    );
    assert_eq!(
        config_field(Synaptic::new(&ok.with_learn(
            Learn::Shared,
            Learn::Fixed,
            Learn::Fixed
        ))),
        "learn_alpha"
    );
    let theta_only = ok.with_learn(Learn::Fixed, Learn::Fixed, Learn::PerNeuron);
    assert_eq!(config_field(Synaptic::new(&theta_only)), "learn_threshold");
    assert_eq!(
        config_field(synaptic::const_rate_with(&x, 0, &ok, None, None)),
        "spike steps"
    );
    let bad_state = SynapticState {
        syn: Tensor::zeros(3, DType::F32, &dev).unwrap(),
        mem: Tensor::zeros(4, DType::F32, &dev).unwrap(),
    };
    assert!(matches!(
        synaptic::spikes_with(&x, &ok, None, Some(&bad_state)),
        Err(LayerError::Shape {
            what: "synaptic state (mem)",
            ..
        })
    ));
    let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
    let wrong_len = SynapticParams::new(t(&[0.5, 0.5]), t(&[0.9]), t(&[1.0]));
    assert!(matches!(
        synaptic::spikes_with(&x, &ok, Some(&wrong_len), None),
        Err(LayerError::Shape {
            what: "synaptic learned alpha",
            ..
        })
    ));
    let out_of_range = SynapticParams::new(t(&[0.5]), t(&[1.2]), t(&[1.0]));
    assert_eq!(
        config_field(synaptic::spikes_with(&x, &ok, Some(&out_of_range), None)),
        "beta"
    );
    let empty = Tensor::zeros((0, 3), DType::F32, &dev).unwrap();
    assert!(matches!(
        synaptic::spikes_with(&empty, &ok, None, None),
        Err(LayerError::Shape { .. })
    ));
}

/// A learnable layer owns `alpha`, `beta`, `threshold` variables of the configured sizes, and a
/// few SGD steps on a target firing pattern move all three and lower the loss.
#[test]
fn learnable_synaptic_trains() {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let cfg =
        SynapticConfig::new(0.6, 0.8).with_learn(Learn::PerNeuron, Learn::Shared, Learn::Shared);
    let layer = Synaptic::learnable(&cfg, 6, vb).unwrap();
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
    let target = rng
        .uniform_tensor(&[12, 4, 6], 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let loss = || {
        let (r, _) = layer.rate(&x, None).unwrap();
        let want = target.mean(0).unwrap();
        (r.rate - want).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let before: Vec<Vec<f32>> = ["alpha", "beta", "threshold"]
        .iter()
        .map(|k| data[*k].as_tensor().to_vec1::<f32>().unwrap())
        .collect();
    let l0 = loss().to_scalar::<f32>().unwrap();
    let vars = vm.all_vars();
    for _ in 0..5 {
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

/// The encoder and the attention with the synaptic neuron (α learned per feature, β shared) in
/// training: the fused path equals the composed one (the encoder's rate bit for bit, the
/// attention's output within 1e-12, every gradient within 1e-9, f64), spikes fire, and α, β reach both encoder layers and the attention's rate code.
#[test]
fn synaptic_encoder_and_attention_equal_the_composed_path() {
    use lsnn_layers::lif::{BetaForm, LifConfig};
    use lsnn_layers::neuron::Neuron;
    let lif = LifConfig::new(0.85)
        .with_threshold(0.6)
        .with_learn_beta(Learn::Shared, BetaForm::Direct);
    let neuron = Neuron::Synaptic {
        alpha: 0.7,
        learn_alpha: Learn::PerNeuron,
        alpha_form: BetaForm::Direct,
    };
    let r = common::encoder_attention_parity("synaptic", lif, neuron, 5);
    assert_eq!(bits(&r.rate.0), bits(&r.rate.1), "encoder rate");
    // The attention's own products and softmax round differently fused and composed.
    close("attention output", &r.out.0, &r.out.1, 1e-12).unwrap();
    let rate = r.rate.0.mean_all().unwrap().to_scalar::<f64>().unwrap();
    assert!(rate > 0.05 && rate < 0.95, "rate {rate}");
    let want: Vec<(String, Vec<usize>)> = [
        ("att.lif.alpha", 8),
        ("att.lif.beta", 1),
        ("enc.lif1.alpha", 16),
        ("enc.lif1.beta", 1),
        ("enc.lif2.alpha", 8),
        ("enc.lif2.beta", 1),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), vec![*k]))
    .collect();
    assert_eq!(r.lif_vars, want);
}

/// The `neuron` field of a model config: absent means leaky (and stays absent when saved), the
/// synaptic neuron reads with its α, and what it cannot take is a typed error naming the field.
#[test]
fn model_config_neuron_field() {
    use lsnn_layers::neuron::Neuron;
    use lsnn_layers::ModelConfig;
    let leaky: ModelConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(leaky.neuron, Neuron::Leaky {});
    assert!(!serde_json::to_string(&leaky).unwrap().contains("neuron"));
    let syn: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "synaptic", "alpha": 0.8, "learn_alpha": "shared"}}"#,
    )
    .unwrap();
    syn.validate().unwrap();
    assert_eq!(
        syn.neuron,
        Neuron::Synaptic {
            alpha: 0.8,
            learn_alpha: Learn::Shared,
            alpha_form: lsnn_layers::lif::BetaForm::Direct,
        }
    );
    assert_eq!(syn.block().encoder().neuron, syn.neuron);
    assert_eq!(syn.attention().neuron, syn.neuron);
    let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&syn).unwrap()).unwrap();
    assert_eq!(back, syn);
    let defaulted: ModelConfig =
        serde_json::from_str(r#"{"neuron": {"kind": "synaptic"}}"#).unwrap();
    assert_eq!(defaulted.neuron, Neuron::synaptic(0.9));
    let bad_alpha: ModelConfig =
        serde_json::from_str(r#"{"neuron": {"kind": "synaptic", "alpha": 1.5}}"#).unwrap();
    assert_eq!(config_field(bad_alpha.validate()), "alpha");
    // The sigmoid forms: β's from the LIF settings, α's from the neuron; the recurrent LIF
    // still learns β directly only.
    let sigmoid: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "synaptic", "learn_alpha": "shared", "alpha_form": "sigmoid"},
            "learn_beta": "shared", "beta_form": "sigmoid"}"#,
    )
    .unwrap();
    sigmoid.validate().unwrap();
    let back: ModelConfig =
        serde_json::from_str(&serde_json::to_string(&sigmoid).unwrap()).unwrap();
    assert_eq!(back, sigmoid);
    let rleaky: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "rleaky"}, "learn_beta": "shared", "beta_form": "sigmoid"}"#,
    )
    .unwrap();
    assert_eq!(config_field(rleaky.validate()), "beta_form");
    let at_one: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "synaptic", "alpha": 1.0, "learn_alpha": "shared", "alpha_form": "sigmoid"}}"#,
    )
    .unwrap();
    assert_eq!(config_field(at_one.validate()), "alpha");
    assert!(serde_json::from_str::<ModelConfig>(r#"{"neuron": {"kind": "izhikevich"}}"#).is_err());
    // A misspelt parameter is refused, not silently left at its default.
    let typo = r#"{"neuron": {"kind": "synaptic", "alpah": 0.5}}"#;
    assert!(serde_json::from_str::<ModelConfig>(typo).is_err());
    let explicit: ModelConfig = serde_json::from_str(r#"{"neuron": {"kind": "leaky"}}"#).unwrap();
    assert_eq!(explicit, leaky);
    let stray = r#"{"neuron": {"kind": "leaky", "alpha": 0.5}}"#;
    assert!(serde_json::from_str::<ModelConfig>(stray).is_err());
}

/// Edge shapes: zero neurons with shared learned parameters (their gradient is zero, not a
/// panic), and scalar neurons (currents [T] or a constant []), whose fused and composed outputs
/// and states have the same shapes and bits.
#[test]
fn zero_and_scalar_neurons() {
    let dev = Device::Cpu;
    let cfg = SynapticConfig::new(0.8, 0.9).with_threshold(0.5);
    let one = |v: f64| Var::from_tensor(&Tensor::new(&[v], &dev).unwrap()).unwrap();
    let (a, b, t) = (one(0.8), one(0.9), one(0.5));
    let p = SynapticParams::new(
        a.as_tensor().clone(),
        b.as_tensor().clone(),
        t.as_tensor().clone(),
    );
    let empty = Var::from_tensor(&Tensor::zeros((4, 0), DType::F64, &dev).unwrap()).unwrap();
    let (spk, st) = synaptic::spikes_with(empty.as_tensor(), &cfg, Some(&p), None).unwrap();
    assert_eq!((spk.dims(), st.mem.dims()), (&[4, 0][..], &[0][..]));
    let g = (spk.sum_all().unwrap() + st.mem.sum_all().unwrap())
        .unwrap()
        .backward()
        .unwrap();
    // (The composed path gives no gradient at all for them: the same zero.)
    for v in [&a, &b, &t] {
        assert_eq!(g.get(v.as_tensor()).map_or(vec![0.0], f64s), vec![0.0]);
    }
    let seq = randn(&mut SeededRng::new(4), &[9], 0.4, 0.5);
    let c = Tensor::new(0.3f64, &dev).unwrap();
    for learned in [false, true] {
        let p = learned.then_some(&p);
        let (f, fs) = synaptic::spikes_with(&seq, &cfg, p, None).unwrap();
        let (r, rs) = reference::spikes_with(&seq, &cfg, p, None).unwrap();
        assert_eq!((f.dims(), fs.mem.dims()), (&[9][..], &[][..]));
        assert_eq!((r.dims(), rs.syn.dims()), (&[9][..], &[][..]));
        assert_eq!(bits(&f), bits(&r));
        let (f, fs) = synaptic::const_spikes_with(&c, 6, &cfg, p, None).unwrap();
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
        // The state carries into a second chunk on both paths.
        synaptic::const_spikes_with(&c, 2, &cfg, p, Some(&fs)).unwrap();
        reference::const_spikes_with(&c, 2, &cfg, p, Some(&rs)).unwrap();
    }
}

/// `Synaptic::step` T times equals one `forward_state` over T, state for state.
#[test]
fn stepping_equals_one_call() {
    let lif = Synaptic::new(&SynapticConfig::new(0.7, 0.9).with_threshold(0.6)).unwrap();
    let x = randn(&mut SeededRng::new(6), &[11, 3, 5], 0.3, 0.6);
    let (all, fin) = lif.forward_state(&x, None).unwrap();
    let mut st = lif.zero_state(&x.get(0).unwrap()).unwrap();
    for t in 0..11 {
        let (s, next) = lif.step(&x.get(t).unwrap(), &st).unwrap();
        assert_eq!(bits(&s), bits(&all.get(t).unwrap()), "step {t}");
        st = next;
    }
    assert_eq!(bits(&st.syn), bits(&fin.syn));
    assert_eq!(bits(&st.mem), bits(&fin.mem));
    assert!(f64s(&all).iter().any(|&s| s > 0.0));
}

/// Dropout inside the constant-current op: fused and composed draw the same masks from the same
/// seed (outputs and gradients equal), dropped spikes are 0 and kept ones 1/(1 − p), and the
/// final state is the membrane's, untouched by dropout.
#[test]
fn const_spikes_dropout_equals_the_composed_path() {
    let cfg = SynapticConfig::new(0.8, 0.9).with_threshold(0.4);
    let c = Var::from_tensor(&randn(&mut SeededRng::new(7), &[6, 40], 0.3, 0.3)).unwrap();
    let run = || {
        let mut rng = SeededRng::new(70);
        let (s, st) =
            synaptic::const_spikes_dropout(c.as_tensor(), 5, &cfg, None, 0.25, &mut rng, None)
                .unwrap();
        let w = randn(&mut SeededRng::new(71), s.dims(), 0.0, 1.0);
        let g = (&s * w).unwrap().sum_all().unwrap().backward().unwrap();
        (s, st, g.get(c.as_tensor()).unwrap().clone())
    };
    let (sf, stf, gf) = run();
    let (sr, str_, gr) = lsnn_layers::kernel::composed(run);
    assert_eq!(bits(&sf), bits(&sr));
    assert_eq!(bits(&stf.mem), bits(&str_.mem));
    close("d current", &gf, &gr, 1e-12).unwrap();
    let (_, plain) = synaptic::const_spikes_with(c.as_tensor(), 5, &cfg, None, None).unwrap();
    assert_eq!(
        bits(&stf.mem),
        bits(&plain.mem),
        "dropout leaves the state alone"
    );
    let v = f64s(&sf);
    let kept = v
        .iter()
        .filter(|&&x| (x - 1.0 / 0.75).abs() < 1e-12)
        .count();
    let zero = v.iter().filter(|&&x| x == 0.0).count();
    assert_eq!(kept + zero, v.len(), "every value is 0 or 1/(1 − p)");
    assert!(kept > 0 && zero > 0);
}
