//! Shared helpers for the lsnn-layers tests.
#![allow(dead_code)]

use candle_core::{Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;
use std::path::PathBuf;

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn load(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture_path(name), &Device::Cpu).expect("fixture loads")
}

pub fn scalar(t: &Tensor) -> f64 {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0]
}

pub fn vec_f32(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// A VarMap holding the given tensors as trainable variables, and a VarBuilder over it.
pub fn varmap_from(tensors: &HashMap<String, Tensor>) -> (VarMap, VarBuilder<'static>) {
    let vm = VarMap::new();
    {
        let mut data = vm.data().lock().unwrap();
        for (k, t) in tensors {
            data.insert(k.clone(), Var::from_tensor(t).unwrap());
        }
    }
    let vb = VarBuilder::from_varmap(&vm, candle_core::DType::F32, &Device::Cpu);
    (vm, vb)
}

/// A fixture's model parameters: every tensor but the gradients (`grad.`), the metadata
/// (`meta.`), the firing rates (`firing_rate.`) and the named inputs and outputs `io`.
pub fn parameters(f: &HashMap<String, Tensor>, io: &[&str]) -> HashMap<String, Tensor> {
    f.iter()
        .filter(|(k, _)| {
            !k.starts_with("grad.")
                && !k.starts_with("meta.")
                && !k.starts_with("firing_rate.")
                && !io
                    .iter()
                    .any(|n| k.as_str() == *n || k.starts_with(&format!("{n}.")))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// max |a − b|.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    vec_f32(a)
        .iter()
        .zip(vec_f32(b))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts |a − b| ≤ tol·max(1, |b|) elementwise.
pub fn assert_grad_close(what: &str, a: &Tensor, b: &Tensor, tol: f32) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    for (i, (x, y)) in vec_f32(a).iter().zip(vec_f32(b)).enumerate() {
        assert!(
            (x - y).abs() <= tol * y.abs().max(1.0),
            "{what}[{i}]: {x} vs reference {y}"
        );
    }
}

/// The reset mechanisms, for tests that cover them all.
pub const RESETS: [lsnn_layers::lif::ResetMechanism; 3] = [
    lsnn_layers::lif::ResetMechanism::Subtract,
    lsnn_layers::lif::ResetMechanism::Zero,
    lsnn_layers::lif::ResetMechanism::None,
];

/// One of each surrogate (non-default parameters where that tests more).
pub const SURROGATES: [lsnn_layers::lif::Surrogate; 6] = [
    lsnn_layers::lif::Surrogate::fast_sigmoid(25.0),
    lsnn_layers::lif::Surrogate::atan(2.0),
    lsnn_layers::lif::Surrogate::sigmoid(25.0),
    lsnn_layers::lif::Surrogate::triangular(1.5),
    lsnn_layers::lif::Surrogate::straight_through(),
    lsnn_layers::lif::Surrogate::spike_rate_escape(1.0, 25.0),
];

/// The LIF forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Spikes,
    RateMem,
    ConstSpikes,
    ConstRate,
}

/// Neuron shapes for the proptests: rank 1 to 3, up to 300 neurons in a row.
pub fn neuron_dims() -> impl proptest::strategy::Strategy<Value = Vec<usize>> {
    use proptest::prelude::*;
    prop_oneof![
        (1usize..=300).prop_map(|a| vec![a]),
        (1usize..=20, 1usize..=20).prop_map(|(a, b)| vec![a, b]),
        (1usize..=6, 1usize..=6, 1usize..=6).prop_map(|(a, b, c)| vec![a, b, c]),
    ]
}

/// Every LIF form.
pub const FORMS: [Form; 4] = [
    Form::Spikes,
    Form::RateMem,
    Form::ConstSpikes,
    Form::ConstRate,
];

// ---- small models and blocks (model.rs, model_errors.rs) ----

/// A small model whose spikes fire.
pub fn small_config(num_layers: usize, backbone_layers: usize) -> lsnn_layers::ModelConfig {
    let cfg = lsnn_layers::ModelConfig {
        input_dim: 12,
        embedding_dim: 12,
        hidden_dim: 16,
        output_dim: 24,
        vocab_size: 24,
        liquid_units: 8,
        spiking_units: 10,
        spike_threshold: 0.5,
        num_layers,
        num_spike_steps: 3,
        num_attention_heads: 2,
        attention_spike_steps: 4,
        sequence_length: 6,
        max_position_embeddings: 9,
        initializer_range: 1.0,
        backbone_units: 14,
        backbone_layers,
        ..lsnn_layers::ModelConfig::default()
    };
    cfg.validate().unwrap();
    cfg
}

/// A small hybrid block config (backbone of 2 layers).
pub fn block_config() -> lsnn_layers::block::BlockConfig {
    lsnn_layers::block::BlockConfig::new(12, 8, 6)
        .with_spike_steps(4)
        .with_lif(lsnn_layers::lif::LifConfig::default().with_threshold(0.5))
        .with_backbone(10, 2)
        .with_cfc_mode(lsnn_layers::cfc::CfcMode::Default)
}

/// The small block, seeded.
pub fn block(seed: u64) -> lsnn_layers::block::HybridLiquidSpikingBlock {
    block_of(&block_config(), seed)
}

/// A block of `cfg`, seeded.
pub fn block_of(
    cfg: &lsnn_layers::block::BlockConfig,
    seed: u64,
) -> lsnn_layers::block::HybridLiquidSpikingBlock {
    let vb = lsnn_layers::SeededInit::var_builder(
        &VarMap::new(),
        lsnn_layers::SeededRng::new(seed),
        candle_core::DType::F32,
        &Device::Cpu,
    );
    lsnn_layers::block::HybridLiquidSpikingBlock::new(cfg, vb).unwrap()
}

// ---- f64 comparisons (rleaky.rs, rleaky_layer.rs) ----

/// A normal(mean, std) f64 tensor on the CPU.
pub fn randn(rng: &mut lsnn_layers::SeededRng, dims: &[usize], mean: f64, std: f64) -> Tensor {
    rng.normal_tensor(dims, mean, std, candle_core::DType::F64, &Device::Cpu)
        .unwrap()
}

/// The values of `t` as f64, flattened.
pub fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// |a − b| ≤ tol·max(1, |b|) elementwise, both finite.
pub fn close(what: &str, a: &Tensor, b: &Tensor, tol: f64) -> Result<(), String> {
    if a.elem_count() != b.elem_count() {
        return Err(format!("{what}: shapes {:?} vs {:?}", a.dims(), b.dims()));
    }
    for (i, (x, y)) in f64s(a).iter().zip(f64s(b)).enumerate() {
        if (x - y).abs() > tol * y.abs().max(1.0) || !x.is_finite() || !y.is_finite() {
            return Err(format!("{what}[{i}]: {x} vs {y}"));
        }
    }
    Ok(())
}

/// [`close`] with an extra allowance of `sum_tol`·max|b| for values that are sums of many
/// signed terms in a different order on the two paths (an all-to-all gradient through a
/// matmul): where a steep surrogate makes the largest entries reach 1e9, an entry of 2 left by
/// cancellation carries rounding of order eps·1e9 that no elementwise relative bound admits.
pub fn close_summed(
    what: &str,
    a: &Tensor,
    b: &Tensor,
    tol: f64,
    sum_tol: f64,
) -> Result<(), String> {
    if a.elem_count() != b.elem_count() {
        return Err(format!("{what}: shapes {:?} vs {:?}", a.dims(), b.dims()));
    }
    let (xs, ys) = (f64s(a), f64s(b));
    let scale = ys.iter().fold(0f64, |m, y| m.max(y.abs()));
    for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
        let bound = tol * y.abs().max(1.0) + sum_tol * scale;
        if (x - y).abs() > bound || !x.is_finite() || !y.is_finite() {
            return Err(format!("{what}[{i}]: {x} vs {y} (largest |entry| {scale})"));
        }
    }
    Ok(())
}

/// The bits of `t`'s values as f64, flattened.
pub fn bits(t: &Tensor) -> Vec<u64> {
    f64s(t).iter().map(|v| v.to_bits()).collect()
}

// ---- the leaves of a three-parameter neuron's fused-against-reference run ----

/// How many values each of α, β, θ has (0: the config's fixed values for all three).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub alpha: usize,
    pub beta: usize,
    pub theta: usize,
}

/// α, β, θ fixed by the config.
pub const FIXED: Source = Source {
    alpha: 0,
    beta: 0,
    theta: 0,
};

/// The tensors one side of a comparison of a neuron with learned α, β, θ (the alpha neuron, the
/// adaptive LIF) trains: the currents, each part of the initial state, α, β, θ.
#[derive(Debug)]
pub struct Leaves {
    pub x: Var,
    pub state: Vec<Var>,
    pub coefs: [Var; 3],
}

impl Leaves {
    pub fn new(x: &Tensor, state: &[Tensor], coefs: &[Tensor; 3]) -> Self {
        let v = |t: &Tensor| Var::from_tensor(t).unwrap();
        Leaves {
            x: v(x),
            state: state.iter().map(v).collect(),
            coefs: [v(&coefs[0]), v(&coefs[1]), v(&coefs[2])],
        }
    }

    /// α, β, θ as a call takes them.
    pub fn params(&self) -> lsnn_layers::synaptic::SynapticParams {
        let [a, b, t] = &self.coefs;
        lsnn_layers::synaptic::SynapticParams::new(
            a.as_tensor().clone(),
            b.as_tensor().clone(),
            t.as_tensor().clone(),
        )
    }

    /// The initial state's parts, in order.
    pub fn state_parts(&self) -> Vec<Tensor> {
        self.state.iter().map(|v| v.as_tensor().clone()).collect()
    }
}

// ---- the encoder and attention with a neuron, fused against composed ----

/// What [`encoder_attention_parity`] saw on both paths.
#[derive(Debug)]
pub struct EncoderAttentionRun {
    /// The encoder's rate, fused and composed.
    pub rate: (Tensor, Tensor),
    /// The attention's output, fused and composed.
    pub out: (Tensor, Tensor),
    /// The spiking layers' own variables (`lif` in their names) and their shapes, sorted.
    pub lif_vars: Vec<(String, Vec<usize>)>,
}

/// The encoder (12 → 8, `steps` steps, dropout 0.2) and the attention (width 8, 2 heads, a rate
/// code of 4 steps) with `lif` and `neuron`, seeded, f64, in training: a loss on the encoder's
/// rate and the attention's output, run fused and then on the composed path. Every variable
/// must get a gradient on both paths, equal within 1e-9·max(1, |b|) (`what` names the case in
/// the panic); the outputs are returned for the caller's own tolerance.
pub fn encoder_attention_parity(
    what: &str,
    lif: lsnn_layers::lif::LifConfig,
    neuron: lsnn_layers::neuron::Neuron,
    steps: usize,
) -> EncoderAttentionRun {
    use lsnn_layers::attention::{AttentionConfig, MultiHeadSpikingAttention};
    use lsnn_layers::encoder::{SpikingEncoder, SpikingEncoderConfig};
    use lsnn_layers::{Mode, SeededInit, SeededRng};
    let vm = VarMap::new();
    let vb = SeededInit::var_builder(
        &vm,
        SeededRng::new(2),
        candle_core::DType::F64,
        &Device::Cpu,
    );
    let enc_cfg = SpikingEncoderConfig::new(12, 8)
        .with_steps(steps)
        .with_lif(lif)
        .with_neuron(neuron)
        .with_dropout(0.2);
    let enc = SpikingEncoder::new(&enc_cfg, vb.pp("enc")).unwrap();
    let att_cfg = AttentionConfig::new(8, 2)
        .with_spike_steps(4)
        .with_lif(lif)
        .with_neuron(neuron);
    let att = MultiHeadSpikingAttention::new(&att_cfg, vb.pp("att")).unwrap();
    let x = randn(&mut SeededRng::new(3), &[6, 12], 0.0, 1.5);
    let run = || {
        let out = enc
            .rate(&x, &mut Mode::Train(&mut SeededRng::new(40)))
            .unwrap();
        let seq = (out.spikes.reshape((2, 3, 8)).unwrap() * 3.0).unwrap();
        let y = candle_core::Module::forward(&att, &seq).unwrap();
        let w = randn(&mut SeededRng::new(41), y.dims(), 0.0, 1.0);
        let w2 = randn(&mut SeededRng::new(42), out.spikes.dims(), 0.0, 1.0);
        let loss = ((&y * w).unwrap().sum_all().unwrap()
            + (&out.spikes * w2).unwrap().sum_all().unwrap())
        .unwrap();
        (out.spikes, y, loss.backward().unwrap())
    };
    let (sf, yf, gf) = run();
    let (sr, yr, gr) = lsnn_layers::kernel::composed(run);
    let vars = vm.data().lock().unwrap();
    let mut lif_vars = Vec::new();
    for (name, var) in vars.iter() {
        let a = gf
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what} {name}: no fused gradient"));
        let b = gr
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what} {name}: no composed gradient"));
        close(&format!("{what} {name}"), a, b, 1e-9).unwrap();
        if name.contains("lif") {
            lif_vars.push((name.clone(), var.as_tensor().dims().to_vec()));
        }
    }
    lif_vars.sort();
    EncoderAttentionRun {
        rate: (sf, sr),
        out: (yf, yr),
        lif_vars,
    }
}
