//! `.npz`: a ZIP archive (stored or deflated members, ZIP64 as `np.savez` writes them) of
//! `.npy` files. The archive is read by the `zip` crate (its central directory, sizes and
//! CRC-32 checks); each member through [`super::npy`].

use super::{npy, Array, ArrayError};
use std::collections::BTreeMap;
use std::io::Read;

/// The most bytes one member may inflate to beyond what its central-directory entry claims: a
/// member is read up to its claimed size plus one byte, so a lying entry (a "zip bomb") is
/// caught without inflating it whole.
const SLACK: u64 = 1;

/// Every member of the archive as an array, by name without `.npy`.
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, Array>, ArrayError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ArrayError::new(format!("not a readable .npz (ZIP) archive: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut member = zip
            .by_index(i)
            .map_err(|e| ArrayError::new(format!("archive member {i}: {e}")))?;
        let full = member
            .name()
            .map_err(|e| ArrayError::new(format!("archive member {i}: unreadable name: {e}")))?
            .into_owned();
        let Some(name) = full.strip_suffix(".npy") else {
            return Err(ArrayError::new(format!(
                "archive member {:?} is not an .npy array; expected only arrays as np.savez writes them",
                crate::error::clip(&full)
            )));
        };
        let name = name.to_owned();
        let claimed = member.size();
        // The claimed size bounds the read; it cannot exceed the memory of the machine either.
        let limit = claimed.saturating_add(SLACK);
        if let Ok(free) = lsnn_memory::rss::available_memory_bytes() {
            if claimed > free {
                return Err(ArrayError::new(format!(
                    "array {name:?} claims {claimed} bytes uncompressed; {free} bytes of memory are available"
                )));
            }
        }
        let mut buf = Vec::with_capacity(claimed.min(1 << 30) as usize);
        (&mut member)
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| ArrayError::new(format!("array {name:?}: cannot read its member: {e}")))?;
        if buf.len() as u64 != claimed {
            let held = if buf.len() as u64 > claimed {
                "more".to_string()
            } else {
                buf.len().to_string()
            };
            return Err(ArrayError::new(format!(
                "array {name:?}: the archive says {claimed} bytes, the member holds {held}"
            )));
        }
        let array =
            npy::parse(&buf).map_err(|e| ArrayError::new(format!("array {name:?}: {e}")))?;
        if out.insert(name.clone(), array).is_some() {
            return Err(ArrayError::new(format!(
                "array {name:?} appears twice in the archive"
            )));
        }
    }
    Ok(out)
}
