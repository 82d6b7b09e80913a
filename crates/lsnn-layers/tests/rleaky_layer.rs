//! The recurrent LIF layer (`rleaky`) as a user and the model meet it: the typed errors of bad
//! input, a learnable layer that trains, stepping against one call, dropout inside the op, the
//! encoder and the attention with the recurrent neuron against the composed path, the model's
//! `neuron` field, and zero or scalar neurons. The kernels against snnTorch and the reference:
//! `rleaky.rs`.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::{bits, close, f64s, randn};
use lsnn_layers::lif::{Learn, LifParams};
use lsnn_layers::rleaky::{self, Connection, RLeaky, RLeakyConfig, RLeakyState, Recurrent};
use lsnn_layers::{LayerError, SeededRng};

mod common;

const CONNECTIONS: [(Connection, &str); 2] =
    [(Connection::OneToOne, "o2o"), (Connection::AllToAll, "a2a")];

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
    let x = Tensor::ones((4, 2, 3), DType::F32, &dev).unwrap();
    let t = |v: &[f32]| Tensor::new(v, &dev).unwrap();
    let o2o = RLeakyConfig::new(0.9, Connection::OneToOne);
    let a2a = RLeakyConfig::new(0.9, Connection::AllToAll);
    let v = Recurrent::OneToOne { v: t(&[0.5; 3]) };
    let w = Recurrent::AllToAll {
        weight: Tensor::zeros((3, 3), DType::F32, &dev).unwrap(),
        bias: None,
    };
    assert_eq!(
        config_field(rleaky::spikes_with(
            &x,
            &o2o.with_threshold(-1.0),
            &v,
            None,
            None
        )),
        "spike_threshold"
    );
    assert_eq!(
        config_field(rleaky::spikes_with(
            &x,
            &RLeakyConfig::new(1.5, Connection::OneToOne),
            &v,
            None,
            None
        )),
        "beta"
    );
    assert_eq!(
        config_field(rleaky::spikes_with(&x, &a2a, &v, None, None)),
        "connection"
    );
    assert_eq!(
        config_field(rleaky::const_rate_with(
            &x.get(0).unwrap(),
            0,
            &o2o,
            &v,
            None,
            None
        )),
        "spike steps"
    );
    let short_v = Recurrent::OneToOne { v: t(&[0.5, 0.5]) };
    assert!(matches!(
        rleaky::spikes_with(&x, &o2o, &short_v, None, None),
        Err(LayerError::Shape {
            what: "rleaky recurrent V",
            ..
        })
    ));
    let wrong_w = Recurrent::AllToAll {
        weight: Tensor::zeros((3, 2), DType::F32, &dev).unwrap(),
        bias: None,
    };
    assert!(matches!(
        rleaky::spikes_with(&x, &a2a, &wrong_w, None, None),
        Err(LayerError::Shape {
            what: "rleaky recurrent weight",
            ..
        })
    ));
    let wrong_b = Recurrent::AllToAll {
        weight: Tensor::zeros((3, 3), DType::F32, &dev).unwrap(),
        bias: Some(t(&[0.0; 2])),
    };
    assert!(matches!(
        rleaky::spikes_with(&x, &a2a, &wrong_b, None, None),
        Err(LayerError::Shape {
            what: "rleaky recurrent bias",
            ..
        })
    ));
    let f64_w = Recurrent::AllToAll {
        weight: Tensor::zeros((3, 3), DType::F64, &dev).unwrap(),
        bias: None,
    };
    assert!(matches!(
        rleaky::spikes_with(&x, &a2a, &f64_w, None, None),
        Err(LayerError::Shape {
            what: "rleaky recurrent weight",
            ..
        })
    ));
    let bad_state = RLeakyState {
        spk: Tensor::zeros((2, 3), DType::F32, &dev).unwrap(),
        mem: Tensor::zeros(3, DType::F32, &dev).unwrap(),
    };
    assert!(matches!(
        rleaky::spikes_with(&x, &a2a, &w, None, Some(&bad_state)),
        Err(LayerError::Shape {
            what: "rleaky state (mem)",
            ..
        })
    ));
    let out_of_range = LifParams::new(t(&[1.2]), t(&[1.0]));
    assert_eq!(
        config_field(rleaky::spikes_with(&x, &a2a, &w, Some(&out_of_range), None)),
        "beta"
    );
    let empty = Tensor::zeros((0, 2, 3), DType::F32, &dev).unwrap();
    assert!(matches!(
        rleaky::spikes_with(&empty, &a2a, &w, None, None),
        Err(LayerError::Shape { .. })
    ));
    assert_eq!(
        config_field(RLeaky::with_weights(
            &a2a.with_learn(Learn::Shared, Learn::Fixed),
            w
        )),
        "learn_beta"
    );
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
    assert_eq!(config_field(RLeaky::new(&a2a, 0, vb)), "rleaky features");
}

/// A layer owns snnTorch-named variables of the configured sizes, and a few SGD steps towards
/// target firing rates move the recurrent weights and β, θ and lower the loss (seeded: the
/// loss fell for each of eight initialisations tried).
#[test]
fn learnable_rleaky_trains() {
    for (conn, kind) in CONNECTIONS {
        let vm = VarMap::new();
        // Seeded: candle's own initialisers draw from an unseeded generator.
        let vb =
            lsnn_layers::SeededInit::var_builder(&vm, SeededRng::new(4), DType::F32, &Device::Cpu);
        let cfg = RLeakyConfig::new(0.8, conn).with_learn(Learn::PerNeuron, Learn::Shared);
        let layer = RLeaky::new(&cfg, 6, vb).unwrap();
        let mut names: Vec<(String, Vec<usize>)> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
            .collect();
        names.sort();
        let want: Vec<(String, Vec<usize>)> = match conn {
            Connection::OneToOne => vec![("V".into(), vec![6])],
            Connection::AllToAll => vec![
                ("recurrent.bias".into(), vec![6]),
                ("recurrent.weight".into(), vec![6, 6]),
            ],
        }
        .into_iter()
        .chain([("beta".into(), vec![6]), ("threshold".into(), vec![1])])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
        assert_eq!(names, want, "{kind}");
        let mut rng = SeededRng::new(3);
        let x = rng
            .normal_tensor(&[16, 8, 6], 0.4, 0.5, DType::F32, &Device::Cpu)
            .unwrap();
        // A firing rate per neuron to reach (the rate is smoother in the parameters than any
        // one spike).
        let target = rng
            .uniform_tensor(&[8, 6], 0.1, 0.6, DType::F32, &Device::Cpu)
            .unwrap();
        let before: Vec<Vec<f32>> = vm
            .all_vars()
            .iter()
            .map(|v| common::vec_f32(v.as_tensor()))
            .collect();
        let mut opt = candle_nn::SGD::new(vm.all_vars(), 0.05).unwrap();
        use candle_nn::Optimizer;
        let loss_of = || {
            let (r, _) = layer.rate(&x, None).unwrap();
            (r.rate - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .mean_all()
                .unwrap()
        };
        let first = loss_of().to_scalar::<f32>().unwrap();
        for _ in 0..30 {
            opt.backward_step(&loss_of()).unwrap();
        }
        let last = loss_of().to_scalar::<f32>().unwrap();
        assert!(last < first, "{kind}: loss {first} -> {last}");
        for (v, b) in vm.all_vars().iter().zip(before) {
            assert_ne!(
                common::vec_f32(v.as_tensor()),
                b,
                "{kind}: a variable did not move"
            );
        }
    }
}

/// One step at a time (snnTorch's loop) equals one call, spikes and final state.
#[test]
fn stepping_equals_one_call() {
    let vm = VarMap::new();
    let vb = lsnn_layers::SeededInit::var_builder(&vm, SeededRng::new(6), DType::F32, &Device::Cpu);
    let layer = RLeaky::new(&RLeakyConfig::new(0.9, Connection::AllToAll), 5, vb).unwrap();
    let mut rng = SeededRng::new(8);
    let x = rng
        .normal_tensor(&[10, 3, 5], 0.5, 0.5, DType::F32, &Device::Cpu)
        .unwrap();
    let (all, fin) = layer.forward_state(&x, None).unwrap();
    let mut st = RLeakyState::zeros_like(&x.get(0).unwrap()).unwrap();
    let mut steps = Vec::new();
    for t in 0..10 {
        let (s, next) = layer.step(&x.get(t).unwrap(), &st).unwrap();
        steps.push(s);
        st = next;
    }
    assert_eq!(
        common::vec_f32(&Tensor::stack(&steps, 0).unwrap()),
        common::vec_f32(&all)
    );
    assert!(common::vec_f32(&all).iter().any(|&s| s > 0.0));
    assert_eq!(common::vec_f32(&st.mem), common::vec_f32(&fin.mem));
    assert_eq!(common::vec_f32(&st.spk), common::vec_f32(&fin.spk));
}

/// Dropout inside the op equals the composed spikes under the same masks, and its gradient
/// reaches the currents through the kept spikes only.
#[test]
fn const_spikes_dropout_equals_the_composed_path() {
    let cfg = RLeakyConfig::new(0.9, Connection::OneToOne);
    let rec = Recurrent::OneToOne {
        v: Tensor::new(&[0.3f64, -0.2, 0.5, 0.1], &Device::Cpu).unwrap(),
    };
    let mut rng = SeededRng::new(5);
    let x = Var::from_tensor(&randn(&mut rng, &[6, 4], 0.5, 0.4)).unwrap();
    let run = |fused: bool| {
        let mut r = SeededRng::new(77);
        let mut f = || {
            rleaky::const_spikes_dropout(x.as_tensor(), 8, &cfg, &rec, None, 0.3, &mut r, None)
                .unwrap()
                .0
        };
        if fused {
            f()
        } else {
            lsnn_layers::kernel::composed(f)
        }
    };
    let (a, b) = (run(true), run(false));
    assert_eq!(f64s(&a), f64s(&b));
    let ga = a.sum_all().unwrap().backward().unwrap();
    let gb = b.sum_all().unwrap().backward().unwrap();
    close(
        "dropout dx",
        ga.get(x.as_tensor()).unwrap(),
        gb.get(x.as_tensor()).unwrap(),
        1e-9,
    )
    .unwrap();
}

/// The encoder and the attention with the recurrent neuron (each connection, θ learned) in
/// training: the fused path equals the composed one (the encoder's rate bit for bit one-to-one,
/// the rest within 1e-12; every gradient within 1e-9, f64), spikes fire, and every layer owns
/// its recurrent weights under snnTorch's names.
#[test]
fn rleaky_encoder_and_attention_equal_the_composed_path() {
    use lsnn_layers::lif::LifConfig;
    use lsnn_layers::neuron::Neuron;
    for (conn, kind) in CONNECTIONS {
        let lif = LifConfig::new(0.85)
            .with_threshold(0.6)
            .with_learn_threshold(Learn::Shared);
        let r = common::encoder_attention_parity(kind, lif, Neuron::rleaky(conn), 5);
        let (sf, sr) = &r.rate;
        if conn == Connection::OneToOne {
            assert_eq!(bits(sf), bits(sr), "{kind}: encoder rate");
        } else {
            close(&format!("{kind}: encoder rate"), sf, sr, 1e-12).unwrap();
        }
        close(
            &format!("{kind}: attention output"),
            &r.out.0,
            &r.out.1,
            1e-12,
        )
        .unwrap();
        let rate = sf.mean_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(rate > 0.05 && rate < 0.95, "{kind}: rate {rate}");
        let recurrent = r.lif_vars;
        let mut want: Vec<(String, Vec<usize>)> = Vec::new();
        for (layer, f) in [("att.lif", 8), ("enc.lif1", 16), ("enc.lif2", 8)] {
            match conn {
                Connection::OneToOne => want.push((format!("{layer}.V"), vec![f])),
                Connection::AllToAll => {
                    want.push((format!("{layer}.recurrent.bias"), vec![f]));
                    want.push((format!("{layer}.recurrent.weight"), vec![f, f]));
                }
            }
            want.push((format!("{layer}.threshold"), vec![1]));
        }
        want.sort();
        assert_eq!(recurrent, want, "{kind}");
    }
}

/// The `neuron` field reads the recurrent neuron with its connection (all-to-all by default),
/// round-trips, and refuses a misspelt connection or a sigmoid β.
#[test]
fn model_config_rleaky_neuron() {
    use lsnn_layers::neuron::Neuron;
    use lsnn_layers::ModelConfig;
    let o2o: ModelConfig =
        serde_json::from_str(r#"{"neuron": {"kind": "rleaky", "connection": "one_to_one"}}"#)
            .unwrap();
    o2o.validate().unwrap();
    assert_eq!(o2o.neuron, Neuron::rleaky(Connection::OneToOne));
    assert_eq!(o2o.block().encoder().neuron, o2o.neuron);
    assert_eq!(o2o.attention().neuron, o2o.neuron);
    let back: ModelConfig = serde_json::from_str(&serde_json::to_string(&o2o).unwrap()).unwrap();
    assert_eq!(back, o2o);
    let default: ModelConfig = serde_json::from_str(r#"{"neuron": {"kind": "rleaky"}}"#).unwrap();
    assert_eq!(default.neuron, Neuron::rleaky(Connection::AllToAll));
    let typo = r#"{"neuron": {"kind": "rleaky", "connection": "one_to_all"}}"#;
    assert!(serde_json::from_str::<ModelConfig>(typo).is_err());
    let stray = r#"{"neuron": {"kind": "rleaky", "alpha": 0.5}}"#;
    assert!(serde_json::from_str::<ModelConfig>(stray).is_err());
    let sigmoid: ModelConfig = serde_json::from_str(
        r#"{"neuron": {"kind": "rleaky"}, "learn_beta": "shared", "beta_form": "sigmoid"}"#,
    )
    .unwrap();
    assert_eq!(config_field(sigmoid.validate()), "beta_form");
}

/// Edge shapes: zero neurons in a row (F = 0: nothing to compute, an empty output and zero
/// gradients) and scalar neurons, whose fused and composed outputs agree in shape and bits.
#[test]
fn zero_and_scalar_neurons() {
    let dev = Device::Cpu;
    let cfg = RLeakyConfig::new(0.9, Connection::AllToAll);
    let empty = Recurrent::AllToAll {
        weight: Tensor::zeros((0, 0), DType::F64, &dev).unwrap(),
        bias: None,
    };
    let x = Var::from_tensor(&Tensor::zeros((4, 3, 0), DType::F64, &dev).unwrap()).unwrap();
    let (s, st) = rleaky::spikes_with(x.as_tensor(), &cfg, &empty, None, None).unwrap();
    assert_eq!((s.dims(), st.mem.dims()), (&[4, 3, 0][..], &[3, 0][..]));
    let g = s.sum_all().unwrap().backward().unwrap();
    match g.get(x.as_tensor()) {
        Some(gx) => assert_eq!(gx.dims(), &[4, 3, 0]),
        // The composed path's ops over zero elements leave the input without a gradient.
        None => assert!(
            !lsnn_layers::kernel::fused_available(x.as_tensor()),
            "the fused op gives the currents a gradient"
        ),
    }
    let scalar = Recurrent::OneToOne {
        v: Tensor::new(&[0.4f64], &dev).unwrap(),
    };
    let o2o = RLeakyConfig::new(0.9, Connection::OneToOne);
    let cur = Tensor::new(&[0.7f64, 0.2, 0.9, 0.1, 0.6], &dev).unwrap();
    let (a, sa) = rleaky::spikes_with(&cur, &o2o, &scalar, None, None).unwrap();
    let (b, sb) = lsnn_layers::kernel::composed(|| {
        rleaky::spikes_with(&cur, &o2o, &scalar, None, None).unwrap()
    });
    assert_eq!((a.dims(), sa.mem.dims()), (b.dims(), sb.mem.dims()));
    assert_eq!(bits(&a), bits(&b));
    assert!(f64s(&a).iter().any(|&v| v > 0.0));
    assert_eq!(bits(&sa.mem), bits(&sb.mem));
    // All-to-all over scalar neurons (F = 1): forward and every gradient as the composed path.
    let a2a = RLeakyConfig::new(0.9, Connection::AllToAll);
    let leaves = [
        cur.clone(),
        Tensor::new(&[[0.3f64]], &dev).unwrap(),
        Tensor::new(&[0.05f64], &dev).unwrap(),
    ];
    let run = |fused: bool| {
        let v: Vec<Var> = leaves
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let rec = Recurrent::AllToAll {
            weight: v[1].as_tensor().clone(),
            bias: Some(v[2].as_tensor().clone()),
        };
        let go = || rleaky::spikes_with(v[0].as_tensor(), &a2a, &rec, None, None).unwrap();
        let (s, st) = if fused {
            go()
        } else {
            lsnn_layers::kernel::composed(go)
        };
        let g = ((&s * 1.5).unwrap().sum_all().unwrap() + st.mem.sum_all().unwrap())
            .unwrap()
            .backward()
            .unwrap();
        let grads: Vec<Tensor> = v
            .iter()
            .map(|x| g.get(x.as_tensor()).unwrap().clone())
            .collect();
        (s, st.mem, grads)
    };
    let (fs, fm, fg) = run(true);
    let (rs, rm, rg) = run(false);
    assert_eq!((fs.dims(), fm.dims()), (rs.dims(), rm.dims()));
    assert_eq!(bits(&fs), bits(&rs));
    assert!(f64s(&fs).iter().any(|&v| v > 0.0));
    for (i, (x, y)) in fg.iter().zip(&rg).enumerate() {
        assert_eq!(x.dims(), y.dims(), "gradient {i}");
        close(&format!("scalar all-to-all gradient {i}"), x, y, 1e-12).unwrap();
    }
}
