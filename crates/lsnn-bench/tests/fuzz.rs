//! The short property run of the fuzz harness CI does (the long campaigns are `cargo xtask fuzz`
//! and the cargo-fuzz targets in `fuzz/`, docs/reliability.md), and every input a campaign
//! found kept as a regression.

use lsnn_bench::fuzz::campaign::{campaign, run_one};
use lsnn_bench::fuzz::{CheckpointHarness, Outcome, Target};
use std::path::Path;

#[test]
fn short_campaigns_find_no_panic_and_no_long_message() {
    for (target, n) in [
        (Target::Config, 3000),
        (Target::Text, 3000),
        (Target::Arrays, 1500),
        (Target::Checkpoint, 400),
    ] {
        let r = campaign(target, n, 7, None).unwrap();
        assert!(r.clean(), "{target:?}: {:?} {:?}", r.panics, r.oversized);
        // Not vacuous: the mutants reach both sides of each reader.
        assert!(r.accepted > 0 && r.refused > n / 10, "{target:?}: {r:?}");
    }
}

#[test]
fn found_inputs_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut seen = 0;
    for t in Target::ALL {
        let Ok(entries) = std::fs::read_dir(dir.join(t.name())) else {
            continue;
        };
        let harness = (t == Target::Checkpoint)
            .then(|| CheckpointHarness::new(&std::env::temp_dir()).unwrap());
        for e in entries.flatten() {
            let input = std::fs::read(e.path()).unwrap();
            let o = run_one(t, &input, harness.as_ref());
            assert!(
                matches!(&o, Outcome::Refused(m) if m.len() < 400),
                "{}: {o:?}",
                e.path().display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 1, "the regression inputs are where this test looks");
    let zero = std::fs::read(dir.join("text/sequence-length-zero.bin")).unwrap();
    assert!(
        matches!(run_one(Target::Text, &zero, None), Outcome::Refused(m) if m.contains("sequence length 0")),
    );
}

fn refused(o: Outcome) -> String {
    match o {
        Outcome::Refused(m) => m,
        Outcome::Accepted => panic!("expected a refusal"),
    }
}

#[test]
fn the_checkpoint_harness_sees_what_a_loader_must_refuse() {
    let h = CheckpointHarness::new(&std::env::temp_dir()).unwrap();
    assert_eq!(h.run(&[]).unwrap(), Outcome::Accepted);
    // An edit of zero bits changes nothing.
    assert_eq!(h.run(&[0x00, 10, 0, 0]).unwrap(), Outcome::Accepted);
    // A bit flipped deep in the model's tensor data, the manifest as saved: the hash catches it.
    let m = refused(h.run(&[0x00, 0x00, 0xf0, 0x01]).unwrap());
    assert!(m.contains("model.safetensors"), "{m}");
    // The same flip in the safetensors header with the manifest rewritten to match: the
    // safetensors reader, not the hash, refuses it.
    let m = refused(h.run(&[0x10, 0x00, 0x00, 0x7f, 0x03, 0x00, 0x40]).unwrap());
    assert!(m.contains("model.safetensors"), "{m}");
    // A trainer state replaced by other JSON, manifest matching: refused naming the file.
    let m = refused(h.run(b"\x1c{\"step\": 1}").unwrap());
    assert!(
        m.contains("trainer_state.json") || m.contains("config"),
        "{m}"
    );
    // And the set is whole again after each input.
    assert_eq!(h.run(&[]).unwrap(), Outcome::Accepted);
}

/// Found in review, not by a campaign: a manifest whose recorded hash is not ASCII once made the
/// "file changed" message slice a character in two.
#[test]
fn a_manifest_with_a_non_ascii_hash_is_refused_not_a_panic() {
    let h = CheckpointHarness::new(&std::env::temp_dir()).unwrap();
    let (_, manifest) = h.originals().find(|(i, _)| *i == 6).unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    // 64 bytes like a real hash; byte 12 falls inside an "é".
    m["files"]["model.safetensors"]["sha256"] = format!("a{}b", "é".repeat(31)).into();
    let mut input = vec![0x08 | 6];
    input.extend_from_slice(m.to_string().as_bytes());
    let msg = refused(h.run(&input).unwrap());
    assert!(msg.contains("model.safetensors"), "{msg}");
}
