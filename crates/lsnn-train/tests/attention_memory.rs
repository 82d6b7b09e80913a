//! Attention's memory is linear in the sequence length (design §2.5.1): a whole language-model
//! training step (forward and staged backward) at L = 1024 makes no allocation as large as one
//! head's f32 [L, L] scores, 4·L² bytes, and its peak grows about linearly from L = 512 to 1024.
//! The control is the same step with `attention_kernel: "materialized"`, which holds the
//! [B, heads, L, L] probabilities for backward: the same checks must catch it.
//!
//! With `recompute_activations`, or `tbptt`, the same step's peak is lower still.
//!
//! The counting allocator is process-wide, so each measurement runs on one thread
//! (`kernel::sequential`) under one lock, and nothing else runs in this binary.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use lsnn_memory::{alloc, PeakWindow};
use lsnn_train::lsnn_layers::model::LanguageModel;
use lsnn_train::lsnn_layers::{kernel, AttentionKernel, DropoutRng, SeededInit, SeededRng};
use std::sync::Mutex;

#[global_allocator]
static A: lsnn_memory::CountingAlloc = lsnn_memory::CountingAlloc;

static LOCK: Mutex<()> = Mutex::new(());

/// (largest single allocation, peak above the start) of one training step at length `l`.
fn step(l: usize, kernel: AttentionKernel, recompute: bool, tbptt: Option<usize>) -> (u64, u64) {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut cfg = lsnn_train::workload::workload("lm-small").unwrap().model;
    cfg.sequence_length = l;
    cfg.max_position_embeddings = l;
    cfg.attention_kernel = kernel;
    cfg.recompute_activations = recompute;
    cfg.tbptt = tbptt;
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(1), DType::F32, &Device::Cpu);
    let run = || {
        let model = LanguageModel::new(&cfg, vb).unwrap();
        let ids: Vec<u32> = (0..=l as u32).map(|i| (i * 37 + 11) % 256).collect();
        let ids = Tensor::from_vec(ids, (1, l + 1), &Device::Cpu).unwrap();
        let dropout = DropoutRng::new(3);
        let measure = || {
            dropout.run(true, |mode| {
                let (_, grads) = model.loss_and_grads(&ids, 0.0, mode, 1.0).unwrap();
                grads.expect("finite loss")
            })
        };
        // A first step warms what a step keeps between calls; the second is measured.
        drop(measure());
        let start = alloc::live_bytes();
        let w = PeakWindow::open();
        drop(measure());
        let largest = w.largest_allocation();
        (largest, w.close().saturating_sub(start))
    };
    kernel::sequential(run)
}

#[test]
fn no_step_allocation_is_as_large_as_one_heads_scores_and_the_peak_is_linear_in_l() {
    assert!(alloc::is_installed());
    let scores = |l: usize| 4 * (l * l) as u64;
    let (largest, peak_1k) = step(1024, AttentionKernel::Auto, false, None);
    let (_, peak_512) = step(512, AttentionKernel::Auto, false, None);
    let (ctl_largest, ctl_peak_1k) = step(1024, AttentionKernel::Materialized, false, None);
    let (_, ctl_peak_512) = step(512, AttentionKernel::Materialized, false, None);
    let growth = peak_1k as f64 / peak_512 as f64;
    let ctl_growth = ctl_peak_1k as f64 / ctl_peak_512 as f64;
    eprintln!(
        "tiled (auto): largest {largest} B, peak {peak_512} → {peak_1k} B ({growth:.2}×); \
         materialized: largest {ctl_largest} B, peak {ctl_peak_512} → {ctl_peak_1k} B ({ctl_growth:.2}×)"
    );
    assert!(
        largest < scores(1024),
        "largest allocation {largest} B, one head's [L, L] scores {} B",
        scores(1024)
    );
    assert!(growth < 2.2, "peak grew {growth:.2}× from L = 512 to 1024");
    // The control: the materialised scores are caught by both checks.
    assert!(
        ctl_largest >= 4 * scores(1024),
        "materialized largest allocation {ctl_largest} B"
    );
    assert!(ctl_growth > 2.5, "materialized peak grew {ctl_growth:.2}×");
}

/// Activation recomputation (design §2.6.1) keeps each layer's input instead of its graph: at
/// L = 1024 the step's peak falls (the control is the same step without it).
#[test]
fn recomputation_lowers_the_step_peak() {
    let (_, plain) = step(1024, AttentionKernel::Auto, false, None);
    let (_, recomputed) = step(1024, AttentionKernel::Auto, true, None);
    let ratio = recomputed as f64 / plain as f64;
    eprintln!("L = 1024 step peak: plain {plain} B, recomputed {recomputed} B ({ratio:.3}×)");
    assert!(
        ratio < 0.9,
        "recomputed peak {recomputed} B vs plain {plain} B"
    );
}

/// Truncated BPTT (design §2.6.2) keeps one chunk's graph at a time: at L = 1024 in chunks of
/// 128 the step's peak falls (the control is the whole-window step).
#[test]
fn truncated_bptt_lowers_the_step_peak() {
    let (_, whole) = step(1024, AttentionKernel::Auto, false, None);
    let (_, chunked) = step(1024, AttentionKernel::Auto, false, Some(128));
    let ratio = chunked as f64 / whole as f64;
    eprintln!(
        "L = 1024 step peak: whole window {whole} B, chunks of 128 {chunked} B ({ratio:.3}×)"
    );
    assert!(ratio < 0.5, "chunked peak {chunked} B vs whole {whole} B");
}
