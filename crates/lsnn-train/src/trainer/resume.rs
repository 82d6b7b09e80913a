//! Resuming a run from its checkpoint: the config, the position and every tensor back, the data
//! rebuilt by the caller from the recorded description and checked against the recorded
//! fingerprint, so the run continues bit for bit.

use super::state::{check_position, TrainerState};
use super::{build, TrainOptions, Trainer};
use crate::checkpoint::{self, keys, retention, RunLock};
use crate::config::RunConfig;
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use lsnn_layers::SeededRng;
use std::path::Path;

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// Resumes the run checkpointed in `dir` (a run directory or a set inside one);
    /// `opts.out_dir` is where it continues to save — normally the run directory itself
    /// ([`checkpoint::run_dir_of`]); another directory must not hold a run (unless
    /// `opts.overwrite`). Takes `opts.out_dir`'s lock first. `data` rebuilds the data set from the
    /// run's config and the recorded description ([`Dataset::describe`]); its fingerprint must
    /// equal the recorded one (a set written before fingerprints were recorded is accepted as it
    /// is).
    pub fn resume(
        dir: &Path,
        opts: TrainOptions,
        data: impl FnOnce(&RunConfig<M::Config>, &serde_json::Value) -> Result<D>,
    ) -> Result<Self> {
        // A path that holds no checkpoint is refused before the lock creates anything.
        checkpoint::resolve(dir)?;
        let lock = RunLock::acquire(&opts.out_dir)?;
        let same_run = same_dir(&checkpoint::run_dir_of(dir), &opts.out_dir);
        if !same_run && !opts.overwrite {
            if let Some(what) = retention::existing_run(&opts.out_dir) {
                return Err(TrainError::RunExists {
                    dir: opts.out_dir.clone(),
                    what,
                });
            }
        }
        let mut notices = retention::remove_leftovers(&opts.out_dir);
        let ck = checkpoint::load(dir)?;
        notices.extend(ck.notices.iter().cloned());
        let state_path = ck.dir.join(checkpoint::STATE_FILE);
        let cfg = RunConfig::<M::Config>::from_json(&ck.config_json)?;
        let mut state = TrainerState::from_json(&ck.state_json, &state_path)?;
        if state.lineage.is_none() {
            // A set written before lineages: this run adopts it (retention may retire it).
            let name = ck.dir.file_name().map(|n| n.to_string_lossy().into_owned());
            state.lineage = Some(retention::adopted_lineage(&name.unwrap_or_default()));
        }
        let data = data(&cfg, &state.data_source)?;
        let got = data.fingerprint();
        if let Some(want) = &state.data_fingerprint {
            if &got != want {
                return Err(TrainError::Data {
                    path: state_path,
                    message: format!(
                        "the data's content fingerprint is {got}, the run was trained on {want}; \
                         the data changed since the checkpoint was written"
                    ),
                });
            }
        }
        // From here on the run writes the current state format, fingerprint included.
        state.format_version = super::STATE_VERSION;
        state.data_fingerprint = Some(got);
        data.check_model(&cfg.model)?;
        data.check_train(&cfg.train)?;
        check_position(
            &state_path,
            &state,
            data.train_len(),
            cfg.train.batch_size,
            cfg.train.gradient_accumulation_steps,
        )?;
        let device = cfg.train.candle_device()?;
        let paths = lsnn_layers::kernel::KernelPaths::for_device(&device)
            .with_precision(cfg.train.matmul_precision(&device).0);
        if let Some(diff) = state
            .kernel_paths
            .as_ref()
            .and_then(|s| paths.differences(s))
        {
            notices.push(format!(
                "this process's kernels differ from those the checkpoint was trained with: \
                 {diff}; training continues, but its results will not be bit for bit those of \
                 an uninterrupted run"
            ));
        }
        state.kernel_paths = Some(paths);
        let (model, vars) = build::<M>(&cfg.model, SeededRng::new(cfg.train.seed), &device)?;
        keys::restore_model(&ck.dir.join(checkpoint::MODEL_FILE), &vars, &ck.model)?;
        let metrics: Vec<String> = ck.metrics_csv.lines().map(str::to_owned).collect();
        let config_json = ck.config_json.clone();
        let amsgrad = cfg.train.amsgrad;
        let replace = opts.overwrite && !same_run;
        let mut t = Self::assemble(
            model,
            vars,
            cfg,
            config_json,
            data,
            state,
            opts,
            device,
            lock,
        )?;
        t.metrics = metrics;
        t.notices.extend(notices);
        t.replace_pending.set(replace);
        keys::restore_ema(
            &ck.dir.join(checkpoint::EMA_FILE),
            &mut t.ema,
            &t.vars,
            &ck.ema,
        )?;
        t.acc = keys::restore_optimizer(
            &ck.dir.join(checkpoint::OPTIMIZER_FILE),
            &mut t.opt,
            &t.vars,
            &ck.optimizer,
            amsgrad,
            t.state.accum_valid > 0,
        )?;
        t.opt.set_step_count(t.state.step);
        Ok(t)
    }
}

/// Whether two paths name the same directory (by their canonical forms when both exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
