//! LayerNorm over the last dimension with biased variance and a real backward (candle-nn's
//! `LayerNorm` passes no gradient, design §6), over the fused op [`crate::fused::norm_act`].
//! Keys: `weight` [D] (initialised 1), `bias` [D] (initialised 0).

use super::Mode;
use crate::error::Result;
use crate::fused::NormAct;
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};

/// LayerNorm over the last dimension with biased variance and a real backward.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Weight 1, bias 0.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
        Ok(LayerNorm { weight, bias, eps })
    }

    /// The scale.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// ε.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The same layer with detached parameters (see [`super::Linear::detached`]).
    pub fn detached(&self) -> Self {
        LayerNorm {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            eps: self.eps,
        }
    }

    /// This LayerNorm, alone or with exact GELU as `act` says, then dropout with probability `p`
    /// in training mode, as one op ([`crate::fused::norm_act`]).
    pub fn with_act(
        &self,
        x: &Tensor,
        act: NormAct,
        p: f64,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        let drop = match mode {
            Mode::Train(rng) if p > 0.0 => Some((p, &mut **rng)),
            _ => None,
        };
        Ok(crate::fused::norm_act(
            x,
            &self.weight,
            &self.bias,
            self.eps,
            act,
            drop,
        )?)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::fused::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}
