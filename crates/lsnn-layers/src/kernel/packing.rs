//! The packing convention of the fused ops (docs/design.md, "Packing convention").
//!
//! candle's custom ops take at most three tensors and return one. Every fused neuron and cell op
//! of lsnn therefore takes the same three operands and returns one output:
//!
//! 1. **the driving input**: currents [T, N…], a constant current [N…], or an input projection
//!    [B, L, U];
//! 2. **the packed state**: the op's state variables stacked on a new leading axis, [k, N…] in
//!    the order the op documents (LIF: k = 1, the membrane; the CfC: its hidden state) — or an
//!    [`empty`] tensor, meaning "start from zero", for which no gradient is computed;
//! 3. **the packed parameters**: the op's parameters flattened and concatenated in the order the
//!    op documents ([`pack`]) — or an [`empty`] tensor, meaning the fixed values the op holds;
//!
//! and its **output** is the flat concatenation of its parts, the main output first and then,
//! when the caller asks for it, the final state in operand 2's layout. [`unpack`] splits it with
//! differentiable `narrow`s, so the gradients of all parts reach the op's backward as one tensor
//! (zero where a part received none), and the backward returns one gradient per operand in the
//! same layouts. A new neuron with more state or learnable parameters adds rows to operands 2
//! and 3, never operands.

use candle_core::{Result, Shape, Tensor};

/// A tensor with no elements on `like`'s device and dtype: an absent state or parameter operand.
pub fn empty(like: &Tensor) -> Result<Tensor> {
    Tensor::zeros(0, like.dtype(), like.device())
}

/// True for an operand that stands for "absent" ([`empty`]).
pub fn is_empty(t: &Tensor) -> bool {
    t.elem_count() == 0
}

/// The tensors flattened and concatenated in order, differentiably (operand 2 or 3 from its
/// parts); [`empty`] for no parts is the caller's business (`like` gives device and dtype).
pub fn pack(parts: &[&Tensor]) -> Result<Tensor> {
    let flat = parts
        .iter()
        .map(|t| t.flatten_all())
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&flat, 0)
}

/// The parts of a packed output, in order, with the given shapes (their element counts must add
/// up to the output's); each is a differentiable view of the output.
pub fn unpack(out: &Tensor, shapes: &[Shape]) -> Result<Vec<Tensor>> {
    let total: usize = shapes.iter().map(Shape::elem_count).sum();
    if total != out.elem_count() {
        candle_core::bail!(
            "unpack: parts of {total} elements for an output of {}",
            out.elem_count()
        );
    }
    if let [only] = shapes {
        return out.reshape(only.clone()).map(|t| vec![t]);
    }
    let flat = out.flatten_all()?;
    let mut start = 0;
    shapes
        .iter()
        .map(|s| {
            let n = s.elem_count();
            let part = flat.narrow(0, start, n)?.reshape(s.clone());
            start += n;
            part
        })
        .collect()
}
