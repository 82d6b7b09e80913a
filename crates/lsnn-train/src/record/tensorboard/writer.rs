//! An event file: TFRecord framing around each encoded `Event`, in a file named the way
//! TensorBoard looks for (`events.out.tfevents.*`).

use super::crc32c::masked_crc32c;
use super::proto::{EventPayload, SessionStatus, TbEvent};
use crate::{Result, TrainError};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The format version TensorBoard's readers expect in a file's first record.
pub const FILE_VERSION: &str = "brain.Event:2";

/// The writer name lsnn puts in the first record's `source_metadata`.
pub const WRITER_NAME: &str = "lsnn";

/// The prefix TensorBoard recognises event files by.
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// A record's bytes: length (u64 LE), its masked CRC-32C, the payload, the payload's masked
/// CRC-32C.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    let len = (payload.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&masked_crc32c(payload).to_le_bytes());
    out
}

/// Seconds since the Unix epoch, as TensorBoard stamps events.
pub fn wall_time_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes one event file. Records are buffered; [`EventFileWriter::flush`] puts them on disk
/// (a reader sees whole records only: a crash can cut the last record short, which
/// TensorBoard's reader and [`super::read_event_file`] both stop at).
#[derive(Debug)]
pub struct EventFileWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventFileWriter {
    /// Creates `dir` if needed and a new event file in it, whose first record names the format
    /// version, stamped `wall_time`.
    ///
    /// The name is `events.out.tfevents.<seconds>.<host>.<pid>.lsnn`, as TensorBoard's own
    /// writer names files. TensorBoard reads a directory's files in name order, and a resumed
    /// run's session-restart record only drops stale steps it has already read, so the seconds
    /// are moved past those of any event file already in `dir`: the new file sorts last even
    /// when a resume starts within the same second or the clock went back.
    pub fn create(dir: &Path, wall_time: f64) -> Result<Self> {
        prepare_dir(dir)?;
        let mut seconds = wall_time.max(0.0) as u64;
        for entry in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
            let entry = entry.map_err(TrainError::io(dir))?;
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(FILE_PREFIX)) else {
                continue;
            };
            if let Some(s) = rest.split('.').next().and_then(|s| s.parse::<u64>().ok()) {
                // TensorBoard orders names as strings; with the 10-digit padding below (enough
                // until the year 2286) that is this numeric order.
                seconds = seconds.max(s.saturating_add(1));
            }
        }
        let name = format!(
            "{FILE_PREFIX}{seconds:010}.{}.{}.{WRITER_NAME}",
            host_name(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        let mut writer = EventFileWriter {
            path,
            out: BufWriter::new(file),
        };
        writer.write(&TbEvent {
            wall_time,
            step: 0,
            payload: EventPayload::FileVersion {
                version: FILE_VERSION.into(),
                writer: WRITER_NAME.into(),
            },
        })?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event.
    pub fn write(&mut self, event: &TbEvent) -> Result<()> {
        self.out
            .write_all(&frame(&event.encode()))
            .map_err(TrainError::io(&self.path))
    }

    /// Appends a scalar: one summary value `tag` at `step`. TensorBoard stores scalars as f32.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f32, wall_time: f64) -> Result<()> {
        self.write(&TbEvent {
            wall_time,
            step,
            payload: EventPayload::Scalars(vec![(tag.to_owned(), value)]),
        })
    }

    /// Appends a session-restart record: TensorBoard then drops the records at `step` or later
    /// that it read before this one (a crashed run's steps past its checkpoint).
    pub fn session_start(&mut self, step: i64, wall_time: f64) -> Result<()> {
        self.write(&TbEvent {
            wall_time,
            step,
            payload: EventPayload::SessionLog(SessionStatus::Start),
        })
    }

    /// Puts the buffered records into the file.
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(TrainError::io(&self.path))
    }
}

/// Makes `dir` (and its parents) for event files: a path that is, or lies under, something
/// other than a directory is a [`TrainError::Record`] saying so, any other failure (permissions, a full disk) an
/// [`TrainError::Io`]. The command line calls it before it builds anything, so a bad path costs
/// nothing.
pub fn prepare_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e)
            if (dir.exists() && !dir.is_dir()) || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            Err(TrainError::Record {
                path: dir.to_path_buf(),
                message: "it, or a folder above it, exists and is not a directory; expected a \
                      directory for TensorBoard's event files, or a path where one can be made"
                    .into(),
            })
        }
        Err(source) => Err(TrainError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// This machine's name for the file name, with characters outside `[A-Za-z0-9._-]` replaced
/// (a file name must not gain a separator); "localhost" when it cannot be read.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let cleaned: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "localhost".into()
    } else {
        cleaned
    }
}
