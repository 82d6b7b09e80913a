//! `lsnn`: train, evaluate, generate with, predict with and benchmark hybrid liquid–spiking
//! networks: language models, sequence regression and sequence classification.
//!
//! ```text
//! lsnn train    [--task llm|regression|classification] [--config FILE.json] [--set KEY=VALUE]...
//!               [--data FILE] [--shuffle-time] [--epochs N] [--out DIR] [--resume DIR]
//!               [--seed N] [--device DEV] [--memory-budget SIZE] [--max-batches N]
//!               [--tensorboard DIR] [--dashboard [ADDR]] [--no-memory-probe]
//! lsnn generate --checkpoint DIR --prompt TEXT [--max-tokens N] [--temperature T] [--seed N]
//! lsnn eval     --checkpoint DIR [--data FILE] [--json] [--dump-logits FILE.safetensors]
//! lsnn predict  --checkpoint DIR --data FILE --out FILE.npz [--stream] [--batch N]
//! lsnn bench    --workload lm-small|lm-medium [--json] [--steps N] [--full]
//! lsnn report   RUN_DIR [--out DIR]
//! ```
//!
//! Exit codes ([`exit`]): 0 success, 1 failure, 2 bad input, 3 interrupted with a checkpoint
//! saved, 4 I/O failure (or the run directory in use); 128 + N after a second signal N.

mod bench;
mod commands;
mod display;
mod exit;
mod output;
mod report;
mod signals;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[global_allocator]
static ALLOC: lsnn_train::lsnn_memory::CountingAlloc = lsnn_train::lsnn_memory::CountingAlloc;

/// Hybrid liquid–spiking neural networks, without memory leaks.
#[derive(Debug, Parser)]
#[command(name = "lsnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model (defaults: design §9.3's lm-small on the built-in arithmetic task; --task
    /// regression or classification for the sequence tasks).
    Train(commands::TrainArgs),
    /// Generate text from a checkpoint, one token at a time with the streaming state.
    Generate(commands::GenerateArgs),
    /// Evaluate a checkpoint: its task's metrics and trivial baselines.
    Eval(commands::EvalArgs),
    /// Predict with a regression or classification checkpoint, batched or streamed.
    Predict(commands::PredictArgs),
    /// Measure training and inference throughput on a design §9.1 workload.
    Bench(bench::BenchArgs),
    /// Write an HTML report of a run, with SVG charts, from its record.
    Report(report::ReportArgs),
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LSNN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    // Threading policy (docs/performance.md): a batch's shards run on rayon's threads and the
    // kernels inside a shard on its thread alone; candle's spinning elementwise pool gets one
    // thread unless the user sets CANDLE_NUM_THREADS. First, before any tensor exists (the
    // logger above is set up first so that a "too late" warning would be seen).
    lsnn_train::lsnn_layers::init();
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Train(a) => commands::train(a),
        Command::Generate(a) => commands::generate(a).map(|()| exit::SUCCESS),
        Command::Eval(a) => commands::eval(a).map(|()| exit::SUCCESS),
        Command::Predict(a) => commands::predict(a).map(|()| exit::SUCCESS),
        Command::Bench(a) => bench::run(a).map(|()| exit::SUCCESS),
        Command::Report(a) => report::report(a).map(|()| exit::SUCCESS),
    };
    match res {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            output::err(&format!("error: {e:#}"));
            std::process::ExitCode::from(exit::code_of(&e))
        }
    }
}

/// Default output directory of `lsnn train`.
pub fn default_out() -> PathBuf {
    PathBuf::from("runs/default")
}
