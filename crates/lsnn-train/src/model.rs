//! The small model trait the trainer is generic over, and its implementation for lsnn-layers'
//! language model.

use crate::error::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use lsnn_layers::{LanguageModel, LmLoss, Mode, ModelConfig};

/// What the trainer needs of a model. `Sync` because the shards of a batch
/// ([`crate::shard`]) run the same model on several threads at once.
pub trait TrainableModel: Sized + Sync {
    /// Builds the model; its trainable variables come from `vb` (a `SeededInit` backend for a
    /// fresh run, stored tensors for evaluation).
    fn build(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self>;
    /// The losses of a batch of windows ids [B, L + 1].
    fn batch_loss(&self, ids: &Tensor, label_smoothing: f64, mode: &mut Mode<'_>)
        -> Result<LmLoss>;
    /// Greedy completion of equal-length prompts, `max_new` tokens each.
    fn greedy_complete(&self, prompts: &[Vec<u32>], max_new: usize) -> Result<Vec<Vec<u32>>>;

    /// The unsmoothed mean cross-entropy of a batch of windows ids [B, L + 1] in evaluation
    /// mode. The default is [`TrainableModel::batch_loss`]; models may skip building a graph.
    fn eval_cross_entropy(&self, ids: &Tensor) -> Result<f64> {
        let loss = self.batch_loss(ids, 0.0, &mut Mode::Eval)?;
        Ok(loss
            .cross_entropy
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?)
    }

    /// The losses of a training batch (detached) and the gradients of `scale`·objective, or
    /// `None` for the gradients when a loss is not finite (no backward pass then). The default
    /// is [`TrainableModel::batch_loss`] and one backward pass; models may back-propagate in
    /// stages to hold less memory.
    fn loss_and_grads(
        &self,
        ids: &Tensor,
        label_smoothing: f64,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(LmLoss, Option<GradStore>)> {
        let loss = self.batch_loss(ids, label_smoothing, mode)?;
        let values = loss.detached();
        if !values.is_finite()? {
            return Ok((values, None));
        }
        let root = loss.scaled_objective(scale)?;
        drop(loss);
        Ok((values, Some(root.backward()?)))
    }
}

impl TrainableModel for LanguageModel {
    fn build(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(LanguageModel::new(cfg, vb)?)
    }

    fn batch_loss(
        &self,
        ids: &Tensor,
        label_smoothing: f64,
        mode: &mut Mode<'_>,
    ) -> Result<LmLoss> {
        Ok(self.loss(ids, label_smoothing, mode)?.1)
    }

    fn loss_and_grads(
        &self,
        ids: &Tensor,
        label_smoothing: f64,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(LmLoss, Option<GradStore>)> {
        Ok(LanguageModel::loss_and_grads(
            self,
            ids,
            label_smoothing,
            mode,
            scale,
        )?)
    }

    fn eval_cross_entropy(&self, ids: &Tensor) -> Result<f64> {
        // Detached parameters: no graph is built, each activation is freed once read.
        let loss = self.detached().batch_loss(ids, 0.0, &mut Mode::Eval)?;
        Ok(loss
            .cross_entropy
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?)
    }

    fn greedy_complete(&self, prompts: &[Vec<u32>], max_new: usize) -> Result<Vec<Vec<u32>>> {
        let this = self.detached();
        let b = prompts.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        let plen = prompts[0].len();
        if plen == 0 || prompts.iter().any(|p| p.len() != plen) {
            return Err(crate::TrainError::Config {
                field: "prompts".into(),
                message: "expected non-empty prompts of equal length".into(),
            });
        }
        let dev = self.device().clone();
        let mut state = this.new_state(b)?;
        let mut logits = None;
        for t in 0..plen {
            let col: Vec<u32> = prompts.iter().map(|p| p[t]).collect();
            logits = Some(this.step(&Tensor::from_vec(col, b, &dev)?, &mut state)?);
        }
        let mut outs = vec![Vec::with_capacity(max_new); b];
        for k in 0..max_new {
            let next = logits
                .as_ref()
                .expect("prompt is non-empty")
                .argmax(D::Minus1)?
                .to_dtype(DType::U32)?;
            let v = next.to_vec1::<u32>()?;
            for (o, &t) in outs.iter_mut().zip(&v) {
                o.push(t);
            }
            if k + 1 < max_new {
                logits = Some(this.step(&next, &mut state)?);
            }
        }
        Ok(outs)
    }
}
