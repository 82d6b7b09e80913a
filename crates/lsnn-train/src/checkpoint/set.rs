//! The checkpoint set on disk and its atomic switch (design §4.1).
//!
//! A run directory holds checkpoint directories and a pointer file `CURRENT` naming the current
//! one. A save writes the complete set — `model.safetensors`, `ema.safetensors`,
//! `optimizer.safetensors`, `config.json`, `trainer_state.json`, `metrics.csv`, and last the
//! `MANIFEST.json` of their lengths and hashes — into a hidden `.partial-…` directory, syncs every
//! file and the directory, renames it to its final name, then switches `CURRENT` with one rename
//! (of a synced temporary pointer file). A crash at any instant leaves either the old set or the
//! new one current, never a mix; a failed save removes what it wrote; older sets are removed
//! (by [`super::retention`]) only after the switch.
//!
//! On load every file is checked against the manifest (set format 2; a set without one, format 1,
//! loads with a notice) and every file must agree: the three safetensors files and
//! `trainer_state.json` carry the same step and the same hash of `config.json`, else a typed error
//! names what disagrees. The caller checks keys and shapes against the model it builds from the
//! config.

use super::manifest::{Manifest, MANIFEST_FILE};
use super::retention::{self, PARTIAL_PREFIX};
use crate::error::{Result, TrainError};
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The safetensors metadata key holding `{"kind", "step", "config_hash"}`.
pub const META_KEY: &str = "lsnn";
/// The pointer file.
pub const CURRENT: &str = "CURRENT";
/// File names of a set.
pub const MODEL_FILE: &str = "model.safetensors";
/// EMA weights.
pub const EMA_FILE: &str = "ema.safetensors";
/// Optimizer moments and the accumulation buffer.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The fully resolved config.
pub const CONFIG_FILE: &str = "config.json";
/// Step, epoch, generator states, counters.
pub const STATE_FILE: &str = "trainer_state.json";
/// The metrics log.
pub const METRICS_FILE: &str = "metrics.csv";

/// The stages of a save, in order; a test hook can fail at any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStage {
    /// Before anything is written.
    Begin,
    /// After each file of the set is written and synced (the file's name).
    FileWritten(&'static str),
    /// After the new directory is synced, before the pointer switch.
    BeforeSwitch,
    /// After the switch, before old sets are removed.
    AfterSwitch,
}

/// What a checkpoint holds.
#[derive(Debug)]
pub struct CheckpointData<'a> {
    /// The step all files carry.
    pub step: u64,
    /// `config.json`'s text.
    pub config_json: &'a str,
    /// `trainer_state.json`'s text.
    pub state_json: &'a str,
    /// Model weights by name.
    pub model: &'a BTreeMap<String, Tensor>,
    /// EMA weights by name.
    pub ema: &'a BTreeMap<String, Tensor>,
    /// Optimizer tensors by name (`m.*`, `v.*`, `vmax.*`, `acc.*`).
    pub optimizer: &'a BTreeMap<String, Tensor>,
    /// `metrics.csv`'s text.
    pub metrics_csv: &'a str,
    /// This set is the run's best so far: `BEST` is switched to it, and the previous best is
    /// no longer kept.
    pub best: bool,
    /// Remove every other set of the directory once this one is current (replacing a run).
    pub replace_other_runs: bool,
}

/// A loaded, consistent checkpoint.
#[derive(Debug)]
pub struct LoadedCheckpoint {
    /// The set's directory.
    pub dir: PathBuf,
    /// The step.
    pub step: u64,
    /// `config.json`'s text.
    pub config_json: String,
    /// `trainer_state.json`'s text.
    pub state_json: String,
    /// Model weights.
    pub model: HashMap<String, Tensor>,
    /// EMA weights.
    pub ema: HashMap<String, Tensor>,
    /// Optimizer tensors.
    pub optimizer: HashMap<String, Tensor>,
    /// `metrics.csv`'s text.
    pub metrics_csv: String,
    /// The set format: 2 with a manifest (every file verified), 1 without.
    pub set_format: u32,
    /// What a caller should tell the user (a set whose files could not be verified).
    pub notices: Vec<String>,
}

/// FNV-1a of the config text, hex: ties every file of a set to one config.
pub fn config_hash(config_json: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in config_json.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    format!("{h:016x}")
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(TrainError::io(path))?;
    f.write_all(bytes).map_err(TrainError::io(path))?;
    f.sync_all().map_err(TrainError::io(path))?;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(TrainError::io(dir))?;
    d.sync_all().map_err(TrainError::io(dir))
}

fn safetensors_bytes(
    kind: &str,
    step: u64,
    hash: &str,
    tensors: &BTreeMap<String, Tensor>,
    path: &Path,
) -> Result<Vec<u8>> {
    // One metadata key: safetensors writes its metadata map in hash order, and a checkpoint's
    // bytes must not depend on the process that wrote it.
    let mut meta = HashMap::new();
    meta.insert(
        META_KEY.to_string(),
        format!("{{\"kind\":\"{kind}\",\"step\":{step},\"config_hash\":\"{hash}\"}}"),
    );
    let contiguous: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_>>()?;
    safetensors::serialize(contiguous.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .map_err(|e| TrainError::ckpt(path, format!("cannot serialise: {e}")))
}

/// Writes `data` as the new current checkpoint of `run_dir`; returns the set's directory.
/// `hook` is called at each [`SaveStage`]; an error from it aborts the save there (tests use
/// this to inject failures). A save that fails leaves the previous set current and removes what
/// it wrote.
pub fn save_with_hook(
    run_dir: &Path,
    data: &CheckpointData<'_>,
    hook: &mut dyn FnMut(SaveStage) -> std::io::Result<()>,
) -> Result<PathBuf> {
    std::fs::create_dir_all(run_dir).map_err(TrainError::io(run_dir))?;
    // Refuse a set that `load` would reject before anything is written or switched.
    let hash = config_hash(data.config_json);
    let state: serde_json::Value = serde_json::from_str(data.state_json).map_err(|e| {
        TrainError::ckpt(run_dir, format!("trainer state to save is not JSON: {e}"))
    })?;
    if state["step"].as_u64() != Some(data.step)
        || state["config_hash"].as_str() != Some(hash.as_str())
    {
        return Err(TrainError::ckpt(
            run_dir,
            format!(
                "refusing to save: the trainer state names step {} and config {}, the set is step {} of config {hash}",
                state["step"], state["config_hash"], data.step
            ),
        ));
    }
    let lineage = state["lineage"].as_str().map(str::to_owned);
    hook(SaveStage::Begin).map_err(|e| stage_failed(run_dir, SaveStage::Begin, e))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("ckpt-{:010}-{nanos:x}", data.step);
    let partial = run_dir.join(format!("{PARTIAL_PREFIX}{name}"));
    let dir = run_dir.join(&name);
    std::fs::create_dir(&partial).map_err(TrainError::io(&partial))?;
    if let Err(e) = write_set(run_dir, &partial, &dir, data, &hash, hook) {
        // Whatever was written goes — a full disk must not fill up further with each retry —
        // unless the pointer already names the new set (a failure after the switch).
        let _ = std::fs::remove_dir_all(&partial);
        if retention::pointer_target(run_dir, CURRENT).as_deref() != Some(name.as_str()) {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let _ = std::fs::remove_file(run_dir.join(format!("{CURRENT}.tmp")));
        return Err(e);
    }
    if data.best {
        let tmp = run_dir.join(format!("{}.tmp", retention::BEST));
        write_synced(&tmp, format!("{name}\n").as_bytes())?;
        let best = run_dir.join(retention::BEST);
        std::fs::rename(&tmp, &best).map_err(TrainError::io(&best))?;
        sync_dir(run_dir)?;
    }
    hook(SaveStage::AfterSwitch).map_err(|e| stage_failed(run_dir, SaveStage::AfterSwitch, e))?;
    remove_stale(
        run_dir,
        &name,
        lineage.as_deref(),
        data.step,
        data.replace_other_runs,
    );
    Ok(dir)
}

fn stage_failed(run_dir: &Path, stage: SaveStage, e: std::io::Error) -> TrainError {
    TrainError::Io {
        path: run_dir.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("save failed at {stage:?}: {e}")),
    }
}

/// Writes the set into `partial`, renames it to `dir` and makes it current.
fn write_set(
    run_dir: &Path,
    partial: &Path,
    dir: &Path,
    data: &CheckpointData<'_>,
    hash: &str,
    hook: &mut dyn FnMut(SaveStage) -> std::io::Result<()>,
) -> Result<()> {
    let files: [(&'static str, Vec<u8>); 6] = [
        (
            MODEL_FILE,
            safetensors_bytes("model", data.step, hash, data.model, dir)?,
        ),
        (
            EMA_FILE,
            safetensors_bytes("ema", data.step, hash, data.ema, dir)?,
        ),
        (
            OPTIMIZER_FILE,
            safetensors_bytes("optimizer", data.step, hash, data.optimizer, dir)?,
        ),
        (CONFIG_FILE, data.config_json.as_bytes().to_vec()),
        (STATE_FILE, data.state_json.as_bytes().to_vec()),
        (METRICS_FILE, data.metrics_csv.as_bytes().to_vec()),
    ];
    for (fname, bytes) in &files {
        write_synced(&partial.join(fname), bytes)?;
        hook(SaveStage::FileWritten(fname))
            .map_err(|e| stage_failed(run_dir, SaveStage::FileWritten(fname), e))?;
    }
    let listed: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    write_synced(
        &partial.join(MANIFEST_FILE),
        Manifest::of(&listed).to_json().as_bytes(),
    )?;
    sync_dir(partial)?;
    std::fs::rename(partial, dir).map_err(TrainError::io(dir))?;
    // The new directory's entry must be durable before a pointer names it.
    sync_dir(run_dir)?;
    hook(SaveStage::BeforeSwitch).map_err(|e| stage_failed(run_dir, SaveStage::BeforeSwitch, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = run_dir.join(format!("{CURRENT}.tmp"));
    write_synced(&tmp, format!("{name}\n").as_bytes())?;
    let cur = run_dir.join(CURRENT);
    std::fs::rename(&tmp, &cur).map_err(TrainError::io(&cur))?;
    sync_dir(run_dir)?;
    Ok(())
}

/// [`save_with_hook`] without a hook.
pub fn save(run_dir: &Path, data: &CheckpointData<'_>) -> Result<PathBuf> {
    save_with_hook(run_dir, data, &mut |_| Ok(()))
}

/// Removes the sets retention does not keep (see [`retention`]); best effort: a leftover never
/// breaks a load.
fn remove_stale(run_dir: &Path, current: &str, lineage: Option<&str>, step: u64, replace: bool) {
    let sets = retention::list_sets(run_dir);
    let best = retention::best_name(run_dir);
    for n in retention::to_remove(&sets, current, best.as_deref(), lineage, step, replace) {
        // Renamed out of the sets first, so that a kill in the middle of the removal leaves a
        // partial set that the next start clears, never a `ckpt-*` missing some of its files.
        let p = run_dir.join(n);
        let doomed = run_dir.join(format!("{}{n}", retention::PARTIAL_PREFIX));
        let gone = std::fs::rename(&p, &doomed).and_then(|()| std::fs::remove_dir_all(&doomed));
        if let Err(err) = gone {
            tracing::warn!("could not remove old checkpoint {}: {err}", p.display());
        }
    }
    // A replaced run's best set went with it: its pointer goes too.
    if replace && best.is_some_and(|b| b != current) {
        let _ = std::fs::remove_file(run_dir.join(retention::BEST));
    }
}

/// The run directory a path names: the path itself, or — for a set directory inside a run (a
/// directory holding `model.safetensors` whose parent has a `CURRENT` pointer) — its parent.
pub fn run_dir_of(path: &Path) -> PathBuf {
    let is_set = path.join(MODEL_FILE).is_file() && !path.join(CURRENT).exists();
    match path.parent() {
        Some(parent) if is_set && parent.join(CURRENT).is_file() => parent.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

/// The directory of the current set: `run_dir/CURRENT`'s target, or `run_dir` itself when it is a
/// set (holds `model.safetensors`).
pub fn resolve(run_dir: &Path) -> Result<PathBuf> {
    let cur = run_dir.join(CURRENT);
    if cur.exists() {
        let name = std::fs::read_to_string(&cur).map_err(TrainError::io(&cur))?;
        let name = name.trim();
        if name.is_empty() || name.contains('/') || name.contains("..") {
            return Err(TrainError::ckpt(
                &cur,
                format!("pointer names {name:?}, expected a checkpoint directory name"),
            ));
        }
        let dir = run_dir.join(name);
        if !dir.is_dir() {
            return Err(TrainError::ckpt(
                &dir,
                "the directory CURRENT points to is missing",
            ));
        }
        Ok(dir)
    } else if run_dir.join(MODEL_FILE).exists() {
        Ok(run_dir.to_path_buf())
    } else if let Some(newest) = retention::newest_set(run_dir) {
        // A first save killed between renaming its set into place and writing `CURRENT`: the
        // set is complete (it was renamed only once it was), so it is the run's checkpoint.
        Ok(run_dir.join(newest))
    } else if !run_dir.exists() {
        Err(TrainError::ckpt(run_dir, "no such directory"))
    } else {
        Err(TrainError::ckpt(
            run_dir,
            "no checkpoint here (neither a CURRENT pointer nor model.safetensors)",
        ))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| TrainError::ckpt(path, format!("missing or unreadable: {e}")))
}

/// `dir/name`'s bytes, checked against the manifest when the set has one.
fn read_checked(dir: &Path, name: &str, manifest: Option<&Manifest>) -> Result<Vec<u8>> {
    let bytes = read(&dir.join(name))?;
    if let Some(m) = manifest {
        m.check(dir, name, &bytes)?;
    }
    Ok(bytes)
}

fn text(dir: &Path, name: &str, manifest: Option<&Manifest>) -> Result<String> {
    String::from_utf8(read_checked(dir, name, manifest)?)
        .map_err(|_| TrainError::ckpt(dir.join(name), "not UTF-8"))
}

fn read_st(
    path: &Path,
    bytes: &[u8],
    kind: &str,
) -> Result<(HashMap<String, Tensor>, u64, String)> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| TrainError::ckpt(path, format!("corrupted or truncated safetensors: {e}")))?;
    let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| TrainError::ckpt(path, format!("corrupted or truncated safetensors: {e}")))?;
    let m = meta.metadata().clone().unwrap_or_default();
    let text = m.get(META_KEY).ok_or_else(|| {
        TrainError::ckpt(
            path,
            format!("metadata lacks {META_KEY}; not an lsnn checkpoint file"),
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| TrainError::ckpt(path, format!("unreadable {META_KEY} metadata: {e}")))?;
    let got_kind = v["kind"].as_str().unwrap_or_default();
    if got_kind != kind {
        return Err(TrainError::ckpt(
            path,
            format!("holds {got_kind:?} tensors, expected {kind:?}"),
        ));
    }
    let step = v["step"]
        .as_u64()
        .ok_or_else(|| TrainError::ckpt(path, "no integer step in the metadata"))?;
    let hash = v["config_hash"]
        .as_str()
        .ok_or_else(|| TrainError::ckpt(path, "no config_hash in the metadata"))?
        .to_string();
    Ok((tensors, step, hash))
}

/// Loads the current set of `run_dir` and checks that its files agree on step and config.
///
/// Every loader (resume, `eval`, `generate`, a library caller) goes through here, so every one
/// verifies a set the same way.
///
/// Readers take no lock: a trainer may switch `CURRENT` and remove the set being read. A load
/// that fails while `CURRENT` moved on is tried once more on the new set.
pub fn load(run_dir: &Path) -> Result<LoadedCheckpoint> {
    let first = resolve(run_dir)?;
    match load_set(first.clone()) {
        Err(e) => match resolve(run_dir) {
            Ok(now) if now != first => load_set(now),
            _ => Err(e),
        },
        ok => ok,
    }
}

fn load_set(dir: PathBuf) -> Result<LoadedCheckpoint> {
    let manifest = Manifest::read(&dir)?;
    let m = manifest.as_ref();
    let mut notices = Vec::new();
    if m.is_none() {
        notices.push(format!(
            "{} was written before checkpoint sets recorded content hashes (set format 1); its \
             files are checked for consistency but not for corruption",
            dir.display()
        ));
    }
    let config_json = text(&dir, CONFIG_FILE, m)?;
    let state_json = text(&dir, STATE_FILE, m)?;
    let metrics_csv = text(&dir, METRICS_FILE, m)?;
    let hash = config_hash(&config_json);
    let state: serde_json::Value =
        serde_json::from_str(&state_json).map_err(|e| TrainError::Json {
            path: dir.join(STATE_FILE),
            source: e,
        })?;
    let state_step = state["step"]
        .as_u64()
        .ok_or_else(|| TrainError::ckpt(dir.join(STATE_FILE), "no integer `step`"))?;
    let state_hash = state["config_hash"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if state_hash != hash {
        return Err(TrainError::ckpt(
            dir.join(STATE_FILE),
            format!("written for config {state_hash}, but config.json hashes to {hash}"),
        ));
    }
    let mut parts = Vec::new();
    for (file, kind) in [
        (MODEL_FILE, "model"),
        (EMA_FILE, "ema"),
        (OPTIMIZER_FILE, "optimizer"),
    ] {
        let p = dir.join(file);
        let bytes = read_checked(&dir, file, m)?;
        let (t, step, h) = read_st(&p, &bytes, kind)?;
        if step != state_step {
            return Err(TrainError::ckpt(
                &p,
                format!("is at step {step}, trainer_state.json at step {state_step}"),
            ));
        }
        if h != hash {
            return Err(TrainError::ckpt(
                &p,
                format!("written for config {h}, config.json hashes to {hash}"),
            ));
        }
        parts.push(t);
    }
    let optimizer = parts.pop().expect("three parts");
    let ema = parts.pop().expect("three parts");
    let model = parts.pop().expect("three parts");
    Ok(LoadedCheckpoint {
        dir,
        step: state_step,
        config_json,
        state_json,
        model,
        ema,
        optimizer,
        metrics_csv,
        set_format: if m.is_some() {
            super::manifest::SET_FORMAT
        } else {
            1
        },
        notices,
    })
}
