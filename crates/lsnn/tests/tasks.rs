//! The sequence tasks from the command line (design §2.9, §8.4): the built-in tasks learn and
//! their time-shuffled controls do not; a regression and a classification file in both formats
//! train, evaluate (`--json`), predict, stream and resume bit-exactly; the original's robotics
//! config trains; bad input is refused with exit code 2.

mod support;

use lsnn_train::data::arrays::{read_arrays, Array, Elems};
use std::path::{Path, PathBuf};
use support::{code, current_files, err, eval_json, lsnn, num, ok, scratch, SMALL};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lsnn-train/tests/fixtures/arrays")
        .join(name)
}

fn train(dir: &Path, args: &[&str]) -> String {
    ok(&lsnn(&[&["train"], args, SMALL].concat(), dir))
}

#[test]
fn the_builtin_regression_learns_and_its_shuffled_control_does_not() {
    let d = scratch("builtin-regression");
    let epochs = ["--epochs", "4", "--set", "learning_rate=0.003"];
    let out = train(
        &d,
        &[&["--task", "regression", "--out", "reg"], &epochs[..]].concat(),
    );
    assert!(out.contains("baselines: persistence mse"), "{out}");
    let learned = eval_json(&d, "reg");
    let (mse, persistence, mean) = (
        num(&learned, "val_mse"),
        num(&learned, "baseline_persistence_mse"),
        num(&learned, "baseline_mean_mse"),
    );
    assert!(
        mse <= 0.5 * persistence,
        "mse {mse} vs persistence {persistence}"
    );
    train(
        &d,
        &[
            &["--task", "regression", "--shuffle-time", "--out", "ctl"],
            &epochs[..],
        ]
        .concat(),
    );
    let control = eval_json(&d, "ctl");
    let c = num(&control, "val_mse");
    // Without order the best a model can do is the mean: near it, and far from the learned.
    assert!(
        (c / mean - 1.0).abs() < 0.2,
        "control mse {c} vs mean baseline {mean}"
    );
    assert!(c > 2.0 * mse, "control {c} vs learned {mse}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn the_builtin_classification_learns_and_its_shuffled_control_does_not() {
    let d = scratch("builtin-classification");
    // At learning rate 0.003 whether the model leaves its first plateau depends on the seed
    // (seeds 42 — the default — 1, 2, 3 ended at 0.18, 0.83, 0.89, 0.51; a change of rounding
    // in GELU flipped the default seed from learning to not); at 0.0015 seeds 42, 0, 1, 2, 3
    // reach 0.73, 0.58, 0.75, 0.99, 0.88 in 12 epochs (threshold: majority + 0.30 = 0.47), and
    // the shuffled control stays at the majority.
    let epochs = ["--epochs", "12", "--set", "learning_rate=0.0015"];
    let out = train(
        &d,
        &[&["--task", "classification", "--out", "cls"], &epochs[..]].concat(),
    );
    assert!(out.contains("majority-class accuracy"), "{out}");
    let learned = eval_json(&d, "cls");
    let (acc, majority) = (
        num(&learned, "val_accuracy"),
        num(&learned, "baseline_majority_accuracy"),
    );
    assert!(
        acc >= majority + 0.30,
        "accuracy {acc} vs majority {majority}"
    );
    train(
        &d,
        &[
            &["--task", "classification", "--shuffle-time", "--out", "ctl"],
            &epochs[..],
        ]
        .concat(),
    );
    let c = num(&eval_json(&d, "ctl"), "val_accuracy");
    assert!(
        (c - majority).abs() < 0.10,
        "control {c} vs majority {majority}"
    );
    std::fs::remove_dir_all(&d).ok();
}

fn f32s(a: &Array) -> Vec<f32> {
    match &a.elems {
        Elems::F32(v) => v.clone(),
        other => panic!("expected f32, got {other:?}"),
    }
}

fn arrays(path: &Path) -> std::collections::BTreeMap<String, Array> {
    read_arrays(&std::fs::read(path).unwrap()).unwrap()
}

/// Train, eval --json, predict batched and streamed, and resume bit-exactly on one file.
fn file_round_trip(d: &Path, task: &str, file: &str, metric: &str) -> Vec<u8> {
    let data = fixture(file);
    let data = data.to_str().unwrap();
    let base = [
        "--task",
        task,
        "--data",
        data,
        "--epochs",
        "2",
        "--set",
        "batch_size=4",
    ];
    train(d, &[&base[..], &["--out", "whole"]].concat());
    let e = eval_json(d, "whole");
    assert!(num(&e, metric).is_finite(), "{e}");
    assert!(num(&e, "val_loss").is_finite(), "{e}");
    assert!(
        e.as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("baseline_")),
        "{e}"
    );
    // Evaluating on the same file names the same numbers as on the run's own data only when
    // the file has validation arrays; on either, the line form works too.
    let line = ok(&lsnn(&["eval", "--checkpoint", "whole", "--data", data], d));
    assert!(line.contains("baselines:"), "{line}");
    // Predictions, batched and streamed.
    ok(&lsnn(
        &[
            "predict",
            "--checkpoint",
            "whole",
            "--data",
            data,
            "--out",
            "p.npz",
        ],
        d,
    ));
    ok(&lsnn(
        &[
            "predict",
            "--checkpoint",
            "whole",
            "--data",
            data,
            "--out",
            "s.npz",
            "--stream",
        ],
        d,
    ));
    let (p, s) = (arrays(&d.join("p.npz")), arrays(&d.join("s.npz")));
    let key = if task == "classification" {
        "logits"
    } else {
        "y_pred"
    };
    let (pv, sv) = (f32s(&p[key]), f32s(&s[key]));
    assert_eq!(pv.len(), sv.len());
    for (i, (a, b)) in pv.iter().zip(&sv).enumerate() {
        assert!(
            (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
            "{file} {key}[{i}]: batched {a}, streamed {b}"
        );
    }
    if task == "classification" {
        assert_eq!(p["y_pred"], s["y_pred"]);
    } else {
        // NaN exactly at the padded positions.
        let lengths = match &p["lengths"].elems {
            Elems::I64(v) => v.clone(),
            other => panic!("{other:?}"),
        };
        let (n, l, w) = (p[key].shape[0], p[key].shape[1], p[key].shape[2]);
        for r in 0..n {
            for t in 0..l {
                let v = pv[(r * l + t) * w];
                assert_eq!(v.is_nan(), t as i64 >= lengths[r], "row {r} position {t}");
            }
        }
    }
    // Stopped after 5 batches and resumed: the same files as the whole run.
    train(
        d,
        &[&base[..], &["--out", "split", "--max-batches", "5"]].concat(),
    );
    ok(&lsnn(&["train", "--resume", "split"], d));
    let (a, b) = (
        current_files(&d.join("whole")),
        current_files(&d.join("split")),
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        if name == "model.safetensors"
            || name == "ema.safetensors"
            || name == "optimizer.safetensors"
        {
            assert!(x == y, "{file}: {name} differs after the resume");
        }
    }
    a.into_iter()
        .find(|(n, _)| n == "model.safetensors")
        .unwrap()
        .1
}

#[test]
fn data_files_of_both_formats_train_evaluate_predict_stream_and_resume() {
    for (task, stem, metric) in [
        ("regression", "regression", "val_mse"),
        ("classification", "classification", "val_accuracy"),
    ] {
        let mut weights = Vec::new();
        for ext in ["npz", "safetensors"] {
            let d = scratch(&format!("files-{stem}-{ext}"));
            weights.push(file_round_trip(&d, task, &format!("{stem}.{ext}"), metric));
            std::fs::remove_dir_all(&d).ok();
        }
        // The same arrays in either format: the same run, bit for bit.
        assert!(
            weights[0] == weights[1],
            "{stem}: npz and safetensors runs differ"
        );
    }
}

#[test]
fn an_original_robotics_config_trains_one_epoch_on_a_regression_file() {
    let d = scratch("robotics-original");
    let cfg_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configs");
    let data = fixture("regression.npz");
    for (config, out) in [
        ("robotics_original.json", "dense"),
        ("robotics_original_ncp.json", "ncp"),
    ] {
        let c = cfg_dir.join(config);
        let o = ok(&lsnn(
            &[
                "train",
                "--config",
                c.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--device",
                "cpu",
                "--out",
                out,
            ],
            &d,
        ));
        assert!(o.contains("1 epochs") || o.contains("epoch 1:"), "{o}");
        assert!(o.contains("done: val loss"), "{o}");
        let saved = support::saved_config(&d.join(out));
        assert_eq!(saved["task_type"], "robotics");
        assert_eq!(saved["device"], "cpu");
    }
    // Without --device the preset's "cuda" is refused: this build has no CUDA.
    let c = cfg_dir.join("robotics_original.json");
    let o = lsnn(
        &[
            "train",
            "--config",
            c.to_str().unwrap(),
            "--data",
            fixture("regression.npz").to_str().unwrap(),
            "--out",
            "gpu",
        ],
        &d,
    );
    assert_eq!(code(&o), 2, "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn bad_task_input_is_refused_with_exit_code_2() {
    let d = scratch("task-errors");
    let reg = fixture("regression.npz");
    let reg = reg.to_str().unwrap();
    let cls = fixture("classification.npz");
    let cls = cls.to_str().unwrap();
    let refused = |args: &[&str], needle: &str| {
        let o = lsnn(args, &d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{args:?}: {e}");
        assert!(e.contains(needle), "{args:?}: {e:?} lacks {needle:?}");
    };
    // A width the config sets must agree with the data.
    refused(
        &[
            "train",
            "--task",
            "regression",
            "--data",
            reg,
            "--set",
            "input_dim=5",
            "--out",
            "a",
        ],
        "input_dim",
    );
    // The task said twice, differently.
    std::fs::write(d.join("cls.json"), r#"{"task_type": "classification"}"#).unwrap();
    refused(
        &[
            "train",
            "--task",
            "regression",
            "--config",
            "cls.json",
            "--out",
            "b",
        ],
        "task_type \"classification\"",
    );
    refused(
        &["train", "--task", "llm", "--shuffle-time", "--out", "c"],
        "--shuffle-time",
    );
    refused(&["train", "--task", "vision", "--out", "d"], "vision");
    refused(
        &["train", "--set", "hiden_dim=3", "--out", "e"],
        "did you mean `hidden_dim`",
    );
    refused(&["train", "--set", "novalue", "--out", "e"], "key=value");
    // Data of the wrong kind for the task.
    refused(
        &[
            "train",
            "--task",
            "classification",
            "--data",
            reg,
            "--out",
            "f",
        ],
        "integer class ids",
    );
    // A classification run, then what it cannot do.
    ok(&lsnn(
        &[
            &[
                "train",
                "--task",
                "classification",
                "--data",
                cls,
                "--epochs",
                "1",
                "--out",
                "run",
            ],
            SMALL,
        ]
        .concat(),
        &d,
    ));
    refused(
        &["generate", "--checkpoint", "run", "--prompt", "1+1="],
        "lsnn predict",
    );
    refused(
        &[
            "eval",
            "--checkpoint",
            "run",
            "--dump-logits",
            "l.safetensors",
        ],
        "--dump-logits is for language models",
    );
    refused(
        &[
            "predict",
            "--checkpoint",
            "run",
            "--data",
            reg,
            "--out",
            "p.npz",
        ],
        "features per position",
    );
    std::fs::copy(fixture("classification.npz"), d.join("mine.npz")).unwrap();
    refused(
        &[
            "predict",
            "--checkpoint",
            "run",
            "--data",
            "mine.npz",
            "--out",
            "mine.npz",
        ],
        "is the input file",
    );
    assert!(d.join("mine.npz").exists());
    // A regression run trained with time spans needs them at prediction.
    ok(&lsnn(
        &[
            &[
                "train",
                "--task",
                "regression",
                "--data",
                reg,
                "--epochs",
                "1",
                "--out",
                "r",
            ],
            SMALL,
        ]
        .concat(),
        &d,
    ));
    let x_only = d.join("x_only.npz");
    let a = arrays(&fixture("regression.npz"));
    lsnn_train::data::arrays::write_npz(&x_only, &[("x", &a["x"])]).unwrap();
    refused(
        &[
            "predict",
            "--checkpoint",
            "r",
            "--data",
            "x_only.npz",
            "--out",
            "q.npz",
        ],
        "trained with them",
    );
    std::fs::remove_dir_all(&d).ok();
}
