//! Which checkpoint sets a run keeps (design §4.1): the latest (named by `CURRENT`) and, when the run keeps
//! its best set, the one named by `BEST` (the best by the monitored metric). A pure policy,
//! tested without touching disk, and the pointer it reads.

use std::path::{Path, PathBuf};

/// The pointer file naming the best set.
pub const BEST: &str = "BEST";

/// The sets of `all` to remove when `current` and `best` are to be kept.
pub fn to_remove<'a>(all: &'a [String], current: &str, best: Option<&str>) -> Vec<&'a str> {
    all.iter()
        .map(String::as_str)
        .filter(|n| *n != current && Some(*n) != best)
        .collect()
}

/// The set `BEST` names, if the file exists and names a directory of the run.
pub fn best_name(run_dir: &Path) -> Option<String> {
    let name = std::fs::read_to_string(run_dir.join(BEST)).ok()?;
    let name = name.trim();
    (!name.is_empty() && !name.contains('/') && !name.contains("..") && run_dir.join(name).is_dir())
        .then(|| name.to_string())
}

/// The directory of the run's best set, if it keeps one.
pub fn best_dir(run_dir: &Path) -> Option<PathBuf> {
    best_name(run_dir).map(|n| run_dir.join(n))
}
