//! The training loop (design §8.1): the loss falls, runs are deterministic, non-finite batches are
//! skipped and counted, gradient accumulation, early stopping, and the pure schedules.

mod common;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use common::{
    batch, options, scratch, snapshot, text_dataset, tiny_config, tiny_model, tiny_train, LmTrainer,
};
use lsnn_train::config::MonitorMode;
use lsnn_train::lm::AsLanguageModel;
use lsnn_train::lsnn_layers::{LanguageModel, Mode, ModelConfig};
use lsnn_train::schedule::{cleanup_after_batch, lr_at, should_stop_early, CleanupReason};
use lsnn_train::shard::shard_rows;
use lsnn_train::{
    DataSource, Event, RunConfig, StepLoss, TokenDataset, TrainConfig, TrainModel, Trainer,
};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// A `LanguageModel` whose training loss is NaN in one shard of training batch number `AT`
/// (0-based; the last of its shards' loss calls, the others stay finite); with
/// `OBJECTIVE_ONLY` only the objective is NaN and the reported cross-entropy stays finite.
struct NanAt<const AT: usize, const OBJECTIVE_ONLY: bool> {
    inner: LanguageModel,
    train_calls: AtomicUsize,
}

impl<const AT: usize, const OBJECTIVE_ONLY: bool> TrainModel for NanAt<AT, OBJECTIVE_ONLY> {
    type Config = ModelConfig;
    type Batch = Tensor;

    fn build(cfg: &ModelConfig, vb: candle_nn::VarBuilder) -> lsnn_train::Result<Self> {
        Ok(NanAt {
            inner: LanguageModel::build(cfg, vb)?,
            train_calls: AtomicUsize::new(0),
        })
    }

    /// The gradients are handed back even for the poisoned shard: the trainer must see the
    /// non-finite loss itself.
    fn loss_and_grads(
        &self,
        ids: &Tensor,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> lsnn_train::Result<(StepLoss, Option<GradStore>)> {
        let (loss, grads) = TrainModel::loss_and_grads(&self.inner, ids, mode, scale)?;
        // Every batch of these tests has the configuration's batch size.
        let shards = shard_rows(tiny_train().batch_size).len();
        let i = self.train_calls.fetch_add(1, Ordering::SeqCst);
        if i != AT * shards + shards - 1 {
            return Ok((loss, grads));
        }
        let poisoned = StepLoss {
            objective: f64::NAN,
            loss: if OBJECTIVE_ONLY { loss.loss } else { f64::NAN },
        };
        Ok((poisoned, grads))
    }

    fn metric_names(&self) -> Vec<String> {
        self.inner.metric_names()
    }

    fn eval_batch(&self, ids: &Tensor) -> lsnn_train::Result<Vec<f64>> {
        self.inner.eval_batch(ids)
    }

    fn derived_metrics(&self, means: &[(String, f64)]) -> Vec<(String, f64)> {
        self.inner.derived_metrics(means)
    }

    fn derived_metric_names(&self) -> Vec<String> {
        self.inner.derived_metric_names()
    }

    fn batch_rows(ids: &Tensor) -> usize {
        LanguageModel::batch_rows(ids)
    }

    fn batch_part(ids: &Tensor, start: usize, len: usize) -> Option<lsnn_train::Result<Tensor>> {
        LanguageModel::batch_part(ids, start, len)
    }

    fn batch_items(ids: &Tensor) -> u64 {
        LanguageModel::batch_items(ids)
    }
}

impl<const AT: usize, const OBJECTIVE_ONLY: bool> AsLanguageModel for NanAt<AT, OBJECTIVE_ONLY> {
    fn language_model(&self) -> &LanguageModel {
        &self.inner
    }
}

fn nan_batch_is_skipped<const OBJECTIVE_ONLY: bool>(name: &str) {
    let dir = scratch(name);
    let mut t = Trainer::<NanAt<2, OBJECTIVE_ONLY>, TokenDataset>::new(
        tiny_config(),
        text_dataset(24),
        options(&dir),
    )
    .unwrap();
    for b in 0..6 {
        let before = snapshot(&t);
        let step_before = t.state().step;
        let loss = t.train_batch(&batch(&t, b)).unwrap();
        let after = snapshot(&t);
        if b == 2 {
            assert!(loss.is_nan(), "a skipped batch reports NaN, got {loss}");
            assert_eq!(t.state().skipped_batches, 1);
            assert_eq!(
                t.state().step,
                step_before,
                "the optimizer stepped on a NaN batch"
            );
            for ((name, x), (_, y)) in before.0.iter().zip(&after.0) {
                assert!(x == y, "{name} changed on a NaN batch");
            }
        } else {
            assert!(loss.is_finite(), "batch {b}: {loss}");
            assert_eq!(t.state().step, step_before + 1, "batch {b} did not step");
            assert_ne!(before, after, "batch {b} did not change the weights");
        }
    }
    let st = t.state();
    assert_eq!(st.skipped_batches, 1);
    assert_eq!(st.skipped_steps, 0);
    assert_eq!(st.batches_seen, 6);
    assert_eq!(st.step, 5, "training continued after the NaN batch");
    // The skipped batch's loss is not in the metrics: every train_loss entry is finite.
    for row in t.metrics_csv().lines().skip(1) {
        let train_loss: f64 = row.split(',').nth(4).unwrap().parse().unwrap();
        assert!(train_loss.is_finite(), "metrics row {row}");
    }
}

#[test]
fn nan_loss_batch_is_skipped_counted_and_not_applied() {
    nan_batch_is_skipped::<false>("nan-both");
}

#[test]
fn nan_objective_with_finite_cross_entropy_is_skipped_too() {
    nan_batch_is_skipped::<true>("nan-objective");
}

/// `run` reports the skipped batch as an event and in its summary.
fn run_reports_skipped_batches<const OBJECTIVE_ONLY: bool>(name: &str) {
    let dir = scratch(name);
    let mut t = Trainer::<NanAt<3, OBJECTIVE_ONLY>, TokenDataset>::new(
        tiny_config(),
        text_dataset(24),
        options(&dir),
    )
    .unwrap();
    let mut skipped = Vec::new();
    let mut batches = 0;
    let summary = t
        .run(&mut |e| match e {
            Event::Skipped { total, .. } => skipped.push(*total),
            Event::Batch { .. } => batches += 1,
            _ => {}
        })
        .unwrap();
    assert_eq!(skipped, vec![1]);
    assert_eq!(batches, 6);
    assert_eq!(summary.skipped, 1);
    assert_eq!(summary.steps, 5);
    let eval = summary.last_eval.unwrap();
    assert!(eval.loss().is_finite());
}

#[test]
fn run_reports_a_skipped_nan_loss_batch() {
    run_reports_skipped_batches::<false>("nan-run-both");
}

#[test]
fn run_reports_a_skipped_nan_objective_batch() {
    run_reports_skipped_batches::<true>("nan-run-objective");
}

/// With accumulation 2, a window of [valid batch, NaN batch] steps with the valid batch's
/// gradient alone (averaged over the one valid batch): bit for bit what accumulation 1 does after
/// that batch. (No clipping: a clipped step's scale does not depend on the averaging.)
#[test]
fn nan_batch_inside_an_accumulation_window_is_left_out_of_the_average() {
    let dir = scratch("nan-accum");
    let cfg1 = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            gradient_clip: 0.0,
            ..tiny_train()
        },
    };
    let cfg2 = RunConfig {
        train: TrainConfig {
            gradient_accumulation_steps: 2,
            ..cfg1.train.clone()
        },
        ..cfg1.clone()
    };
    let mut a =
        Trainer::<NanAt<1, false>, TokenDataset>::new(cfg2, text_dataset(24), options(&dir))
            .unwrap();
    // (One trainer per run directory.)
    let mut b = LmTrainer::new(cfg1, text_dataset(24), options(&dir.join("b"))).unwrap();
    assert_eq!(
        snapshot(&a),
        snapshot(&b),
        "same seed, same initial weights"
    );
    a.train_batch(&batch(&a, 0)).unwrap();
    assert_eq!(a.state().step, 0, "mid-window: no step yet");
    assert!(a.train_batch(&batch(&a, 1)).unwrap().is_nan());
    assert_eq!(a.state().step, 1);
    assert_eq!(a.state().skipped_batches, 1);
    b.train_batch(&batch(&b, 0)).unwrap();
    assert_eq!(b.state().step, 1);
    assert_eq!(
        snapshot(&a),
        snapshot(&b),
        "the NaN batch leaked into the accumulated step"
    );
}

/// A window whose every batch is NaN takes no step.
#[test]
fn all_nan_window_takes_no_step() {
    let dir = scratch("nan-window");
    let cfg = RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            gradient_accumulation_steps: 1,
            ..tiny_train()
        },
    };
    let mut t = Trainer::<NanAt<0, false>, TokenDataset>::new(cfg, text_dataset(24), options(&dir))
        .unwrap();
    let before = snapshot(&t);
    assert!(t.train_batch(&batch(&t, 0)).unwrap().is_nan());
    assert_eq!(t.state().step, 0);
    assert_eq!(snapshot(&t), before);
    assert!(t.train_batch(&batch(&t, 1)).unwrap().is_finite());
    assert_eq!(t.state().step, 1);
    assert_ne!(snapshot(&t), before);
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

#[test]
fn should_stop_early_policy() {
    assert!(!should_stop_early(&[], 1, MonitorMode::Min));
    assert!(
        !should_stop_early(&[1.0, 2.0, 3.0], 0, MonitorMode::Min),
        "patience 0 never stops"
    );
    assert!(
        !should_stop_early(&[3.0, 2.0, 1.0], 1, MonitorMode::Min),
        "still improving"
    );
    assert!(should_stop_early(&[1.0, 2.0], 1, MonitorMode::Min));
    assert!(!should_stop_early(&[1.0, 2.0], 2, MonitorMode::Min));
    assert!(should_stop_early(&[1.0, 2.0, 3.0], 2, MonitorMode::Min));
    assert!(
        !should_stop_early(&[2.0, 1.0, 3.0], 2, MonitorMode::Min),
        "best is one epoch old"
    );
    assert!(
        should_stop_early(&[1.0, 1.0], 1, MonitorMode::Min),
        "a tie is no improvement"
    );
    assert!(
        !should_stop_early(&[1.0, 2.0, 0.5], 1, MonitorMode::Min),
        "a new best resets the count"
    );
}

proptest! {
    #[test]
    fn should_stop_early_matches_epochs_since_best(
        losses in prop::collection::vec(0.0f64..10.0, 1..30),
        patience in 1usize..10,
    ) {
        let best = losses.iter().cloned().fold(f64::INFINITY, f64::min);
        let first_best = losses.iter().position(|&v| v == best).unwrap();
        let since = losses.len() - 1 - first_best;
        prop_assert_eq!(should_stop_early(&losses, patience, MonitorMode::Min), since >= patience);
        // Appending a new strict best never stops.
        let mut better = losses.clone();
        better.push(best - 1.0);
        prop_assert!(!should_stop_early(&better, patience, MonitorMode::Min));
    }
}

#[test]
fn cleanup_schedule() {
    assert_eq!(
        cleanup_after_batch(50, 50, false),
        Some(CleanupReason::Periodic)
    );
    assert_eq!(
        cleanup_after_batch(100, 50, false),
        Some(CleanupReason::Periodic)
    );
    assert_eq!(cleanup_after_batch(49, 50, false), None);
    assert_eq!(cleanup_after_batch(51, 50, false), None);
    assert_eq!(
        cleanup_after_batch(0, 50, false),
        None,
        "nothing before the first batch"
    );
    assert_eq!(
        cleanup_after_batch(7, 50, true),
        Some(CleanupReason::EpochEnd)
    );
    assert_eq!(
        cleanup_after_batch(50, 50, true),
        Some(CleanupReason::EpochEnd)
    );
    assert_eq!(
        cleanup_after_batch(50, 0, false),
        None,
        "every = 0 disables"
    );
    assert_eq!(
        cleanup_after_batch(3, 0, true),
        Some(CleanupReason::EpochEnd)
    );
}

proptest! {
    #[test]
    fn cleanup_runs_every_n_batches(every in 0usize..40, n in 0u64..500) {
        let periodic = (1..=n)
            .filter(|&b| cleanup_after_batch(b, every, false) == Some(CleanupReason::Periodic))
            .count() as u64;
        let expected = if every == 0 { 0 } else { n / every as u64 };
        prop_assert_eq!(periodic, expected);
        prop_assert_eq!(cleanup_after_batch(n, every, true), Some(CleanupReason::EpochEnd));
    }
}

#[test]
fn lr_schedule_examples() {
    let peak = 1e-3;
    // Warm-up: linear to the peak over 10 steps.
    for s in 0..10 {
        let want = peak * (s + 1) as f64 / 10.0;
        assert!((lr_at(s, 110, 10, peak) - want).abs() < 1e-15, "step {s}");
    }
    assert_eq!(lr_at(9, 110, 10, peak), peak);
    assert_eq!(lr_at(10, 110, 10, peak), peak, "decay starts at the peak");
    // Cosine: half way through the decay is half the peak, the end is zero.
    assert!((lr_at(60, 110, 10, peak) - peak / 2.0).abs() < 1e-15);
    assert!(lr_at(110, 110, 10, peak).abs() < 1e-15);
    assert!(
        lr_at(500, 110, 10, peak).abs() < 1e-15,
        "stays at zero past the end"
    );
    // No warm-up: starts at the peak.
    assert_eq!(lr_at(0, 100, 0, peak), peak);
    assert!((lr_at(50, 100, 0, peak) - peak / 2.0).abs() < 1e-15);
    // A quarter of the way: peak·(1 + cos(π/4))/2.
    let q = peak * 0.5 * (1.0 + std::f64::consts::FRAC_PI_4.cos());
    assert!((lr_at(25, 100, 0, peak) - q).abs() < 1e-15);
}

proptest! {
    #[test]
    fn lr_schedule_shape(
        warmup in 0usize..200,
        decay in 1usize..3000,
        peak in 1e-6f64..1.0,
    ) {
        let total = warmup + decay;
        let lrs: Vec<f64> = (0..total + 5).map(|s| lr_at(s, total, warmup, peak)).collect();
        for (s, &lr) in lrs.iter().enumerate() {
            prop_assert!(lr.is_finite() && (0.0..=peak * (1.0 + 1e-12)).contains(&lr), "step {} lr {}", s, lr);
        }
        // Warm-up: linear and strictly increasing to the peak.
        for s in 0..warmup {
            let want = peak * (s + 1) as f64 / warmup as f64;
            prop_assert!((lrs[s] - want).abs() <= 1e-12 * peak);
            if s > 0 {
                prop_assert!(lrs[s] > lrs[s - 1]);
            }
        }
        if warmup > 0 {
            prop_assert!((lrs[warmup - 1] - peak).abs() <= 1e-12 * peak);
        }
        // After warm-up: starts at the peak, never increases, reaches 0 at `total`.
        prop_assert!((lrs[warmup] - peak).abs() <= 1e-12 * peak);
        for s in warmup + 1..lrs.len() {
            prop_assert!(lrs[s] <= lrs[s - 1], "increase at step {}: {} > {}", s, lrs[s], lrs[s - 1]);
        }
        prop_assert!(lrs[total].abs() <= 1e-12 * peak);
        // Strictly decreasing inside the decay (cosine has no flat part).
        for s in warmup + 1..=total {
            prop_assert!(lrs[s] < lrs[s - 1], "flat at step {}", s);
        }
    }
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
    let direct = lsnn_train::evaluate_model(
        &model,
        ema.data(),
        ema.config().train.batch_size,
        0,
        &candle_core::Device::Cpu,
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
