//! Which path an op takes: its fused CPU kernel, or the composition of candle ops that is its
//! reference and the path on every other device (design §3.1).
//!
//! A fused kernel runs when the tensor is on the CPU in f32 or f64 and the composed path is not
//! forced. Forcing it is how the composed path — the one CUDA and Metal take — is tested here,
//! where no GPU exists: [`force_composed`] switches a whole process (the environment variable
//! `LSNN_FORCE_COMPOSED=1` does the same from the start, which is how CI runs the parity suite a
//! second time), and [`composed`] switches one closure on the calling thread (for tests and
//! benchmarks that compare the two paths side by side).

use candle_core::{DType, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not read yet; 1: fused kernels on; 2: composed path forced.
static FORCED: AtomicU8 = AtomicU8::new(0);

thread_local! {
    static COMPOSED_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn forced_globally() -> bool {
    match FORCED.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let on = env_flag("LSNN_FORCE_COMPOSED");
            FORCED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
    }
}

/// Whether the environment variable `name` is set to something other than empty, `0` or
/// `false` (the process-wide switches of the kernels read their variable this way).
pub(crate) fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
        .unwrap_or(false)
}

/// Forces the composed path of every op for the whole process (`true`), or gives the fused
/// kernels back (`false`). It takes effect for ops built after the call; use it before building
/// a model, not while another thread runs one.
pub fn force_composed(on: bool) {
    FORCED.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// Runs `f` with the composed path forced on this thread (ops that other threads run are not
/// affected), restoring the previous setting afterwards.
pub fn composed<R>(f: impl FnOnce() -> R) -> R {
    super::threads::with_thread_value(&COMPOSED_HERE, true, f)
}

/// False while the composed path is forced (process-wide or on this thread).
pub fn fused_enabled() -> bool {
    !(COMPOSED_HERE.with(|c| c.get()) || forced_globally())
}

/// True when a fused CPU kernel can run on `x`: the CPU, f32 or f64, and not forced off.
pub fn fused_available(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) && fused_enabled()
}
