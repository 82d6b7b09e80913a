//! A candle model built from lsnn-layers' pieces — no lsnn-train, no lsnn internals: the spiking
//! encoder, a `Leaky` layer and a CfC, with a `candle_nn::linear` head, all in one `VarMap`,
//! trained with `candle_nn::AdamW`. The task needs memory: the target at each position is a
//! decaying sum of the inputs so far, so the loss can fall far below the mean predictor's only if
//! the recurrent parts carry information through time.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use lsnn_layers::lif::{Leaky, LifConfig};
use lsnn_layers::{Cfc, CfcConfig, SeededInit, SeededRng, SpikingEncoder, SpikingEncoderConfig};

/// Rows per batch.
pub const B: usize = 16;
/// Positions per sequence.
pub const L: usize = 12;
/// Input features.
pub const F: usize = 3;
/// Spiking units.
const S: usize = 32;

/// The model: encoder → (rates, and a LIF layer over the positions) → CfC → linear head.
#[derive(Debug)]
pub struct SequenceModel {
    encoder: SpikingEncoder,
    proj: Linear,
    lif: Leaky,
    cfc: Cfc,
    head: Linear,
}

impl SequenceModel {
    /// Builds every layer through one builder (lsnn's and candle-nn's alike).
    pub fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let enc_cfg = SpikingEncoderConfig::new(F, S).with_steps(4).with_seed(7);
        Ok(SequenceModel {
            // `?` works on lsnn's errors inside a candle::Result function.
            encoder: SpikingEncoder::new(&enc_cfg, vb.pp("encoder"))?,
            proj: linear(S, S, vb.pp("proj"))?,
            lif: Leaky::new(&LifConfig::new(0.8).with_threshold(0.5))?,
            cfc: Cfc::new(
                &CfcConfig::new(2 * S, 32).with_backbone(64, 1),
                vb.pp("cfc"),
            )?,
            head: linear(32, 1, vb.pp("head"))?,
        })
    }

    /// x [B, L, F] → predictions [B, L]; dropout from the encoder's own generator when `train`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, l, f) = x.dims3()?;
        // The encoder works per position: [B·L, F] → firing rates [B·L, S].
        let rate = x.reshape((b * l, f))?.apply_t(&self.encoder, train)?;
        // A LIF layer with the positions as its time axis: currents [L, B, S] → spikes.
        let cur = self
            .proj
            .forward(&rate)?
            .reshape((b, l, S))?
            .transpose(0, 1)?;
        let spikes = self.lif.forward(&cur.contiguous()?)?.transpose(0, 1)?;
        let feats = Tensor::cat(&[&rate.reshape((b, l, S))?, &spikes], D::Minus1)?;
        let hs = self.cfc.forward(&feats)?;
        self.head.forward(&hs)?.squeeze(D::Minus1)
    }
}

/// A batch: inputs N(0, 1) [B, L, F] and targets y_t = Σ_{k ≤ t} 0.7^{t−k}·x_{k,0} − 0.5·x_{t,1}.
pub fn batch(rng: &mut SeededRng) -> candle_core::Result<(Tensor, Tensor)> {
    let xs: Vec<f32> = (0..B * L * F).map(|_| rng.normal() as f32).collect();
    let mut ys = vec![0f32; B * L];
    for b in 0..B {
        let mut acc = 0f32;
        for t in 0..L {
            let x = &xs[(b * L + t) * F..(b * L + t + 1) * F];
            acc = 0.7 * acc + x[0];
            ys[b * L + t] = acc - 0.5 * x[1];
        }
    }
    let dev = &Device::Cpu;
    Ok((
        Tensor::from_vec(xs, (B, L, F), dev)?,
        Tensor::from_vec(ys, (B, L), dev)?,
    ))
}

fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    Ok((a - b)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64)
}

/// What a training run reached on held-out batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The model's mean squared error.
    pub model_mse: f64,
    /// The mean predictor's (each batch's mean target).
    pub baseline_mse: f64,
}

/// Builds the model (seeded), trains it `steps` steps with candle-nn's AdamW, and scores it and
/// the mean predictor on 8 held-out batches.
pub fn train(steps: usize) -> candle_core::Result<Outcome> {
    lsnn_layers::init();
    let varmap = VarMap::new();
    // lsnn's seeded builder: every variable (candle-nn's Kaiming-initialised linears included)
    // comes from one seeded generator, so the run is reproducible.
    let vb = SeededInit::var_builder(&varmap, SeededRng::new(1), DType::F32, &Device::Cpu);
    let model = SequenceModel::new(vb)?;
    let params = ParamsAdamW {
        lr: 3e-3,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut opt = AdamW::new(varmap.all_vars(), params)?;
    let mut rng = SeededRng::new(2);
    for _ in 0..steps {
        let (x, y) = batch(&mut rng)?;
        let loss = (model.forward_t(&x, true)? - &y)?.sqr()?.mean_all()?;
        opt.backward_step(&loss)?;
    }
    let mut eval_rng = SeededRng::new(99);
    let (mut model_mse, mut baseline_mse) = (0.0, 0.0);
    for _ in 0..8 {
        let (x, y) = batch(&mut eval_rng)?;
        model_mse += mse(&model.forward_t(&x, false)?, &y)? / 8.0;
        let mean = y.mean_all()?.to_scalar::<f32>()? as f64;
        baseline_mse += mse(&y.ones_like()?.affine(mean, 0.0)?, &y)? / 8.0;
    }
    Ok(Outcome {
        model_mse,
        baseline_mse,
    })
}
