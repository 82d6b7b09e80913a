//! The per-sequence preparation shared by the dense and the wired cell: each layer's maps packed
//! for a time-span mode ([`Span`]), the first layer's input projection, the fused op's operands,
//! and the choice between the fused op and the composed reference.

use super::op::{CfcStackOp, LayerDims, Span, StackLayout};
use super::{Cfc, CfcMode, Heads};
use crate::error::Result;
use candle_core::Tensor;

/// One layer's maps, packed for a sequence of steps.
#[derive(Debug, Clone)]
pub(crate) struct PreparedLayer {
    pub dims: LayerDims,
    /// The first map's input half W_in [F, in] and its bias [F].
    pub w_in: Tensor,
    pub b_first: Tensor,
    /// W_recᵀ [H, F].
    pub w_rec_t: Tensor,
    /// Deeper backbone layers' Wᵀ [U, U] and b [U].
    pub deep: Vec<(Tensor, Tensor)>,
    /// W_headᵀ [U, head] and b_head [head], with a backbone.
    pub head: Option<(Tensor, Tensor)>,
    /// Pure mode's w_tau [H] and A [H].
    pub pure: Option<(Tensor, Tensor)>,
}

/// Per-sequence packed weights for fast recurrent steps (see [`Cfc::prepare`]): every layer's
/// maps with the time span folded in (a constant span) or left to each step (per-step spans).
#[derive(Debug, Clone)]
pub struct PreparedCfc {
    pub(crate) layers: Vec<PreparedLayer>,
    pub(crate) mode: CfcMode,
    pub(crate) span: Span,
}

/// The head map [head, K] and bias of `c` for `span`: [ff1; ff2; ts·time_a + time_b] (gated,
/// constant span), [ff1; ff2; time_a; time_b] (gated, per-step spans), ff1 (pure); ff1 and ff2
/// through the sparsity mask when there is one.
fn head_map(c: &Cfc, span: Span) -> Result<(Tensor, Tensor)> {
    let masked = |w: &Tensor| -> Result<Tensor> {
        Ok(match &c.mask {
            Some(m) => (w * m)?,
            None => w.clone(),
        })
    };
    let ff1 = masked(c.ff1.weight())?;
    Ok(match (&c.heads, span) {
        (Heads::Pure { .. }, _) => (ff1, c.ff1.bias().clone()),
        (
            Heads::Gated {
                ff2,
                time_a,
                time_b,
            },
            Span::Constant(ts),
        ) => {
            let w_time = (time_a.weight().affine(ts, 0.0)? + time_b.weight())?;
            let b_time = (time_a.bias().affine(ts, 0.0)? + time_b.bias())?;
            (
                Tensor::cat(&[&ff1, &masked(ff2.weight())?, &w_time], 0)?,
                Tensor::cat(&[c.ff1.bias(), ff2.bias(), &b_time], 0)?,
            )
        }
        (
            Heads::Gated {
                ff2,
                time_a,
                time_b,
            },
            Span::PerStep,
        ) => (
            Tensor::cat(
                &[
                    &ff1,
                    &masked(ff2.weight())?,
                    time_a.weight(),
                    time_b.weight(),
                ],
                0,
            )?,
            Tensor::cat(&[c.ff1.bias(), ff2.bias(), time_a.bias(), time_b.bias()], 0)?,
        ),
    })
}

impl PreparedLayer {
    /// Layer `c`'s maps for `span`.
    pub(crate) fn new(c: &Cfc, span: Span) -> Result<Self> {
        let cfg = c.config();
        let (inp, h) = (cfg.input_size, cfg.hidden_size);
        let dims = LayerDims {
            input: inp,
            hidden: h,
            units: cfg.backbone_units,
            depth: cfg.backbone_layers,
        };
        let (first_w, first_b, head) = if c.backbone.is_empty() {
            let (w, b) = head_map(c, span)?;
            (w, b, None)
        } else {
            let (w, b) = head_map(c, span)?;
            (
                c.backbone[0].weight().clone(),
                c.backbone[0].bias().clone(),
                Some((w.t()?.contiguous()?, b)),
            )
        };
        let deep = c
            .backbone
            .iter()
            .skip(1)
            .map(|l| Ok((l.weight().t()?.contiguous()?, l.bias().clone())))
            .collect::<Result<Vec<_>>>()?;
        let pure = match &c.heads {
            Heads::Pure { w_tau, a } => Some((w_tau.flatten_all()?, a.flatten_all()?)),
            Heads::Gated { .. } => None,
        };
        Ok(PreparedLayer {
            dims,
            w_in: first_w.narrow(1, 0, inp)?,
            b_first: first_b,
            w_rec_t: first_w.narrow(1, inp, h)?.t()?.contiguous()?,
            deep,
            head,
            pure,
        })
    }

    /// x [.., in] → x·W_inᵀ + b [.., F].
    pub(crate) fn project(&self, x: &Tensor) -> Result<Tensor> {
        let (x2, lead) = crate::fused::as_matrix(x, self.dims.input, "cfc input projection")?;
        let y = x2.matmul(&self.w_in.t()?)?.broadcast_add(&self.b_first)?;
        let f = self.b_first.dim(0)?;
        Ok(y.reshape([lead, vec![f]].concat())?)
    }

    /// The width of the first map.
    pub(crate) fn first_width(&self) -> Result<usize> {
        Ok(self.b_first.dim(0)?)
    }
}

impl PreparedCfc {
    /// The layers of `cells` (each fed by the one before) for `span`.
    pub(crate) fn new(cells: &[&Cfc], span: Span) -> Result<Self> {
        Ok(PreparedCfc {
            layers: cells
                .iter()
                .map(|c| PreparedLayer::new(c, span))
                .collect::<Result<_>>()?,
            mode: cells[0].config().mode,
            span,
        })
    }

    /// The fused op's third operand, in its layout's order.
    fn packed(&self) -> Result<Tensor> {
        let mut parts: Vec<Tensor> = Vec::new();
        for (li, l) in self.layers.iter().enumerate() {
            if li > 0 {
                parts.push(l.w_in.t()?.contiguous()?);
            }
            parts.push(l.w_rec_t.clone());
            if li > 0 {
                parts.push(l.b_first.clone());
            }
            for (w, b) in &l.deep {
                parts.push(w.clone());
                parts.push(b.clone());
            }
            if let Some((w, b)) = &l.head {
                parts.push(w.clone());
                parts.push(b.clone());
            }
            if let Some((w, a)) = &l.pure {
                parts.push(w.clone());
                parts.push(a.clone());
            }
        }
        let refs: Vec<&Tensor> = parts.iter().collect();
        Ok(crate::kernel::packing::pack(&refs)?)
    }

    /// Every layer's h_1..h_L [B, L, Σ H] from the first layer's projection proj [B, L, F₀]
    /// ([`PreparedLayer::project`]), the per-step spans [B, L, 1] when the span is per step, and
    /// h_0 [B, Σ H]. On the CPU one fused custom op; elsewhere (or forced) the composed
    /// reference.
    pub(crate) fn sequence(
        &self,
        proj: &Tensor,
        spans: Option<&Tensor>,
        h0: &Tensor,
    ) -> Result<Tensor> {
        let (b, l, _) = proj.dims3()?;
        let fused = crate::kernel::fused_available(proj) && h0.dtype() == proj.dtype();
        if !fused {
            return super::reference::sequence_prepared(self, proj, spans, h0);
        }
        let drive = match spans {
            Some(ts) => Tensor::cat(&[proj, &ts.to_dtype(proj.dtype())?], 2)?,
            None => proj.clone(),
        };
        let dims: Vec<LayerDims> = self.layers.iter().map(|l| l.dims).collect();
        let layout = StackLayout::new(b, l, self.mode, self.span, &dims);
        let op = CfcStackOp { layout };
        Ok(drive
            .contiguous()?
            .apply_op3(&h0.contiguous()?, &self.packed()?, op)?)
    }
}
