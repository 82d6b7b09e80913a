//! Spike-encoded inputs from the command line (design §8.4): a static classification file
//! rate-coded into 8 steps trains far above the majority class while its control — the same
//! encoder with no information in its probabilities — does not; prediction, batched and
//! streamed, and a resume read the run's encoding; bad settings exit with code 2.

mod support;

use lsnn_train::data::arrays::{read_arrays, write_npz, Array, ElemType, Elems};
use serde_json::Value;
use std::path::Path;
use support::{code, current_files, err, eval_json, lsnn, num, ok, scratch, SMALL};

/// x [300, 6] in [0, 1], y [300] of 3 classes, each brighter on its own two features.
fn write_static(dir: &Path) {
    let (n, f) = (300, 6);
    let mut x = Vec::with_capacity(n * f);
    for r in 0..n {
        for k in 0..f {
            // Distinct rows (a period of 97 rows): identical rows would share their spikes.
            let jitter = ((r * 37 + k * 11) % 97) as f32 / 970.0;
            x.push(if k / 2 == r % 3 { 0.75 } else { 0.15 } + jitter);
        }
    }
    let x = Array {
        dtype: ElemType::F32,
        shape: vec![n, f],
        elems: Elems::F32(x),
    };
    let y = Array {
        dtype: ElemType::I64,
        shape: vec![n],
        elems: Elems::I64((0..n as i64).map(|r| r % 3).collect()),
    };
    write_npz(&dir.join("static.npz"), &[("x", &x), ("y", &y)]).unwrap();
}

fn train(dir: &Path, encoding: &str, out: &str, extra: &[&str]) -> String {
    let set = format!("spike_encoding={encoding}");
    let args = [
        &[
            "train",
            "--data",
            "static.npz",
            "--epochs",
            "3",
            "--set",
            &set,
            "--set",
            "learning_rate=0.003",
            "--out",
            out,
        ][..],
        extra,
        SMALL,
    ]
    .concat();
    ok(&lsnn(&args, dir))
}

#[test]
fn rate_coded_static_data_trains_predicts_and_resumes_and_its_control_does_not_learn() {
    let d = scratch("spike-rate");
    write_static(&d);
    let rate = r#"{"kind":"rate","num_steps":8}"#;
    train(&d, rate, "rate", &[]);
    let e = eval_json(&d, "rate");
    let (acc, majority) = (
        num(&e, "val_accuracy"),
        num(&e, "baseline_majority_accuracy"),
    );
    assert!(
        acc >= majority + 0.4,
        "accuracy {acc} vs majority {majority}"
    );
    // The run records its encoding and an 8-position input.
    let files = current_files(&d.join("rate"));
    let (_, cfg) = files.iter().find(|(n, _)| n == "config.json").unwrap();
    let cfg: Value = serde_json::from_slice(cfg).unwrap();
    assert_eq!(cfg["spike_encoding"]["kind"], "rate");
    assert_eq!(cfg["sequence_length"], 8);

    // Control: p = 0.5 for every value — spikes that carry nothing of the data.
    train(
        &d,
        r#"{"kind":"rate","num_steps":8,"gain":0.0,"offset":0.5}"#,
        "ctl",
        &[],
    );
    let c = num(&eval_json(&d, "ctl"), "val_accuracy");
    println!("rate-coded: accuracy {acc}, control {c}, majority {majority}");
    assert!(
        (c - majority).abs() < 0.15,
        "control {c} vs majority {majority}"
    );

    // Evaluating the run on the file (its rows encoded as the run encodes) gives about the
    // same accuracy: it holds the training rows as well as the held-out ones.
    let on_file = num(
        &serde_json::from_str::<Value>(
            ok(&lsnn(
                &[
                    "eval",
                    "--checkpoint",
                    "rate",
                    "--data",
                    "static.npz",
                    "--json",
                ],
                &d,
            ))
            .trim(),
        )
        .unwrap(),
        "val_accuracy",
    );
    assert!(on_file >= majority + 0.4, "eval --data: {on_file}");

    // Prediction encodes the inputs as the run did: batched and streamed agree, and the
    // predicted classes are the labels about as often as evaluation says.
    for (out, stream) in [("p.npz", false), ("s.npz", true)] {
        let mut args = vec![
            "predict",
            "--checkpoint",
            "rate",
            "--data",
            "static.npz",
            "--out",
            out,
        ];
        if stream {
            args.push("--stream");
        }
        ok(&lsnn(&args, &d));
    }
    let read = |name: &str| read_arrays(&std::fs::read(d.join(name)).unwrap()).unwrap();
    let (p, s) = (read("p.npz"), read("s.npz"));
    assert_eq!(p["y_pred"], s["y_pred"]);
    let classes = match &p["y_pred"].elems {
        Elems::I64(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    let hits = classes
        .iter()
        .enumerate()
        .filter(|(r, &c)| c == (*r as i64) % 3)
        .count();
    assert!(
        hits as f64 / classes.len() as f64 >= majority + 0.4,
        "{hits} of {}",
        classes.len()
    );

    // Stopped and resumed: the data is rebuilt with the same spikes, so the same model.
    train(&d, rate, "split", &["--max-batches", "5"]);
    ok(&lsnn(&["train", "--resume", "split"], &d));
    let (a, b) = (
        current_files(&d.join("rate")),
        current_files(&d.join("split")),
    );
    let model = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .find(|(n, _)| n == "model.safetensors")
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert!(model(&a) == model(&b), "model differs after the resume");
}

#[test]
fn bad_spike_encoding_settings_exit_with_code_2() {
    let d = scratch("spike-bad");
    write_static(&d);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", r#"spike_encoding={"kind":"rate","num_steps":0}"#],
            "num_steps",
        ),
        (
            &[
                "--set",
                r#"spike_encoding={"kind":"rate","num_steps":4,"gain":3.0}"#,
            ],
            "sequence 0, position 0, feature",
        ),
        (
            &["--set", r#"spike_encoding={"kind":"sparse"}"#],
            "spike_encoding",
        ),
        (
            &[
                "--task",
                "llm",
                "--set",
                r#"spike_encoding={"kind":"delta"}"#,
            ],
            "expected it only with a sequence task",
        ),
    ];
    for (args, want) in cases {
        let data: &[&str] = if args.contains(&"llm") {
            &[]
        } else {
            &["--data", "static.npz"]
        };
        let o = lsnn(&[&["train", "--out", "bad"][..], data, args].concat(), &d);
        let e = err(&o);
        assert_eq!(code(&o), 2, "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {e}");
    }
}
