//! # lsnn-layers
//!
//! The layers of SPEC §3 as candle modules:
//!
//! - [`fused`]: LayerNorm, GELU, the attention softmax and the cross-entropy as single CPU ops with
//!   their own backward;
//! - [`lif`]: leaky integrate-and-fire neurons with surrogate gradients — fused CPU custom ops for
//!   the multi-step recurrence (forward and BPTT backward in one pass each) and the per-step
//!   [`lif::reference`] composition;
//! - [`encoder::SpikingEncoder`], [`cfc::Cfc`], [`block::HybridLiquidSpikingBlock`],
//!   [`attention::MultiHeadSpikingAttention`], [`model::LanguageModel`];
//! - [`config::ModelConfig`]: the run configuration, reading the Python original's files;
//! - [`rng::SeededRng`] and [`nn::SeededInit`]: every random draw from one seeded generator.
//!
//! This crate does no file I/O: weights arrive through a `VarBuilder`, configs as strings.
#![deny(missing_docs)]

pub mod attention;
pub mod block;
pub mod cfc;
mod cfc_fused;
pub mod config;
pub mod encoder;
mod error;
pub mod fused;
pub mod kernel;
pub mod lif;
pub mod model;
pub mod nn;
pub mod rng;

pub use attention::{AttentionConfig, MultiHeadSpikingAttention};
pub use block::{BlockConfig, BlockState, HybridLiquidSpikingBlock};
pub use cfc::{Cfc, CfcConfig, CfcMode};
pub use config::ModelConfig;
pub use encoder::{SpikingEncoder, SpikingEncoderConfig};
pub use error::{LayerError, Result};
pub use lif::{LifConfig, ResetMechanism, Surrogate};
pub use model::{LanguageModel, LmLoss, LmState};
pub use nn::{Mode, SeededInit};
pub use rng::SeededRng;

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
