//! ncps' `CfC` sequence wrapper against ncps 1.0.1 (`scripts/fixtures/gen_cfc_ncps.py`):
//! `mixed_memory` (the LSTM memory cell), `proj_size` and `return_sequences` over a dense and a
//! wired cell — the readout, the final (h, c), and the gradient of every input and weight, in f64
//! within 1e-9 and in f32 within 5e-6 (outputs) and 5e-5 (gradients), relative to max(1, |ncps|).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lsnn_layers::cfc::{
    CfcConfig, CfcRnn, CfcRnnConfig, CfcRnnState, LiquidCellConfig, WiredCfcConfig,
};
use lsnn_layers::wiring::AutoNcpConfig;
use std::collections::HashMap;

const DATA: [&str; 7] = ["x", "h0", "c0", "out", "hn", "cn", "grad_out"];

fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let v = |t: &Tensor| {
        t.flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    };
    v(a).iter()
        .zip(v(b))
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn config(case: &str) -> CfcRnnConfig {
    match case {
        "mixed_proj_seq" => CfcRnnConfig::new(LiquidCellConfig::Dense(
            CfcConfig::new(6, 8).with_backbone(16, 1),
        ))
        .with_proj_size(3)
        .with_mixed_memory(true),
        "wired_mixed_last" => CfcRnnConfig::new(LiquidCellConfig::Wired(WiredCfcConfig::new(
            AutoNcpConfig::new(16, 4).build(5).unwrap(),
        )))
        .with_proj_size(2)
        .with_mixed_memory(true)
        .with_return_sequences(false),
        other => panic!("unknown case {other}"),
    }
}

fn check(case: &str, tag: &str) -> (f64, f64) {
    let path = format!(
        "{}/tests/fixtures/ncps/rnn_{case}_{tag}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    let f: HashMap<String, Tensor> = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let dtype = f["x"].dtype();
    let vm = VarMap::new();
    let mut n = 0;
    for (k, t) in &f {
        if !k.starts_with("grad.") && !DATA.contains(&k.as_str()) {
            vm.data()
                .lock()
                .unwrap()
                .insert(k.clone(), Var::from_tensor(t).unwrap());
            n += 1;
        }
    }
    let rnn = CfcRnn::new(
        &config(case),
        VarBuilder::from_varmap(&vm, dtype, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(
        vm.all_vars().len(),
        n,
        "{case}: every weight came from the fixture"
    );
    let x = Var::from_tensor(&f["x"]).unwrap();
    let h0 = Var::from_tensor(&f["h0"]).unwrap();
    let c0 = Var::from_tensor(&f["c0"]).unwrap();
    let state = CfcRnnState {
        h: h0.as_tensor().clone(),
        c: Some(c0.as_tensor().clone()),
    };
    let out = rnn.forward(x.as_tensor(), Some(&state), None).unwrap();
    let mut out_err = rel_err(&out.readout, &f["out"]);
    out_err = out_err.max(rel_err(&out.state.h, &f["hn"]));
    out_err = out_err.max(rel_err(out.state.c.as_ref().unwrap(), &f["cn"]));
    let g = (&out.readout * &f["grad_out"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut grad_err = 0f64;
    let mut vars: Vec<(String, Tensor)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    vars.push(("x".into(), x.as_tensor().clone()));
    vars.push(("h0".into(), h0.as_tensor().clone()));
    vars.push(("c0".into(), c0.as_tensor().clone()));
    for (k, v) in &vars {
        let ours = g
            .get(v)
            .unwrap_or_else(|| panic!("{case}: no gradient for {k}"));
        grad_err = grad_err.max(rel_err(ours, &f[&format!("grad.{k}")]));
    }
    (out_err, grad_err)
}

#[test]
fn the_sequence_wrapper_equals_ncps() {
    for case in ["mixed_proj_seq", "wired_mixed_last"] {
        let (o, g) = check(case, "f64");
        println!("{case} f64: outputs {o:.2e}, gradients {g:.2e}");
        assert!(
            o <= 1e-9 && g <= 1e-9,
            "{case} f64: outputs {o:.2e}, gradients {g:.2e}"
        );
        let (o, g) = check(case, "f32");
        println!("{case} f32: outputs {o:.2e}, gradients {g:.2e}");
        assert!(
            o <= 5e-6 && g <= 5e-5,
            "{case} f32: outputs {o:.2e}, gradients {g:.2e}"
        );
    }
}

#[test]
fn the_wrapper_without_memory_runs_the_fused_op_and_checks_its_state() {
    let cfg = CfcRnnConfig::new(LiquidCellConfig::Dense(
        CfcConfig::new(3, 4).with_backbone(5, 1),
    ));
    let vm = VarMap::new();
    let vb = lsnn_layers::SeededInit::var_builder(
        &vm,
        lsnn_layers::SeededRng::new(1),
        DType::F32,
        &Device::Cpu,
    );
    let rnn = CfcRnn::new(&cfg, vb).unwrap();
    let x = Tensor::ones((2, 5, 3), DType::F32, &Device::Cpu).unwrap();
    let y = rnn.forward(&x, None, None).unwrap();
    assert_eq!(y.readout.dims(), &[2, 5, 4]);
    let composed = lsnn_layers::kernel::composed(|| rnn.forward(&x, None, None).unwrap());
    assert!(rel_err(&y.readout, &composed.readout) < 1e-6);
    // A memory state for a wrapper without memory, a wrong batch: typed errors.
    let bad = CfcRnnState {
        h: Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap(),
        c: Some(Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap()),
    };
    assert!(rnn
        .forward(&x, Some(&bad), None)
        .unwrap_err()
        .to_string()
        .contains("without mixed_memory"));
    let bad = CfcRnnState {
        h: Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap(),
        c: None,
    };
    assert!(rnn
        .forward(&x, Some(&bad), None)
        .unwrap_err()
        .to_string()
        .contains("[2, 4]"));
    let ts = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(rnn
        .forward(&x, None, Some(&ts))
        .unwrap_err()
        .to_string()
        .contains("one span per row and step"));
}
