//! The LIF kernels' AVX2 version against their baseline (SSE2) version: the same Rust arithmetic
//! compiled twice, picked at run time, so every output and every gradient must agree bit for bit
//! — for each surrogate, reset, parameter source (fixed, one shared learned pair, one pair per
//! feature), sequence and constant-current forms, f32 and f64, over blocks that do not fill the
//! vector width. A test binary of its own: the switch is process-wide.

use candle_core::{DType, Device, Tensor, Var};
use lsnn_layers::kernel::{cpu_has_avx2, use_wide_vectors, wide_vectors};
use lsnn_layers::lif::{self, LifConfig, LifParams, LifState, ResetMechanism, Surrogate};
use lsnn_layers::SeededRng;

/// Every output and gradient of one configuration, as raw bits.
fn run(dtype: DType, cfg: &LifConfig, learned: Option<(usize, usize)>) -> Vec<Vec<u64>> {
    let mut rng = SeededRng::new(5);
    let (t, rows, f) = (5, 3, 1_001);
    let mut n = |dims: &[usize], mean: f64| {
        Var::from_tensor(
            &rng.normal_tensor(dims, mean, 0.7, dtype, &Device::Cpu)
                .unwrap(),
        )
        .unwrap()
    };
    let x = n(&[t, rows, f], 0.4);
    let mem0 = n(&[rows, f], 0.2);
    let c = n(&[rows, f], 0.5);
    let params = learned.map(|(pb, pt)| {
        let beta = Var::from_tensor(
            &Tensor::full(0.9, pb, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        let theta = Var::from_tensor(
            &Tensor::full(1.1, pt, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        )
        .unwrap();
        (beta, theta)
    });
    let p = params
        .as_ref()
        .map(|(b, th)| LifParams::new(b.as_tensor().clone(), th.as_tensor().clone()));
    let state = LifState {
        mem: mem0.as_tensor().clone(),
    };
    let (spikes, fin) = lif::spikes_with(x.as_tensor(), cfg, p.as_ref(), Some(&state)).unwrap();
    let (rate, _) = lif::rate_with(x.as_tensor(), cfg, p.as_ref(), None).unwrap();
    let (cs, _) = lif::const_spikes_with(c.as_tensor(), 6, cfg, p.as_ref(), None).unwrap();
    let (cr, _) = lif::const_rate_with(c.as_tensor(), 6, cfg, p.as_ref(), None).unwrap();
    let weights = |s: &Tensor| {
        let k = s.elem_count();
        Tensor::arange(0.0, k as f64, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
            .affine(0.37 / k as f64, -0.1)
            .unwrap()
            .reshape(s.shape())
            .unwrap()
    };
    let loss = [&spikes, &fin.mem, &rate.rate, &cs, &cr]
        .iter()
        .map(|s| (*s * weights(s)).unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap();
    let grads = loss.backward().unwrap();
    let mut leaves = vec![
        x.as_tensor().clone(),
        mem0.as_tensor().clone(),
        c.as_tensor().clone(),
    ];
    if let Some((b, th)) = &params {
        leaves.push(b.as_tensor().clone());
        leaves.push(th.as_tensor().clone());
    }
    let bits = |t: &Tensor| -> Vec<u64> {
        let t = t.flatten_all().unwrap();
        match dtype {
            DType::F32 => t
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits() as u64)
                .collect(),
            _ => t
                .to_vec1::<f64>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect(),
        }
    };
    let mut out: Vec<Vec<u64>> = [&spikes, &fin.mem, &rate.rate, &rate.mean_mem, &cs, &cr]
        .iter()
        .map(|t| bits(t))
        .collect();
    for l in &leaves {
        out.push(bits(grads.get(l).expect("every leaf has a gradient")));
    }
    out
}

#[test]
fn avx2_and_baseline_kernels_agree_bit_for_bit() {
    // The fused kernels even when CI runs the suite with the composed path forced.
    lsnn_layers::kernel::force_composed(false);
    if !cpu_has_avx2() {
        // Nothing to compare on this CPU; the switch must then never claim wide vectors.
        use_wide_vectors(true);
        assert!(!wide_vectors(), "wide vectors on a CPU without AVX2");
        return;
    }
    let mut cases = 0;
    for dtype in [DType::F32, DType::F64] {
        for surrogate in Surrogate::all_defaults() {
            for reset in [
                ResetMechanism::Subtract,
                ResetMechanism::Zero,
                ResetMechanism::None,
            ] {
                for learned in [None, Some((1, 1)), Some((1_001, 1_001))] {
                    let cfg = LifConfig {
                        surrogate,
                        reset,
                        ..LifConfig::default()
                    };
                    use_wide_vectors(true);
                    assert!(wide_vectors());
                    let wide = run(dtype, &cfg, learned);
                    use_wide_vectors(false);
                    assert!(!wide_vectors());
                    let base = run(dtype, &cfg, learned);
                    for (i, (w, b)) in wide.iter().zip(&base).enumerate() {
                        let diff = w.iter().zip(b).filter(|(x, y)| x != y).count();
                        assert_eq!(
                            diff, 0,
                            "{dtype:?} {surrogate:?} {reset:?} {learned:?}: output {i} differs in {diff} of {} values",
                            w.len()
                        );
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 2 * 6 * 3 * 3);
}
