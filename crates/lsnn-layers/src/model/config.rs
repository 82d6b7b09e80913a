//! [`ModelConfig`]: the network's configuration, with [`Default`] equal to design §9.3's model, its
//! checks, and the layer configurations derived from it. (The rules for the Python original's
//! files, and the trainer's own settings, are lsnn-train's.)

use crate::attention::{AttentionConfig, AttentionKernel};
use crate::block::BlockConfig;
use crate::cfc::CfcMode;
use crate::error::{LayerError, Result};
use crate::lif::{BetaForm, Learn, LifConfig, ResetMechanism, Surrogate};
use crate::ltc::LtcConstraint;
use crate::model::task::Readout;
use crate::neuron::Neuron;
use serde::{Deserialize, Serialize};

pub use super::liquid::LtcWiring;

/// The surrogate gradient's family, as written in config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SurrogateKind {
    /// fast_sigmoid(k = `surrogate_slope`).
    #[default]
    FastSigmoid,
    /// atan(α = `surrogate_alpha`).
    Atan,
    /// sigmoid(k = `surrogate_slope`).
    Sigmoid,
    /// The triangle of half-width `surrogate_width` (default 1).
    Triangular,
    /// The straight-through estimator.
    StraightThrough,
    /// spike_rate_escape(β = `surrogate_beta` (default 1), k = `surrogate_slope`).
    SpikeRateEscape,
}

/// The hybrid liquid–spiking network's configuration: every layer's size and setting, and the
/// language model's objective (label smoothing) and training window. The trainer's settings
/// (optimizer, schedule, EMA, checkpoints) are lsnn-train's `TrainConfig`; the rules for the
/// Python original's files are lsnn-train's too. In JSON a missing field takes its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// `"llm"` (default), `"regression"` (or the original's `"robotics"`) or
    /// `"classification"` ([`Task::of`](crate::model::task::Task::of)).
    pub task_type: String,
    /// Input width: the embedding width's default for `"llm"`; the feature count F of the
    /// sequence tasks.
    pub input_dim: usize,
    /// Embedding width D_emb.
    pub embedding_dim: usize,
    /// Model width D.
    pub hidden_dim: usize,
    /// Output width: the vocabulary's default for `"llm"`; the target width F_out of
    /// `"regression"`, the class count of `"classification"`.
    pub output_dim: usize,
    /// Vocabulary size V.
    pub vocab_size: usize,
    /// Liquid units H.
    pub liquid_units: usize,
    /// `"cfc"`: the dense CfC of design §2.3; `"ncp"`: the wired CfC over an AutoNCP wiring of
    /// `liquid_units` neurons (design §2.3.3; `ncp_outputs`, `ncp_sparsity`, `ncp_seed`);
    /// `"ltc"`: the LTC of design §2.14 (`ltc_wiring`, `ltc_ode_unfolds`, `ltc_constraint`;
    /// `cfc_time_span` is its elapsed time per step).
    pub liquid_backbone: String,
    /// Spiking units S.
    pub spiking_units: usize,
    /// LIF threshold θ.
    pub spike_threshold: f64,
    /// LIF decay β.
    pub beta: f64,
    /// Hybrid blocks.
    pub num_layers: usize,
    /// Encoder spike steps T.
    pub num_spike_steps: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Training sequence length L.
    pub sequence_length: usize,
    /// Size of the position table.
    pub max_position_embeddings: usize,
    /// Dropout after each block and in the head.
    pub dropout: f64,
    /// Accepted for compatibility; attention has no dropout (design §2.6).
    pub attention_dropout: f64,
    /// Dropout on the embeddings.
    pub embedding_dropout: f64,
    /// LayerNorm ε.
    pub layer_norm_eps: f64,
    /// Std of the embedding initialisation.
    pub initializer_range: f64,
    /// Attention rate-code steps.
    pub attention_spike_steps: usize,
    /// The attention core: `"auto"` (default: the materialised scores up to 128 positions, tiles
    /// above), `"tiled"` (O(L) memory) or `"materialized"` (design §2.5.1); absent from files at
    /// its default.
    #[serde(skip_serializing_if = "AttentionKernel::is_auto")]
    pub attention_kernel: AttentionKernel,
    /// CfC backbone width (the dense cell's; a wired cell has no backbone).
    pub backbone_units: usize,
    /// CfC backbone depth, 0 (the heads read [x; h]) or more.
    pub backbone_layers: usize,
    /// CfC mixing mode.
    pub cfc_mode: CfcMode,
    /// LIF reset mechanism.
    pub reset_mechanism: ResetMechanism,
    /// Surrogate family.
    pub surrogate: SurrogateKind,
    /// fast_sigmoid slope k.
    pub surrogate_slope: f64,
    /// atan α.
    pub surrogate_alpha: f64,
    /// The triangular surrogate's half-width (default 1; absent from files that do not set it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surrogate_width: Option<f64>,
    /// spike_rate_escape's β (default 1; absent from files that do not set it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surrogate_beta: Option<f64>,
    /// Whether the encoders' and attention's LIF decay β is learned: `"fixed"` (default),
    /// `"shared"` or `"per_neuron"` (snnTorch's `learn_beta`); absent from files at its default.
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_beta: Learn,
    /// Whether their threshold θ is learned, as for β (snnTorch's `learn_threshold`).
    #[serde(skip_serializing_if = "Learn::is_fixed")]
    pub learn_threshold: Learn,
    /// A learned β's form: `"direct"` (default; an update taking it out of (0, 1] is an error)
    /// or `"sigmoid"` (β = sigmoid(w), SpikingJelly's parametric LIF).
    #[serde(skip_serializing_if = "BetaForm::is_direct")]
    pub beta_form: BetaForm,
    /// The neuron of the encoders and the attention: `{"kind": "leaky"}` (default; absent from
    /// files then), `{"kind": "synaptic", "alpha": 0.9}` (design §2.10), `{"kind": "rleaky",
    /// "connection": "all_to_all"}` (§2.11), `{"kind": "alpha", "alpha": 0.97}` (§2.12) or
    /// `{"kind": "alif", "adapt_jump": 0.2}` (§2.13, with `reset_mechanism` "zero"), sharing the
    /// LIF settings above.
    #[serde(skip_serializing_if = "Neuron::is_leaky")]
    pub neuron: Neuron,
    /// Label smoothing of the training objective.
    pub label_smoothing: f64,
    /// Activation recomputation: a training step keeps only each trunk layer's input and runs
    /// the layer again in backward, replaying its dropout masks (design §2.6.1); the gradients
    /// are the plain step's, bit for bit. Absent from files when off (the default).
    #[serde(skip_serializing_if = "is_false")]
    pub recompute_activations: bool,
    /// Truncated BPTT (language model): a training window is cut into chunks of this many
    /// positions, each run forward and backward with the liquid state and attention's earlier
    /// keys and values carried in detached (design §2.6.2); one optimizer step per batch.
    /// Absent (the default): back-propagation through the whole window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tbptt: Option<usize>,
    /// Dropout on each encoder's first spike train (the original's fixed 0.2).
    pub encoder_dropout: f64,
    /// Dropout after each block's fusion (the original's fixed 0.1).
    pub block_dropout: f64,
    /// Weight of each block's potential-based normalisation term (the original's fixed 0.1).
    pub potential_scale: f64,
    /// The CfC's time span of every step (1.0, as ncps without `timespans`).
    pub cfc_time_span: f64,
    /// `"ncp"`: the AutoNCP's motor neurons, the cell's output width (default ⌊0.3·liquid_units⌋,
    /// at least 1 — ncps' suggestion).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncp_outputs: Option<usize>,
    /// `"ncp"`: the AutoNCP's sparsity level, 0.1..=1.0 (default 0.5, ncps').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncp_sparsity: Option<f64>,
    /// `"ncp"`: the wiring's seed (default 22222, ncps').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ncp_seed: Option<u32>,
    /// `"ltc"`: `"fully_connected"` (default, the dense LTC) or `"ncp"` (the AutoNCP of the
    /// `ncp_*` fields).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ltc_wiring: Option<LtcWiring>,
    /// `"ltc"`: solver steps per position (default 6, ncps').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ltc_ode_unfolds: Option<usize>,
    /// `"ltc"`: `"implicit"` (default, ncps' `LTC` wrapper's: w, sensory_w, cm, gleak read
    /// through softplus) or `"explicit"` (`LTCCell`'s: clamped to ≥ 0 after each optimizer step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ltc_constraint: Option<LtcConstraint>,
    /// `"classification"`: how a sequence becomes one vector, `"last"` (default) or `"mean"`
    /// over the valid positions; absent from files of other tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readout: Option<Readout>,
}

impl Default for ModelConfig {
    /// design §9.3: the lm-small model of design §9.1.
    fn default() -> Self {
        ModelConfig {
            task_type: "llm".into(),
            input_dim: 128,
            embedding_dim: 128,
            hidden_dim: 128,
            output_dim: 256,
            vocab_size: 256,
            liquid_units: 64,
            liquid_backbone: "cfc".into(),
            spiking_units: 64,
            spike_threshold: 1.0,
            beta: 0.95,
            num_layers: 2,
            num_spike_steps: 4,
            num_attention_heads: 4,
            sequence_length: 64,
            max_position_embeddings: 64,
            dropout: 0.1,
            attention_dropout: 0.1,
            embedding_dropout: 0.1,
            layer_norm_eps: 1e-5,
            initializer_range: 0.02,
            attention_spike_steps: 8,
            attention_kernel: AttentionKernel::Auto,
            recompute_activations: false,
            tbptt: None,
            backbone_units: 128,
            backbone_layers: 1,
            cfc_mode: CfcMode::Default,
            reset_mechanism: ResetMechanism::Subtract,
            surrogate: SurrogateKind::FastSigmoid,
            surrogate_slope: 25.0,
            surrogate_alpha: 2.0,
            label_smoothing: 0.1,
            encoder_dropout: 0.2,
            block_dropout: 0.1,
            potential_scale: 0.1,
            cfc_time_span: 1.0,
            ncp_outputs: None,
            ncp_sparsity: None,
            ncp_seed: None,
            ltc_wiring: None,
            ltc_ode_unfolds: None,
            ltc_constraint: None,
            surrogate_width: None,
            surrogate_beta: None,
            readout: None,
            learn_beta: Learn::Fixed,
            learn_threshold: Learn::Fixed,
            beta_form: BetaForm::Direct,
            neuron: Neuron::Leaky {},
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The error for heads that do not divide `hidden`, with the nearest valid values.
pub fn heads_error(hidden: usize, heads: usize) -> LayerError {
    // The divisors of `hidden` in O(√hidden) steps, never a walk over every value up to it.
    let mut divisors = Vec::new();
    let mut d = 1usize;
    while d.saturating_mul(d) <= hidden {
        if hidden.is_multiple_of(d) {
            divisors.push(d);
            divisors.push(hidden / d);
        }
        d += 1;
    }
    divisors.sort_unstable();
    divisors.dedup();
    divisors.sort_by_key(|&d| d.abs_diff(heads));
    let mut hs: Vec<usize> = divisors.into_iter().take(2).collect();
    hs.sort();
    let suggest_heads = hs
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(" or ");
    let suggest_hidden = match hidden.checked_div(heads) {
        None => "any (heads must be at least 1)".to_string(),
        Some(q) => {
            let lo = q * heads;
            let hi = lo.saturating_add(heads);
            if lo == 0 {
                hi.to_string()
            } else {
                format!("{lo} or {hi}")
            }
        }
    };
    LayerError::HeadsDoNotDivide {
        hidden,
        heads,
        suggest_heads,
        suggest_hidden,
    }
}

impl ModelConfig {
    /// A config from lsnn's JSON (a missing field takes its default; an unknown one is an
    /// error), checked. The Python original's files follow other rules: lsnn-train reads them.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: ModelConfig =
            serde_json::from_str(text).map_err(|e| LayerError::config("<json>", e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every field, resolved, as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config always serialises")
    }

    /// Checks every constraint the model relies on.
    pub fn validate(&self) -> Result<()> {
        self.check_bounds()?;
        self.check_task()?;
        self.check_liquid()?;
        for (name, v) in [
            ("embedding_dim", self.embedding_dim),
            ("hidden_dim", self.hidden_dim),
            ("vocab_size", self.vocab_size),
            ("liquid_units", self.liquid_units),
            ("spiking_units", self.spiking_units),
            ("num_layers", self.num_layers),
            ("num_spike_steps", self.num_spike_steps),
            ("num_attention_heads", self.num_attention_heads),
            ("sequence_length", self.sequence_length),
            ("max_position_embeddings", self.max_position_embeddings),
            ("attention_spike_steps", self.attention_spike_steps),
            ("backbone_units", self.backbone_units),
        ] {
            if v == 0 {
                return Err(LayerError::config(name, "0; expected at least 1"));
            }
        }
        if !self.hidden_dim.is_multiple_of(self.num_attention_heads) {
            return Err(heads_error(self.hidden_dim, self.num_attention_heads));
        }
        // The encoder's two spiking layers in a row; the attention's one rate code.
        self.neuron
            .check_steps("num_spike_steps", self.num_spike_steps, 2)?;
        self.neuron
            .check_steps("attention_spike_steps", self.attention_spike_steps, 1)?;
        self.check_tbptt()?;
        if self.sequence_length > self.max_position_embeddings {
            return Err(LayerError::config(
                "sequence_length",
                format!(
                    "{} exceeds max_position_embeddings {}",
                    self.sequence_length, self.max_position_embeddings
                ),
            ));
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("attention_dropout", self.attention_dropout),
            ("embedding_dropout", self.embedding_dropout),
            ("label_smoothing", self.label_smoothing),
            ("encoder_dropout", self.encoder_dropout),
            ("block_dropout", self.block_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(LayerError::config(
                    name,
                    format!("{p}; expected a value in [0, 1)"),
                ));
            }
        }
        for (name, v) in [
            ("layer_norm_eps", self.layer_norm_eps),
            ("initializer_range", self.initializer_range),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(LayerError::config(
                    name,
                    format!("{v}; expected a positive number"),
                ));
            }
        }
        for (name, v) in [
            ("potential_scale", self.potential_scale),
            ("cfc_time_span", self.cfc_time_span),
        ] {
            if !v.is_finite() {
                return Err(LayerError::config(
                    name,
                    format!("{v}; expected a finite number"),
                ));
            }
        }
        self.neuron.validate(&self.lif())?;
        self.check_wiring()?;
        // A setting of another surrogate than the one chosen is a mistake, not a no-op.
        for (field, set, owner) in [
            (
                "surrogate_width",
                self.surrogate_width.is_some(),
                SurrogateKind::Triangular,
            ),
            (
                "surrogate_beta",
                self.surrogate_beta.is_some(),
                SurrogateKind::SpikeRateEscape,
            ),
        ] {
            if set && self.surrogate != owner {
                return Err(LayerError::config(
                    field,
                    format!(
                        "set with surrogate {:?}; expected it only with {owner:?}",
                        self.surrogate
                    ),
                ));
            }
        }
        Ok(())
    }

    /// With the `"ncp"` wiring's defaults written into its fields (for a resolved config file that
    /// states every value), and likewise the surrogate's own settings and a classifier's
    /// readout; unchanged for another backbone.
    pub fn with_ncp_resolved(mut self) -> Self {
        if self.task_type == "classification" {
            self.readout = Some(self.readout());
        }
        if let Some(n) = self.ncp() {
            self.ncp_outputs = Some(n.outputs);
            self.ncp_sparsity = Some(n.sparsity);
            self.ncp_seed = Some(n.seed);
        }
        if let Some(l) = self.ltc() {
            self.ltc_wiring = Some(self.ltc_wiring.unwrap_or_default());
            self.ltc_ode_unfolds = Some(l.ode_unfolds);
            self.ltc_constraint = Some(l.constraint);
        }
        // The same for the surrogate settings that belong to one kind only.
        match self.surrogate {
            SurrogateKind::Triangular => {
                self.surrogate_width = Some(self.surrogate_width.unwrap_or(1.0))
            }
            SurrogateKind::SpikeRateEscape => {
                self.surrogate_beta = Some(self.surrogate_beta.unwrap_or(1.0))
            }
            _ => {}
        }
        self
    }

    fn check_tbptt(&self) -> Result<()> {
        let Some(k) = self.tbptt else {
            return Ok(());
        };
        if k == 0 {
            return Err(LayerError::config(
                "tbptt",
                "0; expected a chunk of at least 1 position",
            ));
        }
        if self.task()?.is_sequence() {
            return Err(LayerError::Unsupported {
                feature: format!("tbptt with task_type \"{}\"", self.task_type),
                detail: "truncated BPTT is implemented for the language model; the sequence tasks \
                         train on whole sequences (leave tbptt out)"
                    .into(),
            });
        }
        if self.recompute_activations {
            return Err(LayerError::Unsupported {
                feature: "tbptt with recompute_activations".into(),
                detail: "choose one: a chunk's stages keep their graphs (set \
                         recompute_activations to false, or leave tbptt out)"
                    .into(),
            });
        }
        Ok(())
    }

    /// The LIF parameters.
    pub fn lif(&self) -> LifConfig {
        let surrogate = match self.surrogate {
            SurrogateKind::FastSigmoid => Surrogate::fast_sigmoid(self.surrogate_slope),
            SurrogateKind::Atan => Surrogate::atan(self.surrogate_alpha),
            SurrogateKind::Sigmoid => Surrogate::sigmoid(self.surrogate_slope),
            SurrogateKind::Triangular => Surrogate::triangular(self.surrogate_width.unwrap_or(1.0)),
            SurrogateKind::StraightThrough => Surrogate::straight_through(),
            SurrogateKind::SpikeRateEscape => Surrogate::spike_rate_escape(
                self.surrogate_beta.unwrap_or(1.0),
                self.surrogate_slope,
            ),
        };
        LifConfig::new(self.beta)
            .with_threshold(self.spike_threshold)
            .with_reset(self.reset_mechanism)
            .with_surrogate(surrogate)
            .with_learn_beta(self.learn_beta, self.beta_form)
            .with_learn_threshold(self.learn_threshold)
    }

    /// The block configuration.
    pub fn block(&self) -> BlockConfig {
        BlockConfig {
            d_model: self.hidden_dim,
            spiking_units: self.spiking_units,
            liquid_units: self.liquid_units,
            spike_steps: self.num_spike_steps,
            lif: self.lif(),
            neuron: self.neuron,
            backbone_units: self.backbone_units,
            backbone_layers: self.backbone_layers,
            cfc_mode: self.cfc_mode,
            cfc_ts: self.cfc_time_span,
            ncp: self.ncp(),
            ltc: self.ltc(),
            layer_norm_eps: self.layer_norm_eps,
            encoder_dropout: self.encoder_dropout,
            block_dropout: self.block_dropout,
            potential_scale: self.potential_scale,
            seed: 0,
        }
    }

    /// The attention configuration.
    pub fn attention(&self) -> AttentionConfig {
        AttentionConfig::new(self.hidden_dim, self.num_attention_heads)
            .with_spike_steps(self.attention_spike_steps)
            .with_lif(self.lif())
            .with_neuron(self.neuron)
            .with_kernel(self.attention_kernel)
    }

    /// Number of attention layers (one after every odd block).
    pub fn num_attention_layers(&self) -> usize {
        self.num_layers / 2
    }
}
