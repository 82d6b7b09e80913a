//! A run's own record (design §10.4): plain files in `<run>/record/` that a person, a script or
//! `lsnn report` reads — per-batch metrics, per-epoch metrics with memory and firing-rate
//! columns, the memory timeline (CSV and Chrome-trace JSON), and an event log — written from
//! the trainer's [`Event`]s as the run goes.
//!
//! Every entry starts with the run's position (micro-batches trained) so that a resume cuts each
//! file back to the checkpoint it resumed from: what a crashed process recorded past it is
//! dropped, never counted twice, and the log says how many entries were cut.

mod lines;

use super::tensorboard::wall_time_now;
use crate::error::{Result, TrainError};
use crate::firing::LayerFiring;
use crate::trainer::Event;
use lines::{position_of, LineFile};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The record's folder inside a run directory.
pub const RECORD_DIR: &str = "record";
/// The record's format version (in `record.json`).
pub const RECORD_VERSION: u32 = 1;
/// The manifest: format, version, files and their columns.
pub const MANIFEST_FILE: &str = "record.json";
/// One row per micro-batch.
pub const STEPS_FILE: &str = "steps.csv";
/// One row per epoch end.
pub const EPOCHS_FILE: &str = "epochs.csv";
/// One row per memory sample (every batch, every memory line).
pub const MEMORY_FILE: &str = "memory.csv";
/// The memory timeline as Chrome Trace Event JSON (ui.perfetto.dev opens it).
pub const TRACE_FILE: &str = "memory.trace.json";
/// Peak memory by stage of the run's probe step (design §10.5), when it ran.
pub const STAGES_FILE: &str = "memory_stages.json";
/// The spiking layers' spike trains on the first validation example at the latest epoch end
/// (design §10.6): `{"epoch": E, "layers": [Raster, …]}`.
pub const RASTER_FILE: &str = "raster.json";
/// One JSON object per line: starts, resumes, cleanups, alerts, warnings, checkpoints, notices.
pub const EVENTS_FILE: &str = "events.jsonl";

/// `steps.csv`'s columns.
pub const STEPS_COLUMNS: &str = "batches,epoch,step,loss,lr,items_per_s,live_bytes,wall_s";
/// `memory.csv`'s columns (`peak_bytes` is empty on a batch's row: only memory lines read it).
pub const MEMORY_COLUMNS: &str = "batches,wall_s,label,live_bytes,peak_bytes,rss_bytes";
/// `epochs.csv`'s first columns; the evaluated metrics, then `live_bytes,peak_bytes,rss_bytes`
/// after the epoch's cleanup, then `rate:<layer>` and `silent:<layer>` per spiking layer.
pub const EPOCHS_PREFIX: &str = "batches,epoch,train_loss";

/// How long records may sit in memory before they are written out.
const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Files {
    steps: LineFile,
    epochs: LineFile,
    memory: LineFile,
    events: LineFile,
}

/// An epoch's row, complete once the epoch's memory line arrives.
#[derive(Debug)]
struct EpochRow {
    epoch: usize,
    train_loss: f64,
    metrics: Vec<(String, f64)>,
    firing: Vec<LayerFiring>,
}

/// Writes a run's record from its trainer's events.
#[derive(Debug)]
pub struct RunRecorder {
    dir: PathBuf,
    files: Option<Files>,
    batches: u64,
    pending: Option<EpochRow>,
    last_flush: Instant,
}

impl RunRecorder {
    /// A recorder for the run in `run_dir` (its record goes to `run_dir/record/`, made here).
    /// The files are opened at the run's start event: fresh for a new run, cut back to the
    /// resumed position for a resume.
    pub fn create(run_dir: &Path) -> Result<Self> {
        let dir = run_dir.join(RECORD_DIR);
        std::fs::create_dir_all(&dir).map_err(TrainError::io(&dir))?;
        Ok(RunRecorder {
            dir,
            files: None,
            batches: 0,
            pending: None,
            last_flush: Instant::now(),
        })
    }

    /// The record's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open(&mut self, resumed_at: Option<u64>) -> Result<usize> {
        let path = |name: &str| self.dir.join(name);
        if resumed_at.is_none() {
            // A fresh run's record starts empty: no earlier run's probe figures or trace either.
            for stale in [STAGES_FILE, TRACE_FILE, RASTER_FILE] {
                match std::fs::remove_file(path(stale)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(TrainError::io(path(stale))(e))
                    }
                    _ => {}
                }
            }
        }
        let (files, cut) = match resumed_at {
            None => (
                Files {
                    steps: LineFile::fresh(&path(STEPS_FILE), Some(STEPS_COLUMNS))?,
                    epochs: LineFile::fresh(&path(EPOCHS_FILE), None)?,
                    memory: LineFile::fresh(&path(MEMORY_FILE), Some(MEMORY_COLUMNS))?,
                    events: LineFile::fresh(&path(EVENTS_FILE), None)?,
                },
                0,
            ),
            Some(n) => {
                let keep = |l: &str| position_of(l).is_some_and(|p| p <= n);
                let (steps, a) = LineFile::cut(&path(STEPS_FILE), true, keep)?;
                let (epochs, b) = LineFile::cut(&path(EPOCHS_FILE), true, keep)?;
                let (memory, c) = LineFile::cut(&path(MEMORY_FILE), true, keep)?;
                let (events, d) = LineFile::cut(&path(EVENTS_FILE), false, keep)?;
                let mut files = Files {
                    steps,
                    epochs,
                    memory,
                    events,
                };
                // A record begun by an older lsnn (or removed) gets its headers now.
                if files.steps.is_empty() {
                    files.steps.line(STEPS_COLUMNS)?;
                }
                if files.memory.is_empty() {
                    files.memory.line(MEMORY_COLUMNS)?;
                }
                (files, a + b + c + d)
            }
        };
        self.files = Some(files);
        self.write_manifest()?;
        if resumed_at.is_some() {
            // The trace follows the cut memory.csv at once, not at the next checkpoint.
            self.flush_with_trace()?;
        }
        Ok(cut)
    }

    fn write_manifest(&self) -> Result<()> {
        let manifest = json!({
            "format": "lsnn-run-record",
            "version": RECORD_VERSION,
            "files": {
                "steps": STEPS_FILE,
                "epochs": EPOCHS_FILE,
                "memory": MEMORY_FILE,
                "memory_trace": TRACE_FILE,
                "memory_stages": STAGES_FILE,
                "raster": RASTER_FILE,
                "events": EVENTS_FILE,
            },
            "columns": {
                "steps": STEPS_COLUMNS.split(',').collect::<Vec<_>>(),
                "memory": MEMORY_COLUMNS.split(',').collect::<Vec<_>>(),
                "epochs_prefix": EPOCHS_PREFIX.split(',').collect::<Vec<_>>(),
            },
        });
        let path = self.dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| TrainError::Record {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text + "\n").map_err(TrainError::io(&path))
    }

    fn files(&mut self) -> Result<&mut Files> {
        let dir = self.dir.clone();
        self.files.as_mut().ok_or_else(|| TrainError::Record {
            path: dir,
            message: "an event before the run's start event; expected Start first".into(),
        })
    }

    fn log(&mut self, batches: u64, kind: &str, mut fields: serde_json::Value) -> Result<()> {
        fields["batches"] = json!(batches);
        fields["wall_s"] = json!(wall_time_now());
        fields["kind"] = json!(kind);
        let line = fields.to_string();
        self.files()?.events.line(&line)
    }

    /// Records one trainer event.
    pub fn on_event(&mut self, event: &Event) -> Result<()> {
        let now = wall_time_now();
        match event {
            Event::Start {
                epochs,
                batches_per_epoch,
                parameters,
                resumed_at,
                ..
            } => {
                let cut = self.open(*resumed_at)?;
                self.batches = resumed_at.unwrap_or(0);
                let details = json!({
                    "epochs": epochs,
                    "batches_per_epoch": batches_per_epoch,
                    "parameters": parameters,
                });
                match resumed_at {
                    None => self.log(0, "start", details)?,
                    Some(n) => {
                        let mut d = details;
                        d["entries_cut"] = json!(cut);
                        self.log(*n, "resume", d)?
                    }
                }
                self.flush()?;
            }
            Event::Batch {
                epoch,
                step,
                loss,
                lr,
                tokens_per_s,
                live_bytes,
                ..
            } => {
                self.batches += 1;
                let b = self.batches;
                let rss = lsnn_memory::rss::rss_bytes().unwrap_or(0);
                let f = self.files()?;
                f.steps.line(&format!(
                    "{b},{epoch},{step},{loss},{lr},{tokens_per_s},{live_bytes},{now}"
                ))?;
                f.memory
                    .line(&format!("{b},{now},batch,{live_bytes},,{rss}"))?;
                if self.last_flush.elapsed() >= FLUSH_INTERVAL {
                    self.flush()?;
                }
            }
            Event::Skipped { reason, total } => {
                // Reported before its batch's `Batch` event: it belongs to the next position.
                self.log(
                    self.batches + 1,
                    "skipped",
                    json!({"reason": reason, "total": total}),
                )?;
            }
            Event::Memory {
                label,
                usage,
                released,
            } => {
                let b = self.batches;
                let label_cell = label.replace([',', '\n', '"'], " ");
                self.files()?.memory.line(&format!(
                    "{b},{now},{label_cell},{},{},{}",
                    usage.live_bytes, usage.peak_bytes, usage.rss_bytes
                ))?;
                if let Some(r) = released {
                    self.log(
                        b,
                        "cleanup",
                        json!({"label": label, "rss_released_bytes": r,
                               "live_bytes": usage.live_bytes}),
                    )?;
                }
                if label.starts_with("epoch ") {
                    if let Some(row) = self.pending.take() {
                        self.epoch_row(&row, usage)?;
                    }
                }
            }
            Event::MemoryAlert(a) => {
                let level = |l: lsnn_memory::AlertLevel| format!("{l:?}").to_lowercase();
                self.log(
                    self.batches,
                    "memory_alert",
                    json!({"from": level(a.from), "to": level(a.to), "live_bytes": a.bytes,
                           "threshold_bytes": a.threshold}),
                )?;
            }
            Event::EpochEnd {
                epoch,
                train_loss,
                eval,
            } => {
                let metrics: serde_json::Map<String, serde_json::Value> = eval
                    .metrics
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect();
                self.log(
                    self.batches,
                    "epoch_end",
                    json!({"epoch": epoch, "train_loss": train_loss, "metrics": metrics}),
                )?;
                self.pending = Some(EpochRow {
                    epoch: *epoch,
                    train_loss: *train_loss,
                    metrics: eval.metrics.clone(),
                    firing: Vec::new(),
                });
            }
            Event::Firing { layers, .. } => {
                if let Some(row) = self.pending.as_mut() {
                    row.firing = layers.clone();
                }
            }
            Event::SpikeWarning(w) => {
                self.log(
                    self.batches,
                    "spike_warning",
                    json!({"layer": w.layer.name, "problem": format!("{:?}", w.problem)
                               .to_lowercase(),
                           "mean_rate": w.layer.mean_rate,
                           "silent_fraction": w.layer.silent_fraction,
                           "message": w.to_string()}),
                )?;
            }
            Event::Checkpoint { dir, best } => {
                self.log(
                    self.batches,
                    "checkpoint",
                    json!({"dir": dir.display().to_string(), "best": best}),
                )?;
                self.flush_with_trace()?;
            }
            Event::EarlyStop { epoch } => {
                self.log(self.batches, "early_stop", json!({"epoch": epoch}))?;
            }
            Event::ShardSizing { sizing, recorded } => {
                self.log(
                    self.batches,
                    "shard_sizing",
                    json!({"rows": sizing.rows, "batch_rows": sizing.batch_rows,
                           "budget_bytes": sizing.budget_bytes, "recorded": recorded}),
                )?;
            }
            Event::MemoryStages(report) => {
                let path = self.dir.join(STAGES_FILE);
                let text =
                    serde_json::to_string_pretty(report).map_err(|e| TrainError::Record {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                std::fs::write(&path, text + "\n").map_err(TrainError::io(&path))?;
                self.log(
                    self.batches,
                    "memory_stages",
                    json!({"file": STAGES_FILE, "step_peak_bytes": report.step_peak_bytes}),
                )?;
            }
            Event::Notice(message) => {
                self.log(self.batches, "notice", json!({"message": message}))?;
            }
            Event::SpikeRaster { epoch, layers } => {
                // Replaced whole at each epoch end: written beside, then renamed over it.
                let path = self.dir.join(RASTER_FILE);
                let part = self.dir.join(format!("{RASTER_FILE}.part"));
                let text = serde_json::to_string(&json!({"epoch": epoch, "layers": layers}))
                    .map_err(|e| TrainError::Record {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                std::fs::write(&part, text + "\n").map_err(TrainError::io(&part))?;
                std::fs::rename(&part, &path).map_err(TrainError::io(&path))?;
            }
        }
        Ok(())
    }

    fn epoch_row(&mut self, row: &EpochRow, usage: &lsnn_memory::MemoryUsage) -> Result<()> {
        let b = self.batches;
        let f = self.files()?;
        if f.epochs.is_empty() {
            let mut header = vec![EPOCHS_PREFIX.to_string()];
            header.extend(row.metrics.iter().map(|(k, _)| k.clone()));
            header.extend(["live_bytes", "peak_bytes", "rss_bytes"].map(String::from));
            header.extend(row.firing.iter().map(|l| format!("rate:{}", l.name)));
            header.extend(row.firing.iter().map(|l| format!("silent:{}", l.name)));
            f.epochs.line(&header.join(","))?;
        }
        let mut cells = vec![
            b.to_string(),
            row.epoch.to_string(),
            row.train_loss.to_string(),
        ];
        cells.extend(row.metrics.iter().map(|(_, v)| v.to_string()));
        cells.extend([usage.live_bytes, usage.peak_bytes, usage.rss_bytes].map(|v| v.to_string()));
        cells.extend(row.firing.iter().map(|l| l.mean_rate.to_string()));
        cells.extend(row.firing.iter().map(|l| l.silent_fraction.to_string()));
        f.epochs.line(&cells.join(","))
    }

    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if let Some(f) = self.files.as_mut() {
            f.steps.flush()?;
            f.epochs.flush()?;
            f.memory.flush()?;
            f.events.flush()?;
        }
        Ok(())
    }

    /// [`Self::flush`] and the memory trace rewritten from `memory.csv` (at checkpoints and the
    /// end: O(run) work each time, so not on the 10 s flush).
    fn flush_with_trace(&mut self) -> Result<()> {
        self.flush()?;
        if let Some(f) = self.files.as_ref() {
            let memory = f.memory.path().to_path_buf();
            write_trace(&memory, &self.dir.join(TRACE_FILE))?;
        }
        Ok(())
    }

    /// Writes out what is buffered and the memory trace (call at the end of the run).
    pub fn finish(mut self) -> Result<()> {
        self.flush_with_trace()
    }
}

/// `memory.csv` as Chrome Trace Event JSON, times in µs from its first row, in lsnn-memory's
/// timeline format (so the record's trace and the manager's open the same way). Streamed row by
/// row: memory stays constant however long the run.
fn write_trace(memory_csv: &Path, trace: &Path) -> Result<()> {
    use std::io::BufRead;
    let file = std::fs::File::open(memory_csv).map_err(TrainError::io(memory_csv))?;
    let mut t0 = None;
    // A batch's row reads no peak: the counter keeps the last memory line's.
    let mut last_peak = 0;
    let samples = std::io::BufReader::new(file)
        .lines()
        .skip(1)
        .map_while(|l| l.ok())
        .filter_map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            let wall = c.get(1)?.parse::<f64>().ok()?;
            if c.len() != 6 {
                return None;
            }
            let t0 = *t0.get_or_insert(wall);
            let num = |s: &str| s.parse::<u64>().unwrap_or(0);
            if let Ok(p) = c[4].parse::<u64>() {
                last_peak = p;
            }
            Some(lsnn_memory::timeline::Sample {
                ts_us: ((wall - t0).max(0.0) * 1e6) as u64,
                label: format!("{} (batch {})", c[2], c[0]),
                live_bytes: num(c[3]),
                peak_bytes: last_peak,
                rss_bytes: num(c[5]),
            })
        });
    let tmp = trace.with_extension("json.tmp");
    let out = std::fs::File::create(&tmp).map_err(TrainError::io(&tmp))?;
    lsnn_memory::timeline::write_chrome_trace(samples, std::io::BufWriter::new(out))
        .map_err(TrainError::io(&tmp))?;
    std::fs::rename(&tmp, trace).map_err(TrainError::io(trace))
}
