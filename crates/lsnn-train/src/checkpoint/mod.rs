//! Checkpoints: the atomic set on disk (`set`: write a complete new set with its manifest,
//! sync, switch the `CURRENT` pointer with one rename; load with every file verified and
//! agreeing), the manifest of file hashes ([`manifest`]), one writer per run directory
//! ([`lock`]), the tensor key names and their checks ([`keys`]), and which sets a run keeps
//! ([`retention`]: its own lineage's latest, and the best by the monitored metric when asked).

pub mod keys;
pub mod lock;
pub mod manifest;
pub mod retention;
mod set;

pub use lock::{RunLock, LOCK_FILE};
pub use manifest::{Manifest, MANIFEST_FILE};
pub use set::*;
