//! The trainer's events as TensorBoard scalars (design §10.1): what `lsnn train --tensorboard`
//! writes, and what a library user's event callback can write too.

use super::writer::{wall_time_now, EventFileWriter};
use crate::trainer::Event;
use crate::Result;
use lsnn_memory::AlertLevel;
use std::path::Path;
use std::time::{Duration, Instant};

/// Turns the trainer's [`Event`]s into scalars in one event file.
///
/// The step axis is the micro-batch count (the trainer's `batches_seen`): every batch has one,
/// where optimizer steps repeat under gradient accumulation. Batches write `train/loss`,
/// `train/lr`, `train/items_per_s` and `memory/live_bytes`; an epoch's end writes
/// `epoch/train_loss` and `val/<metric>` for each evaluated metric; memory lines write
/// `memory/rss_bytes` and `memory/peak_live_bytes`; skips write `train/skipped_total`; memory
/// alerts write `memory/alert_level` (0 normal, 1 warn, 2 critical).
///
/// Every run's file starts with a session-restart record at its first step to come (1 for a
/// fresh run, one past the checkpoint for a resumed one), so TensorBoard drops what an earlier
/// process wrote to the directory at those steps — a crashed process's steps past its
/// checkpoint, or a replaced (`--overwrite`) run's — instead of showing them twice (design
/// §10.1 says which of TensorBoard's loaders honour it). One directory per run, as TensorBoard
/// expects. The file is flushed at every epoch end, checkpoint and early stop, at the first
/// batch after [`FLUSH_INTERVAL`] without one, and by [`TensorBoardRecorder::finish`].
#[derive(Debug)]
pub struct TensorBoardRecorder {
    writer: EventFileWriter,
    batches: u64,
    last_flush: Instant,
}

/// The longest a batch's records wait in the buffer (TensorBoard's own writer waits up to
/// 120 s); a live TensorBoard then sees a slow run move.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);

impl TensorBoardRecorder {
    /// A new event file in `dir` (created if needed; earlier files there are kept).
    pub fn create(dir: &Path) -> Result<Self> {
        Ok(TensorBoardRecorder {
            writer: EventFileWriter::create(dir, wall_time_now())?,
            batches: 0,
            last_flush: Instant::now(),
        })
    }

    /// The event file.
    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// Records one trainer event.
    pub fn on_event(&mut self, event: &Event) -> Result<()> {
        let now = wall_time_now();
        let step = self.batches as i64;
        match event {
            Event::Start { resumed_at, .. } => {
                let done = resumed_at.unwrap_or(0);
                self.batches = done;
                self.writer.session_start(done as i64 + 1, now)?;
                self.flush()?;
            }
            Event::Batch {
                loss,
                lr,
                tokens_per_s,
                live_bytes,
                ..
            } => {
                self.batches += 1;
                let step = self.batches as i64;
                self.writer.scalar("train/loss", step, *loss as f32, now)?;
                self.writer.scalar("train/lr", step, *lr as f32, now)?;
                self.writer
                    .scalar("train/items_per_s", step, *tokens_per_s as f32, now)?;
                self.writer
                    .scalar("memory/live_bytes", step, *live_bytes as f32, now)?;
                if self.last_flush.elapsed() >= FLUSH_INTERVAL {
                    self.flush()?;
                }
            }
            Event::Skipped { total, .. } => {
                // Reported before its batch's `Batch` event: the skip belongs to the next step.
                self.writer
                    .scalar("train/skipped_total", step + 1, *total as f32, now)?;
            }
            Event::Memory { usage, .. } => {
                self.writer
                    .scalar("memory/rss_bytes", step, usage.rss_bytes as f32, now)?;
                self.writer
                    .scalar("memory/peak_live_bytes", step, usage.peak_bytes as f32, now)?;
            }
            Event::EpochEnd {
                train_loss, eval, ..
            } => {
                self.writer
                    .scalar("epoch/train_loss", step, *train_loss as f32, now)?;
                for (name, value) in &eval.metrics {
                    self.writer
                        .scalar(&format!("val/{name}"), step, *value as f32, now)?;
                }
                self.flush()?;
            }
            Event::MemoryAlert(alert) => {
                let level = match alert.to {
                    AlertLevel::Normal => 0.0,
                    AlertLevel::Warn => 1.0,
                    AlertLevel::Critical => 2.0,
                };
                self.writer.scalar("memory/alert_level", step, level, now)?;
            }
            Event::Firing { layers, .. } => {
                for l in layers {
                    let tag = format!("firing/{}", l.name);
                    self.writer
                        .scalar(&format!("{tag}/rate"), step, l.mean_rate as f32, now)?;
                    self.writer.scalar(
                        &format!("{tag}/silent_fraction"),
                        step,
                        l.silent_fraction as f32,
                        now,
                    )?;
                }
            }
            Event::Checkpoint { .. } | Event::EarlyStop { .. } => self.flush()?,
            Event::ShardSizing { .. }
            | Event::Notice(_)
            | Event::SpikeWarning(_)
            | Event::SpikeRaster { .. }
            | Event::MemoryStages(_) => {}
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        self.writer.flush()
    }

    /// Flushes what is buffered (call at the end of the run).
    pub fn finish(mut self) -> Result<()> {
        self.flush()
    }
}
