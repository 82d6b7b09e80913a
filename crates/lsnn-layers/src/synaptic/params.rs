//! Learned α, β and θ of a current-based LIF, alpha-neuron or adaptive-LIF layer: [`SynapticParams`] as the
//! forms take them (each one shared value or one per feature, snnTorch's `learn_alpha`,
//! `learn_beta`, `learn_threshold`), and [`LearnedSynaptic`], the variables a layer owns.
//!
//! The values are used as they are and refused with a typed error when an update takes them out
//! of range (current-based LIF: α ∈ [0, 1], β ∈ (0, 1]; alpha neuron: α ∈ (0, 1], β ∈ (0, 1),
//! α > β feature by feature; adaptive LIF: α ∈ [0, 1], β ∈ [0, 1), θ > v_reset; all θ > 0);
//! snnTorch instead clamps α and β into [0, 1] on every
//! step, which hides a diverging update and zeroes its gradient.

use super::config::check_threshold;
use super::kind::{Kind, RangeCheck};
use super::SynapticConfig;
use crate::error::{LayerError, Result};
use crate::lif::coefs::features;
use crate::lif::BetaForm;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

/// α, β and θ for one call, each a rank-1 tensor of 1 value (shared) or F values (one per
/// feature, F = the last neuron dim, broadcast over the leading ones).
#[derive(Debug, Clone)]
pub struct SynapticParams {
    /// Synaptic decay α.
    pub alpha: Tensor,
    /// Membrane decay β.
    pub beta: Tensor,
    /// Threshold θ.
    pub threshold: Tensor,
}

impl SynapticParams {
    /// From the three tensors (checked when used).
    pub fn new(alpha: Tensor, beta: Tensor, threshold: Tensor) -> Self {
        SynapticParams {
            alpha,
            beta,
            threshold,
        }
    }

    /// Checks shapes, dtype and ranges for neurons `neurons` of neuron `kind` (the alpha neuron
    /// also wants α > β feature by feature); the number of triples (1 or F).
    pub(crate) fn check_for(&self, kind: Kind, neurons: &[usize], dtype: DType) -> Result<usize> {
        let f = features(neurons);
        let mut triples = 1;
        let [na, nb, nt] = kind.param_names();
        let (ca, cb) = kind.decay_checks();
        let parts: [(&Tensor, &'static str, RangeCheck); 3] = [
            (&self.alpha, na, ca),
            (&self.beta, nb, cb),
            (&self.threshold, nt, check_threshold),
        ];
        let mut values = Vec::with_capacity(3);
        for (t, what, ok) in parts {
            let n = t.elem_count();
            // One per feature needs at least one feature: [0] values for zero features would
            // leave nothing to read.
            if t.rank() != 1 || !(n == 1 || (n == f && f > 0)) || t.dtype() != dtype {
                return Err(LayerError::Shape {
                    what,
                    expected: format!("[1] or [{f}] of {dtype:?} (shared, or one per feature)"),
                    actual: t.dims().to_vec(),
                });
            }
            triples = triples.max(n);
            let v: Vec<f64> = t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_vec1()?;
            for (j, &x) in v.iter().enumerate() {
                ok(x, &format!("the learned value of feature {j} is "))?;
            }
            values.push(v);
        }
        let at = |v: &[f64], j: usize| v[j.min(v.len() - 1)];
        match kind {
            Kind::Alpha => {
                for j in 0..triples {
                    crate::alpha::check_order(at(&values[0], j), at(&values[1], j), j)?;
                }
            }
            Kind::Alif(ad) => {
                for j in 0..triples {
                    crate::alif::check_reset_below(at(&values[2], j), ad.reset, j)?;
                }
            }
            Kind::Synaptic => {}
        }
        Ok(triples)
    }

    /// The packed parameter operand [α (P), β (P), θ (P)] for `triples` = P.
    pub(crate) fn packed(&self, triples: usize) -> Result<Tensor> {
        let a = self.alpha.broadcast_as(triples)?;
        let b = self.beta.broadcast_as(triples)?;
        let t = self.threshold.broadcast_as(triples)?;
        Ok(crate::kernel::packing::pack(&[&a, &b, &t])?)
    }
}

/// The learned α, β and/or θ of a layer: variables `alpha`, `beta`, `threshold` (each `[1]` or
/// `[features]`, as the config's `learn_*` say), initialised to the config's values; in the
/// sigmoid form α and β are `alpha_logit` / `beta_logit` = w, starting at logit(value), and the
/// call takes sigmoid(w) (SpikingJelly's parametric form, as the leaky β's `beta_form`).
#[derive(Debug, Clone)]
pub struct LearnedSynaptic {
    cfg: SynapticConfig,
    alpha: Option<Tensor>,
    beta: Option<Tensor>,
    threshold: Option<Tensor>,
}

impl LearnedSynaptic {
    /// The variables for a layer of `features` neurons (the last dim of its input), from `vb`.
    pub fn new(cfg: &SynapticConfig, features: usize, vb: VarBuilder) -> Result<Self> {
        Self::new_for(Kind::Synaptic, cfg, features, vb)
    }

    /// [`LearnedSynaptic::new`] with the ranges of the neuron `kind` runs.
    pub(crate) fn new_for(
        kind: Kind,
        cfg: &SynapticConfig,
        features: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        cfg.validate_for(kind)?;
        if features == 0 {
            return Err(LayerError::config(
                cfg.learned_field(),
                "a layer of 0 neurons; expected at least 1",
            ));
        }
        let var = |n: usize, name: &str, v: f64, form: BetaForm| -> Result<Option<Tensor>> {
            Ok(match (n, form) {
                (0, _) => None,
                (n, BetaForm::Direct) => Some(vb.get_with_hints(n, name, Init::Const(v))?),
                (n, BetaForm::Sigmoid) => {
                    let logit = (v / (1.0 - v)).ln();
                    let name = format!("{name}_logit");
                    Some(vb.get_with_hints(n, &name, Init::Const(logit))?)
                }
            })
        };
        Ok(LearnedSynaptic {
            cfg: *cfg,
            alpha: var(
                cfg.learn_alpha.len(features),
                "alpha",
                cfg.alpha,
                cfg.alpha_form,
            )?,
            beta: var(
                cfg.learn_beta.len(features),
                "beta",
                cfg.beta,
                cfg.beta_form,
            )?,
            threshold: var(
                cfg.learn_threshold.len(features),
                "threshold",
                cfg.threshold,
                BetaForm::Direct,
            )?,
        })
    }

    /// The same parameters detached from their variables.
    pub fn detached(&self) -> Self {
        LearnedSynaptic {
            cfg: self.cfg,
            alpha: self.alpha.as_ref().map(Tensor::detach),
            beta: self.beta.as_ref().map(Tensor::detach),
            threshold: self.threshold.as_ref().map(Tensor::detach),
        }
    }

    /// α, β, θ for a call in `dtype` on `device` (a fixed one as a `[1]` constant), or `None`
    /// when nothing is learned.
    pub fn params(&self, dtype: DType, device: &Device) -> Result<Option<SynapticParams>> {
        if self.alpha.is_none() && self.beta.is_none() && self.threshold.is_none() {
            return Ok(None);
        }
        let get = |v: &Option<Tensor>, fixed: f64, form: BetaForm| -> Result<Tensor> {
            Ok(match (v, form) {
                (Some(t), BetaForm::Direct) => t.to_dtype(dtype)?,
                (Some(w), BetaForm::Sigmoid) => candle_nn::ops::sigmoid(&w.to_dtype(dtype)?)?,
                // Built on the host in `dtype`, then moved: not every device converts from f64.
                (None, _) => Tensor::full(fixed, 1, &Device::Cpu)?
                    .to_dtype(dtype)?
                    .to_device(device)?,
            })
        };
        let c = &self.cfg;
        Ok(Some(SynapticParams {
            alpha: get(&self.alpha, c.alpha, c.alpha_form)?,
            beta: get(&self.beta, c.beta, c.beta_form)?,
            threshold: get(&self.threshold, c.threshold, BetaForm::Direct)?,
        }))
    }
}
