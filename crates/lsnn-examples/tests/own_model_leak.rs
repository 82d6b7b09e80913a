//! A user's leak test for their own model's training step, through lsnn-memory's runner: the
//! case (one `Trainer::train_batch` of the spiking classifier per iteration) passes, and its
//! control — the same step keeping each batch's loss with its graph in a running sum, the
//! classic mistake — is caught. Each case runs in a child process of this test binary, which
//! installs the counting allocator.

use lsnn_examples::classifier::{Classifier, ClassifierConfig, Points};
use lsnn_memory::leak::runner::{check_in_children, Iteration, LeakCase};
use lsnn_memory::CountingAlloc;
use lsnn_train::{Dataset, RunConfig, TrainConfig, TrainOptions, Trainer};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn step(control: bool) -> Result<Iteration, lsnn_memory::leak::runner::CaseError> {
    let dir = tempfile::Builder::new()
        .prefix("lsnn-own-model-leak-")
        .tempdir()?;
    let cfg = RunConfig {
        model: ClassifierConfig {
            hidden: 32,
            steps: 8,
        },
        train: TrainConfig {
            batch_size: 16,
            num_epochs: 1_000,
            ..TrainConfig::default()
        },
    };
    let data = Points::new(3, 480, 96);
    let batches: Vec<_> = (0..30u32)
        .map(|b| {
            data.train_batch(
                &(b * 16..(b + 1) * 16).collect::<Vec<_>>(),
                &candle_core::Device::Cpu,
            )
        })
        .collect::<lsnn_train::Result<_>>()?;
    let opts = TrainOptions {
        out_dir: dir.path().to_path_buf(),
        ..TrainOptions::default()
    };
    let mut t: Trainer<Classifier, Points> = Trainer::new(cfg, data, opts)?;
    let mut running: Option<candle_core::Tensor> = None;
    Ok(Box::new(move |i| {
        let _ = dir.path(); // the directory lives as long as the case
        let b = &batches[i % batches.len()];
        t.train_batch(b)?;
        if control {
            // The loss of this batch, kept with its graph in a running sum.
            let (_, w) = t
                .vars()
                .iter()
                .find(|(n, _)| n == "fc.weight")
                .expect("fc.weight");
            let logits = b.x.matmul(&w.as_tensor().t()?)?;
            let term = logits.mean_all()?;
            running = Some(match running.take() {
                Some(r) => (r + term)?,
                None => term,
            });
        }
        Ok(())
    }))
}

#[test]
fn own_model_step_leaks_nothing() {
    let cases = vec![
        LeakCase::case("own-step", "the classifier's training step", || step(false)),
        LeakCase::control(
            "own-step/control-running-loss",
            "the same step, summing a loss with its graph across iterations",
            || step(true),
        ),
    ];
    let suite = check_in_children("own_model_step_leaks_nothing", &cases).unwrap();
    println!("{}", suite.table());
    assert_eq!(suite.rows.len(), 2);
    assert!(suite.ok(), "{}", suite.table());
    assert!(suite.rows[1]
        .reasons
        .iter()
        .any(|r| r.contains("live bytes")));
}
