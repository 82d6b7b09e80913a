//! One micro-batch: forward and backward (in shards), its gradient added into the
//! accumulation buffers in place, and at a window's end the optimizer step — averaged over the
//! window's finite batches, clipped by global norm, then the EMA update and the model's hook.

use super::Trainer;
use crate::dataset::Dataset;
use crate::error::Result;
use crate::model::TrainModel;
use crate::optim::inplace::{fast_path, Axpby};
use crate::optim::{global_norm, schedule::lr_at};
use candle_core::Tensor;

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    /// Processes one micro-batch of training examples (and steps the optimizer at a window
    /// end). Returns the reported loss (NaN when skipped).
    pub fn train_batch(&mut self, batch: &M::Batch) -> Result<f64> {
        let rows = self.shard_rows()?;
        let out = lsnn_layers::kernel::with_matmul_precision(self.precision, || {
            crate::shard::loss_and_grads(
                &self.model,
                batch,
                &mut self.dropout_rng,
                &self.vars,
                rows,
            )
        })?;
        self.state.accum_in_window += 1;
        self.state.batches_seen += 1;
        self.state.tokens_seen += M::batch_items(batch);
        let finite = out.grads.is_some();
        if let Some(grads) = out.grads {
            for ((name, _), g) in self.vars.iter().zip(grads) {
                let Some(g) = g else {
                    continue;
                };
                accumulate(&mut self.acc, name, &g)?;
            }
            self.state.accum_valid += 1;
            self.state.loss_window.0 += out.loss;
            self.state.loss_window.1 += 1;
            self.state.epoch_loss.0 += out.loss;
            self.state.epoch_loss.1 += 1;
        } else {
            self.state.skipped_batches += 1;
        }
        if self.state.accum_in_window >= self.cfg.train.gradient_accumulation_steps {
            self.finish_window()?;
        }
        Ok(if finite { out.loss } else { f64::NAN })
    }

    pub(super) fn finish_window(&mut self) -> Result<()> {
        let valid = self.state.accum_valid;
        self.state.accum_in_window = 0;
        self.state.accum_valid = 0;
        if valid == 0 {
            self.acc.clear();
            return Ok(());
        }
        let mean_scale = 1.0 / valid as f64;
        let norm = global_norm(&self.acc)? * mean_scale;
        if !norm.is_finite() {
            self.state.skipped_steps += 1;
            self.acc.clear();
            return Ok(());
        }
        let clip = self.cfg.train.gradient_clip;
        let clip = if clip > 0.0 && norm > clip {
            clip / norm
        } else {
            1.0
        };
        let lr = self.current_lr();
        self.opt.step(&self.acc, lr, mean_scale * clip)?;
        self.state.step += 1;
        // The model's post-step constraints (an LTC's clamp) first, so that the EMA averages
        // the parameters the model will use.
        self.model.after_step()?;
        if self.cfg.train.ema_decay > 0.0 {
            self.ema.update(&self.vars)?;
        }
        // Keep the buffers for the next window when they can be reused in place; zero them.
        let mut reused = true;
        for a in self.acc.values() {
            if fast_path(&[a]) {
                a.zero_set()?;
            } else {
                reused = false;
            }
        }
        if !reused {
            self.acc.clear();
        }
        if self.state.step.is_multiple_of(self.opts.log_every) {
            self.push_metrics(None);
        }
        Ok(())
    }

    pub(super) fn current_lr(&self) -> f64 {
        lr_at(
            self.state.step as usize,
            self.state.total_steps as usize,
            self.cfg.train.warmup_steps,
            self.cfg.train.learning_rate,
        )
    }
}

/// acc[name] += g, in place where it can be.
fn accumulate(
    acc: &mut std::collections::BTreeMap<String, Tensor>,
    name: &str,
    g: &Tensor,
) -> Result<()> {
    match acc.get_mut(name) {
        Some(a) if fast_path(&[a, g]) => {
            a.inplace_op2(g, &Axpby { a: 1.0, b: 1.0 })?;
        }
        Some(a) => *a = (&*a + g)?,
        None => {
            // A fresh buffer goes through the same 0 + g as a reused one, so a resumed run
            // (which starts with no buffers) writes the same bits.
            let a = g.zeros_like()?.force_contiguous()?.detach();
            if fast_path(&[&a, g]) {
                a.inplace_op2(g, &Axpby { a: 1.0, b: 1.0 })?;
                acc.insert(name.to_owned(), a);
            } else {
                acc.insert(name.to_owned(), (a + g)?);
            }
        }
    }
    Ok(())
}
