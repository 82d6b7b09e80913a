//! A user's own model trained by lsnn's `Trainer`, checkpointed, and resumed exactly.
//!
//! `cargo run -p lsnn-examples --example trainer_own_model [-- EPOCHS]`
//!
//! The spiking classifier of `lsnn_examples::classifier` implements `TrainModel`, its data
//! `Dataset`. The program trains it once straight through, and once interrupted mid-epoch and
//! resumed from the checkpoint files alone; it prints the validation metrics against the
//! uniform baseline and exits non-zero unless the loss is below half the baseline and the
//! resumed run's weights equal the unbroken run's bit for bit.

use lsnn_examples::classifier::{points_from, Classifier, ClassifierConfig, Points};
use lsnn_train::{RunConfig, TrainConfig, TrainOptions, Trainer};

fn config(epochs: usize) -> RunConfig<ClassifierConfig> {
    RunConfig {
        model: ClassifierConfig {
            hidden: 32,
            steps: 8,
        },
        train: TrainConfig {
            batch_size: 16,
            learning_rate: 1e-2,
            warmup_steps: 4,
            num_epochs: epochs,
            ema_decay: 0.9,
            monitor: "val_accuracy".into(),
            monitor_mode: lsnn_train::config::MonitorMode::Max,
            keep_best: true,
            ..TrainConfig::default()
        },
    }
}

fn run(epochs: usize) -> lsnn_train::Result<bool> {
    let root = std::env::temp_dir().join(format!("lsnn-trainer-own-model-{}", std::process::id()));
    let (a, b) = (root.join("straight"), root.join("resumed"));
    let opts = |dir: &std::path::Path| TrainOptions {
        out_dir: dir.to_path_buf(),
        ..TrainOptions::default()
    };
    let data = || Points::new(3, 480, 96);

    let mut straight: Trainer<Classifier, Points> = Trainer::new(config(epochs), data(), opts(&a))?;
    let summary = straight.run(&mut |_| {})?;
    let eval = summary.last_eval.clone().expect("an epoch finished");
    let (name, baseline) = summary.baseline.clone().expect("the data has a baseline");
    println!(
        "straight: {} steps, val_loss {:.4} ({name} {baseline:.4}), val_accuracy {:.3}",
        summary.steps,
        eval.loss(),
        eval.get("val_accuracy").unwrap_or(f64::NAN)
    );

    // Interrupted after 37 batches (mid-epoch), then resumed from the files in `b` alone.
    let mut first: Trainer<Classifier, Points> = Trainer::new(
        config(epochs),
        data(),
        TrainOptions {
            max_batches: Some(37),
            ..opts(&b)
        },
    )?;
    first.run(&mut |_| {})?;
    drop(first);
    let mut resumed = Trainer::<Classifier, Points>::resume(&b, opts(&b), points_from)?;
    resumed.run(&mut |_| {})?;
    let same = straight
        .vars()
        .iter()
        .zip(resumed.vars())
        .all(|((_, x), (_, y))| {
            let bits = |v: &candle_core::Var| -> Vec<u32> {
                let t = v.as_tensor().flatten_all().and_then(|t| t.to_vec1::<f32>());
                t.map(|v| v.into_iter().map(f32::to_bits).collect())
                    .unwrap_or_default()
            };
            bits(x) == bits(y)
        });
    println!(
        "resumed after 37 batches: weights {} the unbroken run's",
        if same { "equal" } else { "DIFFER FROM" }
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(same && eval.loss() < 0.5 * baseline)
}

fn main() -> std::process::ExitCode {
    let epochs = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("EPOCHS is a number"))
        .unwrap_or(4);
    match run(epochs) {
        Ok(true) => {
            println!("ok: below half the baseline, and the resume is bit-exact");
            std::process::ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("FAILED");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
