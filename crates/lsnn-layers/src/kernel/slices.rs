//! Element slices of CPU storages, and a pointer for disjoint writes from rayon tasks.

use candle_core::{CpuStorage, Layout, WithDType};

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

/// A raw pointer that may cross threads; every task writes a disjoint set of indices.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr<T>(pub(crate) *mut T);
// SAFETY: used only for disjoint writes from rayon tasks that all finish before the owning
// buffer is read or dropped.
unsafe impl<T: Send> Send for SyncPtr<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The sub-slice `[start, start + len)` of the buffer.
    ///
    /// # Safety
    /// The range is in bounds and no other thread accesses it while the slice lives.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}
