//! `cargo xtask crash-trials N [--seed S]`: kills a real `lsnn train` process with SIGKILL at a
//! random moment, N times over, and checks after every kill that the run is still whole
//! (design §4.4): the checkpoint `CURRENT` names loads in `lsnn eval`, no progress already
//! saved is lost, and `lsnn train --resume` continues it (clearing whatever the killed save
//! left behind) and saves again.
//!
//! The trials share one run directory, so a kill lands on every phase of a run's life: start-up
//! (lock, leftovers), training, and saves (set written into `.partial-…`, renamed, `CURRENT`
//! replaced, old sets removed). The tiny model saves at every epoch, a few times a second; half
//! the kills come at a random moment, half a random few milliseconds into a save.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The tiny run every trial continues: an epoch of a few batches, so saves come often.
const CONFIG: &str = r#"{
  "task_type": "llm", "vocab_size": 256, "input_dim": 16, "embedding_dim": 16, "hidden_dim": 16,
  "output_dim": 256, "spiking_units": 8, "liquid_units": 8, "num_layers": 2,
  "num_attention_heads": 2, "num_spike_steps": 3, "attention_spike_steps": 3,
  "sequence_length": 16, "max_position_embeddings": 24, "batch_size": 6, "num_epochs": 1000000,
  "backbone_units": 16, "backbone_layers": 1, "spike_threshold": 0.5, "seed": 5,
  "gradient_accumulation_steps": 3, "warmup_steps": 4, "learning_rate": 0.003,
  "initializer_range": 0.5, "cleanup_every": 4, "keep_best": true
}"#;

/// The longest a trial lets the trainer run before the kill.
const MAX_KILL_AFTER_MS: u64 = 1500;

/// The longest a save-aimed trial waits after the save began (a save of the tiny run takes a
/// few milliseconds: set files, manifest, rename, `CURRENT`, retention).
const MAX_INTO_SAVE_US: u64 = 8000;

/// A small deterministic generator (SplitMix64): the kill moments of a seed repeat.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// What the trials saw, for the summary line.
#[derive(Default)]
struct Tally {
    before_first_save: usize,
    left_debris: usize,
    cleared_by_resume: usize,
    loaded: usize,
}

struct Run {
    exe: PathBuf,
    dir: PathBuf,
}

impl Run {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args)
            .current_dir(&self.dir)
            .env("RAYON_NUM_THREADS", "1")
            .env("CANDLE_NUM_THREADS", "1");
        c
    }

    fn output(&self, args: &[&str]) -> Result<Output> {
        self.command(args)
            .output()
            .with_context(|| format!("running lsnn {args:?}"))
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// The set `CURRENT` names, if the run has one.
    fn current(&self) -> Option<PathBuf> {
        let name = std::fs::read_to_string(self.run_dir().join("CURRENT")).ok()?;
        Some(self.run_dir().join(name.trim()))
    }

    /// `(step, batches_seen)` of the current set.
    fn progress(&self) -> Result<Option<(u64, u64)>> {
        let Some(set) = self.current() else {
            return Ok(None);
        };
        let path = set.join("trainer_state.json");
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )?;
        let field = |k: &str| {
            state[k]
                .as_u64()
                .with_context(|| format!("{} has no {k}", path.display()))
        };
        Ok(Some((field("step")?, field("batches_seen")?)))
    }

    /// Whether a save is under way (a partial set exists).
    fn saving(&self) -> bool {
        std::fs::read_dir(self.run_dir()).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(".partial-"))
        })
    }

    /// What a crashed save leaves in the run directory.
    fn debris(&self) -> Vec<String> {
        std::fs::read_dir(self.run_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".partial-") || n.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn failed(what: &str, o: &Output) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// When a trial kills the trainer.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// This long after it started.
    After(Duration),
    /// This long after a save's partial set appeared (the save is under way).
    IntoASave(Duration),
}

/// One trial: start (or continue) the run, kill it at `moment`, check the run.
fn trial(run: &Run, moment: Moment, tally: &mut Tally) -> Result<()> {
    let before = run.progress()?;
    let args: Vec<&str> = if before.is_some() {
        vec!["train", "--resume", "run"]
    } else {
        // A run killed before its first save left no run (at most a lock and a partial set),
        // so a fresh start is allowed there.
        vec![
            "train",
            "--config",
            "config.json",
            "--data",
            "data.txt",
            "--out",
            "run",
        ]
    };
    let mut child = run
        .command(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting lsnn train")?;
    let started = Instant::now();
    let mut saving_since = None;
    loop {
        if let Some(st) = child.try_wait()? {
            bail!("lsnn {args:?} ended on its own ({st}) before the kill");
        }
        match moment {
            Moment::After(t) if started.elapsed() >= t => break,
            Moment::IntoASave(t) => {
                if saving_since.is_none() && run.saving() {
                    saving_since = Some(Instant::now());
                }
                if saving_since.is_some_and(|s| s.elapsed() >= t) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    bail!("no save started within a minute");
                }
            }
            Moment::After(_) => {}
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().context("SIGKILL")?;
    child.wait()?;

    let after = run.progress()?;
    let Some((step, seen)) = after else {
        if before.is_some() {
            bail!("the kill lost the run's CURRENT checkpoint");
        }
        tally.before_first_save += 1;
        return Ok(());
    };
    if let Some((old_step, _)) = before {
        if step < old_step {
            bail!("the kill lost progress: CURRENT went from step {old_step} back to {step}");
        }
    }
    let debris = run.debris();
    if !debris.is_empty() {
        tally.left_debris += 1;
    }
    let o = run.output(&["eval", "--checkpoint", "run"])?;
    if !o.status.success() {
        return Err(failed("eval of the killed run", &o));
    }
    tally.loaded += 1;
    let more = (seen + 2).to_string();
    let o = run.output(&["train", "--resume", "run", "--max-batches", &more])?;
    if !o.status.success() {
        return Err(failed("resume of the killed run", &o));
    }
    if !debris.is_empty() && String::from_utf8_lossy(&o.stderr).contains("interrupted save") {
        tally.cleared_by_resume += 1;
    }
    let left = run.debris();
    if !left.is_empty() {
        bail!("the resume left {left:?} in the run directory");
    }
    match run.progress()? {
        Some((_, s)) if s == seen + 2 => Ok(()),
        other => bail!(
            "the resume from {seen} batches saved {other:?}, expected {}",
            seen + 2
        ),
    }
}

/// `cargo xtask crash-trials N [--seed S]`.
pub fn crash_trials(root: &Path, cargo: Command, args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask crash-trials N [--seed S]";
    let n: usize = args
        .first()
        .context(usage)?
        .parse()
        .with_context(|| format!("N: {usage}"))?;
    let seed: u64 = match args.iter().position(|a| a == "--seed") {
        Some(i) => args
            .get(i + 1)
            .context(usage)?
            .parse()
            .with_context(|| format!("--seed: {usage}"))?,
        None => 1,
    };
    let mut build = cargo;
    build
        .current_dir(root)
        .args(["build", "--release", "-p", "lsnn"]);
    crate::run(build)?;

    let dir = root.join("target/crash-trials");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("config.json"), CONFIG)?;
    let text: String = (0..120)
        .map(|i| format!("line {i}: the quick brown fox {}\n", i * 7 % 13))
        .collect();
    std::fs::write(dir.join("data.txt"), text)?;
    let run = Run {
        exe: root.join("target/release/lsnn"),
        dir,
    };

    let mut rng = SplitMix(seed);
    let mut tally = Tally::default();
    for i in 0..n {
        // Half the kills at any moment of a run's life, half aimed into a save.
        let moment = if i % 2 == 0 {
            Moment::After(Duration::from_millis(rng.next() % MAX_KILL_AFTER_MS))
        } else {
            Moment::IntoASave(Duration::from_micros(rng.next() % MAX_INTO_SAVE_US))
        };
        trial(&run, moment, &mut tally)
            .with_context(|| format!("trial {} of {n} (seed {seed}, killed {moment:?})", i + 1))?;
    }
    let (step, _) = run.progress()?.unwrap_or_default();
    println!(
        "crash-trials: {n} kills (seed {seed}): {} before the first save; {} left a partial save, \
         {} of them cleared and said so by the resume; the run loaded and resumed after all {} \
         others; final step {step}",
        tally.before_first_save, tally.left_debris, tally.cleared_by_resume, tally.loaded
    );
    Ok(())
}
