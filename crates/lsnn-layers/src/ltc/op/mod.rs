//! The LTC recurrence over a sequence as one CPU custom op (design §2.14.2).
//!
//! Operands, by the packing convention ([`crate::kernel::packing`]):
//! 1. the mapped inputs x̃ [B, L, I] (the input mapping is applied outside, by candle);
//! 2. the state v_0 [B, N];
//! 3. the packed parameters (see `layout`): gleak⁺, vleak, cm⁺ `[N]`; sigma, mu, w⁺·mask, erev
//!    [N, N]; sensory_sigma, sensory_mu, sensory_w⁺·sensory_mask, sensory_erev [I, N] — the
//!    positive parameters already through their constraint (softplus or none) and the masks
//!    already applied, both by candle, so the op is the same for every mode and wiring.
//!
//! Output: the potentials of every step v_1..v_L [B, L, N] (the final state is the last; the
//! output mapping is applied outside). Backward recomputes each step from the saved potential
//! before it, keeping that step's unfolds (potentials, denominators, synapse σ: O(K·N²) per
//! row and thread), and runs the reverse of the unfolds and then of the step, its rows in at
//! most 8 pieces, each with its own packed parameter gradient until they are summed in order.

mod backward;
mod forward;
mod layout;

pub(crate) use layout::LtcLayout;

use crate::kernel::{contiguous_slice, float_kernel};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};

/// The op: one call's sizes and layout.
#[derive(Debug, Clone)]
pub(crate) struct LtcOp {
    pub layout: LtcLayout,
}

impl CustomOp3 for LtcOp {
    fn name(&self) -> &'static str {
        "ltc-seq"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = &self.layout;
        if l1.shape().elem_count() != s.b * s.l * s.i
            || l2.shape().elem_count() != s.b * s.n
            || l3.shape().elem_count() != s.packed
        {
            candle_core::bail!(
                "ltc-seq: operand sizes {:?}, {:?}, {:?} do not match the layout (inputs {}, state {}, packed {})",
                l1.dims(),
                l2.dims(),
                l3.dims(),
                s.b * s.l * s.i,
                s.b * s.n,
                s.packed
            );
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| forward::forward::<T>(
            s,
            contiguous_slice(s1, l1, "ltc-seq: inputs")?,
            contiguous_slice(s3, l3, "ltc-seq: parameters")?,
            contiguous_slice(s2, l2, "ltc-seq: v0")?,
        ));
        Ok((out, Shape::from((s.b, s.l, s.n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        v0: &Tensor,
        packed: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dev = x.device();
        // Five tensors take part and an op takes at most three, so backward reads them as host
        // vectors (this op only runs on the CPU).
        let (dx, dp, dv) = float_kernel!(map self.name(), x.dtype(), |T| {
            let v = |t: &Tensor| t.flatten_all()?.to_vec1::<T>();
            let (a, b, c) = backward::backward::<T>(
                &self.layout,
                &v(x)?,
                &v(packed)?,
                &v(v0)?,
                &v(res)?,
                &v(grad)?,
            );
            (
                Tensor::from_vec(a, x.shape(), dev)?,
                Tensor::from_vec(b, packed.shape(), dev)?,
                Tensor::from_vec(c, v0.shape(), dev)?,
            )
        });
        Ok((Some(dx), Some(dv), Some(dp)))
    }
}
