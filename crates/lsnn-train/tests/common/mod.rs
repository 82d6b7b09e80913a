//! Shared helpers for the lsnn-train integration tests: a tiny model config, small data sets,
//! scratch directories and tensor comparisons.
#![allow(dead_code)]

use candle_core::{DType, Tensor};
use lsnn_train::lsnn_layers::{LanguageModel, ModelConfig};
use lsnn_train::{
    DataSource, Dataset, RunConfig, TokenDataset, TrainConfig, TrainModel, TrainOptions, Trainer,
};
use std::path::{Path, PathBuf};

/// A model small enough that a training batch takes milliseconds in the dev profile.
pub fn tiny_model() -> ModelConfig {
    ModelConfig {
        input_dim: 16,
        embedding_dim: 16,
        hidden_dim: 16,
        output_dim: 256,
        vocab_size: 256,
        liquid_units: 8,
        spiking_units: 8,
        num_layers: 2,
        num_spike_steps: 2,
        num_attention_heads: 2,
        attention_spike_steps: 2,
        sequence_length: 16,
        max_position_embeddings: 16,
        backbone_units: 16,
        backbone_layers: 1,
        dropout: 0.05,
        attention_dropout: 0.0,
        embedding_dropout: 0.05,
        label_smoothing: 0.0,
        ..ModelConfig::default()
    }
}

/// Training settings for [`tiny_model`].
pub fn tiny_train() -> TrainConfig {
    TrainConfig {
        batch_size: 4,
        learning_rate: 1e-2,
        warmup_steps: 2,
        num_epochs: 1,
        ema_decay: 0.9,
        cleanup_every: 3,
        ..TrainConfig::default()
    }
}

/// The tiny model with its training settings.
pub fn tiny_config() -> RunConfig<ModelConfig> {
    RunConfig {
        model: tiny_model(),
        train: tiny_train(),
    }
}

/// The trainer of the language model on token data.
pub type LmTrainer = Trainer<LanguageModel, TokenDataset>;

/// A small repetitive English text.
pub fn repetitive_text(bytes: usize) -> String {
    let unit = "the cat sat on the mat. the dog sat on the log. ";
    unit.chars().cycle().take(bytes).collect()
}

/// An in-memory data set of repetitive text: `train_windows` training windows of length 16 and
/// a few validation windows.
pub fn text_dataset(train_windows: usize) -> TokenDataset {
    let seq = 16;
    let train: Vec<u32> = repetitive_text(train_windows * seq + 1)
        .bytes()
        .map(u32::from)
        .collect();
    let val: Vec<u32> = repetitive_text(3 * seq + 1 + 7)
        .bytes()
        .skip(7)
        .map(u32::from)
        .collect();
    TokenDataset::new(
        train,
        val,
        seq,
        DataSource::TextFile {
            path: PathBuf::from("<in-memory test text>"),
            sha256: None,
        },
    )
    .expect("valid data set")
}

/// A fresh, empty scratch directory unique to this test binary and `name` (a rerun replaces it).
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("lsnn-train-tests")
        .join(env!("CARGO_CRATE_NAME"))
        .join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("clear scratch dir");
    }
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Writes a text file of repetitive text into `dir` and returns its path.
pub fn write_text_file(dir: &Path, name: &str, bytes: usize) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, repetitive_text(bytes)).expect("write text file");
    p
}

/// Options writing to `out_dir`, no accuracy scoring, a metrics row every step.
pub fn options(out_dir: &Path) -> TrainOptions {
    TrainOptions {
        out_dir: out_dir.to_path_buf(),
        log_every: 1,
        extra_metric_budget: 0,
        ..TrainOptions::default()
    }
}

/// Training batch `b` in example order 0, 1, 2, ….
pub fn batch<M: TrainModel, D: Dataset<M>>(t: &Trainer<M, D>, b: usize) -> M::Batch {
    let bsz = t.config().train.batch_size as u32;
    let idx: Vec<u32> = (b as u32 * bsz..(b as u32 + 1) * bsz).collect();
    t.data()
        .train_batch(&idx, &candle_core::Device::Cpu)
        .expect("batch")
}

/// The bits of a tensor's values.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|x| x.to_dtype(DType::F32))
        .and_then(|x| x.to_vec1::<f32>())
        .expect("f32 values")
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// Every variable's name and value bits; compares bit for bit and prints compactly.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot(pub Vec<(String, Vec<u32>)>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // FNV-1a of every value's bits per variable: enough to see which ones differ.
        let hashes: Vec<String> = self
            .0
            .iter()
            .map(|(n, b)| {
                let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
                    (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01B3)
                });
                format!("{n}:{:08x}", h as u32)
            })
            .collect();
        write!(f, "Snapshot[{}]", hashes.join(" "))
    }
}

/// The trainer's variables, bit for bit.
pub fn snapshot<M: TrainModel, D: Dataset<M>>(t: &Trainer<M, D>) -> Snapshot {
    Snapshot(
        t.vars()
            .iter()
            .map(|(n, v)| (n.clone(), bits(v.as_tensor())))
            .collect(),
    )
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

// ---- runs that checkpoint and resume ----

/// A run on a text file (resume rebuilds the data from the file): 22 training windows = 5
/// batches of 4 per epoch, 2 epochs, accumulation 3 → 10 batches, 3 optimizer steps.
pub fn resume_config() -> RunConfig<ModelConfig> {
    RunConfig {
        model: tiny_model(),
        train: TrainConfig {
            num_epochs: 2,
            gradient_accumulation_steps: 3,
            ..tiny_train()
        },
    }
}

/// `Trainer::resume` of the LM on its recorded token data.
pub fn resume(dir: &Path, opts: TrainOptions) -> lsnn_train::Result<LmTrainer> {
    LmTrainer::resume(dir, opts, lsnn_train::lm::token_data)
}

/// The 400-byte text file written into `dir`, as 16-token windows (five batches of 4).
pub fn text_data(dir: &Path) -> TokenDataset {
    let path = write_text_file(dir, "data.txt", 400);
    let data = TokenDataset::from_text_file(&path, 16).unwrap();
    assert_eq!(data.train_windows() / 4, 5, "five batches per epoch");
    data
}

/// Every file of the set `CURRENT` names, by name.
pub fn read_set(run_dir: &Path) -> std::collections::BTreeMap<&'static str, Vec<u8>> {
    let dir = lsnn_train::checkpoint::resolve(run_dir).unwrap();
    [
        lsnn_train::checkpoint::MODEL_FILE,
        lsnn_train::checkpoint::EMA_FILE,
        lsnn_train::checkpoint::OPTIMIZER_FILE,
        lsnn_train::checkpoint::CONFIG_FILE,
        lsnn_train::checkpoint::STATE_FILE,
        lsnn_train::checkpoint::METRICS_FILE,
    ]
    .into_iter()
    .map(|f| (f, std::fs::read(dir.join(f)).unwrap()))
    .collect()
}
