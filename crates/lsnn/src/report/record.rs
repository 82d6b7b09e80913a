//! Reading a run's record (design §10.4) for the report: the manifest checked, each CSV as
//! named columns, the event log, the stage probe and the run's config.

use crate::exit::BadInput;
use anyhow::{Context, Result};
use lsnn_train::record::run::{
    EPOCHS_FILE, EVENTS_FILE, MANIFEST_FILE, MEMORY_FILE, RASTER_FILE, RECORD_DIR, RECORD_VERSION,
    STAGES_FILE, STEPS_FILE,
};
use std::path::{Path, PathBuf};

/// A CSV file: its header and rows of cells.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, each as long as the header (shorter lines are skipped).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(text: &str) -> Table {
        let mut lines = text.lines();
        let header: Vec<String> = match lines.next() {
            Some(h) => h.split(',').map(str::to_owned).collect(),
            None => return Table::default(),
        };
        let rows = lines
            .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter(|r| r.len() == header.len())
            .collect();
        Table { header, rows }
    }

    /// The column `name`, parsed as numbers (empty or unparsable cells are NaN); `None` when
    /// there is no such column.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let i = self.header.iter().position(|h| h == name)?;
        Some(
            self.rows
                .iter()
                .map(|r| r[i].parse().unwrap_or(f64::NAN))
                .collect(),
        )
    }

    /// The column `name` as text.
    pub fn text_column(&self, name: &str) -> Option<Vec<String>> {
        let i = self.header.iter().position(|h| h == name)?;
        Some(self.rows.iter().map(|r| r[i].clone()).collect())
    }
}

/// `raster.json`: the epoch and one spike train per spiking layer.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Raster {
    /// The epoch (0-based) whose end measured it.
    pub epoch: usize,
    /// The layers, in the model's order.
    pub layers: Vec<lsnn_train::lsnn_layers::Raster>,
}

/// Everything the report reads.
#[derive(Debug)]
pub struct RunRecord {
    /// The run directory.
    pub run: PathBuf,
    /// `steps.csv`.
    pub steps: Table,
    /// `epochs.csv`.
    pub epochs: Table,
    /// `memory.csv`.
    pub memory: Table,
    /// `events.jsonl`, one object per line.
    pub events: Vec<serde_json::Value>,
    /// `memory_stages.json`, when the run probed.
    pub stages: Option<serde_json::Value>,
    /// `raster.json`: the spiking layers' spike trains on the first validation example at the
    /// latest epoch end, when the run measured its layers.
    pub raster: Option<Raster>,
    /// The current set's `config.json` (the run's configuration); null before the first
    /// checkpoint.
    pub config: serde_json::Value,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads the record of the run in `run`: a directory without one, or a record of another format
/// or version, is bad input that says so.
pub fn read_record(run: &Path) -> Result<RunRecord> {
    let dir = run.join(RECORD_DIR);
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return Err(BadInput(format!(
            "{} holds no run record ({}/{MANIFEST_FILE} is missing); expected the directory of a \
             run trained by lsnn train, which writes one",
            run.display(),
            RECORD_DIR
        ))
        .into());
    }
    let manifest: serde_json::Value = serde_json::from_str(&read(&manifest_path)?)
        .map_err(|e| BadInput(format!("{}: not JSON ({e})", manifest_path.display())))?;
    if manifest["format"] != "lsnn-run-record" || manifest["version"] != RECORD_VERSION {
        return Err(BadInput(format!(
            "{}: format {} version {}; expected lsnn-run-record version {RECORD_VERSION}",
            manifest_path.display(),
            manifest["format"],
            manifest["version"]
        ))
        .into());
    }
    let table = |name: &str| -> Result<Table> {
        let p = dir.join(name);
        Ok(if p.is_file() {
            Table::parse(&read(&p)?)
        } else {
            Table::default()
        })
    };
    let events_path = dir.join(EVENTS_FILE);
    let events = if events_path.is_file() {
        read(&events_path)?
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    } else {
        Vec::new()
    };
    let stages_path = dir.join(STAGES_FILE);
    let stages = match stages_path.is_file() {
        true => serde_json::from_str(&read(&stages_path)?).ok(),
        false => None,
    };
    let raster_path = dir.join(RASTER_FILE);
    let raster = match raster_path.is_file() {
        true => Some(
            serde_json::from_str(&read(&raster_path)?)
                .map_err(|e| BadInput(format!("{}: not a raster ({e})", raster_path.display())))?,
        ),
        false => None,
    };
    // A run that stopped before its first checkpoint has a record but no set yet.
    let config = match lsnn_train::checkpoint::resolve(run) {
        Ok(set) if set.join("config.json").is_file() => {
            serde_json::from_str(&read(&set.join("config.json"))?)
                .with_context(|| format!("{}: config.json is not JSON", set.display()))?
        }
        _ => serde_json::Value::Null,
    };
    Ok(RunRecord {
        run: run.to_path_buf(),
        steps: table(STEPS_FILE)?,
        epochs: table(EPOCHS_FILE)?,
        memory: table(MEMORY_FILE)?,
        events,
        stages,
        raster,
        config,
    })
}
