//! What the operating system sees: resident set size from `/proc/self/statm`, its high-water mark
//! `VmHWM` from `/proc/self/status`, physical and available memory from `sysconf` and
//! `/proc/meminfo`. Memory-mapped files (safetensors) show up here and not in the allocator.

use crate::error::{MemoryError, Result};
use std::path::Path;

fn read_proc(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| MemoryError::Proc {
        path: path.into(),
        message: e.to_string(),
    })
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Parses the resident-pages field (the second) of a `statm` line into bytes.
pub fn parse_statm(text: &str, page_size: u64) -> Result<u64> {
    let resident = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse::<u64>().ok())
        .ok_or_else(|| MemoryError::Proc {
            path: "/proc/self/statm".into(),
            message: format!("expected at least two integer fields, got {text:?}"),
        })?;
    Ok(resident * page_size)
}

/// Finds `key:  N kB` in a `/proc` status-style file and returns N·1024.
pub fn parse_kb_field(text: &str, key: &str, path: &Path) -> Result<u64> {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            if let Some(rest) = rest.strip_prefix(':') {
                let mut it = rest.split_whitespace();
                let n = it.next().and_then(|n| n.parse::<u64>().ok());
                let unit = it.next();
                return match (n, unit) {
                    (Some(n), Some("kB")) => Ok(n * 1024),
                    _ => Err(MemoryError::Proc {
                        path: path.into(),
                        message: format!("expected `{key}: <n> kB`, got {line:?}"),
                    }),
                };
            }
        }
    }
    Err(MemoryError::Proc {
        path: path.into(),
        message: format!("no `{key}` field"),
    })
}

/// Resident set size of this process in bytes.
pub fn rss_bytes() -> Result<u64> {
    if !cfg!(target_os = "linux") {
        return Err(MemoryError::Unsupported("rss outside linux".into()));
    }
    parse_statm(&read_proc("/proc/self/statm")?, page_size())
}

/// High-water mark of the resident set (`VmHWM`) in bytes.
pub fn peak_rss_bytes() -> Result<u64> {
    if !cfg!(target_os = "linux") {
        return Err(MemoryError::Unsupported("VmHWM outside linux".into()));
    }
    let path = "/proc/self/status";
    parse_kb_field(&read_proc(path)?, "VmHWM", Path::new(path))
}

/// Total physical memory in bytes.
pub fn physical_memory_bytes() -> Result<u64> {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    if pages <= 0 {
        return Err(MemoryError::Unsupported("sysconf(_SC_PHYS_PAGES)".into()));
    }
    Ok(pages as u64 * page_size())
}

/// Memory the kernel says is available for new allocations (`MemAvailable`), in bytes.
pub fn available_memory_bytes() -> Result<u64> {
    if !cfg!(target_os = "linux") {
        return physical_memory_bytes();
    }
    let path = "/proc/meminfo";
    parse_kb_field(&read_proc(path)?, "MemAvailable", Path::new(path))
}

/// Returns freed heap memory to the operating system where the platform allows it
/// (glibc `malloc_trim(0)`); returns whether anything was released (always false elsewhere).
pub fn trim_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own arenas.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        tracing::debug!("allocator trim is not available on this platform; nothing released");
        false
    }
}
