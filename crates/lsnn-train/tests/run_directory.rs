//! What a run directory promises, in-process (design §4.4): one writer (a second trainer gets
//! `Locked` naming the holder), retention that removes only this run's sets, leftovers of
//! crashed saves removed and reported, a stop request that saves, and no silent replacement.

mod common;

use common::{copy_dir, options, scratch, text_dataset, tiny_config, LmTrainer};
use lsnn_train::checkpoint::{CURRENT, LOCK_FILE};
use lsnn_train::{Event, TrainError, TrainOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn train_batches(dir: &Path, batches: u64) -> Vec<Event> {
    let opts = TrainOptions {
        max_batches: Some(batches),
        ..options(dir)
    };
    let mut t = LmTrainer::new(tiny_config(), text_dataset(16), opts).unwrap();
    let mut events = Vec::new();
    t.run(&mut |e| events.push(e.clone())).unwrap();
    events
}

fn resume_to(dir: &Path, batches: u64) -> Vec<Event> {
    let opts = TrainOptions {
        max_batches: Some(batches),
        ..options(dir)
    };
    let mut t = LmTrainer::resume(dir, opts, |_, _| Ok(text_dataset(16))).unwrap();
    let mut events = Vec::new();
    t.run(&mut |e| events.push(e.clone())).unwrap();
    events
}

fn sets(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ckpt-"))
        .collect();
    v.sort();
    v
}

fn current(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(CURRENT))
        .unwrap()
        .trim()
        .to_string()
}

fn notices(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_second_trainer_is_locked_out_naming_the_holder() {
    let dir = scratch("locked");
    let first = LmTrainer::new(tiny_config(), text_dataset(16), options(&dir)).unwrap();
    let lock = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
    assert!(lock.contains(&std::process::id().to_string()), "{lock}");
    match LmTrainer::new(tiny_config(), text_dataset(16), options(&dir)) {
        Err(TrainError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    // Released with the trainer: the next one starts.
    drop(first);
    LmTrainer::new(tiny_config(), text_dataset(16), options(&dir)).unwrap();
}

#[test]
fn a_fresh_run_never_replaces_a_run_unless_asked() {
    let dir = scratch("no-replace");
    train_batches(&dir, 2);
    let before = current(&dir);
    match LmTrainer::new(tiny_config(), text_dataset(16), options(&dir)) {
        Err(TrainError::RunExists { what, .. }) => assert!(what.contains(&before), "{what}"),
        other => panic!("expected RunExists, got {:?}", other.map(|_| ())),
    }
    assert_eq!(current(&dir), before);
    // With overwrite: the old set goes once the new run's first set is current.
    let opts = TrainOptions {
        overwrite: true,
        max_batches: Some(1),
        ..options(&dir)
    };
    let mut t = LmTrainer::new(tiny_config(), text_dataset(16), opts).unwrap();
    t.run(&mut |_| {}).unwrap();
    assert_ne!(current(&dir), before);
    assert_eq!(sets(&dir), vec![current(&dir)]);
}

#[test]
fn retention_removes_only_this_runs_sets_and_leftovers_are_cleared_with_a_notice() {
    let dir = scratch("lineage");
    train_batches(&dir, 2);
    // Another run's set, dropped in by hand (another lineage): retention must leave it.
    let other = scratch("lineage-other");
    train_batches(&other, 1);
    let foreign = current(&other);
    copy_dir(&other.join(&foreign), &dir.join(&foreign));
    // Debris of a crashed save.
    std::fs::create_dir_all(dir.join(".partial-ckpt-0000000009-1")).unwrap();
    std::fs::write(dir.join("CURRENT.tmp"), "ckpt-nowhere").unwrap();

    let own_before = current(&dir);
    let events = resume_to(&dir, 4);
    let said = notices(&events).join("\n");
    assert!(
        said.contains(".partial-ckpt-0000000009-1") && said.contains("CURRENT.tmp"),
        "{said}"
    );
    assert!(!dir.join(".partial-ckpt-0000000009-1").exists());
    assert!(!dir.join("CURRENT.tmp").exists());
    let now = sets(&dir);
    assert!(
        now.contains(&foreign),
        "the other run's set survives: {now:?}"
    );
    assert!(
        !now.contains(&own_before),
        "this run's older set goes: {now:?}"
    );
    assert!(now.contains(&current(&dir)));
    assert_eq!(now.len(), 2, "{now:?}");
}

#[test]
fn a_stop_request_finishes_the_micro_batch_and_saves() {
    let dir = scratch("stop");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = TrainOptions {
        stop: Some(stop.clone()),
        ..options(&dir)
    };
    let mut t = LmTrainer::new(tiny_config(), text_dataset(16), opts).unwrap();
    // Requested while the second micro-batch is being reported, as a signal would.
    let mut seen = 0;
    let summary = t
        .run(&mut |e| {
            if matches!(e, Event::Batch { .. }) {
                seen += 1;
                if seen == 2 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .unwrap();
    assert!(summary.interrupted && summary.stop_requested, "{summary:?}");
    assert_eq!(
        summary.batches, 2,
        "the batch under way finishes, then the save"
    );
    drop(t);
    assert!(current(&dir).starts_with("ckpt-"));
    // The saved set resumes from there.
    let events = resume_to(&dir, 4);
    let resumed_at = events.iter().find_map(|e| match e {
        Event::Start { resumed_at, .. } => *resumed_at,
        _ => None,
    });
    assert_eq!(resumed_at, Some(2));
}

#[test]
fn a_first_save_killed_before_its_pointer_still_resumes() {
    // The set is renamed into place only once complete; a kill before `CURRENT` is written
    // leaves it without a pointer. It is still the run's checkpoint: loads, resumes.
    let dir = scratch("no-pointer");
    train_batches(&dir, 2);
    let set = current(&dir);
    std::fs::remove_file(dir.join(CURRENT)).unwrap();
    let ck = lsnn_train::checkpoint::load(&dir).unwrap();
    assert!(ck.dir.ends_with(&set), "{:?}", ck.dir);
    resume_to(&dir, 3);
    assert_ne!(current(&dir), set);
}
