//! The `attention_kernel` field (design §2.5.1) in lsnn's own files and the original's: each
//! value reads, reaches the attention layer's config, and is written only when not "auto".

use lsnn_layers::ModelConfig;
use lsnn_train::config::read_run_config;
use lsnn_train::{RunConfig, TrainConfig};
use serde_json::Value;

#[test]
fn the_attention_kernel_reads_from_a_config_and_stays_out_of_default_files() {
    use lsnn_layers::AttentionKernel;
    let own = RunConfig {
        model: ModelConfig::default(),
        train: TrainConfig::default(),
    }
    .to_json()
    .unwrap();
    // At its default the field is absent, so files and checkpoint hashes written before it are
    // unchanged.
    assert!(!own.contains("attention_kernel"), "{own}");
    let base: Value = serde_json::from_str(&own).unwrap();
    for (name, want) in [
        ("auto", AttentionKernel::Auto),
        ("tiled", AttentionKernel::Tiled),
        ("materialized", AttentionKernel::Materialized),
    ] {
        let mut v = base.clone();
        v["attention_kernel"] = name.into();
        let text = v.to_string();
        for c in [
            RunConfig::<ModelConfig>::from_json(&text).unwrap(),
            read_run_config(&text).unwrap(),
        ] {
            assert_eq!(c.model.attention_kernel, want, "{name}");
            assert_eq!(c.model.attention().kernel, want, "{name}");
            let written = c.to_json().unwrap();
            assert_eq!(
                written.contains("attention_kernel"),
                name != "auto",
                "{written}"
            );
        }
    }
    let mut v = base;
    v["attention_kernel"] = "flash".into();
    let e = read_run_config(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("attention_kernel") && e.contains("tiled"), "{e}");
}
