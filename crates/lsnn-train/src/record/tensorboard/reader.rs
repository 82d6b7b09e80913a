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

/// How a scan of records ended.
enum End {
    /// At the end of the bytes.
    Complete,
    /// In a record cut short.
    Truncated,
    /// At a record whose CRC does not match (what is wrong).
    Corrupt(String),
}

/// The whole, CRC-checked records from the start of `bytes`, and how the scan ended.
fn scan(bytes: &[u8]) -> (Vec<&[u8]>, End) {
    let mut payloads = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let index = payloads.len();
        let Some(header) = bytes.get(at..at + 12) else {
            return (payloads, End::Truncated);
        };
        let len_bytes = &header[..8];
        let want = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if masked_crc32c(len_bytes) != want {
            let why = format!("record {index} at byte {at}: the length's CRC does not match");
            return (payloads, End::Corrupt(why));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        let end = usize::try_from(len)
            .ok()
            .and_then(|n| (at + 12).checked_add(n))
            .and_then(|e| e.checked_add(4));
        let Some(body) = end.and_then(|e| bytes.get(at + 12..e)) else {
            return (payloads, End::Truncated);
        };
        let (payload, crc) = body.split_at(body.len() - 4);
        if masked_crc32c(payload) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            let why = format!("record {index} at byte {at}: the payload's CRC does not match");
            return (payloads, End::Corrupt(why));
        }
        payloads.push(payload);
        at += 16 + payload.len();
    }
    (payloads, End::Complete)
}

/// Splits `bytes` into records, checking every CRC: a mismatch is an error naming the record.
pub fn split_records(bytes: &[u8]) -> std::result::Result<Records<'_>, String> {
    match scan(bytes) {
        (payloads, End::Complete) => Ok(Records {
            payloads,
            truncated: false,
        }),
        (payloads, End::Truncated) => Ok(Records {
            payloads,
            truncated: true,
        }),
        (_, End::Corrupt(why)) => Err(why),
    }
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

/// Every scalar of the event files in `dir` as TensorBoard's Python loader shows them
/// (`tensorboard --load_fast=false`, and its `EventAccumulator`): the files whose names hold
/// `tfevents` read in name order, each up to its first record that is cut, fails its CRC or
/// does not decode (where TensorBoard stops reading a file too), and a session START record at
/// step s dropping every scalar read before it at a step ≥ s — its purge of orphaned data,
/// which a resumed run's restart record relies on (its other purge, on any step going
/// backwards, is not modelled: lsnn's steps only go back at a restart). In the order read.
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
        let bytes = std::fs::read(&file).map_err(TrainError::io(&file))?;
        let (payloads, _) = scan(&bytes);
        for event in payloads.iter().map_while(|p| TbEvent::decode(p).ok()) {
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
