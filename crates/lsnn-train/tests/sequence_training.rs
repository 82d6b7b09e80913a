//! The sequence tasks inside the trainer (design §2.9, §8.4): a padded batch's sharded gradient
//! is its whole gradient (shards weighted by what they score, not by rows), validation metrics
//! are means over the valid elements of the whole validation set, and a run's recorded
//! normalisation is what prediction applies.

mod common;

use candle_core::{Device, Tensor};
use lsnn_train::data::sequence::{Split, SplitTargets};
use lsnn_train::data::{SeqSource, SequenceData};
use lsnn_train::lsnn_layers::{
    named_vars, Mode, ModelConfig, SeededInit, SeededRng, SeqInput, SequenceModel, Task,
};
use lsnn_train::task::{load_sequence, SeqBatch};
use lsnn_train::{
    evaluate_model, Dataset, RunConfig, TrainConfig, TrainModel, TrainOptions, Trainer,
};
use std::path::PathBuf;

fn regression_config() -> ModelConfig {
    ModelConfig {
        task_type: "regression".into(),
        input_dim: 3,
        output_dim: 2,
        dropout: 0.0,
        encoder_dropout: 0.0,
        block_dropout: 0.0,
        embedding_dropout: 0.0,
        spike_threshold: 0.5,
        ..common::tiny_model()
    }
}

fn model(cfg: &ModelConfig) -> (SequenceModel, Vec<(String, candle_core::Var)>) {
    let vm = candle_nn::VarMap::new();
    let vb = SeededInit::var_builder(
        &vm,
        SeededRng::new(3),
        candle_core::DType::F32,
        &Device::Cpu,
    );
    let m = SequenceModel::new(cfg, vb).unwrap();
    (m, named_vars(&vm))
}

fn normal(shape: &[usize], seed: u64) -> Vec<f32> {
    let t = SeededRng::new(seed)
        .normal_tensor(shape, 0.0, 1.0, candle_core::DType::F32, &Device::Cpu)
        .unwrap();
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// A regression split of `lengths.len()` rows of 6 positions with the given valid lengths.
fn split(lengths: &[u32], seed: u64) -> Split {
    let (n, l) = (lengths.len(), 6);
    Split {
        n,
        l,
        f: 3,
        x: normal(&[n, l, 3], seed),
        y: Some(SplitTargets::Values {
            data: normal(&[n, l, 2], seed + 1),
            width: 2,
        }),
        spans: None,
        lengths: Some(lengths.to_vec()),
    }
}

#[test]
fn a_padded_batchs_shards_weigh_what_they_score() {
    let cfg = regression_config();
    let (m, vars) = model(&cfg);
    // 8 rows: the first shard of 4 scores far fewer positions than the second.
    let lengths = [1u32, 1, 2, 1, 6, 6, 5, 6];
    let s = split(&lengths, 10);
    let (input, targets) =
        lsnn_train::data::sequence::batch_of(&s, &(0..8).collect::<Vec<_>>(), &Device::Cpu, None)
            .unwrap();
    let batch = SeqBatch {
        input,
        targets: targets.unwrap(),
    };
    let sharded = lsnn_train::shard::loss_and_grads(
        &m,
        &batch,
        &mut SeededRng::new(1),
        &vars,
        lsnn_train::shard::SHARD_ROWS,
    )
    .unwrap();
    let (whole, store) = m
        .loss_and_grads(&batch.input, &batch.targets, &mut Mode::Eval, 1.0)
        .unwrap();
    let store = store.unwrap();
    assert!(
        (sharded.loss - whole.loss).abs() < 1e-6,
        "{} vs {}",
        sharded.loss,
        whole.loss
    );
    for ((name, v), g) in vars.iter().zip(sharded.grads.unwrap()) {
        let (a, b) = (g.unwrap(), store.get(v.as_tensor()).unwrap().clone());
        let d = (&a - &b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "{name}: sharded gradient differs by {d}");
    }
    // Weighted by rows instead, the loss would differ: the weights are doing the work.
    assert_eq!(SequenceModel::batch_weight(&batch), (28 * 2) as f64);
}

#[test]
fn validation_metrics_are_means_over_every_valid_element() {
    let cfg = regression_config();
    let (m, _) = model(&cfg);
    let train = split(&[6, 6, 6, 6], 20);
    let val = split(&[2, 6, 1, 4, 6], 30);
    let raw_val = val.clone();
    let source = SeqSource::Builtin {
        task: "regression".into(),
        seed: 0,
        shuffle_time: false,
    };
    let data =
        SequenceData::from_splits(Task::Regression, train, val, None, None, source, None).unwrap();
    // Batches of 2 rows: batches that score different amounts.
    let r = evaluate_model(&m, &data, 2, 0, &Device::Cpu).unwrap();
    // By hand: every row alone (unpadded, normalised as the data normalised it), squared errors
    // summed over the valid elements of all rows, over their count.
    let norm = data.normalization();
    let (mut se, mut count) = (0f64, 0f64);
    for row in 0..raw_val.n {
        let len = raw_val.len_of(row);
        let x: Vec<f32> = (0..len * 3)
            .map(|i| {
                let k = i % 3;
                (raw_val.x[row * 18 + i] - norm.mean[k]) / norm.std[k]
            })
            .collect();
        let x = Tensor::from_vec(x, (1, len, 3), &Device::Cpu).unwrap();
        let pred = m.forward(&SeqInput::new(x), &mut Mode::Eval).unwrap();
        let pred = pred.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let Some(SplitTargets::Values { data: y, .. }) = &raw_val.y else {
            unreachable!()
        };
        for (i, p) in pred.iter().enumerate() {
            let d = (*p - y[row * 12 + i]) as f64;
            se += d * d;
            count += 1.0;
        }
    }
    let want = se / count;
    let got = r.get("val_mse").unwrap();
    assert!(
        (got - want).abs() < 1e-5 * want.max(1.0),
        "val_mse {got} vs {want}"
    );
    // A row-weighted mean of the batches' means would not be it.
    assert_eq!(r.examples, 5);
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/arrays")
        .join(name)
}

#[test]
fn prediction_applies_the_runs_normalisation() {
    let dir = common::scratch("predict-normalisation");
    let file = fixture("regression.npz");
    let data = SequenceData::from_file(&file, Task::Regression, 4, false, None, None).unwrap();
    let cfg = RunConfig {
        model: ModelConfig {
            sequence_length: 12,
            max_position_embeddings: 12,
            ..regression_config()
        },
        train: TrainConfig {
            batch_size: 4,
            seed: 4,
            ..common::tiny_train()
        },
    };
    let opts = TrainOptions {
        max_batches: Some(2),
        ..common::options(&dir)
    };
    let mut t: Trainer<SequenceModel, SequenceData> = Trainer::new(cfg, data, opts).unwrap();
    t.run(&mut |_| {}).unwrap();
    let trained_norm = t.data().normalization().clone();
    let described = t.data().describe();
    drop(t);
    let s = load_sequence(&dir, false, None).unwrap();
    assert_eq!(s.description.normalization, trained_norm);
    assert_eq!(serde_json::to_value(&s.description).unwrap(), described);
    let inputs = s.read_inputs(&file).unwrap();
    let raw = lsnn_train::data::arrays::read_arrays(&std::fs::read(&file).unwrap()).unwrap();
    let x: Vec<f64> = raw["x"].to_f64();
    let lengths = raw["lengths"].to_i128().unwrap();
    for (r, &len) in lengths.iter().enumerate().take(inputs.n) {
        for p in 0..inputs.l {
            for k in 0..3 {
                let i = (r * inputs.l + p) * 3 + k;
                let want = if (p as i128) < len {
                    ((x[i] as f32) - trained_norm.mean[k]) / trained_norm.std[k]
                } else {
                    0.0
                };
                assert_eq!(
                    inputs.x[i].to_bits(),
                    want.to_bits(),
                    "row {r} position {p} feature {k}"
                );
            }
        }
    }
    // And the batched prediction is the model's output on those inputs.
    let p = s.predict(&inputs, 7).unwrap();
    let (input, _) =
        lsnn_train::data::sequence::batch_of(&inputs, &[0, 1], &Device::Cpu, None).unwrap();
    let direct = s.model.forward(&input, &mut Mode::Eval).unwrap();
    let direct = direct.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let lsnn_train::data::arrays::Elems::F32(pv) = &p.values.elems else {
        panic!("f32 predictions")
    };
    for (i, d) in direct.iter().enumerate() {
        let row_pos = i / 2;
        let (r, pos) = (row_pos / 12, row_pos % 12);
        if (pos as i128) < lengths[r] {
            assert!((pv[i] - d).abs() < 1e-6, "prediction {i}");
        } else {
            assert!(pv[i].is_nan(), "padding {i} is NaN");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
