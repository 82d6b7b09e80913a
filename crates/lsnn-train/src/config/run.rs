//! [`RunConfig`] (design §5): a run's whole configuration — the model's and the trainer's — and the flat
//! `config.json` beside every checkpoint: one JSON object holding every field of both, fully
//! resolved, so that the file alone rebuilds the run. A model's fields are its own config
//! type's; the trainer's are [`TrainConfig`]'s; the two must not share a name.

use super::TrainConfig;
use crate::error::{Result, TrainError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// A model's configuration and the trainer's.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig<C> {
    /// The model's.
    pub model: C,
    /// The trainer's.
    pub train: TrainConfig,
}

fn object(v: Value, what: &str) -> Result<Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(TrainError::Config {
            field: "<root>".into(),
            message: format!("{what} does not serialise to a JSON object of fields"),
        }),
    }
}

impl<C: Serialize + DeserializeOwned> RunConfig<C> {
    /// Every field of both parts in one pretty JSON object.
    pub fn to_json(&self) -> Result<String> {
        let mut all = object(serde_json::to_value(&self.model)?, "the model's config")?;
        for (k, v) in object(serde_json::to_value(&self.train)?, "the training config")? {
            if all.contains_key(&k) {
                return Err(TrainError::Config {
                    field: k,
                    message: "both the model's config and the training config have this field"
                        .into(),
                });
            }
            all.insert(k, v);
        }
        Ok(serde_json::to_string_pretty(&Value::Object(all))?)
    }

    /// Splits a flat object: the trainer's fields to [`TrainConfig`], the rest to the model's
    /// config type (whose own rules decide about unknown or missing fields).
    pub fn from_map(map: Map<String, Value>) -> Result<Self> {
        let names = TrainConfig::field_names();
        let (mut train, mut model) = (Map::new(), Map::new());
        for (k, v) in map {
            if names.contains(&k) {
                train.insert(k, v);
            } else {
                model.insert(k, v);
            }
        }
        let train: TrainConfig =
            serde_json::from_value(Value::Object(train)).map_err(|e| TrainError::Config {
                field: "<training config>".into(),
                message: e.to_string(),
            })?;
        train.validate()?;
        let model: C =
            serde_json::from_value(Value::Object(model)).map_err(|e| TrainError::Config {
                field: "<model config>".into(),
                message: e.to_string(),
            })?;
        Ok(RunConfig { model, train })
    }

    /// [`RunConfig::from_map`] of a JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_map(object(serde_json::from_str(text)?, "the file")?)
    }
}
