//! A program as a candle user would write it with lsnn-layers (no lsnn-train, no lsnn internals):
//! lsnn's spiking encoder, a `Leaky` layer and a CfC, with a `candle_nn::linear` head, all in one
//! `VarMap`, trained with `candle_nn::AdamW` on generated data. The task needs memory: the
//! target at each position is a decaying sum of the inputs so far, so the loss can only fall
//! far below the mean predictor's if the recurrent parts carry information through time.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use lsnn_layers::lif::{Leaky, LifConfig};
use lsnn_layers::{Cfc, CfcConfig, SeededInit, SeededRng, SpikingEncoder, SpikingEncoderConfig};

const B: usize = 16;
const L: usize = 12;
const F: usize = 3;

struct Model {
    encoder: SpikingEncoder,
    proj: Linear,
    lif: Leaky,
    cfc: Cfc,
    head: Linear,
}

impl Model {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let enc_cfg = SpikingEncoderConfig::new(F, 32).with_steps(4).with_seed(7);
        Ok(Model {
            // `?` works on lsnn's errors inside a candle::Result function.
            encoder: SpikingEncoder::new(&enc_cfg, vb.pp("encoder"))?,
            proj: linear(32, 32, vb.pp("proj"))?,
            lif: Leaky::new(&LifConfig::new(0.8).with_threshold(0.5))?,
            cfc: Cfc::new(&CfcConfig::new(64, 32).with_backbone(64, 1), vb.pp("cfc"))?,
            head: linear(32, 1, vb.pp("head"))?,
        })
    }

    /// x [B, L, F] → predictions [B, L].
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let (b, l, f) = x.dims3()?;
        // The encoder works per position: [B·L, F] → firing rates [B·L, 32].
        let rate = x.reshape((b * l, f))?.apply_t(&self.encoder, train)?;
        // A LIF layer over the positions as its time axis: currents [L, B, 32] → spikes.
        let cur = self
            .proj
            .forward(&rate)?
            .reshape((b, l, 32))?
            .transpose(0, 1)?;
        let spikes = self.lif.forward(&cur.contiguous()?)?.transpose(0, 1)?;
        let feats = Tensor::cat(&[&rate.reshape((b, l, 32))?, &spikes], D::Minus1)?;
        let hs = self.cfc.forward(&feats)?;
        self.head.forward(&hs)?.squeeze(D::Minus1)
    }
}

/// Inputs N(0, 1) and targets y_t = Σ_{k ≤ t} 0.7^{t−k}·x_{k,0} − 0.5·x_{t,1}.
fn batch(rng: &mut SeededRng) -> (Tensor, Tensor) {
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
    (
        Tensor::from_vec(xs, (B, L, F), dev).unwrap(),
        Tensor::from_vec(ys, (B, L), dev).unwrap(),
    )
}

fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

#[test]
fn a_users_candle_model_with_lsnn_layers_learns() -> candle_core::Result<()> {
    lsnn_layers::init();
    let varmap = VarMap::new();
    // One builder for lsnn's layers and candle-nn's `linear` (which asks for Kaiming).
    let vb = SeededInit::var_builder(&varmap, SeededRng::new(1), DType::F32, &Device::Cpu);
    let model = Model::new(vb)?;
    let names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    for key in [
        "encoder.fc1.weight",
        "proj.weight",
        "cfc.ff1.weight",
        "head.bias",
    ] {
        assert!(
            names.iter().any(|n| n == key),
            "{key} missing from {names:?}"
        );
    }
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 3e-3,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = SeededRng::new(2);
    for _ in 0..300 {
        let (x, y) = batch(&mut rng);
        let loss = mse(&model.forward_t(&x, true)?, &y)?;
        opt.backward_step(&loss)?;
    }
    // Held-out batches: the model against the mean predictor (the mean target of the data).
    let mut eval_rng = SeededRng::new(99);
    let (mut model_loss, mut baseline) = (0f64, 0f64);
    for _ in 0..8 {
        let (x, y) = batch(&mut eval_rng);
        let pred = model.forward_t(&x, false)?;
        model_loss += mse(&pred, &y)?.to_scalar::<f32>()? as f64;
        let mean = y.mean_all()?.to_scalar::<f32>()?;
        baseline += mse(&y.ones_like()?.affine(mean as f64, 0.0)?, &y)?.to_scalar::<f32>()? as f64;
    }
    println!("held-out MSE {model_loss:.4} vs mean predictor {baseline:.4}");
    assert!(
        model_loss < 0.5 * baseline,
        "the model's MSE {model_loss} is not below half the mean predictor's {baseline}"
    );
    Ok(())
}
