//! What a [`ModelConfig`] costs, computed from its numbers alone (design §8.2): the upper bounds
//! every size must respect, the exact parameter count, and an estimate of one training step's
//! activations — so that a run that cannot fit is refused before anything is allocated. All
//! arithmetic is checked (u128), so no config can overflow it.

use super::ModelConfig;
use crate::error::{LayerError, Result};

/// The largest width (embedding, hidden, vocabulary, spiking, liquid, backbone units).
pub const MAX_WIDTH: usize = 1 << 20;
/// The most layers, heads or spike steps.
pub const MAX_COUNT: usize = 1 << 12;
/// The longest sequence (and position table).
pub const MAX_POSITIONS: usize = 1 << 22;

impl ModelConfig {
    /// Checks every size against its upper bound ([`MAX_WIDTH`], [`MAX_COUNT`],
    /// [`MAX_POSITIONS`]).
    pub fn check_bounds(&self) -> Result<()> {
        let limits: [(&str, usize, usize); 14] = [
            ("input_dim", self.input_dim, MAX_WIDTH),
            ("embedding_dim", self.embedding_dim, MAX_WIDTH),
            ("hidden_dim", self.hidden_dim, MAX_WIDTH),
            ("output_dim", self.output_dim, MAX_WIDTH),
            ("vocab_size", self.vocab_size, MAX_WIDTH),
            ("liquid_units", self.liquid_units, MAX_WIDTH),
            ("spiking_units", self.spiking_units, MAX_WIDTH),
            ("backbone_units", self.backbone_units, MAX_WIDTH),
            ("num_layers", self.num_layers, MAX_COUNT),
            ("num_spike_steps", self.num_spike_steps, MAX_COUNT),
            ("num_attention_heads", self.num_attention_heads, MAX_COUNT),
            (
                "attention_spike_steps",
                self.attention_spike_steps,
                MAX_COUNT,
            ),
            ("sequence_length", self.sequence_length, MAX_POSITIONS),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITIONS,
            ),
        ];
        for (field, v, max) in limits {
            if v > max {
                return Err(LayerError::config(
                    field,
                    format!("{v}; expected at most {max}"),
                ));
            }
        }
        if let Some(k) = self.ltc_ode_unfolds.filter(|k| *k > MAX_COUNT) {
            return Err(LayerError::config(
                "ltc_ode_unfolds",
                format!("{k}; expected at most {MAX_COUNT}"),
            ));
        }
        if self.backbone_layers > MAX_COUNT {
            return Err(LayerError::config(
                "backbone_layers",
                format!("{}; expected at most {MAX_COUNT}", self.backbone_layers),
            ));
        }
        Ok(())
    }

    /// The liquid cell's output width and its parameters per block.
    fn liquid_parameters(&self) -> Result<(u128, u128)> {
        let (s, h, u) = (
            self.spiking_units as u128,
            self.liquid_units as u128,
            self.backbone_units as u128,
        );
        let pure = self.cfc_mode == crate::cfc::CfcMode::Pure;
        // ff1 (+ ff2, time_a, time_b) from `k` inputs to `n` units, or pure mode's ff1, w_tau, A.
        let heads = |k: u128, n: u128| {
            if pure {
                n * k + n + 2 * n
            } else {
                4 * (n * k + n)
            }
        };
        if let Some(ltc) = self.ltc() {
            // gleak, vleak, cm; sigma, mu, w, erev; the four sensory matrices; the mappings.
            let o = self.ncp().map_or(h, |n| n.outputs as u128);
            let maps = |m: crate::ltc::LtcMapping, width: u128| {
                (u128::from(m.has_weight()) + u128::from(m.has_bias())) * width
            };
            return Ok((
                o,
                3 * h
                    + 4 * h * h
                    + 4 * s * h
                    + maps(ltc.input_mapping, s)
                    + maps(ltc.output_mapping, o),
            ));
        }
        Ok(match self.ncp() {
            None => {
                let depth = self.backbone_layers as u128;
                let (backbone, k) = if depth == 0 {
                    (0, s + h)
                } else {
                    (u * (s + h) + u + (depth - 1) * (u * u + u), u)
                };
                (h, backbone + heads(k, h))
            }
            Some(ncp) => {
                let w = ncp.build(self.spiking_units)?;
                let mut inp = s;
                let mut total = 0;
                for ids in w.layer_list() {
                    let n = ids.len() as u128;
                    total += heads(inp + n, n);
                    inp = n;
                }
                (ncp.outputs as u128, total)
            }
        })
    }

    /// The number of trainable parameters, exactly as [`crate::LanguageModel::new`] (or, for a
    /// sequence task, [`crate::SequenceModel::new`]) creates them.
    pub fn parameter_count(&self) -> Result<u128> {
        self.check_bounds()?;
        let (v, e, d) = (
            self.vocab_size as u128,
            self.embedding_dim as u128,
            self.hidden_dim as u128,
        );
        let s = self.spiking_units as u128;
        let (out, liquid) = self.liquid_parameters()?;
        let linear = |o: u128, i: u128| o * i + o;
        let block = linear(2 * s, d)
            + linear(s, 2 * s)
            + 2 * s
            + liquid
            + linear(d, out + s)
            + 2 * d
            + linear(d, d)
            + 2 * d;
        let attentions = (self.num_layers / 2) as u128;
        let trunk = self.num_layers as u128 * block + attentions * 4 * linear(d, d);
        if self.task()?.is_sequence() {
            // in_proj, the trunk, the head D → D → D/2 → out.
            let (f, o) = (self.input_dim as u128, self.output_dim as u128);
            return Ok(linear(d, f) + trunk + linear(d, d) + linear(d / 2, d) + linear(o, d / 2));
        }
        Ok(v * e
            + self.max_position_embeddings as u128 * e
            + linear(d, e)
            + trunk
            + linear(2 * d, d)
            + 4 * d
            + linear(v, 2 * d))
    }

    /// An estimate of the bytes one training step's activations (and the gradients of those
    /// kept for backward) take at `batch` windows: per position and block the encoder's currents
    /// and rates, the liquid cell's backbone and heads, the fusion's D-wide tensors; per attention
    /// layer its D-wide tensors and, where the attention kernel materialises them, three
    /// B·heads·L² score tensors (the tiled kernel keeps one log-sum-exp per row and head instead,
    /// design §2.5.1); the head's 2D- and V-wide ones. Within about ±30% of the peaks measured at
    /// lm-small and lm-medium (design §8.2).
    pub fn training_step_bytes(&self, batch: usize) -> Result<u128> {
        self.check_bounds()?;
        let n = batch as u128 * self.sequence_length as u128;
        let (s, h, d, v) = (
            self.spiking_units as u128,
            self.liquid_units as u128,
            self.hidden_dim as u128,
            self.vocab_size as u128,
        );
        let u = if self.ncp().is_some() || self.ltc().is_some() || self.backbone_layers == 0 {
            0
        } else {
            self.backbone_units as u128 * self.backbone_layers as u128
        };
        let per_block = 4 * s + 2 * s + u + 3 * h + 4 * d;
        let l = self.sequence_length as u128;
        let heads = self.num_attention_heads as u128;
        let scores = if self.attention_kernel.tiles(self.sequence_length) {
            n * heads
        } else {
            batch as u128 * heads * l * l * 3
        };
        let attention = n * 4 * d + scores;
        let trunk =
            self.num_layers as u128 * n * per_block + (self.num_layers / 2) as u128 * attention;
        let floats = if self.task()?.is_sequence() {
            // Features and their projection in, the head's D- and D/2-wide tensors and the
            // outputs (a classifier's head reads one row per sequence; counted per position
            // all the same, an upper bound).
            let (f, o) = (self.input_dim as u128, self.output_dim as u128);
            n * 2 * (f + d) + trunk + n * (3 * d + 3 * o)
        } else {
            n * 2 * (self.embedding_dim as u128 + d) + trunk + n * (4 * d + 3 * v)
        };
        Ok(floats * 4)
    }
}
