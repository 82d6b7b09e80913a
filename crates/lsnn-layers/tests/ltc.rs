//! The LTC cell's fused op against its composed reference (proptest over wirings, constraints,
//! mappings, unfolds, time spans and sizes; one and several threads), central differences for
//! every parameter, and the cell's typed errors.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use common::{bits, close, randn};
use lsnn_layers::ltc::{Ltc, LtcConfig, LtcConstraint, LtcMapping, LtcState};
use lsnn_layers::wiring::{AutoNcpConfig, FullyConnectedConfig};
use lsnn_layers::{LayerError, SeededInit, SeededRng};
use proptest::prelude::*;

const MAPPINGS: [LtcMapping; 3] = [LtcMapping::Affine, LtcMapping::Linear, LtcMapping::None];

/// A cell in f64 with parameters drawn by ncps' ranges and then moved, so that no symmetry of
/// the starting values hides a wrong index.
fn cell(cfg: &LtcConfig, seed: u64) -> (VarMap, Ltc) {
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(seed), DType::F64, &Device::Cpu);
    let c = Ltc::new(cfg, vb).unwrap();
    let mut rng = SeededRng::new(seed ^ 0x5eed);
    for var in vm.all_vars() {
        let moved = (var.as_tensor() + randn(&mut rng, var.dims(), 0.0, 0.2)).unwrap();
        var.set(&moved).unwrap();
    }
    (vm, c)
}

/// Outputs, final state and the gradients of x, v0 and every variable for a random loss.
fn run(c: &Ltc, vm: &VarMap, x: &Var, v0: &Var, r: &Tensor) -> Vec<(String, Tensor)> {
    let (out, state) = c
        .forward_state(
            x.as_tensor(),
            Some(&LtcState {
                v: v0.as_tensor().clone(),
            }),
        )
        .unwrap();
    let loss = ((&out * r).unwrap().sum_all().unwrap() + state.v.sqr().unwrap().sum_all().unwrap())
        .unwrap();
    let g = loss.backward().unwrap();
    let mut all = vec![
        ("out".to_owned(), out.clone()),
        ("state".to_owned(), state.v.clone()),
        ("grad x".to_owned(), g.get(x.as_tensor()).unwrap().clone()),
        ("grad v0".to_owned(), g.get(v0.as_tensor()).unwrap().clone()),
    ];
    let mut vars: Vec<_> = vm.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        all.push((
            format!("grad {name}"),
            g.get(var.as_tensor()).unwrap().clone(),
        ));
    }
    all
}

struct Setup {
    cfg: LtcConfig,
    b: usize,
    l: usize,
    seed: u64,
}

fn fused_vs_composed(s: &Setup) -> Result<(), String> {
    let (vm, c) = cell(&s.cfg, s.seed);
    let mut rng = SeededRng::new(s.seed.wrapping_add(1));
    let (i, n, o) = (s.cfg.input_size(), s.cfg.state_size(), s.cfg.output_size());
    let x = Var::from_tensor(&randn(&mut rng, &[s.b, s.l, i], 0.0, 1.5)).unwrap();
    let v0 = Var::from_tensor(&randn(&mut rng, &[s.b, n], 0.0, 0.3)).unwrap();
    let r = randn(&mut rng, &[s.b, s.l, o], 0.0, 1.0);
    let fused = run(&c, &vm, &x, &v0, &r);
    let composed = lsnn_layers::kernel::composed(|| run(&c, &vm, &x, &v0, &r));
    let one_thread = lsnn_layers::kernel::sequential(|| run(&c, &vm, &x, &v0, &r));
    for ((what, a), (_, b)) in fused.iter().zip(&composed) {
        close(what, a, b, 1e-9)?;
    }
    for ((what, a), (_, b)) in fused.iter().zip(&one_thread) {
        if bits(a) != bits(b) {
            return Err(format!("{what}: one thread and several differ"));
        }
    }
    Ok(())
}

fn config(
    wired: bool,
    units: usize,
    inputs: usize,
    constraint: LtcConstraint,
    maps: (usize, usize),
) -> LtcConfig {
    let wiring = if wired {
        AutoNcpConfig::new(units, (units / 3).max(1))
            .build(inputs)
            .unwrap()
    } else {
        FullyConnectedConfig::new(units).build(inputs).unwrap()
    };
    LtcConfig::new(wiring)
        .with_constraint(constraint)
        .with_mappings(MAPPINGS[maps.0], MAPPINGS[maps.1])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn fused_equals_composed(
        wired in any::<bool>(),
        units in 3usize..=14,
        inputs in 1usize..=6,
        implicit in any::<bool>(),
        maps in (0usize..3, 0usize..3),
        unfolds in 1usize..=6,
        ts in 0.2f64..2.0,
        b in 1usize..=3,
        l in 1usize..=8,
        seed in any::<u64>(),
    ) {
        // An AutoNCP needs enough neurons for its layers.
        let units = if wired { units.max(8) } else { units };
        let constraint = if implicit { LtcConstraint::Implicit } else { LtcConstraint::Explicit };
        let cfg = config(wired, units, inputs, constraint, maps).with_unfolds(unfolds).with_ts(ts);
        let r = fused_vs_composed(&Setup { cfg: cfg.clone(), b, l, seed });
        prop_assert!(r.is_ok(), "{:?} B={} L={}: {}", cfg, b, l, r.unwrap_err());
    }
}

#[test]
fn fused_equals_composed_on_several_threads() {
    // Enough work per call that the rows split across threads: one row per forward piece, and
    // (the third) several rows per piece both ways.
    let cfg = config(false, 40, 10, LtcConstraint::Explicit, (0, 0));
    fused_vs_composed(&Setup {
        cfg,
        b: 9,
        l: 12,
        seed: 11,
    })
    .unwrap();
    let cfg = config(true, 48, 16, LtcConstraint::Implicit, (1, 0));
    fused_vs_composed(&Setup {
        cfg,
        b: 5,
        l: 20,
        seed: 12,
    })
    .unwrap();
    let cfg = config(false, 12, 4, LtcConstraint::Explicit, (0, 1));
    fused_vs_composed(&Setup {
        cfg,
        b: 17,
        l: 30,
        seed: 13,
    })
    .unwrap();
}

/// The loss of the central-difference check, on the fused path.
fn fd_loss(c: &Ltc, x: &Tensor, v0: &Tensor, r: &Tensor) -> f64 {
    let (out, state) = c
        .forward_state(x, Some(&LtcState { v: v0.clone() }))
        .unwrap();
    let l = ((&out * r).unwrap().sum_all().unwrap() + state.v.sqr().unwrap().sum_all().unwrap())
        .unwrap();
    l.to_scalar::<f64>().unwrap()
}

#[test]
fn gradients_match_central_differences() {
    for (wired, constraint) in [
        (false, LtcConstraint::Explicit),
        (true, LtcConstraint::Implicit),
    ] {
        let units = if wired { 8 } else { 4 };
        let cfg = config(wired, units, 3, constraint, (0, 0)).with_unfolds(3);
        let (vm, c) = cell(&cfg, 7);
        let mut rng = SeededRng::new(8);
        let x = randn(&mut rng, &[2, 5, 3], 0.0, 1.5);
        let v0 = randn(&mut rng, &[2, units], 0.0, 0.3);
        let r = randn(&mut rng, &[2, 5, cfg.output_size()], 0.0, 1.0);
        let (out, state) = c
            .forward_state(&x, Some(&LtcState { v: v0.clone() }))
            .unwrap();
        let loss = ((&out * &r).unwrap().sum_all().unwrap()
            + state.v.sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let g = loss.backward().unwrap();
        let h = 1e-6;
        let vars: Vec<_> = vm.data().lock().unwrap().clone().into_iter().collect();
        let (mut checked, mut absent) = (0, 0);
        for (name, var) in vars {
            let base = common::f64s(var.as_tensor());
            let grad = common::f64s(g.get(var.as_tensor()).unwrap());
            let mask = if name.starts_with("sensory") {
                common::f64s(&c.params().sensory_mask)
            } else {
                common::f64s(&c.params().mask)
            };
            for k in 0..base.len() {
                let at = |d: f64| {
                    let mut v = base.clone();
                    v[k] += d;
                    var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap())
                        .unwrap();
                    fd_loss(&c, &x, &v0, &r)
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                let matrix = var.dims().len() == 2;
                if matrix && mask[k] == 0.0 {
                    // An absent synapse: no gradient, for any of its four parameters.
                    assert_eq!(grad[k], 0.0, "{name}[{k}]");
                    absent += 1;
                }
                assert!(
                    (fd - grad[k]).abs() <= 1e-6 * grad[k].abs().max(1.0),
                    "{wired} {name}[{k}]: central difference {fd} vs BPTT {}",
                    grad[k]
                );
                checked += 1;
            }
            var.set(&Tensor::from_vec(base, var.dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
        assert!(checked > 50, "{checked} entries checked");
        assert_eq!(
            absent > 0,
            wired,
            "absent synapses checked only where the wiring has them"
        );
    }
}

#[test]
fn bad_input_and_config_are_typed_errors() {
    let cfg = config(false, 5, 3, LtcConstraint::Explicit, (0, 0));
    let (_, c) = cell(&cfg, 1);
    let dev = Device::Cpu;
    let shape_err = |r: lsnn_layers::Result<_>, what: &str| match r {
        Err(LayerError::Shape { what: w, .. }) => assert!(w.contains(what), "{w}"),
        other => panic!("expected a shape error for {what}, got {other:?}"),
    };
    shape_err(
        c.states(&Tensor::zeros((2, 4, 4), DType::F64, &dev).unwrap(), None),
        "ltc input",
    );
    shape_err(
        c.states(&Tensor::zeros((2, 0, 3), DType::F64, &dev).unwrap(), None),
        "ltc input",
    );
    let bad_state = LtcState {
        v: Tensor::zeros((2, 4), DType::F64, &dev).unwrap(),
    };
    shape_err(
        c.states(
            &Tensor::zeros((2, 3, 3), DType::F64, &dev).unwrap(),
            Some(&bad_state),
        ),
        "ltc state",
    );
    let nan = Tensor::from_vec(vec![f64::NAN; 9], (1, 3, 3), &dev).unwrap();
    assert!(c.states(&nan, None).is_err());
    for (bad, field) in [
        (cfg.clone().with_unfolds(0), "ode_unfolds"),
        (cfg.clone().with_ts(0.0), "ts"),
        (cfg.clone().with_ts(f64::INFINITY), "ts"),
        (cfg.clone().with_epsilon(-1.0), "epsilon"),
    ] {
        match bad.validate() {
            Err(LayerError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn checkpoint_values_are_read_not_reinitialised() {
    // erev starts at the wiring's polarities only when the parameter is new.
    let cfg = config(true, 8, 3, LtcConstraint::Explicit, (0, 0));
    let (vm, c) = cell(&cfg, 3);
    let moved = common::f64s(&c.params().erev);
    let polarity: Vec<f64> = cfg
        .wiring
        .adjacency_matrix
        .iter()
        .flatten()
        .map(|&v| f64::from(v))
        .collect();
    assert_ne!(moved, polarity);
    let again = Ltc::new(
        &cfg,
        candle_nn::VarBuilder::from_varmap(&vm, DType::F64, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(common::f64s(&again.params().erev), moved);
    let fresh = Ltc::new(
        &cfg,
        SeededInit::var_builder(&VarMap::new(), SeededRng::new(3), DType::F64, &Device::Cpu),
    )
    .unwrap();
    assert_eq!(common::f64s(&fresh.params().erev), polarity);
}
