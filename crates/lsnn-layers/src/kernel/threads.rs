//! Threading of the CPU kernels: row kernels split over rayon only for large work, into pieces
//! fixed by the sizes (so no result depends on the thread count), and [`sequential`], which keeps
//! every kernel on its calling thread for callers that already keep every core busy.

/// Below this many elements of work a row kernel runs on the calling thread: splitting smaller
/// jobs costs more in thread hand-over than it saves (design §3.3).
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
    with_thread_value(&SEQUENTIAL, true, f)
}

/// Runs `f` with the thread-local `cell` set to `value`, restoring its previous value afterwards
/// (also when `f` unwinds): the one mechanism of the scoped switches ([`sequential`],
/// [`super::composed`], [`super::with_matmul_precision`]).
pub(crate) fn with_thread_value<T: Copy + 'static, R>(
    cell: &'static std::thread::LocalKey<std::cell::Cell<T>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<std::cell::Cell<T>>, T);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(cell, cell.with(|c| c.replace(value)));
    f()
}

/// False inside [`sequential`]: the kernels must not split their work across threads.
pub fn parallel_allowed() -> bool {
    !SEQUENTIAL.with(|c| c.get())
}

/// Elements handled by one rayon task of [`for_ranges`] (and one block of its sequential path).
#[doc(hidden)]
pub const TASK: usize = 1024;
/// Below this many element-steps [`for_ranges`] runs on the calling thread.
#[doc(hidden)]
pub const PAR_MIN: usize = 1 << 16;

/// Runs `f(start, end)` over ranges of at most [`TASK`] elements of `0..n`, in parallel when the
/// work (`n · steps`) is large and splitting is allowed. The ranges depend on `n` alone; the
/// sequential path keeps them too, so per-range scratch (a recomputed history) stays
/// O(steps · TASK), never O(steps · n).
pub(crate) fn for_ranges(n: usize, steps: usize, f: impl Fn(usize, usize) + Sync) {
    use rayon::prelude::*;
    if n * steps < PAR_MIN || n <= TASK || !parallel_allowed() {
        for c in 0..n.div_ceil(TASK) {
            f(c * TASK, ((c + 1) * TASK).min(n));
        }
    } else {
        (0..n.div_ceil(TASK))
            .into_par_iter()
            .for_each(|c| f(c * TASK, ((c + 1) * TASK).min(n)));
    }
}
