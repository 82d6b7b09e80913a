//! Which model a config builds: [`Task`] from its `task_type`, the classification [`Readout`],
//! and the config's task-specific defaults and checks.

use super::ModelConfig;
use crate::error::{LayerError, Result};
use serde::{Deserialize, Serialize};

/// The task a [`super::ModelConfig`] is for, from its `task_type` field (design §2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// `"llm"`: next-token language modelling ([`crate::LanguageModel`]).
    Llm,
    /// `"regression"` (or the Python original's `"robotics"`): [B, L, F] → [B, L, F_out],
    /// Smooth-L1 loss ([`crate::SequenceModel`]).
    Regression,
    /// `"classification"`: [B, L, F] (or [B, F]) → class logits [B, C] from a readout,
    /// cross-entropy ([`crate::SequenceModel`]).
    Classification,
}

impl Task {
    /// The task of a `task_type` value; the Python original's `"vision"` (a convolutional front
    /// end lsnn does not have) and anything else are typed errors.
    pub fn of(task_type: &str) -> Result<Task> {
        match task_type {
            "llm" => Ok(Task::Llm),
            "regression" | "robotics" => Ok(Task::Regression),
            "classification" => Ok(Task::Classification),
            "vision" => Err(LayerError::Unsupported {
                feature: "task_type \"vision\"".into(),
                detail: "the original's convolutional image front end is not implemented; \
                         \"classification\" trains on feature sequences or flat [N, F] arrays"
                    .into(),
            }),
            other => Err(LayerError::config(
                "task_type",
                format!(
                    "\"{}\"; expected \"llm\", \"regression\" (or \"robotics\") or \"classification\"",
                    crate::nn::clip(other)
                ),
            )),
        }
    }

    /// The canonical `task_type` name (what `--task` takes).
    pub fn name(self) -> &'static str {
        match self {
            Task::Llm => "llm",
            Task::Regression => "regression",
            Task::Classification => "classification",
        }
    }

    /// True for the tasks of [`crate::SequenceModel`] (continuous features in).
    pub fn is_sequence(self) -> bool {
        !matches!(self, Task::Llm)
    }
}

/// How a classifier turns a sequence into one vector: the trunk's output at the last valid
/// position, or its mean over the valid positions (padding ignored either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// The last valid position (the only one that has seen the whole sequence when the model is
    /// causal).
    #[default]
    Last,
    /// The mean over the valid positions.
    Mean,
}

impl ModelConfig {
    /// The built-in default of `task` (design §9.3): [`ModelConfig::default`] (lm-small's network
    /// and regularisation) with `task_type` set; a sequence task's widths come from its data.
    pub fn for_task(task: Task) -> ModelConfig {
        ModelConfig {
            task_type: task.name().into(),
            ..ModelConfig::default()
        }
    }

    /// The task of `task_type` ([`Task::of`]).
    pub fn task(&self) -> Result<Task> {
        Task::of(&self.task_type)
    }

    /// The classifier's readout (`"last"` unless set).
    pub fn readout(&self) -> Readout {
        self.readout.unwrap_or_default()
    }

    /// The task's own constraints: the widths a sequence model reads and writes, and fields
    /// that belong to one task only.
    pub(super) fn check_task(&self) -> Result<()> {
        let task = self.task()?;
        if task.is_sequence() {
            if self.input_dim == 0 {
                return Err(LayerError::config(
                    "input_dim",
                    "0; expected the feature count (at least 1)",
                ));
            }
            let least = if task == Task::Classification { 2 } else { 1 };
            if self.output_dim < least {
                let what = match task {
                    Task::Classification => "the class count (at least 2)",
                    _ => "the target width (at least 1)",
                };
                return Err(LayerError::config(
                    "output_dim",
                    format!("{}; expected {what}", self.output_dim),
                ));
            }
            if self.hidden_dim < 2 {
                return Err(LayerError::config(
                    "hidden_dim",
                    format!(
                        "{}; expected at least 2 (the head narrows to hidden_dim / 2)",
                        self.hidden_dim
                    ),
                ));
            }
        }
        if self.readout.is_some() && task != Task::Classification {
            return Err(LayerError::config(
                "readout",
                format!(
                    "set with task_type \"{}\"; expected it only with \"classification\"",
                    crate::nn::clip(&self.task_type)
                ),
            ));
        }
        Ok(())
    }
}
