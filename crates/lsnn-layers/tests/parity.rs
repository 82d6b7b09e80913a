//! Parity with snnTorch 1.0.0, ncps 1.0.1 and an independent PyTorch implementation of design §2
//! (fixtures written by scripts/fixtures/gen_fixtures.py).

mod common;

use candle_core::{DType, Device, IndexOp, Tensor, Var, D};
use common::*;
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcMode};
use lsnn_layers::lif::{self, reference, LifConfig, ResetMechanism, Surrogate};
use lsnn_layers::{LanguageModel, Mode, ModelConfig};
use std::collections::HashMap;

fn lif_cfg(f: &HashMap<String, Tensor>, reset: ResetMechanism, surrogate: Surrogate) -> LifConfig {
    LifConfig {
        beta: scalar(&f["beta"]),
        threshold: scalar(&f["threshold"]),
        reset,
        surrogate,
        ..LifConfig::default()
    }
}

#[test]
fn lif_parity_with_snntorch_leaky() {
    for (name, reset) in [
        ("lif_subtract.safetensors", ResetMechanism::Subtract),
        ("lif_zero.safetensors", ResetMechanism::Zero),
        ("lif_none.safetensors", ResetMechanism::None),
    ] {
        let f = load(name);
        let cur = &f["current"];
        for (surrogate, gkey) in [
            (Surrogate::fast_sigmoid(25.0), "grad_current_fast_sigmoid"),
            (Surrogate::atan(2.0), "grad_current_atan"),
        ] {
            let cfg = lif_cfg(&f, reset, surrogate);
            // Forward: spikes exactly, membranes within 1e-5.
            let v = Var::from_tensor(cur).unwrap();
            let spikes = lif::spikes(v.as_tensor(), &cfg, None).unwrap().0;
            assert_eq!(vec_f32(&spikes), vec_f32(&f["spikes"]), "{name}: spikes");
            let mut u = cur.get(0).unwrap().zeros_like().unwrap();
            let mut mems = Vec::new();
            for t in 0..cur.dim(0).unwrap() {
                let (nu, _) = reference::step(&u, &cur.get(t).unwrap(), &cfg).unwrap();
                mems.push(nu.clone());
                u = nu;
            }
            let mem = Tensor::stack(&mems, 0).unwrap();
            assert!(max_abs_diff(&mem, &f["mem"]) <= 1e-5, "{name}: membrane");
            // The fused mean membrane is the mean of snnTorch's membranes.
            let (lif::RateOutput { rate, mean_mem }, _) = lif::rate(cur, &cfg, None).unwrap();
            assert!(max_abs_diff(&mean_mem, &f["mem"].mean(0).unwrap()) <= 1e-5);
            assert!(max_abs_diff(&rate, &f["spikes"].mean(0).unwrap()) <= 1e-6);
            // Surrogate gradients through time.
            let loss = (spikes * &f["grad_out"]).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            assert_grad_close(
                &format!("{name} {gkey}"),
                g.get(v.as_tensor()).unwrap(),
                &f[gkey],
                1e-4,
            );
        }
        let rate = scalar(&f["firing_rate"]);
        assert!(rate > 0.05 && rate < 0.6, "{name}: firing rate {rate}");
    }
}

fn cfc_from_fixture(f: &HashMap<String, Tensor>, mode: CfcMode) -> (Cfc, candle_nn::VarMap) {
    let weights: HashMap<String, Tensor> = f
        .iter()
        .filter(|(k, _)| {
            ["backbone.", "ff1.", "ff2.", "time_a.", "time_b."]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let (vm, vb) = varmap_from(&weights);
    let cfg = CfcConfig {
        input_size: f["x"].dim(1).unwrap(),
        hidden_size: f["h"].dim(1).unwrap(),
        backbone_units: f["backbone.0.weight"].dim(0).unwrap(),
        backbone_layers: 1,
        mode,
        ts: scalar(&f["ts"]),
    };
    let cell = Cfc::new(&cfg, vb).unwrap();
    assert_eq!(
        vm.all_vars().len(),
        weights.len(),
        "every weight came from the fixture"
    );
    (cell, vm)
}

#[test]
fn cfc_parity_with_ncps_cfccell() {
    for (name, mode) in [
        ("cfc_default.safetensors", CfcMode::Default),
        ("cfc_no_gate.safetensors", CfcMode::NoGate),
    ] {
        let f = load(name);
        let (cell, vm) = cfc_from_fixture(&f, mode);
        let x = Var::from_tensor(&f["x"]).unwrap();
        let h = Var::from_tensor(&f["h"]).unwrap();
        // The plain step and the projected fast path both equal ncps.
        let out = lsnn_layers::cfc::reference::step(&cell, x.as_tensor(), h.as_tensor()).unwrap();
        assert!(max_abs_diff(&out, &f["h_new"]) <= 1e-5, "{name}: step");
        let p = cell.input_projection(x.as_tensor()).unwrap();
        let fast = cell
            .step_projected(&p, h.as_tensor(), &cell.prepare().unwrap())
            .unwrap();
        assert!(
            max_abs_diff(&fast, &f["h_new"]) <= 1e-5,
            "{name}: projected step"
        );
        for t in [&out, &fast] {
            let loss = (t * &f["grad_out"]).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            assert_grad_close("grad.x", g.get(x.as_tensor()).unwrap(), &f["grad.x"], 1e-4);
            assert_grad_close("grad.h", g.get(h.as_tensor()).unwrap(), &f["grad.h"], 1e-4);
            let data = vm.data().lock().unwrap();
            for (k, v) in data.iter() {
                let gk = format!("grad.{k}");
                assert_grad_close(&gk, g.get(v.as_tensor()).unwrap(), &f[&gk], 1e-4);
            }
        }
    }
}

fn lm_from_fixture() -> (
    LanguageModel,
    candle_nn::VarMap,
    HashMap<String, Tensor>,
    ModelConfig,
) {
    let f = load("lm.safetensors");
    let cfg_text = std::fs::read_to_string(fixture_path("lm_config.json")).unwrap();
    let cfg = ModelConfig::from_json(&cfg_text).unwrap();
    let params = parameters(&f, &["block0", "ids", "logits", "loss"]);
    let (vm, vb) = varmap_from(&params);
    let model = LanguageModel::new(&cfg, vb).unwrap();
    assert_eq!(
        vm.all_vars().len(),
        params.len(),
        "the model uses exactly the fixture's parameters"
    );
    (model, vm, f, cfg)
}

#[test]
fn lm_parity_with_the_pytorch_model() {
    let (model, vm, f, cfg) = lm_from_fixture();
    for k in ["firing_rate.enc1", "firing_rate.enc2", "firing_rate.attn"] {
        let r = scalar(&f[k]);
        assert!(
            r > 0.05 && r < 0.6,
            "{k} = {r}: the fixture must exercise spikes"
        );
    }
    let ids = &f["ids"];
    let logits = model.forward(ids, &mut Mode::Eval).unwrap();
    let (shifted, loss) = model.loss(ids, 0.0, &mut Mode::Eval).unwrap();
    // The loss reads ids[:, :-1]; causality makes its logits those of the full call.
    let l_in = ids.dim(1).unwrap() - 1;
    assert!(max_abs_diff(&shifted, &logits.narrow(1, 0, l_in).unwrap()) <= 1e-6);
    let reference = &f["logits"];
    let (b, l, v) = logits.dims3().unwrap();
    assert_eq!(v, cfg.vocab_size);
    let diff = (&logits - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max(D::Minus1)
        .unwrap();
    let diffs = vec_f32(&diff);
    let close = diffs.iter().filter(|&&d| d <= 1e-3).count() as f64 / (b * l) as f64;
    let am = logits
        .argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let bm = reference
        .argmax(D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let agree = am.iter().zip(&bm).filter(|(a, b)| a == b).count() as f64 / am.len() as f64;
    assert!(
        close >= 0.995,
        "only {close} of positions within 1e-3 (max diff {:?})",
        diffs.iter().cloned().fold(0.0, f32::max)
    );
    assert!(agree >= 0.999, "argmax agreement {agree}");
    let ce = scalar(&loss.cross_entropy);
    let want = scalar(&f["loss"]);
    assert!(
        (ce - want).abs() <= 1e-4 * want.abs().max(1.0),
        "loss {ce} vs {want}"
    );
    // Every parameter's gradient.
    let grads = loss.objective.backward().unwrap();
    let data = vm.data().lock().unwrap();
    for (k, var) in data.iter() {
        let gk = format!("grad.{k}");
        assert_grad_close(&gk, grads.get(var.as_tensor()).expect(&gk), &f[&gk], 1e-4);
    }
}

#[test]
fn block_parity_with_the_pytorch_block() {
    let (model, _vm, f, _cfg) = lm_from_fixture();
    let (out, lsnn_layers::BlockState { h }) = model.blocks()[0]
        .forward(&f["block0.x"], None, &mut Mode::Eval)
        .unwrap();
    assert!(max_abs_diff(&out, &f["block0.out"]) <= 1e-4);
    assert!(max_abs_diff(&h, &f["block0.h"]) <= 1e-5);
}

#[test]
fn streaming_lm_matches_the_sequence_call() {
    let (model, _vm, f, _cfg) = lm_from_fixture();
    let ids = &f["ids"];
    let full = model.forward(ids, &mut Mode::Eval).unwrap();
    let (b, l) = ids.dims2().unwrap();
    let mut state = model.new_state(b).unwrap();
    let mut worst = 0f32;
    let mut close = 0;
    for t in 0..l {
        let step = model.step(&ids.i((.., t)).unwrap(), &mut state).unwrap();
        let d = max_abs_diff(&step, &full.i((.., t, ..)).unwrap().contiguous().unwrap());
        worst = worst.max(d);
        if d <= 1e-3 {
            close += 1;
        }
    }
    assert_eq!(close, l, "worst per-position difference {worst}");
    assert_eq!(state.position(), l);
    // Past the position table: a typed error naming the limit.
    let err = model
        .step(
            &Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap(),
            &mut state,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("max_position_embeddings = 10"),
        "{err}"
    );
    let _ = DType::F32;
}
