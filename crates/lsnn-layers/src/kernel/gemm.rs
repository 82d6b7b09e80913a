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
