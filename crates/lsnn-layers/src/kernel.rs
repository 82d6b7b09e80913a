//! Shared plumbing of the CPU custom ops (LIF, linear, CfC sequence, the row ops of
//! [`crate::fused`], and lsnn-train's in-place optimizer ops): the contiguous element slice of a
//! `CpuStorage` under its layout, the f32/f64 dispatch, gemm on slices, row kernels split over
//! rayon, and the thread-local switch that keeps kernels on their calling thread.

use candle_core::{CpuStorage, Layout, WithDType};

/// Runs `$body` with `$t` bound to the element type of `$dt` (f32 or f64) and wraps the `Vec`
/// it returns in the matching `CpuStorage`; other dtypes are an error naming the op.
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
}

pub(crate) use float_kernel;

/// The elements of `s` under `l`, which must be contiguous (custom ops get arbitrary layouts;
/// their callers make operands contiguous first). `what` names the op and operand in the error.
pub fn contiguous_slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    let d = s.as_slice::<T>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&d[a..b]),
        None => candle_core::bail!("{what} must be contiguous, got strides {:?}", l.stride()),
    }
}

/// The mutable f32 elements of `s` under `l` (contiguous), for in-place ops.
pub fn contiguous_slice_mut_f32<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("{what} must be contiguous, got strides {:?}", l.stride());
    };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{what}: expected f32"),
    }
}

/// The floating-point element types the CPU kernels are written for (f32, f64), with the
/// transcendental functions they need.
pub(crate) trait Real: WithDType {
    fn tanh_(self) -> Self;
    fn exp_(self) -> Self;
    fn ln_(self) -> Self;
    fn sqrt_(self) -> Self;
    fn erf_(self) -> Self;
}

/// `Real` for a primitive float type whose inherent methods give tanh, exp, ln and sqrt; erf
/// comes from libm.
macro_rules! impl_real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            #[inline(always)]
            fn tanh_(self) -> Self {
                self.tanh()
            }
            #[inline(always)]
            fn exp_(self) -> Self {
                self.exp()
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
            fn erf_(self) -> Self {
                $erf(self)
            }
        }
    };
}

impl_real!(f32, libm::erff);
impl_real!(f64, libm::erf);

/// Below this many elements of work a row kernel runs on the calling thread: splitting smaller
/// jobs costs more in thread hand-over than it saves (SPEC §3.9).
pub const PAR_ROWS_MIN: usize = 1 << 15;

/// Work (elements) per piece of a row kernel. The pieces depend on the sizes alone, never on the
/// thread count, so reductions over pieces (LayerNorm's dw, the cross-entropy sums) give the
/// same bits on one thread or many.
const PIECE_WORK: usize = 1 << 16;

/// Runs `f(rows, out_rows)` over consecutive row ranges of `0..rows`, where `out_rows` is the
/// matching part of `out` (`width` elements per row; `out` may be empty with `width` 0), and
/// returns each range's result in order. The ranges hold about [`PIECE_WORK`] elements of
/// `work` each, fixed by the sizes; with more than one rayon thread and at least
/// [`PAR_ROWS_MIN`] elements of `work` (and not inside [`sequential`]) they run in parallel.
///
/// # Panics
/// When `out.len() != rows * width`: a bug in the calling kernel, which sizes `out` itself.
pub(crate) fn row_chunks<T: Send, R: Send>(
    out: &mut [T],
    width: usize,
    rows: usize,
    work: usize,
    f: impl Fn(std::ops::Range<usize>, &mut [T]) -> R + Sync,
) -> Vec<R> {
    use rayon::prelude::*;
    assert_eq!(
        out.len(),
        rows * width,
        "row_chunks: output of the wrong size"
    );
    let per_row = work.div_ceil(rows.max(1)).max(1);
    let per = (PIECE_WORK / per_row).clamp(1, rows.max(1));
    if per >= rows {
        return vec![f(0..rows, out)];
    }
    let mut pieces = Vec::with_capacity(rows.div_ceil(per));
    let mut rest = out;
    let mut start = 0;
    while start < rows {
        let end = (start + per).min(rows);
        let (a, b) = rest.split_at_mut((end - start) * width);
        pieces.push((start..end, a));
        rest = b;
        start = end;
    }
    let parallel = parallel_allowed()
        && rayon::current_num_threads() > 1
        && work >= PAR_ROWS_MIN
        && pieces.len() >= 2;
    if parallel {
        pieces.into_par_iter().map(|(r, s)| f(r, s)).collect()
    } else {
        pieces.into_iter().map(|(r, s)| f(r, s)).collect()
    }
}

thread_local! {
    static SEQUENTIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the kernels' own multi-threading off on this thread (row kernels, LIF, linear
/// gemm all run on the calling thread), for callers that already keep every core busy with
/// coarser work, such as one batch shard per thread. Restores the previous setting afterwards.
pub fn sequential<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SEQUENTIAL.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(SEQUENTIAL.with(|c| c.replace(true)));
    f()
}

/// False inside [`sequential`]: the kernels must not split their work across threads.
pub fn parallel_allowed() -> bool {
    !SEQUENTIAL.with(|c| c.get())
}

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
    let par = if parallel && threads > 1 && m * n * k >= GEMM_PAR_MIN && parallel_allowed() {
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
