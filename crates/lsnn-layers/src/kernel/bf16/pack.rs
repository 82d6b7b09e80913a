//! Packing operands into the layout the bf16 kernels read: the shared dimension k in pairs,
//! each pair one 32-bit word (element 2p in the low half, 2p + 1 in the high half, which is how
//! the dot-product instruction pairs them), in blocks of `width` rows of A or columns of B.

use super::convert::bf16_bits;
use super::Operand;

/// Rows of A per microkernel tile.
pub(super) const MR: usize = 8;
/// Columns of B per microkernel tile (two 16-lane vectors).
pub(super) const NR: usize = 32;

/// Packs the `outer × k` matrix whose element (i, kk) is `src[i·outer_stride + kk·k_stride]`
/// as blocks of `width` consecutive i: block b holds `pairs = ⌈k/2⌉` groups of `width` words,
/// word (p, w) pairing elements (b·width + w, 2p) and (b·width + w, 2p + 1). Rows past `outer`
/// and the element past an odd k are zero.
///
/// A (m × k, row i) packs with `outer_stride` = its row stride; B (k × n, column j) with its
/// column stride, so both come out as k-pairs by the tile's width. `wide` runs a copy compiled
/// for AVX-512 (integer rounding: the same words), for the kernel that has it anyway.
///
/// # Panics
/// When the strides reach outside `src`: the caller has checked them.
pub(super) fn pack(
    src: &[f32],
    (outer, k): (usize, usize),
    (outer_stride, k_stride): (usize, usize),
    width: usize,
    wide: bool,
) -> Vec<u32> {
    let mut out = vec![0u32; outer.div_ceil(width) * k.div_ceil(2) * width];
    let job = Job {
        src,
        outer,
        k,
        outer_stride,
        k_stride,
        width,
    };
    #[cfg(target_arch = "x86_64")]
    if wide
        && super::micro::cpu_has_avx512_bf16()
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        // SAFETY: the CPU has AVX-512F and BW (detected above).
        unsafe { pack_avx512(&job, &mut out) };
        return out;
    }
    let _ = wide;
    job.run(&mut out);
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn pack_avx512(job: &Job<'_>, out: &mut [u32]) {
    job.run(out)
}

/// One packing: the source, its sizes and strides, the block width.
struct Job<'a> {
    src: &'a [f32],
    outer: usize,
    k: usize,
    outer_stride: usize,
    k_stride: usize,
    width: usize,
}

/// Pairs converted per row at a time when rows run along k (see [`Job::along_k`]).
const CHUNK: usize = 16;

impl Job<'_> {
    #[inline(always)]
    fn run(&self, out: &mut [u32]) {
        if self.outer_stride == 1 {
            self.across(out)
        } else if self.k_stride == 1 {
            self.along_k(out)
        } else {
            self.strided(out)
        }
    }

    /// Consecutive i adjacent (B row-major): each group of a block is two runs of elements.
    #[inline(always)]
    fn across(&self, out: &mut [u32]) {
        let &Job {
            src,
            outer,
            k,
            k_stride,
            width,
            ..
        } = self;
        let (pairs, full) = (k.div_ceil(2), k / 2);
        for p in 0..pairs {
            for b in 0..outer.div_ceil(width) {
                let first = b * width;
                let w = width.min(outer - first);
                let group = &mut out[(b * pairs + p) * width..][..w];
                let lo = &src[first + 2 * p * k_stride..][..w];
                if p < full {
                    let hi = &src[first + (2 * p + 1) * k_stride..][..w];
                    for ((word, &l), &h) in group.iter_mut().zip(lo).zip(hi) {
                        *word = word_of(l, h);
                    }
                } else {
                    for (word, &l) in group.iter_mut().zip(lo) {
                        *word = word_of(l, 0.0);
                    }
                }
            }
        }
    }

    /// Each i's elements adjacent along k (A row-major, or Wᵀ for a weight W [n, k]): a block's
    /// rows are converted [`CHUNK`] pairs at a time into a small buffer of bf16 bits (contiguous
    /// reads, vectorised), which is then written out as words, transposed (contiguous runs of the block's width).
    #[inline(always)]
    fn along_k(&self, out: &mut [u32]) {
        let &Job {
            src,
            outer,
            k,
            outer_stride,
            width,
            ..
        } = self;
        let (pairs, full) = (k.div_ceil(2), k / 2);
        // Each row's 2·CHUNK elements as bf16 bits, in order: a pair's word is two neighbours.
        let mut halves = vec![0u16; width * 2 * CHUNK];
        for b in 0..outer.div_ceil(width) {
            let first = b * width;
            let w = width.min(outer - first);
            let block = &mut out[b * pairs * width..][..pairs * width];
            for p0 in (0..full).step_by(CHUNK) {
                let q = CHUNK.min(full - p0);
                for (r, bits) in halves.chunks_exact_mut(2 * CHUNK).take(w).enumerate() {
                    let row = &src[(first + r) * outer_stride + 2 * p0..][..2 * q];
                    for (h, &v) in bits.iter_mut().zip(row) {
                        *h = bf16_bits(v);
                    }
                }
                for (j, group) in block[p0 * width..(p0 + q) * width]
                    .chunks_exact_mut(width)
                    .enumerate()
                {
                    for (word, bits) in group[..w].iter_mut().zip(halves.chunks_exact(2 * CHUNK)) {
                        *word = u32::from(bits[2 * j]) | (u32::from(bits[2 * j + 1]) << 16);
                    }
                }
            }
            if full < pairs {
                let group = &mut block[full * width..][..w];
                for (r, word) in group.iter_mut().enumerate() {
                    *word = word_of(src[(first + r) * outer_stride + 2 * full], 0.0);
                }
            }
        }
    }

    /// Any other strides: element by element.
    #[inline(always)]
    fn strided(&self, out: &mut [u32]) {
        let &Job {
            src,
            outer,
            k,
            outer_stride,
            k_stride,
            width,
        } = self;
        let (pairs, full) = (k.div_ceil(2), k / 2);
        for p in 0..pairs {
            for b in 0..outer.div_ceil(width) {
                let first = b * width;
                let w = width.min(outer - first);
                let group = &mut out[(b * pairs + p) * width..][..w];
                for (r, word) in group.iter_mut().enumerate() {
                    let base = (first + r) * outer_stride;
                    let hi = if p < full {
                        src[base + (2 * p + 1) * k_stride]
                    } else {
                        0.0
                    };
                    *word = word_of(src[base + 2 * p * k_stride], hi);
                }
            }
        }
    }
}

/// One packed word: `lo` in the low half, `hi` in the high half, each rounded to bf16.
#[inline(always)]
fn word_of(lo: f32, hi: f32) -> u32 {
    u32::from(bf16_bits(lo)) | (u32::from(bf16_bits(hi)) << 16)
}

/// The words of block `b` of a packed operand with `pairs` k-pairs and tile width `width`.
#[inline]
pub(super) fn block(packed: &[u32], b: usize, pairs: usize, width: usize) -> &[u32] {
    &packed[b * pairs * width..(b + 1) * pairs * width]
}

/// [`pack`] for the left operand (rows of A by [`MR`]).
pub(super) fn pack_lhs(a: Operand<'_>, m: usize, k: usize, wide: bool) -> Vec<u32> {
    pack(a.data, (m, k), (a.row_stride, a.col_stride), MR, wide)
}

/// [`pack`] for the right operand (columns of B by [`NR`]).
pub(super) fn pack_rhs(b: Operand<'_>, k: usize, n: usize, wide: bool) -> Vec<u32> {
    pack(b.data, (n, k), (b.col_stride, b.row_stride), NR, wide)
}

#[cfg(test)]
mod tests {
    use super::super::convert::{high, low};
    use super::*;

    #[test]
    fn pairs_and_padding() {
        // A 3 × 3 matrix by blocks of 2 rows: two blocks, two pairs each (k = 3 is odd).
        let a: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let p = pack(&a, (3, 3), (3, 1), 2, false);
        assert_eq!(p.len(), 2 * 2 * 2);
        // Block 0, pair 0: rows 0 and 1, columns 0 (low) and 1 (high).
        assert_eq!((low(p[0]), high(p[0])), (1.0, 2.0));
        assert_eq!((low(p[1]), high(p[1])), (4.0, 5.0));
        // Pair 1: column 2 and the zero past k.
        assert_eq!((low(p[2]), high(p[2])), (3.0, 0.0));
        assert_eq!((low(p[3]), high(p[3])), (6.0, 0.0));
        // Block 1: row 2, then a zero row.
        assert_eq!((low(p[4]), high(p[4])), (7.0, 8.0));
        assert_eq!(p[5], 0);
        assert_eq!((low(p[6]), high(p[6])), (9.0, 0.0));
        assert_eq!(p[7], 0);
        // The same matrix read as B by columns (column j = row j of its transpose).
        let q = pack(&a, (3, 3), (1, 3), 2, false);
        assert_eq!(q, pack(&a, (3, 3), (1, 3), 2, true));
        assert_eq!(p, pack(&a, (3, 3), (3, 1), 2, true));
        assert_eq!((low(q[0]), high(q[0])), (1.0, 4.0));
        assert_eq!((low(q[1]), high(q[1])), (2.0, 5.0));
    }
}
