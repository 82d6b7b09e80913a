//! AdamW (decoupled weight decay, optional AMSGrad) with state that can be saved and restored —
//! candle-nn's AdamW keeps its moments private — plus global-norm clipping folded into the
//! update as a gradient scale.
//!
//! ```text
//! g ← scale·g                       (clipping / accumulation averaging)
//! m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²,  (AMSGrad: v̂max ← max(v̂max, v))
//! p ← p·(1 − lr·wd) − lr·(m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)
//! ```
//! On the CPU (f32) every update is an in-place candle op: no allocation per step proportional
//! to the parameter count.

use super::inplace::{fast_path, AdamUpdate, Axpby, AxpbySq, MaxInPlace};
use crate::error::Result;
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;

/// AdamW hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// β1 (0.9).
    pub beta1: f64,
    /// β2 (0.999).
    pub beta2: f64,
    /// ε (1e-8).
    pub eps: f64,
    /// Decoupled weight decay (0.01).
    pub weight_decay: f64,
    /// AMSGrad.
    pub amsgrad: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            amsgrad: false,
        }
    }
}

/// One parameter's optimizer state.
#[derive(Debug)]
pub struct ParamState {
    /// First moment.
    pub m: Tensor,
    /// Second moment.
    pub v: Tensor,
    /// AMSGrad's running maximum of v.
    pub vmax: Option<Tensor>,
}

/// AdamW over named variables.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    params: BTreeMap<String, (Var, ParamState)>,
    step: u64,
}

impl AdamW {
    /// Zero state for `vars`.
    pub fn new(vars: &[(String, Var)], cfg: AdamWConfig) -> Result<Self> {
        let mut params = BTreeMap::new();
        for (name, var) in vars {
            let z = || var.as_tensor().zeros_like();
            let st = ParamState {
                m: z()?,
                v: z()?,
                vmax: if cfg.amsgrad { Some(z()?) } else { None },
            };
            params.insert(name.clone(), (var.clone(), st));
        }
        Ok(AdamW {
            cfg,
            params,
            step: 0,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// Optimizer steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Sets the step counter (on restore).
    pub fn set_step_count(&mut self, s: u64) {
        self.step = s;
    }

    /// The state of every parameter, by name.
    pub fn states(&self) -> impl Iterator<Item = (&String, &ParamState)> {
        self.params.iter().map(|(k, (_, s))| (k, s))
    }

    /// Replaces the state of `name` with copies of the given tensors.
    pub fn restore(
        &mut self,
        name: &str,
        m: &Tensor,
        v: &Tensor,
        vmax: Option<&Tensor>,
    ) -> Result<()> {
        let Some((_, st)) = self.params.get_mut(name) else {
            return Err(crate::TrainError::Config {
                field: "optimizer state".into(),
                message: format!("no parameter named {name}"),
            });
        };
        st.m = m.force_contiguous()?.detach();
        st.v = v.force_contiguous()?.detach();
        if let (Some(dst), Some(src)) = (st.vmax.as_mut(), vmax) {
            *dst = src.force_contiguous()?.detach();
        }
        Ok(())
    }

    /// One step with learning rate `lr`; each gradient is multiplied by `grad_scale` first.
    /// `grads` maps a parameter name to its gradient; a missing gradient is treated as zero.
    pub fn step(
        &mut self,
        grads: &BTreeMap<String, Tensor>,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.step += 1;
        let c = self.cfg;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        for (name, (var, st)) in self.params.iter_mut() {
            let g = match grads.get(name) {
                Some(g) => g.clone(),
                None => var.as_tensor().zeros_like()?,
            };
            let p = var.as_tensor();
            let all: Vec<&Tensor> = [p, &g, &st.m, &st.v]
                .into_iter()
                .chain(st.vmax.as_ref())
                .collect();
            if fast_path(&all) {
                let s = grad_scale as f32;
                st.m.inplace_op2(
                    &g,
                    &Axpby {
                        a: c.beta1 as f32,
                        b: (1.0 - c.beta1) as f32 * s,
                    },
                )?;
                st.v.inplace_op2(
                    &g,
                    &AxpbySq {
                        a: c.beta2 as f32,
                        b: (1.0 - c.beta2) as f32 * s * s,
                    },
                )?;
                let v_used = match &st.vmax {
                    Some(vm) => {
                        vm.inplace_op2(&st.v, &MaxInPlace)?;
                        vm
                    }
                    None => &st.v,
                };
                p.inplace_op3(
                    &st.m,
                    v_used,
                    &AdamUpdate {
                        lr: lr as f32,
                        wd: c.weight_decay as f32,
                        bc1: bc1 as f32,
                        bc2: bc2 as f32,
                        eps: c.eps as f32,
                    },
                )?;
            } else {
                let g = g.affine(grad_scale, 0.0)?;
                st.m = (st.m.affine(c.beta1, 0.0)? + g.affine(1.0 - c.beta1, 0.0)?)?;
                st.v = (st.v.affine(c.beta2, 0.0)? + g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?;
                let v_used = match &mut st.vmax {
                    Some(vm) => {
                        *vm = vm.maximum(&st.v)?;
                        vm.clone()
                    }
                    None => st.v.clone(),
                };
                let upd = (st.m.affine(1.0 / bc1, 0.0)?
                    / (v_used.affine(1.0 / bc2, 0.0)?.sqrt()? + c.eps)?)?;
                let np = (p.affine(1.0 - lr * c.weight_decay, 0.0)? - upd.affine(lr, 0.0)?)?;
                var.set(&np)?;
            }
        }
        Ok(())
    }
}

/// The global L2 norm of the gradients, √Σ‖g‖².
pub fn global_norm(grads: &BTreeMap<String, Tensor>) -> Result<f64> {
    let mut total = 0f64;
    for g in grads.values() {
        // In f64: squares of large but finite gradients overflow f32.
        let s: f64 = g
            .to_dtype(candle_core::DType::F64)?
            .sqr()?
            .sum_all()?
            .to_scalar()?;
        total += s;
    }
    Ok(total.sqrt())
}
