//! A checkpoint set written by round 1's code (format 1: no fingerprint, the metric history as
//! `val_history`, the flat config holding the trainer's fields) loads and resumes with today's
//! code, and its continuation is exact: resumed in one go or with one more stop and resume on the
//! way, the same bits (`tests/fixtures/ckpt_v1/README.md` has the two commands that wrote it).
//!
//! Until issue 21 the continuation was also compared bit for bit with what round 1's own binary
//! computed. That comparison ended when the arithmetic changed on purpose — the matmul's AVX-512
//! kernels and the CfC op's correctly rounded tanh and σ round differently from round 1's AVX2
//! matmul and libm calls — so `expected_resume.json` now serves for its tensor names only: every
//! tensor round 1 continued, and no other, is in today's continuation.

mod common;

use common::{copy_dir, scratch, LmTrainer};
use lsnn_train::checkpoint;
use lsnn_train::TrainOptions;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ckpt_v1")
}

/// The first 16 hex digits of the SHA-256 of each tensor's little-endian f32 bytes.
fn digests(tensors: &HashMap<String, candle_core::Tensor>) -> HashMap<String, String> {
    tensors
        .iter()
        .map(|(k, t)| {
            let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            let h = Sha256::digest(&bytes);
            let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
            (k.clone(), hex[..16].to_string())
        })
        .collect()
}

/// Resumes the run in `run` up to `max_batches` batches in all.
fn resume_to(run: &Path, max_batches: u64) {
    let mut t = LmTrainer::resume(
        run,
        TrainOptions {
            out_dir: run.to_path_buf(),
            max_batches: Some(max_batches),
            ..TrainOptions::default()
        },
        lsnn_train::lm::token_data,
    )
    .unwrap();
    let s = t.run(&mut |_| {}).unwrap();
    assert!(s.interrupted);
}

/// Digests of the current set's model, EMA and optimizer tensors, by kind.
fn set_digests(run: &Path) -> Vec<(&'static str, HashMap<String, String>)> {
    let ck = checkpoint::load(run).unwrap();
    vec![
        ("model", digests(&ck.model)),
        ("ema", digests(&ck.ema)),
        ("optimizer", digests(&ck.optimizer)),
    ]
}

#[test]
fn a_round_one_checkpoint_loads_and_resumes_exactly() {
    let dir = scratch("old-checkpoint");
    let run = dir.join("run");
    copy_dir(&fixture().join("run"), &run);
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture().join("expected_resume.json")).unwrap(),
    )
    .unwrap();
    let mut t = LmTrainer::resume(
        &run,
        TrainOptions {
            out_dir: run.clone(),
            max_batches: Some(12),
            ..TrainOptions::default()
        },
        lsnn_train::lm::token_data,
    )
    .unwrap();
    assert_eq!(t.state().batches_seen, 5);
    assert_eq!(
        t.state().data_fingerprint.as_deref().map(str::len),
        Some(16)
    );
    let s = t.run(&mut |_| {}).unwrap();
    drop(t);
    assert!(s.interrupted);
    assert_eq!((s.steps, s.batches), (6, 12));
    let one_go = set_digests(&run);
    for (kind, got) in &one_go {
        let want = expected[*kind].as_object().unwrap();
        let mut names: Vec<&String> = got.keys().collect();
        names.sort();
        let mut want_names: Vec<&String> = want.keys().collect();
        want_names.sort();
        assert_eq!(names, want_names, "{kind}: the tensors round 1 continued");
    }
    // The same continuation with a stop and a resume after batch 8 (inside an accumulation
    // window of the old set's config): the same bits.
    let hops = dir.join("hops");
    copy_dir(&fixture().join("run"), &hops);
    resume_to(&hops, 8);
    resume_to(&hops, 12);
    for ((kind, a), (_, b)) in one_go.iter().zip(set_digests(&hops)) {
        assert_eq!(a.len(), b.len(), "{kind}: tensor count");
        for (k, h) in a {
            assert_eq!(
                b.get(k),
                Some(h),
                "{kind} {k}: resumed with one more stop, not the same bits"
            );
        }
    }
    let ck = checkpoint::load(&run).unwrap();
    // The resumed set is written in today's formats: the state (with a fingerprint, and the
    // lineage that adopted the round-1 set) and a manifest of every file.
    let state: serde_json::Value = serde_json::from_str(&ck.state_json).unwrap();
    assert_eq!(state["format_version"], lsnn_train::trainer::STATE_VERSION);
    assert!(state["data_fingerprint"].is_string());
    assert!(
        state["lineage"]
            .as_str()
            .unwrap()
            .starts_with("adopted:ckpt-"),
        "{}",
        state["lineage"]
    );
    assert_eq!(ck.set_format, 2);
}
