//! Reading the Python original's config files (design §5), the design §9.3 defaults, and refusals.

use lsnn_layers::cfc::CfcMode;
use lsnn_layers::lif::ResetMechanism;
use lsnn_layers::model::SurrogateKind;
use lsnn_layers::{init_model, ModelConfig, SeededRng};
use lsnn_train::config::original::{HONOURED_FIELDS, LSNN_FIELDS};
use lsnn_train::config::read_run_config;
use lsnn_train::{RunConfig, TrainConfig};
use serde_json::{Map, Value};
mod original_config;

use original_config::{fixture, load_edited, sample_map, set};

#[test]
fn a_full_original_file_loads_and_round_trips() {
    let text = fixture("orig_config_full.json");
    // It has exactly the original's field set.
    let full: Map<String, Value> = serde_json::from_str(&text).unwrap();
    let mut a: Vec<_> = full.keys().collect();
    let sample = sample_map();
    let mut b: Vec<_> = sample.keys().collect();
    a.sort();
    b.sort();
    assert_eq!(
        a, b,
        "the full fixture has every field of the original's file"
    );

    let cfg = read_run_config(&text).unwrap();
    assert_eq!(cfg.model.task_type, "llm");
    assert_eq!(cfg.model.input_dim, 40);
    assert_eq!(cfg.model.embedding_dim, 36);
    assert_eq!(cfg.model.hidden_dim, 60);
    assert_eq!(cfg.model.output_dim, 300);
    assert_eq!(cfg.model.vocab_size, 320);
    assert_eq!(cfg.model.liquid_units, 20);
    assert_eq!(cfg.model.spiking_units, 24);
    assert_eq!(cfg.model.spike_threshold, 0.75);
    assert_eq!(cfg.model.beta, 0.85);
    assert_eq!(cfg.model.num_layers, 3);
    assert_eq!(cfg.model.num_spike_steps, 5);
    assert_eq!(cfg.model.num_attention_heads, 5);
    assert_eq!(cfg.model.sequence_length, 32);
    assert_eq!(cfg.model.max_position_embeddings, 40);
    assert_eq!(cfg.model.dropout, 0.15);
    assert_eq!(cfg.model.attention_dropout, 0.05);
    assert_eq!(cfg.model.embedding_dropout, 0.2);
    assert_eq!(cfg.model.layer_norm_eps, 1e-6);
    assert_eq!(cfg.model.initializer_range, 0.05);
    assert_eq!(cfg.train.batch_size, 6);
    assert_eq!(cfg.train.learning_rate, 2e-4);
    assert_eq!(cfg.train.weight_decay, 0.05);
    assert_eq!(cfg.train.gradient_clip, 0.5);
    assert_eq!(cfg.train.num_epochs, 3);
    assert_eq!(cfg.train.seed, 1234);
    assert_eq!(cfg.train.device, "cpu");
    assert!(cfg.train.mixed_precision);
    // lsnn's own fields the file lacks: the derivation or the default (design §5).
    assert_eq!(cfg.model.attention_spike_steps, 32 / 5);
    assert_eq!(cfg.model.backbone_units, 128);
    assert_eq!(cfg.model.backbone_layers, 1);
    // What the model is built from.
    let lif = cfg.model.lif();
    assert_eq!((lif.beta, lif.threshold), (0.85, 0.75));
    let att = cfg.model.attention();
    assert_eq!((att.heads, att.spike_steps, att.head_dim()), (5, 6, 12));
    assert_eq!(cfg.model.block().spike_steps, 5);
    assert_eq!(cfg.model.num_attention_layers(), 1);

    // The resolved file lsnn writes round-trips, and holds every field.
    let json = cfg.to_json().unwrap();
    let back = read_run_config(&json).unwrap();
    assert_eq!(back, cfg);
    let written: Map<String, Value> = serde_json::from_str(&json).unwrap();
    // (The wiring's fields belong to "ncp" only; see `the_ncp_backbone_loads_resolved`; the
    // LTC's to "ltc" only, see lsnn-layers' `tests/ltc_model.rs`; the
    // triangle's width and the escape rate's β to their surrogates only, see
    // `every_surrogate_kind_reads_from_a_config_and_old_files_stay_as_they_were`; the learned-LIF
    // settings are written only when they differ from "fixed", see
    // `config_lif.rs`; a classifier's readout only with "classification", see lsnn-layers'
    // `tests/sequence.rs`; a spike encoding only when the run has one, see
    // `spike_encoding.rs`; the attention kernel only when not "auto", see
    // `config_attention.rs`; activation
    // recomputation and truncated BPTT only when on, see lsnn-layers' `tests/recompute.rs` and
    // `tests/tbptt.rs`; the shard size only when not 4, see lsnn's `tests/shard_rows.rs`; the
    // neuron only when not leaky, see lsnn-layers' `tests/synaptic.rs`; the memory alerts' settings
    // only when set, see `tests/memory_alerts.rs`; the spike diagnostics' settings only when
    // not their defaults, see `tests/firing.rs`.)
    const ONLY_WHEN_SET: [&str; 20] = [
        "attention_kernel",
        "recompute_activations",
        "tbptt",
        "surrogate_width",
        "surrogate_beta",
        "learn_beta",
        "learn_threshold",
        "beta_form",
        "readout",
        "spike_encoding",
        "shard_rows",
        "neuron",
        "memory_warn",
        "memory_critical",
        "memory_alert_hysteresis",
        "cleanup_on_critical",
        "spike_stats",
        "spike_silent_rate",
        "spike_dead_fraction",
        "spike_saturated_rate",
    ];
    for k in HONOURED_FIELDS
        .iter()
        .chain(LSNN_FIELDS)
        .filter(|k| !k.starts_with("ncp_") && !k.starts_with("ltc_") && !ONLY_WHEN_SET.contains(k))
    {
        assert!(
            written.get(*k).is_some_and(|v| !v.is_null()),
            "{k} missing from the resolved config"
        );
    }
    // Every field lsnn writes is in one of the reader's lists (else its own files would not load).
    for k in written.keys() {
        assert!(
            HONOURED_FIELDS.contains(&k.as_str()) || LSNN_FIELDS.contains(&k.as_str()),
            "{k} is written but the reader does not know it"
        );
    }
    // So does the default one.
    let d = RunConfig {
        model: ModelConfig::default(),
        train: TrainConfig::default(),
    };
    assert_eq!(read_run_config(&d.to_json().unwrap()).unwrap(), d);
}

#[test]
fn the_original_sample_loads() {
    let cfg = read_run_config(&fixture("orig_config_sample.json")).unwrap();
    assert_eq!(cfg.model.hidden_dim, 96);
    assert_eq!(cfg.model.num_attention_heads, 3);
    assert_eq!(cfg.model.input_dim, 96);
    assert_eq!(cfg.model.embedding_dim, 96);
    assert_eq!(cfg.model.vocab_size, 256);
    assert_eq!(cfg.model.liquid_units, 48);
    assert_eq!(cfg.model.spiking_units, 32);
    assert_eq!(cfg.model.beta, 0.9);
    assert_eq!(cfg.model.num_spike_steps, 3);
    assert_eq!(cfg.model.sequence_length, 48);
    assert_eq!(cfg.model.max_position_embeddings, 48);
    assert_eq!(cfg.train.batch_size, 4);
    assert_eq!(cfg.train.learning_rate, 5e-4);
    assert_eq!(cfg.train.seed, 7);
    assert_eq!(cfg.train.num_epochs, 1);
    // Not in the original's file: max(1, L / heads) as the original computed it.
    assert_eq!(cfg.model.attention_spike_steps, 16);
    // It builds a model with 3 heads of 32.
    let (model, _vm) =
        init_model(&cfg.model, SeededRng::new(1), &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.attentions().len(), 1);
    assert_eq!(model.attentions()[0].config().heads, 3);
    assert_eq!(model.attentions()[0].config().head_dim(), 32);
}

#[test]
fn missing_fields_take_the_originals_derivations() {
    let drop_derived = |m: &mut Map<String, Value>| {
        for k in [
            "num_spike_steps",
            "attention_spike_steps",
            "max_position_embeddings",
            "embedding_dim",
            "vocab_size",
            "embedding_dropout",
        ] {
            m.remove(k);
        }
        m.insert("input_dim".into(), 40.into());
        m.insert("output_dim".into(), 100.into());
        m.insert("dropout".into(), 0.3.into());
        m.insert("sequence_length".into(), 30.into());
    };
    let cfg = load_edited(drop_derived).unwrap();
    assert_eq!(cfg.model.num_spike_steps, 30 / 4);
    assert_eq!(cfg.model.attention_spike_steps, 30 / 3);
    assert_eq!(cfg.model.max_position_embeddings, 30);
    assert_eq!(cfg.model.embedding_dim, 40);
    assert_eq!(cfg.model.vocab_size, 100);
    assert_eq!(cfg.model.embedding_dropout, 0.3);
    assert_eq!(
        cfg.model.attention_dropout, 0.1,
        "present in the file, kept"
    );

    // Short sequences: never fewer than one step.
    let cfg = load_edited(|m| {
        drop_derived(m);
        m.insert("sequence_length".into(), 2.into());
        m.insert("num_attention_heads".into(), 4.into());
    })
    .unwrap();
    assert_eq!(
        (cfg.model.num_spike_steps, cfg.model.attention_spike_steps),
        (1, 1)
    );
    assert_eq!(cfg.model.max_position_embeddings, 2);

    // `null` counts as missing.
    let cfg = load_edited(|m| {
        m.insert("num_spike_steps".into(), Value::Null);
        m.insert("embedding_dropout".into(), Value::Null);
        m.insert("dropout".into(), 0.25.into());
    })
    .unwrap();
    assert_eq!(cfg.model.num_spike_steps, 48 / 4);
    assert_eq!(cfg.model.embedding_dropout, 0.25);

    // Without num_attention_heads the original's default of 8 (96 / 8 = 12 per head).
    let cfg = load_edited(|m| {
        m.remove("num_attention_heads");
    })
    .unwrap();
    assert_eq!(cfg.model.num_attention_heads, 8);
    assert_eq!(cfg.model.attention_spike_steps, 48 / 8);
}

#[test]
fn the_default_is_the_spec_default_run() {
    let c = RunConfig {
        model: ModelConfig::default(),
        train: TrainConfig::default(),
    };
    assert_eq!(c.model.task_type, "llm");
    assert_eq!(c.model.vocab_size, 256);
    assert_eq!(c.model.output_dim, 256);
    assert_eq!(c.model.embedding_dim, 128);
    assert_eq!(c.model.input_dim, 128);
    assert_eq!(c.model.hidden_dim, 128);
    assert_eq!(c.model.spiking_units, 64);
    assert_eq!(c.model.liquid_units, 64);
    assert_eq!(c.model.num_layers, 2);
    assert_eq!(c.model.num_attention_heads, 4);
    assert_eq!(c.model.num_spike_steps, 4);
    assert_eq!(c.model.attention_spike_steps, 8);
    assert_eq!(c.model.sequence_length, 64);
    assert_eq!(c.model.max_position_embeddings, 64);
    assert_eq!(c.train.batch_size, 8);
    assert_eq!(c.model.dropout, 0.1);
    assert_eq!(c.model.embedding_dropout, 0.1);
    assert_eq!(c.model.label_smoothing, 0.1);
    assert_eq!(c.train.learning_rate, 1e-3);
    assert_eq!(c.train.warmup_steps, 100);
    assert_eq!(c.train.weight_decay, 0.01);
    assert_eq!(c.train.gradient_clip, 1.0);
    assert_eq!(c.train.ema_decay, 0.999);
    assert_eq!(c.train.seed, 42);
    assert_eq!(c.model.backbone_units, 128);
    assert_eq!(c.model.backbone_layers, 1);
    // design §2 defaults.
    assert_eq!(c.model.beta, 0.95);
    assert_eq!(c.model.spike_threshold, 1.0);
    assert_eq!(c.model.layer_norm_eps, 1e-5);
    assert_eq!(c.model.initializer_range, 0.02);
    assert_eq!(c.model.liquid_backbone, "cfc");
    assert_eq!(c.model.cfc_mode, CfcMode::Default);
    assert_eq!(c.model.reset_mechanism, ResetMechanism::Subtract);
    assert_eq!(c.model.surrogate, SurrogateKind::FastSigmoid);
    assert_eq!(c.model.surrogate_slope, 25.0);
    assert_eq!(c.model.surrogate_alpha, 2.0);
    assert_eq!(c.train.device, "cpu");
    assert_eq!(c.train.gradient_accumulation_steps, 1);
    c.model.validate().unwrap();
    c.train.validate().unwrap();
}

#[test]
fn the_ncp_backbone_loads_resolved() {
    let cfg = load_edited(set("liquid_backbone", "ncp".into())).unwrap();
    // The original's sample has 48 liquid units: ⌊0.3·48⌋ = 14 motor neurons, ncps' defaults.
    assert_eq!(cfg.model.ncp_outputs, Some(14));
    assert_eq!(cfg.model.ncp_sparsity, Some(0.5));
    assert_eq!(cfg.model.ncp_seed, Some(22222));
    let json = cfg.to_json().unwrap();
    let written: Map<String, Value> = serde_json::from_str(&json).unwrap();
    for k in ["ncp_outputs", "ncp_sparsity", "ncp_seed"] {
        assert!(
            written.get(k).is_some_and(|v| !v.is_null()),
            "{k} not written"
        );
    }
    assert_eq!(read_run_config(&json).unwrap(), cfg);
}

#[test]
fn every_surrogate_kind_reads_from_a_config_and_old_files_stay_as_they_were() {
    use lsnn_layers::lif::Surrogate;
    let own = RunConfig {
        model: ModelConfig::default(),
        train: TrainConfig::default(),
    }
    .to_json()
    .unwrap();
    // The new settings are absent unless set: configs (and checkpoint hashes) written before
    // them are unchanged.
    assert!(!own.contains("surrogate_width") && !own.contains("surrogate_beta"));
    let base: Value = serde_json::from_str(&own).unwrap();
    for (kind, extra, want) in [
        ("sigmoid", None, Surrogate::sigmoid(25.0)),
        ("straight_through", None, Surrogate::straight_through()),
        (
            "triangular",
            Some(("surrogate_width", 0.5)),
            Surrogate::triangular(0.5),
        ),
        ("triangular", None, Surrogate::triangular(1.0)),
        (
            "spike_rate_escape",
            Some(("surrogate_beta", 2.0)),
            Surrogate::spike_rate_escape(2.0, 25.0),
        ),
    ] {
        let mut v = base.clone();
        v["surrogate"] = kind.into();
        if let Some((k, x)) = extra {
            v[k] = x.into();
        }
        let text = v.to_string();
        for c in [
            RunConfig::<ModelConfig>::from_json(&text).unwrap(),
            read_run_config(&text).unwrap(),
        ] {
            assert_eq!(c.model.lif().surrogate, want, "{kind}");
            c.model.validate().unwrap();
        }
        // The reader resolves the kind's own setting into the file lsnn writes.
        let written = read_run_config(&text).unwrap().to_json().unwrap();
        match kind {
            "triangular" => assert!(written.contains("surrogate_width"), "{written}"),
            "spike_rate_escape" => assert!(written.contains("surrogate_beta"), "{written}"),
            _ => {
                assert!(!written.contains("surrogate_width") && !written.contains("surrogate_beta"))
            }
        }
    }
    let mut v = base.clone();
    v["surrogate"] = "triangular".into();
    v["surrogate_width"] = (-1.0).into();
    let c = RunConfig::<ModelConfig>::from_json(&v.to_string()).unwrap();
    let e = c.model.validate().unwrap_err().to_string();
    assert!(e.contains("triangular width"), "{e}");
    // Another surrogate's setting is refused, not ignored.
    let mut v = base.clone();
    v["surrogate_beta"] = 2.0.into();
    let c = RunConfig::<ModelConfig>::from_json(&v.to_string()).unwrap();
    let e = c.model.validate().unwrap_err().to_string();
    assert!(
        e.contains("surrogate_beta") && e.contains("SpikeRateEscape"),
        "{e}"
    );
}
