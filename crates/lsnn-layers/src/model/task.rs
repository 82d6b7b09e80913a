//! Which model a config builds: [`Task`] from its `task_type`, and the classification
//! [`Readout`].

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
