//! The LTC cell against ncps 1.0.1 (`scripts/fixtures/gen_ltc.py`): a dense cell (fully
//! connected wiring, explicit constraint, affine mappings, 40 steps), a wired one (AutoNCP,
//! implicit softplus constraint, linear input mapping, 32 steps), a short-unfold one (3
//! unfolds, elapsed time 0.5, no mappings, 32 steps) and a long wired one (160 steps) — every step's outputs and potentials and
//! the gradient of the inputs, the initial state and every parameter, through the fused op, the
//! composed reference and ncps' step written as `Ltc::step` (the last two share the reference's
//! solver; the fused op is the independent path); in f64 within 1e-12 and in f32 within the
//! tolerances below. Also ncps' `apply_weight_constraints` on parameters pushed below zero.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::close;
use lsnn_layers::ltc::{Ltc, LtcConfig, LtcConstraint, LtcMapping, LtcState};
use lsnn_layers::wiring::Wiring;
use std::collections::HashMap;

const CASES: [&str; 4] = ["dense", "wired", "short", "long"];
/// The measured worst case is 1.9e-14 (gradients at L = 160).
const F64_TOLERANCE: f64 = 1e-12;

/// f32 tolerances, |ours − ncps| ≤ tol·max(1, |ncps|), for (outputs and states, gradients),
/// by sequence length: six unfolds per step compound the rounding of every step. Measured worst
/// cases over the three paths: L ≤ 40 states 3.6e-7, gradients 1.6e-6; L = 160 states 6.0e-7,
/// gradients 6.3e-6 (f64: 4.4e-16 and 1.9e-14).
fn f32_tolerance(len: usize) -> (f64, f64) {
    if len <= 40 {
        (2e-6, 2e-5)
    } else {
        (5e-6, 5e-5)
    }
}

struct Case {
    f: HashMap<String, Tensor>,
    cfg: LtcConfig,
    vm: VarMap,
    cell: Ltc,
    dtype: DType,
    len: usize,
}

fn matrix(t: &Tensor) -> Vec<Vec<i8>> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec2::<i64>()
        .unwrap()
        .into_iter()
        .map(|r| r.into_iter().map(|v| v as i8).collect())
        .collect()
}

fn case(name: &str, tag: &str) -> Case {
    let f = common::load(&format!("ncps/ltc_{name}_{tag}.safetensors"));
    let sizes: Vec<i64> = f["meta.sizes"].to_vec1().unwrap();
    let floats: Vec<f64> = f["meta.floats"].to_vec1().unwrap();
    let (n, i, o, unfolds) = (sizes[3], sizes[2], sizes[4], sizes[5]);
    let wiring = Wiring {
        units: n as usize,
        input_dim: i as usize,
        output_dim: o as usize,
        adjacency_matrix: matrix(&f["wiring.adjacency"]),
        sensory_adjacency_matrix: matrix(&f["wiring.sensory_adjacency"]),
        layers: Vec::new(),
    };
    let (input, output, constraint) = match name {
        "dense" => (
            LtcMapping::Affine,
            LtcMapping::Affine,
            LtcConstraint::Explicit,
        ),
        "wired" => (
            LtcMapping::Linear,
            LtcMapping::Affine,
            LtcConstraint::Implicit,
        ),
        "long" => (
            LtcMapping::Affine,
            LtcMapping::Affine,
            LtcConstraint::Explicit,
        ),
        _ => (LtcMapping::None, LtcMapping::None, LtcConstraint::Explicit),
    };
    let cfg = LtcConfig::new(wiring)
        .with_unfolds(unfolds as usize)
        .with_ts(floats[0])
        .with_epsilon(floats[1])
        .with_mappings(input, output)
        .with_constraint(constraint);
    let dtype = f["x"].dtype();
    let vm = VarMap::new();
    {
        let mut data = vm.data().lock().unwrap();
        for (k, t) in &f {
            if let Some(p) = k.strip_prefix("param.") {
                data.insert(p.to_owned(), Var::from_tensor(t).unwrap());
            }
        }
    }
    let cell = Ltc::new(&cfg, VarBuilder::from_varmap(&vm, dtype, &Device::Cpu)).unwrap();
    // Every parameter of the file is read, and the cell holds no other.
    let names: Vec<&str> = cell.params().named().iter().map(|(k, _)| *k).collect();
    let mut file: Vec<&str> = f.keys().filter_map(|k| k.strip_prefix("param.")).collect();
    file.sort();
    let mut ours = names.clone();
    ours.sort();
    assert_eq!(ours, file, "{name}: parameter names");
    let len = sizes[1] as usize;
    Case {
        f,
        cfg,
        vm,
        cell,
        dtype,
        len,
    }
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Fused,
    Composed,
    Stepped,
}

/// (outputs, states, gradients by name) of the case's loss on one path.
fn run(c: &Case, path: Path) -> (Tensor, Tensor, HashMap<String, Tensor>) {
    let x = Var::from_tensor(&c.f["x"]).unwrap();
    let h0 = Var::from_tensor(&c.f["h0"]).unwrap();
    let state = LtcState {
        v: h0.as_tensor().clone(),
    };
    let (out, states) = match path {
        Path::Fused | Path::Composed => {
            let go = || {
                let vs = c.cell.states(x.as_tensor(), Some(&state)).unwrap();
                (c.cell.output_of(&vs).unwrap(), vs)
            };
            match path {
                Path::Fused => go(),
                _ => lsnn_layers::kernel::composed(go),
            }
        }
        Path::Stepped => {
            let (mut v, mut outs, mut vs) = (state.v.clone(), Vec::new(), Vec::new());
            for t in 0..c.len {
                let xt = x.as_tensor().narrow(1, t, 1).unwrap().squeeze(1).unwrap();
                let (y, vn) = c.cell.step(&xt, &v).unwrap();
                outs.push(y);
                vs.push(vn.clone());
                v = vn;
            }
            (
                Tensor::stack(&outs, 1).unwrap(),
                Tensor::stack(&vs, 1).unwrap(),
            )
        }
    };
    let last = states.narrow(1, c.len - 1, 1).unwrap().squeeze(1).unwrap();
    let loss = ((&out * &c.f["grad_out"]).unwrap().sum_all().unwrap()
        + (&last * &c.f["grad_state"]).unwrap().sum_all().unwrap())
    .unwrap();
    let g = loss.backward().unwrap();
    let mut grads = HashMap::new();
    grads.insert("x".to_owned(), g.get(x.as_tensor()).unwrap().clone());
    grads.insert("h0".to_owned(), g.get(h0.as_tensor()).unwrap().clone());
    for (name, var) in c.vm.data().lock().unwrap().iter() {
        let gv = g
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no gradient"));
        grads.insert(name.clone(), gv.clone());
    }
    (out, states, grads)
}

fn check(name: &str, tag: &str) {
    let c = case(name, tag);
    let (tol_out, tol_grad) = if c.dtype == DType::F64 {
        (F64_TOLERANCE, F64_TOLERANCE)
    } else {
        f32_tolerance(c.len)
    };
    for path in [Path::Fused, Path::Composed, Path::Stepped] {
        let what = format!("{name} {tag} {path:?}");
        let (out, states, grads) = run(&c, path);
        close(&format!("{what} out"), &out, &c.f["out"], tol_out).unwrap();
        close(&format!("{what} state"), &states, &c.f["state"], tol_out).unwrap();
        for (k, g) in &grads {
            let want = &c.f[&format!("grad.{k}")];
            close(&format!("{what} grad.{k}"), g, want, tol_grad).unwrap();
        }
        assert_eq!(grads.len(), c.cell.params().named().len() + 2);
    }
}

#[test]
fn ltc_matches_ncps_in_f64() {
    for name in CASES {
        check(name, "f64");
    }
}

#[test]
fn ltc_matches_ncps_in_f32() {
    for name in CASES {
        check(name, "f32");
    }
}

#[test]
fn apply_weight_constraints_clamps_as_ncps() {
    for tag in ["f64", "f32"] {
        let c = case("dense", tag);
        for k in lsnn_layers::ltc::POSITIVE {
            let var = c.vm.data().lock().unwrap()[k].clone();
            var.set(&c.f[&format!("unclipped.{k}")]).unwrap();
        }
        let negative = lsnn_layers::ltc::POSITIVE.iter().any(|k| {
            common::f64s(&c.f[&format!("unclipped.{k}")])
                .iter()
                .any(|v| *v < 0.0)
        });
        assert!(negative, "the fixture pushes some parameters below zero");
        c.cell.apply_weight_constraints().unwrap();
        for k in lsnn_layers::ltc::POSITIVE {
            let var = c.vm.data().lock().unwrap()[k].clone();
            assert_eq!(
                common::bits(var.as_tensor()),
                common::bits(&c.f[&format!("clipped.{k}")]),
                "{tag} {k}"
            );
        }
        // The implicit constraint leaves the parameters alone (softplus keeps them positive).
        let implicit = Ltc::new(
            &c.cfg.clone().with_constraint(LtcConstraint::Implicit),
            VarBuilder::from_varmap(&c.vm, c.dtype, &Device::Cpu),
        )
        .unwrap();
        for k in lsnn_layers::ltc::POSITIVE {
            let var = c.vm.data().lock().unwrap()[k].clone();
            var.set(&c.f[&format!("unclipped.{k}")]).unwrap();
        }
        implicit.apply_weight_constraints().unwrap();
        let w = c.vm.data().lock().unwrap()["w"].clone();
        assert_eq!(
            common::bits(w.as_tensor()),
            common::bits(&c.f["unclipped.w"])
        );
    }
}
