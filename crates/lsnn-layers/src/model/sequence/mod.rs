//! The sequence models (design §2.9): continuous features in, the shared stack of hybrid blocks
//! and spiking attention, and a regression or a classification head.
//!
//! ```text
//! x = W_in·features                                     F → D, every position
//! x = Trunk(x)                                          blocks, norms, attention (as the LM)
//! regression:     y_t = W_3·tanh(W_2·tanh(W_1·x_t))     D → D → D/2 → F_out, every position
//! classification: logits = W_3·tanh(W_2·tanh(W_1·r))    r = x at the last valid position,
//!                                                       or the mean over the valid positions
//! ```
//! Keys: `in_proj.*` [D, F], the trunk's, `head.fc1.*` [D, D], `head.fc2.*` [D/2, D],
//! `head.fc3.*` [F_out, D/2]. Padded rows (an input's `lengths`) are first-class: the stack is
//! causal (the CfC recurrence and the causal attention look only backwards), so the outputs at
//! the valid positions of a right-padded row equal those of the row alone, and the losses,
//! readouts and metrics read only those. Per-position time spans reach every block's CfC
//! (irregular sampling).

mod checks;
mod input;
mod score;
mod stream;

pub use input::{SeqInput, SeqLoss, Targets};
pub use stream::SeqState;

use super::loss::length_mask;
use super::task::{Readout, Task};
use super::trunk::{Stage, Trunk};
use super::ModelConfig;
use crate::error::{LayerError, Result};
use crate::firing::LayerStats;
use crate::nn::{DropoutRng, Linear, Mode};
use crate::stage_marks::{stage, Pass};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::VarBuilder;

/// The regression / classification head: D → D → D/2 → out with tanh between.
#[derive(Debug, Clone)]
struct Head {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Head {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.fc1.forward(x)?.tanh()?;
        let y = self.fc2.forward(&y)?.tanh()?;
        Ok(self.fc3.forward(&y)?)
    }

    fn detached(&self) -> Self {
        Head {
            fc1: self.fc1.detached(),
            fc2: self.fc2.detached(),
            fc3: self.fc3.detached(),
        }
    }
}

/// The regression or classification network of a `"regression"` / `"classification"` config.
#[derive(Debug, Clone)]
pub struct SequenceModel {
    in_proj: Linear,
    trunk: Trunk,
    head: Head,
    task: Task,
    cfg: ModelConfig,
    rng: DropoutRng,
}

impl SequenceModel {
    /// Creates (or loads, depending on `vb`'s backend) every parameter; the config's task must
    /// be a sequence task.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let task = cfg.task()?;
        if !task.is_sequence() {
            return Err(LayerError::config(
                "task_type",
                "\"llm\"; a SequenceModel is for \"regression\" or \"classification\" (the language model is LanguageModel)",
            ));
        }
        let d = cfg.hidden_dim;
        Ok(SequenceModel {
            in_proj: Linear::new(cfg.input_dim, d, vb.pp("in_proj"))?,
            trunk: Trunk::new(cfg, &vb)?,
            head: Head {
                fc1: Linear::new(d, d, vb.pp("head.fc1"))?,
                fc2: Linear::new(d, d / 2, vb.pp("head.fc2"))?,
                fc3: Linear::new(d / 2, cfg.output_dim, vb.pp("head.fc3"))?,
            },
            task,
            cfg: cfg.clone(),
            rng: DropoutRng::new(0),
        })
    }

    /// The same model with detached parameters (no graph is built on them; for inference).
    pub fn detached(&self) -> Self {
        SequenceModel {
            in_proj: self.in_proj.detached(),
            trunk: self.trunk.detached(),
            head: self.head.detached(),
            task: self.task,
            cfg: self.cfg.clone(),
            rng: self.rng.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The task (regression or classification).
    pub fn task(&self) -> Task {
        self.task
    }

    /// The device of the parameters.
    pub fn device(&self) -> &Device {
        self.in_proj.weight().device()
    }

    /// The blocks (their encoders are the model's spiking layers).
    pub fn blocks(&self) -> &[crate::HybridLiquidSpikingBlock] {
        self.trunk.blocks()
    }

    /// What must follow every optimizer step: each LTC cell's clamp of its positive parameters
    /// under the explicit constraint (ncps' `apply_weight_constraints`); nothing for CfC cells.
    pub fn apply_weight_constraints(&self) -> Result<()> {
        self.trunk.apply_weight_constraints()
    }

    /// The generator `ModuleT` draws dropout masks from.
    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.rng
    }

    /// The stack's output [B, L, D] of checked features.
    fn trunk_forward(&self, x: &Tensor, input: &SeqInput, mode: &mut Mode<'_>) -> Result<Tensor> {
        self.trunk
            .forward(self.in_proj.forward(x)?, input.spans.as_ref(), mode)
    }

    /// A classifier's readout [B, D] of the stack's output [B, L, D].
    fn readout(&self, h: &Tensor, lengths: Option<&[usize]>) -> Result<Tensor> {
        let (b, l, d) = h.dims3()?;
        let whole = vec![l; b];
        let lengths = lengths.unwrap_or(&whole);
        match self.cfg.readout() {
            Readout::Last => {
                if lengths.iter().all(|&n| n == l) {
                    return Ok(h.narrow(1, l - 1, 1)?.squeeze(1)?);
                }
                let idx: Vec<u32> = (0..b).map(|r| (r * l + lengths[r] - 1) as u32).collect();
                let idx = Tensor::from_vec(idx, b, h.device())?;
                Ok(h.reshape((b * l, d))?.index_select(&idx, 0)?)
            }
            Readout::Mean => {
                let n: Vec<f32> = lengths.iter().map(|&n| n as f32).collect();
                let n = Tensor::from_vec(n, (b, 1), h.device())?.to_dtype(h.dtype())?;
                let sum = match length_mask(lengths, l, h.dtype(), h.device())? {
                    None => h.sum(1)?,
                    Some(m) => h.broadcast_mul(&m)?.sum(1)?,
                };
                Ok(sum.broadcast_div(&n)?)
            }
        }
    }

    /// The head's output of the stack's output: every position's prediction [B, L, F_out], or
    /// the classifier's logits [B, C].
    fn head_of(&self, h: &Tensor, lengths: Option<&[usize]>) -> Result<Tensor> {
        match self.task {
            Task::Classification => self.head.forward(&self.readout(h, lengths)?),
            _ => self.head.forward(h),
        }
    }

    /// Predictions: [B, L, F_out] (regression; the values at padded positions are not
    /// meaningful) or logits [B, C] (classification).
    pub fn forward(&self, input: &SeqInput, mode: &mut Mode<'_>) -> Result<Tensor> {
        let x = self.checked_x(input)?;
        let h = self.trunk_forward(&x, input, mode)?;
        self.head_of(&h, input.lengths.as_deref())
    }

    /// The loss and metrics of a batch (see [`SeqLoss`]); the objective keeps its graph.
    pub fn loss(
        &self,
        input: &SeqInput,
        targets: &Targets,
        mode: &mut Mode<'_>,
    ) -> Result<(Tensor, SeqLoss)> {
        let x = self.checked_x(input)?;
        self.check_targets(&x, targets)?;
        let h = self.trunk_forward(&x, input, mode)?;
        let out = self.head_of(&h, input.lengths.as_deref())?;
        let l = self.score(&out, &x, input, targets)?;
        Ok((out, l))
    }

    /// [`Self::loss`] in evaluation mode with the spike statistics of every spiking layer
    /// (design §10.3). Padded positions of shorter rows are counted too: their inputs are the
    /// padding's.
    pub fn loss_with_firing(
        &self,
        input: &SeqInput,
        targets: &Targets,
    ) -> Result<(SeqLoss, Vec<LayerStats>)> {
        let x = self.checked_x(input)?;
        self.check_targets(&x, targets)?;
        let (h, firing) = self
            .trunk
            .forward_with_firing(self.in_proj.forward(&x)?, input.spans.as_ref())?;
        let out = self.head_of(&h, input.lengths.as_deref())?;
        Ok((self.score(&out, &x, input, targets)?, firing))
    }

    /// Every spiking layer's spike train on the first example of `input`, over its valid
    /// positions, in evaluation mode and the model's order (design §10.6).
    pub fn spike_rasters(&self, input: &SeqInput) -> Result<Vec<crate::firing::Raster>> {
        let x = self.checked_x(input)?;
        let len = match &input.lengths {
            Some(l) => l.first().copied().unwrap_or(0).min(x.dim(1)?),
            None => x.dim(1)?,
        };
        let x = x.narrow(0, 0, 1)?.narrow(1, 0, len.max(1))?;
        let spans = match &input.spans {
            Some(s) => Some(s.narrow(0, 0, 1)?.narrow(1, 0, len.max(1))?),
            None => None,
        };
        self.trunk
            .rasters(self.in_proj.forward(&x)?, spans.as_ref())
    }

    /// The training step's loss and gradients of `scale`·objective, back-propagated stage by
    /// stage as the language model's (the input projection, each layer, the head with the
    /// loss); `None` for the gradients when the loss is not finite (no backward pass then).
    pub fn loss_and_grads(
        &self,
        input: &SeqInput,
        targets: &Targets,
        mode: &mut Mode<'_>,
        scale: f64,
    ) -> Result<(SeqLoss, Option<GradStore>)> {
        let x = self.checked_x(input)?;
        self.check_targets(&x, targets)?;
        let mut stages: Vec<Stage> = Vec::with_capacity(self.trunk.len() + 1);
        let first = stage(
            || "in_proj".into(),
            Pass::Forward,
            || self.in_proj.forward(&x),
        )?;
        stages.push(Stage::Kept {
            input: None,
            output: first.clone(),
        });
        let head_in = self
            .trunk
            .forward_staged(first, input.spans.as_ref(), mode, &mut stages)?;
        let mut l = stage(
            || "head".into(),
            Pass::Forward,
            || -> Result<SeqLoss> {
                let out = self.head_of(head_in.as_tensor(), input.lengths.as_deref())?;
                self.score(&out, &x, input, targets)
            },
        )?;
        let finite = l.loss.is_finite() && {
            let o = l.objective.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            o.is_finite()
        };
        if !finite {
            l.objective = l.objective.detach();
            return Ok((l, None));
        }
        let root = if scale == 1.0 {
            l.objective.clone()
        } else {
            (&l.objective * scale)?
        };
        l.objective = l.objective.detach();
        let mut grads = stage(|| "head".into(), Pass::Backward, || root.backward())?;
        drop(root);
        let upstream = grads.remove(head_in.as_tensor());
        let grads =
            self.trunk
                .backward_stages(stages, grads, upstream, input.spans.as_ref(), "in_proj")?;
        Ok((l, Some(grads)))
    }
}

impl ModuleT for SequenceModel {
    /// The predictions of features [B, L, F] (whole rows, the constant span); dropout from the
    /// model's own generator when `train`.
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let input = SeqInput::new(x.clone());
        Ok(self.rng.run(train, |mode| self.forward(&input, mode))?)
    }
}
