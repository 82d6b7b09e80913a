//! The set's manifest (set format 2, design §4.3): the length and SHA-256 of every file the set
//! holds, written last before the set becomes visible, and checked against the very bytes a
//! loader reads. A set without one is set format 1 (round 1 and round 2 before this change): it
//! still loads, with a notice that its content is not verified.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest file of a set.
pub const MANIFEST_FILE: &str = "MANIFEST.json";
/// The set format written now.
pub const SET_FORMAT: u32 = 2;

/// One file's length and content hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Length in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        FileDigest {
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        }
    }
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a set holds, file by file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The set format (2).
    pub set_format: u32,
    /// Every file of the set but the manifest itself.
    pub files: BTreeMap<String, FileDigest>,
}

impl Manifest {
    /// The manifest of `files`.
    pub fn of(files: &[(&str, &[u8])]) -> Self {
        Manifest {
            set_format: SET_FORMAT,
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), FileDigest::of(b)))
                .collect(),
        }
    }

    /// Reads `dir`'s manifest: `None` for a set written before manifests (set format 1).
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::io(&path)(e)),
        };
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| TrainError::Corrupted {
            path: path.clone(),
            message: format!("not a set manifest ({e}); expected {{\"set_format\", \"files\"}}"),
        })?;
        if m.set_format != SET_FORMAT {
            return Err(TrainError::ckpt(
                &path,
                format!(
                    "set format {}, expected {SET_FORMAT} (or a set without a manifest)",
                    m.set_format
                ),
            ));
        }
        Ok(Some(m))
    }

    /// Checks the bytes read from `dir/name` against the recorded digest.
    pub fn check(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        let path = dir.join(name);
        let want = self.files.get(name).ok_or_else(|| TrainError::Corrupted {
            path: path.clone(),
            message: format!("not listed in {MANIFEST_FILE}"),
        })?;
        if want.bytes != bytes.len() as u64 {
            return Err(TrainError::Corrupted {
                path,
                message: format!(
                    "{} bytes, the set recorded {} (truncated or replaced)",
                    bytes.len(),
                    want.bytes
                ),
            });
        }
        let got = sha256_hex(bytes);
        if got != want.sha256 {
            return Err(TrainError::Corrupted {
                path,
                message: format!(
                    "content hash {}…, the set recorded {}… (the file changed after it was saved)",
                    &got[..12],
                    crate::error::clip(&want.sha256.chars().take(12).collect::<String>())
                ),
            });
        }
        Ok(())
    }

    /// The manifest's JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest serialises") + "\n"
    }
}
