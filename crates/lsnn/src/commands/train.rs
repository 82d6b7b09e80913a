//! `lsnn train`: a fresh run of any task from a config (lsnn's or the Python original's), the
//! defaults and `--set` overrides, or the resume of a checkpointed run.

use super::config::{user_config, UserConfig};
use crate::display::Display;
use crate::exit::{BadInput, INTERRUPTED, IO_FAILURE, SUCCESS};
use crate::output::{err, out};
use anyhow::Result;
use clap::Args;
use lsnn_train::data::builtin::builtin;
use lsnn_train::data::SequenceData;
use lsnn_train::lsnn_layers::{LanguageModel, ModelConfig, SequenceModel, Task};
use lsnn_train::lsnn_memory::{parse_size, rss};
use lsnn_train::record::dashboard::{Dashboard, DashboardOptions, DEFAULT_ADDR};
use lsnn_train::record::run::RunRecorder;
use lsnn_train::record::tensorboard::TensorBoardRecorder;
use lsnn_train::{ArithmeticTask, Dataset, TokenDataset, TrainModel, TrainOptions, Trainer};
use std::path::{Path, PathBuf};

/// Arguments of `lsnn train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The task: llm, regression (the original's robotics) or classification. Without it: a
    /// config's task_type, else the --data file's kind (text: llm; arrays: classification when
    /// y holds integer class ids, else regression), else the default run's classification.
    #[arg(long)]
    task: Option<String>,
    /// A config file: lsnn's own or one written by the Python original (design §5).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Set a config field, e.g. --set hidden_dim=64 (repeatable; after --config, by the same
    /// rules).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The data: a UTF-8 text file for llm, an .npz or .safetensors file of arrays for the
    /// other tasks (default: the task's built-in data).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Sequence tasks: shuffle the positions of every sequence (features and time spans; the
    /// targets stay): the control on which a model that needs order scores near its baseline.
    #[arg(long)]
    shuffle_time: bool,
    /// Epochs (overrides the config).
    #[arg(long)]
    epochs: Option<usize>,
    /// Where checkpoints go (default runs/default). A directory that holds a run is refused
    /// unless --overwrite replaces it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace the run already in --out (its checkpoints are removed once the new run's first
    /// one is saved).
    #[arg(long)]
    overwrite: bool,
    /// Continue the run in DIR (a run directory, or a checkpoint set inside one) exactly where
    /// it stopped; it keeps writing to its run directory.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Seed (overrides the config).
    #[arg(long)]
    seed: Option<u64>,
    /// Device: cpu, cuda or cuda:N (overrides the config's `device`).
    #[arg(long)]
    device: Option<String>,
    /// Mixed precision (sets the config's `mixed_precision`): on a CPU with AVX-512 BF16 the
    /// linears' matrix products take bf16 operands and sum in f32; elsewhere a notice and f32.
    #[arg(long)]
    mixed_precision: bool,
    /// Memory budget, e.g. 2GiB or 50%.
    #[arg(long, value_name = "SIZE")]
    memory_budget: Option<String>,
    /// Stop after this many batches in total, writing a checkpoint to resume from.
    #[arg(long, value_name = "N")]
    max_batches: Option<u64>,
    /// Skip the probe step that measures peak memory by stage before training (design §10.5).
    #[arg(long)]
    no_memory_probe: bool,
    /// Evaluate with the EMA weights.
    #[arg(long)]
    eval_ema: bool,
    /// Also write TensorBoard event files into DIR, one directory per run (losses, learning
    /// rate, validation metrics, memory; design §10.1). Give it again with --resume: the resumed
    /// run adds a file whose session-restart record drops the steps a crash left past the
    /// checkpoint.
    #[arg(long, value_name = "DIR")]
    tensorboard: Option<PathBuf>,
    /// Serve a live page of the run (loss, metrics, memory, firing rates) on ADDR while it
    /// trains (default 127.0.0.1:8050, loopback only; port 0 picks a free port). It shows the
    /// final state at the run's end and stops serving with the run (design §10.7).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = DEFAULT_ADDR)]
    dashboard: Option<String>,
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// `lsnn train`: the exit code on success or interruption (errors are the caller's to map).
pub fn train(a: TrainArgs) -> Result<u8> {
    let started = std::time::Instant::now();
    let out_dir = match (&a.resume, &a.out) {
        (Some(r), None) => lsnn_train::checkpoint::run_dir_of(r),
        (Some(_), Some(_)) => {
            return Err(bad(
                "--resume writes to the resumed run's own directory; drop --out",
            ))
        }
        (None, o) => o.clone().unwrap_or_else(crate::default_out),
    };
    let mut opts = TrainOptions {
        out_dir: out_dir.clone(),
        max_batches: a.max_batches,
        eval_with_ema: a.eval_ema,
        overwrite: a.overwrite,
        stop: Some(crate::signals::stop_flag()),
        probe_stages: !a.no_memory_probe,
        ..TrainOptions::default()
    };
    if let Some(b) = &a.memory_budget {
        opts.memory_budget = Some(parse_size(b).map_err(|e| bad(format!("--memory-budget: {e}")))?);
    }
    if a.max_batches == Some(0) {
        return Err(bad("--max-batches 0 trains nothing; expected at least 1"));
    }
    // Before anything is built: a bad path costs nothing.
    if let Some(dir) = &a.tensorboard {
        lsnn_train::record::tensorboard::prepare_dir(dir)?;
    }
    let dashboard = match &a.dashboard {
        Some(addr) => Some(start_dashboard(addr)?),
        None => None,
    };
    let sinks = Sinks {
        tensorboard: a.tensorboard.as_deref(),
        dashboard,
    };
    if let Some(dir) = &a.resume {
        if a.config.is_some()
            || a.data.is_some()
            || a.epochs.is_some()
            || a.seed.is_some()
            || a.device.is_some()
            || a.overwrite
            || a.task.is_some()
            || !a.sets.is_empty()
            || a.shuffle_time
            || a.mixed_precision
        {
            return Err(bad("--resume continues the saved run as it was configured; drop --config, --set, --task, --data, --shuffle-time, --epochs, --seed, --device, --mixed-precision and --overwrite"));
        }
        lsnn_train::checkpoint::resolve(dir)?;
        return match lsnn_train::inference::task_of(dir)? {
            Task::Llm => {
                let t: Trainer<LanguageModel, TokenDataset> =
                    Trainer::resume(dir, opts, lsnn_train::lm::token_data)?;
                drive(t, &out_dir, sinks, started)
            }
            _ => {
                let t: Trainer<SequenceModel, SequenceData> =
                    Trainer::resume(dir, opts, lsnn_train::task::sequence_data)?;
                drive(t, &out_dir, sinks, started)
            }
        };
    }
    let task = match (&a.task, &a.config) {
        (Some(t), _) => Some(t.clone()),
        // A config file says its task (task_type, "llm" when it is silent).
        (None, Some(_)) => None,
        (None, None)
            if a.sets
                .iter()
                .any(|s| s.trim_start().starts_with("task_type=")) =>
        {
            None
        }
        (None, None) => Some(match &a.data {
            Some(p) => task_of_data(p)?.name().to_string(),
            // The default run (design §9.3).
            None => DEFAULT_TASK.name().to_string(),
        }),
    };
    let UserConfig {
        config: mut cfg,
        explicit,
    } = user_config(a.config.as_deref(), &a.sets, task.as_deref())?;
    if let Some(e) = a.epochs {
        if e == 0 {
            return Err(bad("--epochs 0 trains nothing; expected at least 1"));
        }
        cfg.train.num_epochs = e;
    }
    if let Some(s) = a.seed {
        cfg.train.seed = s;
    }
    if let Some(d) = &a.device {
        cfg.train.device = d.clone();
    }
    if a.mixed_precision {
        cfg.train.mixed_precision = true;
    }
    match cfg.model.task()? {
        Task::Llm => {
            if a.shuffle_time {
                return Err(bad(
                    "--shuffle-time is the sequence tasks' control; the llm task has none",
                ));
            }
            let seq = cfg.model.sequence_length;
            let data = match &a.data {
                Some(p) => TokenDataset::from_text_file(p, seq)?,
                None => ArithmeticTask::new(cfg.train.seed).dataset(seq)?,
            };
            let t: Trainer<LanguageModel, TokenDataset> = Trainer::new(cfg, data, opts)?;
            drive(t, &out_dir, sinks, started)
        }
        task => {
            let classes = (task == Task::Classification && explicit.contains("output_dim"))
                .then_some(cfg.model.output_dim);
            let data = match &a.data {
                Some(p) => SequenceData::from_file(
                    p,
                    task,
                    cfg.train.seed,
                    a.shuffle_time,
                    classes,
                    cfg.train.spike_encoding,
                )?,
                None => builtin(
                    task,
                    cfg.train.seed,
                    a.shuffle_time,
                    cfg.train.spike_encoding,
                )?,
            };
            fit_to_data(&mut cfg.model, &data, &explicit);
            let t: Trainer<SequenceModel, SequenceData> = Trainer::new(cfg, data, opts)?;
            drive(t, &out_dir, sinks, started)
        }
    }
}

/// The task of `lsnn train` with no task, config or data: the built-in event-order
/// classification (design §9.3 says why it, not the language model, is the default run).
pub const DEFAULT_TASK: Task = Task::Classification;

/// The task a data file is for, when nothing else says: text is the language model's; arrays
/// are a classifier's when `y` holds integer class ids `[N]`, else a regression's.
fn task_of_data(path: &Path) -> Result<Task> {
    let bytes = lsnn_train::data::sequence::read_file(path)?;
    if lsnn_train::data::arrays::sniff(&bytes).is_none() {
        return Ok(Task::Llm);
    }
    let arrays = lsnn_train::data::arrays::read_arrays(&bytes).map_err(|e| {
        lsnn_train::TrainError::Data {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    })?;
    Ok(match arrays.get("y") {
        Some(y) if y.dtype.is_integer() && y.shape.len() == 1 => Task::Classification,
        _ => Task::Regression,
    })
}

/// A sequence task's widths and length from its data, where the user did not set them (a
/// width they set must agree: the trainer checks); the length, which a sequence model does not
/// depend on, follows the data with a note when the config said otherwise.
fn fit_to_data(
    model: &mut ModelConfig,
    data: &SequenceData,
    explicit: &std::collections::BTreeSet<String>,
) {
    if !explicit.contains("input_dim") {
        model.input_dim = data.features();
    }
    if !explicit.contains("output_dim") {
        model.output_dim = data.outputs();
    }
    let l = data.positions();
    if explicit.contains("sequence_length") && model.sequence_length != l {
        err(&format!(
            "note: sequence_length {} in the config; the data's sequences are {l} positions long, so {l} is recorded",
            model.sequence_length
        ));
    }
    model.sequence_length = l;
    model.max_position_embeddings = model.max_position_embeddings.max(l);
}

/// Where a run's events go besides the display and the run's record.
struct Sinks<'a> {
    /// `--tensorboard DIR`.
    tensorboard: Option<&'a Path>,
    /// `--dashboard`, already serving.
    dashboard: Option<Dashboard>,
}

/// Binds the dashboard's address before anything is built, so a taken port costs nothing.
fn start_dashboard(addr: &str) -> Result<Dashboard> {
    let board =
        Dashboard::start(addr, DashboardOptions::default()).map_err(|e| bad(e.to_string()))?;
    if !board.addr().ip().is_loopback() {
        err(&format!(
            "note: the dashboard on {} can be reached from other machines; it has no password",
            board.addr()
        ));
    }
    err(&format!("dashboard: {}", board.url()));
    Ok(board)
}

/// Runs a trainer to its end and prints the summary.
fn drive<M: TrainModel, D: Dataset<M>>(
    mut trainer: Trainer<M, D>,
    out_dir: &Path,
    sinks: Sinks<'_>,
    started: std::time::Instant,
) -> Result<u8> {
    let Sinks {
        tensorboard,
        mut dashboard,
    } = sinks;
    let mut display = Display::new();
    let nothing_to_train = {
        let s = trainer.state();
        s.finished || s.epoch >= trainer.config().train.num_epochs
    };
    // A finished run fails below without training: no record or event file for it.
    let mut recorder = match tensorboard {
        Some(dir) if !nothing_to_train => Some(TensorBoardRecorder::create(dir)?),
        _ => None,
    };
    let mut record = match nothing_to_train {
        false => Some(RunRecorder::create(out_dir)?),
        true => None,
    };
    let result = trainer.run(&mut |e| {
        display.on_event(e);
        if let Some(board) = dashboard.as_mut() {
            board.on_event(e);
        }
        // A record that cannot be written (a full disk) must not stop the training, whose
        // checkpoints are what matters: say so once and write no more of it.
        if let Some(Err(failure)) = recorder.as_mut().map(|r| r.on_event(e)) {
            err(&format!(
                "warning: {failure}; no more TensorBoard records are written this run"
            ));
            recorder = None;
        }
        if let Some(Err(failure)) = record.as_mut().map(|r| r.on_event(e)) {
            err(&format!(
                "warning: {failure}; no more of the run's record is written this run"
            ));
            record = None;
        }
    });
    display.finish();
    // The records are finished on an error too: what the run did until then is written out.
    if let Some(Err(failure)) = recorder.map(TensorBoardRecorder::finish) {
        err(&format!(
            "warning: {failure}; the TensorBoard file may lack its last records"
        ));
    }
    if let Some(Err(failure)) = record.map(RunRecorder::finish) {
        err(&format!(
            "warning: {failure}; the run's record may lack its last entries"
        ));
    }
    if let Some(board) = dashboard {
        match &result {
            Ok(s) if s.nothing_to_train => {
                board.finish(Err("nothing to train: the run had finished"))
            }
            Ok(s) => board.finish(Ok(s)),
            Err(e) => board.finish(Err(&format!("{e:#}"))),
        }
    }
    let summary = result?;
    if summary.nothing_to_train {
        return Err(bad(format!(
            "nothing to train: the run in {} has finished all its epochs",
            out_dir.display()
        )));
    }
    let hwm = rss::peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0);
    if summary.stop_requested {
        let why = if crate::output::broken() {
            "standard output closed"
        } else {
            "interrupted"
        };
        err(&format!(
            "{why}: checkpoint saved after {} batches ({} optimizer steps); resume with --resume {}",
            summary.batches,
            summary.steps,
            out_dir.display()
        ));
        return Ok(INTERRUPTED);
    }
    let sequence = summary
        .baselines
        .iter()
        .any(|(k, _)| k != "baseline_bigram_loss");
    let mut lines = Vec::new();
    if summary.interrupted {
        lines.push(format!(
            "stopped after {} batches ({} optimizer steps); resume with --resume {}",
            summary.batches,
            summary.steps,
            out_dir.display()
        ));
    }
    if let Some(e) = &summary.last_eval {
        let vs = match &summary.baseline {
            Some((name, b)) if !sequence => format!(
                " vs {name} {b:.4} ({:.1}% below)",
                100.0 * (1.0 - e.loss() / b)
            ),
            _ => String::new(),
        };
        lines.push(format!("done: {}{vs}", super::metrics_line(e)));
        if sequence {
            lines.push(format!(
                "baselines: {}",
                super::baselines_line(&summary.baselines)
            ));
        }
    }
    let unit = if sequence { "positions" } else { "tokens" };
    lines.push(format!(
        "{} steps, {} skipped, {:.0} {unit}/s, peak RSS {hwm:.0} MiB, {:.0} s; checkpoint in {}",
        summary.steps,
        summary.skipped,
        summary.tokens_per_s,
        started.elapsed().as_secs_f64(),
        out_dir.display()
    ));
    for l in lines {
        if !out(&l) {
            // The run is complete and saved; only its summary could not be shown.
            err(&format!(
                "standard output closed; the run finished and is saved in {}",
                out_dir.display()
            ));
            // Not "interrupted": there is nothing to resume. An output failure.
            return Ok(IO_FAILURE);
        }
    }
    Ok(SUCCESS)
}
