//! Shared plumbing of the CPU custom ops (LIF, linear, CfC sequence, and lsnn-train's in-place
//! optimizer ops): the contiguous element slice of a `CpuStorage` under its layout.

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
