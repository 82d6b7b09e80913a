//! Memory alerts from the command line (design §10.2): `--set memory_critical=…` prints the
//! alert and the cleanup it ran, and the TensorBoard file records the level.

mod support;

use lsnn_train::record::tensorboard::scalars_as_shown;
use support::{scratch, setup, train_tiny};

#[test]
fn a_critical_threshold_is_printed_cleaned_up_and_recorded() {
    let d = scratch("memory-alerts");
    setup(&d);
    let out = train_tiny(
        &d,
        "run",
        &[
            "--max-batches",
            "2",
            "--set",
            "memory_warn=16KiB",
            "--set",
            "memory_critical=64KiB",
            "--tensorboard",
            "tb",
        ],
    );
    let alert = out
        .lines()
        .find(|l| l.starts_with("memory alert:"))
        .unwrap_or_else(|| panic!("no alert in:\n{out}"));
    assert!(
        alert.starts_with("memory alert: CRITICAL: live ")
            && alert.ends_with("reached the critical threshold 64.0 KiB"),
        "{alert}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("memory [critical]:") && l.contains("cleanup released")),
        "{out}"
    );
    assert_eq!(out.matches("memory alert:").count(), 1, "{out}");
    let levels: Vec<(i64, f32)> = scalars_as_shown(&d.join("tb"))
        .unwrap()
        .into_iter()
        .filter(|(t, _, _)| t == "memory/alert_level")
        .map(|(_, s, v)| (s, v))
        .collect();
    assert_eq!(levels, [(1, 2.0)]);
    // The saved config keeps the thresholds as written.
    let cfg = support::saved_config(&d.join("run"));
    assert_eq!(cfg["memory_warn"], "16KiB");
    assert_eq!(cfg["memory_critical"], "64KiB");
}
