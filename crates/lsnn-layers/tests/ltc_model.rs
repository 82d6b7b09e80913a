//! The LTC as a model's liquid cell (`liquid_backbone: "ltc"`, design §2.14): the block streams
//! as its sequence call does, the model's keys follow ncps' names, the parameter count is exact
//! (for every backbone), every LTC parameter gets a gradient through the model, the explicit
//! constraint is applied through the model, and the config's own checks.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarMap;
use common::{block_of, max_abs_diff, small_config};
use lsnn_layers::block::{BlockConfig, BlockState};
use lsnn_layers::lif::LifConfig;
use lsnn_layers::ltc::{LtcConstraint, LtcSettings};
use lsnn_layers::model::config::LtcWiring;
use lsnn_layers::{LanguageModel, LayerError, Mode, ModelConfig, SeededInit, SeededRng};

fn ltc_config(wiring: LtcWiring, constraint: LtcConstraint) -> ModelConfig {
    let mut cfg = small_config(2, 1);
    cfg.liquid_backbone = "ltc".into();
    cfg.ltc_wiring = Some(wiring);
    cfg.ltc_constraint = Some(constraint);
    cfg.ltc_ode_unfolds = Some(4);
    cfg.validate().unwrap();
    cfg
}

fn model(cfg: &ModelConfig, seed: u64) -> (VarMap, LanguageModel) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(seed), DType::F32, &Device::Cpu);
    let m = LanguageModel::new(cfg, vb).unwrap();
    (vm, m)
}

#[test]
fn ltc_block_streaming_equals_the_sequence_call() {
    for ncp in [false, true] {
        let mut cfg = BlockConfig::new(12, 8, 10)
            .with_spike_steps(4)
            .with_lif(LifConfig::default().with_threshold(0.5))
            .with_ltc(LtcSettings::default());
        if ncp {
            cfg = cfg.with_ncp(lsnn_layers::wiring::AutoNcpConfig::new(10, 3));
        }
        let blk = block_of(&cfg, 41);
        let mut rng = SeededRng::new(42);
        let (b, l) = (3usize, 6usize);
        let dev = Device::Cpu;
        let x = rng
            .normal_tensor((b, l, 12), 0.0, 1.5, DType::F32, &dev)
            .unwrap();
        let h0 = rng
            .normal_tensor((b, 10), 0.0, 0.5, DType::F32, &dev)
            .unwrap();
        let given = BlockState { h: h0.clone() };
        let (out, BlockState { h: last }) = blk.forward(&x, Some(&given), &mut Mode::Eval).unwrap();
        let mut state = given.clone();
        for t in 0..l {
            let xt = x.i((.., t, ..)).unwrap().contiguous().unwrap();
            let yt = blk.step(&xt, &mut state, &mut Mode::Eval).unwrap();
            let want = out.i((.., t, ..)).unwrap().contiguous().unwrap();
            assert!(max_abs_diff(&yt, &want) <= 1e-5, "ncp {ncp}, position {t}");
        }
        assert!(max_abs_diff(&state.h, &last) <= 1e-5);
        let (a, _) = blk.forward(&x, None, &mut Mode::Eval).unwrap();
        assert!(max_abs_diff(&a, &out) > 1e-3, "the initial state matters");
        // Per-step spans are the CfC's: a typed error here.
        let spans = Tensor::ones((b, l), DType::F32, &dev).unwrap();
        assert!(matches!(
            blk.forward_with_spans(&x, &spans, None, &mut Mode::Eval),
            Err(LayerError::Unsupported { .. })
        ));
    }
}

#[test]
fn parameter_count_is_exact_for_every_backbone() {
    let mut cases = Vec::new();
    for backbone in ["cfc", "ncp"] {
        let mut c = small_config(2, 1);
        c.liquid_backbone = backbone.into();
        if backbone == "ncp" {
            c.liquid_units = 12;
        }
        cases.push(c);
    }
    let mut wired = ltc_config(LtcWiring::Ncp, LtcConstraint::Implicit);
    wired.liquid_units = 12;
    cases.push(ltc_config(
        LtcWiring::FullyConnected,
        LtcConstraint::Explicit,
    ));
    cases.push(wired);
    for cfg in cases {
        let (vm, _) = model(&cfg, 1);
        let created: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(
            cfg.parameter_count().unwrap(),
            created as u128,
            "{} {:?}",
            cfg.liquid_backbone,
            cfg.ltc_wiring
        );
    }
}

#[test]
fn ltc_keys_gradients_and_the_explicit_constraint_through_the_model() {
    let cfg = ltc_config(LtcWiring::FullyConnected, LtcConstraint::Explicit);
    let (vm, m) = model(&cfg, 2);
    let (h, s) = (cfg.liquid_units, cfg.spiking_units);
    let data = vm.data().lock().unwrap().clone();
    for (key, dims) in [
        ("blocks.0.ltc.w", vec![h, h]),
        ("blocks.1.ltc.sensory_erev", vec![s, h]),
        ("blocks.0.ltc.cm", vec![h]),
        ("blocks.0.ltc.input_w", vec![s]),
        ("blocks.1.ltc.output_b", vec![h]),
    ] {
        assert_eq!(data[key].dims(), dims.as_slice(), "{key}");
    }
    assert!(!data.keys().any(|k| k.contains(".cfc.")), "no CfC weights");
    let ids = Tensor::new(
        &[[1u32, 5, 7, 2, 9, 3, 4], [0, 2, 4, 6, 8, 10, 12]],
        &Device::Cpu,
    )
    .unwrap();
    let (_, grads) = m.loss_and_grads(&ids, 0.0, &mut Mode::Eval, 1.0).unwrap();
    let grads = grads.unwrap();
    for (k, v) in data.iter().filter(|(k, _)| k.contains(".ltc.")) {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{k}: no gradient"));
        let n = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0 && n.is_finite(), "{k}: |grad| {n}");
    }
    // A negative entry in each positive parameter is clamped by the model's post-step call.
    for name in lsnn_layers::ltc::POSITIVE {
        let var = &data[&format!("blocks.1.ltc.{name}")];
        let neg = (var.as_tensor() - 2.0).unwrap();
        var.set(&neg).unwrap();
    }
    let before = data["blocks.0.ltc.w"].as_tensor().copy().unwrap();
    m.apply_weight_constraints().unwrap();
    for name in lsnn_layers::ltc::POSITIVE {
        let v = data[&format!("blocks.1.ltc.{name}")].as_tensor();
        let min = v
            .flatten_all()
            .unwrap()
            .min(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(min, 0.0, "{name} clamped to 0");
    }
    assert_eq!(
        common::vec_f32(data["blocks.0.ltc.w"].as_tensor()),
        common::vec_f32(&before),
        "positive values untouched"
    );
    // Under the implicit constraint nothing is clamped.
    let cfg = ltc_config(LtcWiring::FullyConnected, LtcConstraint::Implicit);
    let (vm, m) = model(&cfg, 2);
    let w = vm.data().lock().unwrap()["blocks.0.ltc.w"].clone();
    w.set(&(w.as_tensor() - 2.0).unwrap()).unwrap();
    let kept = common::vec_f32(w.as_tensor());
    m.apply_weight_constraints().unwrap();
    assert_eq!(common::vec_f32(w.as_tensor()), kept);
}

#[test]
fn ltc_config_checks() {
    let field = |cfg: &ModelConfig| match cfg.validate() {
        Err(LayerError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    let mut c = small_config(2, 1);
    c.ltc_ode_unfolds = Some(3);
    assert_eq!(field(&c), "ltc_ode_unfolds", "LTC fields with the CfC");
    let mut c = ltc_config(LtcWiring::FullyConnected, LtcConstraint::Explicit);
    c.cfc_mode = lsnn_layers::CfcMode::Pure;
    assert_eq!(field(&c), "cfc_mode");
    let mut c = ltc_config(LtcWiring::FullyConnected, LtcConstraint::Explicit);
    c.cfc_time_span = 0.0;
    assert_eq!(field(&c), "cfc_time_span");
    let mut c = ltc_config(LtcWiring::FullyConnected, LtcConstraint::Explicit);
    c.ncp_outputs = Some(3);
    assert!(field(&c).contains("ncp_outputs"));
    let mut c = ltc_config(LtcWiring::FullyConnected, LtcConstraint::Explicit);
    c.ltc_ode_unfolds = Some(0);
    assert_eq!(field(&c), "ltc_ode_unfolds");
    // The resolved config states every LTC value and reads back the same.
    let c = ltc_config(LtcWiring::Ncp, LtcConstraint::Implicit).with_ncp_resolved();
    assert_eq!(c.ltc_wiring, Some(LtcWiring::Ncp));
    assert!(c.ncp_outputs.is_some());
    assert_eq!(ModelConfig::from_json(&c.to_json()).unwrap(), c);
}
