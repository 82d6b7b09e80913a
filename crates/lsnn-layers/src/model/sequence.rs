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

use super::loss::{self, length_mask};
use super::task::{Readout, Task};
use super::trunk::{backward_stages, Trunk, TrunkState};
use super::ModelConfig;
use crate::error::{LayerError, Result};
use crate::nn::{DropoutRng, Linear, Mode};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::VarBuilder;

/// A batch's inputs: features [B, L, F] (a classifier also takes [B, F], one position), and
/// optionally a time span per row and position [B, L] and each row's valid length (right
/// padding).
#[derive(Debug, Clone)]
pub struct SeqInput {
    /// Features [B, L, F] (or [B, F] for a classifier).
    pub x: Tensor,
    /// Time spans [B, L] for the CfC (irregular sampling); the config's constant span when
    /// `None`.
    pub spans: Option<Tensor>,
    /// Each row's valid length, 1..=L; every row whole when `None`.
    pub lengths: Option<Vec<usize>>,
}

impl SeqInput {
    /// Whole rows at the constant span.
    pub fn new(x: Tensor) -> Self {
        SeqInput {
            x,
            spans: None,
            lengths: None,
        }
    }

    /// With time spans [B, L].
    pub fn with_spans(mut self, spans: Tensor) -> Self {
        self.spans = Some(spans);
        self
    }

    /// With each row's valid length.
    pub fn with_lengths(mut self, lengths: Vec<usize>) -> Self {
        self.lengths = Some(lengths);
        self
    }

    /// Rows B.
    pub fn rows(&self) -> usize {
        self.x.dims().first().copied().unwrap_or(0)
    }

    /// Rows `start..start + len` as an input of their own.
    pub fn rows_part(&self, start: usize, len: usize) -> Result<SeqInput> {
        Ok(SeqInput {
            x: self.x.narrow(0, start, len)?,
            spans: self
                .spans
                .as_ref()
                .map(|s| s.narrow(0, start, len))
                .transpose()?,
            lengths: self
                .lengths
                .as_ref()
                .map(|l| l[start..start + len].to_vec()),
        })
    }
}

/// What a batch is scored against.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Regression targets [B, L, F_out].
    Values(Tensor),
    /// Class ids `[B]` (integer).
    Classes(Tensor),
}

impl Targets {
    /// Rows `start..start + len`.
    pub fn rows_part(&self, start: usize, len: usize) -> Result<Targets> {
        Ok(match self {
            Targets::Values(t) => Targets::Values(t.narrow(0, start, len)?),
            Targets::Classes(t) => Targets::Classes(t.narrow(0, start, len)?),
        })
    }
}

/// A batch's loss and metrics.
#[derive(Debug, Clone)]
pub struct SeqLoss {
    /// The training objective (label-smoothed cross-entropy for a classifier when the config
    /// smooths), a scalar with its graph.
    pub objective: Tensor,
    /// The reported loss (Smooth-L1, or the unsmoothed cross-entropy), detached.
    pub loss: f64,
    /// Regression: (MSE, MAE) over the valid elements; classification: (accuracy, 0).
    pub metrics: (f64, f64),
    /// What the loss is a mean over: valid elements (regression) or rows (classification).
    pub weight: f64,
}

/// Streaming state: position, the stack's state and, for a mean readout, the running sum.
#[derive(Debug, Clone)]
pub struct SeqState {
    position: usize,
    trunk: TrunkState,
    sum: Option<Tensor>,
}

impl SeqState {
    /// Positions consumed so far.
    pub fn position(&self) -> usize {
        self.position
    }
}

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

    /// The generator `ModuleT` draws dropout masks from.
    pub fn dropout_rng(&self) -> &DropoutRng {
        &self.rng
    }

    /// The input's features as [B, L, F] (a classifier's [B, F] as one position), checked: the
    /// width, finite values, spans [B, L] and lengths in 1..=L.
    fn checked_x(&self, input: &SeqInput) -> Result<Tensor> {
        let f = self.cfg.input_dim;
        let x = match (self.task, input.x.rank()) {
            (Task::Classification, 2) => input.x.unsqueeze(1)?,
            _ => input.x.clone(),
        };
        let expected = match self.task {
            Task::Classification => format!("[B, L, {f}] or [B, {f}] features"),
            _ => format!("[B, L, {f}] features"),
        };
        if x.rank() != 3 || x.dim(2)? != f || x.dim(0)? == 0 || x.dim(1)? == 0 {
            return Err(LayerError::Shape {
                what: "sequence model input",
                expected,
                actual: input.x.dims().to_vec(),
            });
        }
        if !x.dtype().is_float() {
            return Err(LayerError::Input {
                what: "sequence model input",
                message: format!("dtype {:?}; expected floating-point features", x.dtype()),
            });
        }
        crate::nn::check_finite(&x, "sequence model input")?;
        let (b, l, _) = x.dims3()?;
        if let Some(s) = &input.spans {
            if s.dims() != [b, l] {
                return Err(LayerError::Shape {
                    what: "time spans",
                    expected: format!("[{b}, {l}] (one per row and position)"),
                    actual: s.dims().to_vec(),
                });
            }
            crate::nn::check_finite(s, "time spans")?;
        }
        if let Some(lengths) = &input.lengths {
            if lengths.len() != b {
                return Err(LayerError::Input {
                    what: "sequence lengths",
                    message: format!(
                        "{} lengths for {b} rows; expected one per row",
                        lengths.len()
                    ),
                });
            }
            loss::check_lengths(lengths, l)?;
        }
        Ok(x)
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

    /// Targets of the task's kind and shape for checked features `x` [B, L, F].
    fn check_targets(&self, x: &Tensor, targets: &Targets) -> Result<()> {
        let (b, l, _) = x.dims3()?;
        match (self.task, targets) {
            (Task::Classification, Targets::Classes(c)) => {
                if c.dims() != [b] || c.dtype().is_float() {
                    return Err(LayerError::Shape {
                        what: "class targets",
                        expected: format!("integer class ids [{b}]"),
                        actual: c.dims().to_vec(),
                    });
                }
                let wide = c.to_dtype(DType::I64)?.to_vec1::<i64>()?;
                let classes = self.cfg.output_dim;
                if let Some((row, &bad)) = wide
                    .iter()
                    .enumerate()
                    .find(|(_, &k)| k < 0 || k as usize >= classes)
                {
                    return Err(LayerError::Input {
                        what: "class targets",
                        message: format!(
                            "row {row} has class {bad}; expected 0..{classes} (output_dim)"
                        ),
                    });
                }
            }
            (Task::Regression, Targets::Values(y)) => {
                let o = self.cfg.output_dim;
                if y.dims() != [b, l, o] || !y.dtype().is_float() {
                    return Err(LayerError::Shape {
                        what: "regression targets",
                        expected: format!("floating-point [{b}, {l}, {o}]"),
                        actual: y.dims().to_vec(),
                    });
                }
                crate::nn::check_finite(y, "regression targets")?;
            }
            (task, _) => {
                return Err(LayerError::Input {
                    what: "targets",
                    message: format!(
                        "the wrong kind for task \"{}\"; expected {}",
                        task.name(),
                        match task {
                            Task::Classification => "Targets::Classes",
                            _ => "Targets::Values",
                        }
                    ),
                })
            }
        }
        Ok(())
    }

    /// The loss of the head's output `out` (with its graph) against checked targets.
    fn score(
        &self,
        out: &Tensor,
        x: &Tensor,
        input: &SeqInput,
        targets: &Targets,
    ) -> Result<SeqLoss> {
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        match targets {
            Targets::Values(y) => {
                let (b, l, _) = x.dims3()?;
                let mask = match &input.lengths {
                    Some(n) => length_mask(n, l, out.dtype(), out.device())?,
                    None => None,
                };
                let y = y.to_dtype(out.dtype())?;
                let objective = loss::smooth_l1(out, &y, mask.as_ref())?;
                let (pred, mask) = (out.detach(), mask.as_ref());
                let valid = match &input.lengths {
                    Some(n) => n.iter().sum::<usize>(),
                    None => b * l,
                };
                Ok(SeqLoss {
                    loss: scalar(&objective)?,
                    metrics: (
                        scalar(&loss::mse(&pred, &y, mask)?)?,
                        scalar(&loss::mae(&pred, &y, mask)?)?,
                    ),
                    weight: (valid * self.cfg.output_dim) as f64,
                    objective,
                })
            }
            Targets::Classes(c) => {
                let terms = crate::fused::cross_entropy_terms(out, c)?;
                let nll = terms.get(0)?;
                let eps = self.cfg.label_smoothing;
                let objective = if eps > 0.0 {
                    ((&nll * (1.0 - eps))? + (terms.get(1)? * eps)?)?
                } else {
                    nll.clone()
                };
                Ok(SeqLoss {
                    loss: scalar(&nll)?,
                    metrics: (loss::accuracy(&out.detach(), c)?, 0.0),
                    weight: out.dim(0)? as f64,
                    objective,
                })
            }
        }
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
        let mut stages: Vec<(Option<Var>, Tensor)> = Vec::with_capacity(self.trunk.len() + 1);
        let first = self.in_proj.forward(&x)?;
        stages.push((None, first.clone()));
        let head_in = self
            .trunk
            .forward_staged(first, input.spans.as_ref(), mode, &mut stages)?;
        let out = self.head_of(head_in.as_tensor(), input.lengths.as_deref())?;
        let mut l = self.score(&out, &x, input, targets)?;
        drop(out);
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
        let mut grads = root.backward()?;
        drop(root);
        let upstream = grads.remove(head_in.as_tensor());
        let grads = backward_stages(stages, grads, upstream)?;
        Ok((l, Some(grads)))
    }

    /// A fresh streaming state for `batch` rows whose attention caches hold `capacity`
    /// positions.
    pub fn new_state(&self, batch: usize, capacity: usize) -> Result<SeqState> {
        let dt = self.in_proj.weight().dtype();
        Ok(SeqState {
            position: 0,
            trunk: self.trunk.new_state(batch, capacity, dt, self.device())?,
            sum: None,
        })
    }

    /// One position per row, features x_t `[B, F]` (and this position's spans `[B]`) → the
    /// regression prediction [B, F_out], or the classifier's logits [B, C] for the sequence so
    /// far; evaluation mode, equal to the sequence call position by position.
    pub fn step(&self, x: &Tensor, span: Option<&Tensor>, state: &mut SeqState) -> Result<Tensor> {
        let f = self.cfg.input_dim;
        if x.rank() != 2 || x.dim(1)? != f || !x.dtype().is_float() {
            return Err(LayerError::Shape {
                what: "step features",
                expected: format!("floating-point [B, {f}]"),
                actual: x.dims().to_vec(),
            });
        }
        crate::nn::check_finite(x, "step features")?;
        let b = x.dim(0)?;
        if let Some(s) = span {
            if s.dims() != [b] && s.dims() != [b, 1] {
                return Err(LayerError::Shape {
                    what: "step time spans",
                    expected: format!("[{b}] (one per row)"),
                    actual: s.dims().to_vec(),
                });
            }
            crate::nn::check_finite(s, "step time spans")?;
        }
        let h = self.in_proj.forward(x)?;
        let h = self.trunk.step(&h, span, &mut state.trunk)?;
        state.position += 1;
        match (self.task, self.cfg.readout()) {
            (Task::Classification, Readout::Mean) => {
                let sum = match state.sum.take() {
                    None => h,
                    Some(s) => (s + h)?,
                };
                let mean = (&sum / state.position as f64)?;
                state.sum = Some(sum);
                Ok(self.head.forward(&mean)?.detach())
            }
            _ => Ok(self.head.forward(&h)?.detach()),
        }
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
