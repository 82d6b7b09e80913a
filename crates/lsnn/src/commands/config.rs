//! The run configuration of `lsnn train`: a config file (lsnn's own or the Python original's)
//! or the defaults, `--set key=value` overrides applied to the same flat object before it is
//! read (so they follow the file's rules: an unknown key is an error with a suggestion), and
//! `--task`. Which fields the user set is remembered: a sequence task's widths come from its data
//! unless set.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use lsnn_train::config::original::read_run_config_map;
use lsnn_train::lsnn_layers::{ModelConfig, Task};
use lsnn_train::RunConfig;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// A run's configuration and the fields the user set explicitly (in the file or by `--set`).
#[derive(Debug)]
pub struct UserConfig {
    /// The resolved configuration.
    pub config: RunConfig<ModelConfig>,
    /// Keys the user gave.
    pub explicit: BTreeSet<String>,
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// A config file's JSON object.
fn read_object(path: &Path) -> Result<Map<String, Value>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(format!("config {}: no such file", path.display())))
        }
        Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        bad(format!(
            "config {}: not UTF-8 (first bad byte at offset {}); expected a JSON text",
            path.display(),
            e.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(lsnn_train::TrainError::from)
        .with_context(|| format!("config {}", path.display()))?;
    match value {
        Value::Object(m) => Ok(m),
        _ => Err(bad(format!(
            "config {}: expected a JSON object of config fields",
            path.display()
        ))),
    }
}

/// `key=value`: the value as JSON when it parses as JSON (`3`, `0.5`, `true`, `null`,
/// `"text"`), else as a string.
pub fn parse_set(arg: &str) -> Result<(String, Value)> {
    let Some((key, value)) = arg.split_once('=') else {
        return Err(bad(format!(
            "--set {}: expected key=value",
            lsnn_train::lsnn_layers::nn::clip(arg)
        )));
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(bad("--set: an empty key; expected key=value"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
    Ok((key.to_string(), value))
}

/// Every field of the built-in defaults of `task` (design §9.3) as one flat object.
fn default_object(task: Task) -> Result<Map<String, Value>> {
    let cfg = RunConfig {
        model: ModelConfig::for_task(task),
        train: lsnn_train::TrainConfig::for_task(task),
    };
    match serde_json::from_str(&cfg.to_json()?)? {
        Value::Object(m) => Ok(m),
        _ => unreachable!("a config serialises to an object"),
    }
}

/// The configuration of a fresh run: `file` (or every default), then `sets`, then `task`. A
/// file follows design §5's rules (the original's derivations for the fields it lacks); without
/// one, `--set` changes the task's built-in defaults ([`ModelConfig::for_task`],
/// [`lsnn_train::TrainConfig::for_task`]) and nothing else.
pub fn user_config(file: Option<&Path>, sets: &[String], task: Option<&str>) -> Result<UserConfig> {
    let mut given = match file {
        Some(p) => read_object(p)?,
        None => Map::new(),
    };
    for s in sets {
        let (k, v) = parse_set(s)?;
        given.insert(k, v);
    }
    if let Some(t) = task {
        let wanted = Task::of(t)?;
        let said = given
            .get("task_type")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match said {
            Some(g) if Task::of(&g).ok() != Some(wanted) => {
                return Err(bad(format!(
                    "--task {t} but the config says task_type \"{}\"; drop one",
                    lsnn_train::lsnn_layers::nn::clip(&g)
                )))
            }
            // The original's "robotics" is kept as the file wrote it.
            Some(_) => {}
            None => {
                given.insert("task_type".into(), Value::String(wanted.name().into()));
            }
        }
    }
    let explicit: BTreeSet<String> = given
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    let map = match file {
        Some(_) => given,
        None => {
            let task = match given.get("task_type").and_then(Value::as_str) {
                Some(t) => Task::of(t)?,
                None => Task::Llm,
            };
            let mut all = default_object(task)?;
            all.extend(given);
            all
        }
    };
    let config = read_run_config_map(map).context(match file {
        Some(p) => format!("config {}", p.display()),
        None => "--set".to_string(),
    })?;
    Ok(UserConfig { config, explicit })
}
