//! Checkpoints (design §4.1, §8.2): save → resume restores everything, resume-then-continue equals a
//! straight run bit for bit, a failed save leaves the previous checkpoint current. Corrupted,
//! truncated or mismatched checkpoints are `checkpoint_errors.rs`'s.

mod common;

use candle_core::{Device, Tensor};
use common::{
    batch, bits, options, read_set, resume, resume_config, scratch, snapshot, text_data,
    tiny_config, LmTrainer,
};
use lsnn_train::checkpoint::{self, SaveStage};
use lsnn_train::{TrainError, TrainOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn tensor_bits(m: &HashMap<String, Tensor>) -> BTreeMap<String, (Vec<usize>, Vec<u32>)> {
    m.iter()
        .map(|(k, t)| (k.clone(), (t.dims().to_vec(), bits(t))))
        .collect()
}

/// Asserts two tensor maps hold the same names, shapes and bits; names the first difference.
#[track_caller]
fn assert_same_tensors(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    let (x, y) = (tensor_bits(a), tensor_bits(b));
    let names_x: Vec<&String> = x.keys().collect();
    let names_y: Vec<&String> = y.keys().collect();
    assert_eq!(names_x, names_y, "{what}: tensor names differ");
    for (k, v) in &x {
        assert!(y[k] == *v, "{what}: tensor {k} differs");
    }
}

/// The checkpoint of a run interrupted after `k` batches, then resumed and run to the end,
/// equals that of one uninterrupted run, file for file and byte for byte.
fn resume_equals_straight_run(ks: &[u64], name: &str) {
    let root = scratch(name);
    let data = text_data(&root);

    let straight = root.join("straight");
    let mut t = LmTrainer::new(resume_config(), data.clone(), options(&straight)).unwrap();
    let s = t.run(&mut |_| {}).unwrap();
    // Windows end at batches 3, 6 and 9; the tenth batch's partial window is applied when the
    // run finishes (the schedule planned 4 steps).
    assert_eq!((s.batches, s.steps), (10, 4));
    assert!(t.state().finished);

    let resumed = root.join("resumed");
    let mut t = LmTrainer::new(
        resume_config(),
        data,
        TrainOptions {
            max_batches: Some(ks[0]),
            ..options(&resumed)
        },
    )
    .unwrap();
    let s = t.run(&mut |_| {}).unwrap();
    assert!(s.interrupted);
    assert_eq!(s.batches, ks[0]);
    drop(t);
    for &k in &ks[1..] {
        let mut t = resume(
            &resumed,
            TrainOptions {
                max_batches: Some(k),
                ..options(&resumed)
            },
        )
        .unwrap();
        let s = t.run(&mut |_| {}).unwrap();
        assert!(s.interrupted);
        assert_eq!(s.batches, k);
    }
    let mut t = resume(&resumed, options(&resumed)).unwrap();
    assert_eq!(t.state().batches_seen, *ks.last().unwrap());
    let s = t.run(&mut |_| {}).unwrap();
    assert!(!s.interrupted);
    assert_eq!((s.batches, s.steps), (10, 4));

    let a = read_set(&straight);
    let b = read_set(&resumed);
    for (file, bytes) in &a {
        // First the contents, to name what differs; then the bytes.
        if *file == checkpoint::STATE_FILE {
            // Equal but for the lineage, which each fresh run draws anew.
            let strip = |bytes: &[u8]| {
                let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
                assert!(v["lineage"].is_string());
                v.as_object_mut().unwrap().remove("lineage");
                v
            };
            assert_eq!(
                strip(bytes),
                strip(&b[file]),
                "{file} differs after resume at {ks:?}"
            );
            continue;
        }
        if file.ends_with(".safetensors") {
            assert_same_tensors(
                &candle_core::safetensors::load_buffer(bytes, &Device::Cpu).unwrap(),
                &candle_core::safetensors::load_buffer(&b[file], &Device::Cpu).unwrap(),
                &format!("{file} after resume at {ks:?}"),
            );
        }
        assert!(
            *bytes == b[file],
            "{file} bytes differ after resume at {ks:?}"
        );
    }
}

#[test]
fn resume_mid_epoch_inside_accumulation_window_equals_straight_run() {
    // Batch 4: mid-epoch (5 per epoch), one batch into the second accumulation window.
    resume_equals_straight_run(&[4], "resume-k4");
}

#[test]
fn resume_at_epoch_boundary_equals_straight_run() {
    // Batch 5: exactly the end of epoch 1, two batches into the second accumulation window.
    resume_equals_straight_run(&[5], "resume-k5");
}

#[test]
fn resume_twice_equals_straight_run() {
    // Interrupted at 2 and at 7 (second epoch, inside the third window).
    resume_equals_straight_run(&[2, 7], "resume-k2-k7");
}

#[test]
fn resume_at_window_boundaries_equals_straight_run() {
    // Interrupted right after windows close (no open window: the resumed run starts with no
    // accumulation buffers, the straight one reuses zeroed ones).
    resume_equals_straight_run(&[3, 6], "resume-k3-k6");
}

/// Save → resume: every variable, EMA weight, optimizer moment, accumulation buffer, the state
/// and the metrics equal the saved ones (the resumed trainer saves exactly what was saved).
#[test]
fn resume_restores_every_tensor_and_the_state() {
    let root = scratch("resume-restores");
    let data = text_data(&root);
    let first = root.join("first");
    let mut t = LmTrainer::new(
        resume_config(),
        data,
        TrainOptions {
            max_batches: Some(4),
            ..options(&first)
        },
    )
    .unwrap();
    t.run(&mut |_| {}).unwrap();
    let vars_before = snapshot(&t);
    let saved = checkpoint::load(&first).unwrap();
    assert_eq!(saved.step, 1);
    assert_eq!(saved.step, t.state().step);

    // The saved weights are the trainer's.
    for (name, v) in t.vars() {
        assert_eq!(bits(&saved.model[name]), bits(v.as_tensor()), "{name}");
    }
    // The EMA (decay 0.9, one update) differs from the weights; the moments are non-zero; the
    // accumulation buffer of the open window (one batch in) is saved.
    let n = t.vars().len();
    assert_eq!(saved.model.len(), n);
    assert_eq!(saved.ema.len(), n);
    assert!(tensor_bits(&saved.ema) != tensor_bits(&saved.model));
    let acc_keys = saved
        .optimizer
        .keys()
        .filter(|k| k.starts_with("acc."))
        .count();
    assert_eq!(acc_keys, n, "the partial window's gradients are saved");
    assert_eq!(
        saved.optimizer.len(),
        3 * n,
        "m, v and acc for each variable"
    );
    let state: serde_json::Value = serde_json::from_str(&saved.state_json).unwrap();
    assert_eq!(state["accum_in_window"], 1);
    assert_eq!(state["accum_valid"], 1);
    assert_eq!(state["batch_in_epoch"], 4);

    let second = root.join("second");
    let r = resume(&first, options(&second)).unwrap();
    assert_eq!(snapshot(&r), vars_before, "weights differ after resume");
    let st = r.state();
    assert_eq!(st.step, 1);
    assert_eq!(st.batches_seen, 4);
    assert_eq!(st.accum_in_window, 1);
    assert_eq!(st.epoch_order, t.state().epoch_order);
    assert_eq!(
        serde_json::to_value(st).unwrap(),
        state,
        "the resumed state is the saved one"
    );
    assert_eq!(r.metrics_csv(), saved.metrics_csv);
    assert_eq!(r.config(), t.config());

    r.save_checkpoint().unwrap();
    let again = checkpoint::load(&second).unwrap();
    assert_same_tensors(&again.model, &saved.model, "weights");
    assert_same_tensors(&again.ema, &saved.ema, "EMA");
    assert_same_tensors(
        &again.optimizer,
        &saved.optimizer,
        "optimizer moments / accumulation buffer",
    );
    assert_eq!(again.state_json, saved.state_json);
    assert_eq!(again.config_json, saved.config_json);
    assert_eq!(again.metrics_csv, saved.metrics_csv);
}

/// A trainer with a checkpoint at step 1 in `run_dir`, then trained to step 2 (not saved).
fn trainer_with_old_checkpoint(run_dir: &Path) -> (LmTrainer, PathBuf) {
    let data = text_data(run_dir);
    let mut t = LmTrainer::new(tiny_config(), data, options(run_dir)).unwrap();
    t.train_batch(&batch(&t, 0)).unwrap();
    let old = t.save_checkpoint().unwrap();
    t.train_batch(&batch(&t, 1)).unwrap();
    assert_eq!(t.state().step, 2);
    (t, old)
}

/// A trainer resumed from a copy of `run_dir` (whose lock another trainer holds).
fn resume_copy(run_dir: &Path, name: &str) -> LmTrainer {
    let copy = scratch(name);
    for e in std::fs::read_dir(run_dir).unwrap().flatten() {
        let to = copy.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
            }
        } else if e.file_name() != checkpoint::LOCK_FILE {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
    resume(&copy, options(&copy)).unwrap()
}

fn fail_at(target: SaveStage) -> impl FnMut(SaveStage) -> std::io::Result<()> {
    move |stage| {
        if stage == target {
            Err(std::io::Error::other("injected failure"))
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_failed_save_leaves_the_previous_checkpoint_current() {
    let run_dir = scratch("failed-save");
    let (t, old) = trainer_with_old_checkpoint(&run_dir);
    let old_model = std::fs::read(old.join(checkpoint::MODEL_FILE)).unwrap();
    let mut stages = vec![SaveStage::Begin];
    for f in [
        checkpoint::MODEL_FILE,
        checkpoint::EMA_FILE,
        checkpoint::OPTIMIZER_FILE,
        checkpoint::CONFIG_FILE,
        checkpoint::STATE_FILE,
        checkpoint::METRICS_FILE,
    ] {
        stages.push(SaveStage::FileWritten(f));
    }
    stages.push(SaveStage::BeforeSwitch);
    for stage in stages {
        let err = t
            .save_checkpoint_with_hook(&mut fail_at(stage))
            .unwrap_err();
        match &err {
            TrainError::Io { source, .. } => {
                let message = source.to_string();
                assert!(
                    message.contains("save failed") && message.contains("injected failure"),
                    "{stage:?}: {message}"
                );
            }
            other => panic!("{stage:?}: expected an i/o error, got {other:?}"),
        }
        // Nothing of the failed save is left behind.
        let names: Vec<String> = std::fs::read_dir(&run_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("ckpt-") || n.starts_with(".partial-") || n.ends_with(".tmp"))
            .collect();
        assert_eq!(names.len(), 1, "{stage:?}: {names:?}");
        assert_eq!(checkpoint::resolve(&run_dir).unwrap(), old, "{stage:?}");
        let ck = checkpoint::load(&run_dir).unwrap();
        assert_eq!(
            ck.step, 1,
            "{stage:?}: the old checkpoint is no longer current"
        );
        assert_eq!(
            std::fs::read(old.join(checkpoint::MODEL_FILE)).unwrap(),
            old_model,
            "{stage:?}: the old checkpoint was overwritten"
        );
        // (The trainer holds the run's lock: resume a copy.)
        let r = resume_copy(&run_dir, "failed-save-copy");
        assert_eq!(r.state().step, 1);
    }

    // Failing after the switch: the new set is current and whole.
    let err = t
        .save_checkpoint_with_hook(&mut fail_at(SaveStage::AfterSwitch))
        .unwrap_err();
    assert!(matches!(err, TrainError::Io { .. }), "{err:?}");
    let cur = checkpoint::resolve(&run_dir).unwrap();
    assert_ne!(cur, old);
    assert_eq!(checkpoint::load(&run_dir).unwrap().step, 2);
    let r = resume_copy(&run_dir, "failed-save-copy");
    assert_eq!(snapshot(&r), snapshot(&t));

    // The next successful save removes every leftover set.
    let newest = t.save_checkpoint().unwrap();
    let sets: Vec<String> = std::fs::read_dir(&run_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ckpt-"))
        .collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(checkpoint::resolve(&run_dir).unwrap(), newest);
}
