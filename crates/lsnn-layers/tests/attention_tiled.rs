//! The tiled attention op (`fused::attention`, `fused::attention_packed`) against the composed
//! attention it replaces (`fused::reference`): output, log-sum-exp and the gradients of q, k and
//! v, in f64 (tight) and f32, causal and not, with lengths that are and are not multiples of the
//! tile, queries shorter than keys, and on the sequential and multi-threaded paths.

use candle_core::{DType, Device, Tensor, Var, D};
use lsnn_layers::{fused, kernel, SeededRng};
use proptest::prelude::*;

fn randn(seed: u64, shape: &[usize], dtype: DType, std: f64) -> Var {
    Var::from_tensor(
        &SeededRng::new(seed)
            .normal_tensor(shape, 0.0, std, dtype, &Device::Cpu)
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

/// |a − b|∞ ≤ tol·max(1, |b|∞).
fn close(a: &Tensor, b: &Tensor, tol: f64, what: &str) -> Result<(), String> {
    if a.dims() != b.dims() {
        return Err(format!("{what}: shapes {:?} vs {:?}", a.dims(), b.dims()));
    }
    let d = max_abs(&(a - b).unwrap());
    let scale = max_abs(b).max(1.0);
    match d <= tol * scale {
        true => Ok(()),
        false => Err(format!("{what}: differs by {d} (scale {scale}, tol {tol})")),
    }
}

/// One comparison: `lead` leading dimensions, Lq, Lk, dh; the packed output (so the
/// log-sum-exp's gradient takes part) and its gradients under a random cotangent.
#[allow(clippy::too_many_arguments)]
fn case(
    dtype: DType,
    lead: &[usize],
    lq: usize,
    lk: usize,
    dh: usize,
    causal: bool,
    std: f64,
    tol: f64,
) -> Result<(), String> {
    let what = format!("{dtype:?} lead {lead:?} Lq {lq} Lk {lk} dh {dh} causal {causal}");
    let shape = |l: usize| [lead, &[l, dh]].concat();
    let (q, k, v) = (
        randn(1, &shape(lq), dtype, std),
        randn(2, &shape(lk), dtype, std),
        randn(3, &shape(lk), dtype, 1.0),
    );
    let scale = 1.0 / (dh as f64).sqrt();
    let a = fused::attention_packed(&q, &k, &v, scale, causal).map_err(|e| e.to_string())?;
    let b = fused::reference::attention_packed(&q, &k, &v, scale, causal).unwrap();
    close(&a, &b, tol, &format!("{what}: packed forward"))?;
    let plain = fused::attention(&q, &k, &v, scale, causal).unwrap();
    close(
        &plain,
        &b.narrow(D::Minus1, 0, dh).unwrap(),
        tol,
        &format!("{what}: forward"),
    )?;
    let r = SeededRng::new(9)
        .normal_tensor(a.dims(), 0.0, 1.0, dtype, &Device::Cpu)
        .unwrap();
    let ga = (&a * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let gb = (&b * &r).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        close(
            ga.get(x.as_tensor()).expect("tiled gradient"),
            gb.get(x.as_tensor()).expect("reference gradient"),
            tol,
            &format!("{what}: gradient of {name}"),
        )?;
    }
    Ok(())
}

#[test]
fn equals_the_composed_op_in_f64_across_tile_boundaries() {
    for causal in [true, false] {
        for (lq, lk) in [
            (1, 1),
            (5, 5),
            (64, 64),
            (65, 65),
            (130, 130),
            (7, 150),
            (64, 200),
        ] {
            for dh in [1, 8, 33] {
                case(DType::F64, &[2, 3], lq, lk, dh, causal, 1.5, 1e-10).unwrap();
            }
        }
    }
    // Without the mask the queries may outnumber the keys.
    for (lq, lk) in [(20, 7), (150, 7), (130, 65)] {
        case(DType::F64, &[2], lq, lk, 8, false, 1.5, 1e-10).unwrap();
    }
}

#[test]
fn equals_the_composed_op_in_f32() {
    for causal in [true, false] {
        for (lq, lk) in [(64, 64), (100, 100), (17, 129)] {
            case(DType::F32, &[2, 4], lq, lk, 32, causal, 1.0, 2e-5).unwrap();
        }
    }
}

/// Large scores (spread 4 after scaling) make the running maximum move between tiles, which the
/// output's correction terms must undo exactly.
#[test]
fn equals_the_composed_op_with_peaked_scores() {
    case(DType::F64, &[3], 200, 200, 16, true, 4.0, 1e-10).unwrap();
    case(DType::F32, &[3], 200, 200, 16, true, 4.0, 1e-4).unwrap();
}

#[test]
fn one_thread_and_four_give_the_same_bits() {
    let dims = [4, 2, 150, 16];
    let (q, k, v) = (
        randn(4, &dims, DType::F32, 1.0),
        randn(5, &dims, DType::F32, 1.0),
        randn(6, &dims, DType::F32, 1.0),
    );
    let run = || {
        let y = fused::attention(&q, &k, &v, 0.25, true).unwrap();
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut all = flat(&y);
        for x in [&q, &k, &v] {
            all.extend(flat(g.get(x.as_tensor()).unwrap()));
        }
        all
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let many = pool.install(run);
    let one = kernel::sequential(run);
    assert!(many
        .iter()
        .zip(&one)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn the_composed_path_takes_the_reference() {
    let dims = [2, 40, 8];
    let (q, k, v) = (
        randn(7, &dims, DType::F64, 1.0),
        randn(8, &dims, DType::F64, 1.0),
        randn(9, &dims, DType::F64, 1.0),
    );
    let forced = kernel::composed(|| fused::attention(&q, &k, &v, 0.5, true).unwrap());
    let reference =
        kernel::composed(|| fused::reference::attention(&q, &k, &v, 0.5, true).unwrap());
    close(&forced, &reference, 0.0, "composed path").unwrap();
}

#[test]
fn bad_shapes_are_errors() {
    let dev = Device::Cpu;
    let t = |d: &[usize]| Tensor::zeros(d, DType::F32, &dev).unwrap();
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], bool, &'a str);
    let cases: [Case; 6] = [
        (&[2, 5, 4], &[2, 5, 3], &[2, 5, 3], false, "agree"),
        (&[2, 5, 4], &[3, 5, 4], &[3, 5, 4], false, "agree"),
        (&[2, 5, 4], &[2, 5, 4], &[2, 6, 4], false, "k's shape"),
        (&[2, 6, 4], &[2, 5, 4], &[2, 5, 4], true, "Lk >= Lq"),
        (&[4], &[4], &[4], false, "rank"),
        (&[2, 0, 4], &[2, 5, 4], &[2, 5, 4], false, "empty"),
    ];
    for (q, k, v, causal, says) in cases {
        let e = fused::attention(&t(q), &t(k), &t(v), 1.0, causal)
            .expect_err("a bad shape must be an error")
            .to_string();
        assert!(e.contains(says), "{q:?} {k:?} {v:?}: {e}");
    }
    let q64 = Tensor::zeros((2, 5, 4), DType::F64, &dev).unwrap();
    let e = fused::attention(&q64, &t(&[2, 5, 4]), &t(&[2, 5, 4]), 1.0, false).unwrap_err();
    assert!(e.to_string().contains("dtype"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn equals_the_composed_op_for_any_shape(
        bh in 1usize..4,
        lq in 1usize..140,
        extra in 0usize..70,
        dh in 1usize..40,
        causal in any::<bool>(),
        std in 0.1f64..3.0,
    ) {
        let r = case(DType::F64, &[bh], lq, lq + extra, dh, causal, std, 1e-10);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Streaming past 128 cached keys takes the tiled op (`attention_kernel: "auto"`): position by
/// position it equals the sequence call, which tiles too.
#[test]
fn streaming_past_the_auto_threshold_equals_the_sequence_call() {
    use candle_core::Module;
    use candle_nn::VarMap;
    use lsnn_layers::attention::{AttentionConfig, AttentionKernel, MultiHeadSpikingAttention};
    use lsnn_layers::SeededInit;
    let l = AttentionKernel::AUTO_TILED_ABOVE + 12;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(3), DType::F32, &Device::Cpu);
    let att = MultiHeadSpikingAttention::new(&AttentionConfig::new(8, 2).with_spike_steps(4), vb)
        .unwrap();
    let x = SeededRng::new(4)
        .normal_tensor((2, l, 8), 0.5, 1.0, DType::F32, &Device::Cpu)
        .unwrap();
    let whole = att.forward(&x).unwrap();
    let mut cache = att.new_cache(2, l, DType::F32, &Device::Cpu).unwrap();
    for t in [0, 127, 128, 129, l - 1] {
        // Fill the cache up to t, then compare position t.
        while cache.len() < t {
            let xt = x.narrow(1, cache.len(), 1).unwrap().squeeze(1).unwrap();
            att.step(&xt, &mut cache).unwrap();
        }
        let xt = x.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        let got = att.step(&xt, &mut cache).unwrap();
        let want = whole.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        close(&got, &want, 1e-5, &format!("position {t}")).unwrap();
    }
}

/// A past needs causal attention: with `causal: false` it is a typed error.
#[test]
fn a_past_for_non_causal_attention_is_refused() {
    use candle_nn::VarMap;
    use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
    use lsnn_layers::SeededInit;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(3), DType::F32, &Device::Cpu);
    let att =
        MultiHeadSpikingAttention::new(&AttentionConfig::new(8, 2).with_causal(false), vb).unwrap();
    let x = Tensor::ones((1, 4, 8), DType::F32, &Device::Cpu).unwrap();
    let (_, past) = att.forward_with_past(&x, None).unwrap();
    let e = att
        .forward_with_past(&x, Some(&past))
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-causal"), "{e}");
}
