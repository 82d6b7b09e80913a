//! The trainer's events as the dashboard's messages: an event name and one line of JSON
//! (design §10.7 lists them).

use super::hub::Kind;
use crate::trainer::{Event, TrainSummary};
use serde_json::{json, Value};

/// Turns events into messages; it counts the batches, as the run's record does, so every
/// point has the run's position (batches since the start, across resumes).
#[derive(Debug, Default)]
pub(super) struct Messages {
    position: u64,
}

impl Messages {
    /// The message for `e`, if the dashboard shows it.
    pub(super) fn of(&mut self, e: &Event) -> Option<(Kind, &'static str, Value)> {
        Some(match e {
            Event::Start {
                epochs,
                batches_per_epoch,
                parameters,
                resumed_at,
                baseline,
            } => {
                self.position = resumed_at.unwrap_or(0);
                (
                    Kind::Start,
                    "start",
                    json!({
                        "epochs": epochs,
                        "batches_per_epoch": batches_per_epoch,
                        "parameters": parameters,
                        "resumed_at": resumed_at,
                        "baseline": baseline.as_ref().map(|(n, v)| json!({"name": n, "value": v})),
                    }),
                )
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
                self.position += 1;
                (
                    Kind::Step,
                    "step",
                    json!({
                        "position": self.position,
                        "epoch": epoch,
                        "batch": batch,
                        "of": of,
                        "step": step,
                        "loss": loss,
                        "lr": lr,
                        "items_per_s": tokens_per_s,
                        "live": live_bytes,
                    }),
                )
            }
            Event::Memory {
                label,
                usage,
                released,
            } => (
                Kind::Memory,
                "memory",
                json!({
                    "position": self.position,
                    "label": label,
                    "live": usage.live_bytes,
                    "peak": usage.peak_bytes,
                    "rss": usage.rss_bytes,
                    "released": released,
                }),
            ),
            Event::EpochEnd {
                epoch,
                train_loss,
                eval,
            } => (
                Kind::Epoch,
                "epoch",
                json!({
                    "position": self.position,
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "metrics": eval.metrics.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
                }),
            ),
            Event::Firing { epoch, layers } => (
                Kind::Firing,
                "firing",
                json!({
                    "position": self.position,
                    "epoch": epoch,
                    "layers": layers.iter().map(|l| json!({
                        "name": l.name,
                        "rate": l.mean_rate,
                        "silent": l.silent_fraction,
                        "saturated": l.saturated_fraction,
                    })).collect::<Vec<_>>(),
                }),
            ),
            Event::MemoryStages(report) => (Kind::Stages, "stages", json!(report)),
            Event::MemoryAlert(a) => self.log(
                if a.is_rise() {
                    "alert"
                } else {
                    "alert_cleared"
                },
                format!(
                    "memory {:?} → {:?}: {} bytes live, threshold {} bytes",
                    a.from, a.to, a.bytes, a.threshold
                ),
            ),
            Event::SpikeWarning(w) => self.log("warning", w.to_string()),
            Event::Checkpoint { dir, best } => self.log(
                "checkpoint",
                format!(
                    "checkpoint {}{}",
                    dir.display(),
                    if *best { " (best so far)" } else { "" }
                ),
            ),
            Event::Skipped { reason, total } => {
                self.log("skipped", format!("skipped ({total} so far): {reason}"))
            }
            Event::EarlyStop { epoch } => self.log(
                "early_stop",
                format!("early stop after epoch {}", epoch + 1),
            ),
            Event::Notice(text) => self.log("notice", text.clone()),
            // The raster is the report's (a page of spike dots per epoch is too much to stream).
            Event::ShardSizing { .. } | Event::SpikeRaster { .. } => return None,
        })
    }

    fn log(&self, kind: &str, text: String) -> (Kind, &'static str, Value) {
        (
            Kind::Log,
            "log",
            json!({"position": self.position, "kind": kind, "text": text}),
        )
    }
}

/// The end message: how the run ended and its last figures.
pub(super) fn end(outcome: Result<&TrainSummary, &str>) -> Value {
    match outcome {
        Ok(s) => json!({
            "state": if s.interrupted { "stopped" } else { "finished" },
            "steps": s.steps,
            "batches": s.batches,
            "skipped": s.skipped,
            "items_per_s": s.tokens_per_s,
            "seconds": s.seconds,
            "metrics": s.last_eval.as_ref().map(|e| e.metrics.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>()),
        }),
        Err(why) => json!({"state": "failed", "error": why}),
    }
}
