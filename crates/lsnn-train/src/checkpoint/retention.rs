//! Which checkpoint sets a save removes (design §4.4), and the debris of crashed saves.
//!
//! A run's sets carry its **lineage** (in `trainer_state.json`): an id drawn when the run first
//! starts and kept by every resume that continues it. After a save, retention removes only sets
//! of the same lineage at or below the new set's step — never the set `CURRENT` names, never the
//! one `BEST` names, never another run's set, never one whose state cannot be read, and never one
//! ahead of the new set (resuming from an older set must not discard the newer branch). A set
//! written before lineages existed belongs to the run that resumed it (`adopted:<set name>`).
//! Replacing a run (`--overwrite`) removes every other set too (its best set and `BEST`
//! included), once the new run's first set is safely current. A run whose `CURRENT` is missing
//! (a first save killed before the pointer) loads its newest readable set.

use super::set::{CURRENT, STATE_FILE};
use std::path::{Path, PathBuf};

/// The pointer file naming the best set.
pub const BEST: &str = "BEST";
/// The prefix of a set being written (renamed to its final name once complete).
pub const PARTIAL_PREFIX: &str = ".partial-";

/// What retention needs to know about a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// The directory name.
    pub name: String,
    /// Its lineage, if its state records one.
    pub lineage: Option<String>,
    /// Its step, if its state can be read.
    pub step: Option<u64>,
}

/// The lineage that adopts a set written before lineages existed.
pub fn adopted_lineage(set_name: &str) -> String {
    format!("adopted:{set_name}")
}

fn belongs(info: &SetInfo, lineage: &str) -> bool {
    match &info.lineage {
        Some(l) => l == lineage,
        None => adopted_lineage(&info.name) == lineage,
    }
}

/// The sets of `all` a save of step `step` in `lineage` removes (see the module docs).
pub fn to_remove<'a>(
    all: &'a [SetInfo],
    current: &str,
    best: Option<&str>,
    lineage: Option<&str>,
    step: u64,
    replace_others: bool,
) -> Vec<&'a str> {
    all.iter()
        .filter(|s| s.name != current && (replace_others || Some(s.name.as_str()) != best))
        .filter(|s| {
            replace_others
                || lineage.is_some_and(|l| belongs(s, l) && s.step.is_some_and(|st| st <= step))
        })
        .map(|s| s.name.as_str())
        .collect()
}

/// The sets of a run directory, with what their states say.
pub fn list_sets(run_dir: &Path) -> Vec<SetInfo> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut v: Vec<SetInfo> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ckpt-"))
        .map(|name| {
            let state: Option<serde_json::Value> =
                std::fs::read_to_string(run_dir.join(&name).join(STATE_FILE))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
            SetInfo {
                lineage: state
                    .as_ref()
                    .and_then(|s| s["lineage"].as_str().map(str::to_owned)),
                step: state.as_ref().and_then(|s| s["step"].as_u64()),
                name,
            }
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// The set a pointer file names, if it exists and names a directory of the run.
pub fn pointer_target(run_dir: &Path, pointer: &str) -> Option<String> {
    let name = std::fs::read_to_string(run_dir.join(pointer)).ok()?;
    let name = name.trim();
    (!name.is_empty() && !name.contains('/') && !name.contains("..") && run_dir.join(name).is_dir())
        .then(|| name.to_string())
}

/// The set of highest step among those whose state can be read (for a run without `CURRENT`:
/// its first save was killed before the pointer was written).
pub fn newest_set(run_dir: &Path) -> Option<String> {
    list_sets(run_dir)
        .into_iter()
        .filter_map(|s| s.step.map(|st| (st, s.name)))
        .max()
        .map(|(_, n)| n)
}

/// The set `BEST` names, if the file exists and names a directory of the run.
pub fn best_name(run_dir: &Path) -> Option<String> {
    pointer_target(run_dir, BEST)
}

/// The directory of the run's best set, if it keeps one.
pub fn best_dir(run_dir: &Path) -> Option<PathBuf> {
    best_name(run_dir).map(|n| run_dir.join(n))
}

/// What is in `run_dir` that makes it a run: `Some(description)` when it has a `CURRENT`
/// pointer or any checkpoint set.
pub fn existing_run(run_dir: &Path) -> Option<String> {
    if run_dir.join(CURRENT).exists() {
        let target = pointer_target(run_dir, CURRENT).unwrap_or_else(|| "?".into());
        return Some(format!("CURRENT -> {target}"));
    }
    let sets = list_sets(run_dir);
    (!sets.is_empty()).then(|| format!("{} checkpoint set(s), e.g. {}", sets.len(), sets[0].name))
}

/// Removes what crashed saves left behind — sets still being written (`.partial-*`) and pointer
/// temp files (`CURRENT.tmp`, `BEST.tmp`) — and says what it removed. Call it holding the run's
/// lock (nobody else is writing then).
pub fn remove_leftovers(run_dir: &Path) -> Vec<String> {
    let mut said = Vec::new();
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return said;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let partial = name.starts_with(PARTIAL_PREFIX) && path.is_dir();
        let tmp =
            (name == format!("{CURRENT}.tmp") || name == format!("{BEST}.tmp")) && path.is_file();
        let res = if partial {
            std::fs::remove_dir_all(&path)
        } else if tmp {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        said.push(match res {
            Ok(()) => format!(
                "removed {} left by an interrupted save: {}",
                if partial {
                    "an incomplete set"
                } else {
                    "a pointer temp file"
                },
                path.display()
            ),
            Err(err) => format!("could not remove {} ({err})", path.display()),
        });
    }
    said.sort();
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: &str, lineage: Option<&str>, step: Option<u64>) -> SetInfo {
        SetInfo {
            name: name.into(),
            lineage: lineage.map(Into::into),
            step,
        }
    }

    #[test]
    fn only_this_lineage_at_or_below_the_step_goes() {
        let all = [
            s("ckpt-a", Some("L"), Some(10)),
            s("ckpt-b", Some("L"), Some(20)),
            s("ckpt-c", Some("M"), Some(5)),
            s("ckpt-d", None, Some(3)),
            s("ckpt-e", Some("L"), None),
            s("ckpt-f", Some("L"), Some(40)),
            s("ckpt-cur", Some("L"), Some(30)),
        ];
        assert_eq!(
            to_remove(&all, "ckpt-cur", Some("ckpt-a"), Some("L"), 30, false),
            ["ckpt-b"]
        );
        // A set written before lineages belongs to the run that adopted it.
        assert_eq!(
            to_remove(&all, "ckpt-cur", None, Some("adopted:ckpt-d"), 30, false),
            ["ckpt-d"]
        );
        // No lineage known: nothing goes; replacing: everything but the current set (the
        // replaced run's best set goes with it).
        assert!(to_remove(&all, "ckpt-cur", None, None, 30, false).is_empty());
        assert_eq!(
            to_remove(&all, "ckpt-cur", Some("ckpt-a"), Some("L"), 30, true).len(),
            6
        );
    }
}
