//! The one f32/f64 dispatch of the CPU kernels, and the element trait they are written for.

use candle_core::WithDType;

/// Runs `$body` with `$t` bound to the element type of `$dt` (f32 or f64) and wraps the `Vec`
/// it returns in the matching `CpuStorage`; other dtypes are an error naming the op. With
/// `map` instead of a storage the body's value is returned as it is (for kernels returning
/// several buffers).
macro_rules! float_kernel {
    ($name:expr, $dt:expr, |$t:ident| $body:expr) => {
        match $dt {
            candle_core::DType::F32 => {
                type $t = f32;
                candle_core::CpuStorage::F32($body)
            }
            candle_core::DType::F64 => {
                type $t = f64;
                candle_core::CpuStorage::F64($body)
            }
            dt => candle_core::bail!("{}: dtype {dt:?} not supported, expected f32 or f64", $name),
        }
    };
    (map $name:expr, $dt:expr, |$t:ident| $body:expr) => {
        match $dt {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F64 => {
                type $t = f64;
                $body
            }
            dt => candle_core::bail!("{}: dtype {dt:?} not supported, expected f32 or f64", $name),
        }
    };
}

pub(crate) use float_kernel;

/// The floating-point element types the CPU kernels are written for (f32, f64), with the
/// transcendental functions they need.
pub(crate) trait Real: WithDType {
    fn exp_(self) -> Self;
    /// e^x for x ≤ 0. f32: [`exp_poly_f32`], branch-free and call-free so that the loops
    /// using it vectorise; f64: std's `exp` (a libm call, so those loops stay scalar; the f64
    /// kernels are the ones tested against independent references at 1e−9, where libm's
    /// accuracy is what is wanted).
    fn exp_nonpositive(self) -> Self;
    fn ln_(self) -> Self;
    fn sqrt_(self) -> Self;
    fn abs_(self) -> Self;
    /// σ(x) = 1 / (1 + e^{−x}), never overflowing. f32: [`sigmoid_f32`], all in f32 lanes and
    /// branch-free so that loops over it vectorise twice as wide as through the f64 exp (within
    /// 2 ulp); f64: from std's `exp`.
    fn sigmoid_(self) -> Self;
    /// tanh(x). f32: [`tanh_poly_f32`], branch-free and call-free (computed in f64 lanes and
    /// rounded once, so as accurate as libm's `tanhf`) so that loops over slices using it
    /// vectorise; f64: std's `tanh`.
    fn tanh_lanes(self) -> Self;
    /// σ(x) for loops that must match a reference closely. f32: [`sigmoid_lanes_f32`], in f64
    /// lanes and rounded once (branch-free, vectorises); f64: from std's `exp`.
    fn sigmoid_lanes(self) -> Self;
    /// Exact (erf) GELU x·Φ(x) and its slope Φ(x) + x·φ(x), with Φ(x) = (1 + erf(x/√2))/2.
    /// f32: [`gelu_lanes_f32`], in f64 lanes and rounded once (branch-free, call-free, so loops
    /// over slices vectorise); f64: from libm's `erf` and std's `exp`.
    fn gelu_and_slope(self) -> (Self, Self);
    /// The CPU storage holding `v`.
    fn storage(v: Vec<Self>) -> candle_core::CpuStorage;
}

/// `Real` for a primitive float type whose inherent methods give tanh, exp, ln, sqrt and abs;
/// the non-positive exp, the σ and tanh forms and GELU from the functions given.
macro_rules! impl_real {
    (
        $t:ty,
        $exp_np:path,
        $sigmoid:path,
        $sig_lanes:path,
        $tanh:path,
        $gelu:path,
        $variant:ident
    ) => {
        impl Real for $t {
            #[inline(always)]
            fn exp_(self) -> Self {
                self.exp()
            }
            #[inline(always)]
            fn exp_nonpositive(self) -> Self {
                $exp_np(self)
            }
            #[inline(always)]
            fn ln_(self) -> Self {
                self.ln()
            }
            #[inline(always)]
            fn sqrt_(self) -> Self {
                self.sqrt()
            }
            #[inline(always)]
            fn abs_(self) -> Self {
                self.abs()
            }
            #[inline(always)]
            fn sigmoid_(self) -> Self {
                $sigmoid(self)
            }
            #[inline(always)]
            fn tanh_lanes(self) -> Self {
                $tanh(self)
            }
            #[inline(always)]
            fn sigmoid_lanes(self) -> Self {
                $sig_lanes(self)
            }
            #[inline(always)]
            fn gelu_and_slope(self) -> (Self, Self) {
                $gelu(self)
            }
            fn storage(v: Vec<Self>) -> candle_core::CpuStorage {
                candle_core::CpuStorage::$variant(v)
            }
        }
    };
}

impl_real!(
    f32,
    exp_poly_f32,
    sigmoid_f32,
    sigmoid_lanes_f32,
    tanh_poly_f32,
    gelu_lanes_f32,
    F32
);
impl_real!(
    f64,
    f64::exp,
    sigmoid_f64,
    sigmoid_f64,
    f64::tanh,
    gelu_and_slope_f64,
    F64
);

/// σ(x) in f64 from e^{−|x|} (which never overflows).
#[inline(always)]
fn sigmoid_f64(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

/// σ(x) in f32 lanes: e = e^{−|x|} by range reduction (e = 2^n·e^r, n = round(−|x|·log₂e),
/// ln 2 subtracted in two parts, |r| ≤ ln 2 / 2) and e^r's Taylor series to r⁷ (truncation
/// 5e−9 relative), then 1/(1 + e) or e/(1 + e). No call and no branch, so a loop over slices
/// vectorises on 4 (8 with AVX2) f32 lanes. Below −87, e^{−|x|} is taken as e^{−87} (an absolute
/// error under 2e−38).
#[inline(always)]
pub(crate) fn sigmoid_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // A comparison, not `max`, so that NaN stays NaN (as PyTorch's σ gives it).
    let y = -x.abs();
    let y = if y < -87.0 { -87.0 } else { y };
    let shifted = y * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5_040.0;
    for inv_fact in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + inv_fact;
    }
    // n in [−126, 0]: the integer in the sum's mantissa, offset by 1.5·2²³'s own bits.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let e = p * f32::from_bits(((n_int + 127) as u32) << 23);
    // One division on both sides (1 or e over 1 + e): one rounding fewer than e·(1/(1 + e)).
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

/// e^x in f32 for x ≤ 0, with an error below 1e−14 relative before its one rounding to f32 —
/// so correctly rounded but where e^x lies that close to the midpoint of two f32 values (one
/// among all 1.1e9 f32 inputs in [−110, 0], one ulp low: the ignored exhaustive test below) —
/// with no call and no branch, so that a loop over slices using it
/// vectorises even on baseline x86-64 (libm's `expf` is a call, and so would `floor` be: SSE2
/// has no rounding instruction).
///
/// Computed in f64 and rounded once: e^x = 2^n · e^r with n = round(x·log₂e) and
/// r = x − n·ln 2 in [−ln 2/2, ln 2/2] ([`reduce_ln2`]), and e^r is its
/// Taylor series to r¹¹ (truncation below 9e−15 relative, at r = −ln 2/2). An f32 polynomial (2 ulp) was tried
/// first and was not enough: a gradient summed over steps with cancellation turns ulps of
/// difference from the composed reference (which uses `expf`) into 1e−5 relative. Below −110
/// the result is 0, as `expf` gives.
#[inline(always)]
pub(crate) fn exp_poly_f32(x: f32) -> f32 {
    exp_lanes_f64((x as f64).clamp(-110.0, 0.0)) as f32
}

/// e^x in f64 for x in [−110, 0] (the caller holds it there), within 1e−14 relative, with no
/// call and no branch: the body of [`exp_poly_f32`], also used by [`sigmoid_lanes_f32`].
#[inline(always)]
fn exp_lanes_f64(x: f64) -> f64 {
    let (r, two_n) = reduce_ln2(x);
    // Horner's scheme over 1/k!, k = 11 down to 0.
    let mut p = INV_FACTORIALS[1];
    for &c in &INV_FACTORIALS[2..] {
        p = p * r + c;
    }
    p * two_n
}

/// 1/k! for k = 12 down to 0: the Taylor coefficients of e^r, highest first (Horner's order).
const INV_FACTORIALS: [f64; 13] = [
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
    1.0,
    1.0,
];

/// Range reduction for x in [−110, 0]: (r, 2^n) with x = n·ln 2 + r, n = round(x·log₂e) and r in
/// [−ln 2/2, ln 2/2]. n is rounded by adding and subtracting 1.5·2⁵² (the sum's low mantissa bits
/// are then n itself, which also gives 2^n by moving n + 1023 into the exponent field), and ln 2
/// is subtracted in two parts so that r keeps its low bits. No call, no branch.
#[inline(always)]
fn reduce_ln2(x: f64) -> (f64, f64) {
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5·2⁵²
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    let shifted = x * std::f64::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    // n in [−159, 0]: the integer in the sum's mantissa, offset by 1.5·2⁵²'s own bits.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i64;
    (r, f64::from_bits(((n_int + 1023) as u64) << 52))
}

/// σ(x) in f32 computed in f64 lanes and rounded once (so correctly rounded except where σ(x)
/// lies within about 1e−14 relative of the midpoint of two f32 values), with no call and no
/// branch: e = e^{−|x|} by [`exp_lanes_f64`], then 1/(1 + e) or e/(1 + e). Below x = −110 the f32 result is 0 (σ(−104) is already below the smallest f32).
/// NaN stays NaN.
#[inline(always)]
pub(crate) fn sigmoid_lanes_f32(x: f32) -> f32 {
    let y = -(x as f64).abs();
    // A comparison, not `max`, so that NaN stays NaN.
    let y = if y < -110.0 { -110.0 } else { y };
    let e = exp_lanes_f64(y);
    let num = if x >= 0.0 { 1.0 } else { e };
    (num / (1.0 + e)) as f32
}

/// 1/√(2π): the standard normal density's factor.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Exact GELU and its slope in f64 from libm's `erf` and std's `exp`: the f64 kernels' form
/// (tested against independent references at 1e−9).
#[inline(always)]
fn gelu_and_slope_f64(v: f64) -> (f64, f64) {
    let cdf = 0.5 * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = INV_SQRT_2PI * (-0.5 * v * v).exp();
    (v * cdf, cdf + v * pdf)
}

/// erf(a) in f64 lanes with no call and no branch, within about 5e−16 relative for |a| ≤ 4 (g's
/// error below and one rounding of a·g); beyond,
/// ±1 (erf(4) is 1 − 1.5e−8, already 1 in f32). erf(a) = a·g(a²) where g(t) = erf(√t)/√t is an
/// entire function of t, so one polynomial in u = t/8 − 1 covers t in [0, 16]: degree 26,
/// Chebyshev interpolation converted to powers of u (largest relative error of g 3.8e−16; the
/// coefficients and that figure come from `scripts/kernels/fit_erf.py`). NaN stays NaN.
#[inline(always)]
fn erf_lanes_f64(a: f64) -> f64 {
    let t = a * a;
    // Comparisons, not `min`/`clamp`, so that NaN stays NaN.
    let t = if t > 16.0 { 16.0 } else { t };
    let u = t * 0.125 - 1.0;
    let mut g = ERF_G[0];
    for &c in &ERF_G[1..] {
        g = g * u + c;
    }
    let e = a * g;
    let e = if e > 1.0 { 1.0 } else { e };
    if e < -1.0 {
        -1.0
    } else {
        e
    }
}

/// g(t) = erf(√t)/√t on t in [0, 16] as a polynomial in u = t/8 − 1, highest power first
/// (written by `scripts/kernels/fit_erf.py`).
#[allow(clippy::excessive_precision)]
const ERF_G: [f64; 27] = [
    1.2552396021957573e-08,
    -4.4601445493119464e-08,
    6.866552148877341e-08,
    -2.0917105387003102e-07,
    8.589143634117949e-07,
    -2.550214544840671e-06,
    6.83707387538641e-06,
    -1.8415093990615508e-05,
    4.786147214640866e-05,
    -0.00011777347015736744,
    0.00027553407252768624,
    -0.0006129205499585331,
    0.001292615501366256,
    -0.0025782329933495057,
    0.004853549839257794,
    -0.008606218643935548,
    0.014349599250244038,
    -0.02247356876593231,
    0.03306063264600051,
    -0.045765110394323925,
    0.05988690498264097,
    -0.07472786574631042,
    0.0902089941121546,
    -0.10771044252853934,
    0.1316751168946995,
    -0.1765762333013717,
    0.35353099564340495,
];

/// Exact (erf) GELU x·Φ(x) and its slope Φ(x) + x·φ(x) in f32, computed in f64 lanes and rounded
/// once (correctly rounded on every one of 3.5 million sampled inputs where Φ ≥ 1e−4, the unit
/// test below), with no call and no branch so that loops over slices vectorise (libm's `erff` is a
/// call, and was 6% of an lm-small step). Φ(x) = (1 + erf(x/√2))/2 from [`erf_lanes_f64`] and
/// φ(x) = e^{−x²/2}/√(2π) from [`exp_lanes_f64`]. Below x = −4√2 ≈ −5.66, Φ is taken as 0 (it is
/// under 7.7e−9 there, and the f32 form (1 + erff(x/√2))/2 gives 0 too), so GELU is 0 and the
/// slope x·φ(x) alone. NaN stays NaN.
#[inline(always)]
pub(crate) fn gelu_lanes_f32(v: f32) -> (f32, f32) {
    let x = v as f64;
    let cdf = 0.5 + 0.5 * erf_lanes_f64(x * std::f64::consts::FRAC_1_SQRT_2);
    let q = -0.5 * x * x;
    // Beyond |x| = 14.8 (φ below 1e−48) the exponent is held at −110, which keeps it in range,
    // and x·φ(x) is taken as 0 (so the slope is 0 or 1 there, and at ±∞).
    let far = q < -110.0;
    let pdf = INV_SQRT_2PI * exp_lanes_f64(if far { -110.0 } else { q });
    let x_pdf = if far { 0.0 } else { x * pdf };
    ((x * cdf) as f32, (cdf + x_pdf) as f32)
}

/// tanh(x) in f32 with no call and no branch, computed in f64 and rounded once (so that a loop
/// over slices using it vectorises, in f64 lanes: 4 with AVX2, 2 on baseline x86-64, against
/// one scalar `tanhf` call per element).
///
/// tanh(|x|) = −m / (2 + m) with m = e^{−2|x|} − 1, which has no cancellation near 0 where
/// 1 − e^{−2|x|} would have. m = 2^n·(e^r − 1) + (2^n − 1) with n = round(−2|x|·log₂e),
/// r = −2|x| − n·ln 2 in [−ln 2/2, ln 2/2] ([`reduce_ln2`]) and e^r − 1 its Taylor
/// series to r¹² (truncation below 6e−16 relative); the sign is copied from x. Beyond |x| = 20
/// the f32 result is 1 (tanh(20) is 1 − 8e−18), so −2|x| is held at −40, which keeps n and 2^n
/// in range; NaN stays NaN.
#[inline(always)]
pub(crate) fn tanh_poly_f32(x: f32) -> f32 {
    let y = -2.0 * (x as f64).abs();
    // A comparison, not `max`, so that NaN stays NaN.
    let y = if y < -40.0 { -40.0 } else { y };
    let (r, two_n) = reduce_ln2(y);
    // Horner's scheme over 1/k!, k = 12 down to 1, then one more factor r: e^r − 1.
    let mut p = INV_FACTORIALS[0];
    for &c in &INV_FACTORIALS[1..12] {
        p = p * r + c;
    }
    let m = two_n * (p * r) + (two_n - 1.0);
    let t = -m / (2.0 + m);
    (t as f32).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::{exp_poly_f32, gelu_lanes_f32, sigmoid_f32, sigmoid_lanes_f32, tanh_poly_f32};

    /// Φ(x) in f64 without cancellation on either side: erfc for x < 0.
    fn normal_cdf(x: f64) -> f64 {
        let a = x * std::f64::consts::FRAC_1_SQRT_2;
        if x < 0.0 {
            0.5 * libm::erfc(-a)
        } else {
            0.5 * (1.0 + libm::erf(a))
        }
    }

    /// ulps between two f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    /// Over [−5.65, 12] in 3,530,001 points: GELU correctly rounded (Φ from libm's erf/erfc in
    /// f64, x·Φ rounded once) where Φ ≥ 1e−4 (x ≥ −3.72); within one ulp below that, where
    /// (1 + erf)/2 loses relative digits to cancellation (libm's `erff` in f32 loses them all
    /// there); the slope within one ulp of its larger term wherever it nears zero (x ≈ −0.75).
    /// Below −4√2, 0 (|GELU| < 4.4e−8 there) with the sign of x; huge x unchanged; NaN for NaN.
    #[test]
    fn gelu_lanes_f32_is_correctly_rounded() {
        let (mut wrong, mut worst_tail, mut worst_slope) = (0u32, 0u32, 0.0f64);
        let n = 3_530_000u32;
        for i in 0..=n {
            let x = -5.65f32 + 17.65 * i as f32 / n as f32;
            let xd = x as f64;
            let cdf = normal_cdf(xd);
            let pdf = (-0.5 * xd * xd).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let (gelu, slope) = gelu_lanes_f32(x);
            let want = (xd * cdf) as f32;
            if cdf >= 1e-4 {
                wrong += (gelu != want) as u32;
            } else {
                worst_tail = worst_tail.max(ulps(gelu, want));
            }
            let scale = cdf.abs().max((xd * pdf).abs());
            let err = (slope as f64 - (cdf + xd * pdf)).abs() / scale;
            worst_slope = worst_slope.max(err);
        }
        assert_eq!(wrong, 0, "GELU values not correctly rounded");
        assert!(worst_tail <= 1, "{worst_tail} ulp in the tail");
        assert!(
            worst_slope <= f32::EPSILON as f64,
            "slope {worst_slope:e} of its larger term"
        );
        for x in [-5.66f32, -6.0, -30.0, -1e30] {
            let (gelu, _) = gelu_lanes_f32(x);
            assert!(gelu == 0.0 && gelu.is_sign_negative(), "GELU({x}) = {gelu}");
        }
        assert_eq!(gelu_lanes_f32(0.0), (0.0, 0.5));
        assert_eq!(gelu_lanes_f32(1e30), (1e30, 1.0));
        // Far out the slope is exactly 0 or 1, at the infinities too.
        for (x, slope) in [(-20.0f32, 0.0), (-1e30, 0.0), (f32::NEG_INFINITY, 0.0)] {
            assert_eq!(gelu_lanes_f32(x).1, slope, "slope at {x}");
        }
        assert_eq!(gelu_lanes_f32(f32::INFINITY), (f32::INFINITY, 1.0));
        let (g, s) = gelu_lanes_f32(f32::NAN);
        assert!(g.is_nan() && s.is_nan());
    }

    /// Over [−120, 120] in 2,400,001 points: the correctly rounded σ (computed in f64 from
    /// libm's `exp`, rounded once) everywhere it is representable, 0 far below, exact at 0 and
    /// saturating to 1; NaN for NaN.
    #[test]
    fn sigmoid_lanes_f32_is_correctly_rounded() {
        let mut wrong = 0u32;
        for i in 0..=2_400_000u32 {
            let x = -120.0f32 + 240.0 * i as f32 / 2_400_000.0;
            let want = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
            wrong += (sigmoid_lanes_f32(x) != want) as u32;
        }
        assert_eq!(wrong, 0, "values not correctly rounded");
        assert_eq!(sigmoid_lanes_f32(0.0), 0.5);
        assert_eq!(sigmoid_lanes_f32(100.0), 1.0);
        assert_eq!(sigmoid_lanes_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_lanes_f32(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid_lanes_f32(f32::NAN).is_nan());
    }

    /// Over [−25, 25] in 5,000,001 points and at tiny and huge inputs: the correctly rounded
    /// value (f64's tanh rounded once) everywhere — glibc's `tanhf` is not: it is up to 2 ulp
    /// from it, so that is the bound against `tanhf`; odd, signed zeros kept, ±1 at the
    /// infinities and NaN for NaN.
    #[test]
    fn tanh_poly_f32_is_correctly_rounded() {
        let (mut wrong, mut worst_libm) = (0u32, 0u32);
        let mut check = |x: f32| {
            let got = tanh_poly_f32(x);
            wrong += (got != (x as f64).tanh() as f32) as u32;
            worst_libm = worst_libm.max(x.tanh().to_bits().abs_diff(got.to_bits()));
            assert_eq!(tanh_poly_f32(-x).to_bits(), (-got).to_bits(), "odd at {x}");
        };
        for i in 0..=5_000_000u32 {
            check(-25.0f32 + 50.0 * i as f32 / 5_000_000.0);
        }
        // Every power of two from the smallest subnormal to 1/2, and a non-power in each binade.
        for k in 0..23u32 {
            check(f32::from_bits(1 << k));
            check(f32::from_bits((1 << k) | 1));
        }
        for e in 1..=126u32 {
            check(f32::from_bits(e << 23));
            check(f32::from_bits((e << 23) | 0x2f_1234));
        }
        for x in [1e-30f32, 3e-8, 0.1, 19.9, 20.0, 20.1, 1e10, f32::MAX] {
            check(x);
        }
        assert_eq!(wrong, 0, "values not correctly rounded");
        assert!(worst_libm <= 2, "{worst_libm} ulp from tanhf");
        assert_eq!(tanh_poly_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_poly_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_poly_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_poly_f32(f32::NEG_INFINITY), -1.0);
        assert!(tanh_poly_f32(f32::NAN).is_nan());
    }

    /// Over [−120, 120] in 2,400,001 points: within 2 ulp of σ computed in f64 and rounded once
    /// (relative, for the small values of the negative side too), exact at 0 and saturating to
    /// 1 and to (near) 0 without NaN.
    #[test]
    fn sigmoid_f32_is_within_two_ulp() {
        let mut worst = 0u32;
        for i in 0..=2_400_000u32 {
            let x = -120.0f32 + 240.0 * i as f32 / 2_400_000.0;
            let want = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
            let got = sigmoid_f32(x);
            assert!(got.is_finite() && got >= 0.0, "{x}: {got}");
            if x > -87.0 {
                worst = worst.max(got.to_bits().abs_diff(want.to_bits()));
            } else {
                assert!(got <= 2e-38, "{x}: {got}");
            }
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(sigmoid_f32(0.0), 0.5);
        assert_eq!(sigmoid_f32(100.0), 1.0);
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert!(sigmoid_f32(f32::NEG_INFINITY) <= 2e-38);
        assert!(sigmoid_f32(f32::NAN).is_nan(), "NaN stays NaN");
    }

    /// Over [−110, 0] in 2,000,001 points: the correctly rounded value (f64's exp rounded
    /// once) everywhere, and so within one ulp of libm's `expf` (which is not correctly rounded
    /// in about 1 value in 2,000); the ends exact.
    #[test]
    fn exp_poly_f32_is_correctly_rounded() {
        let (mut wrong, mut worst_libm) = (0u32, 0u32);
        for i in 0..=2_000_000u32 {
            let x = -110.0f32 * i as f32 / 2_000_000.0;
            let got = exp_poly_f32(x);
            wrong += (got != (x as f64).exp() as f32) as u32;
            worst_libm = worst_libm.max(x.exp().to_bits().abs_diff(got.to_bits()));
        }
        assert_eq!(wrong, 0, "values not correctly rounded");
        assert!(worst_libm <= 1, "{worst_libm} ulp from expf");
        assert_eq!(exp_poly_f32(0.0), 1.0);
        assert_eq!(exp_poly_f32(-1000.0), 0.0);
    }

    /// Every f32 in [−110, 0] (1.1e9 of them, about 12 s in release; `cargo test --release -p
    /// lsnn-layers --lib -- --ignored exp_poly`): the f32 rounding of f64's exp everywhere but at
    /// one input, x = −1.0149802 (bits 0xbf81eadf), where e^x lies 3.0e−15 relative above the
    /// midpoint of two f32 values (checked at 60 digits) and this rounds one ulp low.
    #[test]
    #[ignore = "exhaustive, 1.1e9 inputs; run by hand in release"]
    fn exp_poly_f32_is_correctly_rounded_everywhere_but_once() {
        let (lo, hi) = ((-0.0f32).to_bits(), (-110.0f32).to_bits());
        let wrong: Vec<u32> = (lo..=hi)
            .filter(|&b| {
                let x = f32::from_bits(b);
                exp_poly_f32(x) != (x as f64).exp() as f32
            })
            .collect();
        assert_eq!(wrong, vec![0xbf81_eadf], "inputs not correctly rounded");
        let x = f32::from_bits(0xbf81_eadf);
        assert_eq!(
            exp_poly_f32(x).to_bits() + 1,
            ((x as f64).exp() as f32).to_bits()
        );
    }
}
