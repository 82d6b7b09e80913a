//! The microkernels: one MR × NR tile of C, held in an f32 buffer, plus the products of a packed
//! block of A's rows and a packed panel of B's columns over the whole of k.
//!
//! Both kernels do the same arithmetic in the same order, which is what the AVX-512 BF16
//! instruction `vdpbf16ps` does per lane (Intel's SDM, and measured on Zen 4): for each k-pair,
//! add the product of the odd elements, round to f32, then add the product of the even ones and
//! round again; each product is exact (two 8-bit significands); subnormal accumulators count as
//! zero on the way in and subnormal sums are flushed to zero. So the two give the same bits
//! (tested on random shapes, and with sums in and around the subnormal range; a sum whose exact
//! value rounds up to 2^-126 from below is the one case where it could matter whether the
//! hardware detects tininess before or after rounding), and the portable one is the reference the tests and CPUs without
//! the instructions use.

use super::convert::{high, low};
use super::pack::{MR, NR};

/// The C tile a kernel updates: MR rows of NR columns, row-major.
pub(super) type Tile = [f32; MR * NR];

/// `x`, or a zero of its sign where `x` is subnormal (the instructions' flush to zero).
#[inline(always)]
fn flush(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

/// `acc + a·b` rounded once to f32 and flushed: the product of two bf16 is exact in f64 and the
/// sum of two numbers of at most 24 significant bits rounded to f64's 53 and then to f32's 24 is
/// the sum rounded once (53 ≥ 2·24 + 2), so this is the instruction's step.
#[inline(always)]
fn step(acc: f32, a: f32, b: f32) -> f32 {
    flush((f64::from(acc) + f64::from(a) * f64::from(b)) as f32)
}

/// The portable kernel: `tile += A_block · B_panel` over `pairs` k-pairs, where `a` holds
/// `pairs · MR` words and `b` `pairs · NR` (see [`super::pack`]).
///
/// # Panics
/// When `a` or `b` is shorter than that: a bug in the driver, which sizes them.
pub(super) fn portable(pairs: usize, a: &[u32], b: &[u32], tile: &mut Tile) {
    let (a, b) = (&a[..pairs * MR], &b[..pairs * NR]);
    for t in tile.iter_mut() {
        *t = flush(*t);
    }
    for (aw, bw) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &w) in tile.chunks_exact_mut(NR).zip(aw) {
            let (ahi, alo) = (high(w), low(w));
            for (c, &v) in row.iter_mut().zip(bw) {
                *c = step(step(*c, ahi, high(v)), alo, low(v));
            }
        }
    }
}

/// Whether this CPU has the AVX-512 BF16 dot products (and AVX-512F around them).
pub(super) fn cpu_has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The AVX-512 BF16 kernel: the same as [`portable`], two `vdpbf16ps` per row of the tile per
/// k-pair, the tile in 16 registers over the whole of k.
///
/// # Panics
/// When `a` or `b` is shorter than [`portable`] needs, or the CPU lacks the instructions (the
/// driver checks [`cpu_has_avx512_bf16`] first).
#[cfg(target_arch = "x86_64")]
pub(super) fn avx512_bf16(pairs: usize, a: &[u32], b: &[u32], tile: &mut Tile) {
    assert!(a.len() >= pairs * MR && b.len() >= pairs * NR);
    assert!(
        cpu_has_avx512_bf16(),
        "avx512_bf16 kernel on a CPU without it"
    );
    // SAFETY: the CPU has the instructions (asserted) and the slices hold what the kernel reads.
    unsafe { x86::tile(pairs, a, b, tile) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Tile, MR, NR};
    use std::arch::x86_64::*;

    /// 16 words read as 32 bf16 (a pair per word, low half first).
    #[inline(always)]
    fn bf16_lanes(v: __m512i) -> __m512bh {
        // SAFETY: both are 512 bits of plain data; every bit pattern is a valid value of each.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }

    /// # Safety
    /// The CPU has AVX-512F and AVX-512 BF16; `a` holds `pairs · MR` words, `b` `pairs · NR`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn tile(pairs: usize, a: &[u32], b: &[u32], tile: &mut Tile) {
        const HALF: usize = NR / 2;
        let t = tile.as_mut_ptr();
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for (i, row) in acc.iter_mut().enumerate() {
            // SAFETY: row i of the tile is NR = 2 · 16 floats.
            unsafe {
                row[0] = _mm512_loadu_ps(t.add(i * NR));
                row[1] = _mm512_loadu_ps(t.add(i * NR + HALF));
            }
        }
        let (ap, bp) = (a.as_ptr(), b.as_ptr());
        for p in 0..pairs {
            // SAFETY: b holds pairs · NR words and a pairs · MR (the caller's contract).
            let (b0, b1) = unsafe {
                (
                    _mm512_loadu_si512(bp.add(p * NR).cast()),
                    _mm512_loadu_si512(bp.add(p * NR + HALF).cast()),
                )
            };
            let (b0, b1) = (bf16_lanes(b0), bf16_lanes(b1));
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let w = unsafe { *ap.add(p * MR + i) };
                // A broadcast word is one bf16 pair per lane.
                let av = bf16_lanes(_mm512_set1_epi32(w as i32));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
            }
        }
        for (i, row) in acc.iter().enumerate() {
            // SAFETY: as for the loads.
            unsafe {
                _mm512_storeu_ps(t.add(i * NR), row[0]);
                _mm512_storeu_ps(t.add(i * NR + HALF), row[1]);
            }
        }
    }
}
