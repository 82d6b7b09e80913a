//! The shard size a run's steps use: the config's number, or what `"auto"` chose from probe
//! steps on the run's first training batch (recorded in the state, so a resumed run keeps it).

use super::Trainer;
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use crate::shard::{choose_shard_rows, ShardRows, ShardSizing};

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// Most rows per shard of this run's training steps; with `shard_rows: "auto"` the first
    /// call probes ([`Trainer::size_shards`]) unless the run's state already holds the choice.
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
    /// available) and records the choice in the run's state. CPU runs only: the counting
    /// allocator does not see a GPU's memory.
    pub fn size_shards(&mut self) -> Result<&ShardSizing> {
        if !self.device.is_cpu() {
            return Err(TrainError::Config {
                field: "shard_rows".into(),
                message: format!(
                    "\"auto\" on device {}: its probes measure host memory; expected a number \
                     of rows for a GPU run",
                    self.cfg.train.device
                ),
            });
        }
        let indices: Vec<u32> = (0..self.cfg.train.batch_size as u32).collect();
        let batch = self.data.train_batch(&indices, &self.device)?;
        let budget = self.manager.budget_bytes()?;
        let sizing = choose_shard_rows(&self.model, &batch, &self.dropout_rng, &self.vars, budget)?;
        drop(batch);
        Ok(self.state.shard_sizing.insert(sizing))
    }
}
