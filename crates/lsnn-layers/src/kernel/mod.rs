//! The plumbing every CPU custom op shares (the LIF and CfC ops, the row ops of [`crate::fused`],
//! and lsnn-train's in-place optimizer ops):
//!
//! - [`slices`]: the contiguous element slice of a `CpuStorage` under its layout, and a pointer
//!   for disjoint writes from several threads;
//! - [`real`]: the one f32/f64 dispatch (the crate's `float_kernel!` macro) and the
//!   `Real` element trait with the transcendental functions the kernels need;
//! - `lanes`: element functions (GELU, shifted exp, σ) mapped over slices, vectorised, with
//!   AVX2 copies chosen at run time;
//! - [`gemm`]: matrix products on slices with strides;
//! - [`bf16`]: matrix products with bf16 operands and f32 accumulation (AVX-512 BF16 where the
//!   CPU has it, a portable kernel with the same bits elsewhere);
//! - [`precision`]: whether the fused linear's products run in f32 or bf16, per thread for a
//!   scope;
//! - [`threads`]: row kernels split over rayon only for large work, and [`sequential`], the
//!   thread-local switch that keeps every kernel on its calling thread;
//! - [`path`]: whether a fused kernel runs at all, or the composed reference (the switch that
//!   forces the composed path on the CPU, process-wide or for one closure);
//! - [`simd`]: whether the AVX2 copies of the hottest element kernels (LIF, synaptic, alpha,
//!   ALIF, LTC, CfC, and the lanes) run, detected at run time;
//! - [`paths`]: which instruction paths the matmul and the element kernels take in this
//!   process (recorded in checkpoints);
//! - [`packing`]: the one convention by which a fused op takes its state and parameters and
//!   returns its outputs (design §3.2).

pub mod bf16;
pub mod gemm;
pub(crate) mod lanes;
pub mod packing;
pub mod path;
pub mod paths;
pub mod precision;
pub mod real;
pub mod simd;
pub mod slices;
pub mod threads;

pub(crate) use gemm::{matmul, matmul_in, Gemm};
pub use path::{composed, force_composed, fused_available, fused_enabled};
pub use paths::{matmul_path, KernelPaths};
pub use precision::{matmul_precision, with_matmul_precision, MatmulPrecision};
pub(crate) use real::float_kernel;
pub(crate) use real::Real;
pub use simd::{cpu_has_avx2, use_wide_vectors, wide_vectors};
pub(crate) use slices::SyncPtr;
pub use slices::{contiguous_slice, contiguous_slice_mut_f32};
pub(crate) use threads::{for_ranges, row_chunks};
pub use threads::{parallel_allowed, sequential};
