//! Truncated BPTT (`tbptt`, design §2.6.2): one chunk is the plain training step bit for bit;
//! shorter chunks compute the same forward pass (the liquid state and attention's earlier keys
//! and values cross chunk boundaries), so with dropout off the loss and the head's gradients
//! match the whole-window step while the trunk's gradients are truncated; bad settings are
//! typed errors.

mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use lsnn_layers::model::LanguageModel;
use lsnn_layers::{
    kernel, named_vars, AttentionKernel, LayerError, Mode, ModelConfig, SeededInit, SeededRng,
};

struct Step {
    /// (name, gradient) in parameter order.
    grads: Vec<(String, Vec<f32>)>,
    losses: [f32; 2],
    rng: [u64; 4],
}

fn step(tbptt: Option<usize>, dropout: bool, kernel: AttentionKernel) -> Step {
    let base = common::small_config(4, 1);
    let p = if dropout { 0.2 } else { 0.0 };
    let cfg = ModelConfig {
        tbptt,
        dropout: p,
        embedding_dropout: p,
        encoder_dropout: p,
        block_dropout: p,
        max_position_embeddings: 12,
        attention_kernel: kernel,
        ..base
    };
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(&vm, SeededRng::new(5), DType::F32, &Device::Cpu);
    let m = LanguageModel::new(&cfg, vb).unwrap();
    // A window of 11: the model reads L = 10 positions.
    let ids: Vec<u32> = (0..33).map(|i| (i * 7 + 3) % 24).collect();
    let ids = Tensor::from_vec(ids, (3, 11), &Device::Cpu).unwrap();
    let mut rng = SeededRng::new(11);
    let (loss, grads) = kernel::sequential(|| {
        m.loss_and_grads(&ids, 0.1, &mut Mode::Train(&mut rng), 0.5)
            .unwrap()
    });
    let grads = grads.expect("finite loss");
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    Step {
        grads: named_vars(&vm)
            .iter()
            .map(|(n, v)| (n.clone(), flat(grads.get(v.as_tensor()).expect(n))))
            .collect(),
        losses: [
            loss.objective.to_scalar::<f32>().unwrap(),
            loss.cross_entropy.to_scalar::<f32>().unwrap(),
        ],
        rng: rng.state(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn one_chunk_is_the_plain_step_bit_for_bit() {
    for kern in [AttentionKernel::Materialized, AttentionKernel::Tiled] {
        one_chunk_case(kern);
    }
}

fn one_chunk_case(kern: AttentionKernel) {
    let plain = step(None, true, kern);
    for k in [10, 64] {
        let one = step(Some(k), true, kern);
        assert_eq!(bits(&plain.losses), bits(&one.losses), "K = {k}: losses");
        assert_eq!(plain.rng, one.rng, "K = {k}: the dropout generator");
        for ((n, a), (_, b)) in plain.grads.iter().zip(&one.grads) {
            assert!(bits(a) == bits(b), "K = {k}: gradient of {n}");
        }
    }
}

/// max |a − b| / max(1, max |b|).
fn rel(a: &[f32], b: &[f32]) -> f32 {
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    d / b.iter().map(|x| x.abs()).fold(1.0, f32::max)
}

#[test]
fn chunks_carry_the_state_and_the_past_and_truncate_only_the_gradients() {
    // The materialised attention (what "auto" takes at these lengths) and the tiled op, whose
    // causal mask is offset by the past's length.
    for kern in [AttentionKernel::Materialized, AttentionKernel::Tiled] {
        chunks_case(kern);
    }
}

fn chunks_case(kern: AttentionKernel) {
    let plain = step(None, false, kern);
    for k in [1, 3, 4] {
        let chunked = step(Some(k), false, kern);
        // The forward pass is the whole window's: the loss agrees to rounding.
        for (a, b) in chunked.losses.iter().zip(&plain.losses) {
            assert!(
                (a - b).abs() <= 1e-5 * b.abs(),
                "{kern:?} K = {k}: loss {a} vs {b}"
            );
        }
        let mut truncated = 0;
        for ((n, a), (_, b)) in chunked.grads.iter().zip(&plain.grads) {
            let r = rel(a, b);
            if n.starts_with("head.") {
                // The head is per position: its gradients see the same activations.
                assert!(r <= 1e-4, "K = {k}: {n} differs by {r}");
            } else if r > 1e-3 {
                truncated += 1;
            }
        }
        // Gradients through the recurrence and attention stop at chunk boundaries.
        assert!(truncated > 0, "K = {k}: no gradient was truncated");
    }
}

#[test]
fn bad_settings_are_typed_errors() {
    let base = common::small_config(2, 1);
    let zero = ModelConfig {
        tbptt: Some(0),
        ..base.clone()
    };
    let e = zero.validate().unwrap_err();
    assert!(
        matches!(&e, LayerError::Config { field, .. } if field == "tbptt"),
        "{e}"
    );
    let seq = ModelConfig {
        tbptt: Some(4),
        task_type: "regression".into(),
        input_dim: 3,
        output_dim: 2,
        ..base.clone()
    };
    let e = seq.validate().unwrap_err().to_string();
    assert!(e.contains("tbptt") && e.contains("language model"), "{e}");
    let both = ModelConfig {
        tbptt: Some(4),
        recompute_activations: true,
        ..base.clone()
    };
    let e = both.validate().unwrap_err().to_string();
    assert!(e.contains("recompute_activations"), "{e}");
    let ok = ModelConfig {
        tbptt: Some(4),
        ..base
    };
    ok.validate().unwrap();
    let text = ok.to_json();
    assert!(text.contains("\"tbptt\": 4"), "{text}");
    assert!(!ModelConfig::default().to_json().contains("tbptt"));
}
