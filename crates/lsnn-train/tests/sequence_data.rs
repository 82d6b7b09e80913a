//! The sequence tasks' data (design §8.4): the fixture files of both formats load to the same
//! data, the split, normalisation and time shuffle do what they say, and every bad array is a
//! typed error that names the array and what was expected.

mod common;

use lsnn_train::data::arrays::{write_npz, Array, ElemType, Elems};
use lsnn_train::data::builtin::builtin;
use lsnn_train::data::sequence::SplitTargets;
use lsnn_train::data::SequenceData;
use lsnn_train::lsnn_layers::{SequenceModel, Task};
use lsnn_train::{Dataset, TrainError};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/arrays")
        .join(name)
}

fn f32s(shape: &[usize], f: impl Fn(usize) -> f32) -> Array {
    let n: usize = shape.iter().product();
    Array {
        dtype: ElemType::F32,
        shape: shape.to_vec(),
        elems: Elems::F32((0..n).map(f).collect()),
    }
}

fn ints(shape: &[usize], v: Vec<i64>, dtype: ElemType) -> Array {
    let unsigned = matches!(
        dtype,
        ElemType::U8 | ElemType::U16 | ElemType::U32 | ElemType::U64
    );
    Array {
        dtype,
        shape: shape.to_vec(),
        elems: if unsigned {
            Elems::U64(v.into_iter().map(|x| x as u64).collect())
        } else {
            Elems::I64(v)
        },
    }
}

fn wave(i: usize) -> f32 {
    ((i * 37 % 101) as f32 / 50.0) - 1.0
}

/// A valid regression file's arrays: x [6, 5, 2], y [6, 5, 1].
fn regression_arrays() -> Vec<(String, Array)> {
    vec![
        ("x".into(), f32s(&[6, 5, 2], wave)),
        ("y".into(), f32s(&[6, 5, 1], |i| wave(i + 3))),
    ]
}

/// A valid classification file's arrays: x [6, 4, 3], y [6] (3 classes).
fn classification_arrays() -> Vec<(String, Array)> {
    vec![
        ("x".into(), f32s(&[6, 4, 3], wave)),
        (
            "y".into(),
            ints(&[6], vec![0, 1, 2, 0, 1, 2], ElemType::I32),
        ),
    ]
}

fn write(dir: &Path, name: &str, arrays: &[(String, Array)]) -> PathBuf {
    let p = dir.join(name);
    let refs: Vec<(&str, &Array)> = arrays.iter().map(|(n, a)| (n.as_str(), a)).collect();
    write_npz(&p, &refs).unwrap();
    p
}

fn load(path: &Path, task: Task) -> lsnn_train::Result<SequenceData> {
    SequenceData::from_file(path, task, 1, false, None, None)
}

#[test]
fn both_formats_of_the_fixtures_load_to_the_same_data() {
    for (stem, task) in [
        ("regression", Task::Regression),
        ("classification", Task::Classification),
    ] {
        let npz = load(&fixture(&format!("{stem}.npz")), task).unwrap();
        let st = load(&fixture(&format!("{stem}.safetensors")), task).unwrap();
        assert_eq!(
            Dataset::<SequenceModel>::fingerprint(&npz),
            Dataset::<SequenceModel>::fingerprint(&st),
            "{stem}"
        );
        assert_eq!(npz.train(), st.train());
        assert_eq!(npz.normalization(), st.normalization());
    }
    let reg = load(&fixture("regression.npz"), Task::Regression).unwrap();
    // No validation arrays: a seeded 10% of the 40 rows held out.
    assert_eq!((reg.train().n, reg.val().n), (36, 4));
    assert!(reg.train().spans.is_some() && reg.train().lengths.is_some());
    assert_eq!(reg.outputs(), 2);
    let cls = load(&fixture("classification.npz"), Task::Classification).unwrap();
    assert_eq!((cls.train().n, cls.val().n, cls.outputs()), (60, 20, 3));
    // The mask became lengths.
    assert!(cls
        .val()
        .lengths
        .as_ref()
        .unwrap()
        .iter()
        .all(|&n| (3..=8).contains(&n)));
}

#[test]
fn normalisation_centres_the_training_split_and_padding_is_zero() {
    let d = load(&fixture("regression.npz"), Task::Regression).unwrap();
    let t = d.train();
    let mut sum = vec![0f64; t.f];
    let mut sq = vec![0f64; t.f];
    let mut n = 0f64;
    for r in 0..t.n {
        let len = t.len_of(r);
        for p in 0..t.l {
            for k in 0..t.f {
                let v = t.x[(r * t.l + p) * t.f + k] as f64;
                if p < len {
                    sum[k] += v;
                    sq[k] += v * v;
                } else {
                    assert_eq!(v, 0.0, "padding is zeroed");
                }
            }
            if p < len {
                n += 1.0;
            }
        }
    }
    for k in 0..t.f {
        let mean = sum[k] / n;
        let var = sq[k] / n - mean * mean;
        assert!(mean.abs() < 1e-5, "feature {k} mean {mean}");
        assert!((var - 1.0).abs() < 1e-4, "feature {k} variance {var}");
    }
    // The split is a function of the seed.
    let again = load(&fixture("regression.npz"), Task::Regression).unwrap();
    assert_eq!(again.val(), d.val());
    let other = SequenceData::from_file(
        &fixture("regression.npz"),
        Task::Regression,
        2,
        false,
        None,
        None,
    )
    .unwrap();
    assert_ne!(other.val(), d.val());
}

#[test]
fn the_time_shuffle_keeps_each_rows_values_and_targets() {
    let plain = builtin(Task::Classification, 3, false, None).unwrap();
    let shuffled = builtin(Task::Classification, 3, true, None).unwrap();
    let (a, b) = (plain.train(), shuffled.train());
    assert_eq!(a.y, b.y, "targets untouched");
    assert_ne!(a.x, b.x, "positions moved");
    for r in 0..a.n {
        let row = |s: &lsnn_train::data::sequence::Split| {
            let mut v: Vec<u32> = s.x[r * s.l * s.f..(r + 1) * s.l * s.f]
                .iter()
                .map(|x| x.to_bits())
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(row(a), row(b), "row {r}: the same values");
    }
    // Baselines are those of the targets, the same for both.
    assert_eq!(plain.baseline_values(), shuffled.baseline_values());
    let reg = builtin(Task::Regression, 3, false, None).unwrap();
    let names: Vec<&str> = reg
        .baseline_values()
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(names.contains(&"baseline_persistence_mse") && names.contains(&"baseline_mean_mse"));
    assert!(matches!(
        reg.train().y,
        Some(SplitTargets::Values { width: 2, .. })
    ));
}

/// Loads `arrays` as `task` and returns the error's message (which must be a data error).
fn refused(dir: &Path, task: Task, arrays: Vec<(String, Array)>) -> String {
    let p = write(dir, "bad.npz", &arrays);
    match load(&p, task) {
        Err(e @ TrainError::Data { .. }) => e.to_string(),
        other => panic!("accepted or wrong error: {other:?}"),
    }
}

fn with(mut base: Vec<(String, Array)>, name: &str, a: Array) -> Vec<(String, Array)> {
    base.retain(|(n, _)| n != name);
    base.push((name.into(), a));
    base
}

fn without(mut base: Vec<(String, Array)>, name: &str) -> Vec<(String, Array)> {
    base.retain(|(n, _)| n != name);
    base
}

/// What a bad file is, its task, its arrays and what the error must say.
type BadCase = (
    &'static str,
    Task,
    Vec<(String, Array)>,
    &'static [&'static str],
);

#[test]
fn every_bad_array_is_a_typed_error_naming_it() {
    let dir = common::scratch("seq-bad-arrays");
    let reg = Task::Regression;
    let cls = Task::Classification;
    let nan = |i: usize| if i == 7 { f32::NAN } else { wave(i) };
    let cases: Vec<BadCase> = vec![
        (
            "no x",
            reg,
            without(regression_arrays(), "x"),
            &["\"y\" given without \"x\""],
        ),
        (
            "no y",
            reg,
            without(regression_arrays(), "y"),
            &["\"y\" is missing"],
        ),
        (
            "unknown array",
            reg,
            with(regression_arrays(), "y_vali", f32s(&[1], wave)),
            &["unexpected array \"y_vali\""],
        ),
        (
            "x of rank 2 for regression",
            reg,
            with(regression_arrays(), "x", f32s(&[6, 10], wave)),
            &["\"x\"", "[N, L, F]"],
        ),
        (
            "integer x",
            reg,
            with(
                regression_arrays(),
                "x",
                ints(&[6, 5, 2], vec![1; 60], ElemType::I16),
            ),
            &["\"x\" is int16", "float32 or float64"],
        ),
        (
            "empty x",
            reg,
            with(regression_arrays(), "x", f32s(&[6, 0, 2], wave)),
            &["\"x\"", "at least 1"],
        ),
        (
            "NaN in x",
            reg,
            with(regression_arrays(), "x", f32s(&[6, 5, 2], nan)),
            &["\"x\" holds 1 non-finite", "sequence 0, position 3"],
        ),
        (
            "infinite y",
            reg,
            with(
                regression_arrays(),
                "y",
                f32s(&[6, 5, 1], |i| if i == 12 { f32::INFINITY } else { 0.0 }),
            ),
            &["\"y\" holds 1 non-finite"],
        ),
        (
            "y of the wrong length",
            reg,
            with(regression_arrays(), "y", f32s(&[6, 4, 1], wave)),
            &["\"y\"", "[6, 5, F_out]"],
        ),
        (
            "integer regression targets",
            reg,
            with(
                regression_arrays(),
                "y",
                ints(&[6, 5], vec![0; 30], ElemType::I64),
            ),
            &["\"y\" is int64", "regression targets"],
        ),
        (
            "float64 beyond float32",
            reg,
            with(
                regression_arrays(),
                "x",
                Array {
                    dtype: ElemType::F64,
                    shape: vec![6, 5, 2],
                    elems: Elems::F64((0..60).map(|i| if i == 9 { 1e300 } else { 0.0 }).collect()),
                },
            ),
            &["\"x\"", "does not fit float32"],
        ),
        (
            "float class labels",
            cls,
            with(classification_arrays(), "y", f32s(&[6], wave)),
            &["\"y\" is float32", "integer class ids"],
        ),
        (
            "a negative label",
            cls,
            with(
                classification_arrays(),
                "y",
                ints(&[6], vec![0, 1, -1, 0, 1, 2], ElemType::I8),
            ),
            &["\"y\"", "class -1"],
        ),
        (
            "a single class",
            cls,
            with(
                classification_arrays(),
                "y",
                ints(&[6], vec![0; 6], ElemType::U8),
            ),
            &["at least two classes"],
        ),
        (
            "labels of the wrong shape",
            cls,
            with(
                classification_arrays(),
                "y",
                ints(&[6, 1], vec![0, 1, 2, 0, 1, 2], ElemType::I64),
            ),
            &["\"y\"", "[6]"],
        ),
        (
            "a length of 0",
            reg,
            with(
                regression_arrays(),
                "lengths",
                ints(&[6], vec![5, 0, 3, 3, 3, 3], ElemType::I64),
            ),
            &["\"lengths\"", "sequence 1 has length 0", "1..=5"],
        ),
        (
            "a length beyond L",
            reg,
            with(
                regression_arrays(),
                "lengths",
                ints(&[6], vec![5, 6, 3, 3, 3, 3], ElemType::U16),
            ),
            &["\"lengths\"", "length 6"],
        ),
        (
            "lengths of the wrong count",
            reg,
            with(
                regression_arrays(),
                "lengths",
                ints(&[5], vec![5; 5], ElemType::I64),
            ),
            &["\"lengths\"", "[6]"],
        ),
        (
            "a mask that is not right padding",
            cls,
            with(
                classification_arrays(),
                "mask",
                Array {
                    dtype: ElemType::Bool,
                    shape: vec![6, 4],
                    elems: Elems::Bool((0..24).map(|i| i != 1).collect()),
                },
            ),
            &["\"mask\"", "sequence 0", "right padding"],
        ),
        (
            "both lengths and a mask",
            cls,
            with(
                with(
                    classification_arrays(),
                    "lengths",
                    ints(&[6], vec![4; 6], ElemType::I64),
                ),
                "mask",
                Array {
                    dtype: ElemType::Bool,
                    shape: vec![6, 4],
                    elems: Elems::Bool(vec![true; 24]),
                },
            ),
            &["both \"lengths\" and \"mask\""],
        ),
        (
            "a negative time span",
            reg,
            with(
                regression_arrays(),
                "dt",
                f32s(&[6, 5], |i| if i == 8 { -0.5 } else { 1.0 }),
            ),
            &["\"dt\"", "sequence 1, position 3", ">= 0"],
        ),
        (
            "time spans of the wrong shape",
            reg,
            with(regression_arrays(), "dt", f32s(&[6, 4], |_| 1.0)),
            &["\"dt\"", "[6, 5]"],
        ),
        (
            "x_val without y_val",
            reg,
            with(regression_arrays(), "x_val", f32s(&[2, 5, 2], wave)),
            &["\"y_val\" is missing"],
        ),
        (
            "y_val without x_val",
            reg,
            with(regression_arrays(), "y_val", f32s(&[2, 5, 1], wave)),
            &["\"y_val\" given without \"x_val\""],
        ),
        (
            "x_val of another width",
            reg,
            with(
                with(regression_arrays(), "x_val", f32s(&[2, 5, 3], wave)),
                "y_val",
                f32s(&[2, 5, 1], wave),
            ),
            &["x_val has 3 features", "x has 2"],
        ),
        (
            "time spans for training only",
            reg,
            with(
                with(
                    with(regression_arrays(), "dt", f32s(&[6, 5], |_| 1.0)),
                    "x_val",
                    f32s(&[2, 5, 2], wave),
                ),
                "y_val",
                f32s(&[2, 5, 1], wave),
            ),
            &["dt and dt_val both or neither"],
        ),
        (
            "one row and no validation arrays",
            reg,
            vec![
                ("x".into(), f32s(&[1, 5, 2], wave)),
                ("y".into(), f32s(&[1, 5, 1], wave)),
            ],
            &["at least 2"],
        ),
    ];
    for (what, task, arrays, needles) in cases {
        let msg = refused(&dir, task, arrays);
        for n in needles {
            assert!(msg.contains(n), "{what}: {msg:?} lacks {n:?}");
        }
        assert!(msg.contains("bad.npz"), "{what}: the path is named: {msg}");
    }
    // NaN at a padded position is not read: accepted, and zeroed.
    let padded = with(
        with(regression_arrays(), "x", f32s(&[6, 5, 2], nan)),
        "lengths",
        ints(&[6], vec![3, 5, 5, 5, 5, 5], ElemType::I64),
    );
    let p = write(&dir, "padded.npz", &padded);
    let d = load(&p, reg).unwrap();
    for s in [d.train(), d.val()] {
        assert!(s.x.iter().all(|v| v.is_finite()));
    }
    // A class count fixed by the config refuses a label beyond it.
    let p = write(&dir, "cls.npz", &classification_arrays());
    let e = SequenceData::from_file(&p, Task::Classification, 1, false, Some(2), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("class 2; expected 0..2 (output_dim)"),
        "{e}"
    );
    // Empty and non-array files.
    std::fs::write(dir.join("empty.npz"), b"").unwrap();
    let e = load(&dir.join("empty.npz"), reg).unwrap_err().to_string();
    assert!(e.contains("empty"), "{e}");
    std::fs::write(dir.join("text.npz"), b"x,y\n1,2\n").unwrap();
    let e = load(&dir.join("text.npz"), reg).unwrap_err().to_string();
    assert!(e.contains("neither an .npz archive"), "{e}");
    let e = load(&dir.join("missing.npz"), reg).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_ltc_is_refused_before_training_on_data_with_time_spans() {
    // The fixture has dt; the LTC runs at one constant elapsed time (design §2.14).
    let reg = load(&fixture("regression.npz"), Task::Regression).unwrap();
    assert!(reg.train().spans.is_some());
    let mut cfg = lsnn_train::lsnn_layers::ModelConfig {
        task_type: "regression".into(),
        input_dim: reg.features(),
        output_dim: reg.outputs(),
        ..Default::default()
    };
    Dataset::<SequenceModel>::check_model(&reg, &cfg).unwrap();
    cfg.liquid_backbone = "ltc".into();
    match Dataset::<SequenceModel>::check_model(&reg, &cfg) {
        Err(TrainError::Config { field, message }) => {
            assert_eq!(field, "liquid_backbone");
            assert!(message.contains("dt"), "{message}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}
