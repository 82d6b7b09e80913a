//! Spike encoding as a data-side option (design §8.4): batches hold what lsnn-layers' encoders
//! give for each row (the time axis where the model reads it, padding silent), a row's spikes
//! do not depend on its batch, a run's data is rebuilt with the same spikes, and every input
//! the encoders cannot take is a typed error naming the row, position and feature.

mod common;

use candle_core::{Device, Tensor};
use lsnn_train::data::arrays::{write_npz, Array, ElemType, Elems};
use lsnn_train::data::builtin::builtin;
use lsnn_train::data::sequence::{batch_of, Encoding, Split};
use lsnn_train::data::SequenceData;
use lsnn_train::lsnn_layers::spikegen::{
    self, DeltaConfig, LatencyConfig, RateConfig, SpikeEncoding,
};
use lsnn_train::lsnn_layers::{ModelConfig, SequenceModel, Task};
use lsnn_train::{RunConfig, TrainConfig, TrainError, Trainer};
use std::path::{Path, PathBuf};

fn f32s(shape: &[usize], values: Vec<f32>) -> Array {
    Array {
        dtype: ElemType::F32,
        shape: shape.to_vec(),
        elems: Elems::F32(values),
    }
}

fn labels(v: Vec<i64>) -> Array {
    Array {
        dtype: ElemType::I64,
        shape: vec![v.len()],
        elems: Elems::I64(v),
    }
}

fn write(dir: &Path, name: &str, arrays: &[(&str, &Array)]) -> PathBuf {
    let p = dir.join(name);
    write_npz(&p, arrays).unwrap();
    p
}

/// A static classification file: x [n, 6] in [0, 1] (`scale` multiplies it), y [n] of 3
/// classes, each class brighter on its own two features.
fn static_file(dir: &Path, name: &str, n: usize, scale: f32) -> PathBuf {
    let f = 6;
    let mut x = Vec::with_capacity(n * f);
    let mut y = Vec::with_capacity(n);
    for r in 0..n {
        let c = r % 3;
        y.push(c as i64);
        for k in 0..f {
            let bright = k / 2 == c;
            // Distinct rows (a period of 97 rows): identical rows would share their spikes.
            let jitter = ((r * 37 + k * 11) % 97) as f32 / 970.0;
            x.push(scale * if bright { 0.85 + jitter } else { 0.05 + jitter });
        }
    }
    let (x, y) = (f32s(&[n, f], x), labels(y));
    write(dir, name, &[("x", &x), ("y", &y)])
}

/// A padded sequence classification file: x [8, 5, 2], lengths 1..=5, y [8].
fn sequence_file(dir: &Path, name: &str) -> PathBuf {
    let (n, l, f) = (8, 5, 2);
    let x: Vec<f32> = (0..n * l * f)
        .map(|i| ((i * 37 % 23) as f32) / 23.0)
        .collect();
    let lengths: Vec<i64> = (0..n as i64).map(|r| 1 + r % 5).collect();
    let lengths = Array {
        dtype: ElemType::I64,
        shape: vec![n],
        elems: Elems::I64(lengths),
    };
    let (x, y) = (
        f32s(&[n, l, f], x),
        labels((0..n as i64).map(|r| r % 2).collect()),
    );
    write(dir, name, &[("x", &x), ("y", &y), ("lengths", &lengths)])
}

fn load(path: &Path, task: Task, spike: Option<SpikeEncoding>) -> lsnn_train::Result<SequenceData> {
    SequenceData::from_file(path, task, 7, false, None, spike)
}

fn batch(data: &SequenceData, rows: &[usize]) -> (Vec<usize>, Vec<f32>, Option<Vec<usize>>) {
    let (input, _) = batch_of(data.train(), rows, &Device::Cpu, data.encoding()).unwrap();
    let x = input.x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (input.x.dims().to_vec(), x, input.lengths)
}

fn message(e: TrainError) -> String {
    e.to_string()
}

#[test]
fn rate_batches_put_the_steps_where_the_model_reads_positions() {
    let dir = common::scratch("spike-rate-layout");
    // Values of exactly 0 and 1 make rate deterministic (p = 0 never fires, p = 1 always):
    // every step of a row must equal the row.
    let n = 12;
    let x: Vec<f32> = (0..n * 4).map(|i| ((i * 7 % 5) % 2) as f32).collect();
    let y = labels((0..n as i64).map(|r| r % 2).collect());
    let xa = f32s(&[n, 4], x.clone());
    let file = write(&dir, "binary.npz", &[("x", &xa), ("y", &y)]);
    let data = load(
        &file,
        Task::Classification,
        Some(SpikeEncoding::Rate(RateConfig::new(5))),
    )
    .unwrap();
    assert_eq!(data.positions(), 5);
    let rows: Vec<usize> = (0..data.train().n).collect();
    let (dims, b, lengths) = batch(&data, &rows);
    assert_eq!(dims, vec![rows.len(), 5, 4]);
    assert_eq!(lengths, None);
    for (i, &r) in rows.iter().enumerate() {
        let row = &data.train().x[r * 4..(r + 1) * 4];
        for t in 0..5 {
            assert_eq!(
                &b[(i * 5 + t) * 4..(i * 5 + t + 1) * 4],
                row,
                "row {r} step {t}"
            );
        }
    }
    // The normalisation recorded is the identity: the encoder read the file's own values.
    let norm = data.normalization();
    assert!(norm.mean.iter().all(|&m| m == 0.0) && norm.std.iter().all(|&s| s == 1.0));
}

#[test]
fn rate_spikes_fire_at_the_data_rate_and_a_row_keeps_its_spikes_in_any_batch() {
    let dir = common::scratch("spike-rate-draws");
    let file = static_file(&dir, "static.npz", 300, 1.0);
    let enc = SpikeEncoding::Rate(RateConfig::new(20));
    let data = load(&file, Task::Classification, Some(enc)).unwrap();
    let n = data.train().n;
    let rows: Vec<usize> = (0..n).collect();
    let (dims, b, _) = batch(&data, &rows);
    assert_eq!(dims, vec![n, 20, 6]);
    assert!(b.iter().all(|&v| v == 0.0 || v == 1.0));
    // Firing rate against the probabilities: 20 steps × 6 features × n rows of draws.
    let mean_p: f64 = data.train().x.iter().map(|&v| v as f64).sum::<f64>() / (n * 6) as f64;
    let rate: f64 = b.iter().map(|&v| v as f64).sum::<f64>() / b.len() as f64;
    assert!((rate - mean_p).abs() < 0.01, "rate {rate} vs p {mean_p}");
    // Per feature of one class too: the bright features fire at their own probability.
    let bright: Vec<usize> = rows
        .iter()
        .copied()
        .filter(|&r| data.train().x[r * 6] > 0.5)
        .collect();
    let p_bright = bright
        .iter()
        .map(|&r| data.train().x[r * 6] as f64)
        .sum::<f64>()
        / bright.len() as f64;
    let fired = bright
        .iter()
        .map(|&r| (0..20).map(|t| b[(r * 20 + t) * 6] as f64).sum::<f64>())
        .sum::<f64>()
        / (20 * bright.len()) as f64;
    assert!(p_bright > 0.85);
    assert!((fired - p_bright).abs() < 0.03, "{fired} vs {p_bright}");
    // Row 5 alone, and in another batch, has the same spikes as in the whole batch.
    let alone = batch(&data, &[5]).1;
    let other = batch(&data, &[9, 5, 1]).1;
    let whole = &b[5 * 120..6 * 120];
    assert_eq!(alone, whole);
    assert_eq!(&other[120..240], whole);
    // Rebuilt from what the run records: the same spikes.
    let again = SequenceData::from_description(&data.description()).unwrap();
    assert_eq!(batch(&again, &rows).1, b);
    // Another seed draws other spikes for the same rows.
    let part = data.train().select(&[0, 1, 2]);
    let (a, b8) = (
        Encoding::new(enc, 7).encode(&part).unwrap(),
        Encoding::new(enc, 8).encode(&part).unwrap(),
    );
    assert_eq!(a.x, batch(&data, &[0, 1, 2]).1);
    assert_ne!(a.x, b8.x);
}

#[test]
fn latency_and_delta_batches_equal_the_encoders_on_each_row() {
    let dir = common::scratch("spike-latency-delta");
    let file = static_file(&dir, "static.npz", 30, 1.0);
    let cfg = LatencyConfig::new(6).with_linear(true).with_normalize(true);
    let data = load(
        &file,
        Task::Classification,
        Some(SpikeEncoding::Latency(cfg)),
    )
    .unwrap();
    let (dims, b, _) = batch(&data, &[0, 3]);
    assert_eq!(dims, vec![2, 6, 6]);
    for (i, r) in [0usize, 3].into_iter().enumerate() {
        let row = Tensor::from_slice(&data.train().x[r * 6..(r + 1) * 6], 6, &Device::Cpu).unwrap();
        let want = spikegen::latency(&row, &cfg).unwrap();
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(&b[i * 36..(i + 1) * 36], want.as_slice(), "row {r}");
        // One spike per feature.
        assert_eq!(want.iter().filter(|&&v| v == 1.0).count(), 6);
    }

    // Delta along each row's valid positions; the padded ones silent.
    let file = sequence_file(&dir, "sequences.npz");
    let cfg = DeltaConfig::new(0.2).with_off_spike(true);
    let data = load(&file, Task::Classification, Some(SpikeEncoding::Delta(cfg))).unwrap();
    let split = data.train();
    let rows: Vec<usize> = (0..split.n).collect();
    let (dims, b, lengths) = batch(&data, &rows);
    assert_eq!(dims, vec![split.n, 5, 2]);
    assert_eq!(
        lengths.unwrap(),
        rows.iter().map(|&r| split.len_of(r)).collect::<Vec<_>>()
    );
    let mut fired = 0;
    for &r in &rows {
        let len = split.len_of(r);
        let row = &split.x[r * 10..r * 10 + len * 2];
        let want = spikegen::delta(
            &Tensor::from_slice(row, (len, 2), &Device::Cpu).unwrap(),
            &cfg,
        )
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
        assert_eq!(&b[r * 10..r * 10 + len * 2], want.as_slice(), "row {r}");
        assert!(b[r * 10 + len * 2..(r + 1) * 10].iter().all(|&v| v == 0.0));
        fired += want.iter().filter(|&&v| v != 0.0).count();
    }
    assert!(fired > 0 && b.contains(&-1.0));

    // Rate with one draw per position keeps a sequence's length.
    let data = load(
        &file,
        Task::Classification,
        Some(SpikeEncoding::Rate(RateConfig::new(1))),
    )
    .unwrap();
    let (dims, b, lengths) = batch(&data, &rows);
    assert_eq!(dims, vec![split.n, 5, 2]);
    assert!(lengths.is_some());
    for &r in &rows {
        assert!(b[r * 10 + split.len_of(r) * 2..(r + 1) * 10]
            .iter()
            .all(|&v| v == 0.0));
    }
}

#[test]
fn inputs_the_encoders_cannot_take_are_typed_errors_naming_the_place() {
    let dir = common::scratch("spike-errors");
    let twice = static_file(&dir, "twice.npz", 30, 2.0);
    let e = message(
        load(
            &twice,
            Task::Classification,
            Some(SpikeEncoding::Rate(RateConfig::new(4))),
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("spike_encoding rate")
            && e.contains("array \"x\", sequence 0, position 0, feature 0")
            && e.contains("expected a value in [0, 1]")
            && e.contains("saturate"),
        "{e}"
    );
    // Saturating is the user's explicit choice; then it loads.
    load(
        &twice,
        Task::Classification,
        Some(SpikeEncoding::Rate(RateConfig::new(4).with_saturate(true))),
    )
    .unwrap();
    let e = message(
        load(
            &twice,
            Task::Classification,
            Some(SpikeEncoding::Latency(LatencyConfig::new(4))),
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("spike_encoding latency") && e.contains("[0, 1]"),
        "{e}"
    );

    let seq = sequence_file(&dir, "sequences.npz");
    let e = message(
        load(
            &seq,
            Task::Classification,
            Some(SpikeEncoding::Latency(LatencyConfig::new(4))),
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("sequences of 5 positions") && e.contains("static rows"),
        "{e}"
    );
    let e = message(
        load(
            &seq,
            Task::Classification,
            Some(SpikeEncoding::Rate(RateConfig::new(3))),
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("num_steps 3") && e.contains("num_steps 1 for one draw per position"),
        "{e}"
    );
    let e = message(
        load(
            &seq,
            Task::Classification,
            Some(SpikeEncoding::Delta(DeltaConfig::new(f64::NAN))),
        )
        .unwrap_err(),
    );
    assert!(e.contains("threshold") && e.contains("finite"), "{e}");

    // Delta needs a sequence to see changes in.
    let e = message(
        load(
            &twice,
            Task::Classification,
            Some(SpikeEncoding::Delta(DeltaConfig::new(0.1))),
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("static rows") && e.contains("expected sequences"),
        "{e}"
    );
    // A regression's per-position targets cannot follow a row expanded into T positions.
    let e = message(
        builtin(
            Task::Regression,
            1,
            false,
            Some(SpikeEncoding::Rate(RateConfig::new(4))),
        )
        .unwrap_err(),
    );
    assert!(e.contains("num_steps 4"), "{e}");
}

#[test]
fn the_setting_is_checked_parsed_strictly_and_absent_from_files_that_do_not_use_it() {
    let t = TrainConfig {
        spike_encoding: Some(SpikeEncoding::Rate(RateConfig::new(0))),
        ..TrainConfig::default()
    };
    match t.validate().unwrap_err() {
        TrainError::Config { field, message } => {
            assert_eq!(field, "spike_encoding");
            assert!(
                message.contains("num_steps") && message.contains("at least 1"),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    let parsed: TrainConfig = serde_json::from_str(
        r#"{"spike_encoding": {"kind": "latency", "num_steps": 9, "linear": true}}"#,
    )
    .unwrap();
    assert_eq!(
        parsed.spike_encoding,
        Some(SpikeEncoding::Latency(
            LatencyConfig::new(9).with_linear(true)
        ))
    );
    for bad in [
        r#"{"spike_encoding": {"kind": "poisson"}}"#,
        r#"{"spike_encoding": {"kind": "rate", "steps": 4}}"#,
    ] {
        assert!(serde_json::from_str::<TrainConfig>(bad).is_err(), "{bad}");
    }
    let json = serde_json::to_string(&TrainConfig::default()).unwrap();
    assert!(!json.contains("spike_encoding"), "{json}");
    // What a run records carries it, and the encoder's seed.
    let e = Encoding::new(SpikeEncoding::Delta(DeltaConfig::new(0.3)), 11);
    let back: Encoding = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
    assert_eq!(back, e);
}

#[test]
fn a_rows_rate_spikes_do_not_depend_on_how_far_it_is_padded() {
    let enc = Encoding::new(SpikeEncoding::Rate(RateConfig::new(1)), 5);
    // 20 valid positions × 2 features, p between 0.2 and 0.8.
    let row: Vec<f32> = (0..40).map(|i| 0.2 + (i * 13 % 7) as f32 / 10.0).collect();
    let padded = |l: usize| {
        let mut x = row.clone();
        x.resize(l * 2, 0.0);
        Split {
            n: 1,
            l,
            f: 2,
            x,
            y: None,
            spans: None,
            lengths: Some(vec![20]),
        }
    };
    let (a, b) = (
        enc.encode(&padded(20)).unwrap(),
        enc.encode(&padded(32)).unwrap(),
    );
    assert_eq!(a.x[..40], b.x[..40]);
    assert!(b.x[40..].iter().all(|&v| v == 0.0));
    let fired = a.x.iter().filter(|&&v| v == 1.0).count();
    assert!(fired > 5 && fired < 35, "{fired} of 40");
}

#[test]
fn a_trainer_refuses_a_config_that_does_not_say_how_its_data_is_encoded() {
    let dir = common::scratch("spike-trainer-config");
    let file = static_file(&dir, "static.npz", 30, 1.0);
    let enc = SpikeEncoding::Rate(RateConfig::new(4));
    let data = load(&file, Task::Classification, Some(enc)).unwrap();
    let cfg = RunConfig {
        model: ModelConfig {
            task_type: "classification".into(),
            input_dim: 6,
            output_dim: 3,
            sequence_length: 4,
            max_position_embeddings: 4,
            ..common::tiny_model()
        },
        train: common::tiny_train(),
    };
    let refused = Trainer::<SequenceModel, SequenceData>::new(
        cfg.clone(),
        data.clone(),
        common::options(&dir.join("without")),
    );
    let Err(e) = refused else {
        panic!("a config without the data's encoding is refused")
    };
    match e {
        TrainError::Config { field, message } => {
            assert_eq!(field, "spike_encoding");
            assert!(
                message.starts_with("none in the config, {\"kind\":\"rate\""),
                "{message}"
            );
        }
        other => panic!("{other}"),
    }
    let mut with = cfg;
    with.train.spike_encoding = Some(enc);
    Trainer::<SequenceModel, SequenceData>::new(with, data, common::options(&dir.join("with")))
        .unwrap();
}
