//! The trainer's events as TensorBoard scalars (design §10.1): what `lsnn train --tensorboard`
//! writes, and what a library user's event callback can write too.

use super::writer::{wall_time_now, EventFileWriter};
use crate::trainer::Event;
use crate::Result;
use std::path::Path;

/// Turns the trainer's [`Event`]s into scalars in one event file.
///
/// The step axis is the micro-batch count (the trainer's `batches_seen`): every batch has one,
/// where optimizer steps repeat under gradient accumulation. Batches write `train/loss`,
/// `train/lr`, `train/items_per_s` and `memory/live_bytes`; an epoch's end writes
/// `epoch/train_loss` and `val/<metric>` for each evaluated metric; memory lines write
/// `memory/rss_bytes` and `memory/peak_live_bytes`; skips write `train/skipped_total`.
///
/// A resumed run (its `Start` event names the batches already done) writes a session-restart
/// record at the next step first, so TensorBoard drops what a crashed process wrote past its
/// checkpoint instead of counting it twice. The file is flushed at every epoch end, checkpoint
/// and early stop, and by [`TensorBoardRecorder::finish`].
#[derive(Debug)]
pub struct TensorBoardRecorder {
    writer: EventFileWriter,
    batches: u64,
}

impl TensorBoardRecorder {
    /// A new event file in `dir` (created if needed; earlier files there are kept).
    pub fn create(dir: &Path) -> Result<Self> {
        Ok(TensorBoardRecorder {
            writer: EventFileWriter::create(dir, wall_time_now())?,
            batches: 0,
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
                if let Some(done) = *resumed_at {
                    self.batches = done;
                    self.writer.session_start(done as i64 + 1, now)?;
                    self.writer.flush()?;
                }
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
            }
            Event::Skipped { total, .. } => {
                self.writer
                    .scalar("train/skipped_total", step, *total as f32, now)?;
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
                self.writer.flush()?;
            }
            Event::Checkpoint { .. } | Event::EarlyStop { .. } => self.writer.flush()?,
            Event::ShardSizing { .. } | Event::Notice(_) => {}
        }
        Ok(())
    }

    /// Flushes what is buffered (call at the end of the run).
    pub fn finish(mut self) -> Result<()> {
        self.writer.flush()
    }
}
