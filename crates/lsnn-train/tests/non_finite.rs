//! Non-finite batches (design §8.1): a batch whose loss or objective is NaN is skipped, counted
//! and reported, never applied; inside an accumulation window it is left out of the average, and
//! a window of only NaN batches takes no step.

mod common;

use candle_core::backprop::GradStore;
use candle_core::Tensor;
use common::{
    batch, options, scratch, snapshot, text_dataset, tiny_config, tiny_model, tiny_train, LmTrainer,
};
use lsnn_train::lm::AsLanguageModel;
use lsnn_train::lsnn_layers::{LanguageModel, Mode, ModelConfig};
use lsnn_train::shard::{shard_rows, SHARD_ROWS};
use lsnn_train::{Event, RunConfig, StepLoss, TokenDataset, TrainConfig, TrainModel, Trainer};
use std::sync::atomic::{AtomicUsize, Ordering};

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
        let shards = shard_rows(tiny_train().batch_size, SHARD_ROWS).len();
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
