//! Building blocks shared by the layers: train/eval [`Mode`] and the generator a layer owns for
//! candle's `ModuleT` ([`DropoutRng`]), a PyTorch-layout [`Linear`], a differentiable
//! [`LayerNorm`] (candle-nn's passes no gradient, design §6), input checks that reduce on the
//! device, and [`SeededInit`], a `VarBuilder` backend that creates trainable variables from the
//! project's seeded generator for every initialisation candle-nn asks for.

mod check;
mod init;
mod layer_norm;
mod linear;
mod mode;

pub use check::{check_finite, check_probability, check_width, clip};
pub use init::SeededInit;
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use mode::{dropout, DropoutRng, Mode};
