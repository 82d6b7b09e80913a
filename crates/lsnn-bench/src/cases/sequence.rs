//! Leak cases of the sequence tasks: a regression and a classification training step (the
//! `lsnn bench` step of ts-small / cls-small, at the tiny size), with padded rows and time
//! spans in the regression one, streaming prediction one position at a time, and building
//! spike-encoded batches.

use super::{device, tiny_config, vb, Leak, Leaker};
use crate::{Iteration, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarMap;
use lsnn_layers::{ModelConfig, SeededRng, SequenceModel};
use lsnn_train::RunConfig;

/// The tiny config's network as a sequence model of `task`: 5 features in, 3 outputs (or
/// classes).
pub(crate) fn tiny_sequence(task: &str) -> RunConfig<ModelConfig> {
    let mut c = tiny_config();
    c.model = ModelConfig {
        task_type: task.into(),
        input_dim: 5,
        output_dim: 3,
        ..c.model
    };
    c
}

fn step_case(task: &str, leak: Leak) -> Result<Iteration> {
    let mut bench = lsnn_train::workload::StepBench::new_on(&tiny_sequence(task), &device()?)?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |i| {
        bench.train_step(i, false)?;
        leaker.leak(None)
    }))
}

pub(crate) fn regression_step_case(leak: Leak) -> Result<Iteration> {
    step_case("regression", leak)
}

pub(crate) fn classification_step_case(leak: Leak) -> Result<Iteration> {
    step_case("classification", leak)
}

pub(crate) fn stream_predict_case(leak: Leak) -> Result<Iteration> {
    let cfg = tiny_sequence("regression").model;
    let vm = VarMap::new();
    let model = SequenceModel::new(&cfg, vb(&vm, 4))?.detached();
    let capacity = cfg.max_position_embeddings;
    let mut state = model.new_state(2, capacity)?;
    let mut rng = SeededRng::new(5);
    let dev = device()?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |_| {
        if state.position() == capacity {
            state = model.new_state(2, capacity)?;
        }
        let x = rng.normal_tensor((2, 5), 0.0, 1.0, DType::F32, &dev)?;
        let span = Tensor::new(&[0.5f32, 1.5], &dev)?;
        let y = model.step(&x, Some(&span), &mut state)?;
        drop(y);
        leaker.leak(None)
    }))
}

/// Rate-encoded batches of a static classification data set (64 rows of 5 values in [0, 1],
/// 8 steps), 16 rows a batch in turn, built and dropped.
pub(crate) fn encoded_batch_case(leak: Leak) -> Result<Iteration> {
    use lsnn_layers::spikegen::{RateConfig, SpikeEncoding};
    use lsnn_train::data::sequence::{batch_of, Encoding, SeqSource, Split, SplitTargets};
    let split = |n: usize, salt: usize| Split {
        n,
        l: 1,
        f: 5,
        x: (0..n * 5)
            .map(|i| ((i * 37 + salt) % 101) as f32 / 100.0)
            .collect(),
        y: Some(SplitTargets::Classes(
            (0..n as u32).map(|r| r % 3).collect(),
        )),
        spans: None,
        lengths: None,
    };
    let source = SeqSource::Builtin {
        task: "classification".into(),
        seed: 3,
        shuffle_time: false,
    };
    let encoding = Encoding::new(SpikeEncoding::Rate(RateConfig::new(8)), 3);
    let data = lsnn_train::data::SequenceData::from_splits(
        lsnn_layers::Task::Classification,
        split(64, 0),
        split(16, 7),
        None,
        None,
        source,
        Some(encoding),
    )
    .map_err(crate::BenchError::Other)?;
    let dev = device()?;
    let mut leaker = Leaker::new(leak)?;
    Ok(Box::new(move |i| {
        let rows: Vec<usize> = (0..16).map(|k| (i * 16 + k) % 64).collect();
        let (input, targets) = batch_of(data.train(), &rows, &dev, data.encoding())?;
        drop((input, targets));
        leaker.leak(None)
    }))
}
