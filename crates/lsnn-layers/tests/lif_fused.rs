//! The fused LIF custom ops against the per-step reference composition (bit for bit in forward,
//! 1e-5 relative in gradients) and on bad input; the independent f64 BPTT is `lif_bptt.rs`'s.

use candle_core::{DType, Device, Tensor, Var};
use common::{Form, FORMS, RESETS, SURROGATES};
use lsnn_layers::kernel;
use lsnn_layers::lif::{self, reference, LifConfig, Surrogate};
use lsnn_layers::{LayerError, SeededRng};
use proptest::prelude::*;

mod common;

fn randn(rng: &mut SeededRng, dims: &[usize], mean: f64, std: f64, dtype: DType) -> Tensor {
    rng.normal_tensor(dims, mean, std, dtype, &Device::Cpu)
        .unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Asserts |a − b| ≤ 1e-5·max(1, |b|) elementwise; returns a description of the first miss.
fn grads_close(a: &Tensor, b: &Tensor) -> std::result::Result<(), String> {
    if a.dims() != b.dims() {
        return Err(format!("shapes {:?} vs {:?}", a.dims(), b.dims()));
    }
    for (i, (x, y)) in f32s(a).iter().zip(f32s(b)).enumerate() {
        if (x - y).abs() > 1e-5 * y.abs().max(1.0) || !x.is_finite() {
            return Err(format!("[{i}]: fused {x} vs reference {y}"));
        }
    }
    Ok(())
}

/// Runs one form through the fused op and the reference on the same random input; checks the
/// forward bit for bit and the gradient of sum(output · w) within 1e-5 relative.
fn fused_vs_reference(
    form: Form,
    neurons: &[usize],
    steps: usize,
    cfg: &LifConfig,
    seed: u64,
) -> std::result::Result<f64, String> {
    let mut rng = SeededRng::new(seed);
    let in_dims: Vec<usize> = match form {
        Form::Spikes | Form::RateMem => [&[steps][..], neurons].concat(),
        Form::ConstSpikes | Form::ConstRate => neurons.to_vec(),
    };
    let x = randn(&mut rng, &in_dims, 0.5, 0.8, DType::F32);
    let vf = Var::from_tensor(&x).unwrap();
    let vr = Var::from_tensor(&x).unwrap();
    let (of, or, extra) = match form {
        Form::Spikes => (
            lif::spikes(vf.as_tensor(), cfg, None).map(|r| r.0).unwrap(),
            reference::spikes(vr.as_tensor(), cfg, None)
                .map(|r| r.0)
                .unwrap(),
            None,
        ),
        Form::RateMem => {
            let (rf, mf) = lif::rate(vf.as_tensor(), cfg, None)
                .map(|(r, _)| (r.rate, r.mean_mem))
                .unwrap();
            let (rr, mr) = reference::rate(vr.as_tensor(), cfg, None)
                .map(|(r, _)| (r.rate, r.mean_mem))
                .unwrap();
            (rf, rr, Some((mf, mr)))
        }
        Form::ConstSpikes => (
            lif::const_spikes(vf.as_tensor(), steps, cfg, None)
                .map(|r| r.0)
                .unwrap(),
            reference::const_spikes(vr.as_tensor(), steps, cfg, None)
                .map(|r| r.0)
                .unwrap(),
            None,
        ),
        Form::ConstRate => (
            lif::const_rate(vf.as_tensor(), steps, cfg, None)
                .map(|r| r.0)
                .unwrap(),
            reference::const_rate(vr.as_tensor(), steps, cfg, None)
                .map(|r| r.0)
                .unwrap(),
            None,
        ),
    };
    let out_dims: Vec<usize> = match form {
        Form::Spikes | Form::ConstSpikes => [&[steps][..], neurons].concat(),
        Form::RateMem | Form::ConstRate => neurons.to_vec(),
    };
    if of.dims() != out_dims.as_slice() || or.dims() != out_dims.as_slice() {
        return Err(format!(
            "{form:?}: output shapes {:?} / {:?}, expected {out_dims:?}",
            of.dims(),
            or.dims()
        ));
    }
    if bits(&of) != bits(&or) {
        return Err(format!("{form:?}: forward differs from the reference"));
    }
    if let Some((mf, mr)) = &extra {
        if bits(mf) != bits(mr) {
            return Err(format!(
                "{form:?}: mean membrane differs from the reference"
            ));
        }
    }
    let w = randn(&mut rng, &out_dims, 0.0, 1.0, DType::F32);
    let gf = (&of * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gr = (&or * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gf = gf.get(vf.as_tensor()).ok_or("no fused gradient")?;
    let gr = gr.get(vr.as_tensor()).ok_or("no reference gradient")?;
    grads_close(gf, gr).map_err(|e| format!("{form:?} gradient {e}"))?;
    // The firing rate, so that callers can make sure spikes actually fire.
    Ok(of.mean_all().unwrap().to_scalar::<f32>().unwrap() as f64)
}

fn neuron_dims() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (1usize..=400).prop_map(|a| vec![a]),
        (1usize..=20, 1usize..=20).prop_map(|(a, b)| vec![a, b]),
        (1usize..=7, 1usize..=7, 1usize..=7).prop_map(|(a, b, c)| vec![a, b, c]),
    ]
}

fn beta() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(1.0),
        4 => (0.5f64..1.0).prop_filter("beta in (0.5, 1]", |b| *b > 0.5),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn fused_equals_reference(
        neurons in neuron_dims(),
        steps in 1usize..=12,
        beta in beta(),
        threshold in 0.3f64..=1.5,
        reset in 0usize..3,
        surrogate in 0usize..SURROGATES.len(),
        seed in any::<u64>(),
    ) {
        let cfg = LifConfig {
            beta,
            threshold,
            reset: RESETS[reset],
            surrogate: SURROGATES[surrogate],
            ..LifConfig::default()
        };
        for (k, form) in FORMS.iter().enumerate() {
            let r = fused_vs_reference(*form, &neurons, steps, &cfg, seed.wrapping_add(k as u64));
            prop_assert!(r.is_ok(), "{:?} {:?} T={} {:?}: {}", form, neurons, steps, cfg, r.unwrap_err());
        }
    }
}

/// Every form and reset mode on the same fixed grid of parameters, so that each combination is
/// covered whatever proptest draws, and spikes are seen to fire.
#[test]
fn fused_equals_reference_every_mode() {
    for reset in RESETS {
        for surrogate in SURROGATES {
            let cfg = LifConfig {
                beta: 0.9,
                threshold: 1.0,
                reset,
                surrogate,
                ..LifConfig::default()
            };
            for form in FORMS {
                let rate = fused_vs_reference(form, &[3, 17], 7, &cfg, 11)
                    .unwrap_or_else(|e| panic!("{cfg:?}: {e}"));
                assert!(
                    rate > 0.05 && rate < 0.95,
                    "{form:?} {cfg:?}: firing rate {rate} does not exercise spikes"
                );
            }
        }
    }
}

/// Enough neuron·steps and neurons (not a multiple of the block) for the rayon path.
#[test]
fn fused_equals_reference_on_the_parallel_path() {
    let neurons = [8usize, 2073];
    let steps = 8;
    let n: usize = neurons.iter().product();
    assert!(
        n * steps >= 2 * kernel::threads::PAR_MIN
            && n > 4 * kernel::threads::TASK
            && !n.is_multiple_of(kernel::threads::TASK)
    );
    for reset in RESETS {
        for (k, surrogate) in SURROGATES.into_iter().enumerate() {
            let cfg = LifConfig {
                beta: 0.93,
                threshold: 0.8,
                reset,
                surrogate,
                ..LifConfig::default()
            };
            for form in FORMS {
                let rate = fused_vs_reference(form, &neurons, steps, &cfg, 100 + k as u64)
                    .unwrap_or_else(|e| panic!("parallel {cfg:?}: {e}"));
                assert!(rate > 0.05, "{form:?}: firing rate {rate}");
            }
        }
    }
}

#[test]
fn invalid_lif_input_is_an_error() {
    let x = Tensor::ones(5, DType::F32, &Device::Cpu).unwrap();
    let cfg = LifConfig::default();
    assert!(matches!(
        lif::const_rate(&x, 0, &cfg, None).map(|r| r.0),
        Err(LayerError::Config { .. })
    ));
    assert!(matches!(
        lif::const_spikes(&x, 0, &cfg, None).map(|r| r.0),
        Err(LayerError::Config { .. })
    ));
    assert!(lif::const_rate(&x, 1, &cfg, None).map(|r| r.0).is_ok());

    let bad_beta = LifConfig {
        beta: 1.5,
        ..LifConfig::default()
    };
    match bad_beta.validate() {
        Err(LayerError::Config { field, message }) => {
            assert_eq!(field, "beta");
            assert!(message.contains("1.5"), "{message}");
        }
        other => panic!("beta 1.5 accepted: {other:?}"),
    }
    for beta in [0.0, -0.1, f64::NAN] {
        let c = LifConfig {
            beta,
            ..LifConfig::default()
        };
        assert!(c.validate().is_err(), "beta {beta}");
    }
    assert!(LifConfig {
        beta: 1.0,
        ..LifConfig::default()
    }
    .validate()
    .is_ok());
    for threshold in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let c = LifConfig {
            threshold,
            ..LifConfig::default()
        };
        match c.validate() {
            Err(LayerError::Config { field, .. }) => assert_eq!(field, "spike_threshold"),
            other => panic!("threshold {threshold} accepted: {other:?}"),
        }
    }
    let bad_surrogate = LifConfig {
        surrogate: Surrogate::fast_sigmoid(0.0),
        ..LifConfig::default()
    };
    assert!(bad_surrogate.validate().is_err());
    // Integer currents are refused with a shape/dtype error rather than a panic.
    let ints = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    assert!(matches!(
        lif::spikes(&ints, &cfg, None).map(|r| r.0),
        Err(LayerError::Shape { .. })
    ));
    // A multi-step call needs a time axis with at least one step (T = 0 once returned a rate
    // tensor of shape [5] backed by no data, which panicked when read).
    let scalar = Tensor::new(1f32, &Device::Cpu).unwrap();
    assert!(matches!(
        lif::spikes(&scalar, &cfg, None).map(|r| r.0),
        Err(LayerError::Shape { .. })
    ));
    let no_steps = Tensor::zeros((0, 5), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        lif::rate(&no_steps, &cfg, None).map(|(r, _)| (r.rate, r.mean_mem)),
        Err(LayerError::Shape { .. })
    ));
    assert!(matches!(
        lif::spikes(&no_steps, &cfg, None).map(|r| r.0),
        Err(LayerError::Shape { .. })
    ));
}

/// Spikes with dropout inside the op equal spikes followed by the dropout op, drawn from the same
/// generator state: the same bits forward and the same gradient.
#[test]
fn spikes_with_dropout_inside_equal_spikes_then_dropout() {
    let cfg = LifConfig {
        threshold: 0.5,
        ..LifConfig::default()
    };
    for (dims, dtype) in [
        (vec![37, 11], DType::F32),
        (vec![300, 128], DType::F32),
        (vec![9], DType::F64),
    ] {
        let x = Var::from_tensor(&randn(&mut SeededRng::new(1), &dims, 0.6, 0.5, dtype)).unwrap();
        let run = |fused: bool| {
            let mut rng = SeededRng::new(77);
            let y = if fused {
                lif::const_spikes_dropout(x.as_tensor(), 4, &cfg, 0.2, &mut rng, None)
                    .map(|r| r.0)
                    .unwrap()
            } else {
                let s = lif::const_spikes(x.as_tensor(), 4, &cfg, None)
                    .map(|r| r.0)
                    .unwrap();
                lsnn_layers::fused::dropout(&s, 0.2, &mut rng).unwrap()
            };
            let w = randn(&mut SeededRng::new(2), y.dims(), 0.0, 1.0, dtype);
            let g = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
            (
                y.to_dtype(DType::F64).unwrap(),
                g.get(x.as_tensor()).unwrap().to_dtype(DType::F64).unwrap(),
                rng,
            )
        };
        let (ya, ga, ra) = run(true);
        let (yb, gb, rb) = run(false);
        assert_eq!(f64s(&ya), f64s(&yb), "{dims:?} forward");
        assert_eq!(f64s(&ga), f64s(&gb), "{dims:?} gradient");
        assert_eq!(ra, rb, "{dims:?}: the generators advanced differently");
        // Dropout did drop something, and spikes fired.
        let v = f64s(&ya);
        assert!(v.contains(&0.0) && v.iter().any(|&a| a > 0.0));
    }
    let x = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
    let e = lif::const_spikes_dropout(&x, 2, &cfg, 1.0, &mut SeededRng::new(1), None)
        .map(|r| r.0)
        .unwrap_err();
    assert!(matches!(e, LayerError::Config { .. }), "{e}");
}
