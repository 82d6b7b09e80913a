//! # lsnn-layers
//!
//! The layers of design §2 as candle modules a candle user can drop into their own model:
//!
//! - [`lif`]: leaky integrate-and-fire neurons with surrogate gradients — fused CPU custom ops
//!   for the multi-step recurrence (forward and BPTT backward in one pass each), state in and
//!   out, the per-step [`lif::reference`] composition, and the [`lif::Leaky`] layer;
//! - [`synaptic`]: the current-based LIF (snnTorch `Synaptic`) in the same forms, and the
//!   [`synaptic::Synaptic`] layer;
//! - [`encoder::SpikingEncoder`], [`cfc::Cfc`], [`block::HybridLiquidSpikingBlock`],
//!   [`attention::MultiHeadSpikingAttention`], [`model::LanguageModel`] — each implementing
//!   candle's `Module` or (with dropout) `ModuleT`, the CfC also `candle_nn::rnn::RNN`;
//! - [`firing`]: spike diagnostics, each spiking layer's spike counts per neuron
//!   ([`LayerStats`]), measured by the models' `loss_with_firing`;
//! - [`fused`]: the linear layer, LayerNorm, GELU, the attention softmax and the cross-entropy as
//!   single CPU ops with their own backward, and their compositions in [`fused::reference`];
//! - [`kernel`]: the plumbing of the fused ops — the packing convention for state and parameters,
//!   the switch that forces the composed path (every device's path) on the CPU, threading;
//! - [`model::ModelConfig`]: the run configuration, reading the Python original's files;
//! - [`rng::SeededRng`] and [`nn::SeededInit`]: every random draw from one seeded generator,
//!   for lsnn layers and candle-nn layers in one `VarBuilder` alike.
//!
//! This crate does no file I/O: weights arrive through a `VarBuilder`, configs as strings. The
//! math of every layer is in docs/design.md §2; the workspace around it in §1.
//!
//! Call [`init`] first in a program that uses these layers (see its docs for why).
//!
//! ## In a candle model
//!
//! ```
//! use candle_core::{DType, Device, Module, Tensor};
//! use candle_nn::VarMap;
//! use lsnn_layers::lif::{Leaky, LifConfig};
//! use lsnn_layers::{Cfc, CfcConfig, SeededInit, SeededRng, SpikingEncoder, SpikingEncoderConfig};
//!
//! # fn main() -> candle_core::Result<()> {
//! lsnn_layers::init();
//! let varmap = VarMap::new();
//! // One seeded builder for lsnn's layers and candle-nn's alike.
//! let vb = SeededInit::var_builder(&varmap, SeededRng::new(0), DType::F32, &Device::Cpu);
//! let encoder = SpikingEncoder::new(&SpikingEncoderConfig::new(4, 16), vb.pp("enc"))?;
//! let cfc = Cfc::new(&CfcConfig::new(16, 8).with_backbone(32, 1), vb.pp("cfc"))?;
//! let head = candle_nn::linear(8, 2, vb.pp("head"))?;
//! let lif = Leaky::new(&LifConfig::new(0.9))?;
//!
//! let x = Tensor::randn(0f32, 1., (3, 5, 4), &Device::Cpu)?;      // [B, L, F]
//! let rates = x.reshape((15, 4))?.apply_t(&encoder, false)?;      // spiking encoder: [B·L, 16]
//! let hs = cfc.forward(&rates.reshape((3, 5, 16))?)?;             // liquid cell: [B, L, 8]
//! let y = head.forward(&hs)?;                                     // candle-nn head: [B, L, 2]
//! assert_eq!(y.dims(), &[3, 5, 2]);
//! let spikes = lif.forward(&Tensor::ones((6, 3), DType::F32, &Device::Cpu)?)?; // [T, N]
//! assert_eq!(spikes.dims(), &[6, 3]);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod alif;
pub mod alpha;
pub mod attention;
pub mod block;
pub mod cfc;
pub mod encoder;
mod error;
pub mod firing;
pub mod fused;
pub mod kernel;
pub mod lif;
pub mod ltc;
pub mod model;
pub mod neuron;
pub mod nn;
pub mod rleaky;
pub mod rng;
pub mod spikegen;
pub mod stage_marks;
pub mod synaptic;
mod threading;
pub mod wiring;

/// The configuration module under its former path.
pub use model::config;

pub use attention::{AttentionConfig, AttentionKernel, MultiHeadSpikingAttention};
pub use block::{BlockConfig, BlockState, HybridLiquidSpikingBlock};
pub use cfc::{Cfc, CfcConfig, CfcMode, CfcState};
pub use encoder::{SpikingEncoder, SpikingEncoderConfig};
pub use error::{LayerError, Result};
pub use firing::{LayerStats, Raster};
pub use lif::{Leaky, LifConfig, LifState, ResetMechanism, Surrogate};
pub use model::{
    LanguageModel, LmLoss, LmState, ModelConfig, Readout, SeqInput, SeqLoss, SeqState,
    SequenceModel, Targets, Task,
};
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

/// A freshly initialised model (design §2.7 initialisation, from `rng`) and the [`VarMap`] holding
/// its trainable variables under the design §4.2 names.
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
