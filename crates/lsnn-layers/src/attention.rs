//! MultiHeadSpikingAttention (design §2.5): [B, L, D] → [B, L, D].
//!
//! ```text
//! q, k, v = W_q x, W_k x, W_v x                      split into heads [B, heads, L, D/heads]
//! q̂, k̂, v̂ = LIF firing rates over spike_steps with a constant current (rate form, design §2.1)
//! A = softmax(q̂·k̂ᵀ / √(D/heads) + mask)             causal (default) or none
//! out = W_o · merge_heads(A·v̂)
//! ```
//! The rate is elementwise, so it is taken before the head split. The core softmax(…)·v̂ is one
//! of two ops ([`AttentionKernel`]): the product q̂·k̂ᵀ, the fused scaled, masked softmax
//! ([`crate::fused::masked_softmax`]; candle-nn's `softmax_last_dim` has no backward, design §6)
//! and a product, which holds the [L, L] probabilities for backward; or one op working in tiles
//! with its own backward ([`crate::fused::attention`], design §2.5.1), which holds nothing
//! [L, L], so memory is linear in L. By default sequences of more than 128 keys take the tiles.
//! Keys: `q`, `k`, `v`, `o` (`.weight` `[D, D]`, `.bias` `[D]`).

use crate::error::{LayerError, Result};
use crate::firing::LayerStats;
use crate::firing::Raster;
use crate::lif::LifConfig;
use crate::neuron::{Neuron, SpikingLayer};
use crate::nn::{check_width, Linear};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Hyperparameters of [`MultiHeadSpikingAttention`].
///
/// ```
/// use lsnn_layers::AttentionConfig;
/// let cfg = AttentionConfig::new(128, 4).with_spike_steps(8);
/// assert_eq!(cfg.head_dim(), 32);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    /// Model width D.
    pub d_model: usize,
    /// Heads (must divide D).
    pub heads: usize,
    /// Spike steps of the rate code (default 8).
    #[serde(default = "default_steps")]
    pub spike_steps: usize,
    /// LIF parameters.
    #[serde(default)]
    pub lif: LifConfig,
    /// The neuron of the rate code (default leaky; left out of a saved config then).
    #[serde(default, skip_serializing_if = "Neuron::is_leaky")]
    pub neuron: Neuron,
    /// Causal mask (default true).
    #[serde(default = "default_causal")]
    pub causal: bool,
    /// Which op computes the attention core (default [`AttentionKernel::Auto`]).
    #[serde(default, skip_serializing_if = "AttentionKernel::is_auto")]
    pub kernel: AttentionKernel,
}

/// The op that computes softmax(scale·q̂k̂ᵀ + mask)·v̂ (design §2.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKernel {
    /// [`Self::Materialized`] for at most [`AttentionKernel::AUTO_TILED_ABOVE`] keys, where the
    /// scores are small and every existing run, checkpoint and parity figure keeps its bits;
    /// [`Self::Tiled`] for longer sequences.
    #[default]
    Auto,
    /// [`crate::fused::attention`]: tiles with a running maximum and sum, O(L) memory.
    Tiled,
    /// [`crate::fused::reference::attention`]: the [L, L] scores and probabilities held for
    /// backward, O(L²) memory.
    Materialized,
}

impl AttentionKernel {
    /// [`Self::Auto`] tiles above this many keys (lm-small's 64 and lm-medium's 128 positions
    /// stay materialised).
    pub const AUTO_TILED_ABOVE: usize = 128;

    /// True for [`Self::Auto`] (the default, left out of files).
    pub fn is_auto(&self) -> bool {
        *self == AttentionKernel::Auto
    }

    /// Whether attention over `keys` keys takes the tiled op.
    pub fn tiles(&self, keys: usize) -> bool {
        match self {
            AttentionKernel::Auto => keys > Self::AUTO_TILED_ABOVE,
            AttentionKernel::Tiled => true,
            AttentionKernel::Materialized => false,
        }
    }
}

fn default_steps() -> usize {
    8
}
fn default_causal() -> bool {
    true
}

impl AttentionConfig {
    /// Attention over width `d_model` with `heads` heads, the rest at their defaults.
    pub fn new(d_model: usize, heads: usize) -> Self {
        AttentionConfig {
            d_model,
            heads,
            spike_steps: default_steps(),
            lif: LifConfig::default(),
            neuron: Neuron::Leaky {},
            causal: default_causal(),
            kernel: AttentionKernel::Auto,
        }
    }

    /// With this attention core.
    pub fn with_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// With `steps` rate-code steps.
    pub fn with_spike_steps(mut self, steps: usize) -> Self {
        self.spike_steps = steps;
        self
    }

    /// With these LIF parameters.
    pub fn with_lif(mut self, lif: LifConfig) -> Self {
        self.lif = lif;
        self
    }

    /// With this neuron for the rate code.
    pub fn with_neuron(mut self, neuron: Neuron) -> Self {
        self.neuron = neuron;
        self
    }

    /// With or without the causal mask.
    pub fn with_causal(mut self, causal: bool) -> Self {
        self.causal = causal;
        self
    }

    /// D / heads.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
}

/// Key/value cache for streaming: k̂ and v̂ of the positions seen so far.
#[derive(Debug, Clone)]
pub struct AttentionCache {
    k: Tensor,
    v: Tensor,
    len: usize,
    capacity: usize,
}

impl AttentionCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The k̂ and v̂ [B, heads, P, dh] of the P positions before a chunk, detached
/// ([`MultiHeadSpikingAttention::forward_with_past`]).
#[derive(Debug, Clone)]
pub struct AttentionPast {
    k: Tensor,
    v: Tensor,
}

impl AttentionPast {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.k.dims()[2]
    }

    /// True when no position is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The spiking attention layer.
#[derive(Debug, Clone)]
pub struct MultiHeadSpikingAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    cfg: AttentionConfig,
    /// The spiking layer shared by the q, k and v rate codes (with its learned parameters).
    lif: SpikingLayer,
}

impl MultiHeadSpikingAttention {
    /// Creates the layer's weights through `vb`.
    pub fn new(cfg: &AttentionConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.heads == 0 || !cfg.d_model.is_multiple_of(cfg.heads) {
            return Err(crate::config::heads_error(cfg.d_model, cfg.heads));
        }
        if cfg.spike_steps == 0 {
            return Err(LayerError::config(
                "attention_spike_steps",
                "0; expected at least 1",
            ));
        }
        cfg.neuron
            .check_steps("attention_spike_steps", cfg.spike_steps, 1)?;
        let d = cfg.d_model;
        let lif = SpikingLayer::new(&cfg.lif, &cfg.neuron, d, vb.pp("lif"))?;
        Ok(MultiHeadSpikingAttention {
            q: Linear::new(d, d, vb.pp("q"))?,
            k: Linear::new(d, d, vb.pp("k"))?,
            v: Linear::new(d, d, vb.pp("v"))?,
            o: Linear::new(d, d, vb.pp("o"))?,
            cfg: cfg.clone(),
            lif,
        })
    }

    /// The same layer with detached parameters (see [`crate::nn::Linear::detached`]).
    pub fn detached(&self) -> Self {
        MultiHeadSpikingAttention {
            q: self.q.detached(),
            k: self.k.detached(),
            v: self.v.detached(),
            o: self.o.detached(),
            cfg: self.cfg.clone(),
            lif: self.lif.detached(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AttentionConfig {
        &self.cfg
    }

    fn rate(&self, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        let cur = lin.forward(x)?;
        self.lif.const_rate(&cur, self.cfg.spike_steps)
    }

    /// [B, L, D] → [B, heads, L, dh].
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, _) = x.dims3()?;
        Ok(x.reshape((b, l, self.cfg.heads, self.cfg.head_dim()))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// The firing rates q̂, k̂, v̂ [B, L, D] (exposed for tests that check attention given them).
    pub fn rates(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((
            self.rate(&self.q, x)?,
            self.rate(&self.k, x)?,
            self.rate(&self.v, x)?,
        ))
    }

    /// Spike statistics of the q̂, k̂ and v̂ rate codes for x [B, L, D] (design §10.3), named
    /// `{prefix}.q`, `{prefix}.k` and `{prefix}.v`: one spiking layer (shared parameters) on
    /// three currents, each its own population of D neurons.
    pub fn firing(&self, x: &Tensor, prefix: &str) -> Result<[LayerStats; 3]> {
        let (q, k, v) = self.rates(x)?;
        let t = self.cfg.spike_steps;
        Ok([
            LayerStats::from_rates(format!("{prefix}.q"), &q, t)?,
            LayerStats::from_rates(format!("{prefix}.k"), &k, t)?,
            LayerStats::from_rates(format!("{prefix}.v"), &v, t)?,
        ])
    }

    /// The spike trains behind the q̂, k̂ and v̂ rate codes for one example x [1, L, D]
    /// (design §10.6), named as in [`Self::firing`].
    pub fn raster(&self, x: &Tensor, prefix: &str) -> Result<[Raster; 3]> {
        let (b, _, _) = x.dims3()?;
        if b != 1 {
            return Err(LayerError::Shape {
                what: "attention input for a raster",
                expected: "one example [1, L, D]".into(),
                actual: x.dims().to_vec(),
            });
        }
        let train = |lin: &Linear, part: &str| -> Result<Raster> {
            let s = self
                .lif
                .const_spikes(&lin.forward(x)?, self.cfg.spike_steps, None)?;
            Raster::from_train(format!("{prefix}.{part}"), &s.squeeze(1)?)
        };
        Ok([
            train(&self.q, "q")?,
            train(&self.k, "k")?,
            train(&self.v, "v")?,
        ])
    }

    /// Attention given the rates [B, L, D] each.
    pub fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, l, d) = q.dims3()?;
        let (q, k, v) = (self.split(q)?, self.split(k)?, self.split(v)?);
        let ctx = self
            .core(&q, &k, &v, self.cfg.causal)?
            .transpose(1, 2)?
            .reshape((b, l, d))?;
        Ok(self.o.forward(&ctx)?)
    }

    /// softmax(q·kᵀ/√dh + mask)·v for heads q [B, heads, Lq, dh], k and v [B, heads, Lk, dh],
    /// by the configured kernel.
    fn core(&self, q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Result<Tensor> {
        let scale = 1.0 / (self.cfg.head_dim() as f64).sqrt();
        let out = match self.cfg.kernel.tiles(k.dim(2)?) {
            true => crate::fused::attention(q, k, v, scale, causal)?,
            false => crate::fused::reference::attention(q, k, v, scale, causal)?,
        };
        Ok(out)
    }

    /// The sequence call for a chunk of a longer sequence (truncated BPTT, design §2.6.2):
    /// x [B, Lc, D] are the positions after those `past` holds, and each attends to every
    /// earlier position (the past's k̂ and v̂, detached: no gradient crosses into earlier
    /// chunks) and to its own chunk's causally. Returns the output [B, Lc, D] and the past
    /// extended by this chunk (detached). Without a past this is the sequence call; a past needs
    /// causal attention (an error otherwise). The past is concatenated anew for every chunk:
    /// O(L²/K) copies over a window in chunks of K.
    pub fn forward_with_past(
        &self,
        x: &Tensor,
        past: Option<&AttentionPast>,
    ) -> Result<(Tensor, AttentionPast)> {
        check_width(x, "attention input [B, L, D]", 3, self.cfg.d_model)?;
        let (b, l, d) = x.dims3()?;
        let (q, k, v) = self.rates(x)?;
        let (q, k, v) = (self.split(&q)?, self.split(&k)?, self.split(&v)?);
        if past.is_some() && !self.cfg.causal {
            return Err(LayerError::Unsupported {
                feature: "a past for non-causal attention".into(),
                detail: "a chunk would see its own later positions but not later chunks'; \
                         chunks need causal attention"
                    .into(),
            });
        }
        let (keys, values) = match past {
            Some(p) => {
                if p.k.dim(0)? != b {
                    return Err(LayerError::Shape {
                        what: "attention past",
                        expected: format!("{b} rows, the chunk's"),
                        actual: p.k.dims().to_vec(),
                    });
                }
                (Tensor::cat(&[&p.k, &k], 2)?, Tensor::cat(&[&p.v, &v], 2)?)
            }
            None => (k, v),
        };
        let ctx = self
            .core(&q, &keys, &values, self.cfg.causal)?
            .transpose(1, 2)?
            .reshape((b, l, d))?;
        let out = self.o.forward(&ctx)?;
        Ok((
            out,
            AttentionPast {
                k: keys.detach(),
                v: values.detach(),
            },
        ))
    }

    pub(crate) fn forward_unchecked(&self, x: &Tensor) -> Result<Tensor> {
        check_width(x, "attention input [B, L, D]", 3, self.cfg.d_model)?;
        let (q, k, v) = self.rates(x)?;
        self.attend(&q, &k, &v)
    }

    /// An empty cache for `batch` rows and up to `capacity` positions.
    pub fn new_cache(
        &self,
        batch: usize,
        capacity: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<AttentionCache> {
        let shape = (batch, self.cfg.heads, capacity, self.cfg.head_dim());
        Ok(AttentionCache {
            k: Tensor::zeros(shape, dtype, device)?,
            v: Tensor::zeros(shape, dtype, device)?,
            len: 0,
            capacity,
        })
    }

    /// One position x_t [B, D] → out_t [B, D], attending to the cached positions and itself
    /// (causal attention only; no gradient through the cache).
    pub fn step(&self, x: &Tensor, cache: &mut AttentionCache) -> Result<Tensor> {
        crate::nn::check_finite(x, "attention step input")?;
        self.step_unchecked(x, cache)
    }

    pub(crate) fn step_unchecked(&self, x: &Tensor, cache: &mut AttentionCache) -> Result<Tensor> {
        if !self.cfg.causal {
            return Err(LayerError::Unsupported {
                feature: "streaming non-causal attention".into(),
                detail: "a position would need the future; use the sequence call".into(),
            });
        }
        check_width(x, "attention step input [B, D]", 2, self.cfg.d_model)?;
        if cache.len >= cache.capacity {
            return Err(LayerError::SequenceTooLong {
                len: cache.len + 1,
                start: 0,
                max: cache.capacity,
            });
        }
        let (b, d) = x.dims2()?;
        let x3 = x.reshape((b, 1, d))?;
        let (q, k, v) = self.rates(&x3)?;
        let (q, k, v) = (self.split(&q)?, self.split(&k)?, self.split(&v)?);
        cache.k.slice_set(&k.detach(), 2, cache.len)?;
        cache.v.slice_set(&v.detach(), 2, cache.len)?;
        cache.len += 1;
        let keys = cache.k.narrow(2, 0, cache.len)?;
        let values = cache.v.narrow(2, 0, cache.len)?;
        let ctx = self
            .core(&q, &keys, &values, false)?
            .transpose(1, 2)?
            .reshape((b, d))?;
        Ok(self.o.forward(&ctx)?)
    }
}

impl Module for MultiHeadSpikingAttention {
    /// The sequence call: x [B, L, D] → [B, L, D].
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::nn::check_finite(x, "attention input")?;
        Ok(self.forward_unchecked(x)?)
    }
}
