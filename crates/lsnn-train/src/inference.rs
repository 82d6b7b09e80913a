//! Loading a trained model of any task from a run (or set) directory for inference: the set is
//! verified as `train --resume` verifies it (every file against the manifest, every file
//! agreeing, the trainer state readable, every key of the model, EMA and optimizer files present
//! with its shape, nothing unknown), then the model is built from the run's config and its
//! weights (or EMA weights) restored.

use crate::checkpoint::{keys, LoadedCheckpoint, EMA_FILE, MODEL_FILE, OPTIMIZER_FILE};
use crate::error::Result;
use crate::model::TrainModel;
use crate::{RunConfig, TrainerState};
use candle_core::{DType, Device};
use lsnn_layers::ModelConfig;
use std::path::Path;

/// A model restored from a checkpoint.
#[derive(Debug)]
pub struct Trained<M> {
    /// The model (its parameters are variables; detach them for inference).
    pub model: M,
    /// The run's configuration.
    pub config: RunConfig<ModelConfig>,
    /// The checkpoint.
    pub checkpoint: LoadedCheckpoint,
    /// The run's trainer state (its data description among others).
    pub state: TrainerState,
    /// The device the model is on.
    pub device: Device,
}

/// The task a run directory's current set was trained for (from its `config.json`), without
/// loading any tensor: what a command needs to know to pick the model type.
pub fn task_of(dir: &Path) -> Result<lsnn_layers::Task> {
    let ck = crate::checkpoint::load(dir)?;
    let cfg = RunConfig::<ModelConfig>::from_json(&ck.config_json)?;
    Ok(cfg.model.task()?)
}

/// Loads the current set of `dir` as a model of type `M` (see the module docs), on `device`
/// (the run's own device when `None`), with the EMA weights when `ema`.
pub fn load_trained<M: TrainModel<Config = ModelConfig>>(
    dir: &Path,
    ema: bool,
    device: Option<&str>,
) -> Result<Trained<M>> {
    let ck = crate::checkpoint::load(dir)?;
    let config = RunConfig::<ModelConfig>::from_json(&ck.config_json)?;
    config.model.validate()?;
    // The weights must fit before they are allocated (a config edited to huge sizes).
    let bytes =
        u64::try_from(config.model.parameter_count()?.saturating_mul(4)).unwrap_or(u64::MAX);
    if let Ok(free) = lsnn_memory::rss::available_memory_bytes() {
        if bytes > free {
            return Err(lsnn_memory::MemoryError::BudgetExceeded {
                what: "the model's parameters (from the checkpoint's config)",
                requested: bytes,
                available: free,
                budget: free,
                in_use: 0,
            }
            .into());
        }
    }
    let state =
        TrainerState::from_json(&ck.state_json, &ck.dir.join(crate::checkpoint::STATE_FILE))?;
    let device = crate::config::candle_device(device.unwrap_or(&config.train.device))?;
    let varmap = candle_nn::VarMap::new();
    let vb = lsnn_layers::SeededInit::var_builder(
        &varmap,
        lsnn_layers::SeededRng::new(0),
        DType::F32,
        &device,
    );
    let model = M::build(&config.model, vb)?;
    let vars = lsnn_layers::named_vars(&varmap);
    keys::check_weights(&ck.dir.join(MODEL_FILE), &vars, &ck.model)?;
    keys::check_weights(&ck.dir.join(EMA_FILE), &vars, &ck.ema)?;
    keys::check_optimizer(
        &ck.dir.join(OPTIMIZER_FILE),
        &vars,
        &ck.optimizer,
        config.train.amsgrad,
        state.accum_valid > 0,
    )?;
    let (file, tensors) = if ema {
        (EMA_FILE, &ck.ema)
    } else {
        (MODEL_FILE, &ck.model)
    };
    keys::restore_model(&ck.dir.join(file), &vars, tensors)?;
    Ok(Trained {
        model,
        config,
        checkpoint: ck,
        state,
        device,
    })
}
