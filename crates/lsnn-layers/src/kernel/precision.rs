//! The precision of the fused linear's matrix products: f32 throughout, or bf16 operands with
//! f32 accumulation ([`super::bf16`], design §9.5) — chosen per thread for a scope, like
//! [`super::sequential`], so a trainer turns it on around its steps and a library user's other
//! models are untouched.

/// How the fused linear's products round their operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPrecision {
    /// f32 operands and sums (the default).
    #[default]
    F32,
    /// Operands rounded to bf16, sums in f32: forward x·Wᵀ and backward dy·W and dyᵀ·x. The
    /// bias, the parameters, the optimizer and every element kernel stay f32.
    Bf16,
}

impl MatmulPrecision {
    /// The name a checkpoint records: `"f32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            MatmulPrecision::F32 => "f32",
            MatmulPrecision::Bf16 => "bf16",
        }
    }
}

thread_local! {
    static PRECISION: std::cell::Cell<MatmulPrecision> =
        const { std::cell::Cell::new(MatmulPrecision::F32) };
}

/// Runs `f` with the fused linear's products in `precision` on this thread (the ops record it
/// when they run forward, so their backward uses the same), restoring the previous setting
/// afterwards. Work split over other threads carries it only where the code passes it on, as
/// lsnn-train's shards do.
pub fn with_matmul_precision<R>(precision: MatmulPrecision, f: impl FnOnce() -> R) -> R {
    super::threads::with_thread_value(&PRECISION, precision, f)
}

/// The precision set on this thread by [`with_matmul_precision`] (f32 outside it).
pub fn matmul_precision() -> MatmulPrecision {
    PRECISION.with(|c| c.get())
}
