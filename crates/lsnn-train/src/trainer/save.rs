//! Writing the run's current state as a checkpoint set (atomic, design §4.1; key names in
//! [`crate::checkpoint::keys`]).

use super::Trainer;
use crate::checkpoint::{self, keys, CheckpointData};
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use std::path::PathBuf;

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// Writes the current state as the run's checkpoint.
    pub fn save_checkpoint(&self) -> Result<PathBuf> {
        self.save_checkpoint_as(false, &mut |_| Ok(()))
    }

    /// [`Trainer::save_checkpoint`] with a failure-injection hook.
    pub fn save_checkpoint_with_hook(
        &self,
        hook: &mut dyn FnMut(checkpoint::SaveStage) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        self.save_checkpoint_as(false, hook)
    }

    /// The save itself; `best` also makes the set the run's best (`BEST`).
    pub(super) fn save_checkpoint_as(
        &self,
        best: bool,
        hook: &mut dyn FnMut(checkpoint::SaveStage) -> std::io::Result<()>,
    ) -> Result<PathBuf> {
        let model = keys::model_tensors(&self.vars);
        let ema = self.ema.weights().clone();
        let open_window = self.state.accum_valid > 0;
        let optimizer =
            keys::optimizer_tensors(&self.opt, open_window.then_some(&self.acc), &self.vars)?;
        let mut state = self.state.clone();
        state.data_rng = self.data_rng.state();
        state.dropout_rng = self.dropout_rng.state();
        let state_json = serde_json::to_string_pretty(&state).map_err(|e| TrainError::Json {
            path: self.opts.out_dir.clone(),
            source: e,
        })?;
        let metrics = self.metrics_csv();
        let data = CheckpointData {
            step: state.step,
            config_json: &self.config_json,
            state_json: &state_json,
            model: &model,
            ema: &ema,
            optimizer: &optimizer,
            metrics_csv: &metrics,
            best,
            replace_other_runs: self.replace_pending.get(),
        };
        let dir = checkpoint::save_with_hook(&self.opts.out_dir, &data, hook)?;
        self.replace_pending.set(false);
        Ok(dir)
    }
}
