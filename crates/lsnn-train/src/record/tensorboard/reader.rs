//! Reading an event file back: the records with their CRCs checked, decoded.

use super::crc32c::masked_crc32c;
use super::proto::{EventPayload, SessionStatus, TbEvent};
use crate::{Result, TrainError};
use std::path::Path;

/// The records of an event file's bytes, each checked against its two CRCs. A last record cut
/// short (a writer that crashed mid-record) ends the list, as in TensorBoard's reader, and is
/// reported by `truncated`; a CRC that does not match is an error naming the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Records<'a> {
    /// Every whole record's payload, in order.
    pub payloads: Vec<&'a [u8]>,
    /// True when bytes after the last whole record were left (a cut record).
    pub truncated: bool,
}

/// Splits `bytes` into records, checking every CRC.
pub fn split_records(bytes: &[u8]) -> std::result::Result<Records<'_>, String> {
    let mut payloads = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let index = payloads.len();
        let Some(header) = bytes.get(at..at + 12) else {
            return Ok(Records {
                payloads,
                truncated: true,
            });
        };
        let len_bytes = &header[..8];
        let want = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if masked_crc32c(len_bytes) != want {
            return Err(format!(
                "record {index} at byte {at}: the length's CRC does not match"
            ));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let end = usize::try_from(len)
            .ok()
            .and_then(|n| (at + 12).checked_add(n))
            .and_then(|e| e.checked_add(4));
        let Some(body) = end.and_then(|e| bytes.get(at + 12..e)) else {
            return Ok(Records {
                payloads,
                truncated: true,
            });
        };
        let (payload, crc) = body.split_at(body.len() - 4);
        if masked_crc32c(payload) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(format!(
                "record {index} at byte {at}: the payload's CRC does not match"
            ));
        }
        payloads.push(payload);
        at += 16 + payload.len();
    }
    Ok(Records {
        payloads,
        truncated: false,
    })
}

/// Every event of the file at `path`, decoded (a cut last record is left out).
pub fn read_event_file(path: &Path) -> Result<Vec<TbEvent>> {
    let bytes = std::fs::read(path).map_err(TrainError::io(path))?;
    let bad = |message: String| TrainError::Record {
        path: path.to_path_buf(),
        message,
    };
    let records = split_records(&bytes).map_err(bad)?;
    records
        .payloads
        .iter()
        .enumerate()
        .map(|(i, p)| TbEvent::decode(p).map_err(|e| bad(format!("record {i}: {e}"))))
        .collect()
}

/// A scalar as TensorBoard shows it: (tag, step, value).
pub type ShownScalar = (String, i64, f32);

/// Every scalar of the event files in `dir` as TensorBoard shows them: the files whose names
/// hold `tfevents` read in name order, and a session START record at step s dropping every
/// scalar read before it at a step ≥ s — TensorBoard's purge of orphaned data, which a resumed
/// run's restart record relies on (its other purge, on any step going backwards, is not
/// modelled: lsnn's steps only go back at a restart). In the order read.
pub fn scalars_as_shown(dir: &Path) -> Result<Vec<ShownScalar>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(TrainError::io(dir))? {
        let path = entry.map_err(TrainError::io(dir))?.path();
        let named = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("tfevents"));
        if named && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    let mut shown: Vec<ShownScalar> = Vec::new();
    for file in files {
        for event in read_event_file(&file)? {
            match event.payload {
                EventPayload::SessionLog(SessionStatus::Start) => {
                    shown.retain(|(_, step, _)| *step < event.step)
                }
                EventPayload::Scalars(values) => shown.extend(
                    values
                        .into_iter()
                        .map(|(tag, value)| (tag, event.step, value)),
                ),
                _ => {}
            }
        }
    }
    Ok(shown)
}
