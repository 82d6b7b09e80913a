//! The leak suite's table, one row per case: live bytes, slope, peaks, RSS and the verdict, with
//! a marker on a case that leaked or a control that was not caught.

use super::detector::Verdict;
use super::runner::{CaseReport, Kind};

fn kib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

/// The header line of [`table`].
pub fn header() -> String {
    format!(
        "{:<40} {:<8} {:>5} {:>22} {:>10} {:>20} {:>20} {:>7}",
        "case",
        "kind",
        "iters",
        "live KiB start → end",
        "slope B/it",
        "peak KiB first → last",
        "rss KiB start → end",
        "verdict"
    )
}

/// One row of [`table`].
pub fn row(r: &CaseReport) -> String {
    format!(
        "{:<40} {:<8} {:>5} {:>22} {:>10.1} {:>20} {:>20} {:>7}{}",
        r.name,
        format!("{:?}", r.kind).to_lowercase(),
        r.iterations,
        format!("{} → {}", kib(r.live_start), kib(r.live_end)),
        r.slope_bytes_per_iter,
        format!("{} → {}", kib(r.peak_first), kib(r.peak_last)),
        format!("{} → {}", kib(r.rss_start), kib(r.rss_end)),
        match r.verdict {
            Verdict::Pass => "pass",
            Verdict::Leak => "leak",
        },
        if r.ok {
            ""
        } else if r.kind == Kind::Control {
            "   <- CONTROL NOT CAUGHT"
        } else {
            "   <- LEAK"
        }
    )
}

/// The header and a row per case.
pub fn table(rows: &[CaseReport]) -> String {
    let mut s = header();
    for r in rows {
        s.push('\n');
        s.push_str(&row(r));
    }
    s
}
