//! Standard output that never panics: `println!` panics when stdout is closed (`lsnn … | head
//! -1`) or full (`> /dev/full`). Every line goes through [`out`]; the first failed write marks
//! stdout broken, later lines are dropped, and the caller decides what a broken stdout means
//! (training stops with a checkpoint; eval and generate fail with the I/O exit code).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static BROKEN: AtomicBool = AtomicBool::new(false);

/// Writes `line` and a newline to stdout and flushes; false (and stdout marked broken) when the
/// write fails.
pub fn out(line: &str) -> bool {
    if BROKEN.load(Ordering::SeqCst) {
        return false;
    }
    let mut s = std::io::stdout().lock();
    let ok = writeln!(s, "{line}").and_then(|()| s.flush()).is_ok();
    if !ok {
        BROKEN.store(true, Ordering::SeqCst);
    }
    ok
}

/// Whether a write to stdout has failed.
pub fn broken() -> bool {
    BROKEN.load(Ordering::SeqCst)
}

/// Writes `line` to stderr, ignoring a failure (`eprintln!` would panic on a closed stderr).
pub fn err(line: &str) {
    let mut s = std::io::stderr().lock();
    let _ = writeln!(s, "{line}");
}
