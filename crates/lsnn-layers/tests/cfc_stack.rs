//! The fused CfC stack op against its composed reference for everything the completed cell
//! adds — modes (pure too), backbones of 0–3 layers, wired cells over AutoNCP wirings of any
//! sparsity, per-step time spans — forward and every gradient (proptest), and against central
//! finite differences in f64.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::cfc::{Cfc, CfcConfig, CfcMode, CfcState, WiredCfc, WiredCfcConfig};
use lsnn_layers::wiring::AutoNcpConfig;
use lsnn_layers::{SeededInit, SeededRng};
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Dense {
        hidden: usize,
        units: usize,
        depth: usize,
    },
    Wired {
        units: usize,
        outputs: usize,
        sparsity: f64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    kind: Kind,
    mode: CfcMode,
    input: usize,
    b: usize,
    l: usize,
    /// None: per-step spans; Some(ts): that constant.
    constant: Option<f64>,
    seed: u64,
}

enum Cell {
    Dense(Cfc),
    Wired(WiredCfc),
}

impl Cell {
    fn state(&self) -> usize {
        match self {
            Cell::Dense(c) => c.config().hidden_size,
            Cell::Wired(w) => w.config().state_size(),
        }
    }
}

fn build(s: &Spec, dtype: DType) -> (Cell, VarMap) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(s.seed), dtype, &Device::Cpu);
    let ts = s.constant.unwrap_or(1.0);
    let cell = match s.kind {
        Kind::Dense {
            hidden,
            units,
            depth,
        } => Cell::Dense(
            Cfc::new(
                &CfcConfig::new(s.input, hidden)
                    .with_backbone(units, depth)
                    .with_mode(s.mode)
                    .with_ts(ts),
                vb,
            )
            .unwrap(),
        ),
        Kind::Wired {
            units,
            outputs,
            sparsity,
        } => {
            let w = AutoNcpConfig::new(units, outputs)
                .with_sparsity(sparsity)
                .with_seed(s.seed as u32)
                .build(s.input)
                .unwrap();
            Cell::Wired(
                WiredCfc::new(&WiredCfcConfig::new(w).with_mode(s.mode).with_ts(ts), vb).unwrap(),
            )
        }
    };
    (cell, vm)
}

struct Inputs {
    x: Var,
    h0: Var,
    ts: Option<Var>,
    w: Tensor,
}

fn inputs(s: &Spec, cell: &Cell, dtype: DType) -> Inputs {
    let mut rng = SeededRng::new(s.seed + 1);
    let dev = Device::Cpu;
    let x = Var::from_tensor(
        &rng.normal_tensor((s.b, s.l, s.input), 0.0, 1.0, dtype, &dev)
            .unwrap(),
    )
    .unwrap();
    let h0 = Var::from_tensor(
        &rng.normal_tensor((s.b, cell.state()), 0.0, 0.5, dtype, &dev)
            .unwrap(),
    )
    .unwrap();
    let ts = match s.constant {
        None => Some(
            Var::from_tensor(
                &rng.uniform_tensor((s.b, s.l), 0.1, 2.0, dtype, &dev)
                    .unwrap(),
            )
            .unwrap(),
        ),
        Some(_) => None,
    };
    let out = match cell {
        Cell::Dense(c) => c.config().hidden_size,
        Cell::Wired(w) => w.config().output_size(),
    };
    let w = rng
        .normal_tensor((s.b, s.l, out), 0.0, 1.0, dtype, &dev)
        .unwrap();
    Inputs { x, h0, ts, w }
}

fn outputs(cell: &Cell, inp: &Inputs) -> Tensor {
    let st = CfcState {
        h: inp.h0.as_tensor().clone(),
    };
    let x = inp.x.as_tensor();
    match (cell, &inp.ts) {
        (Cell::Dense(c), Some(t)) => c.forward_timespans(x, t.as_tensor(), Some(&st)).unwrap().0,
        (Cell::Dense(c), None) => c.forward_state(x, Some(&st)).unwrap().0,
        (Cell::Wired(c), Some(t)) => c.forward_timespans(x, t.as_tensor(), Some(&st)).unwrap().0,
        (Cell::Wired(c), None) => c.forward_state(x, Some(&st)).unwrap().0,
    }
}

fn loss(cell: &Cell, inp: &Inputs) -> Tensor {
    (outputs(cell, inp) * &inp.w).unwrap().sum_all().unwrap()
}

fn all_vars(vm: &VarMap, inp: &Inputs) -> Vec<(String, Var)> {
    let mut v: Vec<(String, Var)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.push(("x".into(), inp.x.clone()));
    v.push(("h0".into(), inp.h0.clone()));
    if let Some(t) = &inp.ts {
        v.push(("ts".into(), t.clone()));
    }
    v
}

fn max_rel(a: &Tensor, b: &Tensor) -> f64 {
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

fn fused_equals_composed(s: Spec) {
    let (cell, vm) = build(&s, DType::F32);
    let inp = inputs(&s, &cell, DType::F32);
    let fused = outputs(&cell, &inp);
    let composed = lsnn_layers::kernel::composed(|| outputs(&cell, &inp));
    let d = max_rel(&fused, &composed);
    assert!(d <= 1e-5, "{s:?}: forward differs by {d}");
    let gf = loss(&cell, &inp).backward().unwrap();
    let gc = lsnn_layers::kernel::composed(|| loss(&cell, &inp))
        .backward()
        .unwrap();
    for (name, v) in all_vars(&vm, &inp) {
        let a = gf
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{s:?}: no fused gradient for {name}"));
        let r = gc
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{s:?}: no composed gradient for {name}"));
        let d = max_rel(a, r);
        assert!(d <= 1e-4, "{s:?}: gradient of {name} differs by {d}");
    }
}

fn mode_of(i: u8) -> CfcMode {
    [CfcMode::Default, CfcMode::NoGate, CfcMode::Pure][i as usize % 3]
}

#[test]
fn fused_equals_composed_at_lm_like_sizes() {
    for (mode, depth) in [
        (CfcMode::Default, 2),
        (CfcMode::Pure, 1),
        (CfcMode::NoGate, 0),
    ] {
        fused_equals_composed(Spec {
            kind: Kind::Dense {
                hidden: 64,
                units: 128,
                depth,
            },
            mode,
            input: 64,
            b: 4,
            l: 64,
            constant: None,
            seed: 5,
        });
    }
    fused_equals_composed(Spec {
        kind: Kind::Wired {
            units: 64,
            outputs: 19,
            sparsity: 0.5,
        },
        mode: CfcMode::Default,
        input: 64,
        b: 4,
        l: 64,
        constant: Some(1.0),
        seed: 6,
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn fused_equals_composed_over_sizes_modes_sparsities_spans(
        b in 1usize..4, l in 1usize..10, input in 1usize..7, mode in 0u8..3,
        wired in any::<bool>(), hidden in 1usize..8, units in 1usize..10, depth in 0usize..4,
        wunits in 6usize..20, sparsity in 0.1f64..0.9, per_step in any::<bool>(),
        ts in 0.1f64..2.0, seed in 0u64..1000,
    ) {
        let kind = if wired {
            Kind::Wired { units: wunits, outputs: 1 + wunits / 4, sparsity }
        } else {
            Kind::Dense { hidden, units, depth }
        };
        fused_equals_composed(Spec {
            kind, mode: mode_of(mode), input, b, l,
            constant: if per_step { None } else { Some(ts) }, seed,
        });
    }
}

/// Central differences of the loss for three entries of every variable against the fused
/// path's gradient, in f64.
fn finite_differences(s: Spec) {
    let (cell, vm) = build(&s, DType::F64);
    let inp = inputs(&s, &cell, DType::F64);
    let g = loss(&cell, &inp).backward().unwrap();
    let value = |c: &Cell| loss(c, &inp).to_scalar::<f64>().unwrap();
    for (name, v) in all_vars(&vm, &inp) {
        let grad = g
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("{s:?}: no gradient for {name}"))
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
        let set = |vals: Vec<f64>| {
            v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
                .unwrap()
        };
        for idx in [0, base.len() / 2, base.len() - 1] {
            let eps = 1e-6;
            let mut p = base.clone();
            p[idx] += eps;
            set(p);
            let lp = value(&cell);
            let mut m = base.clone();
            m[idx] -= eps;
            set(m);
            let lm = value(&cell);
            set(base.clone());
            let fd = (lp - lm) / (2.0 * eps);
            // A masked-out synapse has no gradient, and its finite difference is zero too.
            assert!(
                (fd - grad[idx]).abs() <= 1e-5 * fd.abs().max(1.0),
                "{s:?} {name}[{idx}]: autograd {} vs finite difference {fd}",
                grad[idx]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences() {
    let base = Spec {
        kind: Kind::Dense {
            hidden: 5,
            units: 6,
            depth: 2,
        },
        mode: CfcMode::Pure,
        input: 4,
        b: 2,
        l: 7,
        constant: None,
        seed: 21,
    };
    finite_differences(base);
    finite_differences(Spec {
        kind: Kind::Dense {
            hidden: 4,
            units: 5,
            depth: 3,
        },
        mode: CfcMode::Default,
        ..base
    });
    finite_differences(Spec {
        kind: Kind::Dense {
            hidden: 4,
            units: 0,
            depth: 0,
        },
        mode: CfcMode::NoGate,
        constant: Some(0.6),
        ..base
    });
    finite_differences(Spec {
        kind: Kind::Wired {
            units: 12,
            outputs: 3,
            sparsity: 0.5,
        },
        mode: CfcMode::Default,
        ..base
    });
    finite_differences(Spec {
        kind: Kind::Wired {
            units: 12,
            outputs: 3,
            sparsity: 0.3,
        },
        mode: CfcMode::Pure,
        constant: Some(1.3),
        ..base
    });
}
