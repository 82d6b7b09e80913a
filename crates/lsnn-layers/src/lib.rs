//! # lsnn-layers
//!
//! The layers of SPEC §3 as candle modules a candle user can drop into their own model:
//!
//! - [`lif`]: leaky integrate-and-fire neurons with surrogate gradients — fused CPU custom ops
//!   for the multi-step recurrence (forward and BPTT backward in one pass each), state in and
//!   out, the per-step [`lif::reference`] composition, and the [`lif::Leaky`] layer;
//! - [`encoder::SpikingEncoder`], [`cfc::Cfc`], [`block::HybridLiquidSpikingBlock`],
//!   [`attention::MultiHeadSpikingAttention`], [`model::LanguageModel`] — each implementing
//!   candle's `Module` or (with dropout) `ModuleT`, the CfC also `candle_nn::rnn::RNN`;
//! - [`fused`]: the linear layer, LayerNorm, GELU, the attention softmax and the cross-entropy as
//!   single CPU ops with their own backward, and their compositions in [`fused::reference`];
//! - [`kernel`]: the plumbing of the fused ops — the packing convention for state and parameters,
//!   the switch that forces the composed path (every device's path) on the CPU, threading;
//! - [`model::ModelConfig`]: the run configuration, reading the Python original's files;
//! - [`rng::SeededRng`] and [`nn::SeededInit`]: every random draw from one seeded generator,
//!   for lsnn layers and candle-nn layers in one `VarBuilder` alike.
//!
//! This crate does no file I/O: weights arrive through a `VarBuilder`, configs as strings.
//!
//! Call [`init`] first in a program that uses these layers (see its docs for why).
#![deny(missing_docs)]

pub mod attention;
pub mod block;
pub mod cfc;
pub mod encoder;
mod error;
pub mod fused;
pub mod kernel;
pub mod lif;
pub mod model;
pub mod nn;
pub mod rng;
mod threading;

/// The configuration module under its former path.
pub use model::config;

pub use attention::{AttentionConfig, MultiHeadSpikingAttention};
pub use block::{BlockConfig, BlockState, HybridLiquidSpikingBlock};
pub use cfc::{Cfc, CfcConfig, CfcMode, CfcState};
pub use encoder::{SpikingEncoder, SpikingEncoderConfig};
pub use error::{LayerError, Result};
pub use lif::{Leaky, LifConfig, LifState, ResetMechanism, Surrogate};
pub use model::{LanguageModel, LmLoss, LmState, ModelConfig};
pub use nn::{DropoutRng, Mode, SeededInit};
pub use rng::SeededRng;
pub use threading::init;

use candle_core::{DType, Device};
use candle_nn::VarMap;

/// The trainable variables of `varmap`, sorted by name (a stable order for optimizers, EMA and
/// checkpoints).
pub fn named_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    let mut v: Vec<(String, candle_core::Var)> = varmap
        .data()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A freshly initialised model (SPEC §3.7 initialisation, from `rng`) and the [`VarMap`] holding
/// its trainable variables under the SPEC §3.7 names.
pub fn init_model(
    cfg: &ModelConfig,
    rng: SeededRng,
    device: &Device,
) -> Result<(LanguageModel, VarMap)> {
    let varmap = VarMap::new();
    let vb = SeededInit::var_builder(&varmap, rng, DType::F32, device);
    let model = LanguageModel::new(cfg, vb)?;
    Ok((model, varmap))
}
