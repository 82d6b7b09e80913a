//! The current-based LIF (`synaptic`): against snnTorch 1.0.0 `Synaptic` stepped over two chunks
//! with both states carried (fixtures), the fused op against the composed reference (bit for bit
//! in forward, every gradient within 1e-9·max(1, |b|), f64) for every form, reset, surrogate and
//! parameter source, central differences for the smooth parameters. (The layer, the model and the typed errors are in
//! `synaptic_layer.rs`.)

use candle_core::{DType, Device, Tensor, Var};
use common::{bits, close, f64s, neuron_dims, randn, Form, FORMS, RESETS, SURROGATES};
use lsnn_layers::lif::{ResetMechanism, Surrogate};
use lsnn_layers::synaptic::{self, reference, SynapticConfig, SynapticParams, SynapticState};
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

/// snnTorch `Synaptic` (α 0.8, β 0.9) from a non-zero state over 40 steps in chunks of 15 and
/// 25, both states carried: spikes exactly, final states within 1e-5, the gradients of the
/// currents and of both initial states within 1e-4·max(1, |b|), and (with learned shared α, β,
/// θ) theirs within 1e-4 relative — through the fused ops and through the composed reference.
#[test]
fn chunks_with_carried_state_match_snntorch() {
    for (reset, name) in RESET_NAMES {
        let f = common::load(&format!("synaptic_{name}.safetensors"));
        let chunk = common::scalar(&f["chunk"]) as usize;
        let t_all = f["current"].dim(0).unwrap();
        for (surrogate, sg) in SNN_SURROGATES {
            let cfg = SynapticConfig::new(0.8, 0.9)
                .with_threshold(1.0)
                .with_reset(reset)
                .with_surrogate(surrogate);
            for (fused, learned) in [(true, false), (true, true), (false, false), (false, true)] {
                let what = format!("{name}/{sg} fused {fused} learned {learned}");
                let v = |k: &str| Var::from_tensor(&f[k]).unwrap();
                let (cur, syn0, mem0) = (v("current"), v("syn0"), v("mem0"));
                let one = |x: f64| {
                    Var::from_tensor(&Tensor::new(&[x as f32], &Device::Cpu).unwrap()).unwrap()
                };
                let (alpha, beta, theta) = (one(0.8), one(0.9), one(1.0));
                let params = SynapticParams::new(
                    alpha.as_tensor().clone(),
                    beta.as_tensor().clone(),
                    theta.as_tensor().clone(),
                );
                let p = learned.then_some(&params);
                let run = |x: &Tensor, s: &SynapticState| {
                    if fused {
                        synaptic::spikes_with(x, &cfg, p, Some(s)).unwrap()
                    } else {
                        reference::spikes_with(x, &cfg, p, Some(s)).unwrap()
                    }
                };
                let first = SynapticState {
                    syn: syn0.as_tensor().clone(),
                    mem: mem0.as_tensor().clone(),
                };
                let x = cur.as_tensor();
                let (s1, st1) = run(&x.narrow(0, 0, chunk).unwrap(), &first);
                let (s2, st2) = run(&x.narrow(0, chunk, t_all - chunk).unwrap(), &st1);
                let spikes = Tensor::cat(&[&s1, &s2], 0).unwrap();
                assert_eq!(f64s(&spikes), f64s(&f["spikes"]), "{what}: spikes");
                close(&what, &st2.syn, &f["syn_final"], 1e-5).unwrap();
                close(&what, &st2.mem, &f["mem_final"], 1e-5).unwrap();
                close(&what, &st1.mem, &f["mem"].get(chunk - 1).unwrap(), 1e-5).unwrap();
                let loss = ((&spikes * &f["grad_out"]).unwrap().sum_all().unwrap()
                    + (&st2.syn * &f["grad_syn_final"])
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
                    (&syn0, format!("grad_syn0_{sg}")),
                    (&mem0, format!("grad_mem0_{sg}")),
                ];
                if learned {
                    leaves.push((&alpha, format!("grad_alpha_{sg}")));
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

/// The tensors one side of a comparison trains.
struct Leaves {
    x: Var,
    syn0: Var,
    mem0: Var,
    alpha: Var,
    beta: Var,
    theta: Var,
}

impl Leaves {
    fn new(t: &[&Tensor; 6]) -> Self {
        let v = |t: &Tensor| Var::from_tensor(t).unwrap();
        Leaves {
            x: v(t[0]),
            syn0: v(t[1]),
            mem0: v(t[2]),
            alpha: v(t[3]),
            beta: v(t[4]),
            theta: v(t[5]),
        }
    }

    fn params(&self) -> SynapticParams {
        SynapticParams::new(
            self.alpha.as_tensor().clone(),
            self.beta.as_tensor().clone(),
            self.theta.as_tensor().clone(),
        )
    }

    fn state(&self) -> SynapticState {
        SynapticState {
            syn: self.syn0.as_tensor().clone(),
            mem: self.mem0.as_tensor().clone(),
        }
    }
}

/// How many values each of α, β, θ has (0: the config's fixed values for all three).
#[derive(Debug, Clone, Copy)]
struct Source {
    alpha: usize,
    beta: usize,
    theta: usize,
}

const FIXED: Source = Source {
    alpha: 0,
    beta: 0,
    theta: 0,
};

/// One form, fused and reference: the main output (and the rate form's mean membrane) and the
/// final state bit for bit, and the gradients of sum(out·w) + sum(syn·w2) + sum(mem·w3) for
/// currents, both initial states and the learned parameters within 1e-9. Returns the firing
/// rate.
fn fused_vs_reference(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &SynapticConfig,
    src: Source,
    with_state: bool,
    seed: u64,
) -> Result<f64, String> {
    let mut rng = SeededRng::new(seed);
    let in_dims: Vec<usize> = match form {
        Form::Spikes | Form::RateMem => [&[steps][..], neurons].concat(),
        Form::ConstSpikes | Form::ConstRate => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, 0.25, 0.5);
    let syn0 = randn(&mut rng, neurons, 0.1, 0.3);
    let mem0 = randn(&mut rng, neurons, 0.2, 0.5);
    let mut uni = |n: usize, lo: f64, hi: f64| {
        rng.uniform_tensor(n.max(1), lo, hi, DType::F64, &Device::Cpu)
            .unwrap()
    };
    let (alpha, beta, theta) = (
        uni(src.alpha, 0.3, 0.95),
        uni(src.beta, 0.6, 1.0),
        uni(src.theta, 0.5, 1.4),
    );
    let learned = src.alpha + src.beta + src.theta > 0;
    let all = [&x, &syn0, &mem0, &alpha, &beta, &theta];
    let (f, r) = (Leaves::new(&all), Leaves::new(&all));
    let run = |l: &Leaves, fused: bool| -> (Tensor, SynapticState) {
        let (x, p, s) = (l.x.as_tensor(), l.params(), l.state());
        let (p, s) = (learned.then_some(&p), with_state.then_some(&s));
        let cat = |o: lsnn_layers::lif::RateOutput| Tensor::cat(&[o.rate, o.mean_mem], 0).unwrap();
        match (form, fused) {
            (Form::Spikes, true) => synaptic::spikes_with(x, cfg, p, s).unwrap(),
            (Form::Spikes, false) => reference::spikes_with(x, cfg, p, s).unwrap(),
            (Form::RateMem, true) => {
                let (o, st) = synaptic::rate_with(x, cfg, p, s).unwrap();
                (cat(o), st)
            }
            (Form::RateMem, false) => {
                let (o, st) = reference::rate_with(x, cfg, p, s).unwrap();
                (cat(o), st)
            }
            (Form::ConstSpikes, true) => synaptic::const_spikes_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstSpikes, false) => {
                reference::const_spikes_with(x, steps, cfg, p, s).unwrap()
            }
            (Form::ConstRate, true) => synaptic::const_rate_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstRate, false) => reference::const_rate_with(x, steps, cfg, p, s).unwrap(),
        }
    };
    let (of, sf) = run(&f, true);
    let (or, sr) = run(&r, false);
    if bits(&of) != bits(&or) {
        return Err(format!("{form:?}: forward differs from the reference"));
    }
    if bits(&sf.syn) != bits(&sr.syn) || bits(&sf.mem) != bits(&sr.mem) {
        return Err(format!("{form:?}: final state differs from the reference"));
    }
    let w = randn(&mut rng, of.dims(), 0.0, 1.0);
    let w2 = randn(&mut rng, neurons, 0.0, 1.0);
    let w3 = randn(&mut rng, neurons, 0.0, 1.0);
    let loss = |o: &Tensor, s: &SynapticState| {
        ((o * &w).unwrap().sum_all().unwrap()
            + (&s.syn * &w2).unwrap().sum_all().unwrap()
            + (&s.mem * &w3).unwrap().sum_all().unwrap())
        .unwrap()
    };
    let gf = loss(&of, &sf).backward().unwrap();
    let gr = loss(&or, &sr).backward().unwrap();
    let leaves = [
        ("currents", &f.x, &r.x, true),
        ("syn0", &f.syn0, &r.syn0, with_state),
        ("mem0", &f.mem0, &r.mem0, with_state),
        ("alpha", &f.alpha, &r.alpha, learned),
        ("beta", &f.beta, &r.beta, learned),
        ("threshold", &f.theta, &r.theta, learned),
    ];
    for (what, a, b, wanted) in leaves {
        if !wanted {
            continue;
        }
        let ga = gf
            .get(a.as_tensor())
            .ok_or(format!("no fused {what} gradient"))?;
        // The composed path gives no gradient where θ only reaches the detached reset (zero and
        // none resets with every spike term zero): that is a zero gradient.
        let zero = ga.zeros_like().unwrap();
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
        let cfg = SynapticConfig::new(0.85, 0.9)
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
            let cfg = SynapticConfig::new(0.8, 0.9)
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
    let cfg = SynapticConfig::new(0.7, 0.9)
        .with_reset(ResetMechanism::Zero)
        .with_surrogate(Surrogate::atan(2.0));
    let wide = Source {
        alpha: 517,
        beta: 517,
        theta: 517,
    };
    for form in FORMS {
        fused_vs_reference(form, &[70, 517], 6, &cfg, wide, true, 9)
            .unwrap_or_else(|e| panic!("{form:?} large: {e}"));
        fused_vs_reference(form, &[70, 517], 6, &cfg, FIXED, false, 10)
            .unwrap_or_else(|e| panic!("{form:?} large, fixed: {e}"));
    }
}

/// Central differences (f64) of a loss on the final state — where the resets are piecewise
/// constant, so the exact derivative exists and must equal the BPTT's — for α and β per feature
/// and θ shared, under each reset.
#[test]
fn state_gradients_match_central_differences() {
    const EPS: f64 = 1e-6;
    for reset in RESETS {
        let cfg = SynapticConfig::new(0.8, 0.9).with_reset(reset);
        let mut rng = SeededRng::new(41);
        let x = randn(&mut rng, &[9, 3, 5], 0.3, 0.6);
        let w = randn(&mut rng, &[3, 5], 0.0, 1.0);
        let w2 = randn(&mut rng, &[3, 5], 0.0, 1.0);
        let alpha = rng
            .uniform_tensor(5, 0.5, 0.9, DType::F64, &Device::Cpu)
            .unwrap();
        let beta = rng
            .uniform_tensor(5, 0.6, 0.95, DType::F64, &Device::Cpu)
            .unwrap();
        let theta = Tensor::new(&[0.9f64], &Device::Cpu).unwrap();
        let loss = |a: &Tensor, b: &Tensor, t: &Tensor| -> Tensor {
            let p = SynapticParams::new(a.clone(), b.clone(), t.clone());
            let (spk, st) = synaptic::spikes_with(&x, &cfg, Some(&p), None).unwrap();
            assert!(
                f64s(&spk).iter().any(|&s| s > 0.0),
                "{reset:?}: spikes fire"
            );
            ((st.mem * &w).unwrap().sum_all().unwrap() + (st.syn * &w2).unwrap().sum_all().unwrap())
                .unwrap()
        };
        let vars = [&alpha, &beta, &theta].map(|t| Var::from_tensor(t).unwrap());
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
        let base = [f64s(&alpha), f64s(&beta), f64s(&theta)];
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
            // A reset can cut a feature's dependence (every neuron of it reset at the last
            // step), so the check that the derivative is not trivially zero is per parameter.
            if *name != "theta" || reset == ResetMechanism::Subtract {
                assert!(largest > 1e-3, "{reset:?} d{name} is not trivially zero");
            }
        }
    }
}
