//! What the config tests share: the Python original's fixture files, edited copies of its
//! sample, and the check of an "unsupported" refusal.
#![allow(dead_code)]

use lsnn_layers::{LayerError, ModelConfig};
use lsnn_train::config::read_run_config;
use lsnn_train::{RunConfig, TrainError};
use serde_json::{Map, Value};
use std::path::PathBuf;

pub fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn sample_map() -> Map<String, Value> {
    match serde_json::from_str(&fixture("orig_config_sample.json")).unwrap() {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// The sample with `edit` applied.
pub fn load_edited(
    edit: impl FnOnce(&mut Map<String, Value>),
) -> lsnn_train::Result<RunConfig<ModelConfig>> {
    let mut m = sample_map();
    edit(&mut m);
    read_run_config(&Value::Object(m).to_string())
}

pub fn set(key: &str, v: Value) -> impl FnOnce(&mut Map<String, Value>) + '_ {
    move |m| {
        m.insert(key.to_owned(), v);
    }
}

/// Checks that `r` is an unsupported-feature refusal whose message holds every needle.
pub fn unsupported(r: lsnn_train::Result<RunConfig<ModelConfig>>, what: &str, needles: &[&str]) {
    match r {
        Err(
            e
            @ (TrainError::Unsupported { .. } | TrainError::Layer(LayerError::Unsupported { .. })),
        ) => {
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{what}: message {msg:?} lacks {n:?}");
            }
        }
        other => panic!("{what}: expected Unsupported, got {other:?}"),
    }
}
