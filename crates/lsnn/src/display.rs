//! Renders trainer events: an indicatif progress bar on a terminal, plain lines otherwise. Lines
//! go through [`crate::output`]: when stdout is closed or full, training is asked to stop (with
//! a checkpoint) instead of the process panicking.

use indicatif::{ProgressBar, ProgressStyle};
use lsnn_train::Event;
use std::io::IsTerminal;

/// One line to stdout; a failed write asks the trainer to stop.
fn emit(s: &str) {
    if !crate::output::out(s) {
        crate::signals::request_stop();
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Shows events.
pub struct Display {
    bar: Option<ProgressBar>,
    last_line: std::time::Instant,
}

impl Display {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        Display {
            bar: None,
            last_line: std::time::Instant::now(),
        }
    }

    fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => emit(s),
        }
    }

    /// Handles one event.
    pub fn on_event(&mut self, e: &Event) {
        match e {
            Event::Start {
                epochs,
                batches_per_epoch,
                parameters,
                resumed_at,
                baseline,
            } => {
                self.line(&format!(
                    "training: {parameters} parameters, {epochs} epochs x {batches_per_epoch} batches{}{}",
                    baseline.as_ref().map(|(n, v)| format!("; {n} {v:.4}")).unwrap_or_default(),
                    resumed_at.map(|b| format!("; resumed after {b} batches")).unwrap_or_default()
                ));
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::new((*epochs * *batches_per_epoch) as u64);
                    bar.set_style(
                        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    if let Some(b) = resumed_at {
                        bar.set_position(*b);
                    }
                    self.bar = Some(bar);
                }
            }
            Event::Batch {
                epoch,
                batch,
                of,
                step,
                loss,
                lr,
                tokens_per_s,
                live_bytes,
            } => {
                let msg = format!(
                    "epoch {} batch {batch}/{of} step {step} loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s live {:.1} MiB",
                    epoch + 1,
                    mib(*live_bytes)
                );
                match &self.bar {
                    Some(b) => {
                        b.inc(1);
                        b.set_message(msg);
                    }
                    None => {
                        if self.last_line.elapsed().as_secs_f64() >= 10.0 {
                            self.last_line = std::time::Instant::now();
                            emit(&msg);
                        }
                    }
                }
            }
            Event::ShardSizing { sizing, recorded } => self.line(&format!(
                "{}{}",
                sizing.describe(),
                if *recorded {
                    " (recorded when the run started)"
                } else {
                    ""
                }
            )),
            Event::Skipped { reason, total } => self.line(&format!(
                "skipped a batch ({reason}); {total} skipped so far"
            )),
            Event::Memory {
                label,
                usage,
                released,
            } => self.line(&format!(
                "memory [{label}]: live {:.1} MiB, peak {:.1} MiB, rss {:.1} MiB{}",
                mib(usage.live_bytes),
                mib(usage.peak_bytes),
                mib(usage.rss_bytes),
                released
                    .map(|r| format!(", cleanup released {:.1} MiB", mib(r)))
                    .unwrap_or_default()
            )),
            Event::EpochEnd {
                epoch,
                train_loss,
                eval,
            } => self.line(&format!(
                "epoch {}: train loss {train_loss:.4}, {}",
                epoch + 1,
                crate::commands::metrics_line(eval)
            )),
            Event::Checkpoint { dir, best } => self.line(&format!(
                "checkpoint: {}{}",
                dir.display(),
                if *best { " (best so far)" } else { "" }
            )),
            Event::EarlyStop { epoch } => {
                self.line(&format!("early stop after epoch {}", epoch + 1))
            }
            Event::MemoryAlert(a) => self.line(&alert_line(a)),
            Event::Firing { layers, .. } => self.line(&firing_line(layers)),
            Event::MemoryStages(r) => self.line(&stages_line(r)),
            Event::SpikeWarning(w) => self.line(&format!("warning: {w}")),
            Event::Notice(n) => crate::output::err(&format!("note: {n}")),
            // Drawn by `lsnn report` from the run's record, not printed.
            Event::SpikeRaster { .. } => {}
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// The spiking layers' firing as one line: each layer's mean rate and, when any, the share
/// of its neurons that never fired.
fn firing_line(layers: &[lsnn_train::firing::LayerFiring]) -> String {
    let parts: Vec<String> = layers
        .iter()
        .map(|l| {
            let silent = if l.silent_fraction > 0.0 {
                format!(", {:.0}% never fired", 100.0 * l.silent_fraction)
            } else {
                String::new()
            };
            format!("{} {:.2}%{silent}", l.name, 100.0 * l.mean_rate)
        })
        .collect();
    format!("firing rate: {}", parts.join("; "))
}

/// Peak memory by stage as one line: each stage's peak above its start, forward and backward.
fn stages_line(r: &lsnn_train::memory_stages::StageReport) -> String {
    let parts: Vec<String> = r
        .stages
        .iter()
        .map(|s| {
            let pass = match s.pass.as_str() {
                "forward" => " fwd",
                "backward" => " bwd",
                _ => "",
            };
            format!("{}{pass} {}", s.stage, size(s.peak_bytes))
        })
        .collect();
    format!(
        "memory by stage (probe step of {} rows, one thread; peak above each stage's start): {}; \
         whole step {}",
        r.batch_rows,
        parts.join(", "),
        size(r.step_peak_bytes)
    )
}

/// A memory alert as one line: what was crossed, the live figure and the threshold.
fn alert_line(a: &lsnn_train::lsnn_memory::MemoryAlert) -> String {
    use lsnn_train::lsnn_memory::AlertLevel;
    let name = |l: AlertLevel| match l {
        AlertLevel::Normal => "normal",
        AlertLevel::Warn => "warn",
        AlertLevel::Critical => "critical",
    };
    if a.is_rise() {
        format!(
            "memory alert: {}: live {} reached the {} threshold {}",
            name(a.to).to_uppercase(),
            size(a.bytes),
            name(a.to),
            size(a.threshold)
        )
    } else {
        format!(
            "memory alert: back to {}: live {} is below the {} threshold {} by more than the hysteresis",
            name(a.to),
            size(a.bytes),
            name(a.from),
            size(a.threshold)
        )
    }
}

/// Bytes in the unit that shows them: KiB below a MiB, MiB below a GiB, else GiB.
fn size(b: u64) -> String {
    match b {
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b if b < 1 << 30 => format!("{:.1} MiB", mib(b)),
        b => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
    }
}
