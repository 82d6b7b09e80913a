//! `lsnn train --tensorboard DIR` (design §10.1): the scalars a run writes, and a crashed run's
//! resume seen the way TensorBoard shows it — the steps the crash left past the checkpoint
//! dropped by the restart record, every step once, the same losses as a run never interrupted.

mod support;

use lsnn_train::record::tensorboard::{
    read_event_file, scalars_as_shown, EventPayload, SessionStatus, ShownScalar,
};
use std::path::{Path, PathBuf};
use support::{copy_dir, current_set, err, lsnn, scratch, setup, train_tiny};

fn event_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// Every scalar as TensorBoard shows a directory (restart records applied).
fn shown(dir: &Path) -> Vec<ShownScalar> {
    scalars_as_shown(dir).unwrap()
}

fn of(shown: &[ShownScalar], tag: &str) -> Vec<(i64, f32)> {
    shown
        .iter()
        .filter(|(t, _, _)| t == tag)
        .map(|(_, s, v)| (*s, *v))
        .collect()
}

/// The last row of the metrics CSV of the run's current set, by column.
fn last_metrics(run: &Path) -> Vec<(String, f64)> {
    let csv = std::fs::read_to_string(current_set(run).join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let last: Vec<f64> = lines
        .last()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap_or(f64::NAN))
        .collect();
    header.into_iter().zip(last).collect()
}

#[test]
fn a_resumed_crash_shows_every_step_once_with_the_uninterrupted_runs_losses() {
    let d = scratch("tensorboard");
    setup(&d);
    // The run never interrupted.
    train_tiny(&d, "full", &["--tensorboard", "tb_full"]);
    let full = shown(&d.join("tb_full"));
    let losses = of(&full, "train/loss");
    let n = losses.len() as i64;
    assert!(n >= 8, "{losses:?}");
    assert_eq!(
        losses.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "one train/loss per batch, steps 1..=n"
    );
    assert_eq!(of(&full, "train/lr").len() as i64, n);
    // The epoch-end scalars hold the metrics CSV's figures.
    // The columns after step, epoch, batches, lr, train_loss are the evaluated metrics, then
    // the skip count.
    let metrics = last_metrics(&d.join("full"));
    assert_eq!(metrics.last().unwrap().0, "skipped");
    for (name, value) in &metrics[5..metrics.len() - 1] {
        if value.is_nan() {
            continue; // a column this run does not evaluate
        }
        let tb = of(&full, &format!("val/{name}"));
        assert_eq!(tb.len(), 2, "val/{name}: one per epoch");
        assert_eq!(tb[1], (n, *value as f32), "val/{name}");
    }
    assert_eq!(of(&full, "epoch/train_loss").len(), 2);
    assert!(!of(&full, "memory/rss_bytes").is_empty());
    // Resuming the finished run trains nothing and writes no event file.
    err(&lsnn(
        &["train", "--resume", "full", "--tensorboard", "tb_full"],
        &d,
    ));
    assert_eq!(event_files(&d.join("tb_full")).len(), 1);

    // The crash: checkpointed at batch 4 (copied aside), the process wrote batches 5 and 6 to
    // TensorBoard and died before its next checkpoint.
    train_tiny(&d, "run", &["--max-batches", "4", "--tensorboard", "tb"]);
    copy_dir(&d.join("run"), &d.join("at4"));
    support::ok(&lsnn(
        &[
            "train",
            "--resume",
            "run",
            "--max-batches",
            "6",
            "--tensorboard",
            "tb",
        ],
        &d,
    ));
    // The restart from the checkpoint at batch 4.
    support::ok(&lsnn(
        &["train", "--resume", "at4", "--tensorboard", "tb"],
        &d,
    ));
    let files = event_files(&d.join("tb"));
    assert_eq!(files.len(), 3, "{files:?}");
    let restart = &read_event_file(&files[2]).unwrap()[1];
    assert_eq!(
        (restart.step, &restart.payload),
        (5, &EventPayload::SessionLog(SessionStatus::Start))
    );
    let resumed = shown(&d.join("tb"));
    // Exact resume: the same losses at the same steps, each once.
    assert_eq!(of(&resumed, "train/loss"), losses);
    for name in ["val/val_loss", "epoch/train_loss"] {
        assert_eq!(of(&resumed, name), of(&full, name), "{name}");
    }
}

#[test]
fn a_tensorboard_path_that_is_a_file_is_refused_before_training() {
    let d = scratch("tensorboard-file");
    setup(&d);
    std::fs::write(d.join("tb"), b"not a directory").unwrap();
    let out = lsnn(
        &[
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
            "--tensorboard",
            "tb",
        ],
        &d,
    );
    let e = err(&out);
    assert!(
        e.contains("tb") && e.contains("expected a directory"),
        "{e}"
    );
    assert_eq!(support::code(&out), 2, "bad input");
    assert!(
        !d.join("run").join("CURRENT").exists(),
        "nothing was trained"
    );
}
