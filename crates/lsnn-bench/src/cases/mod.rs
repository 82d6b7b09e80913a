//! The leak regression cases and their controls.
//!
//! Every real path has a control that runs the *same* workload plus one small, realistic leak of
//! about 4 KiB per iteration — a per-step spike tensor pushed into a growing `Vec`, a running
//! loss summed without `detach` (its graph node survives), an accumulator re-allocated and kept,
//! an EMA done by allocating new tensors and keeping the old ones, a growing history buffer — so
//! the check is shown to catch a leak of that size on top of the real workload's own noise.
//! Chains stay bounded (≤ 110 links) so that dropping them cannot overflow the stack (design §6).

use crate::{iteration, Iteration, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use lsnn_layers::lif::LifConfig;
use lsnn_layers::{ModelConfig, SeededInit, SeededRng};
use lsnn_memory::leak::runner::{spec_config, Kind, LeakCase};
use lsnn_memory::LeakConfig;
use lsnn_train::{RunConfig, TrainConfig};

mod layers;
mod sequence;
mod training;

use layers::{
    alif_chunks_case, attention_case, block_case, encoder_case, rleaky_chunks_case,
    synaptic_chunks_case,
};
use sequence::{
    classification_step_case, encoded_batch_case, regression_step_case, stream_predict_case,
};
use training::{
    auto_probe_case, checkpoint_case, ema_case, generation_case, ltc_train_step_case,
    ncp_train_step_case, recorded_epoch_case, tbptt_train_step_case, train_step_case,
    trainer_epoch_case,
};

/// The small leak a control adds to its workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leak {
    /// None: the real case.
    None,
    /// The iteration's 4 KiB spike/rate tensor pushed into a growing `Vec`.
    SpikeVec,
    /// A running loss summed without `detach`: one 4 KiB graph node survives per iteration.
    RunningLossGraph,
    /// A 4 KiB accumulator re-allocated every call and kept.
    ReallocAccumulator,
    /// An EMA that allocates a new 4 KiB tensor per update and keeps the old one.
    AllocatingEma,
    /// A history buffer growing by 1,024 floats per iteration.
    HistoryBuffer,
    /// A neuron layer's state carried into the next chunk with its autograd graph (not
    /// detached): every earlier chunk's graph, tens of KiB each, stays alive. The case itself
    /// does it (the leaker adds nothing).
    CarriedState,
}

/// State of a control's leak.
pub(crate) struct Leaker {
    leak: Leak,
    kept: Vec<Tensor>,
    history: Vec<f32>,
    running: Option<Tensor>,
    var: Var,
    shadow: Tensor,
}

/// A case's scratch directory (checkpoints, a trainer's output), fresh for the case and removed
/// when the case's iteration is dropped, so that a leak run leaves nothing in the temporary
/// directory.
pub(crate) struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// `lsnn-leak-{tag}-{pid}` in the temporary directory, emptied first.
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lsnn-leak-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ScratchDir(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The device the cases run on: the CPU, or the CUDA device `LSNN_LEAK_DEVICE` names
/// (`lsnn-leakcheck --device cuda`), read once.
pub(crate) fn device() -> Result<Device> {
    static DEVICE: std::sync::OnceLock<std::result::Result<Device, String>> =
        std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| lsnn_memory::leak::runner::leak_device().map_err(|e| e.to_string()))
        .clone()
        .map_err(crate::BenchError::Other)
}

/// Values a control leaks per iteration: 1,024 floats (4 KiB) on the host; on a device
/// 524,288 (2 MiB, the CUDA driver's allocation granule, so that its used-memory figure moves).
fn leak_len() -> Result<usize> {
    Ok(if device()?.is_cpu() { 1024 } else { 1 << 19 })
}

impl Leaker {
    pub(crate) fn new(leak: Leak) -> Result<Self> {
        let dev = device()?;
        let n = leak_len()?;
        let var = Var::ones(n, DType::F32, &dev)?;
        let shadow = Tensor::zeros(n, DType::F32, &dev)?;
        Ok(Leaker {
            leak,
            kept: Vec::new(),
            history: Vec::new(),
            running: None,
            var,
            shadow,
        })
    }

    /// Leaks once; `spikes` is the iteration's own spike/rate output (at least 1,024 values).
    pub(crate) fn leak(&mut self, spikes: Option<&Tensor>) -> Result<()> {
        match self.leak {
            Leak::None => {}
            Leak::SpikeVec => {
                let n = leak_len()?;
                let s = match spikes {
                    Some(s) if s.elem_count() >= n => s
                        .flatten_all()?
                        .narrow(0, 0, n)?
                        .force_contiguous()?
                        .detach(),
                    _ => Tensor::zeros(n, DType::F32, &device()?)?,
                };
                self.kept.push(s.detach());
            }
            Leak::RunningLossGraph => {
                let term = self.var.as_tensor().affine(1.0, 0.0)?.mean_all()?;
                self.running = Some(match self.running.take() {
                    Some(r) => (r + term)?,
                    None => term,
                });
            }
            Leak::ReallocAccumulator => {
                self.kept
                    .push(Tensor::zeros(leak_len()?, DType::F32, &device()?)?)
            }
            Leak::AllocatingEma => {
                let next = (self.shadow.affine(0.999, 0.0)?
                    + self.var.as_tensor().detach().affine(0.001, 0.0)?)?;
                self.kept.push(std::mem::replace(&mut self.shadow, next));
            }
            Leak::CarriedState => {}
            Leak::HistoryBuffer => {
                if device()?.is_cpu() {
                    self.history.extend(std::iter::repeat_n(0.5f32, 1024))
                } else {
                    // On a device a history is kept there.
                    self.kept
                        .push(Tensor::full(0.5f32, leak_len()?, &device()?)?)
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn lif() -> LifConfig {
    LifConfig {
        beta: 0.9,
        threshold: 0.5,
        ..LifConfig::default()
    }
}

pub(crate) fn vb(vm: &VarMap, seed: u64) -> candle_nn::VarBuilder<'static> {
    SeededInit::var_builder(
        vm,
        SeededRng::new(seed),
        DType::F32,
        &device().unwrap_or(Device::Cpu),
    )
}

pub(crate) fn normal(shape: &[usize], seed: u64) -> Result<Tensor> {
    Ok(SeededRng::new(seed).normal_tensor(shape, 0.0, 1.0, DType::F32, &device()?)?)
}

/// The tiny LM the training-path cases use, and its training settings.
pub fn tiny_config() -> RunConfig<ModelConfig> {
    let model = ModelConfig {
        embedding_dim: 32,
        input_dim: 32,
        hidden_dim: 32,
        spiking_units: 16,
        liquid_units: 16,
        num_layers: 2,
        num_attention_heads: 2,
        num_spike_steps: 3,
        attention_spike_steps: 3,
        sequence_length: 16,
        max_position_embeddings: 16,
        backbone_units: 32,
        spike_threshold: 0.5,
        initializer_range: 0.5,
        ..ModelConfig::default()
    };
    let train = TrainConfig {
        batch_size: 4,
        warmup_steps: 2,
        num_epochs: 1_000,
        cleanup_every: 0,
        ..TrainConfig::default()
    };
    RunConfig { model, train }
}

fn with_rss(mut c: LeakConfig, bytes: u64) -> LeakConfig {
    c.max_rss_growth_bytes = Some(bytes);
    c
}

/// Every case and control.
pub fn all() -> Vec<LeakCase> {
    let mut v = Vec::new();
    let mut add = |name: &'static str,
                   desc: &'static str,
                   cfg: LeakConfig,
                   leak: Leak,
                   make: fn(Leak) -> Result<Iteration>| {
        v.push(LeakCase {
            name: name.into(),
            kind: if leak == Leak::None {
                Kind::Case
            } else {
                Kind::Control
            },
            description: desc.into(),
            config: cfg,
            setup: Box::new(move || Ok(iteration(make(leak)?))),
        });
    };
    let c = spec_config;
    add(
        "encoder/fwd",
        "SpikingEncoder forward (rate form), training mode",
        c(),
        Leak::None,
        |l| encoder_case(false, l),
    );
    add(
        "encoder/fwd/control-spike-vec",
        "the same, keeping each iteration's 4 KiB rate tensor in a Vec",
        c(),
        Leak::SpikeVec,
        |l| encoder_case(false, l),
    );
    add(
        "encoder/fwd-bwd",
        "SpikingEncoder forward + backward",
        c(),
        Leak::None,
        |l| encoder_case(true, l),
    );
    add(
        "encoder/fwd-bwd/control-running-loss",
        "the same, plus a running loss summed without detach",
        c(),
        Leak::RunningLossGraph,
        |l| encoder_case(true, l),
    );
    add(
        "block/fwd",
        "HybridLiquidSpikingBlock forward",
        c(),
        Leak::None,
        |l| block_case(false, l),
    );
    add(
        "block/fwd/control-history",
        "the same, with a history buffer growing 4 KiB per call",
        c(),
        Leak::HistoryBuffer,
        |l| block_case(false, l),
    );
    add(
        "block/fwd-bwd",
        "HybridLiquidSpikingBlock forward + backward",
        c(),
        Leak::None,
        |l| block_case(true, l),
    );
    add(
        "block/fwd-bwd/control-running-loss",
        "the same, plus a running loss summed without detach",
        c(),
        Leak::RunningLossGraph,
        |l| block_case(true, l),
    );
    add(
        "attention/fwd",
        "MultiHeadSpikingAttention forward",
        c(),
        Leak::None,
        |l| attention_case(false, l),
    );
    add(
        "attention/fwd/control-realloc-acc",
        "the same, re-allocating and keeping a 4 KiB accumulator per call",
        c(),
        Leak::ReallocAccumulator,
        |l| attention_case(false, l),
    );
    add(
        "attention/fwd-bwd",
        "MultiHeadSpikingAttention forward + backward",
        c(),
        Leak::None,
        |l| attention_case(true, l),
    );
    add(
        "attention/fwd-bwd/control-spike-vec",
        "the same, keeping a 4 KiB output slice per call",
        c(),
        Leak::SpikeVec,
        |l| attention_case(true, l),
    );
    add(
        "synaptic-chunks",
        "current-based LIF (learned α, β, θ) training on a stream in chunks of 8 steps, its state carried into the next chunk detached",
        c(),
        Leak::None,
        synaptic_chunks_case,
    );
    add(
        "synaptic-chunks/control-carried-state",
        "the same, carrying the state with its graph (not detached)",
        c(),
        Leak::CarriedState,
        synaptic_chunks_case,
    );
    add(
        "rleaky-chunks",
        "all-to-all recurrent LIF (learned W, b, β, θ) training on a stream in chunks of 8 steps, its state carried into the next chunk detached",
        c(),
        Leak::None,
        rleaky_chunks_case,
    );
    add(
        "rleaky-chunks/control-carried-state",
        "the same, carrying the state with its graph (not detached)",
        c(),
        Leak::CarriedState,
        rleaky_chunks_case,
    );
    add(
        "alif-chunks",
        "adaptive LIF (learned α, β, θ) training on a stream in chunks of 8 steps, its state (syn, mem, adapt) carried into the next chunk detached",
        c(),
        Leak::None,
        alif_chunks_case,
    );
    add(
        "alif-chunks/control-carried-state",
        "the same, carrying the state with its graph (not detached)",
        c(),
        Leak::CarriedState,
        alif_chunks_case,
    );
    add(
        "train-step",
        "LM training step: forward, loss, backward, AdamW (in place)",
        c(),
        Leak::None,
        train_step_case,
    );
    add(
        "train-step/control-running-loss",
        "the same, plus a running loss summed without detach",
        c(),
        Leak::RunningLossGraph,
        train_step_case,
    );
    add(
        "ncp-train-step",
        "LM training step with the wired CfC (AutoNCP of the liquid units): forward, loss, backward, AdamW",
        c(),
        Leak::None,
        ncp_train_step_case,
    );
    add(
        "ncp-train-step/control-history",
        "the same, with a history buffer growing 4 KiB per step",
        c(),
        Leak::HistoryBuffer,
        ncp_train_step_case,
    );
    add(
        "ltc-train-step",
        "LM training step with the LTC as liquid cell (6 unfolds): forward, loss, backward, AdamW, the clamp of its positive parameters",
        c(),
        Leak::None,
        ltc_train_step_case,
    );
    add(
        "ltc-train-step/control-history",
        "the same, with a history buffer growing 4 KiB per step",
        c(),
        Leak::HistoryBuffer,
        ltc_train_step_case,
    );
    add(
        "tbptt-train-step",
        "LM training step with truncated BPTT (chunks of 4 of 16 positions; liquid state and attention past carried detached), AdamW",
        c(),
        Leak::None,
        tbptt_train_step_case,
    );
    add(
        "tbptt-train-step/control-carried-graph",
        "the same, carrying a 4 KiB value from step to step with its graph (a state not detached)",
        c(),
        Leak::RunningLossGraph,
        tbptt_train_step_case,
    );
    add(
        "auto-probe",
        "shard_rows auto's probe steps (1, 2 and 4 rows of a batch of 4, all fitting), each iteration a fresh choice",
        c(),
        Leak::None,
        auto_probe_case,
    );
    add(
        "auto-probe/control-history",
        "the same, keeping a 4 KiB record per choice in a growing history",
        c(),
        Leak::HistoryBuffer,
        auto_probe_case,
    );
    add(
        "regression-train-step",
        "sequence regression training step (the ts-small step, tiny): forward, Smooth-L1, backward, AdamW",
        c(),
        Leak::None,
        regression_step_case,
    );
    add(
        "regression-train-step/control-running-loss",
        "the same, plus a running loss summed without detach",
        c(),
        Leak::RunningLossGraph,
        regression_step_case,
    );
    add(
        "classification-train-step",
        "sequence classification training step (the cls-small step, tiny): forward, readout, cross-entropy, backward, AdamW",
        c(),
        Leak::None,
        classification_step_case,
    );
    add(
        "classification-train-step/control-history",
        "the same, with a history buffer growing 4 KiB per step",
        c(),
        Leak::HistoryBuffer,
        classification_step_case,
    );
    add(
        "encoded-batches",
        "rate-encoded batches of a static classification data set (16 rows × 8 steps), built and dropped",
        c(),
        Leak::None,
        encoded_batch_case,
    );
    add(
        "encoded-batches/control-history",
        "the same, with a history buffer growing 4 KiB per batch",
        c(),
        Leak::HistoryBuffer,
        encoded_batch_case,
    );
    add(
        "stream-predict",
        "streaming regression prediction with time spans, one position per iteration (state reset at the caches' capacity)",
        c(),
        Leak::None,
        stream_predict_case,
    );
    add(
        "stream-predict/control-spike-vec",
        "the same, keeping 4 KiB per position in a growing Vec",
        c(),
        Leak::SpikeVec,
        stream_predict_case,
    );
    add(
        "ema",
        "in-place EMA update of every LM weight",
        c(),
        Leak::None,
        ema_case,
    );
    add(
        "ema/control-allocating-ema",
        "the same, plus an EMA that allocates new tensors and keeps the old",
        c(),
        Leak::AllocatingEma,
        ema_case,
    );
    add(
        "generation",
        "streaming generation, one token per iteration (state reset at the position limit)",
        c(),
        Leak::None,
        generation_case,
    );
    add(
        "generation/control-history",
        "the same, keeping a growing history of 1,024 floats per token",
        c(),
        Leak::HistoryBuffer,
        generation_case,
    );
    add(
        "checkpoint",
        "atomic checkpoint save + load + cleanup (live bytes and RSS)",
        with_rss(c(), 1 << 20),
        Leak::None,
        checkpoint_case,
    );
    add(
        "checkpoint/control-kept-tensors",
        "the same, keeping 4 KiB of each loaded checkpoint",
        with_rss(c(), 1 << 20),
        Leak::SpikeVec,
        checkpoint_case,
    );
    add(
        "trainer-epoch",
        "a whole trainer epoch with evaluation and cleanup at its end (live bytes and RSS)",
        with_rss(c(), 1 << 20),
        Leak::None,
        trainer_epoch_case,
    );
    add(
        "trainer-epoch/control-history",
        "the same, with a history buffer growing 4 KiB per epoch",
        with_rss(c(), 1 << 20),
        Leak::HistoryBuffer,
        trainer_epoch_case,
    );
    add(
        "trainer-epoch-recorded",
        "a trainer epoch writing the run's record and a TensorBoard file, serving a live dashboard to one page (live bytes and RSS)",
        with_rss(c(), 1 << 20),
        Leak::None,
        recorded_epoch_case,
    );
    add(
        "trainer-epoch-recorded/control-history",
        "the same, with a history buffer growing 4 KiB per epoch",
        with_rss(c(), 1 << 20),
        Leak::HistoryBuffer,
        recorded_epoch_case,
    );
    v
}

/// Cases whose work is on the host whatever the device (file I/O, the trainer's epoch with its
/// RSS checks): a device suite (`lsnn-leakcheck all --device cuda`) leaves them out.
pub const HOST_ONLY: &[&str] = &["checkpoint", "trainer-epoch", "trainer-epoch-recorded"];

/// The case named `name`.
pub fn by_name(name: &str) -> Option<LeakCase> {
    all().into_iter().find(|c| c.name == name)
}
