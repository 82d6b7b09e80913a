//! Peak memory by stage (design §10.5): one training step of a throwaway copy of the model (same
//! config, fresh seeded weights: memory depends on shapes, not values) run whole on one thread,
//! with a peak window around each stage the model marks (lsnn-layers' `stage_marks`), then the
//! optimizer's state made and one step taken. A first step runs unmeasured, so that what a
//! kernel allocates once on first use (scratch kept for later calls) is not counted as a stage.
//!
//! The counting allocator's figures are process-wide: a stage's peak is exact only while
//! nothing else allocates, which is why the probe runs on a one-thread pool before training
//! starts (and why the trainer's own steps, spread over threads, are not measured this way).

use crate::error::{Result, TrainError};
use crate::model::TrainModel;
use crate::optim::{AdamW, AdamWConfig};
use candle_core::{DType, Device};
use lsnn_layers::stage_marks::{observe, Pass, StageObserver};
use lsnn_layers::{Mode, SeededInit, SeededRng};
use lsnn_memory::alloc::{self, PeakWindow};
use serde::Serialize;
use std::cell::RefCell;
use std::rc::Rc;

/// One stage's figures, in bytes relative to the live bytes when the stage began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagePeak {
    /// The stage (`embedding`, `blocks.0`, `attns.0`, `head`, `blocks.1+attns.0` for a layer's
    /// backward, `optimizer`).
    pub stage: String,
    /// `forward`, `backward` or `optimizer`.
    pub pass: String,
    /// The most live bytes above the stage's start while it ran.
    pub peak_bytes: u64,
    /// Live bytes at its end minus at its start: what it left held (activations kept for
    /// backward, gradients, optimizer state; negative once a stage's graph is freed).
    pub held_bytes: i64,
}

/// A probe step's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageReport {
    /// Rows of the probed batch.
    pub batch_rows: usize,
    /// Live bytes before the probe model was built.
    pub start_live_bytes: u64,
    /// The trainable parameters' bytes.
    pub parameter_bytes: u64,
    /// The trainable parameters (named variables).
    pub parameters: usize,
    /// The whole step's peak above the live bytes once the model existed (forward, backward,
    /// optimizer).
    pub step_peak_bytes: u64,
    /// Each stage, in the order it ran (stages nested in another, such as a layer recomputed
    /// inside its backward, are part of the enclosing one).
    pub stages: Vec<StagePeak>,
}

impl StageReport {
    /// The stage `name` of `pass`, if it ran.
    pub fn get(&self, stage: &str, pass: &str) -> Option<&StagePeak> {
        self.stages
            .iter()
            .find(|s| s.stage == stage && s.pass == pass)
    }
}

#[derive(Default)]
struct Windows {
    open: Vec<(String, Pass, PeakWindow)>,
    done: Vec<StagePeak>,
}

fn pass_name(p: Pass) -> &'static str {
    match p {
        Pass::Forward => "forward",
        Pass::Backward => "backward",
    }
}

/// The figures of `window`, read before anything is allocated for them (the names are
/// allocated after: bookkeeping is not the stage's).
fn measured(stage: &str, pass: &str, window: PeakWindow) -> StagePeak {
    let start = window.start_live();
    let peak = window.close();
    let held = alloc::live_bytes() as i64 - start as i64;
    StagePeak {
        stage: stage.to_owned(),
        pass: pass.to_owned(),
        peak_bytes: peak.saturating_sub(start),
        held_bytes: held,
    }
}

impl StageObserver for Windows {
    fn begin(&mut self, name: &str, pass: Pass) {
        // The name and the stack slot first, the window last: the probe's own allocations are
        // outside the stage's window.
        self.open.reserve(1);
        let name = name.to_owned();
        self.open.push((name, pass, PeakWindow::open()));
    }

    fn end(&mut self, _name: &str, _pass: Pass) {
        if let Some((name, pass, window)) = self.open.pop() {
            let m = measured(&name, pass_name(pass), window);
            // Only outermost stages are reported: a nested one is inside its parent's figures
            // (with its few bytes of bookkeeping: the probe's own allocations are outside the
            // windows of the stages it reports, not of their parents').
            if self.open.is_empty() {
                self.done.push(m);
            }
        }
    }
}

/// The one-thread pool every probe of the process runs on. One for the process, never dropped:
/// a pool dropped after a probe lets its worker exit later, freeing the thread's scratch
/// buffers while the next probe measures (a stage then shows megabytes freed that it never
/// held).
fn probe_pool() -> Result<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<std::result::Result<rayon::ThreadPool, String>> =
        std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "lsnn-memory-probe".into())
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| TrainError::Config {
        field: "memory stages".into(),
        message: format!("a one-thread pool for the probe could not start: {e}"),
    })
}

/// Probes one training step of a fresh `M` of `cfg` on `batch` (see the module docs). Needs the
/// counting allocator.
pub fn probe_stages<M: TrainModel>(
    cfg: &M::Config,
    batch: &M::Batch,
    adamw: AdamWConfig,
    seed: u64,
    device: &Device,
) -> Result<StageReport> {
    if !alloc::is_installed() {
        return Err(TrainError::Config {
            field: "memory stages".into(),
            message: "the probe measures with the counting allocator, which this program does \
                      not install; install lsnn_memory::CountingAlloc as the global allocator"
                .into(),
        });
    }
    // The probe thread runs the caller's matmul precision (the trainer's, for a mixed run).
    let precision = lsnn_layers::kernel::matmul_precision();
    probe_pool()?.install(|| {
        lsnn_layers::kernel::with_matmul_precision(precision, || {
            let start_live = alloc::live_bytes();
            let varmap = candle_nn::VarMap::new();
            let vb = SeededInit::var_builder(&varmap, SeededRng::new(seed), DType::F32, device);
            let model = M::build(cfg, vb)?;
            let vars = lsnn_layers::named_vars(&varmap);
            let parameter_bytes: u64 = vars
                .iter()
                .map(|(_, v)| (v.elem_count() * v.dtype().size_in_bytes()) as u64)
                .sum();
            let mut rng = SeededRng::new(seed ^ 0x57A6E);
            // A first step unmeasured: what the first use of a kernel or a thread allocates once
            // (scratch buffers kept for the next call) is not a stage's cost.
            drop(model.loss_and_grads(batch, &mut Mode::Train(&mut rng.clone()), 1.0)?);
            let step = PeakWindow::open();
            let windows = Rc::new(RefCell::new(Windows::default()));
            let (_, grads) = observe(windows.clone(), || {
                model.loss_and_grads(batch, &mut Mode::Train(&mut rng), 1.0)
            })?;
            let mut stages = std::mem::take(&mut windows.borrow_mut().done);
            let grads = grads.ok_or_else(|| TrainError::Config {
                field: "memory stages".into(),
                message: "the probe step's loss is not finite; nothing to back-propagate".into(),
            })?;
            let named: std::collections::BTreeMap<String, candle_core::Tensor> = vars
                .iter()
                .filter_map(|(n, v)| grads.get(v.as_tensor()).map(|g| (n.clone(), g.clone())))
                .collect();
            drop(grads);
            // The optimizer: its state made (AdamW's moments) and one step — after one unmeasured,
            // for the same reason as the first training step.
            AdamW::new(&vars, adamw)?.step(&named, 1e-3, 1.0)?;
            let window = PeakWindow::open();
            let mut opt = AdamW::new(&vars, adamw)?;
            opt.step(&named, 1e-3, 1.0)?;
            stages.push(measured("optimizer", "optimizer", window));
            let step_start = step.start_live();
            let step_peak = step.close().saturating_sub(step_start);
            let parameters = vars.len();
            drop((opt, named, model, vars, varmap));
            Ok(StageReport {
                batch_rows: M::batch_rows(batch),
                start_live_bytes: start_live,
                parameter_bytes,
                parameters,
                step_peak_bytes: step_peak,
                stages,
            })
        })
    })
}
