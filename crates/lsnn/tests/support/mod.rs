//! What the command-line tests share: running `lsnn` in a fresh process, a scratch directory,
//! a tiny config and a data file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The spiking layers of the tiny config's model and of the default run's, in the model's
/// order (design §10.3).
pub const LAYERS: [&str; 7] = [
    "blocks.0.encoder.lif1",
    "blocks.0.encoder.lif2",
    "blocks.1.encoder.lif1",
    "blocks.1.encoder.lif2",
    "attns.0.q",
    "attns.0.k",
    "attns.0.v",
];
use std::process::{Command, Output};

/// The `lsnn` binary under test: cargo's, or `LSNN_BIN` where a test binary runs away from the
/// tree that built it (scripts/device-check.sh carries both to a GPU machine).
pub fn lsnn_bin() -> PathBuf {
    std::env::var_os("LSNN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lsnn")))
}

pub fn lsnn(args: &[&str], cwd: &Path) -> Output {
    Command::new(lsnn_bin())
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("lsnn runs")
}

pub fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "lsnn failed:\nstdout:\n{out}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

pub fn err(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected a failure, got:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A test's scratch directory, `lsnn-cli-{name}-{pid}` in the temporary directory: made empty,
/// removed when the test passes, kept (and named in the panic output) when it fails.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("lsnn-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

pub const CONFIG: &str = r#"{
  "task_type": "llm", "vocab_size": 256, "input_dim": 16, "embedding_dim": 16, "hidden_dim": 16,
  "output_dim": 256, "spiking_units": 8, "liquid_units": 8, "num_layers": 2,
  "num_attention_heads": 2, "num_spike_steps": 3, "attention_spike_steps": 3,
  "sequence_length": 16, "max_position_embeddings": 24, "batch_size": 6, "num_epochs": 2,
  "backbone_units": 16, "backbone_layers": 1, "spike_threshold": 0.5, "seed": 5,
  "gradient_accumulation_steps": 3, "warmup_steps": 4, "learning_rate": 0.003,
  "initializer_range": 0.5, "cleanup_every": 4
}"#;

pub fn setup(dir: &Path) {
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
    let text: String = (0..120)
        .map(|i| format!("line {i}: the quick brown fox {}\n", i * 7 % 13))
        .collect();
    std::fs::write(dir.join("data.txt"), text).unwrap();
}

/// The arguments of `lsnn train` of the tiny config on `data.txt`, writing to `out`, with
/// `extra` after.
pub fn tiny_train_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--config",
        "config.json",
        "--data",
        "data.txt",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// `lsnn train` of the tiny config on `data.txt` in `dir`, writing to `out`, with `extra`
/// arguments after; it must succeed. Its stdout.
pub fn train_tiny(dir: &Path, out: &str, extra: &[&str]) -> String {
    ok(&lsnn(&tiny_train_args(out, extra), dir))
}

/// The `config.json` of the set `run`'s `CURRENT` names.
pub fn saved_config(run: &Path) -> serde_json::Value {
    let name = std::fs::read_to_string(run.join("CURRENT")).unwrap();
    serde_json::from_slice(&std::fs::read(run.join(name.trim()).join("config.json")).unwrap())
        .unwrap()
}

/// The run's "done: val loss X … vs bigram baseline (nats/token) B (P% below)" line says below.
pub fn assert_below_bigram(out: &str) {
    let done = out
        .lines()
        .find(|l| l.starts_with("done:"))
        .expect("a done line");
    let pct: f64 = done
        .rsplit('(')
        .next()
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no percentage in {done:?}"));
    assert!(done.contains("below") && pct > 0.0, "{done}");
}

/// The tensor `key` of the model the set `run`'s `CURRENT` names: its shape and its values (f32).
pub fn saved_tensor(run: &Path, key: &str) -> (Vec<usize>, Vec<f32>) {
    let st = saved_model(run);
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let t = st.tensor(key).unwrap_or_else(|e| panic!("{key}: {e}"));
    let values = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), values)
}

/// The bytes of the `model.safetensors` of the set `run`'s `CURRENT` names.
pub fn saved_model(run: &Path) -> Vec<u8> {
    let name = std::fs::read_to_string(run.join("CURRENT")).unwrap();
    std::fs::read(run.join(name.trim()).join("model.safetensors")).unwrap()
}

/// The exit code of a finished `lsnn` (−1 when a signal ended it).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// The set `run`'s `CURRENT` names.
pub fn current_set(run: &Path) -> PathBuf {
    run.join(std::fs::read_to_string(run.join("CURRENT")).unwrap().trim())
}

pub fn current_files(run: &Path) -> Vec<(String, Vec<u8>)> {
    let name = std::fs::read_to_string(run.join("CURRENT")).unwrap();
    let dir = run.join(name.trim());
    [
        "model.safetensors",
        "ema.safetensors",
        "optimizer.safetensors",
        "metrics.csv",
        "trainer_state.json",
        "config.json",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
    .collect()
}

/// Copies the directory tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A small trunk for the sequence tasks' command-line tests, so that the debug-profile binary
/// trains in seconds.
pub const SMALL: &[&str] = &[
    "--set",
    "hidden_dim=32",
    "--set",
    "spiking_units=16",
    "--set",
    "liquid_units=16",
    "--set",
    "backbone_units=32",
    "--set",
    "num_attention_heads=2",
    "--set",
    "warmup_steps=20",
];

/// `lsnn eval --checkpoint RUN --json` in `dir`, parsed.
pub fn eval_json(dir: &Path, run: &str) -> serde_json::Value {
    let out = ok(&lsnn(&["eval", "--checkpoint", run, "--json"], dir));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The number `k` of a JSON object.
pub fn num(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}
