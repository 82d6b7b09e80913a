//! The bf16 matmul (`kernel::bf16`) against an independent reference: candle's own f32 → bf16
//! conversion for the operands and f64 sums for the products, within the rounding bound of
//! f32 accumulation; the AVX-512 BF16 kernel against the portable one bit for bit (where the
//! CPU has it); shapes that fill no tile (m not a multiple of 8, n of 32, odd k), transposed
//! operands, accumulation into C, threads.

use candle_core::{DType, Device, Tensor};
use lsnn_layers::kernel::bf16::{
    bf16_bits, bf16_to_f32, matmul_bf16, matmul_bf16_on, Bf16Kernel, Operand,
};
use proptest::prelude::*;

/// Deterministic values in ±[2^-lo_exp, 2^hi_exp) with random signs and significands.
fn values(len: usize, seed: u64, exps: (i32, i32)) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let sig = 1.0 + (s >> 40) as f32 / (1u64 << 24) as f32;
            let span = (exps.1 - exps.0) as u64;
            let e = exps.0 + ((s >> 8) % span.max(1)) as i32;
            let v = sig * 2f32.powi(e);
            if s & 1 == 0 {
                v
            } else {
                -v
            }
        })
        .collect()
}

/// candle's bf16 rounding of `x` (the `half` crate's), as f64: the reference operand.
fn candle_bf16(x: &[f32]) -> Vec<f64> {
    Tensor::new(x, &Device::Cpu)
        .and_then(|t| t.to_dtype(DType::BF16))
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .expect("candle conversion")
}

struct Case {
    m: usize,
    n: usize,
    k: usize,
    lhs: Vec<f32>,
    rhs: Vec<f32>,
    c0: Vec<f32>,
    lhs_t: bool,
    rhs_t: bool,
}

impl Case {
    fn new(m: usize, n: usize, k: usize, seed: u64, exps: (i32, i32)) -> Self {
        Case {
            m,
            n,
            k,
            lhs: values(m * k, seed, exps),
            rhs: values(k * n, seed ^ 0xA5A5, exps),
            c0: values(m * n, seed ^ 0x5A5A, exps),
            lhs_t: seed & 2 == 0,
            rhs_t: seed & 4 == 0,
        }
    }

    /// lhs as stored (row-major m × k, or its transpose stored row-major k × m).
    fn lhs(&self) -> Operand<'_> {
        if self.lhs_t {
            Operand::transposed(&self.lhs, self.m)
        } else {
            Operand::row_major(&self.lhs, self.k)
        }
    }

    fn rhs(&self) -> Operand<'_> {
        if self.rhs_t {
            Operand::transposed(&self.rhs, self.k)
        } else {
            Operand::row_major(&self.rhs, self.n)
        }
    }

    fn at(op: &Operand<'_>, data: &[f64], r: usize, c: usize) -> f64 {
        data[r * op.row_stride + c * op.col_stride]
    }

    fn run(&self, kernel: Bf16Kernel, accumulate: bool, parallel: bool) -> Vec<f32> {
        let mut dst = self.c0.clone();
        matmul_bf16_on(
            kernel,
            (self.m, self.n, self.k),
            &mut dst,
            accumulate,
            self.lhs(),
            self.rhs(),
            parallel,
        )
        .expect("valid product");
        dst
    }

    /// Checks `got` against f64 sums of candle-rounded operands: each element within the bound
    /// of 2·⌈k/2⌉ f32 roundings of its running sum.
    fn check(&self, got: &[f32], accumulate: bool) -> Result<(), TestCaseError> {
        let (a, b) = (candle_bf16(&self.lhs), candle_bf16(&self.rhs));
        let (la, rb) = (self.lhs(), self.rhs());
        let u = 2f64.powi(-24);
        let steps = 2 * self.k.div_ceil(2) + 1;
        for i in 0..self.m {
            for j in 0..self.n {
                let c = if accumulate {
                    f64::from(self.c0[i * self.n + j])
                } else {
                    0.0
                };
                let (mut sum, mut mag) = (c, c.abs());
                for p in 0..self.k {
                    let t = Self::at(&la, &a, i, p) * Self::at(&rb, &b, p, j);
                    sum += t;
                    mag += t.abs();
                }
                let g = f64::from(got[i * self.n + j]);
                let bound = steps as f64 * u * mag + 1e-37;
                prop_assert!(
                    (g - sum).abs() <= bound,
                    "({i}, {j}) of {}x{}x{}: got {g:e}, reference {sum:e}, bound {bound:e}",
                    self.m,
                    self.n,
                    self.k
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_f64_reference_on_every_shape(
        m in 1usize..20, n in 1usize..70, k in 0usize..41, seed in any::<u64>(), acc in any::<bool>()
    ) {
        let case = Case::new(m, n, k, seed, (-3, 3));
        for kernel in [Bf16Kernel::Portable, Bf16Kernel::active()] {
            let got = case.run(kernel, acc, false);
            case.check(&got, acc)?;
        }
    }

    #[test]
    fn the_kernels_give_the_same_bits(
        m in 1usize..20, n in 1usize..70, k in 0usize..41, seed in any::<u64>(), acc in any::<bool>()
    ) {
        let case = Case::new(m, n, k, seed, (-8, 8));
        let portable = case.run(Bf16Kernel::Portable, acc, false);
        if Bf16Kernel::Avx512Bf16.available() {
            let wide = case.run(Bf16Kernel::Avx512Bf16, acc, false);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&portable), bits(&wide));
        }
    }
}

/// Without the instructions the AVX-512 kernel is refused with a typed error; with them, both
/// kernels agree bit for bit in the underflow range too, where the flush to zero decides.
#[test]
fn flush_to_zero_matches_the_instructions() {
    if !Bf16Kernel::Avx512Bf16.available() {
        let case = Case::new(2, 2, 2, 1, (0, 1));
        let mut dst = vec![0.0; 4];
        let err = matmul_bf16_on(
            Bf16Kernel::Avx512Bf16,
            (2, 2, 2),
            &mut dst,
            false,
            case.lhs(),
            case.rhs(),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("AVX-512 BF16"), "{err}");
        assert_eq!(Bf16Kernel::active(), Bf16Kernel::Portable);
        return;
    }
    let (mut flushed, mut nonzero) = (0, 0);
    for seed in 0..40u64 {
        // Products between 2^-140 and 2^-112, summed from zero: running sums in and around the
        // subnormal range, where the flush to zero decides.
        let exps = if seed < 20 { (-70, -62) } else { (-66, -56) };
        let case = Case::new(9, 33, 17, seed, exps);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let p = bits(case.run(Bf16Kernel::Portable, false, false));
        let w = bits(case.run(Bf16Kernel::Avx512Bf16, false, false));
        assert_eq!(p, w, "seed {seed}");
        flushed += p.iter().filter(|&&b| b & 0x7FFF_FFFF == 0).count();
        nonzero += p.iter().filter(|&&b| b & 0x7FFF_FFFF != 0).count();
    }
    assert!(
        flushed > 100 && nonzero > 100,
        "{flushed} flushed, {nonzero} not"
    );
}

#[test]
fn threads_do_not_change_the_bits() {
    let case = Case::new(67, 300, 129, 7, (-2, 2));
    for kernel in [Bf16Kernel::Portable, Bf16Kernel::active()] {
        let one = case.run(kernel, true, false);
        let many = case.run(kernel, true, true);
        assert_eq!(
            one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            many.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
    let got = case.run(Bf16Kernel::active(), true, true);
    case.check(&got, true).unwrap();
}

#[test]
fn conversion_agrees_with_candle() {
    let x = values(100_000, 99, (-40, 40));
    let theirs = candle_bf16(&x);
    for (v, t) in x.iter().zip(theirs) {
        assert_eq!(f64::from(bf16_to_f32(bf16_bits(*v))), t, "{v:e}");
    }
}

#[test]
fn bad_sizes_are_typed_errors() {
    let a = vec![1.0f32; 6];
    let mut dst = vec![0.0f32; 3];
    // dst needs 2 x 2.
    let e = matmul_bf16(
        (2, 2, 3),
        &mut dst,
        false,
        Operand::row_major(&a, 3),
        Operand::row_major(&a, 2),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("expected at least 2 x 2 = 4"), "{e}");
    // rhs 3 x 4 does not fit in 6 elements.
    let mut dst = vec![5.0f32; 8];
    let e = matmul_bf16(
        (2, 4, 3),
        &mut dst,
        false,
        Operand::row_major(&a, 3),
        Operand::row_major(&a, 4),
        false,
    )
    .unwrap_err();
    assert!(e.to_string().contains("reaches past the 6 elements"), "{e}");
    // Nothing was written by the refused calls.
    assert!(dst.iter().all(|&v| v == 5.0));
}

/// `t` rounded to bf16 by candle, as f64.
fn rounded(t: &Tensor) -> Tensor {
    t.to_dtype(DType::BF16)
        .and_then(|t| t.to_dtype(DType::F64))
        .unwrap()
}

/// Asserts |got − want| ≤ (steps + 1)·2⁻²⁴·mag + 1e-30 elementwise, where `mag` is the sum of
/// the magnitudes of the terms.
fn within(got: &Tensor, want: &Tensor, mag: &Tensor, steps: usize, what: &str) {
    let g = got.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
    let (w, m) = (want.flatten_all().unwrap(), mag.flatten_all().unwrap());
    let (g, w, m) = (
        g.to_vec1::<f64>().unwrap(),
        w.to_vec1::<f64>().unwrap(),
        m.to_vec1::<f64>().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "{what}");
    for (i, ((g, w), m)) in g.iter().zip(&w).zip(&m).enumerate() {
        let bound = (steps + 1) as f64 * 2f64.powi(-24) * m + 1e-30;
        assert!(
            (g - w).abs() <= bound,
            "{what}[{i}]: {g:e} vs {w:e} (bound {bound:e})"
        );
    }
}

/// The fused linear inside `with_matmul_precision(Bf16)`: forward and both gradients are the
/// products of bf16-rounded operands summed in f32 (against f64 products of candle-rounded
/// operands), the bias and its gradient stay f32; outside the scope the same op is f32 again,
/// bit for bit what it was before the scope. Backward runs outside the scope: the op keeps the
/// precision it ran forward in.
#[test]
fn the_fused_linear_in_bf16_scope() {
    use candle_core::Var;
    use lsnn_layers::fused::linear;
    use lsnn_layers::kernel::{
        force_composed, matmul_precision, with_matmul_precision, MatmulPrecision,
    };
    use lsnn_layers::SeededRng;
    // The fused op itself, also in CI's LSNN_FORCE_COMPOSED=1 pass (whose composed linear is
    // candle's f32 matmul, which no precision changes).
    force_composed(false);
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(3);
    let (b, l, k, n) = (3, 5, 37, 45);
    let x = Var::from_tensor(
        &rng.normal_tensor((b, l, k), 0.0, 1.0, DType::F32, &dev)
            .unwrap(),
    )
    .unwrap();
    let w = Var::from_tensor(
        &rng.normal_tensor((n, k), 0.0, 0.3, DType::F32, &dev)
            .unwrap(),
    )
    .unwrap();
    let bias =
        Var::from_tensor(&rng.normal_tensor(n, 0.0, 0.5, DType::F32, &dev).unwrap()).unwrap();
    let g = rng
        .normal_tensor((b, l, n), 0.0, 1.0, DType::F32, &dev)
        .unwrap();
    let forward = || linear(x.as_tensor(), w.as_tensor(), bias.as_tensor()).unwrap();
    let backward = |y: Tensor| {
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let get = |v: &Var| grads.get(v.as_tensor()).unwrap().clone();
        (y, get(&x), get(&w), get(&bias))
    };
    let run = || backward(forward());
    let bits = |t: &Tensor| {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect::<Vec<_>>()
    };
    let before = run();
    let mixed = backward(with_matmul_precision(MatmulPrecision::Bf16, forward));
    assert_eq!(matmul_precision(), MatmulPrecision::F32, "the scope ended");
    let after = run();
    for (a, b) in [
        (&before.0, &after.0),
        (&before.1, &after.1),
        (&before.2, &after.2),
    ] {
        assert_eq!(bits(a), bits(b));
    }
    // bf16 changes the products (by about 2^-9 relative), so the f32 and mixed runs differ.
    assert_ne!(bits(&before.0), bits(&mixed.0));

    let f64_of = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
    let (xr, wr, gr) = (rounded(x.as_tensor()), rounded(w.as_tensor()), rounded(&g));
    let (xa, wa, ga) = (xr.abs().unwrap(), wr.abs().unwrap(), gr.abs().unwrap());
    let x2 = |t: &Tensor, c: usize| t.reshape((b * l, c)).unwrap();
    let steps = |len: usize| 2 * len.div_ceil(2) + 1;
    // y = x·Wᵀ + b.
    let bias64 = f64_of(bias.as_tensor());
    let y_ref = x2(&xr, k)
        .matmul(&wr.t().unwrap())
        .unwrap()
        .broadcast_add(&bias64)
        .unwrap();
    let y_mag = x2(&xa, k)
        .matmul(&wa.t().unwrap())
        .unwrap()
        .broadcast_add(&bias64.abs().unwrap())
        .unwrap();
    within(&mixed.0, &y_ref, &y_mag, steps(k), "y");
    // dx = dy·W.
    let dx_ref = x2(&gr, n).matmul(&wr).unwrap();
    let dx_mag = x2(&ga, n).matmul(&wa).unwrap();
    within(&mixed.1, &dx_ref, &dx_mag, steps(n), "dx");
    // dW = dyᵀ·x over all b·l rows.
    let dw_ref = x2(&gr, n).t().unwrap().matmul(&x2(&xr, k)).unwrap();
    let dw_mag = x2(&ga, n).t().unwrap().matmul(&x2(&xa, k)).unwrap();
    within(&mixed.2, &dw_ref, &dw_mag, steps(b * l), "dW");
    // db = Σ dy, in f32 as before: the same bits as the f32 run.
    assert_eq!(bits(&mixed.3), bits(&before.3));
}

/// Operands under strides that are neither 1 (every other element of a wider buffer: the
/// packing's element-by-element path) give the bits of the same operands stored compactly.
#[test]
fn strided_operands_give_the_compact_bits() {
    let (m, n, k) = (13, 41, 23);
    let case = Case::new(m, n, k, 11, (-2, 2));
    // lhs row-major m × k, spread to every other element; rhs k × n likewise.
    let spread = |v: &[f32]| v.iter().flat_map(|&x| [x, 99.0]).collect::<Vec<f32>>();
    let (ls, rs) = (spread(&case.lhs), spread(&case.rhs));
    let lhs = Operand {
        data: &ls,
        row_stride: 2 * k,
        col_stride: 2,
    };
    let rhs = Operand {
        data: &rs,
        row_stride: 2 * n,
        col_stride: 2,
    };
    let compact = Case {
        lhs_t: false,
        rhs_t: false,
        ..case
    };
    for kernel in [Bf16Kernel::Portable, Bf16Kernel::active()] {
        let want = compact.run(kernel, true, false);
        let mut got = compact.c0.clone();
        matmul_bf16_on(kernel, (m, n, k), &mut got, true, lhs, rhs, false).unwrap();
        assert_eq!(
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}
