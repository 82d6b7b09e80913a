//! One writer per run directory (design §4.4): an advisory OS lock on `RUN/LOCK`, taken before
//! anything is written and held for the writer's life. The kernel releases it when the process
//! exits or dies, so a crashed trainer never leaves a stale lock. The holder writes its pid into
//! the file, so that a second writer's error can name it.

use crate::error::{Result, TrainError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The lock file of a run directory.
pub const LOCK_FILE: &str = "LOCK";

/// The exclusive lock on a run directory; released on drop (and by the OS on exit or crash).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    dir: PathBuf,
}

impl RunLock {
    /// Takes the lock on `run_dir` (created if missing), or fails at once with
    /// [`TrainError::Locked`] naming the holder's pid.
    pub fn acquire(run_dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(run_dir).map_err(TrainError::io(run_dir))?;
        let path = run_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder wrote its pid; a read that fails or finds none still refuses.
                let _ = file.read_to_string(&mut text);
                let pid = text.trim().parse::<u32>().ok();
                return Err(TrainError::Locked {
                    dir: run_dir.to_path_buf(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(TrainError::io(&path)(e)),
        }
        file.set_len(0).map_err(TrainError::io(&path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(TrainError::io(&path))?;
        writeln!(file, "{}", std::process::id()).map_err(TrainError::io(&path))?;
        file.sync_all().map_err(TrainError::io(&path))?;
        Ok(RunLock {
            file,
            dir: run_dir.to_path_buf(),
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate.
        let _ = self.file.unlock();
    }
}
