//! The whole CfC recurrence over a sequence — a stack of CfC layers, each fed by the one before
//! (one layer for the dense cell, one per wiring layer for the wired cell) — as one CPU custom op
//! (design §2.3.2).
//!
//! Operands, by the packing convention ([`crate::kernel::packing`]):
//! 1. the driving input [B, L, F₀ (+1)]: the first layer's first linear map applied to every
//!    position (bias included) — the backbone's first layer, or the head without a backbone —
//!    and, with per-step time spans, the span as a last column;
//! 2. the state h_0 [B, Σ H_l], the layers' states side by side;
//! 3. the packed parameters, per layer in order (see `layout`): W_inᵀ and b_in (layers after the
//!    first), W_recᵀ, the deeper backbone layers' Wᵀ and b, W_headᵀ and b_head (with a backbone),
//!    pure mode's w_tau and A.
//!
//! Output: every layer's h_1..h_L, [B, L, Σ H_l] (the final state is its last position). Per step
//! and layer:
//!
//! ```text
//! a = input·W_inᵀ + b_in + h_{t−1}·W_recᵀ     (the first layer: a = P_t + h_{t−1}·W_recᵀ)
//! z = lecun_tanh(a), deeper layers z = lecun_tanh(z·Wᵀ + b), head = z·W_headᵀ + b_head
//!                                              (no backbone: head = a)
//! gated:  f1 = tanh(head₁), f2 = tanh(head₂), τ = σ(head₃) or σ(head₃·ts + head₄)
//!         h_t = f1·(1 − τ) + τ·f2              (no_gate: f1 + τ·f2)
//! pure:   h_t = −A·exp(−ts·(|w_tau| + |head|))·head + A
//! ```
//! With a constant span the gated head packs [W_1; W_2; ts·W_a + W_t] (3H); with per-step spans
//! [W_1; W_2; W_a; W_t] (4H). Forward is a few small gemm calls and one elementwise pass per step
//! and layer; backward recomputes each step from the saved outputs and runs the BPTT recurrence
//! in one reverse pass, accumulating the weight gradients with gemm. Nothing but the inputs and
//! the output is kept.

mod backward;
mod forward;
pub(crate) mod layout;

pub(crate) use layout::{LayerDims, Span, StackLayout};

use crate::kernel::{contiguous_slice, float_kernel};
use candle_core::{backend::BackendStorage, CpuStorage, CustomOp3, Layout, Shape, Tensor};

/// The op: one call's sizes and layout.
#[derive(Debug, Clone)]
pub(crate) struct CfcStackOp {
    pub layout: StackLayout,
}

impl CustomOp3 for CfcStackOp {
    fn name(&self) -> &'static str {
        "cfc-seq"
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
        if l1.shape().elem_count() != s.b * s.l * s.drive
            || l2.shape().elem_count() != s.b * s.state
            || l3.shape().elem_count() != s.packed
        {
            candle_core::bail!(
                "cfc-seq: operand sizes {:?}, {:?}, {:?} do not match the layout (drive {}, state {}, packed {})",
                l1.dims(),
                l2.dims(),
                l3.dims(),
                s.b * s.l * s.drive,
                s.b * s.state,
                s.packed
            );
        }
        let out = float_kernel!(self.name(), s1.dtype(), |T| forward::forward::<T>(
            s,
            contiguous_slice(s1, l1, "cfc-seq: drive")?,
            contiguous_slice(s3, l3, "cfc-seq: weights")?,
            contiguous_slice(s2, l2, "cfc-seq: h0")?,
        ));
        Ok((out, Shape::from((s.b, s.l, s.state))))
    }

    fn bwd(
        &self,
        drive: &Tensor,
        h0: &Tensor,
        packed: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dev = drive.device();
        // Five tensors take part and an op takes at most three, so backward reads them as
        // host vectors (this op only runs on the CPU).
        let (dd, dh, dw) = float_kernel!(map self.name(), drive.dtype(), |T| {
            let v = |x: &Tensor| x.flatten_all()?.to_vec1::<T>();
            let (a, b, c) = backward::backward::<T>(
                &self.layout,
                &v(drive)?,
                &v(packed)?,
                &v(h0)?,
                &v(res)?,
                &v(grad)?,
            );
            (
                Tensor::from_vec(a, drive.shape(), dev)?,
                Tensor::from_vec(c, h0.shape(), dev)?,
                Tensor::from_vec(b, packed.shape(), dev)?,
            )
        });
        Ok((Some(dd), Some(dh), Some(dw)))
    }
}
