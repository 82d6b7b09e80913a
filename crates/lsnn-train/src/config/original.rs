//! Reading the configuration files written by the Python original's `save_config` (design §5),
//! and lsnn's own `config.json`, into a [`RunConfig`] of the network's [`ModelConfig`] and the
//! trainer's [`super::TrainConfig`]. The original's file is one flat object of both kinds of
//! field; so is lsnn's.
//!
//! Rules (design §5): honoured fields are read; the original's fields lsnn has no use for are
//! accepted and ignored; `use_stdp`, `use_meta_plasticity` or `use_continual_learning` set to true,
//! unknown keys, heads that do not divide `hidden_dim`, and tasks or liquid backbones lsnn does not
//! have are clear errors. A field the file lacks (or holds as `null`) takes the original's own
//! derivation where it had one (`embedding_dim` = `input_dim`, `vocab_size` = `output_dim`,
//! `num_spike_steps` = max(1, sequence_length / 4), `attention_spike_steps` =
//! max(1, sequence_length / heads), `max_position_embeddings` = `sequence_length`, the dropouts
//! = `dropout`), else the design §9.3 default. lsnn's own fields, which the original never writes —
//! among them the constants the original hard-coded (`encoder_dropout` 0.2, `block_dropout` 0.1,
//! `potential_scale` 0.1, `cfc_time_span` 1.0) — take their defaults, so an original file keeps
//! the original's values.

use super::{RunConfig, TrainConfig};
use crate::error::{Result, TrainError};
use lsnn_layers::ModelConfig;
use serde_json::{Map, Value};

/// Fields of the original's `ModelConfig` that lsnn reads.
pub const HONOURED_FIELDS: &[&str] = &[
    "task_type",
    "input_dim",
    "embedding_dim",
    "hidden_dim",
    "output_dim",
    "vocab_size",
    "liquid_units",
    "liquid_backbone",
    "spiking_units",
    "spike_threshold",
    "beta",
    "num_layers",
    "num_spike_steps",
    "num_attention_heads",
    "sequence_length",
    "max_position_embeddings",
    "dropout",
    "attention_dropout",
    "embedding_dropout",
    "layer_norm_eps",
    "initializer_range",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "gradient_clip",
    "num_epochs",
    "seed",
    "device",
    "mixed_precision",
];

/// Fields of the original that are accepted whatever they hold (but see [`REFUSED_FLAGS`]).
pub const IGNORED_FIELDS: &[&str] = &[
    "use_cache",
    "multi_gpu_strategy",
    "gpu_ids",
    "distributed_backend",
    "sync_batchnorm",
    "find_unused_parameters",
    "conv_channels",
    "conv_kernel_sizes",
    "conv_strides",
    "conv_padding",
    "use_stdp",
    "stdp_type",
    "stdp_learning_rate",
    "stdp_tau_plus",
    "stdp_tau_minus",
    "stdp_target_rate",
    "stdp_layers_to_enhance",
    "use_meta_plasticity",
    "meta_lr",
    "meta_history_length",
    "meta_hidden_dim",
    "use_continual_learning",
    "consolidation_strength",
    "plasticity_decay",
    "use_experience_replay",
    "replay_buffer_size",
    "replay_sampling_strategy",
    "compute_importance_interval",
];

/// Flags whose `true` names a feature lsnn does not have.
pub const REFUSED_FLAGS: &[(&str, &str)] = &[
    ("use_stdp", "STDP plasticity"),
    ("use_meta_plasticity", "meta-plasticity"),
    ("use_continual_learning", "continual learning"),
];

/// lsnn's own optional fields.
pub const LSNN_FIELDS: &[&str] = &[
    "attention_spike_steps",
    "attention_kernel",
    "recompute_activations",
    "tbptt",
    "backbone_units",
    "backbone_layers",
    "cfc_mode",
    "reset_mechanism",
    "surrogate",
    "surrogate_slope",
    "surrogate_alpha",
    "surrogate_width",
    "surrogate_beta",
    "learn_beta",
    "learn_threshold",
    "beta_form",
    "neuron",
    "label_smoothing",
    "ema_decay",
    "warmup_steps",
    "gradient_accumulation_steps",
    "amsgrad",
    "cleanup_every",
    "early_stopping_patience",
    "encoder_dropout",
    "block_dropout",
    "potential_scale",
    "cfc_time_span",
    "ncp_outputs",
    "ncp_sparsity",
    "ncp_seed",
    "ltc_wiring",
    "ltc_ode_unfolds",
    "ltc_constraint",
    "readout",
    "monitor",
    "monitor_mode",
    "keep_best",
    "spike_encoding",
    "shard_rows",
    "memory_warn",
    "memory_critical",
    "memory_alert_hysteresis",
    "cleanup_on_critical",
    "spike_stats",
    "spike_silent_rate",
    "spike_dead_fraction",
    "spike_saturated_rate",
];

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(key: &str) -> Option<String> {
    // A key far longer than any known one has no near match (and must not cost O(len²)).
    if key.len() > 64 {
        return None;
    }
    HONOURED_FIELDS
        .iter()
        .chain(IGNORED_FIELDS)
        .chain(LSNN_FIELDS)
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min()
        .map(|(_, k)| k.to_owned())
}

/// Reads a config file's text (the original's or lsnn's) by the design §5 rules.
pub fn read_run_config(text: &str) -> Result<RunConfig<ModelConfig>> {
    let value: Value = serde_json::from_str(text)?;
    let Value::Object(map) = value else {
        return Err(TrainError::Config {
            field: "<root>".into(),
            message: "expected a JSON object of config fields".into(),
        });
    };
    read_run_config_map(map)
}

/// [`read_run_config`] on an already parsed object.
pub fn read_run_config_map(map: Map<String, Value>) -> Result<RunConfig<ModelConfig>> {
    for key in map.keys() {
        let k = key.as_str();
        if !(HONOURED_FIELDS.contains(&k)
            || IGNORED_FIELDS.contains(&k)
            || LSNN_FIELDS.contains(&k))
        {
            return Err(TrainError::UnknownField {
                field: crate::error::clip(key),
                suggestion: suggest(k),
            });
        }
    }
    for (flag, feature) in REFUSED_FLAGS {
        match map.get(*flag) {
            Some(Value::Bool(true)) => {
                return Err(TrainError::Unsupported {
                    feature: (*feature).to_string(),
                    detail: format!(
                        "`{flag}` is true, and lsnn does not implement {feature}; set it to false"
                    ),
                })
            }
            Some(Value::Bool(false)) | Some(Value::Null) | None => {}
            Some(other) => {
                return Err(TrainError::Config {
                    field: (*flag).to_string(),
                    message: format!("expected true or false, got {other}"),
                })
            }
        }
    }
    // Keep the fields lsnn reads; drop nulls so that they take their derivation.
    let mut kept = Map::new();
    for (k, v) in map {
        if !v.is_null() && !IGNORED_FIELDS.contains(&k.as_str()) {
            kept.insert(k, v);
        }
    }
    // Start from every default of both parts.
    let mut base = serde_json::to_value(ModelConfig::default())?;
    let obj = base
        .as_object_mut()
        .expect("a struct serialises to an object");
    if let Value::Object(t) = serde_json::to_value(TrainConfig::default())? {
        obj.extend(t);
    }
    for (k, v) in &kept {
        obj.insert(k.clone(), v.clone());
    }
    // The original's derivations for fields the file lacks, from the resolved values.
    let has = |k: &str| kept.contains_key(k);
    let u = |obj: &Map<String, Value>, k: &str| obj.get(k).and_then(Value::as_u64).unwrap_or(1);
    if !has("embedding_dim") && has("input_dim") {
        obj.insert("embedding_dim".into(), kept["input_dim"].clone());
    }
    if !has("input_dim") && has("embedding_dim") {
        obj.insert("input_dim".into(), kept["embedding_dim"].clone());
    }
    if !has("vocab_size") && has("output_dim") {
        obj.insert("vocab_size".into(), kept["output_dim"].clone());
    }
    if !has("output_dim") && has("vocab_size") {
        obj.insert("output_dim".into(), kept["vocab_size"].clone());
    }
    if !has("num_attention_heads") {
        obj.insert("num_attention_heads".into(), 8.into());
    }
    if !has("num_epochs") {
        obj.insert("num_epochs".into(), 10.into());
    }
    let seq = u(obj, "sequence_length");
    if !has("num_spike_steps") {
        obj.insert("num_spike_steps".into(), (seq / 4).max(1).into());
    }
    if !has("max_position_embeddings") {
        obj.insert("max_position_embeddings".into(), seq.into());
    }
    if !has("attention_spike_steps") {
        let heads = u(obj, "num_attention_heads").max(1);
        obj.insert("attention_spike_steps".into(), (seq / heads).max(1).into());
    }
    for k in ["attention_dropout", "embedding_dropout"] {
        if !has(k) {
            let p = obj["dropout"].clone();
            obj.insert(k.into(), p);
        }
    }
    let Value::Object(all) = base else {
        unreachable!("built as an object above")
    };
    let mut cfg = RunConfig::<ModelConfig>::from_map(all)?;
    cfg.model.validate()?;
    cfg.model = cfg.model.with_ncp_resolved();
    Ok(cfg)
}
