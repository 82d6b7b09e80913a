//! A checkpoint set written by round 1's code (format 1: no fingerprint, the metric history as
//! `val_history`, the flat config holding the trainer's fields) loads and resumes with today's
//! code, and the continuation is bit for bit what round 1's own binary computed
//! (`tests/fixtures/ckpt_v1/README.md` has the two commands that wrote it).

mod common;

use common::{copy_dir, scratch, LmTrainer};
use lsnn_train::checkpoint;
use lsnn_train::TrainOptions;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;

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

#[test]
fn a_round_one_checkpoint_loads_and_resumes_bit_for_bit() {
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
    assert!(s.interrupted);
    assert_eq!((s.steps, s.batches), (6, 12));
    let ck = checkpoint::load(&run).unwrap();
    for (kind, tensors) in [
        ("model", &ck.model),
        ("ema", &ck.ema),
        ("optimizer", &ck.optimizer),
    ] {
        let want = expected[kind].as_object().unwrap();
        let got = digests(tensors);
        assert_eq!(got.len(), want.len(), "{kind}: tensor count");
        for (k, h) in want {
            assert_eq!(
                got.get(k).map(String::as_str),
                h.as_str(),
                "{kind} {k} differs from round 1's continuation"
            );
        }
    }
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
