//! The spike encoders against snnTorch 1.0.0's `spikegen` (fixture:
//! scripts/fixtures/gen_spikegen.py): latency and delta exactly, rate fed the same uniform
//! draws exactly; rate from the seeded generator at its expected rate; bad settings refused.

mod common;

use candle_core::{DType, Device, Tensor};
use common::load;
use lsnn_layers::spikegen::{
    delta, latency, rate, rate_from_uniform, DeltaConfig, LatencyConfig, RateConfig,
};
use lsnn_layers::SeededRng;

fn f64s(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn latency_equals_snntorch_in_every_mode() {
    let f = load("spikegen.safetensors");
    let x = &f["x"];
    let cases = [
        ("log", LatencyConfig::new(16)),
        ("log_normalize", LatencyConfig::new(10).with_normalize(true)),
        (
            "log_tau_clip",
            LatencyConfig::new(24)
                .with_threshold_tau(0.01, 2.0)
                .with_clip(true),
        ),
        ("log_first", LatencyConfig::new(16).with_first_spike_time(3)),
        (
            "linear",
            LatencyConfig::new(8)
                .with_linear(true)
                .with_threshold_tau(0.01, 5.0),
        ),
        (
            "linear_normalize",
            LatencyConfig::new(12)
                .with_linear(true)
                .with_normalize(true),
        ),
        (
            "targets",
            LatencyConfig {
                on_target: 0.5,
                off_target: 0.25,
                ..LatencyConfig::new(16).with_threshold_tau(0.05, 1.0)
            },
        ),
    ];
    for (name, cfg) in cases {
        let got = latency(x, &cfg).unwrap();
        let want = &f[&format!("latency_{name}")];
        assert_eq!(got.dims(), want.dims(), "{name}");
        assert_eq!(f64s(&got), f64s(want), "{name}");
    }
    // Every element spikes exactly once in the default code (none is clipped).
    let s = latency(x, &LatencyConfig::new(16)).unwrap();
    assert_eq!(f64s(&s.sum(0).unwrap()), vec![1.0; 64]);
}

#[test]
fn delta_equals_snntorch_in_every_mode() {
    let f = load("spikegen.safetensors");
    let signal = &f["signal"];
    for (name, cfg) in [
        ("default", DeltaConfig::default()),
        ("padding", DeltaConfig::default().with_padding(true)),
        ("off_spike", DeltaConfig::new(0.3).with_off_spike(true)),
        (
            "both",
            DeltaConfig::new(0.05)
                .with_padding(true)
                .with_off_spike(true),
        ),
    ] {
        let got = delta(signal, &cfg).unwrap();
        assert_eq!(f64s(&got), f64s(&f[&format!("delta_{name}")]), "{name}");
    }
}

#[test]
fn rate_fed_snntorchs_draws_gives_its_spikes() {
    let f = load("spikegen.safetensors");
    let cfg = RateConfig::new(12).with_gain(0.8, 0.1);
    let got = rate_from_uniform(&f["x"], &cfg, &f["rate_uniform"]).unwrap();
    assert_eq!(f64s(&got), f64s(&f["rate_spikes"]));
}

#[test]
fn rate_from_the_seeded_generator_fires_at_p_and_repeats() {
    let p: Vec<f32> = (0..16).map(|i| i as f32 / 15.0).collect();
    let x = Tensor::new(p.as_slice(), &Device::Cpu).unwrap();
    let cfg = RateConfig::new(4000).with_first_spike_time(0);
    let s = rate(&x, &cfg, &mut SeededRng::new(9)).unwrap();
    assert_eq!(s.dims(), &[4000, 16]);
    assert_eq!(s.dtype(), DType::F32);
    let means = f64s(&(s.sum(0).unwrap() / 4000.0).unwrap());
    for (m, &pi) in means.iter().zip(&p) {
        // 4 standard deviations of a mean of 4000 Bernoulli draws.
        let sd = (pi as f64 * (1.0 - pi as f64) / 4000.0).sqrt();
        assert!(
            (m - pi as f64).abs() <= 4.0 * sd + 1e-12,
            "p {pi}: rate {m}"
        );
    }
    let again = rate(&x, &cfg, &mut SeededRng::new(9)).unwrap();
    assert_eq!(f64s(&again), f64s(&s), "same seed, same spikes");
    // Silent steps before first_spike_time.
    let late = rate(
        &x,
        &RateConfig::new(10).with_first_spike_time(4),
        &mut SeededRng::new(1),
    )
    .unwrap();
    assert_eq!(
        f64s(&late.narrow(0, 0, 4).unwrap().sum_all().unwrap()),
        vec![0.0]
    );
}

#[test]
fn bad_inputs_are_typed_errors_not_clamps() {
    let x = Tensor::new(&[0.2f32, 1.5], &Device::Cpu).unwrap();
    let e = rate(&x, &RateConfig::new(4), &mut SeededRng::new(0)).unwrap_err();
    assert!(
        e.to_string().contains("element 1") && e.to_string().contains("[0, 1]"),
        "{e}"
    );
    // Saturating is asked for, not silent.
    let s = rate(
        &x,
        &RateConfig::new(4).with_saturate(true),
        &mut SeededRng::new(0),
    )
    .unwrap();
    assert_eq!(f64s(&s.narrow(1, 1, 1).unwrap()), vec![1.0; 4]);
    assert!(
        latency(&x, &LatencyConfig::new(16)).is_err(),
        "data above 1"
    );
    let ok = Tensor::new(&[0.0101f32, 0.9], &Device::Cpu).unwrap(); // ln(101) ≈ 4.6 steps
    let e = latency(&ok, &LatencyConfig::new(4)).unwrap_err();
    assert!(e.to_string().contains("past the last step"), "{e}");
    for cfg in [
        LatencyConfig::new(0),
        LatencyConfig::new(8).with_threshold_tau(0.0, 1.0),
        LatencyConfig::new(8).with_threshold_tau(0.5, f64::NAN),
        LatencyConfig::new(8).with_first_spike_time(8),
    ] {
        assert!(latency(&ok, &cfg).is_err(), "{cfg:?}");
    }
    let nan = Tensor::new(&[f32::NAN, 0.5], &Device::Cpu).unwrap();
    assert!(rate(&nan, &RateConfig::new(2), &mut SeededRng::new(0)).is_err());
    assert!(delta(
        &Tensor::new(1.0f32, &Device::Cpu).unwrap(),
        &DeltaConfig::default()
    )
    .is_err());
    assert!(delta(&x, &DeltaConfig::new(-0.1)).is_err());
    let u = Tensor::new(&[[0.5f32, 1.0]], &Device::Cpu).unwrap();
    let e = rate_from_uniform(
        &x.narrow(0, 0, 2).unwrap(),
        &RateConfig::new(1).with_saturate(true),
        &u,
    )
    .unwrap_err();
    assert!(e.to_string().contains("[0, 1)"), "{e}");
    let ids = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    assert!(
        delta(&ids, &DeltaConfig::default()).is_err(),
        "integer data"
    );
}
