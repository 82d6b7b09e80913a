//! Integrity in real processes (design §4.3, §4.4): every loader (`train --resume`, `eval`,
//! `generate`) refuses a set whose files changed, naming the file; a data file edited in place is
//! refused; a run works from any working directory; a set written before manifests loads with a
//! notice.

mod support;

use std::path::Path;
use support::{code, copy_dir, current_set, err, lsnn, ok, scratch, setup, train_tiny};

/// A copy of the run's current set with `edit` applied to it, as a run of its own.
fn edited_copy(d: &Path, from: &str, to: &str, edit: impl FnOnce(&Path)) {
    let src = current_set(&d.join(from));
    let name = src.file_name().unwrap().to_owned();
    let dst = d.join(to).join(&name);
    copy_dir(&src, &dst);
    std::fs::write(
        d.join(to).join("CURRENT"),
        format!("{}\n", name.to_string_lossy()),
    )
    .unwrap();
    edit(&dst);
}

/// `resume`, `eval` and `generate` of `run` all fail with exit code 2 and a message containing
/// every one of `words`.
fn every_loader_refuses(d: &Path, run: &str, words: &[&str]) {
    for args in [
        vec!["train", "--resume", run],
        vec!["eval", "--checkpoint", run],
        vec![
            "generate",
            "--checkpoint",
            run,
            "--prompt",
            "a",
            "--max-tokens",
            "1",
        ],
    ] {
        let o = lsnn(&args, d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{args:?}: {e}");
        for w in words {
            assert!(e.contains(w), "{args:?}: {w:?} not in {e}");
        }
    }
}

#[test]
fn every_loader_verifies_a_set_the_same_way() {
    let d = scratch("verify");
    setup(&d);
    train_tiny(&d, "run", &["--max-batches", "2"]);
    // A bit flipped inside the tensor data (not the header): only the content hash sees it.
    edited_copy(&d, "run", "flipped", |set| {
        let p = set.join("model.safetensors");
        let mut b = std::fs::read(&p).unwrap();
        let at = b.len() - 100;
        b[at] ^= 0x10;
        std::fs::write(&p, b).unwrap();
    });
    every_loader_refuses(&d, "flipped", &["model.safetensors", "corrupted"]);
    // A set without a manifest (set format 1) whose optimizer file lacks a tensor: resume refused
    // it, and eval and generate now refuse it too.
    edited_copy(&d, "run", "lenient", |set| {
        std::fs::remove_file(set.join("MANIFEST.json")).unwrap();
        let p = set.join("optimizer.safetensors");
        let bytes = std::fs::read(&p).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone();
        let mut t =
            candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).unwrap();
        let key = t.keys().find(|k| k.starts_with("v.")).unwrap().clone();
        t.remove(&key);
        let out = safetensors::serialize(t.iter().map(|(k, v)| (k.as_str(), v)), meta).unwrap();
        std::fs::write(&p, out).unwrap();
    });
    every_loader_refuses(&d, "lenient", &["optimizer.safetensors", "missing tensor"]);
    // The intact set loads, and an old one says it cannot be verified.
    ok(&lsnn(&["eval", "--checkpoint", "run"], &d));
    edited_copy(&d, "run", "old", |set| {
        std::fs::remove_file(set.join("MANIFEST.json")).unwrap()
    });
    let o = lsnn(&["eval", "--checkpoint", "old"], &d);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("set format 1"));
}

#[test]
fn changed_data_is_refused_and_a_run_works_from_any_directory() {
    let d = scratch("data-path");
    setup(&d);
    train_tiny(&d, "run", &["--max-batches", "2"]);
    // From another working directory: the run recorded the data's absolute path.
    let sub = d.join("elsewhere");
    std::fs::create_dir_all(&sub).unwrap();
    ok(&lsnn(&["eval", "--checkpoint", "../run"], &sub));
    ok(&lsnn(
        &["train", "--resume", "../run", "--max-batches", "3"],
        &sub,
    ));
    // The data file edited in place at the same length.
    let mut b = std::fs::read(d.join("data.txt")).unwrap();
    b[50] = if b[50] == b'q' { b'z' } else { b'q' };
    std::fs::write(d.join("data.txt"), b).unwrap();
    for args in [
        vec!["train", "--resume", "run"],
        vec!["eval", "--checkpoint", "run"],
    ] {
        let o = lsnn(&args, &d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{e}");
        assert!(
            e.contains("data.txt") && e.contains("changed"),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn a_round_one_set_loads_with_a_notice() {
    let d = scratch("round-one");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lsnn-train/tests/fixtures/ckpt_v1");
    copy_dir(&src.join("run"), &d.join("v1"));
    let o = lsnn(&["eval", "--checkpoint", "v1"], &d);
    let out = ok(&o);
    assert!(out.contains("val loss"), "{out}");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("note:") && said.contains("set format 1"),
        "{said}"
    );
}
