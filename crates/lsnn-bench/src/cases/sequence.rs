//! Leak cases of the sequence tasks: a regression and a classification training step (the
//! `lsnn bench` step of ts-small / cls-small, at the tiny size), with padded rows and time
//! spans in the regression one, and streaming prediction one position at a time.

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
