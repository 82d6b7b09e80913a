//! The trainer's pure schedules (design §8.1): early stopping, the cleanup cadence and the
//! learning rate (warm-up then cosine), by example and by property.

use lsnn_train::config::MonitorMode;
use lsnn_train::schedule::{cleanup_after_batch, lr_at, should_stop_early, CleanupReason};
use proptest::prelude::*;

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
