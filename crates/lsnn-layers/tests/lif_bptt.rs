//! The fused LIF ops' gradients against an independent plain-Rust f64 implementation of design
//! §2.1 and its surrogate BPTT, every form, reset and surrogate; the mean membrane against its
//! forward.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{Form, FORMS, RESETS, SURROGATES};
use lsnn_layers::lif::surrogate::{Atan, FastSigmoid, Sigmoid, SpikeRateEscape, Triangular};
use lsnn_layers::lif::{self, LifConfig, ResetMechanism, Surrogate};
use lsnn_layers::SeededRng;

fn f32s(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

// ---------------------------------------------------------------------------------------------
// An independent plain-Rust f64 implementation of design §2.1 and its surrogate BPTT.
// ---------------------------------------------------------------------------------------------

fn surrogate_derivative(s: Surrogate, x: f64) -> f64 {
    match s {
        Surrogate::FastSigmoid(FastSigmoid { slope }) => 1.0 / (slope * x.abs() + 1.0).powi(2),
        Surrogate::Atan(Atan { alpha }) => {
            let y = std::f64::consts::PI / 2.0 * alpha * x;
            alpha / 2.0 / (1.0 + y * y)
        }
        // The logistic's derivative as s(1 − s), a different route from the library's.
        Surrogate::Sigmoid(Sigmoid { slope }) => {
            let s = 1.0 / (1.0 + (-slope * x).exp());
            slope * s * (1.0 - s)
        }
        Surrogate::Triangular(Triangular { width }) => {
            if x.abs() < width {
                (width - x.abs()) / width
            } else {
                0.0
            }
        }
        Surrogate::StraightThrough(_) => 1.0,
        Surrogate::SpikeRateEscape(SpikeRateEscape { beta, slope }) => {
            slope / (beta * x.abs()).exp()
        }
    }
}

/// Membranes U_t and spikes S_t, [T][N], from currents i(t, j).
fn plain_forward(
    cfg: &LifConfig,
    steps: usize,
    n: usize,
    i: impl Fn(usize, usize) -> f64,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let (b, th) = (cfg.beta, cfg.threshold);
    let mut u = vec![0.0f64; n];
    let mut us = Vec::new();
    let mut ss = Vec::new();
    for t in 0..steps {
        for (j, uj) in u.iter_mut().enumerate() {
            let r = if *uj - th > 0.0 { 1.0 } else { 0.0 };
            *uj = match cfg.reset {
                ResetMechanism::Subtract => b * *uj + i(t, j) - r * th,
                ResetMechanism::Zero => b * ((1.0 - r) * *uj) + i(t, j),
                ResetMechanism::None => b * *uj + i(t, j),
            };
        }
        ss.push(
            u.iter()
                .map(|&v| if v - th > 0.0 { 1.0 } else { 0.0 })
                .collect(),
        );
        us.push(u.clone());
    }
    (us, ss)
}

/// dL/dU_t, [T][N], given dL/dS_t: dL/dU_t = dL/dS_t·σ'(U_t − θ) + β·dL/dU_{t+1}, the carried
/// term times (1 − r_{t+1}) = (1 − H(U_t − θ)) for the zero reset.
fn plain_bptt(cfg: &LifConfig, us: &[Vec<f64>], gs: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let steps = us.len();
    let n = us[0].len();
    let th = cfg.threshold;
    let mut du = vec![vec![0.0; n]; steps];
    for t in (0..steps).rev() {
        for j in 0..n {
            let mut carried = 0.0;
            if t + 1 < steps {
                carried = cfg.beta * du[t + 1][j];
                if cfg.reset == ResetMechanism::Zero && us[t][j] - th > 0.0 {
                    carried = 0.0;
                }
            }
            du[t][j] = gs[t][j] * surrogate_derivative(cfg.surrogate, us[t][j] - th) + carried;
        }
    }
    du
}

fn rel_close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn fused_gradients_equal_an_independent_f64_bptt() {
    let dev = Device::Cpu;
    let (steps, n) = (9usize, 37usize);
    for reset in RESETS {
        for surrogate in SURROGATES {
            let cfg = LifConfig {
                beta: 0.85,
                threshold: 0.9,
                reset,
                surrogate,
                ..LifConfig::default()
            };
            let mut rng = SeededRng::new(5);
            let seq: Vec<f64> = (0..steps * n).map(|_| 0.5 + 0.8 * rng.normal()).collect();
            let cst: Vec<f64> = (0..n).map(|_| 0.5 + 0.8 * rng.normal()).collect();
            let w_seq: Vec<f64> = (0..steps * n).map(|_| rng.normal()).collect();
            let w_n: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
            let (us_seq, ss_seq) = plain_forward(&cfg, steps, n, |t, j| seq[t * n + j]);
            let (us_c, ss_c) = plain_forward(&cfg, steps, n, |_, j| cst[j]);
            let fired: f64 = ss_seq.iter().flatten().sum::<f64>() / (steps * n) as f64;
            assert!(fired > 0.1 && fired < 0.9, "{cfg:?}: firing rate {fired}");
            let by_t = |v: &[f64]| -> Vec<Vec<f64>> { v.chunks(n).map(|c| c.to_vec()).collect() };
            // A rate's gradient g reaches every step as g/T.
            let rate_g: Vec<Vec<f64>> = vec![w_n.iter().map(|g| g / steps as f64).collect(); steps];
            let sum_t = |du: &[Vec<f64>]| -> Vec<f64> {
                (0..n).map(|j| du.iter().map(|r| r[j]).sum()).collect()
            };

            let x_seq = Var::from_vec(seq.clone(), (steps, n), &dev).unwrap();
            let x_c = Var::from_vec(cst.clone(), n, &dev).unwrap();
            let w_seq_t = Tensor::from_vec(w_seq.clone(), (steps, n), &dev).unwrap();
            let w_n_t = Tensor::from_vec(w_n.clone(), n, &dev).unwrap();

            let cases: Vec<(Form, Vec<f64>, Vec<f64>)> = FORMS
                .iter()
                .map(|&form| {
                    let (out, var, w, want_out, want_grad) = match form {
                        Form::Spikes => (
                            lif::spikes(x_seq.as_tensor(), &cfg, None)
                                .map(|r| r.0)
                                .unwrap(),
                            &x_seq,
                            &w_seq_t,
                            ss_seq.concat(),
                            plain_bptt(&cfg, &us_seq, &by_t(&w_seq)).concat(),
                        ),
                        Form::RateMem => (
                            lif::rate(x_seq.as_tensor(), &cfg, None)
                                .map(|(r, _)| (r.rate, r.mean_mem))
                                .unwrap()
                                .0,
                            &x_seq,
                            &w_n_t,
                            sum_t(&ss_seq).iter().map(|c| c / steps as f64).collect(),
                            plain_bptt(&cfg, &us_seq, &rate_g).concat(),
                        ),
                        Form::ConstSpikes => (
                            lif::const_spikes(x_c.as_tensor(), steps, &cfg, None)
                                .map(|r| r.0)
                                .unwrap(),
                            &x_c,
                            &w_seq_t,
                            ss_c.concat(),
                            sum_t(&plain_bptt(&cfg, &us_c, &by_t(&w_seq))),
                        ),
                        Form::ConstRate => (
                            lif::const_rate(x_c.as_tensor(), steps, &cfg, None)
                                .map(|r| r.0)
                                .unwrap(),
                            &x_c,
                            &w_n_t,
                            sum_t(&ss_c).iter().map(|c| c / steps as f64).collect(),
                            sum_t(&plain_bptt(&cfg, &us_c, &rate_g)),
                        ),
                    };
                    assert_eq!(out.dtype(), DType::F64);
                    let got = f64s(&out);
                    assert_eq!(got.len(), want_out.len(), "{form:?}");
                    for (k, (a, b)) in got.iter().zip(&want_out).enumerate() {
                        assert!(
                            rel_close(*a, *b, 1e-12),
                            "{form:?} {cfg:?} out[{k}]: {a} vs {b}"
                        );
                    }
                    let g = (&out * w).unwrap().sum_all().unwrap().backward().unwrap();
                    (form, f64s(g.get(var.as_tensor()).unwrap()), want_grad)
                })
                .collect();
            for (form, got, want) in cases {
                assert_eq!(got.len(), want.len(), "{form:?}");
                assert!(
                    want.iter().any(|g| g.abs() > 1e-3),
                    "{form:?}: trivial gradient"
                );
                for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        rel_close(*a, *b, 1e-10),
                        "{form:?} {cfg:?} grad[{k}]: fused {a} vs plain BPTT {b}"
                    );
                }
            }
        }
    }
}

#[test]
fn mean_membrane_is_the_mean_of_u_and_carries_no_gradient() {
    let dev = Device::Cpu;
    let (steps, n) = (6usize, 23usize);
    for reset in RESETS {
        let cfg = LifConfig {
            beta: 0.8,
            threshold: 0.7,
            reset,
            surrogate: Surrogate::default(),
            ..LifConfig::default()
        };
        let mut rng = SeededRng::new(9);
        let seq: Vec<f64> = (0..steps * n).map(|_| 0.5 + 0.8 * rng.normal()).collect();
        let (us, ss) = plain_forward(&cfg, steps, n, |t, j| seq[t * n + j]);
        assert!(ss.iter().flatten().any(|&s| s > 0.0), "spikes fire");
        let want: Vec<f64> = (0..n)
            .map(|j| us.iter().map(|u| u[j]).sum::<f64>() / steps as f64)
            .collect();

        // f64: the mean of the hand-computed U_t.
        let x = Var::from_vec(seq.clone(), (steps, n), &dev).unwrap();
        let (rate, mem) = lif::rate(x.as_tensor(), &cfg, None)
            .map(|(r, _)| (r.rate, r.mean_mem))
            .unwrap();
        for (k, (a, b)) in f64s(&mem).iter().zip(&want).enumerate() {
            assert!(
                rel_close(*a, *b, 1e-12),
                "{reset:?} mean mem[{k}]: {a} vs {b}"
            );
        }
        // f32 too.
        let x32 = x.as_tensor().to_dtype(DType::F32).unwrap();
        let (_, mem32) = lif::rate(&x32, &cfg, None)
            .map(|(r, _)| (r.rate, r.mean_mem))
            .unwrap();
        for (k, (a, b)) in f32s(&mem32).iter().zip(&want).enumerate() {
            assert!(
                rel_close(*a as f64, *b, 1e-5),
                "{reset:?} f32 mean mem[{k}]"
            );
        }

        // A loss of the mean membrane alone gives the current no (or a zero) gradient.
        let w =
            Tensor::from_vec((0..n).map(|_| rng.normal()).collect::<Vec<_>>(), n, &dev).unwrap();
        let mem_loss = (&mem * &w).unwrap().sum_all().unwrap();
        if let Ok(g) = mem_loss.backward() {
            if let Some(g) = g.get(x.as_tensor()) {
                assert!(
                    f64s(g).iter().all(|v| *v == 0.0),
                    "{reset:?}: mean membrane leaks a gradient"
                );
            }
        }
        // Adding the mean membrane to a rate loss leaves the rate's gradient unchanged.
        let rate_loss = (&rate * &w).unwrap().sum_all().unwrap();
        let g_rate = rate_loss.backward().unwrap();
        let g_rate = f64s(g_rate.get(x.as_tensor()).unwrap());
        assert!(g_rate.iter().any(|v| *v != 0.0), "the rate has a gradient");
        let both = (&rate_loss + (&mem * 3.0).unwrap().sum_all().unwrap()).unwrap();
        let g_both = both.backward().unwrap();
        assert_eq!(
            f64s(g_both.get(x.as_tensor()).unwrap()),
            g_rate,
            "{reset:?}"
        );
    }
}
