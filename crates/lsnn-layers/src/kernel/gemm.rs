//! Matrix products on slices with strides, through the `gemm` crate (candle's own CPU matmul).

use candle_core::WithDType;

/// Sizes of a matrix product dst [m × n] = lhs [m × k] · rhs [k × n].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Products below this many multiply-adds stay on one thread even when splitting is allowed.
const GEMM_PAR_MIN: usize = 1 << 18;

/// dst (row-major [m × n]) = (read ? dst : 0) + lhs·rhs, each operand given as (slice, row
/// stride, column stride). `parallel` lets gemm use rayon for large products (never inside
/// [`sequential`]).
///
/// # Panics
/// When an operand's strides reach outside its slice: a bug in the calling kernel, which derives
/// them from shapes it has already checked.
pub(crate) fn matmul<T: WithDType>(
    g: Gemm,
    dst: &mut [T],
    read: bool,
    lhs: (&[T], usize, usize),
    rhs: (&[T], usize, usize),
    parallel: bool,
) {
    let Gemm { m, n, k } = g;
    if m == 0 || n == 0 {
        return;
    }
    let reach = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows.saturating_sub(1)) * rs + (cols.saturating_sub(1)) * cs + 1
    };
    assert!(dst.len() >= m * n, "gemm: dst too short");
    if k > 0 {
        assert!(
            lhs.0.len() >= reach(m, k, lhs.1, lhs.2),
            "gemm: lhs too short"
        );
        assert!(
            rhs.0.len() >= reach(k, n, rhs.1, rhs.2),
            "gemm: rhs too short"
        );
    }
    let threads = rayon::current_num_threads();
    let par = if parallel
        && threads > 1
        && m * n * k >= GEMM_PAR_MIN
        && super::threads::parallel_allowed()
    {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: dst holds m·n elements row-major and the operands are indexed within their slices
    // by the given strides (asserted above); dst does not alias the inputs (it is `&mut`).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// [`matmul`], or — where `bf16` is set and `T` is f32 — the same product with its operands
/// rounded to bf16 and its sums in f32 ([`super::bf16::matmul_bf16`], design §9.5). f64
/// products ignore `bf16`.
///
/// # Panics
/// As [`matmul`]: when an operand's strides reach outside its slice.
pub(crate) fn matmul_in<T: WithDType>(
    bf16: bool,
    g: Gemm,
    dst: &mut [T],
    read: bool,
    lhs: (&[T], usize, usize),
    rhs: (&[T], usize, usize),
    parallel: bool,
) {
    if !(bf16 && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()) {
        return matmul(g, dst, read, lhs, rhs, parallel);
    }
    // SAFETY: T is f32 (the TypeId check above), so each slice is the same memory as an f32
    // slice of the same length.
    let (dst, l, r) = unsafe {
        (
            std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), dst.len()),
            std::slice::from_raw_parts(lhs.0.as_ptr().cast::<f32>(), lhs.0.len()),
            std::slice::from_raw_parts(rhs.0.as_ptr().cast::<f32>(), rhs.0.len()),
        )
    };
    let operand = |data, rs, cs| super::bf16::Operand {
        data,
        row_stride: rs,
        col_stride: cs,
    };
    if let Err(e) = super::bf16::matmul_bf16(
        (g.m, g.n, g.k),
        dst,
        read,
        operand(l, lhs.1, lhs.2),
        operand(r, rhs.1, rhs.2),
        parallel,
    ) {
        panic!("gemm: {e}");
    }
}
