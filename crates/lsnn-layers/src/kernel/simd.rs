//! Wider vector instructions where the CPU has them. The crates build for baseline x86-64
//! (SSE2, 4 f32 lanes) so that one binary runs on any x86-64 machine; the hottest element
//! kernels are compiled a second time with AVX2 enabled (8 lanes) and picked at run time.
//!
//! Both versions run the same Rust arithmetic in the same order and Rust never contracts a
//! multiply and an add into an FMA on its own, so they give bit-identical results; the switch
//! here exists so that the tests can check that and the benchmarks can measure both.

use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not decided yet; 1: AVX2 in use; 2: baseline instructions only.
static WIDE: AtomicU8 = AtomicU8::new(0);

/// Whether the kernels that have an AVX2 version use it: the CPU has AVX2 and neither
/// [`use_wide_vectors`]`(false)` nor `LSNN_BASELINE_ISA=1` in the environment turned it off.
pub fn wide_vectors() -> bool {
    match WIDE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = !super::path::env_flag("LSNN_BASELINE_ISA") && cpu_has_avx2();
            WIDE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns the AVX2 versions of the kernels off (`false`: baseline instructions, as on a CPU
/// without AVX2) or back on where the CPU has them (`true`), for the whole process.
pub fn use_wide_vectors(on: bool) {
    let on = on && cpu_has_avx2();
    WIDE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether this CPU has AVX2.
pub fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
