//! The training loop (design §8.1): the loss falls, runs are deterministic, non-finite batches are
//! skipped and counted, gradient accumulation, early stopping (the pure schedules are
//! `schedule.rs`'s).

mod common;

use common::{
    batch, options, scratch, snapshot, text_dataset, tiny_config, tiny_model, tiny_train, LmTrainer,
};
use lsnn_train::config::MonitorMode;
use lsnn_train::lsnn_layers::{LanguageModel, ModelConfig};
use lsnn_train::schedule::should_stop_early;
use lsnn_train::{DataSource, Event, RunConfig, TokenDataset, TrainConfig, TrainModel};
use std::path::PathBuf;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn batch_losses(events: &[Event]) -> Vec<f64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Batch { loss, .. } => Some(*loss),
            _ => None,
        })
        .collect()
}

#[test]
fn loss_falls_by_a_third_on_repetitive_text() {
    let dir = scratch("loss-falls");
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            num_epochs: 3,
            ..tiny_train()
        },
    };
    // 64 windows = 16 batches per epoch.
    let data = text_dataset(64);
    let mut t = LmTrainer::new(cfg, data, options(&dir)).unwrap();
    let mut events = Vec::new();
    let summary = t.run(&mut |e| events.push(e.clone())).unwrap();
    let losses = batch_losses(&events);
    assert_eq!(losses.len(), 48, "3 epochs of 16 batches");
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    let early = mean(&losses[..4]);
    let late = mean(&losses[losses.len() - 4..]);
    eprintln!("early {early:.3} late {late:.3} summary {summary:?}");
    assert!(
        late <= 0.7 * early,
        "unsmoothed training loss fell from {early:.3} to only {late:.3} (less than 30%)"
    );
    // The initial loss is that of an untrained model over 256 bytes, ≈ ln 256.
    assert!((early - 256f64.ln()).abs() < 1.0, "early loss {early}");
    assert_eq!(summary.steps, 48);
    assert!(!summary.interrupted);
    // Each epoch's reported train loss is the mean of its batches' losses.
    let epoch_losses: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            Event::EpochEnd { train_loss, .. } => Some(*train_loss),
            _ => None,
        })
        .collect();
    assert_eq!(epoch_losses.len(), 3);
    for (e, got) in epoch_losses.iter().enumerate() {
        let want = mean(&losses[e * 16..(e + 1) * 16]);
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "epoch {e}: {got} vs mean {want}"
        );
    }
    let eval = summary.last_eval.expect("an epoch finished");
    assert!(
        eval.loss() < 0.7 * 256f64.ln(),
        "validation loss {}",
        eval.loss()
    );
}

/// Two runs of one config and seed end with bit-identical weights and metrics.
#[test]
fn identical_runs_give_bit_identical_weights() {
    let run = |name: &str| {
        let dir = scratch(name);
        let cfg = RunConfig {
            model: tiny_model(),
            train: TrainConfig {
                num_epochs: 2,
                gradient_accumulation_steps: 2,
                ..tiny_train()
            },
        };
        let mut t = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap();
        let mut losses = Vec::new();
        t.run(&mut |e| {
            if let Event::Batch { loss, .. } = e {
                losses.push(loss.to_bits());
            }
        })
        .unwrap();
        // Every fresh run draws its own lineage; the rest must agree.
        let mut state = t.state().clone();
        assert!(state.lineage.take().is_some());
        (snapshot(&t), losses, t.metrics_csv(), state)
    };
    let a = run("determinism-a");
    let b = run("determinism-b");
    assert_eq!(a.1.len(), 12);
    assert_eq!(
        a.0, b.0,
        "weights differ between two runs with the same seed"
    );
    assert_eq!(a.1, b.1, "batch losses differ");
    assert_eq!(a.2, b.2, "metrics differ");
    assert_eq!(a.3, b.3, "trainer states differ");

    // A different seed gives different weights (so the comparison above can fail).
    let dir = scratch("determinism-c");
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            num_epochs: 2,
            gradient_accumulation_steps: 2,
            seed: 7,
            ..tiny_train()
        },
    };
    let mut t = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap();
    t.run(&mut |_| {}).unwrap();
    assert_ne!(snapshot(&t), a.0);
}

#[test]
fn gradient_accumulation_steps_once_per_window() {
    let dir = scratch("accum-2");
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            gradient_accumulation_steps: 2,
            num_epochs: 1,
            ..tiny_train()
        },
    };
    // 6 batches per epoch.
    let mut t = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap();
    assert_eq!(t.state().total_steps, 3);
    let mut steps_seen = Vec::new();
    let summary = t
        .run(&mut |e| {
            if let Event::Batch { step, .. } = e {
                steps_seen.push(*step);
            }
        })
        .unwrap();
    assert_eq!(summary.batches, 6);
    assert_eq!(summary.steps, 3, "half the batches");
    assert_eq!(steps_seen, vec![0, 1, 1, 2, 2, 3]);

    // Manually: weights change only at a window's end (accumulation 3).
    let dir = scratch("accum-3");
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            gradient_accumulation_steps: 3,
            ..tiny_train()
        },
    };
    let mut t = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap();
    let mut prev = snapshot(&t);
    for b in 0..6 {
        t.train_batch(&batch(&t, b)).unwrap();
        let now = snapshot(&t);
        if b % 3 == 2 {
            assert_ne!(now, prev, "window end {b} did not step");
        } else {
            assert_eq!(now, prev, "batch {b} stepped mid-window");
        }
        assert_eq!(t.state().step as usize, (b + 1) / 3);
        assert_eq!(t.state().accum_in_window, (b + 1) % 3);
        prev = now;
    }
}

/// Training on one stream and validating on bytes it never contains: the validation loss rises
/// after the first epoch, and patience 1 stops the run long before `num_epochs`.
#[test]
fn early_stopping_stops_when_validation_loss_rises() {
    let dir = scratch("early-stop");
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            num_epochs: 20,
            early_stopping_patience: 1,
            ..tiny_train()
        },
    };
    let seq = 16;
    let train: Vec<u32> = "abab"
        .bytes()
        .cycle()
        .take(8 * seq + 1)
        .map(u32::from)
        .collect();
    let val: Vec<u32> = "xyz"
        .bytes()
        .cycle()
        .take(2 * seq + 1)
        .map(u32::from)
        .collect();
    let data = TokenDataset::new(
        train,
        val,
        seq,
        DataSource::TextFile {
            path: PathBuf::from("<early stop>"),
            sha256: None,
        },
    )
    .unwrap();
    let mut t = LmTrainer::new(cfg, data, options(&dir)).unwrap();
    let mut early_stop = None;
    let mut epochs = 0;
    let summary = t
        .run(&mut |e| match e {
            Event::EarlyStop { epoch } => early_stop = Some(*epoch),
            Event::EpochEnd { .. } => epochs += 1,
            _ => {}
        })
        .unwrap();
    let hist = t.state().history.clone();
    assert!(epochs < 20, "ran all {epochs} epochs; val losses {hist:?}");
    assert_eq!(early_stop, Some(epochs - 1), "val losses {hist:?}");
    assert_eq!(hist.len(), epochs);
    assert!(t.state().finished);
    assert!(!summary.interrupted);
    // The stop is exactly the policy's: not stopping one epoch earlier, stopping now.
    assert!(should_stop_early(&hist, 1, MonitorMode::Min));
    assert!(!should_stop_early(
        &hist[..hist.len() - 1],
        1,
        MonitorMode::Min
    ));
    assert!(hist[hist.len() - 1] >= t.state().best.unwrap());
}

/// Evaluation with the EMA weights on request: it scores the averaged weights (which differ from
/// the live ones), exactly as a model built from the saved `ema.safetensors` scores.
#[test]
fn evaluation_uses_the_ema_weights_on_request() {
    let run = |name: &str, eval_with_ema: bool| {
        let dir = scratch(name);
        let mut t = LmTrainer::new(
            RunConfig {
                model: tiny_model(),
                train: TrainConfig {
                    ema_decay: 0.5,
                    ..tiny_train()
                },
            },
            text_dataset(24),
            lsnn_train::TrainOptions {
                eval_with_ema,
                ..options(&dir)
            },
        )
        .unwrap();
        for b in 0..4 {
            t.train_batch(&batch(&t, b)).unwrap();
        }
        (t, dir)
    };
    let (plain, _) = run("eval-plain", false);
    let (ema, dir) = run("eval-ema", true);
    assert_eq!(snapshot(&plain), snapshot(&ema));
    let l_plain = plain.evaluate().unwrap();
    let l_ema = ema.evaluate().unwrap();
    assert!(l_plain.loss().is_finite() && l_ema.loss().is_finite());
    assert_ne!(
        l_plain.loss(),
        l_ema.loss(),
        "EMA evaluation scored the live weights"
    );
    assert_eq!(l_plain.examples, 3);

    ema.save_checkpoint().unwrap();
    let ck = lsnn_train::checkpoint::load(&dir).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(
        ck.ema,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    );
    let model = LanguageModel::build(&ema.config().model, vb).unwrap();
    // The trainer's evaluation measures the spiking layers too (design §10.3).
    let direct = lsnn_train::evaluate_with_firing(
        &model,
        ema.data(),
        ema.config().train.batch_size,
        0,
        &candle_core::Device::Cpu,
        true,
    )
    .unwrap();
    assert_eq!(direct, l_ema);
}

#[test]
fn bad_trainer_settings_are_typed_errors() {
    let dir = scratch("bad-settings");
    // Windows of another length than the config's sequence length.
    let cfg = RunConfig {
        model: ModelConfig {
            sequence_length: 8,
            ..tiny_model()
        },
        train: tiny_train(),
    };
    let err = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap_err();
    assert!(
        matches!(&err, lsnn_train::TrainError::Config { field, .. } if field == "sequence_length"),
        "{err:?}"
    );
    // A batch larger than the data.
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            batch_size: 32,
            ..tiny_train()
        },
    };
    let err = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap_err();
    assert!(
        matches!(&err, lsnn_train::TrainError::Config { field, message }
            if field == "batch_size" && message.contains("24 training examples")),
        "{err:?}"
    );
    // A vocabulary the byte tokenizer does not have.
    let cfg = RunConfig {
        model: ModelConfig {
            vocab_size: 300,
            output_dim: 300,
            ..tiny_model()
        },
        train: tiny_train(),
    };
    let err = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap_err();
    assert!(err.to_string().contains("300"), "{err}");
    // A memory budget that cannot hold the weights, EMA, moments and gradients.
    let err = LmTrainer::new(
        tiny_config(),
        text_dataset(24),
        lsnn_train::TrainOptions {
            memory_budget: Some(lsnn_train::lsnn_memory::MemoryLimit::Bytes(1024)),
            ..options(&dir)
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            lsnn_train::TrainError::Memory(
                lsnn_train::lsnn_memory::MemoryError::BudgetExceeded { .. }
            )
        ),
        "{err:?}"
    );
    // An invalid config.
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            gradient_accumulation_steps: 0,
            ..tiny_train()
        },
    };
    let err = LmTrainer::new(cfg, text_dataset(24), options(&dir)).unwrap_err();
    assert!(
        err.to_string().contains("gradient_accumulation_steps"),
        "{err}"
    );
}

#[test]
fn greedy_completion_and_accuracy() {
    use lsnn_train::generate::{continue_prompts, Sampler};
    let dir = scratch("greedy");
    let t = LmTrainer::new(tiny_config(), text_dataset(24), options(&dir)).unwrap();
    let m = t.model();
    let greedy = |p: &[Vec<u32>]| continue_prompts(m, p, 4, Sampler::Greedy);
    let outs = greedy(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap();
    assert_eq!(outs.len(), 2);
    assert!(outs
        .iter()
        .all(|o| o.len() == 4 && o.iter().all(|&x| x < 256)));
    // Deterministic: the same prompts give the same completion.
    assert_eq!(greedy(&[vec![1, 2, 3], vec![4, 5, 6]]).unwrap(), outs);
    assert!(greedy(&[]).unwrap().is_empty());
    let err = greedy(&[vec![1, 2], vec![3]]).unwrap_err();
    assert!(
        matches!(&err, lsnn_train::TrainError::Config { field, .. } if field == "prompts"),
        "{err:?}"
    );
    // Past the position table (16): a typed error, not an overflow.
    let err = continue_prompts(m, &[vec![1; 10]], 7, Sampler::Greedy).unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
    let err = continue_prompts(m, &[vec![1]], usize::MAX, Sampler::Greedy).unwrap_err();
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
    // Sampling at a temperature is reproducible from its seed and differs from greedy.
    let sample = |seed| {
        let mut rng = lsnn_train::lsnn_layers::SeededRng::new(seed);
        continue_prompts(
            m,
            &[vec![1, 2, 3]],
            8,
            Sampler::Temperature {
                temperature: 5.0,
                rng: &mut rng,
            },
        )
        .unwrap()
    };
    assert_eq!(sample(3), sample(3));
    assert_ne!(sample(3), sample(4));
    let task = lsnn_train::ArithmeticTask::new(1);
    let acc = lsnn_train::lm::arithmetic_accuracy(m, &task, 8).unwrap();
    assert!((0.0..=1.0).contains(&acc));
}
