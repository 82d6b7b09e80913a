//! The stateful LIF: every form starts from a given membrane and returns the final one; a
//! sequence cut into chunks, the state carried, equals one call; the gradient reaches the initial
//! membrane. Checked against snnTorch `Leaky` stepped over two chunks with a carried `mem`, and
//! the fused op against the composed reference with a state.

mod common;

use candle_core::{DType, Device, Module, Tensor, Var};
use common::{assert_grad_close, load, max_abs_diff, vec_f32};
use lsnn_layers::lif::{self, reference, Leaky, LifConfig, LifState, ResetMechanism, Surrogate};
use lsnn_layers::SeededRng;
use proptest::prelude::*;

const RESETS: [(ResetMechanism, &str); 3] = [
    (ResetMechanism::Subtract, "subtract"),
    (ResetMechanism::Zero, "zero"),
    (ResetMechanism::None, "none"),
];

/// snnTorch `Leaky` from a non-zero membrane over chunks of 7 and 9 steps with the membrane
/// carried: spikes exactly, membranes within 1e-5, the gradients of the currents and of the
/// initial membrane within the parity suite's 1e-4·max(1, |b|).
#[test]
fn chunks_with_a_carried_membrane_match_snntorch() {
    for (reset, name) in RESETS {
        let f = load(&format!("lif_state_{name}.safetensors"));
        let chunk = common::scalar(&f["chunk"]) as usize;
        let t_all = f["current"].dim(0).unwrap();
        for (surrogate, sg) in [
            (Surrogate::fast_sigmoid(25.0), "fast_sigmoid"),
            (Surrogate::atan(2.0), "atan"),
        ] {
            let cfg = LifConfig::new(0.9)
                .with_threshold(1.0)
                .with_reset(reset)
                .with_surrogate(surrogate);
            let lif = Leaky::new(&cfg).unwrap();
            let cur = Var::from_tensor(&f["current"]).unwrap();
            let mem0 = Var::from_tensor(&f["mem0"]).unwrap();
            let first = LifState {
                mem: mem0.as_tensor().clone(),
            };
            let (s1, st1) = lif
                .forward_state(&cur.as_tensor().narrow(0, 0, chunk).unwrap(), Some(&first))
                .unwrap();
            let (s2, st2) = lif
                .forward_state(
                    &cur.as_tensor().narrow(0, chunk, t_all - chunk).unwrap(),
                    Some(&st1),
                )
                .unwrap();
            let spikes = Tensor::cat(&[&s1, &s2], 0).unwrap();
            assert_eq!(
                vec_f32(&spikes),
                vec_f32(&f["spikes"]),
                "{name}/{sg} spikes"
            );
            let d = max_abs_diff(&st2.mem, &f["mem_final"]);
            assert!(d <= 1e-5, "{name}/{sg}: final membrane off by {d}");
            let d = max_abs_diff(&st1.mem, &f["mem"].get(chunk - 1).unwrap());
            assert!(d <= 1e-5, "{name}/{sg}: chunk boundary membrane off by {d}");
            let loss = ((&spikes * &f["grad_out"]).unwrap().sum_all().unwrap()
                + (&st2.mem * &f["grad_mem_final"])
                    .unwrap()
                    .sum_all()
                    .unwrap())
            .unwrap();
            let g = loss.backward().unwrap();
            assert_grad_close(
                &format!("{name}/{sg} d current"),
                g.get(cur.as_tensor()).unwrap(),
                &f[&format!("grad_current_{sg}")],
                1e-4,
            );
            assert_grad_close(
                &format!("{name}/{sg} d mem0"),
                g.get(mem0.as_tensor()).unwrap(),
                &f[&format!("grad_mem0_{sg}")],
                1e-4,
            );
        }
    }
}

fn randn(rng: &mut SeededRng, dims: &[usize], mean: f64, std: f64) -> Tensor {
    rng.normal_tensor(dims, mean, std, DType::F32, &Device::Cpu)
        .unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    vec_f32(t).iter().map(|v| v.to_bits()).collect()
}

#[derive(Debug, Clone, Copy)]
enum Form {
    Spikes,
    Rate,
    ConstSpikes,
    ConstRate,
}

const FORMS: [Form; 4] = [Form::Spikes, Form::Rate, Form::ConstSpikes, Form::ConstRate];

/// (main output, final state) of a form, fused or through the reference.
fn run(
    form: Form,
    fused: bool,
    x: &Tensor,
    steps: usize,
    cfg: &LifConfig,
    st: &LifState,
) -> (Tensor, LifState) {
    let st = Some(st);
    match (form, fused) {
        (Form::Spikes, true) => lif::spikes(x, cfg, st).unwrap(),
        (Form::Spikes, false) => reference::spikes(x, cfg, st).unwrap(),
        (Form::Rate, true) => {
            let (r, s) = lif::rate(x, cfg, st).unwrap();
            (r.rate, s)
        }
        (Form::Rate, false) => {
            let (r, s) = reference::rate(x, cfg, st).unwrap();
            (r.rate, s)
        }
        (Form::ConstSpikes, true) => lif::const_spikes(x, steps, cfg, st).unwrap(),
        (Form::ConstSpikes, false) => reference::const_spikes(x, steps, cfg, st).unwrap(),
        (Form::ConstRate, true) => lif::const_rate(x, steps, cfg, st).unwrap(),
        (Form::ConstRate, false) => reference::const_rate(x, steps, cfg, st).unwrap(),
    }
}

/// Fused against the reference from the same random initial membrane: the output and the final
/// membrane bit for bit, the gradients of the input and of the initial membrane (through a loss
/// on both outputs) within 1e-5 relative.
fn fused_vs_reference_with_state(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &LifConfig,
    seed: u64,
) -> Result<(), String> {
    let mut rng = SeededRng::new(seed);
    let in_dims = match form {
        Form::Spikes | Form::Rate => [&[steps][..], neurons].concat(),
        _ => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, 0.5, 0.8);
    let m = randn(&mut rng, neurons, 0.3, 0.9);
    let mut outs = Vec::new();
    for fused in [true, false] {
        let xv = Var::from_tensor(&x).unwrap();
        let mv = Var::from_tensor(&m).unwrap();
        let st = LifState {
            mem: mv.as_tensor().clone(),
        };
        let (out, fin) = run(form, fused, xv.as_tensor(), steps, cfg, &st);
        let w = randn(&mut SeededRng::new(seed ^ 7), out.dims(), 0.0, 1.0);
        let wm = randn(&mut SeededRng::new(seed ^ 9), neurons, 0.0, 1.0);
        let loss = ((&out * &w).unwrap().sum_all().unwrap()
            + (&fin.mem * &wm).unwrap().sum_all().unwrap())
        .unwrap();
        let g = loss.backward().unwrap();
        let gx = g.get(xv.as_tensor()).ok_or("no input gradient")?.clone();
        let gm = g
            .get(mv.as_tensor())
            .ok_or("no initial-state gradient")?
            .clone();
        outs.push((out, fin.mem, gx, gm));
    }
    let (f, r) = (&outs[0], &outs[1]);
    if bits(&f.0) != bits(&r.0) {
        return Err(format!("{form:?}: output differs"));
    }
    if bits(&f.1) != bits(&r.1) {
        return Err(format!("{form:?}: final membrane differs"));
    }
    for (what, a, b) in [("input", &f.2, &r.2), ("initial membrane", &f.3, &r.3)] {
        for (i, (x, y)) in vec_f32(a).iter().zip(vec_f32(b)).enumerate() {
            if (x - y).abs() > 1e-5 * y.abs().max(1.0) || !x.is_finite() {
                return Err(format!(
                    "{form:?} d {what}[{i}]: fused {x} vs reference {y}"
                ));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn fused_equals_reference_from_a_given_state(
        neurons in prop_oneof![
            (1usize..=300).prop_map(|a| vec![a]),
            (1usize..=12, 1usize..=12).prop_map(|(a, b)| vec![a, b]),
        ],
        steps in 1usize..=10,
        beta in 0.5f64..=1.0,
        threshold in 0.3f64..=1.5,
        reset in 0usize..3,
        atan in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cfg = LifConfig::new(beta)
            .with_threshold(threshold)
            .with_reset(RESETS[reset].0)
            .with_surrogate(if atan { Surrogate::atan(2.0) } else { Surrogate::fast_sigmoid(25.0) });
        for (k, form) in FORMS.iter().enumerate() {
            let r = fused_vs_reference_with_state(*form, &neurons, steps, &cfg, seed.wrapping_add(k as u64));
            prop_assert!(r.is_ok(), "{:?} {:?} T={} {:?}: {}", form, neurons, steps, cfg, r.unwrap_err());
        }
    }
}

/// A sequence cut into chunks, each started from the previous chunk's final state, gives the
/// spikes and final state of one call, bit for bit, for the sequence and constant-current forms;
/// rates combine as the step-weighted mean.
#[test]
fn chunks_equal_one_call_in_every_form() {
    let mut rng = SeededRng::new(17);
    for (reset, _) in RESETS {
        let cfg = LifConfig::new(0.9).with_threshold(0.8).with_reset(reset);
        let x = randn(&mut rng, &[20, 33], 0.45, 0.8);
        let m0 = LifState {
            mem: randn(&mut rng, &[33], 0.3, 0.8),
        };
        let (whole, end) = lif::spikes(&x, &cfg, Some(&m0)).unwrap();
        let mut st = m0.clone();
        let mut parts = Vec::new();
        for (a, n) in [(0, 3), (3, 1), (4, 11), (15, 5)] {
            let (s, next) = lif::spikes(&x.narrow(0, a, n).unwrap(), &cfg, Some(&st)).unwrap();
            parts.push(s);
            st = next;
        }
        assert_eq!(
            bits(&Tensor::cat(&parts, 0).unwrap()),
            bits(&whole),
            "{reset:?}"
        );
        assert_eq!(bits(&st.mem), bits(&end.mem), "{reset:?} final state");
        let fired = vec_f32(&whole).iter().sum::<f32>() / whole.elem_count() as f32;
        assert!(fired > 0.05 && fired < 0.95, "firing rate {fired}");

        // The rate form's final state equals the spike form's; its rates average by steps.
        let (r_all, e_all) = lif::rate(&x, &cfg, Some(&m0)).unwrap();
        assert_eq!(bits(&e_all.mem), bits(&end.mem));
        let (r1, s1) = lif::rate(&x.narrow(0, 0, 8).unwrap(), &cfg, Some(&m0)).unwrap();
        let (r2, s2) = lif::rate(&x.narrow(0, 8, 12).unwrap(), &cfg, Some(&s1)).unwrap();
        assert_eq!(bits(&s2.mem), bits(&end.mem));
        let mix = ((r1.rate * 8.0).unwrap() + (r2.rate * 12.0).unwrap()).unwrap() / 20.0;
        assert!(max_abs_diff(&mix.unwrap(), &r_all.rate) <= 1e-6);

        // Constant current: 6 steps then 5 equal 11.
        let c = randn(&mut rng, &[4, 9], 0.5, 0.6);
        let (whole, end) =
            lif::const_spikes(&c, 11, &cfg, Some(&LifState::zeros_like(&c).unwrap())).unwrap();
        let (a, sa) = lif::const_spikes(&c, 6, &cfg, None).unwrap();
        let (b, sb) = lif::const_spikes(&c, 5, &cfg, Some(&sa)).unwrap();
        assert_eq!(bits(&Tensor::cat(&[a, b], 0).unwrap()), bits(&whole));
        assert_eq!(bits(&sb.mem), bits(&end.mem));
        let (_, rend) = lif::const_rate(&c, 11, &cfg, None).unwrap();
        assert_eq!(bits(&rend.mem), bits(&end.mem));
    }
}

/// The layer's step, snnTorch style, equals its sequence call; `Module::forward` starts from a
/// zero membrane.
#[test]
fn leaky_steps_equal_the_sequence_call() {
    let cfg = LifConfig::new(0.85).with_threshold(0.6);
    let lif = Leaky::new(&cfg).unwrap();
    let x = randn(&mut SeededRng::new(3), &[12, 5, 7], 0.4, 0.7);
    let seq = lif.forward(&x).unwrap();
    let mut st = lif.zero_state(&x.get(0).unwrap()).unwrap();
    for t in 0..12 {
        let (s, next) = lif.step(&x.get(t).unwrap(), &st).unwrap();
        assert_eq!(bits(&s), bits(&seq.get(t).unwrap()), "step {t}");
        st = next;
    }
    let (_, end) = lif.forward_state(&x, None).unwrap();
    assert_eq!(bits(&st.mem), bits(&end.mem));
}

/// A state of the wrong shape or dtype is a typed error naming it.
#[test]
fn a_mismatched_state_is_an_error() {
    let cfg = LifConfig::default();
    let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    for bad in [
        Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        Tensor::zeros(3, DType::F64, &Device::Cpu).unwrap(),
    ] {
        let e = lif::spikes(&x, &cfg, Some(&LifState { mem: bad })).unwrap_err();
        assert!(e.to_string().contains("lif state"), "{e}");
    }
    let e = lif::const_rate(
        &x,
        4,
        &cfg,
        Some(&LifState::zeros_like(&x.get(0).unwrap()).unwrap()),
    )
    .unwrap_err();
    assert!(e.to_string().contains("[4, 3]"), "{e}");
}
