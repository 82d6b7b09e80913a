//! A user's own model and data, not lsnn's language model: a spiking classifier (a linear layer,
//! a LIF layer's firing rate over a constant current, a linear readout) on generated points
//! labelled by the centre they were drawn around. Everything here is what a user writes to train
//! their model with lsnn-train's `Trainer`: the model implements `TrainModel`, the data `Dataset`.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use lsnn_layers::lif::{Leaky, LifConfig};
use lsnn_layers::{Mode, SeededRng};
use lsnn_train::dataset::fnv1a;
use lsnn_train::{Dataset, StepLoss, TrainModel};
use serde::{Deserialize, Serialize};

/// Input features.
pub const FEATURES: usize = 8;
/// Classes.
pub const CLASSES: usize = 3;

/// The classifier's own configuration (its part of config.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Spiking units of the hidden layer.
    pub hidden: usize,
    /// Time steps of its rate code.
    pub steps: usize,
}

/// The classifier: linear → LIF firing rate over `steps` steps → linear readout.
#[derive(Debug)]
pub struct Classifier {
    fc: Linear,
    lif: Leaky,
    out: Linear,
    steps: usize,
}

/// Inputs `[B, F]` (f32) and labels `[B]` (u32).
#[derive(Debug)]
pub struct Batch {
    /// Inputs `[B, F]`.
    pub x: Tensor,
    /// Labels `[B]`.
    pub y: Tensor,
}

impl Classifier {
    fn logits(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let current = self.fc.forward(x)?;
        let (rate, _) = self.lif.const_rate(&current, self.steps, None)?;
        self.out.forward(&rate)
    }
}

fn cross_entropy(logits: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::loss::cross_entropy(logits, y)
}

impl TrainModel for Classifier {
    type Config = ClassifierConfig;
    type Batch = Batch;

    fn build(cfg: &ClassifierConfig, vb: VarBuilder) -> lsnn_train::Result<Self> {
        Ok(Classifier {
            fc: linear(FEATURES, cfg.hidden, vb.pp("fc"))?,
            lif: Leaky::new(&LifConfig::new(0.9).with_threshold(0.5))?,
            out: linear(cfg.hidden, CLASSES, vb.pp("out"))?,
            steps: cfg.steps,
        })
    }

    fn loss_and_grads(
        &self,
        b: &Batch,
        _mode: &mut Mode<'_>,
        scale: f64,
    ) -> lsnn_train::Result<(StepLoss, Option<GradStore>)> {
        let loss = cross_entropy(&self.logits(&b.x)?, &b.y)?;
        let v = loss.to_scalar::<f32>()? as f64;
        let step = StepLoss {
            objective: v,
            loss: v,
        };
        if !step.is_finite() {
            return Ok((step, None));
        }
        Ok((step, Some((loss * scale)?.backward()?)))
    }

    fn metric_names(&self) -> Vec<String> {
        vec!["val_loss".into(), "val_accuracy".into()]
    }

    fn eval_batch(&self, b: &Batch) -> lsnn_train::Result<Vec<f64>> {
        let logits = self.logits(&b.x)?;
        let loss = cross_entropy(&logits, &b.y)?.to_scalar::<f32>()? as f64;
        let hit = logits
            .argmax(D::Minus1)?
            .eq(&b.y)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()? as f64;
        Ok(vec![loss, hit])
    }

    fn batch_rows(b: &Batch) -> usize {
        b.y.dims()[0]
    }

    fn batch_part(b: &Batch, start: usize, len: usize) -> Option<lsnn_train::Result<Batch>> {
        let part = || -> candle_core::Result<Batch> {
            Ok(Batch {
                x: b.x.narrow(0, start, len)?,
                y: b.y.narrow(0, start, len)?,
            })
        };
        Some(part().map_err(Into::into))
    }
}

/// Points around three centres, labelled by the centre they were drawn around.
#[derive(Debug)]
pub struct Points {
    seed: u64,
    train: (Vec<f32>, Vec<u32>),
    val: (Vec<f32>, Vec<u32>),
}

impl Points {
    /// `train` training and `val` validation points from `seed` (classes in turn).
    pub fn new(seed: u64, train: usize, val: usize) -> Self {
        let mut rng = SeededRng::new(seed);
        let centres: Vec<Vec<f32>> = (0..CLASSES)
            .map(|_| (0..FEATURES).map(|_| 1.5 * rng.normal() as f32).collect())
            .collect();
        let mut draw = |n: usize| {
            let mut xs = Vec::with_capacity(n * FEATURES);
            let mut ys = Vec::with_capacity(n);
            for i in 0..n {
                let c = i % CLASSES;
                ys.push(c as u32);
                xs.extend(centres[c].iter().map(|&m| m + rng.normal() as f32));
            }
            (xs, ys)
        };
        let train = draw(train);
        let val = draw(val);
        Points { seed, train, val }
    }

    fn batch(
        (xs, ys): &(Vec<f32>, Vec<u32>),
        idx: &[u32],
        dev: &Device,
    ) -> lsnn_train::Result<Batch> {
        let mut x = Vec::with_capacity(idx.len() * FEATURES);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            let i = i as usize;
            x.extend_from_slice(&xs[i * FEATURES..(i + 1) * FEATURES]);
            y.push(ys[i]);
        }
        Ok(Batch {
            x: Tensor::from_vec(x, (idx.len(), FEATURES), dev)?,
            y: Tensor::from_vec(y, idx.len(), dev)?,
        })
    }
}

impl Dataset<Classifier> for Points {
    fn train_len(&self) -> usize {
        self.train.1.len()
    }

    fn val_len(&self) -> usize {
        self.val.1.len()
    }

    fn train_batch(&self, idx: &[u32], dev: &Device) -> lsnn_train::Result<Batch> {
        Self::batch(&self.train, idx, dev)
    }

    fn val_batch(&self, idx: &[u32], dev: &Device) -> lsnn_train::Result<Batch> {
        Self::batch(&self.val, idx, dev)
    }

    fn fingerprint(&self) -> String {
        let words = self
            .train
            .0
            .iter()
            .chain(&self.val.0)
            .map(|v| v.to_bits() as u64);
        let labels = self.train.1.iter().chain(&self.val.1).map(|&v| v as u64);
        fnv1a(words.chain(labels))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "points": self.seed, "train": self.train_len(), "val": self.val_len() })
    }

    fn baseline(&self) -> Option<(String, f64)> {
        // The majority-class predictor's cross-entropy: classes are balanced, so ln 3.
        Some(("uniform cross-entropy".into(), (CLASSES as f64).ln()))
    }
}

/// Rebuilds the points from a recorded description (for `Trainer::resume`).
pub fn points_from(
    _cfg: &lsnn_train::RunConfig<ClassifierConfig>,
    d: &serde_json::Value,
) -> lsnn_train::Result<Points> {
    let n = |k: &str| d[k].as_u64().unwrap_or(0) as usize;
    Ok(Points::new(n("points") as u64, n("train"), n("val")))
}
