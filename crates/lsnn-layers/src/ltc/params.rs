//! [`LtcParams`]: the cell's parameters under ncps' names, created with ncps' initial ranges, read
//! through the constraint, packed for the op, and clamped after an optimizer step.

use super::config::{LtcConfig, LtcConstraint};
use crate::error::Result;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

/// ncps' `_init_ranges`: (name, low, high) of the uniform initial values.
const INIT_RANGES: [(&str, f64, f64); 9] = [
    ("gleak", 0.001, 1.0),
    ("vleak", -0.2, 0.2),
    ("cm", 0.4, 0.6),
    ("w", 0.001, 1.0),
    ("sigma", 3.0, 8.0),
    ("mu", 0.3, 0.8),
    ("sensory_w", 0.001, 1.0),
    ("sensory_sigma", 3.0, 8.0),
    ("sensory_mu", 0.3, 0.8),
];

/// The parameters that must stay positive (ncps' `apply_weight_constraints` and
/// `make_positive_fn`).
pub const POSITIVE: [&str; 4] = ["w", "sensory_w", "cm", "gleak"];

/// The LTC cell's parameters (ncps' names and shapes; masks are not parameters).
#[derive(Debug, Clone)]
pub struct LtcParams {
    /// gleak `[N]`.
    pub gleak: Tensor,
    /// vleak `[N]`.
    pub vleak: Tensor,
    /// cm `[N]`.
    pub cm: Tensor,
    /// sigma [N, N] (pre, post).
    pub sigma: Tensor,
    /// mu [N, N].
    pub mu: Tensor,
    /// w [N, N].
    pub w: Tensor,
    /// erev [N, N].
    pub erev: Tensor,
    /// sensory_sigma [I, N].
    pub sensory_sigma: Tensor,
    /// sensory_mu [I, N].
    pub sensory_mu: Tensor,
    /// sensory_w [I, N].
    pub sensory_w: Tensor,
    /// sensory_erev [I, N].
    pub sensory_erev: Tensor,
    /// input_w `[I]` (linear and affine input mappings).
    pub input_w: Option<Tensor>,
    /// input_b `[I]` (affine).
    pub input_b: Option<Tensor>,
    /// output_w `[O]` (linear and affine output mappings).
    pub output_w: Option<Tensor>,
    /// output_b `[O]` (affine).
    pub output_b: Option<Tensor>,
    /// |adjacency_matrix| [N, N] as 0/1.
    pub mask: Tensor,
    /// |sensory_adjacency_matrix| [I, N] as 0/1.
    pub sensory_mask: Tensor,
}

/// The wiring's matrix as a tensor of its values (`abs`: their absolute values).
fn matrix(m: &[Vec<i8>], abs: bool, dtype: DType, dev: &Device) -> Result<Tensor> {
    let rows = m.len();
    let cols = m.first().map_or(0, Vec::len);
    let v: Vec<f64> = m
        .iter()
        .flatten()
        .map(|&x| f64::from(if abs { x.abs() } else { x }))
        .collect();
    Ok(Tensor::from_vec(v, (rows, cols), dev)?.to_dtype(dtype)?)
}

/// A parameter that starts at the given values: created (zeros) and then filled in place when
/// `vb` does not hold it yet, read as it is otherwise (a checkpoint's values).
fn initialised(vb: &VarBuilder, name: &str, values: &Tensor) -> Result<Tensor> {
    let fresh = !vb.contains_tensor(name);
    let t = vb.get_with_hints(values.dims(), name, Init::Const(0.0))?;
    if fresh {
        t.slice_set(values, 0, 0)?;
    }
    Ok(t)
}

impl LtcParams {
    /// Creates (or reads) the parameters through `vb`: ncps' uniform ranges, `erev` and
    /// `sensory_erev` from the wiring's polarities, mappings at weight 1 and bias 0.
    pub fn new(cfg: &LtcConfig, vb: &VarBuilder) -> Result<Self> {
        let (n, i, o) = (cfg.state_size(), cfg.input_size(), cfg.output_size());
        let (dtype, dev) = (vb.dtype(), vb.device());
        let shape = |name: &str| -> Vec<usize> {
            match name {
                "gleak" | "vleak" | "cm" => vec![n],
                "sigma" | "mu" | "w" | "erev" => vec![n, n],
                _ => vec![i, n],
            }
        };
        let uniform = |name: &str| -> Result<Tensor> {
            let (_, lo, up) = INIT_RANGES
                .iter()
                .find(|(k, _, _)| *k == name)
                .expect("every ranged parameter is listed");
            Ok(vb.get_with_hints(shape(name), name, Init::Uniform { lo: *lo, up: *up })?)
        };
        let w = &cfg.wiring;
        let erev = initialised(vb, "erev", &matrix(&w.adjacency_matrix, false, dtype, dev)?)?;
        let sensory_erev = initialised(
            vb,
            "sensory_erev",
            &matrix(&w.sensory_adjacency_matrix, false, dtype, dev)?,
        )?;
        let ones = |name: &str, len: usize| -> Result<Tensor> {
            Ok(vb.get_with_hints(len, name, Init::Const(1.0))?)
        };
        let zeros = |name: &str, len: usize| -> Result<Tensor> {
            Ok(vb.get_with_hints(len, name, Init::Const(0.0))?)
        };
        Ok(LtcParams {
            gleak: uniform("gleak")?,
            vleak: uniform("vleak")?,
            cm: uniform("cm")?,
            sigma: uniform("sigma")?,
            mu: uniform("mu")?,
            w: uniform("w")?,
            erev,
            sensory_sigma: uniform("sensory_sigma")?,
            sensory_mu: uniform("sensory_mu")?,
            sensory_w: uniform("sensory_w")?,
            sensory_erev,
            input_w: cfg
                .input_mapping
                .has_weight()
                .then(|| ones("input_w", i))
                .transpose()?,
            input_b: cfg
                .input_mapping
                .has_bias()
                .then(|| zeros("input_b", i))
                .transpose()?,
            output_w: cfg
                .output_mapping
                .has_weight()
                .then(|| ones("output_w", o))
                .transpose()?,
            output_b: cfg
                .output_mapping
                .has_bias()
                .then(|| zeros("output_b", o))
                .transpose()?,
            mask: matrix(&w.adjacency_matrix, true, dtype, dev)?,
            sensory_mask: matrix(&w.sensory_adjacency_matrix, true, dtype, dev)?,
        })
    }

    /// The same parameters, detached from their variables.
    pub fn detached(&self) -> Self {
        let d = |t: &Tensor| t.detach();
        let o = |t: &Option<Tensor>| t.as_ref().map(Tensor::detach);
        LtcParams {
            gleak: d(&self.gleak),
            vleak: d(&self.vleak),
            cm: d(&self.cm),
            sigma: d(&self.sigma),
            mu: d(&self.mu),
            w: d(&self.w),
            erev: d(&self.erev),
            sensory_sigma: d(&self.sensory_sigma),
            sensory_mu: d(&self.sensory_mu),
            sensory_w: d(&self.sensory_w),
            sensory_erev: d(&self.sensory_erev),
            input_w: o(&self.input_w),
            input_b: o(&self.input_b),
            output_w: o(&self.output_w),
            output_b: o(&self.output_b),
            mask: self.mask.clone(),
            sensory_mask: self.sensory_mask.clone(),
        }
    }

    /// Every trainable parameter with its ncps name.
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        let mut v = vec![
            ("gleak", &self.gleak),
            ("vleak", &self.vleak),
            ("cm", &self.cm),
            ("sigma", &self.sigma),
            ("mu", &self.mu),
            ("w", &self.w),
            ("erev", &self.erev),
            ("sensory_sigma", &self.sensory_sigma),
            ("sensory_mu", &self.sensory_mu),
            ("sensory_w", &self.sensory_w),
            ("sensory_erev", &self.sensory_erev),
        ];
        for (name, t) in [
            ("input_w", &self.input_w),
            ("input_b", &self.input_b),
            ("output_w", &self.output_w),
            ("output_b", &self.output_b),
        ] {
            if let Some(t) = t {
                v.push((name, t));
            }
        }
        v
    }

    /// A positive parameter as the cell reads it: softplus(p) under the implicit constraint,
    /// p itself under the explicit one.
    pub fn positive(t: &Tensor, constraint: LtcConstraint) -> Result<Tensor> {
        Ok(match constraint {
            LtcConstraint::Explicit => t.clone(),
            LtcConstraint::Implicit => softplus(t)?,
        })
    }

    /// ncps' `apply_weight_constraints`: under the explicit constraint, w, sensory_w, cm and
    /// gleak are set to max(p, 0) in place (the variables the optimizer updates; a detached copy
    /// shares their storage, so clamping through it clamps them too); nothing under the implicit
    /// one. A non-finite value is a `NonFinite` error (ncps would keep the NaN; a clamp to 0
    /// would hide it).
    pub fn apply_weight_constraints(&self, constraint: LtcConstraint) -> Result<()> {
        if constraint == LtcConstraint::Implicit {
            return Ok(());
        }
        for (name, t) in [
            ("ltc w", &self.w),
            ("ltc sensory_w", &self.sensory_w),
            ("ltc cm", &self.cm),
            ("ltc gleak", &self.gleak),
        ] {
            // max(NaN, 0) would be 0: a parameter gone non-finite is an error, never hidden.
            crate::nn::check_finite(t, name)?;
            let clamped = t.detach().relu()?;
            t.slice_set(&clamped, 0, 0)?;
        }
        Ok(())
    }
}

/// softplus(x) = ln(1 + eˣ) with PyTorch's `Softplus()` threshold (beta 1, threshold 20: x itself
/// above 20), and its gradient σ(x) everywhere. The branch not taken reads min(x, 20), so its
/// gradient stays finite (a masked inf would make it NaN). candle has no `log1p`, so far below
/// zero (x < −17 in f32, −37 in f64) this gives 0 where PyTorch gives eˣ: an absolute difference
/// under 4e−8 (f32) that the cell's sums never see.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let low = (x.minimum(20.0)?.exp()? + 1.0)?.log()?;
    Ok(x.gt(20.0)?.where_cond(x, &low)?)
}
