//! Element functions of [`Real`] mapped over contiguous slices, one loop each — for f32 with no
//! call and no branch in its body, so that it vectorises (the f64 forms call libm) — compiled a
//! second time with AVX2 (four f64 or eight f32 lanes) and chosen at run time by [`super::wide_vectors`]. Rust never fuses a
//! multiply and an add on its own, so both copies give the same bits (`tests/simd_paths.rs`).

use super::Real;

/// Each element of `v` replaced by its exact GELU (`SLOPE` false) or by GELU's slope
/// Φ(x) + x·φ(x) (`SLOPE` true), from [`Real::gelu_and_slope`].
pub(crate) fn gelu_in_place<T: Real, const SLOPE: bool>(v: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if super::wide_vectors() {
        // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
        return unsafe { gelu_in_place_avx2::<T, SLOPE>(v) };
    }
    gelu_in_place_loop::<T, SLOPE>(v)
}

/// [`gelu_in_place`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gelu_in_place_avx2<T: Real, const SLOPE: bool>(v: &mut [T]) {
    gelu_in_place_loop::<T, SLOPE>(v)
}

#[inline(always)]
fn gelu_in_place_loop<T: Real, const SLOPE: bool>(v: &mut [T]) {
    for e in v.iter_mut() {
        let (gelu, slope) = e.gelu_and_slope();
        *e = if SLOPE { slope } else { gelu };
    }
}

/// GELU of each element of `x` into `gelu` and its slope into `slope` (all of one length), as
/// [`gelu_in_place`] computes them.
pub(crate) fn gelu_with_slope<T: Real>(x: &[T], gelu: &mut [T], slope: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if super::wide_vectors() {
        // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
        return unsafe { gelu_with_slope_avx2(x, gelu, slope) };
    }
    gelu_with_slope_loop(x, gelu, slope)
}

/// [`gelu_with_slope`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gelu_with_slope_avx2<T: Real>(x: &[T], gelu: &mut [T], slope: &mut [T]) {
    gelu_with_slope_loop(x, gelu, slope)
}

#[inline(always)]
fn gelu_with_slope_loop<T: Real>(x: &[T], gelu: &mut [T], slope: &mut [T]) {
    for ((&v, g), s) in x.iter().zip(gelu.iter_mut()).zip(slope.iter_mut()) {
        (*g, *s) = v.gelu_and_slope();
    }
}

/// Each element v of `v` replaced by e^{scale·v − shift}, from [`Real::exp_nonpositive`]: the
/// caller's shift is at least every scale·v (a row's maximum or its log-sum-exp), so the
/// exponent is never positive — where rounding leaves it a hair above 0, the f32 result is 1
/// (the f64 one is `exp` of it).
pub(crate) fn exp_shifted_in_place<T: Real>(v: &mut [T], scale: T, shift: T) {
    #[cfg(target_arch = "x86_64")]
    if super::wide_vectors() {
        // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
        return unsafe { exp_shifted_avx2(v, scale, shift) };
    }
    exp_shifted_loop(v, scale, shift)
}

/// [`exp_shifted_in_place`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn exp_shifted_avx2<T: Real>(v: &mut [T], scale: T, shift: T) {
    exp_shifted_loop(v, scale, shift)
}

#[inline(always)]
fn exp_shifted_loop<T: Real>(v: &mut [T], scale: T, shift: T) {
    for e in v.iter_mut() {
        *e = (*e * scale - shift).exp_nonpositive();
    }
}

/// Each element of `v` replaced by σ(v), from [`Real::sigmoid_lanes`].
pub(crate) fn sigmoid_in_place<T: Real>(v: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if super::wide_vectors() {
        // SAFETY: `wide_vectors` is true only where the CPU has AVX2.
        return unsafe { sigmoid_avx2(v) };
    }
    sigmoid_loop(v)
}

/// [`sigmoid_in_place`] compiled with AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sigmoid_avx2<T: Real>(v: &mut [T]) {
    sigmoid_loop(v)
}

#[inline(always)]
fn sigmoid_loop<T: Real>(v: &mut [T]) {
    for e in v.iter_mut() {
        *e = e.sigmoid_lanes();
    }
}
