//! Leak checks: the [`detector`] (warm-up + N iterations, growth, slope, peak trend and a
//! verdict, design §7), the [`runner`] that runs named cases and the controls that must fail
//! with isolation built in (a child process per case, or a process-wide lock and one compute
//! thread), and the [`report`] table.
//!
//! A user's own leak test — a case for their training step and a control that leaks on top of
//! it — runs through [`runner::check_in_children`] from a `#[test]`, in a test binary that
//! installs the counting allocator:
//!
//! ```no_run
//! use lsnn_memory::leak::runner::{check_in_children, LeakCase};
//! use lsnn_memory::CountingAlloc;
//!
//! #[global_allocator]
//! static ALLOC: CountingAlloc = CountingAlloc;
//!
//! fn my_step_leaks_nothing() {
//!     let cases = vec![
//!         LeakCase::case("step", "one training step", || {
//!             Ok(Box::new(|_i| Ok(())))
//!         }),
//!         LeakCase::control("step/control", "the step, keeping 4 KiB per call", || {
//!             let mut kept = Vec::new();
//!             Ok(Box::new(move |_i| {
//!                 kept.push(vec![0u8; 4096]);
//!                 Ok(())
//!             }))
//!         }),
//!     ];
//!     // The test's own path (module::name) lets each child run just this test.
//!     let suite = check_in_children("my_step_leaks_nothing", &cases).unwrap();
//!     assert!(suite.ok(), "{}", suite.table());
//! }
//! ```

pub mod detector;
pub mod report;
pub mod runner;

pub use detector::{slope, LeakConfig, LeakDetector, LeakReport, Verdict};
