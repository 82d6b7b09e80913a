//! The Python original's config files refused (design §5): features lsnn does not have, typos,
//! bad task types and backbones, values of the wrong type — each named in its error.

mod original_config;

use lsnn_layers::{LayerError, ModelConfig};
use lsnn_train::config::read_run_config;
use lsnn_train::{RunConfig, TrainConfig, TrainError};
use original_config::{load_edited, set, unsupported};
use serde_json::Value;

#[test]
fn unsupported_features_and_typos_are_refused() {
    unsupported(
        load_edited(set("use_stdp", true.into())),
        "use_stdp",
        &["use_stdp", "STDP"],
    );
    unsupported(
        load_edited(set("use_meta_plasticity", true.into())),
        "use_meta_plasticity",
        &["use_meta_plasticity", "meta-plasticity"],
    );
    unsupported(
        load_edited(set("use_continual_learning", true.into())),
        "use_continual_learning",
        &["use_continual_learning", "continual learning"],
    );
    // Written true by the original by default: fine.
    let both = load_edited(|m| {
        m.insert("use_cache".into(), true.into());
        m.insert("use_experience_replay".into(), true.into());
    });
    assert!(both.is_ok(), "{both:?}");
    // A flag that is not a boolean.
    assert!(matches!(
        load_edited(set("use_stdp", "yes".into())),
        Err(TrainError::Config { field, .. }) if field == "use_stdp"
    ));

    // A typo.
    match load_edited(|m| {
        let v = m.remove("hidden_dim").unwrap();
        m.insert("hiden_dim".into(), v);
    }) {
        Err(e @ TrainError::UnknownField { .. }) => {
            let TrainError::UnknownField { field, suggestion } = &e else {
                unreachable!()
            };
            assert_eq!(field, "hiden_dim");
            assert_eq!(suggestion.as_deref(), Some("hidden_dim"));
            assert!(e.to_string().contains("did you mean `hidden_dim`"), "{e}");
        }
        other => panic!("typo accepted: {other:?}"),
    }
    assert!(matches!(
        load_edited(set("completely_unrelated_option", 1.into())),
        Err(TrainError::UnknownField { .. })
    ));

    // Heads that do not divide hidden_dim: the nearest valid head counts.
    match load_edited(set("num_attention_heads", 5.into())) {
        Err(
            e @ TrainError::Layer(LayerError::HeadsDoNotDivide {
                hidden: 96,
                heads: 5,
                ..
            }),
        ) => {
            let msg = e.to_string();
            assert!(msg.contains("4 or 6 heads"), "{msg}");
            assert!(msg.contains("96") && msg.contains('5'), "{msg}");
        }
        other => panic!("96 / 5 accepted: {other:?}"),
    }

    // The original's vision task needs its convolutional front end; robotics is regression.
    unsupported(
        load_edited(set("task_type", "vision".into())),
        "vision",
        &["vision", "not supported"],
    );
    let robotics = load_edited(set("task_type", "robotics".into())).unwrap();
    assert_eq!(
        robotics.model.task().unwrap(),
        lsnn_train::lsnn_layers::Task::Regression
    );
    assert_eq!(
        robotics.model.task_type, "robotics",
        "kept as the file says"
    );
    assert!(matches!(
        load_edited(set("task_type", "chess".into())),
        Err(TrainError::Layer(LayerError::Config { field, .. })) if field == "task_type"
    ));
    // The LTC: ncps' defaults, its own fields only with it, and the wiring's fields only with
    // its NCP wiring.
    let ltc = load_edited(set("liquid_backbone", "ltc".into())).unwrap();
    let settings = ltc.model.ltc().expect("an LTC");
    assert_eq!(settings.ode_unfolds, 6);
    assert_eq!(
        settings.constraint,
        lsnn_train::lsnn_layers::ltc::LtcConstraint::Implicit,
        "ncps' LTC wrapper's default"
    );
    assert!(ltc.model.ncp().is_none(), "fully connected by default");
    assert!(matches!(
        load_edited(set("ltc_ode_unfolds", 3.into())),
        Err(TrainError::Layer(LayerError::Config { field, .. })) if field == "ltc_ode_unfolds"
    ));
    let wired = load_edited(|m| {
        m.insert("liquid_backbone".into(), "ltc".into());
        m.insert("ltc_wiring".into(), "ncp".into());
        m.insert("ncp_sparsity".into(), 0.7.into());
        m.insert("ltc_constraint".into(), "explicit".into());
    })
    .unwrap();
    assert_eq!(wired.model.ncp().unwrap().sparsity, 0.7);
    let bad = load_edited(|m| {
        m.insert("liquid_backbone".into(), "ltc".into());
        m.insert("ncp_sparsity".into(), 0.7.into());
    });
    assert!(
        matches!(&bad, Err(TrainError::Layer(LayerError::Config { field, .. })) if field.contains("ncp_sparsity")),
        "{bad:?}"
    );
    let bad = load_edited(|m| {
        m.insert("liquid_backbone".into(), "ltc".into());
        m.insert("ltc_ode_unfolds".into(), 0.into());
    });
    assert!(
        matches!(&bad, Err(TrainError::Layer(LayerError::Config { field, .. })) if field == "ltc_ode_unfolds"),
        "{bad:?}"
    );
    // The wiring's fields with another backbone, and a wiring ncps would refuse.
    assert!(matches!(
        load_edited(set("ncp_sparsity", 0.7.into())),
        Err(TrainError::Layer(LayerError::Config { field, .. })) if field.contains("ncp_sparsity")
    ));
    let bad = load_edited(|m| {
        m.insert("liquid_backbone".into(), "ncp".into());
        m.insert("ncp_outputs".into(), 47.into());
    });
    assert!(
        matches!(&bad, Err(TrainError::Layer(LayerError::Config { field, .. })) if field == "outputs"),
        "{bad:?}"
    );

    // Devices.
    match load_edited(set("device", "tpu".into())) {
        Err(TrainError::Config { field, message }) => {
            assert_eq!(field, "device");
            assert!(message.contains("tpu"), "{message}");
        }
        other => panic!("device tpu accepted: {other:?}"),
    }
    let cpu = load_edited(|_| {}).unwrap();
    assert!(cpu.train.candle_device().unwrap().is_cpu());
    for dev in ["cuda", "cuda:1"] {
        let cfg = load_edited(set("device", dev.into())).unwrap();
        assert_eq!(
            cfg.train.parse_device().unwrap(),
            Some(if dev == "cuda" { 0 } else { 1 })
        );
        #[cfg(not(feature = "cuda"))]
        match cfg.train.candle_device() {
            Err(e @ TrainError::Unsupported { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(dev) && msg.contains("cuda"), "{msg}");
            }
            other => panic!("{dev} in a CPU build: {other:?}"),
        }
    }

    // Malformed files.
    assert!(matches!(
        read_run_config("{ not json"),
        Err(TrainError::ConfigJson(_))
    ));
    assert!(matches!(
        read_run_config("[1, 2]"),
        Err(TrainError::Config { .. })
    ));
    assert!(matches!(
        load_edited(set("hidden_dim", "wide".into())),
        Err(TrainError::Config { .. })
    ));
}

#[test]
fn a_value_of_the_wrong_type_is_named_by_its_field() {
    // In lsnn's own flat file and in the original's: the field, what it holds, what is allowed.
    let own = RunConfig {
        model: ModelConfig::default(),
        train: TrainConfig::default(),
    }
    .to_json()
    .unwrap();
    let mut v: Value = serde_json::from_str(&own).unwrap();
    v["hidden_dim"] = Value::String("16".into());
    v["num_layers"] = serde_json::json!(-3);
    let text = v.to_string();
    for e in [
        RunConfig::<ModelConfig>::from_json(&text).unwrap_err(),
        read_run_config(&text).unwrap_err(),
    ] {
        match &e {
            TrainError::Config { field, message } => {
                assert!(field == "hidden_dim" || field == "num_layers", "{e}");
                assert!(message.contains("expected"), "{e}");
            }
            other => panic!("expected a config error naming the field, got {other:?}"),
        }
    }
    let mut v: Value = serde_json::from_str(&own).unwrap();
    v["batch_size"] = Value::Bool(true);
    let e = RunConfig::<ModelConfig>::from_json(&v.to_string()).unwrap_err();
    assert!(
        matches!(&e, TrainError::Config { field, message } if field == "batch_size" && message.starts_with("true;")),
        "{e}"
    );
}
