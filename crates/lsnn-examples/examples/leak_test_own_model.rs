//! A leak test for a user's own training step, with the control that must fail.
//!
//! `cargo run -p lsnn-examples --example leak_test_own_model`
//!
//! The binary installs lsnn-memory's counting allocator (the runner refuses to measure
//! without it) and runs each case in a child process of itself, with one compute thread: the
//! case is one `Trainer::train_batch` of the spiking classifier per iteration; the control is
//! the same step plus the classic mistake — summing each batch's loss into a running total
//! without `detach`, which keeps every graph alive. Prints the table and exits non-zero unless
//! the case passes and the control is caught.

use lsnn_examples::classifier::{Classifier, ClassifierConfig, Points};
use lsnn_memory::leak::runner::{self, CaseError, Iteration, LeakCase, Suite};
use lsnn_memory::CountingAlloc;
use lsnn_train::{Dataset, RunConfig, TrainConfig, TrainOptions, Trainer};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The training step, and with `control` the running loss kept with its graph.
fn step(control: bool) -> Result<Iteration, CaseError> {
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
    let dev = candle_core::Device::Cpu;
    let batches = (0..30u32)
        .map(|b| data.train_batch(&(b * 16..(b + 1) * 16).collect::<Vec<_>>(), &dev))
        .collect::<lsnn_train::Result<Vec<_>>>()?;
    // The trainer's run directory, removed with the case.
    let out_dir = tempfile::Builder::new()
        .prefix("lsnn-leak-own-")
        .tempdir()?;
    let opts = TrainOptions {
        out_dir: out_dir.path().to_path_buf(),
        ..TrainOptions::default()
    };
    let mut trainer: Trainer<Classifier, Points> = Trainer::new(cfg, data, opts)?;
    let mut running: Option<candle_core::Tensor> = None;
    Ok(Box::new(move |i| {
        let _ = out_dir.path(); // the directory lives as long as the case
        let b = &batches[i % batches.len()];
        trainer.train_batch(b)?;
        if control {
            let (_, w) = trainer
                .vars()
                .iter()
                .find(|(n, _)| n == "fc.weight")
                .expect("fc");
            let term = b.x.matmul(&w.as_tensor().t()?)?.mean_all()?;
            running = Some(match running.take() {
                Some(r) => (r + term)?,
                None => term,
            });
        }
        Ok(())
    }))
}

fn cases() -> Vec<LeakCase> {
    vec![
        LeakCase::case("own-step", "the classifier's training step", || step(false)),
        LeakCase::control(
            "own-step/control-running-loss",
            "the same step, summing a loss with its graph across iterations",
            || step(true),
        ),
    ]
}

fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let cases = cases();
    // In a child: run the one case named on the command line and print its report.
    if let Some(name) = std::env::args().nth(1) {
        let case = cases
            .iter()
            .find(|c| c.name == name)
            .ok_or("no such case")?;
        println!("{}", runner::report_line(&runner::run_in_process(case)?));
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for case in &cases {
        let mut child = std::process::Command::new(std::env::current_exe()?);
        child.arg(&case.name);
        rows.push(runner::run_in_child(child, &case.name)?);
    }
    let suite = Suite { rows };
    println!("{}", suite.table());
    if suite.ok() {
        println!("ok: the case passes and the control is caught");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        eprintln!(
            "FAILED: {:?}",
            suite.failures().iter().map(|r| &r.name).collect::<Vec<_>>()
        );
        Ok(std::process::ExitCode::FAILURE)
    }
}
