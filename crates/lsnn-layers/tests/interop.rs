//! lsnn's layers inside candle: candle-nn and lsnn layers in one `VarBuilder`, every `Init`
//! candle-nn asks for, `?` on lsnn errors in `candle_core::Result` code, candle's `ModuleT` and
//! `RNN` traits, and the device-side finiteness check.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::rnn::RNN;
use candle_nn::{Init, VarBuilder, VarMap};
use lsnn_layers::{
    Cfc, CfcConfig, CfcState, LayerError, Mode, SeededInit, SeededRng, SpikingEncoder,
    SpikingEncoderConfig,
};

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn std_of(v: &[f32]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    (v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n).sqrt()
}

/// `SeededInit` serves Kaiming as PyTorch does (std = gain/√fan_in; normal, or uniform with
/// bound √3·std), reproducibly from its seed, so `candle_nn::linear` builds through it.
#[test]
fn seeded_init_serves_every_init_candle_nn_asks_for() {
    use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
    let dev = Device::Cpu;
    let draw = |init: Init, seed: u64| {
        let vm = VarMap::new();
        let vb = SeededInit::var_builder(&vm, SeededRng::new(seed), DType::F32, &dev);
        f32s(&vb.get_with_hints((400, 250), "w", init).unwrap())
    };
    let normal = Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanIn,
        non_linearity: NonLinearity::ReLU,
    };
    let want = 2f64.sqrt() / 250f64.sqrt();
    let got = std_of(&draw(normal, 1));
    assert!(
        (got / want - 1.0).abs() < 0.02,
        "normal std {got} vs {want}"
    );
    assert_eq!(draw(normal, 1), draw(normal, 1), "same seed, same draw");
    assert_ne!(draw(normal, 1), draw(normal, 2));
    let uniform = Init::Kaiming {
        dist: NormalOrUniform::Uniform,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::Tanh,
    };
    let v = draw(uniform, 3);
    let std = (5.0 / 3.0) / 400f64.sqrt();
    let bound = 3f64.sqrt() * std;
    assert!(v.iter().all(|&x| (x as f64).abs() <= bound + 1e-7));
    assert!((std_of(&v) / std - 1.0).abs() < 0.02);
    // candle-nn's own layer through lsnn's builder.
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(4), DType::F32, &dev);
    let lin = candle_nn::linear(250, 400, vb.pp("head")).unwrap();
    assert_eq!(lin.weight().dims(), &[400, 250]);
    assert!(vm.data().lock().unwrap().contains_key("head.bias"));
}

/// lsnn and candle-nn layers share one builder of either kind: lsnn's seeded one, or candle's
/// own `VarMap` builder; names and shapes land in the one map.
#[test]
fn lsnn_and_candle_nn_layers_share_one_var_builder() {
    let dev = Device::Cpu;
    for seeded in [true, false] {
        let vm = VarMap::new();
        let vb = if seeded {
            SeededInit::var_builder(&vm, SeededRng::new(5), DType::F32, &dev)
        } else {
            VarBuilder::from_varmap(&vm, DType::F32, &dev)
        };
        let enc = SpikingEncoder::new(&SpikingEncoderConfig::new(6, 8), vb.pp("enc")).unwrap();
        let head = candle_nn::linear(8, 3, vb.pp("head")).unwrap();
        let cfc = Cfc::new(&CfcConfig::new(8, 5).with_backbone(16, 1), vb.pp("cfc")).unwrap();
        let keys: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
        for k in [
            "enc.fc1.weight",
            "enc.fc2.bias",
            "head.weight",
            "cfc.backbone.0.weight",
        ] {
            assert!(keys.iter().any(|n| n == k), "{k} not in {keys:?}");
        }
        let x = Tensor::ones((4, 6), DType::F32, &dev).unwrap();
        let y = head.forward(&x.apply_t(&enc, false).unwrap()).unwrap();
        assert_eq!(y.dims(), &[4, 3]);
        let seq = Tensor::ones((2, 3, 8), DType::F32, &dev).unwrap();
        assert_eq!(cfc.forward(&seq).unwrap().dims(), &[2, 3, 5]);
    }
}

fn build_encoder(in_dim: usize) -> candle_core::Result<SpikingEncoder> {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(1), DType::F32, &Device::Cpu);
    let cfg = SpikingEncoderConfig::new(in_dim, 4).with_dropout(1.5);
    Ok(SpikingEncoder::new(&cfg, vb)?)
}

/// A `LayerError` converts into candle's error with its message, so `?` works in a user's
/// `candle_core::Result` code; candle's own errors come back as themselves.
#[test]
fn layer_errors_convert_into_candle_errors() {
    let e = build_encoder(3).unwrap_err();
    assert!(e.to_string().contains("encoder dropout"), "{e}");
    let inner: candle_core::Error = LayerError::Candle(candle_core::Error::Msg("x".into())).into();
    assert!(matches!(inner, candle_core::Error::Msg(m) if m == "x"));
}

/// Under `ModuleT` the encoder drops with its own seeded generator: evaluation equals the
/// explicit evaluation mode; training draws new masks each call, reproducibly after restoring
/// the generator's state.
#[test]
fn module_t_dropout_comes_from_the_layers_own_generator() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(8), DType::F32, &dev);
    let cfg = SpikingEncoderConfig::new(10, 16)
        .with_steps(6)
        .with_dropout(0.5)
        .with_seed(3);
    let enc = SpikingEncoder::new(&cfg, vb).unwrap();
    let x = SeededRng::new(9)
        .normal_tensor((32, 10), 0.0, 2.0, DType::F32, &dev)
        .unwrap();
    let eval = f32s(&x.apply_t(&enc, false).unwrap());
    assert_eq!(eval, f32s(&enc.rate(&x, &mut Mode::Eval).unwrap().spikes));
    let saved = enc.dropout_rng().state();
    let a = f32s(&x.apply_t(&enc, true).unwrap());
    let b = f32s(&x.apply_t(&enc, true).unwrap());
    assert_ne!(a, eval, "dropout is on in training");
    assert_ne!(a, b, "each call draws new masks");
    enc.dropout_rng().set_state(saved).unwrap();
    assert_eq!(
        f32s(&x.apply_t(&enc, true).unwrap()),
        a,
        "restored state, same masks"
    );
    assert!(enc.dropout_rng().set_state([0; 4]).is_err());
}

/// The CfC as a candle `RNN`: `seq` (the fused op) gives the states `step` gives one at a time,
/// and `states_to_tensor` the `Module` output.
#[test]
fn cfc_implements_candles_rnn_trait() {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(10), DType::F32, &dev);
    let cfc = Cfc::new(&CfcConfig::new(4, 6).with_backbone(12, 1), vb).unwrap();
    let x = SeededRng::new(11)
        .normal_tensor((3, 9, 4), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let states = cfc.seq(&x).unwrap();
    assert_eq!(states.len(), 9);
    let mut st: CfcState = cfc.zero_state(3).unwrap();
    for (t, want) in states.iter().enumerate() {
        st = cfc
            .step(&x.narrow(1, t, 1).unwrap().squeeze(1).unwrap(), &st)
            .unwrap();
        let d = (&st.h - &want.h).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() <= 1e-5, "step {t}");
    }
    let all = cfc.states_to_tensor(&states).unwrap();
    assert_eq!(f32s(&all), f32s(&cfc.forward(&x).unwrap()));
    // A given initial state is used.
    let h0 = CfcState {
        h: Tensor::ones((3, 6), DType::F32, &dev).unwrap(),
    };
    let other = cfc.seq_init(&x, &h0).unwrap();
    assert_ne!(f32s(&other[0].h), f32s(&states[0].h));
}

/// The finiteness check reduces on the device: values near `f32::MAX` (whose sum would
/// overflow) pass, and each NaN or infinity is counted.
#[test]
fn the_finiteness_check_is_exact_near_f32_max() {
    use lsnn_layers::nn::check_finite;
    let dev = Device::Cpu;
    let big = Tensor::full(f32::MAX, (64, 64), &dev).unwrap();
    check_finite(&big, "big").unwrap();
    let neg = Tensor::full(-f32::MAX, 1000, &dev).unwrap();
    check_finite(
        &Tensor::cat(&[big.flatten_all().unwrap(), neg], 0).unwrap(),
        "both",
    )
    .unwrap();
    let mut v = vec![f32::MAX; 4096];
    v[17] = f32::INFINITY;
    v[900] = f32::NAN;
    v[4095] = f32::NEG_INFINITY;
    let t = Tensor::from_vec(v, 4096, &dev).unwrap();
    match check_finite(&t, "input") {
        Err(LayerError::NonFinite { what, count }) => assert_eq!((what, count), ("input", 3)),
        other => panic!("{other:?}"),
    }
    // Through a layer's public entry point, in f64 too.
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(1), DType::F64, &dev);
    let enc = SpikingEncoder::new(&SpikingEncoderConfig::new(3, 4), vb).unwrap();
    let x = Tensor::new(&[[1.0f64, f64::NAN, 2.0], [f64::MAX, 0.0, 1.0]], &dev).unwrap();
    let e = enc.rate(&x, &mut Mode::Eval).unwrap_err();
    assert!(matches!(e, LayerError::NonFinite { count: 1, .. }), "{e}");
}
