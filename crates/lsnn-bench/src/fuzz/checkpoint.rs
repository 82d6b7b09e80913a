//! The checkpoint target: a real set, written once by a real training run of the tiny model,
//! with one of its files replaced or edited per input, loaded the way `eval`, `generate` and
//! `train --resume` load it (manifest, every file, every key and shape, the trainer state, the
//! recorded data source). Half the inputs also rewrite the manifest to match the changed file,
//! so that the readers behind the hash check (safetensors, JSON, CSV) see the bytes too.

use super::Outcome;
use lsnn_train::checkpoint::{
    Manifest, CONFIG_FILE, EMA_FILE, MANIFEST_FILE, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE,
    STATE_FILE,
};
use lsnn_train::lsnn_layers::LanguageModel;
use lsnn_train::{TokenDataset, TrainOptions, Trainer, TrainerState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The files of a set, in the order an input's first byte picks them.
const FILES: [&str; 7] = [
    MODEL_FILE,
    EMA_FILE,
    OPTIMIZER_FILE,
    CONFIG_FILE,
    STATE_FILE,
    METRICS_FILE,
    MANIFEST_FILE,
];

/// A run directory holding one valid set, and that set's files as written.
#[derive(Debug)]
pub struct CheckpointHarness {
    root: PathBuf,
    run: PathBuf,
    set: PathBuf,
    originals: Vec<Vec<u8>>,
}

impl CheckpointHarness {
    /// Trains the tiny model for two batches into a fresh directory under `scratch` and keeps
    /// the set it saved.
    pub fn new(scratch: &Path) -> anyhow::Result<Self> {
        // One directory per harness: tests build several in one process, in parallel.
        static HARNESSES: AtomicUsize = AtomicUsize::new(0);
        let root = scratch.join(format!(
            "lsnn-fuzz-checkpoint-{}-{}",
            std::process::id(),
            HARNESSES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        let data_path = root.join("data.txt");
        let text: String = (0..60)
            .map(|i| format!("{i:03} fish swim {}\n", i % 7))
            .collect();
        std::fs::write(&data_path, &text)?;
        // Smaller than the leak cases' tiny model: every input hashes and parses the whole set.
        let mut cfg = crate::cases::tiny_config();
        cfg.model.embedding_dim = 8;
        cfg.model.input_dim = 8;
        cfg.model.hidden_dim = 8;
        cfg.model.spiking_units = 4;
        cfg.model.liquid_units = 4;
        cfg.model.backbone_units = 8;
        cfg.model.num_layers = 1;
        cfg.model.sequence_length = 8;
        cfg.model.max_position_embeddings = 8;
        let data = TokenDataset::from_text_file(&data_path, cfg.model.sequence_length)?;
        let run = root.join("run");
        let opts = TrainOptions {
            out_dir: run.clone(),
            max_batches: Some(2),
            log_every: 1_000_000,
            ..TrainOptions::default()
        };
        let mut trainer: Trainer<LanguageModel, TokenDataset> = Trainer::new(cfg, data, opts)?;
        trainer.run(&mut |_| {})?;
        drop(trainer);
        let set = run.join(std::fs::read_to_string(run.join("CURRENT"))?.trim());
        let originals = FILES
            .iter()
            .map(|f| std::fs::read(set.join(f)))
            .collect::<std::io::Result<_>>()?;
        let h = CheckpointHarness {
            root,
            run,
            set,
            originals,
        };
        anyhow::ensure!(
            h.load() == Outcome::Accepted,
            "the harness's own set does not load: {:?}",
            h.load()
        );
        Ok(h)
    }

    /// The unchanged files, for seeding a corpus: `(file index, bytes)`.
    pub fn originals(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.originals
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u8, b.as_slice()))
    }

    /// One input: byte 0 picks the file (its low three bits, `% 7`), whether the rest replaces it or edits it (bit
    /// 3), and whether the manifest is rewritten to match (bit 4). An edit is a list of
    /// `(offset: u16 LE, xor: u8)` triples spread over the file by its length, then, with bit
    /// 5, a truncation at the last two bytes' offset. The set is restored afterwards.
    pub fn run(&self, input: &[u8]) -> anyhow::Result<Outcome> {
        let Some((&head, rest)) = input.split_first() else {
            return Ok(self.load());
        };
        let idx = usize::from(head & 0x07) % FILES.len();
        let original = &self.originals[idx];
        let changed = if head & 0x08 != 0 {
            rest.to_vec()
        } else {
            edit(original, rest, head & 0x20 != 0)
        };
        std::fs::write(self.set.join(FILES[idx]), &changed)?;
        let rewrite_manifest = head & 0x10 != 0 && FILES[idx] != MANIFEST_FILE;
        if rewrite_manifest {
            let files: Vec<(&str, &[u8])> = FILES[..6]
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let bytes: &[u8] = if i == idx {
                        &changed
                    } else {
                        &self.originals[i]
                    };
                    (*f, bytes)
                })
                .collect();
            std::fs::write(self.set.join(MANIFEST_FILE), Manifest::of(&files).to_json())?;
        }
        let outcome = self.load();
        std::fs::write(self.set.join(FILES[idx]), original)?;
        if rewrite_manifest {
            std::fs::write(self.set.join(MANIFEST_FILE), &self.originals[6])?;
        }
        Ok(outcome)
    }

    /// Writes every file of the set back as it was (after an input that panicked mid-way).
    pub fn restore(&self) -> std::io::Result<()> {
        for (f, bytes) in FILES.iter().zip(&self.originals) {
            std::fs::write(self.set.join(f), bytes)?;
        }
        Ok(())
    }

    /// Loads the run as `eval` does.
    pub fn load(&self) -> Outcome {
        Outcome::of(load_as_eval(&self.run))
    }
}

impl Drop for CheckpointHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn load_as_eval(run: &Path) -> lsnn_train::Result<()> {
    let lm = lsnn_train::lm::load_lm(run, false, Some("cpu"))?;
    let state = TrainerState::from_json(
        &lm.checkpoint.state_json,
        &lm.checkpoint.dir.join(STATE_FILE),
    )?;
    lsnn_train::lm::token_data(&lm.config, &state.data_source)?;
    Ok(())
}

/// `original` with the edits `spec` describes (see [`CheckpointHarness::run`]).
fn edit(original: &[u8], spec: &[u8], truncate: bool) -> Vec<u8> {
    let mut out = original.to_vec();
    if out.is_empty() {
        return out;
    }
    let scale = out.len().div_ceil(1 << 16);
    for t in spec.chunks_exact(3) {
        let at = (usize::from(u16::from_le_bytes([t[0], t[1]])) * scale) % out.len();
        out[at] ^= t[2];
    }
    if truncate {
        if let [.., a, b] = spec {
            let at = (usize::from(u16::from_le_bytes([*a, *b])) * scale) % out.len();
            out.truncate(at);
        }
    }
    out
}
