//! The exponential moving average of the weights, updated in place (no allocation per step on
//! the CPU): e ← d·e + (1 − d)·p.

use super::inplace::{fast_path, Axpby};
use crate::error::Result;
use candle_core::{Tensor, Var};
use std::collections::BTreeMap;

/// Exponential moving average of the weights, updated in place: e ← d·e + (1 − d)·p.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    shadow: BTreeMap<String, Tensor>,
}

impl Ema {
    /// Starts the average at the current weights.
    pub fn new(vars: &[(String, Var)], decay: f64) -> Result<Self> {
        let shadow = vars
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.as_tensor().force_contiguous()?.detach())))
            .collect::<Result<_>>()?;
        Ok(Ema { decay, shadow })
    }

    /// The decay.
    pub fn decay(&self) -> f64 {
        self.decay
    }

    /// The averaged weights by name.
    pub fn weights(&self) -> &BTreeMap<String, Tensor> {
        &self.shadow
    }

    /// Replaces the average of `name` with a copy of `t`.
    pub fn restore(&mut self, name: &str, t: &Tensor) -> Result<()> {
        self.shadow
            .insert(name.to_owned(), t.force_contiguous()?.detach());
        Ok(())
    }

    /// One update from the current weights, in place.
    pub fn update(&mut self, vars: &[(String, Var)]) -> Result<()> {
        let d = self.decay;
        for (name, var) in vars {
            let Some(e) = self.shadow.get_mut(name) else {
                continue;
            };
            let p = var.as_tensor();
            if fast_path(&[e, p]) {
                e.inplace_op2(
                    p,
                    &Axpby {
                        a: d as f32,
                        b: (1.0 - d) as f32,
                    },
                )?;
            } else {
                *e = (e.affine(d, 0.0)? + p.affine(1.0 - d, 0.0)?)?;
            }
        }
        Ok(())
    }
}
