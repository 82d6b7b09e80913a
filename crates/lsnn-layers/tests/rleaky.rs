//! The recurrent LIF (`rleaky`): against snnTorch 1.0.0 `RLeaky`, one-to-one and all-to-all,
//! stepped over two chunks with both states carried (fixtures), the fused op against the
//! composed reference (f64: forward bit for bit one-to-one and within 1e-12 all-to-all, where
//! the gemm blocks differ; every gradient within 1e-9·max(1, |b|)) for every form, reset,
//! surrogate and parameter source, and central differences for the smooth parameters. The layer,
//! the model's use of it and the typed errors: `rleaky_layer.rs`.

use candle_core::{DType, Device, Tensor, Var};
use common::{close, close_summed, f64s, neuron_dims, randn, Form, FORMS, RESETS, SURROGATES};
use lsnn_layers::lif::{LifParams, ResetMechanism, Surrogate};
use lsnn_layers::rleaky::{self, reference, Connection, RLeakyConfig, RLeakyState, Recurrent};
use lsnn_layers::SeededRng;
use proptest::prelude::*;

mod common;

const SNN_SURROGATES: [(Surrogate, &str); 2] = [
    (Surrogate::fast_sigmoid(25.0), "fast_sigmoid"),
    (Surrogate::atan(2.0), "atan"),
];

const RESET_NAMES: [(ResetMechanism, &str); 3] = [
    (ResetMechanism::Subtract, "subtract"),
    (ResetMechanism::Zero, "zero"),
    (ResetMechanism::None, "none"),
];

const CONNECTIONS: [(Connection, &str); 2] =
    [(Connection::OneToOne, "o2o"), (Connection::AllToAll, "a2a")];

/// The recurrent weights as variables, and the weights' fixture names.
fn rec_vars(
    conn: Connection,
    f: &std::collections::HashMap<String, Tensor>,
) -> (Vec<(Var, &'static str)>, Recurrent) {
    let v = |k: &str| Var::from_tensor(&f[k]).unwrap();
    match conn {
        Connection::OneToOne => {
            let vv = v("V");
            let rec = Recurrent::OneToOne {
                v: vv.as_tensor().clone(),
            };
            (vec![(vv, "V")], rec)
        }
        Connection::AllToAll => {
            let (w, b) = (v("weight"), v("bias"));
            let rec = Recurrent::AllToAll {
                weight: w.as_tensor().clone(),
                bias: Some(b.as_tensor().clone()),
            };
            (vec![(w, "weight"), (b, "bias")], rec)
        }
    }
}

/// snnTorch `RLeaky` (β 0.9, θ 1) over [B 4, F 16] neurons from non-zero spikes and membrane
/// over 40 steps in chunks of 15 and 25, both states carried: spikes exactly, membranes within
/// 1e-5, the gradients of the currents, both initial states and the recurrent weights within
/// 1e-4·max(1, |b|), and (with learned shared β, θ) theirs within 1e-4 relative — through the
/// fused ops and through the composed reference.
#[test]
fn chunks_with_carried_state_match_snntorch() {
    for (conn, kind) in CONNECTIONS {
        for (reset, name) in RESET_NAMES {
            let f = common::load(&format!("rleaky_{kind}_{name}.safetensors"));
            let chunk = common::scalar(&f["chunk"]) as usize;
            let t_all = f["current"].dim(0).unwrap();
            for (surrogate, sg) in SNN_SURROGATES {
                let cfg = RLeakyConfig::new(0.9, conn)
                    .with_threshold(1.0)
                    .with_reset(reset)
                    .with_surrogate(surrogate);
                for (fused, learned) in [(true, false), (true, true), (false, false), (false, true)]
                {
                    let what = format!("{kind}/{name}/{sg} fused {fused} learned {learned}");
                    let v = |k: &str| Var::from_tensor(&f[k]).unwrap();
                    let (cur, spk0, mem0) = (v("current"), v("spk0"), v("mem0"));
                    let (rec_leaves, rec) = rec_vars(conn, &f);
                    let one = |x: f64| {
                        Var::from_tensor(&Tensor::new(&[x as f32], &Device::Cpu).unwrap()).unwrap()
                    };
                    let (beta, theta) = (one(0.9), one(1.0));
                    let params =
                        LifParams::new(beta.as_tensor().clone(), theta.as_tensor().clone());
                    let p = learned.then_some(&params);
                    let run = |x: &Tensor, s: &RLeakyState| {
                        if fused {
                            rleaky::spikes_with(x, &cfg, &rec, p, Some(s)).unwrap()
                        } else {
                            reference::spikes_with(x, &cfg, &rec, p, Some(s)).unwrap()
                        }
                    };
                    let first = RLeakyState {
                        spk: spk0.as_tensor().clone(),
                        mem: mem0.as_tensor().clone(),
                    };
                    let x = cur.as_tensor();
                    let (s1, st1) = run(&x.narrow(0, 0, chunk).unwrap(), &first);
                    let (s2, st2) = run(&x.narrow(0, chunk, t_all - chunk).unwrap(), &st1);
                    let spikes = Tensor::cat(&[&s1, &s2], 0).unwrap();
                    assert_eq!(f64s(&spikes), f64s(&f["spikes"]), "{what}: spikes");
                    close(&what, &st2.mem, &f["mem_final"], 1e-5).unwrap();
                    close(&what, &st1.mem, &f["mem"].get(chunk - 1).unwrap(), 1e-5).unwrap();
                    let loss = ((&spikes * &f["grad_out"]).unwrap().sum_all().unwrap()
                        + (&st2.spk * &f["grad_spk_final"])
                            .unwrap()
                            .sum_all()
                            .unwrap()
                        + (&st2.mem * &f["grad_mem_final"])
                            .unwrap()
                            .sum_all()
                            .unwrap())
                    .unwrap();
                    let g = loss.backward().unwrap();
                    let mut leaves = vec![
                        (&cur, format!("grad_current_{sg}")),
                        (&spk0, format!("grad_spk0_{sg}")),
                        (&mem0, format!("grad_mem0_{sg}")),
                    ];
                    for (var, key) in &rec_leaves {
                        leaves.push((var, format!("grad_{key}_{sg}")));
                    }
                    if learned {
                        leaves.push((&beta, format!("grad_beta_{sg}")));
                        leaves.push((&theta, format!("grad_threshold_{sg}")));
                    }
                    for (var, key) in leaves {
                        let got = g
                            .get(var.as_tensor())
                            .unwrap_or_else(|| panic!("{what}: no {key}"));
                        close(&format!("{what} {key}"), got, &f[&key], 1e-4).unwrap();
                    }
                }
            }
        }
    }
}

/// The tensors one side of a comparison trains.
struct Leaves {
    x: Var,
    spk0: Var,
    mem0: Var,
    beta: Var,
    theta: Var,
    rec: Vec<Var>,
}

impl Leaves {
    fn new(t: &[&Tensor]) -> Self {
        let v = |t: &Tensor| Var::from_tensor(t).unwrap();
        Leaves {
            x: v(t[0]),
            spk0: v(t[1]),
            mem0: v(t[2]),
            beta: v(t[3]),
            theta: v(t[4]),
            rec: t[5..].iter().map(|t| v(t)).collect(),
        }
    }

    fn params(&self) -> LifParams {
        LifParams::new(
            self.beta.as_tensor().clone(),
            self.theta.as_tensor().clone(),
        )
    }

    fn state(&self) -> RLeakyState {
        RLeakyState {
            spk: self.spk0.as_tensor().clone(),
            mem: self.mem0.as_tensor().clone(),
        }
    }

    fn recurrent(&self) -> Recurrent {
        match self.rec.len() {
            1 => Recurrent::OneToOne {
                v: self.rec[0].as_tensor().clone(),
            },
            _ => Recurrent::AllToAll {
                weight: self.rec[0].as_tensor().clone(),
                bias: Some(self.rec[1].as_tensor().clone()),
            },
        }
    }
}

/// How many values β and θ have (0: the config's fixed values for both).
#[derive(Debug, Clone, Copy)]
struct Source {
    beta: usize,
    theta: usize,
}

const FIXED: Source = Source { beta: 0, theta: 0 };

/// One form, fused and reference: the main output and the final state (bit for bit one-to-one,
/// within 1e-12 all-to-all), and the gradients of sum(out·w) + sum(spk·w2) + sum(mem·w3) for
/// currents, both initial states, the recurrent weights and learned β, θ within 1e-9 (plus
/// 1e-15 of the largest entry all-to-all: see `close_summed`). Returns the firing rate.
#[allow(clippy::too_many_arguments)]
fn fused_vs_reference(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &RLeakyConfig,
    src: Source,
    v_len: usize,
    with_state: bool,
    seed: u64,
) -> Result<f64, String> {
    fused_vs_reference_driven(
        form, neurons, steps, cfg, src, v_len, with_state, seed, 0.35,
    )
}

/// [`fused_vs_reference`] with currents of mean `drive` (sd 0.5).
#[allow(clippy::too_many_arguments)]
fn fused_vs_reference_driven(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &RLeakyConfig,
    src: Source,
    v_len: usize,
    with_state: bool,
    seed: u64,
    drive: f64,
) -> Result<f64, String> {
    let mut rng = SeededRng::new(seed);
    let f = *neurons.last().unwrap();
    let in_dims: Vec<usize> = match form {
        Form::Spikes | Form::RateMem => [&[steps][..], neurons].concat(),
        Form::ConstSpikes | Form::ConstRate => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, drive, 0.5);
    let spk0 = rng
        .uniform_tensor(neurons, 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap()
        .gt(0.6)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let mem0 = randn(&mut rng, neurons, 0.2, 0.5);
    let mut uni = |n: usize, lo: f64, hi: f64| {
        rng.uniform_tensor(n.max(1), lo, hi, DType::F64, &Device::Cpu)
            .unwrap()
    };
    let (beta, theta) = (uni(src.beta, 0.6, 1.0), uni(src.theta, 0.5, 1.4));
    let rec: Vec<Tensor> = match cfg.connection {
        Connection::OneToOne => vec![uni(v_len, -0.6, 0.6)],
        Connection::AllToAll => {
            let s = 0.8 / (f as f64).sqrt();
            vec![
                uni(f * f, -s, s).reshape((f, f)).unwrap(),
                uni(f, -0.1, 0.1),
            ]
        }
    };
    let learned = src.beta + src.theta > 0;
    let mut all = vec![&x, &spk0, &mem0, &beta, &theta];
    all.extend(rec.iter());
    let (fl, rl) = (Leaves::new(&all), Leaves::new(&all));
    let run = |l: &Leaves, fused: bool| -> (Tensor, RLeakyState) {
        let (x, p, s, rec) = (l.x.as_tensor(), l.params(), l.state(), l.recurrent());
        let (p, s) = (learned.then_some(&p), with_state.then_some(&s));
        let cat = |o: lsnn_layers::lif::RateOutput| Tensor::cat(&[o.rate, o.mean_mem], 0).unwrap();
        match (form, fused) {
            (Form::Spikes, true) => rleaky::spikes_with(x, cfg, &rec, p, s).unwrap(),
            (Form::Spikes, false) => reference::spikes_with(x, cfg, &rec, p, s).unwrap(),
            (Form::RateMem, true) => {
                let (o, st) = rleaky::rate_with(x, cfg, &rec, p, s).unwrap();
                (cat(o), st)
            }
            (Form::RateMem, false) => {
                let (o, st) = reference::rate_with(x, cfg, &rec, p, s).unwrap();
                (cat(o), st)
            }
            (Form::ConstSpikes, true) => {
                rleaky::const_spikes_with(x, steps, cfg, &rec, p, s).unwrap()
            }
            (Form::ConstSpikes, false) => {
                reference::const_spikes_with(x, steps, cfg, &rec, p, s).unwrap()
            }
            (Form::ConstRate, true) => rleaky::const_rate_with(x, steps, cfg, &rec, p, s).unwrap(),
            (Form::ConstRate, false) => {
                reference::const_rate_with(x, steps, cfg, &rec, p, s).unwrap()
            }
        }
    };
    let (of, sf) = run(&fl, true);
    let (or, sr) = run(&rl, false);
    let fwd_tol = match cfg.connection {
        Connection::OneToOne => 0.0,
        Connection::AllToAll => 1e-12,
    };
    close(&format!("{form:?} forward"), &of, &or, fwd_tol)?;
    close(&format!("{form:?} final spikes"), &sf.spk, &sr.spk, 0.0)?;
    close(
        &format!("{form:?} final membrane"),
        &sf.mem,
        &sr.mem,
        fwd_tol,
    )?;
    let w = randn(&mut rng, of.dims(), 0.0, 1.0);
    let w2 = randn(&mut rng, neurons, 0.0, 1.0);
    let w3 = randn(&mut rng, neurons, 0.0, 1.0);
    let loss = |o: &Tensor, s: &RLeakyState| {
        ((o * &w).unwrap().sum_all().unwrap()
            + (&s.spk * &w2).unwrap().sum_all().unwrap()
            + (&s.mem * &w3).unwrap().sum_all().unwrap())
        .unwrap()
    };
    let gf = loss(&of, &sf).backward().unwrap();
    let gr = loss(&or, &sr).backward().unwrap();
    let mut leaves = vec![
        ("currents", &fl.x, &rl.x, true),
        ("spk0", &fl.spk0, &rl.spk0, with_state),
        ("mem0", &fl.mem0, &rl.mem0, with_state),
        ("beta", &fl.beta, &rl.beta, learned),
        ("threshold", &fl.theta, &rl.theta, learned),
    ];
    for (a, b) in fl.rec.iter().zip(&rl.rec) {
        leaves.push(("recurrent", a, b, true));
    }
    for (what, a, b, wanted) in leaves {
        if !wanted {
            continue;
        }
        let ga = gf
            .get(a.as_tensor())
            .ok_or(format!("no fused {what} gradient"))?;
        // The composed path gives no gradient where a leaf only reaches detached terms (θ
        // through the zero reset with every spike term zero): that is a zero gradient.
        let zero = ga.zeros_like().unwrap();
        let gb = gr.get(b.as_tensor()).unwrap_or(&zero);
        // All-to-all, the gradients are sums through a matmul in another order on each path;
        // 1e-15 of the largest entry is a few f64 roundings of it (the recorded case differed
        // by 1e-18 of it).
        let sum_tol = match cfg.connection {
            Connection::OneToOne => 0.0,
            Connection::AllToAll => 1e-15,
        };
        close_summed(&format!("{form:?} d{what}"), ga, gb, 1e-9, sum_tol)?;
    }
    let spikes = match form {
        Form::RateMem => of.narrow(0, 0, neurons[0]).unwrap(),
        _ => of,
    };
    Ok(spikes.mean_all().unwrap().to_scalar::<f64>().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn fused_equals_reference(
        neurons in neuron_dims(),
        steps in 1usize..=10,
        reset in 0usize..3,
        surrogate in 0usize..SURROGATES.len(),
        source in 0usize..3,
        all_to_all in any::<bool>(),
        shared_v in any::<bool>(),
        with_state in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let conn = if all_to_all { Connection::AllToAll } else { Connection::OneToOne };
        let cfg = RLeakyConfig::new(0.9, conn)
            .with_reset(RESETS[reset])
            .with_surrogate(SURROGATES[surrogate]);
        let f = *neurons.last().unwrap();
        let src = match source {
            0 => FIXED,
            1 => Source { beta: 1, theta: 1 },
            _ => Source { beta: f, theta: 1 },
        };
        let v_len = if shared_v { 1 } else { f };
        for (k, form) in FORMS.iter().enumerate() {
            let r = fused_vs_reference(*form, &neurons, steps, &cfg, src, v_len, with_state, seed.wrapping_add(k as u64));
            prop_assert!(r.is_ok(), "{:?} {:?} T={} {:?} {:?}: {}", form, neurons, steps, cfg, src, r.unwrap_err());
        }
    }
}

/// Every connection, form, reset and surrogate on a fixed grid with spikes seen to fire, then
/// enough neurons for several blocks on the threaded path with per-feature β and θ.
#[test]
fn fused_equals_reference_every_mode() {
    let per_feature = Source {
        beta: 17,
        theta: 17,
    };
    for (conn, _) in CONNECTIONS {
        for reset in RESETS {
            for surrogate in SURROGATES {
                let cfg = RLeakyConfig::new(0.85, conn)
                    .with_reset(reset)
                    .with_surrogate(surrogate);
                for form in FORMS {
                    for (src, with_state) in [(FIXED, true), (per_feature, false)] {
                        let rate =
                            fused_vs_reference(form, &[3, 17], 7, &cfg, src, 17, with_state, 5)
                                .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
                        assert!(rate > 0.05 && rate < 0.95, "{form:?} {cfg:?}: rate {rate}");
                    }
                }
            }
        }
        let cfg = RLeakyConfig::new(0.9, conn)
            .with_reset(ResetMechanism::Zero)
            .with_surrogate(Surrogate::atan(2.0));
        let wide = Source {
            beta: 130,
            theta: 130,
        };
        for form in FORMS {
            fused_vs_reference(form, &[2, 70, 130], 6, &cfg, wide, 130, true, 9)
                .unwrap_or_else(|e| panic!("{conn:?} {form:?} large: {e}"));
            fused_vs_reference(form, &[70, 130], 6, &cfg, FIXED, 1, false, 10)
                .unwrap_or_else(|e| panic!("{conn:?} {form:?} large, fixed: {e}"));
        }
    }
}

/// All-to-all spike trains on both sides of the sparse-product threshold (at most 15% of a
/// block's previous spikes nonzero), from a given state: weakly driven (the sparse products after
/// the first steps) and strongly driven (the dense gemm), each equal to the reference in forward
/// and every gradient.
#[test]
fn sparse_and_dense_spike_trains_equal_the_reference() {
    let cfg = RLeakyConfig::new(0.9, Connection::AllToAll);
    for (drive, sparse) in [(-0.2, true), (0.9, false)] {
        let rate =
            fused_vs_reference_driven(Form::Spikes, &[40, 64], 12, &cfg, FIXED, 1, true, 3, drive)
                .unwrap_or_else(|e| panic!("drive {drive}: {e}"));
        let want = if sparse {
            rate > 0.005 && rate < 0.08
        } else {
            rate > 0.4
        };
        assert!(want, "drive {drive}: firing rate {rate}");
    }
}

/// All-to-all layers spanning several blocks of rows on the threaded path: two uneven blocks
/// over 40 steps (dL/dW summed per 16 dense steps and at the end), weak and strong input, with
/// a given state and per-feature β, θ; and ten blocks of a wide layer (more than one group of
/// per-block dL/dW partials).
#[test]
fn all_to_all_across_blocks_equals_the_reference() {
    let cfg = RLeakyConfig::new(0.9, Connection::AllToAll).with_reset(ResetMechanism::Zero);
    let per_feature = Source {
        beta: 64,
        theta: 64,
    };
    for drive in [-0.2, 0.9] {
        for form in [Form::Spikes, Form::ConstRate] {
            fused_vs_reference_driven(form, &[600, 64], 40, &cfg, per_feature, 1, true, 12, drive)
                .unwrap_or_else(|e| panic!("[600, 64] drive {drive} {form:?}: {e}"));
        }
    }
    fused_vs_reference_driven(Form::Spikes, &[600, 512], 3, &cfg, FIXED, 1, true, 13, 0.9)
        .unwrap_or_else(|e| panic!("[600, 512]: {e}"));
}

/// Central differences (f64) of a loss on the final membrane — where the resets and spikes are
/// piecewise constant, so the exact derivative exists — for β per feature, θ shared and the
/// recurrent weights, under each reset and connection. The spikes feed the membrane back here,
/// so the BPTT's surrogate path is not part of the exact derivative: a fast sigmoid of slope 10⁶
/// makes it negligible (below 1e-8 of a unit gradient at the margins these inputs keep) and the
/// smooth path must then equal the differences.
#[test]
fn smooth_parameter_gradients_match_central_differences() {
    const EPS: f64 = 1e-6;
    for (conn, kind) in CONNECTIONS {
        for reset in RESETS {
            let cfg = RLeakyConfig::new(0.9, conn)
                .with_reset(reset)
                .with_surrogate(Surrogate::fast_sigmoid(1e6));
            let mut rng = SeededRng::new(43);
            let x = randn(&mut rng, &[9, 3, 5], 0.45, 0.6);
            let w = randn(&mut rng, &[3, 5], 0.0, 1.0);
            let beta = rng
                .uniform_tensor(5, 0.6, 0.95, DType::F64, &Device::Cpu)
                .unwrap();
            let theta = Tensor::new(&[0.9f64], &Device::Cpu).unwrap();
            let rec0: Vec<Tensor> = match conn {
                Connection::OneToOne => vec![randn(&mut rng, &[5], 0.0, 0.4)],
                Connection::AllToAll => vec![
                    randn(&mut rng, &[5, 5], 0.0, 0.3),
                    randn(&mut rng, &[5], 0.0, 0.1),
                ],
            };
            let loss = |p: &[Tensor]| -> Tensor {
                let lp = LifParams::new(p[0].clone(), p[1].clone());
                let rec = match conn {
                    Connection::OneToOne => Recurrent::OneToOne { v: p[2].clone() },
                    Connection::AllToAll => Recurrent::AllToAll {
                        weight: p[2].clone(),
                        bias: Some(p[3].clone()),
                    },
                };
                let (spk, st) = rleaky::spikes_with(&x, &cfg, &rec, Some(&lp), None).unwrap();
                assert!(
                    f64s(&spk).iter().any(|&s| s > 0.0),
                    "{kind} {reset:?}: spikes fire"
                );
                (st.mem * &w).unwrap().sum_all().unwrap()
            };
            let mut base = vec![beta.clone(), theta.clone()];
            base.extend(rec0.iter().cloned());
            let vars: Vec<Var> = base.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
            let g = loss(
                &vars
                    .iter()
                    .map(|v| v.as_tensor().clone())
                    .collect::<Vec<_>>(),
            )
            .backward()
            .unwrap();
            let names = ["beta", "theta", "rec weight", "rec bias"];
            for (which, v) in vars.iter().enumerate() {
                let bptt = g.get(v.as_tensor()).map_or(vec![0.0; v.elem_count()], f64s);
                let flat = f64s(&base[which]);
                let mut largest = 0.0f64;
                for j in 0..flat.len() {
                    let value = |d: f64| {
                        let mut p = base.clone();
                        let mut vals = flat.clone();
                        vals[j] += d;
                        p[which] = Tensor::new(vals, &Device::Cpu)
                            .unwrap()
                            .reshape(base[which].dims())
                            .unwrap();
                        loss(&p).to_scalar::<f64>().unwrap()
                    };
                    let fd = (value(EPS) - value(-EPS)) / (2.0 * EPS);
                    assert!(
                        (fd - bptt[j]).abs() < 1e-6 * fd.abs().max(1.0),
                        "{kind} {reset:?} d{}[{j}]: bptt {} vs fd {fd}",
                        names[which],
                        bptt[j]
                    );
                    largest = largest.max(fd.abs());
                }
                // One-to-one under the reset to zero, V·S_{t−1} only ever reaches a membrane
                // that the same spike (r_t = S_{t−1}) clears: V has no effect from a zero state.
                let v_inert =
                    conn == Connection::OneToOne && reset == ResetMechanism::Zero && which == 2;
                if (names[which] != "theta" || reset == ResetMechanism::Subtract) && !v_inert {
                    assert!(
                        largest > 1e-3,
                        "{kind} {reset:?} d{} is not trivially zero",
                        names[which]
                    );
                }
            }
        }
    }
}
