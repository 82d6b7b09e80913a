//! The learned-LIF settings of a config file: read, resolved, written only when set, and their
//! bad values named.

use lsnn_layers::ModelConfig;
use lsnn_train::config::read_run_config;
use lsnn_train::{RunConfig, TrainConfig};
use serde_json::Value;

#[test]
fn learned_lif_settings_round_trip_and_stay_out_of_old_files() {
    use lsnn_layers::lif::{BetaForm, Learn};
    let own = RunConfig {
        model: ModelConfig::default(),
        train: TrainConfig::default(),
    }
    .to_json()
    .unwrap();
    for k in ["learn_beta", "learn_threshold", "beta_form"] {
        assert!(!own.contains(k), "{k} written at its default");
    }
    let mut v: Value = serde_json::from_str(&own).unwrap();
    v["learn_beta"] = "per_neuron".into();
    v["beta_form"] = "sigmoid".into();
    v["learn_threshold"] = "shared".into();
    let cfg = read_run_config(&v.to_string()).unwrap();
    let lif = cfg.model.lif();
    assert_eq!(lif.learn_beta, Learn::PerNeuron);
    assert_eq!(lif.beta_form, BetaForm::Sigmoid);
    assert_eq!(lif.learn_threshold, Learn::Shared);
    assert_eq!(read_run_config(&cfg.to_json().unwrap()).unwrap(), cfg);
    // A sigmoid β cannot start at 1, and a kind that does not exist is named.
    v["beta"] = 1.0.into();
    let e = read_run_config(&v.to_string())
        .and_then(|c| c.model.validate().map(|_| c).map_err(Into::into))
        .unwrap_err()
        .to_string();
    assert!(e.contains("sigmoid"), "{e}");
    v["beta"] = 0.9.into();
    v["learn_beta"] = "per_layer".into();
    let e = read_run_config(&v.to_string()).unwrap_err().to_string();
    assert!(e.contains("per_layer") && e.contains("per_neuron"), "{e}");
    // A huge bad value is clipped wherever the message quotes it; the accepted list stays whole.
    v["learn_beta"] = "x".repeat(100_000).into();
    let e = read_run_config(&v.to_string()).unwrap_err().to_string();
    assert!(
        e.len() < 400 && e.contains("100000 characters") && e.contains("per_neuron"),
        "{e}"
    );
}
