//! A bounded timeline of memory samples (a ring buffer, so recording never grows memory without
//! bound) with CSV and Chrome Trace Event exports.
//!
//! The Chrome export is `{"traceEvents": [...], "displayTimeUnit": "ms"}` with one counter event
//! (`"ph": "C"`, name `memory`, `args` = live/peak/rss bytes) per sample and one instant event
//! (`"ph": "i"`) naming the sample's label; ui.perfetto.dev and chrome://tracing open it.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt::Write as _;

/// One memory sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Microseconds since the manager was created.
    pub ts_us: u64,
    /// What was happening (`epoch 3`, `cleanup`, a scope name, …).
    pub label: String,
    /// Live bytes (allocator, else RSS).
    pub live_bytes: u64,
    /// Peak bytes of the current window.
    pub peak_bytes: u64,
    /// Resident set size, 0 where unavailable.
    pub rss_bytes: u64,
}

/// A ring buffer of [`Sample`]s holding at most `capacity` entries.
#[derive(Debug, Clone)]
pub struct Timeline {
    capacity: usize,
    samples: VecDeque<Sample>,
    dropped: u64,
}

impl Timeline {
    /// An empty timeline keeping the newest `capacity` samples.
    pub fn new(capacity: std::num::NonZeroUsize) -> Self {
        let capacity = capacity.get();
        Timeline {
            capacity,
            samples: VecDeque::with_capacity(capacity),
            dropped: 0,
        }
    }

    /// Appends a sample, evicting the oldest when full.
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
            self.dropped += 1;
        }
        self.samples.push_back(s);
    }

    /// Samples currently held, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The most samples held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples evicted so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// CSV with a header: `ts_us,label,live_bytes,peak_bytes,rss_bytes`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("ts_us,label,live_bytes,peak_bytes,rss_bytes\n");
        for s in &self.samples {
            let label = if s.label.contains([',', '"', '\n']) {
                format!("\"{}\"", s.label.replace('"', "\"\""))
            } else {
                s.label.clone()
            };
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                s.ts_us, label, s.live_bytes, s.peak_bytes, s.rss_bytes
            );
        }
        out
    }

    /// The Chrome Trace Event document (see the module docs).
    pub fn to_chrome_trace(&self) -> serde_json::Value {
        let pid = std::process::id();
        let events: Vec<serde_json::Value> = self
            .samples
            .iter()
            .flat_map(|s| chrome_events(s, pid))
            .collect();
        serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ms" })
    }
}

/// A sample's two trace events: the counter and the instant naming its label.
fn chrome_events(s: &Sample, pid: u32) -> [serde_json::Value; 2] {
    [
        serde_json::json!({
            "ph": "C",
            "name": "memory",
            "ts": s.ts_us,
            "pid": pid,
            "tid": 0,
            "args": {
                "live_bytes": s.live_bytes,
                "peak_bytes": s.peak_bytes,
                "rss_bytes": s.rss_bytes,
            },
        }),
        serde_json::json!({
            "ph": "i",
            "name": s.label,
            "ts": s.ts_us,
            "pid": pid,
            "tid": 0,
            "s": "g",
        }),
    ]
}

/// Writes the Chrome Trace Event document of `samples` (the same as
/// [`Timeline::to_chrome_trace`]'s) to `out` one event at a time: memory stays constant however
/// many samples there are, for a timeline kept in a file rather than in memory.
pub fn write_chrome_trace<W: std::io::Write>(
    samples: impl IntoIterator<Item = Sample>,
    mut out: W,
) -> std::io::Result<()> {
    let pid = std::process::id();
    out.write_all(b"{\"displayTimeUnit\":\"ms\",\"traceEvents\":[")?;
    let mut first = true;
    for s in samples {
        for e in chrome_events(&s, pid) {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(&mut out, &e)?;
        }
    }
    out.write_all(b"]}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streamed_trace_is_the_documents_json() {
        let mut t = Timeline::new(std::num::NonZeroUsize::new(4).unwrap());
        for i in 0..3u64 {
            t.push(Sample {
                ts_us: 10 * i,
                label: format!("step \"{i}\""),
                live_bytes: 100 + i,
                peak_bytes: 200 + i,
                rss_bytes: 300 + i,
            });
        }
        let mut streamed = Vec::new();
        write_chrome_trace(t.samples().cloned(), &mut streamed).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&streamed).unwrap();
        assert_eq!(parsed, t.to_chrome_trace());
        let mut empty = Vec::new();
        write_chrome_trace(Vec::new(), &mut empty).unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(parsed["traceEvents"], serde_json::json!([]));
    }
}
