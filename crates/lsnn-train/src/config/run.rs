//! [`RunConfig`] (design §5): a run's whole configuration — the model's and the trainer's — and the flat
//! `config.json` beside every checkpoint: one JSON object holding every field of both, fully
//! resolved, so that the file alone rebuilds the run. A model's fields are its own config
//! type's; the trainer's are [`TrainConfig`]'s; the two must not share a name.

use super::TrainConfig;
use crate::error::{Result, TrainError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// One part of a flat config as `T`. When serde refuses it, the error names the field at fault:
/// the first field that `T` refuses on its own (a value of the wrong type or range), with a
/// clipped copy of what it holds; `whole` names the part when no single field is to blame.
fn parse_part<T: DeserializeOwned>(part: Map<String, Value>, whole: &str) -> Result<T> {
    let err = match serde_json::from_value(Value::Object(part.clone())) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    for (k, v) in &part {
        let alone = Map::from_iter([(k.clone(), v.clone())]);
        if let Err(e) = serde_json::from_value::<T>(Value::Object(alone)) {
            let message = e.to_string();
            if !message.starts_with("missing field") {
                // serde quotes the bad value whole: clip it where it appears, like the value
                // itself, but keep the rest (the list of accepted values) whole.
                let raw = v.as_str().map_or_else(|| v.to_string(), String::from);
                let mut message = message
                    .replace(&format!("{raw:?}"), &crate::error::clip(&raw))
                    .replace(&raw, &crate::error::clip(&raw));
                // Whatever serde quoted in some other form: bounded all the same.
                if message.len() > 1024 {
                    message = crate::error::clip(&message);
                }
                return Err(TrainError::Config {
                    field: crate::error::clip(k),
                    message: format!("{}; {}", crate::error::clip(&v.to_string()), message),
                });
            }
        }
    }
    Err(TrainError::Config {
        field: whole.into(),
        message: crate::error::clip(&err.to_string()),
    })
}

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
        let train: TrainConfig = parse_part(train, "<training config>")?;
        train.validate()?;
        let model: C = parse_part(model, "<model config>")?;
        Ok(RunConfig { model, train })
    }

    /// [`RunConfig::from_map`] of a JSON text.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_map(object(serde_json::from_str(text)?, "the file")?)
    }
}
