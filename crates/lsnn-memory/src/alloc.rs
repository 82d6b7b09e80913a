//! A counting global allocator: exact live, peak and cumulative byte counts for the whole process.
//!
//! [`CountingAlloc`] wraps [`System`]. Every allocation and free updates a handful of process-wide
//! relaxed atomics, so the figures can be read from any thread at the cost of an atomic load. The
//! figures are process-wide (design §7): every thread counts, candle's worker pools and the test
//! harness included, so exact assertions need isolation (one test thread, a lock, or a child).
//!
//! The peak is a *window* high-water mark: [`PeakWindow`] (and the scopes built on it) restart the
//! peak at the current live figure and, when closed, fold their own peak back into the enclosing
//! window, so nested windows on one thread report exact peaks. The largest single allocation is
//! windowed the same way: what a window reports is the largest block requested while it was open
//! (freed or not), so "no [L, L] buffer was allocated" is a measured fact, not a guess from the
//! peak. (The largest block *still live* is not tracked: knowing it exactly would need a record of
//! every live block.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_TOTAL: AtomicU64 = AtomicU64::new(0);
static LARGEST: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// A [`GlobalAlloc`] that counts bytes and calls, then forwards to [`System`].
///
/// Install it in a binary or test crate:
///
/// ```
/// use lsnn_memory::CountingAlloc;
/// #[global_allocator]
/// static ALLOC: CountingAlloc = CountingAlloc;
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

#[inline]
fn on_alloc(size: u64) {
    // Read first: a store on every allocation would bounce the flag's cache line between cores.
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    ALLOCATED_TOTAL.fetch_add(size, Ordering::Relaxed);
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(live, Ordering::Relaxed);
    // Read first: a new largest block is rare, and a read shares the cache line.
    if size > LARGEST.load(Ordering::Relaxed) {
        LARGEST.fetch_max(size, Ordering::Relaxed);
    }
}

#[inline]
fn on_free(size: u64) {
    FREES.fetch_add(1, Ordering::Relaxed);
    LIVE.fetch_sub(size, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only adds
// atomic bookkeeping, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for CountingAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size() as u64);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            on_alloc(layout.size() as u64);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was returned by this allocator (hence by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        on_free(layout.size() as u64);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, which we pass on.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            // A realloc is one free and one allocation of the new size.
            on_free(layout.size() as u64);
            on_alloc(new_size as u64);
        }
        new
    }
}

/// A snapshot of the allocator's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AllocStats {
    /// Bytes currently allocated and not yet freed.
    pub live_bytes: u64,
    /// Highest `live_bytes` since the current peak window opened.
    pub peak_bytes: u64,
    /// Number of allocations (including the allocation half of each realloc).
    pub allocations: u64,
    /// Number of frees (including the free half of each realloc).
    pub frees: u64,
    /// Bytes ever allocated, cumulatively.
    pub allocated_bytes_total: u64,
    /// The largest single allocation since the current peak window opened (freed or not).
    #[serde(default)]
    pub largest_allocation_bytes: u64,
}

impl AllocStats {
    /// Counter differences `self − earlier` (live and peak are taken from `self`).
    pub fn since(&self, earlier: &AllocStats) -> AllocStats {
        AllocStats {
            live_bytes: self.live_bytes,
            peak_bytes: self.peak_bytes,
            allocations: self.allocations.wrapping_sub(earlier.allocations),
            frees: self.frees.wrapping_sub(earlier.frees),
            allocated_bytes_total: self
                .allocated_bytes_total
                .wrapping_sub(earlier.allocated_bytes_total),
            largest_allocation_bytes: self.largest_allocation_bytes,
        }
    }
}

/// True once a [`CountingAlloc`] installed as the global allocator has served an allocation.
pub fn is_installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// Bytes currently allocated through the counting allocator (0 when it is not installed).
pub fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// The peak of live bytes in the current peak window.
pub fn peak_bytes() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// Restarts the peak at the current live figure and returns the peak it replaced.
///
/// This discards the enclosing peak; prefer [`PeakWindow`], which folds back on close.
pub fn reset_peak() -> u64 {
    PEAK.swap(LIVE.load(Ordering::Relaxed), Ordering::Relaxed)
}

/// The largest single allocation (bytes) in the current peak window, freed or not.
pub fn largest_allocation_bytes() -> u64 {
    LARGEST.load(Ordering::Relaxed)
}

/// Restarts the largest-allocation figure at 0 and returns the one it replaced.
///
/// This discards the enclosing window's figure; prefer [`PeakWindow`], which folds back on close.
pub fn reset_largest_allocation() -> u64 {
    LARGEST.swap(0, Ordering::Relaxed)
}

/// Number of allocations so far.
pub fn allocation_count() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

/// Number of frees so far.
pub fn free_count() -> u64 {
    FREES.load(Ordering::Relaxed)
}

/// All counters at once.
pub fn stats() -> AllocStats {
    AllocStats {
        live_bytes: live_bytes(),
        peak_bytes: peak_bytes(),
        allocations: allocation_count(),
        frees: free_count(),
        allocated_bytes_total: ALLOCATED_TOTAL.load(Ordering::Relaxed),
        largest_allocation_bytes: largest_allocation_bytes(),
    }
}

/// A nested peak measurement: opening restarts the peak at the current live figure (and the
/// largest allocation at 0), closing returns the peak reached while open and restores the
/// enclosing peak as `max(enclosing, this window's peak)` (the largest allocation likewise).
///
/// Windows must close in reverse order of opening (on one thread that is what scoped guards do).
#[derive(Debug)]
#[must_use = "a peak window measures until it is closed"]
pub struct PeakWindow {
    outer_peak: u64,
    outer_largest: u64,
    start_live: u64,
    closed: bool,
}

impl PeakWindow {
    /// Opens a window at the current live figure.
    pub fn open() -> Self {
        let start_live = live_bytes();
        let outer_peak = PEAK.swap(start_live, Ordering::Relaxed);
        let outer_largest = LARGEST.swap(0, Ordering::Relaxed);
        PeakWindow {
            outer_peak,
            outer_largest,
            start_live,
            closed: false,
        }
    }

    /// Live bytes when the window opened.
    pub fn start_live(&self) -> u64 {
        self.start_live
    }

    /// The peak so far inside this window.
    pub fn current_peak(&self) -> u64 {
        peak_bytes()
    }

    /// The largest single allocation so far inside this window (freed or not).
    pub fn largest_allocation(&self) -> u64 {
        largest_allocation_bytes()
    }

    /// Closes the window: returns its peak and folds it into the enclosing one.
    pub fn close(mut self) -> u64 {
        self.fold()
    }

    fn fold(&mut self) -> u64 {
        self.closed = true;
        let peak = peak_bytes();
        PEAK.fetch_max(self.outer_peak, Ordering::Relaxed);
        LARGEST.fetch_max(self.outer_largest, Ordering::Relaxed);
        peak
    }
}

impl Drop for PeakWindow {
    fn drop(&mut self) {
        if !self.closed {
            self.fold();
        }
    }
}
