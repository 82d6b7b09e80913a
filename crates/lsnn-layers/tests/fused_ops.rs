//! The fused row ops (LayerNorm, GELU, masked softmax, cross-entropy) against their candle
//! compositions: forward values and the gradients of every input, in f64 (tight) and f32, on
//! the sequential and the multi-threaded kernel paths.

use candle_core::{DType, Device, Tensor, Var};
use lsnn_layers::{fused, kernel, SeededRng};

fn randn(seed: u64, shape: &[usize], dtype: DType) -> Var {
    Var::from_tensor(
        &SeededRng::new(seed)
            .normal_tensor(shape, 0.0, 1.0, dtype, &Device::Cpu)
            .unwrap(),
    )
    .unwrap()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// |a − b| ≤ tol·max(1, |b|∞), with a message naming `what`.
fn close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let d = max_abs(&(a - b).unwrap());
    let scale = max_abs(b).max(1.0);
    assert!(d <= tol * scale, "{what}: differs by {d} (scale {scale})");
}

/// Runs `f` (fused) and `g` (composed) on `inputs`, compares the outputs, then the gradients of
/// Σ out ⊙ R (R random) with respect to every input.
fn check(
    inputs: &[&Var],
    f: impl Fn(&[Tensor]) -> Tensor,
    g: impl Fn(&[Tensor]) -> Tensor,
    tol: f64,
    what: &str,
) {
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let a = f(&ts);
    let b = g(&ts);
    close(&a, &b, tol, &format!("{what} forward"));
    let r = SeededRng::new(99)
        .normal_tensor(a.dims(), 0.0, 1.0, a.dtype(), &Device::Cpu)
        .unwrap();
    let ga = (&a * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&b * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (i, v) in inputs.iter().enumerate() {
        let x = ga.get(v.as_tensor()).expect("fused gradient");
        let y = gb.get(v.as_tensor()).expect("composed gradient");
        close(x, y, tol, &format!("{what} gradient of input {i}"));
    }
}

fn layer_norm_case(dtype: DType, rows: &[usize], d: usize, tol: f64) {
    let mut shape = rows.to_vec();
    shape.push(d);
    let x = randn(1, &shape, dtype);
    // A non-trivial scale and shift, so their gradients are not the identity's.
    let w = randn(2, &[d], dtype);
    let b = randn(3, &[d], dtype);
    check(
        &[&x, &w, &b],
        |t| fused::layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
        |t| fused::reference::layer_norm(&t[0], &t[1], &t[2], 1e-5).unwrap(),
        tol,
        &format!("layer_norm {dtype:?} {shape:?}"),
    );
}

fn gelu_case(dtype: DType, shape: &[usize], tol: f64) {
    let x = randn(4, shape, dtype);
    check(
        &[&x],
        |t| fused::gelu(&t[0]).unwrap(),
        |t| fused::reference::gelu(&t[0]).unwrap(),
        tol,
        &format!("gelu {dtype:?} {shape:?}"),
    );
}

fn softmax_case(dtype: DType, shape: &[usize], causal: bool, tol: f64) {
    let s = randn(5, shape, dtype);
    check(
        &[&s],
        |t| fused::masked_softmax(&t[0], 0.3, causal).unwrap(),
        |t| fused::reference::masked_softmax(&t[0], 0.3, causal).unwrap(),
        tol,
        &format!("masked_softmax {dtype:?} {shape:?} causal {causal}"),
    );
}

fn cross_entropy_case(dtype: DType, n: usize, v: usize, tol: f64) {
    let x = randn(6, &[n, v], dtype);
    let mut rng = SeededRng::new(7);
    let t: Vec<u32> = (0..n)
        .map(|_| rng.below(std::num::NonZeroU64::new(v as u64).unwrap()) as u32)
        .collect();
    let t = Tensor::from_vec(t, n, &Device::Cpu).unwrap();
    check(
        &[&x],
        |a| fused::cross_entropy_terms(&a[0], &t).unwrap(),
        |a| fused::reference::cross_entropy_terms(&a[0], &t).unwrap(),
        tol,
        &format!("cross_entropy {dtype:?} [{n}, {v}]"),
    );
}

fn norm_act_case(dtype: DType, rows: &[usize], d: usize, order: fused::NormAct, p: f64, tol: f64) {
    let x = randn(16, &[rows, &[d]].concat(), dtype);
    let w = randn(17, &[d], dtype);
    let b = randn(18, &[d], dtype);
    fn drop(p: f64, rng: &mut SeededRng) -> Option<(f64, &mut SeededRng)> {
        (p > 0.0).then_some((p, rng))
    }
    check(
        &[&x, &w, &b],
        |t| {
            let mut rng = SeededRng::new(31);
            fused::norm_act(&t[0], &t[1], &t[2], 1e-5, order, drop(p, &mut rng)).unwrap()
        },
        |t| {
            let mut rng = SeededRng::new(31);
            fused::reference::norm_act(&t[0], &t[1], &t[2], 1e-5, order, drop(p, &mut rng)).unwrap()
        },
        tol,
        &format!("norm_act {order:?} p {p} {dtype:?} {rows:?} × {d}"),
    );
}

/// The fused linear (which takes x with its leading dimensions as they are) against the
/// composed x·Wᵀ + b, for x of rank 1 to 3.
fn linear_case(dtype: DType, lead: &[usize], k: usize, n: usize, tol: f64) {
    let x = randn(22, &[lead, &[k]].concat(), dtype);
    let w = randn(23, &[n, k], dtype);
    let b = randn(24, &[n], dtype);
    check(
        &[&x, &w, &b],
        |t| fused::linear(&t[0], &t[1], &t[2]).unwrap(),
        |t| fused::reference::linear(&t[0], &t[1], &t[2]).unwrap(),
        tol,
        &format!("linear {dtype:?} {lead:?} × {k} → {n}"),
    );
}

fn gated_case(dtype: DType, shape: &[usize], tol: f64) {
    let y = randn(19, shape, dtype);
    let a = randn(20, shape, dtype);
    let x = randn(21, shape, dtype);
    check(
        &[&y, &a, &x],
        |t| fused::gated_residual(&t[0], &t[1], &t[2]).unwrap(),
        |t| fused::reference::gated_residual(&t[0], &t[1], &t[2]).unwrap(),
        tol,
        &format!("gated_residual {dtype:?} {shape:?}"),
    );
}

fn all_cases() {
    for order in [
        fused::NormAct::Norm,
        fused::NormAct::NormThenGelu,
        fused::NormAct::GeluThenNorm,
    ] {
        for p in [0.0, 0.3] {
            norm_act_case(DType::F64, &[7], 9, order, p, 1e-12);
            norm_act_case(DType::F64, &[2, 3], 9, order, p, 1e-12);
            norm_act_case(DType::F32, &[300], 128, order, p, 1e-5);
        }
    }
    for lead in [&[][..], &[5], &[3, 4]] {
        linear_case(DType::F64, lead, 7, 6, 1e-12);
    }
    linear_case(DType::F32, &[8, 40], 96, 64, 1e-5);
    gated_case(DType::F64, &[3, 5, 7], 1e-12);
    gated_case(DType::F32, &[300, 128], 1e-5);
    layer_norm_case(DType::F64, &[7], 5, 1e-12);
    layer_norm_case(DType::F64, &[3, 4], 33, 1e-12);
    layer_norm_case(DType::F32, &[300], 128, 1e-5);
    gelu_case(DType::F64, &[9, 13], 1e-12);
    gelu_case(DType::F32, &[300, 128], 1e-5);
    for causal in [false, true] {
        softmax_case(DType::F64, &[2, 3, 6, 6], causal, 1e-12);
        softmax_case(DType::F32, &[4, 4, 64, 64], causal, 1e-5);
    }
    // Queries that are the last 3 of 7 key positions (a cached stream).
    softmax_case(DType::F64, &[2, 3, 7], true, 1e-12);
    cross_entropy_case(DType::F64, 11, 17, 1e-12);
    cross_entropy_case(DType::F32, 512, 256, 1e-5);
}

#[test]
fn fused_ops_equal_their_compositions_on_one_thread() {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(all_cases);
}

#[test]
fn fused_ops_equal_their_compositions_on_two_threads() {
    // The f32 cases are large enough (≥ 2^15 elements) to split their rows across the pool.
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(all_cases);
}

#[test]
fn kernels_give_the_same_bits_on_any_number_of_threads() {
    // Large enough for every op here to split its rows over a pool of two or more threads.
    let x = randn(8, &[600, 128], DType::F32);
    let w = randn(9, &[128], DType::F32);
    let b = randn(10, &[128], DType::F32);
    let logits = randn(22, &[600, 256], DType::F32);
    let targets = Tensor::from_vec(
        (0..600u32).map(|i| (i * 37) % 256).collect::<Vec<_>>(),
        600,
        &Device::Cpu,
    )
    .unwrap();
    let flat = |t: &Tensor| -> Vec<u32> {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let run = || {
        let mut out = Vec::new();
        for act in [
            fused::NormAct::Norm,
            fused::NormAct::NormThenGelu,
            fused::NormAct::GeluThenNorm,
        ] {
            let mut rng = SeededRng::new(3);
            let y = fused::norm_act(
                x.as_tensor(),
                w.as_tensor(),
                b.as_tensor(),
                1e-5,
                act,
                Some((0.1, &mut rng)),
            )
            .unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            out.push(flat(&y));
            for v in [&x, &w, &b] {
                out.push(flat(g.get(v.as_tensor()).unwrap()));
            }
        }
        let y = fused::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            out.push(flat(g.get(v.as_tensor()).unwrap()));
        }
        let ce = fused::cross_entropy_terms(logits.as_tensor(), &targets).unwrap();
        let g = ce.sum_all().unwrap().backward().unwrap();
        out.push(flat(&ce));
        out.push(flat(g.get(logits.as_tensor()).unwrap()));
        out
    };
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(run)
    };
    // Names the first output whose bits differ (the vectors are too long to print).
    let same = |a: &[Vec<u32>], b: &[Vec<u32>], what: &str| {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let diff = x.iter().zip(y).filter(|(p, q)| p != q).count();
            assert!(
                diff == 0,
                "{what}: output {i} differs in {diff} of {} values",
                x.len()
            );
        }
    };
    let one = on(1);
    // The reductions (dw, db, the cross-entropy sums) add per-piece partial sums; the pieces are
    // fixed by the sizes, so the bits do not depend on the thread count.
    same(&one, &on(2), "one thread against two");
    same(&one, &on(3), "one thread against three");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    same(
        &one,
        &pool.install(|| kernel::sequential(run)),
        "inside `sequential`",
    );
    assert!(kernel::parallel_allowed());
    kernel::sequential(|| assert!(!kernel::parallel_allowed()));
    assert!(kernel::parallel_allowed());
}

#[test]
fn causal_rows_give_zero_weight_to_the_future() {
    let s = randn(11, &[1, 5, 5], DType::F64);
    let p = fused::masked_softmax(s.as_tensor(), 1.0, true).unwrap();
    let v = p.squeeze(0).unwrap().to_vec2::<f64>().unwrap();
    for (i, row) in v.iter().enumerate() {
        let total: f64 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-12, "row {i} sums to {total}");
        for (j, &x) in row.iter().enumerate() {
            if j > i {
                assert_eq!(x, 0.0, "row {i} sees key {j}");
            } else {
                assert!(x > 0.0);
            }
        }
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let dev = &Device::Cpu;
    let x = Tensor::zeros((4, 6), DType::F32, dev).unwrap();
    let w5 = Tensor::ones(5, DType::F32, dev).unwrap();
    let e = fused::layer_norm(&x, &w5, &w5, 1e-5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[6]"), "{e}");
    let scalar = Tensor::new(1f32, dev).unwrap();
    assert!(fused::layer_norm(&scalar, &w5, &w5, 1e-5).is_err());
    // Causal attention with more queries than keys has no meaning.
    let e = fused::masked_softmax(
        &Tensor::zeros((2, 5, 3), DType::F32, dev).unwrap(),
        1.0,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("Lk >= Lq"), "{e}");
    assert!(
        fused::masked_softmax(&Tensor::zeros(3, DType::F32, dev).unwrap(), 1.0, false).is_err()
    );
    let t = Tensor::new(&[0u32, 6, 1, 2], dev).unwrap();
    let e = fused::cross_entropy_terms(&x, &t).unwrap_err().to_string();
    assert!(e.contains("target 6") && e.contains("0..6"), "{e}");
    // Ids that a cast to u32 would wrap into the range are refused before the cast.
    for bad in [(1i64 << 32) + 3, -1] {
        let t = Tensor::new(&[0i64, bad, 1, 2], dev).unwrap();
        let e = fused::cross_entropy_terms(&x, &t).unwrap_err().to_string();
        assert!(e.contains(&format!("target {bad} at row 1")), "{e}");
    }
    let short = Tensor::new(&[0u32, 1], dev).unwrap();
    assert!(fused::cross_entropy_terms(&x, &short).is_err());
    let float_targets = Tensor::zeros(4, DType::F32, dev).unwrap();
    assert!(fused::cross_entropy_terms(&x, &float_targets).is_err());
    let order = fused::NormAct::NormThenGelu;
    let e = fused::norm_act(&x, &w5, &w5, 1e-5, order, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[6]"), "{e}");
    let w6 = Tensor::ones(6, DType::F32, dev).unwrap();
    let mut rng = SeededRng::new(1);
    let e = fused::norm_act(&x, &w6, &w6, 1e-5, order, Some((1.5, &mut rng)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[0, 1)"), "{e}");
    let e = fused::gated_residual(&x, &x, &x.t().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("one shape"), "{e}");
}

#[test]
fn dropout_drops_at_its_rate_scales_the_rest_and_masks_the_gradient() {
    let n = 1 << 20;
    let x = Var::from_tensor(&Tensor::ones(n, DType::F32, &Device::Cpu).unwrap()).unwrap();
    for p in [0.1, 0.2, 0.5] {
        let mut rng = SeededRng::new(12);
        let y = fused::dropout(x.as_tensor(), p, &mut rng).unwrap();
        let v = y.to_vec1::<f32>().unwrap();
        let scale = (1.0 / (1.0 - p)) as f32;
        let dropped = v.iter().filter(|&&a| a == 0.0).count();
        assert!(v.iter().all(|&a| a == 0.0 || a == scale));
        // The binomial standard deviation is below 5e-4 here; allow 5 of them.
        let rate = dropped as f64 / n as f64;
        assert!((rate - p).abs() < 2.5e-3, "p {p}: dropped {rate}");
        // The same draws as the mask tensor of the composed path.
        let mask = SeededRng::new(12)
            .dropout_mask(x.shape(), p, DType::F32, &Device::Cpu)
            .unwrap();
        assert_eq!(v, mask.to_vec1::<f32>().unwrap());
        let r = SeededRng::new(13)
            .normal_tensor(n, 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap();
        let g = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap();
        let want = (&r * &mask).unwrap();
        assert_eq!(gx.to_vec1::<f32>().unwrap(), want.to_vec1::<f32>().unwrap());
    }
    // p = 0 is the identity and draws nothing.
    let mut rng = SeededRng::new(1);
    let same = fused::dropout(x.as_tensor(), 0.0, &mut rng).unwrap();
    assert_eq!(rng, SeededRng::new(1));
    assert_eq!(
        same.to_vec1::<f32>().unwrap(),
        x.as_tensor().to_vec1::<f32>().unwrap()
    );
    for bad in [1.0, -0.1, f64::NAN] {
        let e = fused::dropout(x.as_tensor(), bad, &mut rng)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[0, 1)"), "{e}");
    }
}

#[test]
fn seed_back_propagates_the_given_gradient() {
    let x = randn(14, &[5, 7], DType::F64);
    let g = SeededRng::new(15)
        .normal_tensor((5, 7), 0.0, 1.0, DType::F64, &Device::Cpu)
        .unwrap();
    let y = (x.as_tensor().tanh().unwrap() * 3.0).unwrap();
    let got = fused::seed(&y, &g).unwrap().backward().unwrap();
    let want = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
    close(
        got.get(x.as_tensor()).unwrap(),
        want.get(x.as_tensor()).unwrap(),
        1e-12,
        "seed",
    );
    assert!(fused::seed(&y, &g.t().unwrap()).is_err());
}
