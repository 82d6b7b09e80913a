//! SIGINT and SIGTERM during training: the first sets the stop flag (the trainer finishes its
//! micro-batch, saves a checkpoint, and `lsnn` exits with [`crate::exit::INTERRUPTED`]); a second
//! exits at once with 128 + the signal's number. Saves are atomic, so the previous checkpoint
//! stays loadable either way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work: an atomic load of the initialised cell, an atomic swap, _exit.
    if let Some(flag) = FLAG.get() {
        if flag.swap(true, Ordering::SeqCst) {
            // SAFETY: _exit is async-signal-safe and ends the process without running destructors.
            unsafe { libc::_exit(128 + sig) };
        }
    }
}

/// The flag the trainer polls; installs the handlers on first use.
pub fn stop_flag() -> Arc<AtomicBool> {
    // The cell is set before any handler can read it: the handlers are installed after.
    FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a plain C handler that only touches an atomic and calls _exit; sigaction with a
        // zeroed, then filled, struct is the documented way to install it.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    FLAG.get().expect("initialised above").clone()
}

/// Sets the stop flag as a signal would (a closed stdout stops training the same way).
pub fn request_stop() {
    if let Some(f) = FLAG.get() {
        f.store(true, Ordering::SeqCst);
    }
}
