//! The packing convention of the fused ops (design §3.2).
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
//! and its **output** is the main one (spikes, a rate, a sequence of hidden states). A second
//! output of the same forward pass — the final state, in operand 2's layout — comes from a
//! companion op applied right after to the same three operands: the main op's forward leaves
//! the final state in a [`StateSlot`], the companion returns it as its own tensor and has its
//! own backward (the recurrence from that state's gradient). candle sums the gradients the two
//! backwards give each operand. A caller that does not ask for the final state pays nothing for
//! it. (The alternative, one concatenated output split by `narrow`, costs a zero tensor and a
//! concatenation of the whole output in backward for every part: measured on the LIF rate form
//! at T = 8, N = 65,536, +80% peak memory.)
//!
//! Each backward returns one gradient per operand in the operands' layouts (none for an empty
//! operand). A new neuron with more state or learnable parameters adds rows to operands 2 and 3,
//! never operands.

use candle_core::{CpuStorage, Result, Tensor};
use std::sync::{Arc, Mutex};

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

/// Where a main op's forward pass leaves a second output (the final state) for its companion
/// op, which takes it out. CPU ops run eagerly and in order, so the companion applied right
/// after the main op finds what that forward left.
pub type StateSlot = Arc<Mutex<Option<CpuStorage>>>;
