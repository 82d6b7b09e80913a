//! A run's own record (design §10.4): the files `lsnn train` writes in `<run>/record/`, their
//! figures against the checkpoint's metrics, and a crashed run's resume — the entries the crash
//! left past the checkpoint cut, every batch and epoch recorded once, with the figures of a run
//! never interrupted.

mod support;

use std::path::Path;
use support::{copy_dir, current_set, lsnn, ok, scratch, setup, train_tiny};

fn read(run: &Path, file: &str) -> String {
    std::fs::read_to_string(run.join("record").join(file)).unwrap()
}

/// A CSV's rows as (header, rows of cells).
fn csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

/// Each event of `events.jsonl`.
fn events(run: &Path) -> Vec<serde_json::Value> {
    read(run, "events.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The cells of the steps and epochs files that a resume must reproduce exactly (not wall
/// times, throughput or memory, which differ between processes).
fn reproducible(run: &Path) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let (sh, steps) = csv(&read(run, "steps.csv"));
    let keep_steps: Vec<usize> = ["batches", "epoch", "step", "loss", "lr"]
        .iter()
        .map(|c| column(&sh, c))
        .collect();
    let (eh, epochs) = csv(&read(run, "epochs.csv"));
    let keep_epochs: Vec<usize> = (0..eh.len())
        .filter(|&i| !["live_bytes", "peak_bytes", "rss_bytes"].contains(&eh[i].as_str()))
        .collect();
    let pick = |rows: Vec<Vec<String>>, keep: &[usize]| -> Vec<Vec<String>> {
        rows.into_iter()
            .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
            .collect()
    };
    (pick(steps, &keep_steps), pick(epochs, &keep_epochs))
}

#[test]
fn the_record_holds_the_runs_figures_and_a_resumed_crash_counts_each_entry_once() {
    let d = scratch("run-record");
    setup(&d);
    let printed = train_tiny(&d, "full", &[]);
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("memory by stage (probe step of 4 rows")),
        "{printed}"
    );
    let full = d.join("full");
    let manifest: serde_json::Value = serde_json::from_str(&read(&full, "record.json")).unwrap();
    assert_eq!(manifest["format"], "lsnn-run-record");
    assert_eq!(manifest["version"], 1);

    // One step row per batch, positions 1..=n; the last epoch row holds the checkpoint's last
    // metrics row's validation loss and the epoch's firing rates.
    let (sh, steps) = csv(&read(&full, "steps.csv"));
    let n = steps.len();
    assert!(n >= 8);
    let batches: Vec<String> = steps
        .iter()
        .map(|r| r[column(&sh, "batches")].clone())
        .collect();
    assert_eq!(batches, (1..=n).map(|b| b.to_string()).collect::<Vec<_>>());
    let (eh, epochs) = csv(&read(&full, "epochs.csv"));
    assert_eq!(epochs.len(), 2, "one row per epoch");
    assert_eq!(epochs[1][0], n.to_string());
    let metrics = std::fs::read_to_string(current_set(&full).join("metrics.csv")).unwrap();
    let (mh, mrows) = csv(&metrics);
    let ckpt_val: f64 = mrows.last().unwrap()[column(&mh, "val_loss")]
        .parse()
        .unwrap();
    let rec_val: f64 = epochs[1][column(&eh, "val_loss")].parse().unwrap();
    assert_eq!(ckpt_val, rec_val);
    let rate: f64 = epochs[1][column(&eh, "rate:blocks.0.encoder.lif1")]
        .parse()
        .unwrap();
    assert!(rate > 0.0 && rate < 1.0, "{rate}");
    for c in ["live_bytes", "peak_bytes", "rss_bytes", "silent:attns.0.v"] {
        column(&eh, c);
    }
    // The memory timeline: a row per batch and per memory line, and its trace.
    let (_, mem) = csv(&read(&full, "memory.csv"));
    assert_eq!(mem.iter().filter(|r| r[2] == "batch").count(), n);
    assert!(mem.iter().any(|r| r[2] == "epoch 2"));
    let trace: serde_json::Value = serde_json::from_str(&read(&full, "memory.trace.json")).unwrap();
    let counters = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "C")
        .count();
    assert_eq!(counters, mem.len());
    // Peak memory by stage from the probe step before training (design §10.5).
    let stages: serde_json::Value =
        serde_json::from_str(&read(&full, "memory_stages.json")).unwrap();
    let names: Vec<&str> = stages["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    for want in [
        "embedding",
        "blocks.0",
        "blocks.1",
        "attns.0",
        "head",
        "optimizer",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    // One shard's rows (the default shard_rows, 4, of the batch of 6).
    assert_eq!(stages["batch_rows"], 4);
    // The event log: the start, each epoch end with its cleanup and checkpoint.
    let kinds: Vec<String> = events(&full)
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds[0], "start");
    assert_eq!(kinds.iter().filter(|k| *k == "epoch_end").count(), 2);
    assert_eq!(kinds.iter().filter(|k| *k == "checkpoint").count(), 2);
    assert!(kinds.iter().any(|k| k == "cleanup"));

    // The crash: checkpointed at batch 4 (copied aside), then the process recorded batches 5
    // and 6 and died before its next checkpoint; its record is what the restart finds.
    train_tiny(&d, "run", &["--max-batches", "4"]);
    copy_dir(&d.join("run"), &d.join("at4"));
    ok(&lsnn(
        &["train", "--resume", "run", "--max-batches", "6"],
        &d,
    ));
    std::fs::remove_dir_all(d.join("at4").join("record")).unwrap();
    copy_dir(&d.join("run").join("record"), &d.join("at4").join("record"));
    // ... with a last line the crash cut short.
    let steps_path = d.join("at4").join("record").join("steps.csv");
    let mut text = std::fs::read_to_string(&steps_path).unwrap();
    text.push_str("7,0,2,5.1");
    std::fs::write(&steps_path, text).unwrap();
    ok(&lsnn(&["train", "--resume", "at4"], &d));
    let at4 = d.join("at4");
    assert_eq!(
        reproducible(&at4),
        reproducible(&full),
        "each entry once, as never interrupted"
    );
    // The first resume is the crashed process's own (from batch 4 too, nothing to cut).
    let resumes: Vec<serde_json::Value> = events(&at4)
        .into_iter()
        .filter(|e| e["kind"] == "resume")
        .collect();
    assert_eq!(resumes.len(), 2);
    let resume = &resumes[1];
    assert_eq!(resume["batches"], 4);
    // Cut: steps 5, 6 and the torn 7; memory rows 5, 6 and the stop's memory line; the
    // stop's checkpoint and notice events at 6.
    assert_eq!(resume["entries_cut"], 6, "{resume}");
    assert!(events(&at4)
        .iter()
        .all(|e| e["kind"] != "checkpoint" || e["batches"] != 6));
}
