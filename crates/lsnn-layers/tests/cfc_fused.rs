//! The fused CfC sequence op against the per-step composition (forward and every gradient), and
//! against central finite differences in f64.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcMode};
use lsnn_layers::{SeededInit, SeededRng};
use proptest::prelude::*;

fn cell(
    mode: CfcMode,
    input: usize,
    hidden: usize,
    units: usize,
    dtype: DType,
    seed: u64,
) -> (Cfc, VarMap) {
    let vm = VarMap::new();
    let cfg = CfcConfig {
        input_size: input,
        hidden_size: hidden,
        backbone_units: units,
        backbone_layers: 1,
        mode,
        ts: 1.0,
    };
    let c = Cfc::new(
        &cfg,
        SeededInit::var_builder(&vm, SeededRng::new(seed), dtype, &Device::Cpu),
    )
    .unwrap();
    (c, vm)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn max_abs(a: &Tensor) -> f64 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn compare(
    mode: CfcMode,
    b: usize,
    l: usize,
    input: usize,
    hidden: usize,
    units: usize,
    seed: u64,
) {
    let (c, vm) = cell(mode, input, hidden, units, DType::F32, seed);
    let mut rng = SeededRng::new(seed + 1);
    let x = Var::from_tensor(
        &rng.normal_tensor((b, l, input), 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let h0 = Var::from_tensor(
        &rng.normal_tensor((b, hidden), 0.0, 0.5, DType::F32, &Device::Cpu)
            .unwrap(),
    )
    .unwrap();
    let w = rng
        .normal_tensor((b, l, hidden), 0.0, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let proj = c.input_projection(x.as_tensor()).unwrap();
    let fused = c.sequence_from_projection(&proj, h0.as_tensor()).unwrap();
    let composed =
        lsnn_layers::cfc::reference::sequence_from_projection(&c, &proj, h0.as_tensor()).unwrap();
    assert_eq!(fused.dims(), &[b, l, hidden]);
    assert!(
        max_diff(&fused, &composed) <= 1e-5,
        "forward differs by {}",
        max_diff(&fused, &composed)
    );
    let gf = (fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gc = (composed * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut vars: Vec<(String, Var)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.push(("x".into(), x));
    vars.push(("h0".into(), h0));
    for (name, v) in &vars {
        let a = gf
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no fused gradient for {name}"));
        let r = gc.get(v.as_tensor()).unwrap();
        let tol = 1e-4 * max_abs(r).max(1.0);
        assert!(
            max_diff(a, r) <= tol,
            "{name}: gradient differs by {} (tolerance {tol})",
            max_diff(a, r)
        );
    }
}

#[test]
fn fused_sequence_equals_the_per_step_composition() {
    compare(CfcMode::Default, 8, 64, 64, 64, 128, 1);
    compare(CfcMode::NoGate, 3, 17, 5, 7, 11, 2);
    compare(CfcMode::Default, 1, 1, 4, 3, 6, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn fused_sequence_matches_over_shapes(b in 1usize..5, l in 1usize..12, input in 1usize..9, hidden in 1usize..9, units in 1usize..13, gate in any::<bool>(), seed in 0u64..1000) {
        compare(if gate { CfcMode::Default } else { CfcMode::NoGate }, b, l, input, hidden, units, seed);
    }
}

#[test]
fn fused_sequence_gradients_match_finite_differences() {
    for mode in [CfcMode::Default, CfcMode::NoGate] {
        let (c, vm) = cell(mode, 4, 5, 6, DType::F64, 11);
        let mut rng = SeededRng::new(12);
        let proj = Var::from_tensor(
            &rng.normal_tensor((2, 6, 6), 0.0, 1.0, DType::F64, &Device::Cpu)
                .unwrap(),
        )
        .unwrap();
        let h0 = Var::from_tensor(
            &rng.normal_tensor((2, 5), 0.0, 0.5, DType::F64, &Device::Cpu)
                .unwrap(),
        )
        .unwrap();
        let w = rng
            .normal_tensor((2, 6, 5), 0.0, 1.0, DType::F64, &Device::Cpu)
            .unwrap();
        let loss = |c: &Cfc| -> f64 {
            (c.sequence_from_projection(proj.as_tensor(), h0.as_tensor())
                .unwrap()
                * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let g = (c
            .sequence_from_projection(proj.as_tensor(), h0.as_tensor())
            .unwrap()
            * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let mut vars: Vec<(String, Var)> = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.push(("proj".into(), proj.clone()));
        vars.push(("h0".into(), h0.clone()));
        for (name, v) in &vars {
            // The backbone bias enters through the input projection, which this test feeds
            // directly.
            if name == "backbone.0.bias" {
                assert!(g.get(v.as_tensor()).is_none());
                continue;
            }
            let grad = g
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let base = v
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for idx in [0, base.len() / 2, base.len() - 1] {
                let eps = 1e-6;
                let mut plus = base.clone();
                plus[idx] += eps;
                v.set(&Tensor::from_vec(plus, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let lp = loss(&c);
                let mut minus = base.clone();
                minus[idx] -= eps;
                v.set(&Tensor::from_vec(minus, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let lm = loss(&c);
                v.set(&Tensor::from_vec(base.clone(), v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let fd = (lp - lm) / (2.0 * eps);
                assert!(
                    (fd - grad[idx]).abs() <= 1e-5 * fd.abs().max(1.0),
                    "{mode:?} {name}[{idx}]: autograd {} vs finite difference {fd}",
                    grad[idx]
                );
            }
        }
    }
}
