//! Corrupted, truncated and mismatched checkpoints (design §4.1–4.3, §8.2) are typed errors that
//! name what disagrees, and a set whose state disagrees is refused before anything is switched.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{
    batch, options, read_set, resume, resume_config, scratch, text_data, tiny_model, tiny_train,
    write_text_file, LmTrainer,
};
use lsnn_train::checkpoint;
use lsnn_train::lsnn_layers::ModelConfig;
use lsnn_train::{RunConfig, TrainConfig, TrainError, TrainOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

// ---- corrupted, truncated and mismatched checkpoints ----

/// A valid checkpoint (step 1, one batch into an accumulation window of 2) to corrupt.
fn template() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let root = scratch("corrupt-template");
        let data = text_data(&root);
        let cfg = RunConfig {
            model: tiny_model(),
            train: TrainConfig {
                gradient_accumulation_steps: 2,
                ..tiny_train()
            },
        };
        let run = root.join("run");
        let mut t = LmTrainer::new(cfg, data, options(&run)).unwrap();
        for b in 0..3 {
            t.train_batch(&batch(&t, b)).unwrap();
        }
        t.save_checkpoint().unwrap();
        run
    })
}

/// A copy of the template run directory; returns (run dir, set dir).
fn fresh_copy(name: &str) -> (PathBuf, PathBuf) {
    let src = template();
    let dst = scratch(&format!("corrupt-{name}"));
    let set = checkpoint::resolve(src).unwrap();
    let set_name = set.file_name().unwrap();
    std::fs::create_dir_all(dst.join(set_name)).unwrap();
    for e in std::fs::read_dir(&set).unwrap().flatten() {
        std::fs::copy(e.path(), dst.join(set_name).join(e.file_name())).unwrap();
    }
    std::fs::copy(src.join(checkpoint::CURRENT), dst.join(checkpoint::CURRENT)).unwrap();
    // Without its manifest (set format 1) the copy exercises the consistency checks below; the
    // manifest's own checks are in tests/integrity.rs.
    std::fs::remove_file(dst.join(set_name).join(checkpoint::MANIFEST_FILE)).unwrap();
    // The copy itself is valid.
    resume(&dst, options(&dst)).unwrap();
    let set = dst.join(set_name);
    (dst, set)
}

/// Resuming `run_dir` fails with a checkpoint error whose path ends with `file` and whose message
/// contains every one of `words`.
#[track_caller]
fn expect_checkpoint_error(run_dir: &Path, file: &str, words: &[&str]) {
    let err = resume(run_dir, options(run_dir)).unwrap_err();
    let shown = err.to_string();
    match &err {
        TrainError::Checkpoint { path, message } => {
            assert!(
                path.ends_with(file),
                "error names {} instead of {file}: {shown}",
                path.display()
            );
            for w in words {
                assert!(message.contains(w), "{w:?} not in: {shown}");
            }
            assert!(shown.contains(file), "{shown}");
        }
        other => panic!("expected TrainError::Checkpoint naming {file}, got {other:?}"),
    }
}

/// Rewrites a safetensors file of the set through `edit`, keeping its metadata.
fn rewrite_safetensors(path: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let bytes = std::fs::read(path).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone();
    assert!(meta.is_some(), "lsnn files carry metadata");
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
    edit(&mut tensors);
    let out = safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), meta).unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn truncated_model_file_is_a_checkpoint_error() {
    let (run, set) = fresh_copy("truncated");
    let p = set.join(checkpoint::MODEL_FILE);
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    expect_checkpoint_error(&run, checkpoint::MODEL_FILE, &["truncated"]);
    // Truncated inside the 8-byte length prefix, and empty.
    std::fs::write(&p, &bytes[..5]).unwrap();
    expect_checkpoint_error(&run, checkpoint::MODEL_FILE, &["truncated"]);
    std::fs::write(&p, b"").unwrap();
    expect_checkpoint_error(&run, checkpoint::MODEL_FILE, &["truncated"]);
}

#[test]
fn flipped_header_bytes_are_a_checkpoint_error() {
    let (run, set) = fresh_copy("flipped");
    let p = set.join(checkpoint::EMA_FILE);
    let good = std::fs::read(&p).unwrap();
    // Inside the JSON header.
    let mut bytes = good.clone();
    for b in &mut bytes[8..16] {
        *b ^= 0xA5;
    }
    std::fs::write(&p, &bytes).unwrap();
    expect_checkpoint_error(&run, checkpoint::EMA_FILE, &["corrupted"]);
    // In the header length.
    let mut bytes = good;
    bytes[3] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    expect_checkpoint_error(&run, checkpoint::EMA_FILE, &["corrupted"]);
}

#[test]
fn missing_files_are_checkpoint_errors() {
    for file in [
        checkpoint::EMA_FILE,
        checkpoint::MODEL_FILE,
        checkpoint::OPTIMIZER_FILE,
        checkpoint::CONFIG_FILE,
        checkpoint::STATE_FILE,
        checkpoint::METRICS_FILE,
    ] {
        let (run, set) = fresh_copy(&format!("missing-{file}"));
        std::fs::remove_file(set.join(file)).unwrap();
        expect_checkpoint_error(&run, file, &["missing"]);
        assert!(checkpoint::load(&run).is_err());
    }
}

#[test]
fn a_step_that_disagrees_is_a_checkpoint_error() {
    let (run, set) = fresh_copy("step");
    let p = set.join(checkpoint::STATE_FILE);
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(state["step"], 1);
    state["step"] = 5.into();
    std::fs::write(&p, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    expect_checkpoint_error(
        &run,
        checkpoint::MODEL_FILE,
        &["step 1", "trainer_state.json at step 5"],
    );
    // A non-integer step.
    state["step"] = "one".into();
    std::fs::write(&p, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["step"]);
}

#[test]
fn a_different_config_is_a_checkpoint_error() {
    let (run, set) = fresh_copy("config");
    let p = set.join(checkpoint::CONFIG_FILE);
    let mut cfg =
        RunConfig::<ModelConfig>::from_json(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg.model.hidden_dim = 32;
    std::fs::write(&p, cfg.to_json().unwrap()).unwrap();
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["config.json hashes to"]);

    // Also rewriting trainer_state.json's hash: now the weights were written for another config.
    let sp = set.join(checkpoint::STATE_FILE);
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sp).unwrap()).unwrap();
    state["config_hash"] = checkpoint::config_hash(&cfg.to_json().unwrap()).into();
    std::fs::write(&sp, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    expect_checkpoint_error(
        &run,
        checkpoint::MODEL_FILE,
        &["written for config", "config.json hashes to"],
    );
}

#[test]
fn a_dangling_or_malformed_pointer_is_a_checkpoint_error() {
    let (run, _) = fresh_copy("pointer");
    std::fs::write(run.join(checkpoint::CURRENT), "ckpt-9999999999-gone\n").unwrap();
    expect_checkpoint_error(
        &run,
        "ckpt-9999999999-gone",
        &["CURRENT points to is missing"],
    );
    std::fs::write(run.join(checkpoint::CURRENT), "../elsewhere\n").unwrap();
    expect_checkpoint_error(&run, checkpoint::CURRENT, &["pointer names"]);
    std::fs::write(run.join(checkpoint::CURRENT), "\n").unwrap();
    expect_checkpoint_error(&run, checkpoint::CURRENT, &["pointer names"]);

    // No checkpoint at all, and no directory at all.
    let empty = scratch("corrupt-empty");
    let err = resume(&empty, options(&empty)).unwrap_err();
    assert!(
        matches!(&err, TrainError::Checkpoint { message, .. } if message.contains("no checkpoint here")),
        "{err:?}"
    );
    let gone = empty.join("nope");
    let err = resume(&gone, options(&gone)).unwrap_err();
    assert!(
        matches!(&err, TrainError::Checkpoint { message, .. } if message.contains("no such directory")),
        "{err:?}"
    );
}

#[test]
fn unknown_tensors_are_checkpoint_errors() {
    // An extra tensor in each file of the set; the rewritten file is otherwise consistent (load
    // accepts it), resume refuses it.
    for (case, file, key) in [
        ("unknown-optimizer", checkpoint::OPTIMIZER_FILE, "m.bogus"),
        ("unknown-model", checkpoint::MODEL_FILE, "extra.weight"),
        ("unknown-ema", checkpoint::EMA_FILE, "head.fc3.bias"),
    ] {
        let (run, set) = fresh_copy(case);
        rewrite_safetensors(&set.join(file), |m| {
            m.insert(
                key.into(),
                Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
            );
        });
        checkpoint::load(&run).unwrap();
        expect_checkpoint_error(&run, file, &["unknown tensor", key]);
    }
}

#[test]
fn missing_tensors_are_checkpoint_errors() {
    let (run, set) = fresh_copy("missing-ema-tensor");
    rewrite_safetensors(&set.join(checkpoint::EMA_FILE), |m| {
        assert!(m.remove("head.fc2.bias").is_some());
    });
    expect_checkpoint_error(
        &run,
        checkpoint::EMA_FILE,
        &["missing tensor head.fc2.bias"],
    );

    let (run, set) = fresh_copy("missing-moment");
    rewrite_safetensors(&set.join(checkpoint::OPTIMIZER_FILE), |m| {
        assert!(m.remove("v.tok_emb.weight").is_some());
    });
    expect_checkpoint_error(
        &run,
        checkpoint::OPTIMIZER_FILE,
        &["missing tensor v.tok_emb.weight"],
    );

    // The open accumulation window's buffer.
    let (run, set) = fresh_copy("missing-acc");
    rewrite_safetensors(&set.join(checkpoint::OPTIMIZER_FILE), |m| {
        assert!(m.remove("acc.in_proj.bias").is_some());
    });
    expect_checkpoint_error(
        &run,
        checkpoint::OPTIMIZER_FILE,
        &["missing tensor acc.in_proj.bias"],
    );
}

#[test]
fn wrong_shapes_and_dtypes_are_checkpoint_errors() {
    let (run, set) = fresh_copy("shape-model");
    rewrite_safetensors(&set.join(checkpoint::MODEL_FILE), |m| {
        m.insert(
            "head.fc1.bias".into(),
            Tensor::zeros(31, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    expect_checkpoint_error(
        &run,
        checkpoint::MODEL_FILE,
        &["head.fc1.bias has shape [31], expected [32]"],
    );

    let (run, set) = fresh_copy("shape-optimizer");
    rewrite_safetensors(&set.join(checkpoint::OPTIMIZER_FILE), |m| {
        m.insert(
            "m.in_proj.weight".into(),
            Tensor::zeros((16, 15), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    expect_checkpoint_error(
        &run,
        checkpoint::OPTIMIZER_FILE,
        &["m.in_proj.weight has shape [16, 15], expected [16, 16]"],
    );

    let (run, set) = fresh_copy("shape-acc");
    rewrite_safetensors(&set.join(checkpoint::OPTIMIZER_FILE), |m| {
        m.insert(
            "acc.in_proj.bias".into(),
            Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    expect_checkpoint_error(
        &run,
        checkpoint::OPTIMIZER_FILE,
        &["acc.in_proj.bias has shape"],
    );

    let (run, set) = fresh_copy("dtype-model");
    rewrite_safetensors(&set.join(checkpoint::MODEL_FILE), |m| {
        let t = m["in_proj.bias"].to_dtype(DType::F64).unwrap();
        m.insert("in_proj.bias".into(), t);
    });
    expect_checkpoint_error(
        &run,
        checkpoint::MODEL_FILE,
        &["in_proj.bias", "expected f32"],
    );
}

#[test]
fn files_swapped_between_kinds_are_checkpoint_errors() {
    let (run, set) = fresh_copy("swapped");
    std::fs::copy(
        set.join(checkpoint::EMA_FILE),
        set.join(checkpoint::MODEL_FILE),
    )
    .unwrap();
    expect_checkpoint_error(
        &run,
        checkpoint::MODEL_FILE,
        &["\"ema\"", "expected \"model\""],
    );

    // A plain safetensors file without lsnn metadata.
    let (run, set) = fresh_copy("no-metadata");
    let p = set.join(checkpoint::MODEL_FILE);
    let tensors = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&tensors, &p).unwrap();
    expect_checkpoint_error(&run, checkpoint::MODEL_FILE, &["metadata lacks"]);

    // A set file at another step (an older save's file mixed in), and unreadable metadata.
    let (run, set) = fresh_copy("mixed-step");
    let p = set.join(checkpoint::OPTIMIZER_FILE);
    let good = std::fs::read(&p).unwrap();
    let edit_meta = |f: &dyn Fn(&str) -> String| {
        let (_, meta) = safetensors::SafeTensors::read_metadata(&good).unwrap();
        let mut meta = meta.metadata().clone().unwrap();
        let text = meta[checkpoint::META_KEY].clone();
        meta.insert(checkpoint::META_KEY.into(), f(&text));
        let tensors = candle_core::safetensors::load_buffer(&good, &Device::Cpu).unwrap();
        let out = safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
            .unwrap();
        std::fs::write(&p, out).unwrap();
    };
    edit_meta(&|t| {
        assert!(t.contains("\"step\":1"), "{t}");
        t.replace("\"step\":1", "\"step\":0")
    });
    expect_checkpoint_error(
        &run,
        checkpoint::OPTIMIZER_FILE,
        &["at step 0", "at step 1"],
    );
    edit_meta(&|t| t[..t.len() / 2].to_string());
    expect_checkpoint_error(&run, checkpoint::OPTIMIZER_FILE, &["unreadable"]);
}

/// Two saves of one state write the same bytes (nothing depends on the process or the clock).
#[test]
fn saves_of_one_state_are_byte_identical() {
    let root = scratch("same-bytes");
    let data = text_data(&root);
    let mut t = LmTrainer::new(resume_config(), data, options(&root.join("a"))).unwrap();
    for b in 0..4 {
        t.train_batch(&batch(&t, b)).unwrap();
    }
    t.save_checkpoint().unwrap();
    let r = resume(&root.join("a"), options(&root.join("b"))).unwrap();
    r.save_checkpoint().unwrap();
    let (a, b) = (read_set(&root.join("a")), read_set(&root.join("b")));
    for (file, bytes) in &a {
        assert!(
            *bytes == b[file],
            "{file} differs between two saves of one state"
        );
    }
}

#[test]
fn malformed_state_json_is_a_typed_error() {
    let (run, set) = fresh_copy("state-json");
    std::fs::write(set.join(checkpoint::STATE_FILE), "{ not json").unwrap();
    let err = resume(&run, options(&run)).unwrap_err();
    match err {
        TrainError::Json { path, .. } => assert!(path.ends_with(checkpoint::STATE_FILE)),
        other => panic!("expected a JSON error naming trainer_state.json, got {other:?}"),
    }
}

/// A resumed position that does not fit the data (the data file changed since the save, or the
/// state was edited) is a typed error naming trainer_state.json, not a panic mid-run.
#[test]
fn a_position_that_does_not_fit_the_data_is_a_checkpoint_error() {
    let root = scratch("position-vs-data");
    let data = text_data(&root);
    let run = root.join("run");
    let mut t = LmTrainer::new(
        resume_config(),
        data,
        TrainOptions {
            max_batches: Some(4),
            ..options(&run)
        },
    )
    .unwrap();
    t.run(&mut |_| {}).unwrap();
    drop(t);
    let state_path = checkpoint::resolve(&run)
        .unwrap()
        .join(checkpoint::STATE_FILE);
    let good_state = std::fs::read(&state_path).unwrap();

    // The data file changed — shrank, or was edited in place at the same length: its content
    // hash no longer matches the one the run recorded.
    let changed = |err: TrainError| match err {
        TrainError::Data { path, message } => {
            assert!(path.ends_with("data.txt"), "{path:?}");
            assert!(
                message.contains("content hash") && message.contains("changed"),
                "{message}"
            );
        }
        other => panic!("expected a data error, got {other:?}"),
    };
    write_text_file(&root, "data.txt", 200);
    changed(resume(&run, options(&run)).unwrap_err());
    write_text_file(&root, "data.txt", 400);
    let mut same_length = std::fs::read(root.join("data.txt")).unwrap();
    same_length[100] = if same_length[100] == b'x' { b'y' } else { b'x' };
    std::fs::write(root.join("data.txt"), &same_length).unwrap();
    changed(resume(&run, options(&run)).unwrap_err());
    write_text_file(&root, "data.txt", 400);
    resume(&run, options(&run)).unwrap();

    // Edited positions (in a set without its manifest, which would refuse any edit first).
    std::fs::remove_file(state_path.with_file_name(checkpoint::MANIFEST_FILE)).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&good_state).unwrap();
        f(&mut v);
        std::fs::write(&state_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };
    edit(&|v| v["epoch_order"] = serde_json::json!([0, 1, 2]));
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["epoch_order"]);
    edit(&|v| v["epoch_order"][16] = 1000.into());
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["epoch_order"]);
    edit(&|v| v["epoch_order"] = serde_json::json!([]));
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["batch_in_epoch"]);
    edit(&|v| v["batch_in_epoch"] = 6.into());
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["batch_in_epoch"]);
    edit(&|v| v["accum_valid"] = 2.into());
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["accum_valid"]);
    edit(&|v| v["accum_in_window"] = 3.into());
    expect_checkpoint_error(&run, checkpoint::STATE_FILE, &["accum_in_window"]);
    edit(&|_| {});
    let mut t = resume(&run, options(&run)).unwrap();
    assert_eq!(t.run(&mut |_| {}).unwrap().batches, 10);
}

#[test]
fn a_set_whose_state_disagrees_is_refused_before_anything_is_switched() {
    use std::collections::BTreeMap;
    let dir = common::scratch("checkpoint/refuse-mismatch");
    let config = "{\"a\": 1}";
    let hash = checkpoint::config_hash(config);
    let empty = BTreeMap::new();
    let good_state = format!("{{\"step\": 5, \"config_hash\": \"{hash}\"}}");
    let save = |step: u64, state: &str| {
        checkpoint::save(
            &dir,
            &checkpoint::CheckpointData {
                step,
                config_json: config,
                state_json: state,
                model: &empty,
                ema: &empty,
                optimizer: &empty,
                metrics_csv: "step\n",
                best: false,
                replace_other_runs: false,
            },
        )
    };
    save(5, &good_state).unwrap();
    assert_eq!(checkpoint::load(&dir).unwrap().step, 5);
    // The state names another step, then another config: both refused, the old set stays.
    let err = save(6, &good_state).unwrap_err().to_string();
    assert!(err.contains("refusing to save"), "{err}");
    let other = format!(
        "{{\"step\": 6, \"config_hash\": \"{}\"}}",
        checkpoint::config_hash("{}")
    );
    assert!(save(6, &other).is_err());
    assert_eq!(checkpoint::load(&dir).unwrap().step, 5);
}
