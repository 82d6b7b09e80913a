//! Row-wise ops fused into single CPU custom ops with their own backward: the linear layer,
//! LayerNorm (alone or with exact GELU and dropout, [`norm_act`]), exact GELU, the scaled and
//! (optionally) causally masked attention softmax, scaled dot-product attention in tiles with
//! O(L) memory ([`attention`]), the next-token cross-entropy, the gated
//! residual, bit-mask dropout and [`seed`] for staged backward. Each replaces a chain of 2–10
//! candle ops; in candle's backward every op of a chain costs a fresh zero gradient plus an add
//! of its input's size, so a chain of `k` ops over an [N, D] activation makes about 3·k passes
//! over N·D values where the fused op makes two.
//!
//! Every op but dropout and `seed` has its composition of differentiable candle ops in
//! [`reference`](mod@reference): the path on devices and dtypes without a kernel (anything but CPU f32/f64, or
//! when [`crate::kernel::composed`] forces it), and the reference the tests hold the kernels to
//! (forward values and gradients). Dropout is tested against the mask tensor of the same draws,
//! `seed` against the product-and-sum it stands for.

mod attention;
mod cross_entropy;
mod dropout;
mod gated_residual;
mod gelu;
mod layer_norm;
mod linear;
mod norm_act;
pub mod reference;
mod seed;
mod softmax;

pub use attention::{attention, attention_packed};
pub use cross_entropy::cross_entropy_terms;
pub use dropout::dropout;
pub(crate) use dropout::KeepMask;
pub use gated_residual::gated_residual;
pub use gelu::gelu;
pub use layer_norm::layer_norm;
pub(crate) use linear::as_matrix;
pub use linear::linear;
pub use norm_act::{norm_act, NormAct};
pub use seed::seed;
pub use softmax::masked_softmax;

use candle_core::Tensor;

/// The last dimension of `x`, or an error naming `what` for a scalar.
fn last_dim(x: &Tensor, what: &str) -> candle_core::Result<usize> {
    match x.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => candle_core::bail!(
            "{what}: expected a non-empty last dimension, got {:?}",
            x.dims()
        ),
    }
}
