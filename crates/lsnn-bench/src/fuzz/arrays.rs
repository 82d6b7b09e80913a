//! The arrays target: the first byte picks the task (even: regression, odd: classification),
//! the rest is a data file's content (.npz or .safetensors), read as `lsnn train --data` reads
//! it — the archive or header, every array, and every rule of the sequence tasks' data.

use super::Outcome;
use lsnn_train::data::SequenceData;
use lsnn_train::lsnn_layers::Task;
use std::path::Path;

/// Reads `bytes` as a sequence task's data file.
pub fn arrays(bytes: &[u8]) -> Outcome {
    let (task, content) = match bytes {
        [t, rest @ ..] if t % 2 == 1 => (Task::Classification, rest),
        [_, rest @ ..] => (Task::Regression, rest),
        [] => (Task::Regression, bytes),
    };
    Outcome::of(
        SequenceData::from_bytes(
            content,
            Path::new("<fuzz>/data.npz"),
            task,
            1,
            false,
            None,
            None,
        )
        .map(|d| {
            // What training does next: the splits' sizes and one batch's worth of rows.
            let (t, v) = (d.train(), d.val());
            t.n + v.n + t.x.len().min(16) + d.outputs()
        }),
    )
}
