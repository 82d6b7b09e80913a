//! The alpha neuron: against snnTorch 1.0.0 `Alpha` stepped over two chunks with all three states
//! carried (fixtures), the fused op against the composed reference (bit for bit in forward, every
//! gradient within 1e-9·max(1, |b|), f64) for every form, reset, surrogate and parameter source,
//! and central differences for the smooth parameters.

use candle_core::{DType, Device, Tensor, Var};
use common::{
    bits, close, f64s, neuron_dims, randn, Form, Leaves, Source, FIXED, FORMS, RESETS, SURROGATES,
};
use lsnn_layers::alpha::{self, reference, AlphaConfig, AlphaParams, AlphaState};
use lsnn_layers::lif::{ResetMechanism, Surrogate};
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

/// The three state tensors of `s`.
fn parts(s: &AlphaState) -> [&Tensor; 3] {
    [&s.syn_exc, &s.syn_inh, &s.mem]
}

/// snnTorch `Alpha` (α 0.9, β 0.8) from a non-zero state over 40 steps in chunks of 15 and 25,
/// all three states carried: spikes exactly, states within 1e-5, the gradients of the currents
/// and of the initial states within 1e-4·max(1, |b|), and (learned shared α, β, θ) theirs within
/// 1e-4 relative — through the fused ops and through the composed reference.
#[test]
fn chunks_with_carried_state_match_snntorch() {
    for (reset, name) in RESET_NAMES {
        let f = common::load(&format!("alpha_{name}.safetensors"));
        let chunk = common::scalar(&f["chunk"]) as usize;
        let t_all = f["current"].dim(0).unwrap();
        for (surrogate, sg) in SNN_SURROGATES {
            let cfg = AlphaConfig::new(0.9, 0.8)
                .with_threshold(1.0)
                .with_reset(reset)
                .with_surrogate(surrogate);
            for (fused, learned) in [(true, false), (true, true), (false, false), (false, true)] {
                let what = format!("{name}/{sg} fused {fused} learned {learned}");
                let v = |k: &str| Var::from_tensor(&f[k]).unwrap();
                let (cur, e0, i0, u0) = (v("current"), v("syn_exc0"), v("syn_inh0"), v("mem0"));
                let one = |x: f64| {
                    Var::from_tensor(&Tensor::new(&[x as f32], &Device::Cpu).unwrap()).unwrap()
                };
                let (a, b, theta) = (one(0.9), one(0.8), one(1.0));
                let params = AlphaParams::new(
                    a.as_tensor().clone(),
                    b.as_tensor().clone(),
                    theta.as_tensor().clone(),
                );
                let p = learned.then_some(&params);
                let run = |x: &Tensor, s: &AlphaState| {
                    if fused {
                        alpha::spikes_with(x, &cfg, p, Some(s)).unwrap()
                    } else {
                        reference::spikes_with(x, &cfg, p, Some(s)).unwrap()
                    }
                };
                let first = AlphaState {
                    syn_exc: e0.as_tensor().clone(),
                    syn_inh: i0.as_tensor().clone(),
                    mem: u0.as_tensor().clone(),
                };
                let x = cur.as_tensor();
                let (s1, st1) = run(&x.narrow(0, 0, chunk).unwrap(), &first);
                let (s2, st2) = run(&x.narrow(0, chunk, t_all - chunk).unwrap(), &st1);
                let spikes = Tensor::cat(&[&s1, &s2], 0).unwrap();
                assert_eq!(f64s(&spikes), f64s(&f["spikes"]), "{what}: spikes");
                let keys = ["syn_exc", "syn_inh", "mem"];
                for (k, (got, mid)) in keys.iter().zip(parts(&st2).into_iter().zip(parts(&st1))) {
                    close(&what, got, &f[&format!("{k}_final")], 1e-5).unwrap();
                    let want_mid = f[*k].get(chunk - 1).unwrap();
                    close(&format!("{what} {k} at the cut"), mid, &want_mid, 1e-5).unwrap();
                }
                let mut loss = (&spikes * &f["grad_out"]).unwrap().sum_all().unwrap();
                for (k, got) in keys.iter().zip(parts(&st2)) {
                    let g = &f[&format!("grad_{k}_final")];
                    loss = (loss + (got * g).unwrap().sum_all().unwrap()).unwrap();
                }
                let g = loss.backward().unwrap();
                let mut leaves = vec![
                    (&cur, format!("grad_current_{sg}")),
                    (&e0, format!("grad_syn_exc0_{sg}")),
                    (&i0, format!("grad_syn_inh0_{sg}")),
                ];
                if learned {
                    leaves.push((&a, format!("grad_alpha_{sg}")));
                    leaves.push((&b, format!("grad_beta_{sg}")));
                    leaves.push((&theta, format!("grad_threshold_{sg}")));
                }
                for (var, key) in leaves {
                    let got = g
                        .get(var.as_tensor())
                        .unwrap_or_else(|| panic!("{what}: no {key}"));
                    close(&format!("{what} {key}"), got, &f[&key], 1e-4).unwrap();
                }
                // The initial membrane only reaches the detached reset: snnTorch's gradient is
                // zero, and so is lsnn's (the fused op's explicit zero, or none at all).
                assert!(f64s(&f[&format!("grad_mem0_{sg}")])
                    .iter()
                    .all(|&v| v == 0.0));
                if let Some(gm) = g.get(u0.as_tensor()) {
                    assert!(f64s(gm).iter().all(|&v| v == 0.0), "{what}: mem0 gradient");
                }
            }
        }
    }
}

/// The initial state of one side of a comparison.
fn state_of(l: &Leaves) -> AlphaState {
    let [syn_exc, syn_inh, mem] = <[Tensor; 3]>::try_from(l.state_parts()).unwrap();
    AlphaState {
        syn_exc,
        syn_inh,
        mem,
    }
}

/// One form, fused and reference: the main output (and the rate form's mean membrane) and the
/// final state bit for bit, and the gradients of sum(out·w) + Σ sum(state_k·w_k) for currents,
/// the initial state and the learned parameters within 1e-9. Returns the firing rate.
fn fused_vs_reference(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &AlphaConfig,
    src: Source,
    with_state: bool,
    seed: u64,
) -> Result<f64, String> {
    let mut rng = SeededRng::new(seed);
    let in_dims: Vec<usize> = match form {
        Form::Spikes | Form::RateMem => [&[steps][..], neurons].concat(),
        Form::ConstSpikes | Form::ConstRate => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, 0.3, 0.5);
    let state = [
        randn(&mut rng, neurons, 0.5, 0.3),
        randn(&mut rng, neurons, -0.3, 0.3),
        randn(&mut rng, neurons, 0.5, 0.5),
    ];
    let mut uni = |n: usize, lo: f64, hi: f64| {
        rng.uniform_tensor(n.max(1), lo, hi, DType::F64, &Device::Cpu)
            .unwrap()
    };
    // α ∈ [0.75, 0.97] above β ∈ [0.3, 0.7], whichever is shared.
    let coefs = [
        uni(src.alpha, 0.75, 0.97),
        uni(src.beta, 0.3, 0.7),
        uni(src.theta, 0.5, 1.4),
    ];
    let learned = src.alpha + src.beta + src.theta > 0;
    let (f, r) = (
        Leaves::new(&x, &state, &coefs),
        Leaves::new(&x, &state, &coefs),
    );
    let run = |l: &Leaves, fused: bool| -> (Tensor, AlphaState) {
        let (x, p, s) = (l.x.as_tensor(), l.params(), state_of(l));
        let (p, s) = (learned.then_some(&p), with_state.then_some(&s));
        let cat = |o: lsnn_layers::lif::RateOutput| Tensor::cat(&[o.rate, o.mean_mem], 0).unwrap();
        match (form, fused) {
            (Form::Spikes, true) => alpha::spikes_with(x, cfg, p, s).unwrap(),
            (Form::Spikes, false) => reference::spikes_with(x, cfg, p, s).unwrap(),
            (Form::RateMem, true) => {
                let (o, st) = alpha::rate_with(x, cfg, p, s).unwrap();
                (cat(o), st)
            }
            (Form::RateMem, false) => {
                let (o, st) = reference::rate_with(x, cfg, p, s).unwrap();
                (cat(o), st)
            }
            (Form::ConstSpikes, true) => alpha::const_spikes_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstSpikes, false) => {
                reference::const_spikes_with(x, steps, cfg, p, s).unwrap()
            }
            (Form::ConstRate, true) => alpha::const_rate_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstRate, false) => reference::const_rate_with(x, steps, cfg, p, s).unwrap(),
        }
    };
    let (of, sf) = run(&f, true);
    let (or, sr) = run(&r, false);
    if bits(&of) != bits(&or) {
        return Err(format!("{form:?}: forward differs from the reference"));
    }
    for (k, (a, b)) in parts(&sf).into_iter().zip(parts(&sr)).enumerate() {
        if bits(a) != bits(b) {
            return Err(format!(
                "{form:?}: final state {k} differs from the reference"
            ));
        }
    }
    let w = randn(&mut rng, of.dims(), 0.0, 1.0);
    let ws = [0, 1, 2].map(|_| randn(&mut rng, neurons, 0.0, 1.0));
    let loss = |o: &Tensor, s: &AlphaState| {
        let mut l = (o * &w).unwrap().sum_all().unwrap();
        for (t, wk) in parts(s).into_iter().zip(&ws) {
            l = (l + (t * wk).unwrap().sum_all().unwrap()).unwrap();
        }
        l
    };
    let gf = loss(&of, &sf).backward().unwrap();
    let gr = loss(&or, &sr).backward().unwrap();
    let names = ["syn_exc0", "syn_inh0", "mem0", "alpha", "beta", "threshold"];
    let mut leaves = vec![("currents", &f.x, &r.x, true)];
    for (k, name) in names.iter().enumerate() {
        let (a, b) = match k {
            0..=2 => (&f.state[k], &r.state[k]),
            _ => (&f.coefs[k - 3], &r.coefs[k - 3]),
        };
        leaves.push((name, a, b, if k < 3 { with_state } else { learned }));
    }
    for (what, a, b, wanted) in leaves {
        if !wanted {
            continue;
        }
        // The composed path gives no gradient where a leaf only reaches the detached reset (the
        // initial membrane; θ under zero and none resets with every spike term zero): that is
        // a zero gradient.
        let zero = a.as_tensor().zeros_like().unwrap();
        let ga = gf.get(a.as_tensor()).unwrap_or(&zero);
        let gb = gr.get(b.as_tensor()).unwrap_or(&zero);
        close(&format!("{form:?} d{what}"), ga, gb, 1e-9)?;
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
        source in 0usize..4,
        with_state in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cfg = AlphaConfig::new(0.9, 0.6)
            .with_reset(RESETS[reset])
            .with_surrogate(SURROGATES[surrogate]);
        let f = *neurons.last().unwrap();
        let src = match source {
            0 => FIXED,
            1 => Source { alpha: 1, beta: 1, theta: 1 },
            2 => Source { alpha: f, beta: 1, theta: f },
            _ => Source { alpha: 1, beta: f, theta: 1 },
        };
        for (k, form) in FORMS.iter().enumerate() {
            let r = fused_vs_reference(*form, &neurons, steps, &cfg, src, with_state, seed.wrapping_add(k as u64));
            prop_assert!(r.is_ok(), "{:?} {:?} T={} {:?} {:?}: {}", form, neurons, steps, cfg, src, r.unwrap_err());
        }
    }
}

/// Every form, reset and surrogate on a fixed grid with spikes seen to fire, then enough neurons
/// (not a multiple of the block) for the threaded path with per-feature parameters.
#[test]
fn fused_equals_reference_every_mode() {
    let per_feature = Source {
        alpha: 17,
        beta: 17,
        theta: 1,
    };
    for reset in RESETS {
        for surrogate in SURROGATES {
            let cfg = AlphaConfig::new(0.9, 0.6)
                .with_reset(reset)
                .with_surrogate(surrogate);
            for form in FORMS {
                for (src, with_state) in [(FIXED, true), (per_feature, false)] {
                    let rate = fused_vs_reference(form, &[3, 17], 7, &cfg, src, with_state, 5)
                        .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
                    assert!(rate > 0.05 && rate < 0.95, "{form:?} {cfg:?}: rate {rate}");
                }
            }
        }
    }
    let cfg = AlphaConfig::new(0.85, 0.5)
        .with_reset(ResetMechanism::Subtract)
        .with_surrogate(Surrogate::atan(2.0));
    let wide = Source {
        alpha: 517,
        beta: 517,
        theta: 517,
    };
    // More features (1,500) than a block holds (1,024 neurons): each block derives the
    // coefficients of its own neurons only.
    let wider = Source {
        alpha: 1500,
        beta: 1500,
        theta: 1500,
    };
    for form in FORMS {
        fused_vs_reference(form, &[70, 517], 6, &cfg, wide, true, 9)
            .unwrap_or_else(|e| panic!("{form:?} large: {e}"));
        fused_vs_reference(form, &[70, 517], 6, &cfg, FIXED, false, 10)
            .unwrap_or_else(|e| panic!("{form:?} large, fixed: {e}"));
        fused_vs_reference(form, &[3, 1500], 4, &cfg, wider, true, 11)
            .unwrap_or_else(|e| panic!("{form:?} more features than a block: {e}"));
    }
}

/// α = 1, the edge of its range: τ = 1 and the excitatory current integrates without decay;
/// fused equals the reference there too, under every reset, and the membrane is exactly
/// E + I.
#[test]
fn alpha_one_integrates_without_decay() {
    for reset in RESETS {
        let cfg = AlphaConfig::new(1.0, 0.6).with_reset(reset);
        for form in FORMS {
            let rate = fused_vs_reference(form, &[4, 9], 6, &cfg, FIXED, true, 12)
                .unwrap_or_else(|e| panic!("{reset:?} {form:?}: {e}"));
            assert!(rate > 0.0, "{reset:?} {form:?}: spikes fire");
        }
    }
    let cfg = AlphaConfig::new(1.0, 0.6).with_reset(ResetMechanism::None);
    let x = randn(&mut SeededRng::new(13), &[5, 7], 0.2, 0.5);
    let (_, st) = alpha::spikes_with(&x, &cfg, None, None).unwrap();
    let sum = (&st.syn_exc + &st.syn_inh).unwrap();
    assert_eq!(bits(&st.mem), bits(&sum), "τ = 1");
}

/// Central differences (f64) of a loss on the final state — where the resets are piecewise
/// constant, so the exact derivative exists and must equal the BPTT's — for α and β per feature
/// (each reaching the state through its decay and through τ) and θ shared, under each reset.
#[test]
fn state_gradients_match_central_differences() {
    const EPS: f64 = 1e-6;
    for reset in RESETS {
        let cfg = AlphaConfig::new(0.9, 0.6).with_reset(reset);
        let mut rng = SeededRng::new(43);
        let x = randn(&mut rng, &[9, 3, 5], 0.3, 0.6);
        let ws = [0, 1, 2].map(|_| randn(&mut rng, &[3, 5], 0.0, 1.0));
        let a = rng
            .uniform_tensor(5, 0.8, 0.95, DType::F64, &Device::Cpu)
            .unwrap();
        let b = rng
            .uniform_tensor(5, 0.4, 0.7, DType::F64, &Device::Cpu)
            .unwrap();
        let theta = Tensor::new(&[0.9f64], &Device::Cpu).unwrap();
        let loss = |a: &Tensor, b: &Tensor, t: &Tensor| -> Tensor {
            let p = AlphaParams::new(a.clone(), b.clone(), t.clone());
            let (spk, st) = alpha::spikes_with(&x, &cfg, Some(&p), None).unwrap();
            assert!(
                f64s(&spk).iter().any(|&s| s > 0.0),
                "{reset:?}: spikes fire"
            );
            let mut l = Tensor::new(0.0f64, &Device::Cpu).unwrap();
            for (s, w) in parts(&st).into_iter().zip(&ws) {
                l = (l + (s * w).unwrap().sum_all().unwrap()).unwrap();
            }
            l
        };
        let vars = [&a, &b, &theta].map(|t| Var::from_tensor(t).unwrap());
        let g = loss(
            vars[0].as_tensor(),
            vars[1].as_tensor(),
            vars[2].as_tensor(),
        )
        .backward()
        .unwrap();
        let grads: Vec<Vec<f64>> = vars
            .iter()
            .map(|v| g.get(v.as_tensor()).map_or(vec![0.0], f64s))
            .collect();
        let base = [f64s(&a), f64s(&b), f64s(&theta)];
        let value = |p: &[Vec<f64>; 3]| {
            let t = |v: &Vec<f64>| Tensor::new(v.clone(), &Device::Cpu).unwrap();
            loss(&t(&p[0]), &t(&p[1]), &t(&p[2]))
                .to_scalar::<f64>()
                .unwrap()
        };
        for (which, name) in ["alpha", "beta", "theta"].iter().enumerate() {
            let mut largest = 0.0f64;
            for j in 0..base[which].len() {
                let (mut up, mut down) = (base.clone(), base.clone());
                up[which][j] += EPS;
                down[which][j] -= EPS;
                let fd = (value(&up) - value(&down)) / (2.0 * EPS);
                let bptt = grads[which][j];
                assert!(
                    (fd - bptt).abs() < 1e-6 * fd.abs().max(1.0),
                    "{reset:?} d{name}[{j}]: bptt {bptt} vs fd {fd}"
                );
                largest = largest.max(fd.abs());
            }
            // θ reaches the final state only through the subtract reset.
            if *name != "theta" || reset == ResetMechanism::Subtract {
                assert!(largest > 1e-3, "{reset:?} d{name} is not trivially zero");
            }
        }
    }
}
