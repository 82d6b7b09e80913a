//! The completed CfC against ncps 1.0.1 (`scripts/fixtures/gen_cfc_ncps.py`): `CfCCell` in mode
//! `pure` and with 0-, 1-, 2- and 3-layer backbones, `WiredCfCCell` over AutoNCP and
//! FullyConnected wirings, with random per-step time spans or the constant one, over 40- and
//! 160-step sequences — the outputs and the gradient of every input and weight, through the
//! fused op, the composed reference and the ncps-exact step loop; in f64 within 1e-9 and in f32
//! within the tolerances below.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcMode, CfcState, WiredCfc, WiredCfcConfig};
use lsnn_layers::wiring::{AutoNcpConfig, FullyConnectedConfig, Wiring};
use std::collections::HashMap;

/// f32 tolerances, |ours − ncps| ≤ tol·max(1, |ncps|), for outputs and gradients by sequence
/// length. Measured worst cases over the three paths (docs/layers.md): L = 40 outputs 7.8e-7,
/// gradients 6.4e-6; L = 160 outputs 1.0e-7, gradients 3.0e-6.
fn f32_tolerance(len: usize) -> (f64, f64) {
    if len <= 40 {
        (5e-6, 5e-5)
    } else {
        (1e-5, 1e-4)
    }
}
const F64_TOLERANCE: f64 = 1e-9;

fn load(name: &str) -> HashMap<String, Tensor> {
    let path = format!(
        "{}/tests/fixtures/ncps/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    );
    candle_core::safetensors::load(path, &Device::Cpu).expect("fixture loads")
}

enum Cell {
    Dense(Cfc),
    Wired(WiredCfc),
}

fn wiring_of(case: &str) -> Option<Wiring> {
    Some(match case {
        "wired_ncp_default" | "wired_ncp_pure" => AutoNcpConfig::new(16, 4).build(5).unwrap(),
        "wired_fc_no_gate" => FullyConnectedConfig::new(10).build(4).unwrap(),
        "wired_ncp_long" => AutoNcpConfig::new(32, 8)
            .with_sparsity(0.75)
            .with_seed(1234)
            .build(12)
            .unwrap(),
        _ => return None,
    })
}

fn mode_of(case: &str) -> CfcMode {
    if case.contains("pure") {
        CfcMode::Pure
    } else if case.contains("no_gate") {
        CfcMode::NoGate
    } else {
        CfcMode::Default
    }
}

/// The cell with the fixture's weights as variables (in the fixture's dtype).
fn cell_from(case: &str, f: &HashMap<String, Tensor>) -> (Cell, VarMap) {
    let dtype = f["x"].dtype();
    let vm = VarMap::new();
    let mut names = Vec::new();
    {
        let mut data = vm.data().lock().unwrap();
        for (k, t) in f {
            if !(k.starts_with("grad.")
                || k.starts_with("meta.")
                || ["x", "h0", "ts", "out", "grad_out"].contains(&k.as_str()))
            {
                data.insert(k.clone(), Var::from_tensor(t).unwrap());
                names.push(k.clone());
            }
        }
    }
    let vb = VarBuilder::from_varmap(&vm, dtype, &Device::Cpu);
    let mode = mode_of(case);
    let cell = match wiring_of(case) {
        Some(w) => Cell::Wired(WiredCfc::new(&WiredCfcConfig::new(w).with_mode(mode), vb).unwrap()),
        None => {
            let depth = (0..)
                .take_while(|k| f.contains_key(&format!("backbone.{k}.weight")))
                .count();
            let units = if depth > 0 {
                f["backbone.0.weight"].dim(0).unwrap()
            } else {
                0
            };
            let cfg = CfcConfig::new(f["x"].dim(2).unwrap(), f["h0"].dim(1).unwrap())
                .with_backbone(units, depth)
                .with_mode(mode);
            Cell::Dense(Cfc::new(&cfg, vb).unwrap())
        }
    };
    assert_eq!(
        vm.all_vars().len(),
        names.len(),
        "{case}: every weight came from the fixture"
    );
    (cell, vm)
}

/// Outputs [B, L, out] of the fused (or, inside `composed`, the composed) sequence.
fn sequence(cell: &Cell, x: &Tensor, h0: &Tensor, ts: Option<&Tensor>) -> Tensor {
    let s = CfcState { h: h0.clone() };
    match (cell, ts) {
        (Cell::Dense(c), Some(t)) => c.forward_timespans(x, t, Some(&s)).unwrap().0,
        (Cell::Dense(c), None) => c.forward_state(x, Some(&s)).unwrap().0,
        (Cell::Wired(w), Some(t)) => w.forward_timespans(x, t, Some(&s)).unwrap().0,
        (Cell::Wired(w), None) => w.forward_state(x, Some(&s)).unwrap().0,
    }
}

/// Outputs through the ncps-exact per-step code.
fn stepped(cell: &Cell, x: &Tensor, h0: &Tensor, ts: Option<&Tensor>) -> Tensor {
    let l = x.dim(1).unwrap();
    let mut h = h0.clone();
    let mut outs = Vec::new();
    for t in 0..l {
        let xt = x.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        let tt = ts.map(|s| s.narrow(1, t, 1).unwrap().squeeze(1).unwrap());
        let out = match cell {
            Cell::Dense(c) => {
                h = match &tt {
                    Some(s) => c.step_timespan(&xt, &h, s).unwrap(),
                    None => lsnn_layers::cfc::reference::step(c, &xt, &h).unwrap(),
                };
                h.clone()
            }
            Cell::Wired(w) => {
                let (o, hn) = w.step(&xt, &h, tt.as_ref()).unwrap();
                h = hn;
                o
            }
        };
        outs.push(out);
    }
    Tensor::stack(&outs, 1).unwrap()
}

/// max over elements of |a − b| / max(1, |b|).
fn rel_err(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims());
    let a = a
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let b = b
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f64::max)
}

const CASES: [&str; 9] = [
    "pure_b1",
    "default_b2",
    "no_gate_b3",
    "default_b0",
    "pure_b0",
    "wired_ncp_default",
    "wired_ncp_pure",
    "wired_fc_no_gate",
    "wired_ncp_long",
];

/// The worst (output, gradient) errors of one case and path.
fn check(case: &str, tag: &str, path: &str) -> (f64, f64) {
    let f = load(&format!("cfc_{case}_{tag}"));
    let (cell, vm) = cell_from(case, &f);
    let x = Var::from_tensor(&f["x"]).unwrap();
    let h0 = Var::from_tensor(&f["h0"]).unwrap();
    let ts = f.get("ts").map(|t| Var::from_tensor(t).unwrap());
    let tst = ts.as_ref().map(|v| v.as_tensor());
    let out = match path {
        "fused" => sequence(&cell, x.as_tensor(), h0.as_tensor(), tst),
        "composed" => {
            lsnn_layers::kernel::composed(|| sequence(&cell, x.as_tensor(), h0.as_tensor(), tst))
        }
        _ => stepped(&cell, x.as_tensor(), h0.as_tensor(), tst),
    };
    let out_err = rel_err(&out, &f["out"]);
    let g = (&out * &f["grad_out"])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut grad_err = 0f64;
    let mut inputs: Vec<(String, Tensor)> = vec![
        ("x".into(), x.as_tensor().clone()),
        ("h0".into(), h0.as_tensor().clone()),
    ];
    if let Some(t) = &ts {
        inputs.push(("ts".into(), t.as_tensor().clone()));
    }
    for (k, v) in vm.data().lock().unwrap().iter() {
        inputs.push((k.clone(), v.as_tensor().clone()));
    }
    for (k, v) in &inputs {
        let ours = g
            .get(v)
            .unwrap_or_else(|| panic!("{case} {tag} {path}: no gradient for {k}"));
        grad_err = grad_err.max(rel_err(ours, &f[&format!("grad.{k}")]));
    }
    (out_err, grad_err)
}

#[test]
fn f64_equals_ncps_within_1e_9() {
    for case in CASES {
        for path in ["fused", "composed", "stepped"] {
            let (o, g) = check(case, "f64", path);
            println!("{case} f64 {path}: outputs {o:.2e}, gradients {g:.2e}");
            assert!(
                o <= F64_TOLERANCE && g <= F64_TOLERANCE,
                "{case} f64 {path}: outputs {o:.2e}, gradients {g:.2e}"
            );
        }
    }
}

#[test]
fn f32_equals_ncps_within_stated_tolerances() {
    for case in CASES {
        let len = load(&format!("cfc_{case}_f32"))["x"].dim(1).unwrap();
        let (to, tg) = f32_tolerance(len);
        for path in ["fused", "composed", "stepped"] {
            let (o, g) = check(case, "f32", path);
            println!("{case} L={len} f32 {path}: outputs {o:.2e}, gradients {g:.2e}");
            assert!(
                o <= to && g <= tg,
                "{case} f32 {path} (L = {len}): outputs {o:.2e} (tol {to:.0e}), gradients {g:.2e} (tol {tg:.0e})"
            );
        }
    }
}
