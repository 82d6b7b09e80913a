//! The adaptive LIF: against norse 1.1.0 `LSNNCell` stepped over two chunks with its three states
//! carried (fixtures), the fused op against the composed reference (bit for bit in forward, every
//! gradient within 1e-9·max(1, |b|), f64) for every form, surrogate, adaptation and parameter
//! source, and central differences for the smooth parameters.

use candle_core::{DType, Device, Tensor, Var};
use common::{
    bits, close, f64s, neuron_dims, randn, Form, Leaves, Source, FIXED, FORMS, SURROGATES,
};
use lsnn_layers::alif::{self, reference, AlifConfig, AlifParams, AlifState, NorseLsnn};
use lsnn_layers::lif::Surrogate;
use lsnn_layers::SeededRng;
use proptest::prelude::*;

mod common;

/// The three state tensors of `s`.
fn parts(s: &AlifState) -> [&Tensor; 3] {
    [&s.syn, &s.mem, &s.adapt]
}

const KEYS: [&str; 3] = ["syn", "mem", "adapt"];

/// norse `LSNNCell` (its defaults, in f64; and a fast adaptation with potentials and τ_syn⁻¹,
/// τ_mem⁻¹, v_th per feature, in f32) from a non-resting state over 40 steps in chunks of 15 and
/// 25, the state carried: spikes exactly; in f32 states within 1e-5 and the gradients of the
/// currents and of the initial state within 1e-4·max(1, |b|), α, β, θ's (norse's τ_syn⁻¹,
/// τ_mem⁻¹, v_th through design §2.13's map) within 1e-4 relative; in f64 1e-12 and 1e-9 — through
/// the fused ops and the composed reference, with the parameters fixed (shared case) and learned.
#[test]
fn chunks_with_carried_state_match_norse() {
    for name in ["default", "fast"] {
        let f = common::load(&format!("alif_{name}.safetensors"));
        let chunk = common::scalar(&f["chunk"]) as usize;
        let t_all = f["current"].dim(0).unwrap();
        let one = |k: &str| common::scalar(&f[k]);
        let per_feature = f["alpha"].elem_count() > 1;
        let cfg = AlifConfig::new(one("alpha"), one("beta"))
            .with_threshold(one("threshold"))
            .with_adaptation(one("adapt_decay"), one("adapt_jump"))
            .with_potentials(one("v_leak"), one("v_reset"))
            .with_surrogate(Surrogate::fast_sigmoid(1.0));
        let dtype = f["current"].dtype();
        let (state_tol, grad_tol) = match dtype {
            DType::F64 => (1e-12, 1e-9),
            _ => (1e-5, 1e-4),
        };
        let modes: &[(bool, bool)] = match per_feature {
            false => &[(true, false), (true, true), (false, false), (false, true)],
            true => &[(true, true), (false, true)],
        };
        for &(fused, learned) in modes {
            let what = format!("{name} fused {fused} learned {learned}");
            let v = |k: &str| Var::from_tensor(&f[k]).unwrap();
            let (cur, s0) = (v("current"), [v("syn0"), v("mem0"), v("adapt0")]);
            let cv = |k: &str| Var::from_tensor(&f[k].to_dtype(dtype).unwrap()).unwrap();
            let coefs = [cv("alpha"), cv("beta"), cv("threshold")];
            let params = AlifParams::new(
                coefs[0].as_tensor().clone(),
                coefs[1].as_tensor().clone(),
                coefs[2].as_tensor().clone(),
            );
            let p = learned.then_some(&params);
            let run = |x: &Tensor, s: &AlifState| {
                if fused {
                    alif::spikes_with(x, &cfg, p, Some(s)).unwrap()
                } else {
                    reference::spikes_with(x, &cfg, p, Some(s)).unwrap()
                }
            };
            let first = AlifState {
                syn: s0[0].as_tensor().clone(),
                mem: s0[1].as_tensor().clone(),
                adapt: s0[2].as_tensor().clone(),
            };
            let x = cur.as_tensor();
            let (z1, st1) = run(&x.narrow(0, 0, chunk).unwrap(), &first);
            let (z2, st2) = run(&x.narrow(0, chunk, t_all - chunk).unwrap(), &st1);
            let spikes = Tensor::cat(&[&z1, &z2], 0).unwrap();
            assert_eq!(f64s(&spikes), f64s(&f["spikes"]), "{what}: spikes");
            for (k, (got, mid)) in KEYS.iter().zip(parts(&st2).into_iter().zip(parts(&st1))) {
                close(&what, got, &f[&format!("{k}_final")], state_tol).unwrap();
                let want_mid = f[*k].get(chunk - 1).unwrap();
                close(&format!("{what} {k} at the cut"), mid, &want_mid, state_tol).unwrap();
            }
            let mut loss = (&spikes * &f["grad_out"]).unwrap().sum_all().unwrap();
            for (k, got) in KEYS.iter().zip(parts(&st2)) {
                let g = &f[&format!("grad_{k}_final")];
                loss = (loss + (got * g).unwrap().sum_all().unwrap()).unwrap();
            }
            let g = loss.backward().unwrap();
            let mut leaves = vec![(&cur, "grad_current".to_string())];
            for (var, k) in s0.iter().zip(KEYS) {
                leaves.push((var, format!("grad_{k}0")));
            }
            for (got, want) in leaves {
                let gv = g
                    .get(got.as_tensor())
                    .unwrap_or_else(|| panic!("{what}: no {want}"));
                close(&format!("{what} {want}"), gv, &f[&want], grad_tol).unwrap();
            }
            if learned {
                for (var, key) in coefs
                    .iter()
                    .zip(["grad_alpha", "grad_beta", "grad_threshold"])
                {
                    let got = f64s(g.get(var.as_tensor()).unwrap());
                    let want = f64s(&f[key]);
                    for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= grad_tol * b.abs().max(1.0),
                            "{what} {key}[{j}]: {a} vs norse {b}"
                        );
                    }
                }
            }
        }
    }
}

/// norse's defaults map to α 0.8, β 0.9, ρ 1 − 1/800,000, J 1.8, θ 1 and SuperSpike; without a
/// state a call starts from norse's resting state (0, v_leak, θ) — equal to passing
/// [`AlifState::rest`] — and the initial threshold carries no gradient to θ (norse detaches it).
#[test]
fn norse_defaults_and_the_resting_state() {
    let cfg = AlifConfig::from_norse(&NorseLsnn::default());
    assert!((cfg.alpha - 0.8).abs() < 1e-12 && (cfg.beta - 0.9).abs() < 1e-12);
    assert!((cfg.adapt_decay - (1.0 - 1.25e-6)).abs() < 1e-15);
    assert_eq!((cfg.adapt_jump, cfg.threshold), (1.8, 1.0));
    assert_eq!(cfg.surrogate, Surrogate::fast_sigmoid(1.0));
    assert_eq!(cfg, AlifConfig::default());
    let cfg = AlifConfig::new(0.8, 0.9)
        .with_adaptation(0.9, 0.4)
        .with_potentials(0.1, -0.3);
    let x = randn(&mut SeededRng::new(3), &[12, 2, 5], 0.6, 0.5);
    for fused in [true, false] {
        let theta = Var::from_tensor(&Tensor::new(&[0.8f64], &Device::Cpu).unwrap()).unwrap();
        let one = |v: f64| Tensor::new(&[v], &Device::Cpu).unwrap();
        let p = AlifParams::new(one(0.8), one(0.9), theta.as_tensor().clone());
        let run = |s: Option<&AlifState>| match fused {
            true => alif::spikes_with(&x, &cfg, Some(&p), s).unwrap(),
            false => reference::spikes_with(&x, &cfg, Some(&p), s).unwrap(),
        };
        let (z, st) = run(None);
        let rest = AlifState::rest(&x.get(0).unwrap(), &cfg, Some(&p)).unwrap();
        assert_eq!(f64s(&rest.mem), vec![0.1; 10]);
        assert_eq!(f64s(&rest.adapt), vec![0.8; 10]);
        let (z2, st2) = run(Some(&rest));
        assert_eq!(bits(&z), bits(&z2), "fused {fused}: spikes from rest");
        for (a, b) in parts(&st).into_iter().zip(parts(&st2)) {
            assert_eq!(bits(a), bits(b), "fused {fused}: state from rest");
        }
        let rate = f64s(&z).iter().sum::<f64>() / 120.0;
        assert!(rate > 0.05 && rate < 0.6, "rate {rate}");
    }
    // θ reaches the final threshold through the adaptation's decay only, b_0 = θ being detached:
    // with the spikes' surrogate terms made exactly zero (a triangle narrower than any
    // |m − a| here), b_T = ρ^T·b_0 + (1 − ρ^T)·θ + the jumps, so d sum(b_T)/dθ is 10·(1 − 0.9¹²)
    // over the 10 neurons — 10 if b_0 carried θ's gradient.
    let flat = cfg.with_surrogate(Surrogate::triangular(1e-9));
    for fused in [true, false] {
        let theta = Var::from_tensor(&Tensor::new(&[0.8f64], &Device::Cpu).unwrap()).unwrap();
        let one = |v: f64| Tensor::new(&[v], &Device::Cpu).unwrap();
        let p = AlifParams::new(one(0.8), one(0.9), theta.as_tensor().clone());
        let (z, st) = match fused {
            true => alif::spikes_with(&x, &flat, Some(&p), None).unwrap(),
            false => reference::spikes_with(&x, &flat, Some(&p), None).unwrap(),
        };
        assert!(f64s(&z).iter().any(|&s| s > 0.0), "spikes fire");
        let g = st.adapt.sum_all().unwrap().backward().unwrap();
        let got = f64s(g.get(theta.as_tensor()).unwrap())[0];
        let want = 10.0 * (1.0 - 0.9f64.powi(12));
        assert!(
            (got - want).abs() < 1e-9,
            "fused {fused}: dθ {got}, expected {want}"
        );
    }
}

/// The initial state of one side of a comparison.
fn state_of(l: &Leaves) -> AlifState {
    let [syn, mem, adapt] = <[Tensor; 3]>::try_from(l.state_parts()).unwrap();
    AlifState { syn, mem, adapt }
}

/// One form, fused and reference: the main output (and the rate form's mean membrane) and the
/// final state bit for bit, and the gradients of sum(out·w) + Σ sum(state_k·w_k) for currents,
/// the initial state and the learned parameters within 1e-9·max(1, |b|). Returns the firing
/// rate.
fn fused_vs_reference(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &AlifConfig,
    src: Source,
    with_state: bool,
    seed: u64,
) -> Result<f64, String> {
    let mut rng = SeededRng::new(seed);
    let in_dims: Vec<usize> = match form {
        Form::Spikes | Form::RateMem => [&[steps][..], neurons].concat(),
        Form::ConstSpikes | Form::ConstRate => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, 0.9, 0.7);
    let state = [
        randn(&mut rng, neurons, 0.4, 0.4),
        randn(&mut rng, neurons, 0.4, 0.4),
        randn(&mut rng, neurons, 1.0, 0.3),
    ];
    let mut uni = |n: usize, lo: f64, hi: f64| {
        rng.uniform_tensor(n.max(1), lo, hi, DType::F64, &Device::Cpu)
            .unwrap()
    };
    let coefs = [
        uni(src.alpha, 0.5, 0.95),
        uni(src.beta, 0.5, 0.9),
        uni(src.theta, 0.5, 1.3),
    ];
    let learned = src.alpha + src.beta + src.theta > 0;
    let (f, r) = (
        Leaves::new(&x, &state, &coefs),
        Leaves::new(&x, &state, &coefs),
    );
    let run = |l: &Leaves, fused: bool| -> (Tensor, AlifState) {
        let (x, p, s) = (l.x.as_tensor(), l.params(), state_of(l));
        let (p, s) = (learned.then_some(&p), with_state.then_some(&s));
        let cat = |o: lsnn_layers::lif::RateOutput| Tensor::cat(&[o.rate, o.mean_mem], 0).unwrap();
        match (form, fused) {
            (Form::Spikes, true) => alif::spikes_with(x, cfg, p, s).unwrap(),
            (Form::Spikes, false) => reference::spikes_with(x, cfg, p, s).unwrap(),
            (Form::RateMem, true) => {
                let (o, st) = alif::rate_with(x, cfg, p, s).unwrap();
                (cat(o), st)
            }
            (Form::RateMem, false) => {
                let (o, st) = reference::rate_with(x, cfg, p, s).unwrap();
                (cat(o), st)
            }
            (Form::ConstSpikes, true) => alif::const_spikes_with(x, steps, cfg, p, s).unwrap(),
            (Form::ConstSpikes, false) => {
                reference::const_spikes_with(x, steps, cfg, p, s).unwrap()
            }
            (Form::ConstRate, true) => alif::const_rate_with(x, steps, cfg, p, s).unwrap(),
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
    let loss = |o: &Tensor, s: &AlifState| {
        let mut l = (o * &w).unwrap().sum_all().unwrap();
        for (t, wk) in parts(s).into_iter().zip(&ws) {
            l = (l + (t * wk).unwrap().sum_all().unwrap()).unwrap();
        }
        l
    };
    let gf = loss(&of, &sf).backward().unwrap();
    let gr = loss(&or, &sr).backward().unwrap();
    let names = ["syn0", "mem0", "adapt0", "alpha", "beta", "threshold"];
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
        // A leaf the composed graph never reaches (α with every spike term zero over one
        // step) has no gradient there: that is a zero gradient.
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

/// The adaptation constants the proptest draws from: (ρ, J, v_leak, v_reset).
const ADAPTATIONS: [(f64, f64, f64, f64); 4] = [
    (0.9, 0.3, 0.0, 0.0),
    (0.99, 1.8, 0.1, -0.2),
    (1.0, 0.0, 0.0, 0.0),
    (0.0, 0.5, -0.1, 0.2),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn fused_equals_reference(
        neurons in neuron_dims(),
        steps in 1usize..=10,
        adaptation in 0usize..ADAPTATIONS.len(),
        surrogate in 0usize..SURROGATES.len(),
        source in 0usize..4,
        with_state in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (rho, jump, leak, reset) = ADAPTATIONS[adaptation];
        let cfg = AlifConfig::new(0.8, 0.7)
            .with_adaptation(rho, jump)
            .with_potentials(leak, reset)
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

/// Every form, surrogate and adaptation on a fixed grid with spikes seen to fire, then enough
/// neurons (not a multiple of the block) for the threaded path with per-feature parameters, and
/// more features than a block holds.
#[test]
fn fused_equals_reference_every_mode() {
    let per_feature = Source {
        alpha: 17,
        beta: 17,
        theta: 17,
    };
    for surrogate in SURROGATES {
        for (rho, jump, leak, reset) in ADAPTATIONS {
            let cfg = AlifConfig::new(0.8, 0.7)
                .with_adaptation(rho, jump)
                .with_potentials(leak, reset)
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
    let cfg = AlifConfig::new(0.85, 0.8)
        .with_adaptation(0.95, 0.5)
        .with_surrogate(Surrogate::atan(2.0));
    let wide = Source {
        alpha: 517,
        beta: 517,
        theta: 517,
    };
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

/// Central differences (f64) of a loss on the spikes and the final state for α, β and θ per
/// feature. The spike is a step, so the exact derivative exists where no membrane sits at its
/// threshold and leaves the spikes out; a triangular surrogate narrower than any |m − a| here
/// (1e-9) makes the BPTT's surrogate terms exactly zero, so the BPTT must equal it — through the
/// decays, the leak, the reset to v_reset and the adaptive threshold.
#[test]
fn smooth_parameter_gradients_match_central_differences() {
    const EPS: f64 = 1e-6;
    let cfg = AlifConfig::new(0.8, 0.7)
        .with_adaptation(0.9, 0.4)
        .with_potentials(0.1, -0.2)
        .with_surrogate(Surrogate::triangular(1e-9));
    let mut rng = SeededRng::new(43);
    let x = randn(&mut rng, &[9, 3, 5], 0.8, 0.6);
    let ws = [0, 1, 2].map(|_| randn(&mut rng, &[3, 5], 0.0, 1.0));
    // A given initial state: from rest, b_0 = θ detached (as norse) would hide a path from θ.
    let s0 = AlifState {
        syn: randn(&mut rng, &[3, 5], 0.3, 0.3),
        mem: randn(&mut rng, &[3, 5], 0.3, 0.3),
        adapt: randn(&mut rng, &[3, 5], 1.0, 0.2),
    };
    let uni = |rng: &mut SeededRng, lo: f64, hi: f64| {
        rng.uniform_tensor(5, lo, hi, DType::F64, &Device::Cpu)
            .unwrap()
    };
    let (a, b, theta) = (
        uni(&mut rng, 0.6, 0.9),
        uni(&mut rng, 0.5, 0.8),
        uni(&mut rng, 0.7, 1.1),
    );
    for fused in [true, false] {
        let loss = |a: &Tensor, b: &Tensor, t: &Tensor| -> Tensor {
            let p = AlifParams::new(a.clone(), b.clone(), t.clone());
            let (spk, st) = match fused {
                true => alif::spikes_with(&x, &cfg, Some(&p), Some(&s0)).unwrap(),
                false => reference::spikes_with(&x, &cfg, Some(&p), Some(&s0)).unwrap(),
            };
            let rate = f64s(&spk).iter().sum::<f64>() / 135.0;
            assert!(rate > 0.05 && rate < 0.8, "rate {rate}");
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
            .map(|v| f64s(g.get(v.as_tensor()).unwrap()))
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
                    "fused {fused} d{name}[{j}]: bptt {bptt} vs fd {fd}"
                );
                largest = largest.max(fd.abs());
            }
            assert!(largest > 1e-3, "d{name} is not trivially zero");
        }
    }
}
