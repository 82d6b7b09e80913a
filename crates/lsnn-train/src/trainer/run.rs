//! The run: epochs of micro-batches in the saved order, the cleanup schedule and memory lines,
//! evaluation and a metrics row at each epoch end, early stopping and the best set by the
//! monitored metric, and a checkpoint at every epoch end (and when stopped early).

use super::{EvalResult, Event, TrainSummary, Trainer};
use crate::dataset::Dataset;
use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use crate::optim::schedule::{cleanup_after_batch, should_stop_early, CleanupReason};
use std::time::Instant;

impl<M: TrainModel, D: Dataset<M>> Trainer<M, D> {
    fn memory_event(&self, label: &str, released: Option<u64>) -> Result<Event> {
        Ok(Event::Memory {
            label: label.to_string(),
            usage: self.manager.log_usage(label)?,
            released,
        })
    }

    /// Feeds live memory to the alerts' monitor; a level change is an event, a rise to critical
    /// a cleanup when the config asks for one.
    fn watch_memory(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        let Some(alerts) = self.alerts.as_mut() else {
            return Ok(());
        };
        let live = self.manager.usage()?.live_bytes;
        let Some(alert) = alerts.observe(live) else {
            return Ok(());
        };
        on_event(&Event::MemoryAlert(alert));
        if alert.is_rise()
            && alert.to == lsnn_memory::AlertLevel::Critical
            && self.cfg.train.cleanup_on_critical
        {
            let report = self.manager.cleanup()?;
            on_event(&self.memory_event("critical", Some(report.rss_released()))?);
        }
        Ok(())
    }

    /// Runs to the end (or to `max_batches`), emitting events.
    pub fn run(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<TrainSummary> {
        let start = Instant::now();
        let tokens_at_start = self.state.tokens_seen;
        let param_count: usize = self.vars.iter().map(|(_, v)| v.elem_count()).sum();
        on_event(&Event::Start {
            epochs: self.cfg.train.num_epochs,
            batches_per_epoch: self.batches_per_epoch(),
            parameters: param_count,
            resumed_at: (self.state.batches_seen > 0).then_some(self.state.batches_seen),
            baseline: self.baseline.clone(),
        });
        for n in std::mem::take(&mut self.notices) {
            on_event(&Event::Notice(n));
        }
        let nothing_to_train = self.state.finished || self.state.epoch >= self.cfg.train.num_epochs;
        if !nothing_to_train {
            self.announce_shards(on_event)?;
            if self.opts.probe_stages {
                self.probe_stages(on_event)?;
            }
        }
        on_event(&self.memory_event("start", None)?);
        let mut last_eval = None;
        let mut interrupted = false;
        let clock = (start, tokens_at_start);
        while !self.state.finished && self.state.epoch < self.cfg.train.num_epochs {
            match self.epoch(on_event, clock)? {
                Some(eval) => last_eval = Some(eval),
                None => {
                    interrupted = true;
                    break;
                }
            }
        }
        let stop_requested = interrupted && self.stop_requested();
        if stop_requested {
            on_event(&Event::Notice(format!(
                "stop requested: saving a checkpoint after {} batches",
                self.state.batches_seen
            )));
        }
        if interrupted {
            let dir = self.save_checkpoint()?;
            on_event(&Event::Checkpoint { dir, best: false });
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(TrainSummary {
            steps: self.state.step,
            batches: self.state.batches_seen,
            last_eval,
            baseline: self.baseline.clone(),
            baselines: self.data.baselines(),
            skipped: self.state.skipped_batches + self.state.skipped_steps,
            tokens_per_s: (self.state.tokens_seen - tokens_at_start) as f64 / secs.max(1e-9),
            seconds: secs,
            interrupted,
            stop_requested,
            nothing_to_train,
        })
    }

    /// Peak memory by stage on one shard's worth of the training set's first rows (design
    /// §10.5). A diagnostic: on another device than the CPU (the counting allocator sees only
    /// host memory), without the counting allocator, or when the probe fails, a notice and the
    /// run goes on.
    fn probe_stages(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<()> {
        let skip = if !self.device.is_cpu() {
            Some(
                "it measures host memory with the counting allocator; the run is on another device"
                    .to_string(),
            )
        } else if !lsnn_memory::alloc::is_installed() {
            Some("it needs the counting allocator, which this program does not install".to_string())
        } else {
            None
        };
        if let Some(why) = skip {
            on_event(&Event::Notice(format!(
                "peak memory by stage not measured: {why}"
            )));
            return Ok(());
        }
        // The rows one shard trains at once, as the steps will.
        let rows = self
            .shard_rows()?
            .min(self.cfg.train.batch_size)
            .min(self.data.train_len()) as u32;
        let indices: Vec<u32> = (0..rows).collect();
        let probed = self
            .data
            .train_batch(&indices, &self.device)
            .and_then(|batch| {
                lsnn_layers::kernel::with_matmul_precision(self.precision, || {
                    crate::memory_stages::probe_stages::<M>(
                        &self.cfg.model,
                        &batch,
                        *self.opt.config(),
                        self.cfg.train.seed,
                        &self.device,
                    )
                })
            });
        match probed {
            Ok(report) => on_event(&Event::MemoryStages(report)),
            Err(e) => on_event(&Event::Notice(format!(
                "peak memory by stage not measured: the probe step failed: {e}"
            ))),
        }
        Ok(())
    }

    /// True once [`super::TrainOptions::stop`] is set.
    fn stop_requested(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Trains the rest of the current epoch and finishes it (evaluation, metrics, cleanup with a
    /// memory line, checkpoint), ignoring `max_batches`. The unit the leak suite repeats.
    pub fn train_epoch(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<EvalResult> {
        let saved = self.opts.max_batches.take();
        let r = self.epoch(on_event, (Instant::now(), self.state.tokens_seen));
        self.opts.max_batches = saved;
        Ok(r?.expect("no batch limit while training an epoch"))
    }

    /// One epoch from the current position; `None` when `max_batches` stopped it first.
    fn epoch(
        &mut self,
        on_event: &mut dyn FnMut(&Event),
        (start, tokens_at_start): (Instant, u64),
    ) -> Result<Option<EvalResult>> {
        let per_epoch = self.batches_per_epoch();
        let bsz = self.cfg.train.batch_size;
        // Draw the epoch's order once: a run interrupted right after drawing it (at an epoch
        // boundary) saved it, and a resume must not draw again.
        if self.state.epoch_order.is_empty() {
            self.state.epoch_order = self.data.epoch_order(&mut self.data_rng);
        }
        while self.state.batch_in_epoch < per_epoch {
            if let Some(maxb) = self.opts.max_batches {
                if self.state.batches_seen >= maxb {
                    return Ok(None);
                }
            }
            if self.stop_requested() {
                return Ok(None);
            }
            let b = self.state.batch_in_epoch;
            let batch = self.data.train_batch(
                &self.state.epoch_order[b * bsz..(b + 1) * bsz],
                &self.device,
            )?;
            let lr = self.current_lr();
            let steps_skipped_before = self.state.skipped_steps;
            let loss = self.train_batch(&batch)?;
            drop(batch);
            self.state.batch_in_epoch += 1;
            if loss.is_nan() {
                on_event(&Event::Skipped {
                    reason: "non-finite loss".into(),
                    total: self.state.skipped_batches + self.state.skipped_steps,
                });
            }
            if self.state.skipped_steps > steps_skipped_before {
                on_event(&Event::Skipped {
                    reason: "non-finite gradient norm; optimizer step not applied".into(),
                    total: self.state.skipped_batches + self.state.skipped_steps,
                });
            }
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            on_event(&Event::Batch {
                epoch: self.state.epoch,
                batch: b + 1,
                of: per_epoch,
                step: self.state.step,
                loss,
                lr,
                tokens_per_s: (self.state.tokens_seen - tokens_at_start) as f64 / secs,
                live_bytes: lsnn_memory::alloc::live_bytes(),
            });
            // The alerts first: they read live memory before the cleanup threshold's own
            // cleanup can lower it, and a critical cleanup then leaves check() nothing to do.
            self.watch_memory(on_event)?;
            self.manager.check()?;
            let epoch_end = self.state.batch_in_epoch == per_epoch;
            if let Some(CleanupReason::Periodic) = cleanup_after_batch(
                self.state.batches_seen,
                self.cfg.train.cleanup_every,
                epoch_end,
            ) {
                self.manager.cleanup()?;
            }
        }
        // Epoch end.
        let (eval, rasters) = self.evaluate_epoch_end()?;
        let train_loss = self.take_epoch_train_loss();
        self.push_metrics(Some(&eval));
        let monitor = &self.cfg.train.monitor;
        let value = eval.get(monitor).ok_or_else(|| TrainError::Config {
            field: "monitor".into(),
            message: format!(
                "{monitor:?} is not an evaluated metric; the run evaluates {:?}",
                eval.metrics.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ),
        })?;
        let mode = self.cfg.train.monitor_mode;
        // A NaN never counts as an improvement.
        let improved = !value.is_nan() && self.state.best.is_none_or(|b| mode.better(value, b));
        self.state.history.push(value);
        if improved {
            self.state.best = Some(value);
        }
        on_event(&Event::EpochEnd {
            epoch: self.state.epoch,
            train_loss,
            eval: eval.clone(),
        });
        if !eval.firing.is_empty() {
            let (layers, warnings) = crate::firing::check_layers(
                &eval.firing,
                self.cfg.train.spike_thresholds(),
                self.state.epoch,
            );
            on_event(&Event::Firing {
                epoch: self.state.epoch,
                layers,
            });
            for w in warnings {
                on_event(&Event::SpikeWarning(w));
            }
            match rasters {
                Ok(layers) if layers.is_empty() => {}
                Ok(layers) => on_event(&Event::SpikeRaster {
                    epoch: self.state.epoch,
                    layers,
                }),
                Err(e) => on_event(&Event::Notice(format!(
                    "no spike raster this epoch (the training goes on): {e}"
                ))),
            }
        }
        let report = self.manager.cleanup()?;
        on_event(&self.memory_event(
            &format!("epoch {}", self.state.epoch + 1),
            Some(report.rss_released()),
        )?);
        self.state.epoch += 1;
        self.state.batch_in_epoch = 0;
        self.state.epoch_order.clear();
        let stop = should_stop_early(
            &self.state.history,
            self.cfg.train.early_stopping_patience,
            mode,
        );
        if stop {
            on_event(&Event::EarlyStop {
                epoch: self.state.epoch - 1,
            });
        }
        if stop || self.state.epoch >= self.cfg.train.num_epochs {
            self.state.finished = true;
            // The last, partial accumulation window is applied, not dropped: the schedule
            // planned a step for it.
            if self.state.accum_in_window > 0 {
                self.finish_window()?;
            }
        }
        let best = improved && self.cfg.train.keep_best;
        let dir = self.save_checkpoint_as(best, &mut |_| Ok(()))?;
        on_event(&Event::Checkpoint { dir, best });
        Ok(Some(eval))
    }

    /// Mean reported loss of the epoch's trained batches (NaN when every one was skipped);
    /// restarts the accumulator.
    fn take_epoch_train_loss(&mut self) -> f64 {
        let (sum, n) = std::mem::take(&mut self.state.epoch_loss);
        if n == 0 {
            f64::NAN
        } else {
            sum / n as f64
        }
    }

    /// A metrics row: the position, the mean training loss since the last row, and the
    /// evaluation's metrics at an epoch end (empty cells otherwise).
    pub(super) fn push_metrics(&mut self, eval: Option<&EvalResult>) {
        let (s, n) = self.state.loss_window;
        let train = if n > 0 { s / n as f64 } else { f64::NAN };
        self.state.loss_window = (0.0, 0);
        let names: Vec<String> = self
            .model
            .metric_names()
            .into_iter()
            .chain(self.model.derived_metric_names())
            .chain(self.data.extra_metric_names())
            .collect();
        let cells: Vec<String> = names
            .iter()
            .map(|n| {
                eval.and_then(|e| e.get(n))
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
            .collect();
        let mut row = format!(
            "{},{},{},{},{}",
            self.state.step,
            self.state.epoch,
            self.state.batches_seen,
            self.current_lr(),
            train
        );
        for c in cells {
            row.push(',');
            row.push_str(&c);
        }
        row.push_str(&format!(
            ",{}",
            self.state.skipped_batches + self.state.skipped_steps
        ));
        self.metrics.push(row);
    }
}
