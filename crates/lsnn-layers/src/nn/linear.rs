//! A PyTorch-layout linear layer: y = x·Wᵀ + b with W [out, in], over any leading dimensions,
//! through the fused op [`crate::fused::linear`]. Keys: `weight` [out, in], `bias` [out].

use crate::error::Result;
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};

/// y = x·Wᵀ + b with W [out, in] (PyTorch's layout), over any leading dimensions.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// A linear layer with PyTorch's default initialisation U(−1/√in, 1/√in).
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let b = 1.0 / (in_dim as f64).sqrt();
        let init = Init::Uniform { lo: -b, up: b };
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
        let bias = vb.get_with_hints(out_dim, "bias", init)?;
        Ok(Linear { weight, bias })
    }

    /// A linear layer whose weight is initialised Xavier-uniform (ncps' CfC) and bias as
    /// PyTorch's default.
    pub fn xavier(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let a = (6.0 / (in_dim + out_dim) as f64).sqrt();
        let weight =
            vb.get_with_hints((out_dim, in_dim), "weight", Init::Uniform { lo: -a, up: a })?;
        let b = 1.0 / (in_dim as f64).sqrt();
        let bias = vb.get_with_hints(out_dim, "bias", Init::Uniform { lo: -b, up: b })?;
        Ok(Linear { weight, bias })
    }

    /// The weight [out, in].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The same layer with its parameters detached from autograd (sharing their storage): ops
    /// on it build no graph, for inference.
    pub fn detached(&self) -> Self {
        Linear {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
        }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::fused::linear(x, &self.weight, &self.bias)
    }
}
