//! The shard size a run's steps use: the config's number, or what `"auto"` chose from probe
//! steps on the first `batch_size` training examples (recorded in the state, so a resumed run
//! keeps it).

use super::{Event, Trainer};
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use crate::shard::{choose_shard_rows, ShardRows, ShardSizing};
use candle_core::Device;

/// Refuses `shard_rows: "auto"` where its probes cannot measure: a GPU run (the counting
/// allocator sees host memory only) or a program without the counting allocator. Checked when a
/// trainer is built, before its first step.
pub(super) fn check_auto(shard_rows: ShardRows, device: &Device, device_name: &str) -> Result<()> {
    if shard_rows != ShardRows::Auto {
        return Ok(());
    }
    if !device.is_cpu() {
        return Err(TrainError::Config {
            field: "shard_rows".into(),
            message: format!(
                "\"auto\" on device {device_name}: its probes measure host memory; expected a \
                 number of rows for a GPU run"
            ),
        });
    }
    crate::shard::auto::require_counting_allocator()
}

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// Most rows per shard of this run's training steps; with `shard_rows: "auto"` the first
    /// call probes (`crate::shard::auto`) unless the run's state already holds the choice.
    pub fn shard_rows(&mut self) -> Result<usize> {
        match self.cfg.train.shard_rows {
            ShardRows::Fixed(n) => Ok(n),
            ShardRows::Auto => match &self.state.shard_sizing {
                Some(s) => Ok(s.rows),
                None => Ok(self.size_shards()?.rows),
            },
        }
    }

    /// Runs `"auto"`'s probe steps on the first `batch_size` training examples against the
    /// memory budget (the configured one, else what is live plus what the machine has
    /// available) and records the choice in the run's state. Only for an auto run with nothing
    /// recorded: a recorded choice is never replaced (the run's numbers follow it).
    fn size_shards(&mut self) -> Result<&ShardSizing> {
        debug_assert!(self.cfg.train.shard_rows == ShardRows::Auto);
        debug_assert!(self.state.shard_sizing.is_none());
        let indices: Vec<u32> = (0..self.cfg.train.batch_size as u32).collect();
        let batch = self.data.train_batch(&indices, &self.device)?;
        let budget = self.manager.budget_bytes()?;
        // The probes run the steps' own products (bf16 packing allocates what f32 does not).
        let sizing = lsnn_layers::kernel::with_matmul_precision(self.precision, || {
            choose_shard_rows(&self.model, &batch, &self.dropout_rng, &self.vars, budget)
        })?;
        drop(batch);
        Ok(self.state.shard_sizing.insert(sizing))
    }

    /// For an auto run: chooses (or takes the recorded choice) and reports it; a resumed run on
    /// a different number of threads than the probes ran on is told that its rows in flight,
    /// and so its peak, differ from what was measured.
    pub(super) fn announce_shards(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        if self.cfg.train.shard_rows != ShardRows::Auto {
            return Ok(());
        }
        let recorded = self.state.shard_sizing.is_some();
        self.shard_rows()?;
        let Some(sizing) = &self.state.shard_sizing else {
            return Ok(());
        };
        on_event(&Event::ShardSizing {
            sizing: sizing.clone(),
            recorded,
        });
        let threads = rayon::current_num_threads().max(1);
        if recorded && threads != sizing.threads {
            on_event(&Event::Notice(format!(
                "shard_rows auto chose {} rows per shard on {} threads; this process runs {} \
                 shards at a time, so its step peak differs from the probes' (the choice is \
                 kept: the run's numbers follow it)",
                sizing.rows, sizing.threads, threads
            )));
        }
        Ok(())
    }
}
