//! Truncated BPTT for the language model (design §2.6.2): the window's positions in chunks of
//! K, each chunk forward and backward at once, with what crosses chunks carried in detached.

use super::{next_token_loss, LanguageModel, LmLoss};
use crate::error::Result;
use crate::model::trunk::{ChunkCarry, Stage};
use crate::nn::Mode;
use candle_core::backprop::GradStore;
use candle_core::Tensor;

impl LanguageModel {
    /// [`LanguageModel::loss_and_grads`] over chunks of `chunk` positions. Chunk c of n_c
    /// positions starts from the previous chunk's final liquid states and attends to every
    /// earlier position's k̂, v̂ (both detached: no gradient crosses a chunk boundary); its
    /// objective enters with weight n_c / L, so the losses are the whole window's means and the
    /// gradients sum over chunks. One chunk (K ≥ L) is the plain staged step, bit for bit.
    pub(super) fn truncated_loss_and_grads(
        &self,
        ids: &Tensor,
        label_smoothing: f64,
        mode: &mut Mode<'_>,
        scale: f64,
        chunk: usize,
    ) -> Result<(LmLoss, Option<GradStore>)> {
        let (inputs, targets) = self.split_window(ids)?;
        let ids = self.check_ids(&inputs, 0)?;
        let l = ids.dim(1)?;
        let mut carry = ChunkCarry::default();
        let mut grads: Option<GradStore> = None;
        let mut total: Option<LmLoss> = None;
        let mut start = 0;
        while start < l {
            let n = chunk.min(l - start);
            let weight = n as f64 / l as f64;
            let mut stages: Vec<Stage> = Vec::with_capacity(self.trunk.len() + 1);
            let x = self.embed(&ids.narrow(1, start, n)?, start, mode)?;
            stages.push(Stage::Kept {
                input: None,
                output: x.clone(),
            });
            let head_in = self
                .trunk
                .forward_chunk_staged(x, &mut carry, mode, &mut stages)?;
            let logits = self.head(head_in.as_tensor(), mode)?;
            let loss = next_token_loss(&logits, &targets.narrow(1, start, n)?, label_smoothing)?;
            drop(logits);
            let values = loss.detached();
            total = Some(match total {
                // The first chunk's values as they are (a single chunk is the plain step's).
                None if n == l => values.clone(),
                None => weighted(&values, weight)?,
                Some(t) => LmLoss {
                    objective: (t.objective + values.objective.affine(weight, 0.0)?)?,
                    cross_entropy: (t.cross_entropy + values.cross_entropy.affine(weight, 0.0)?)?,
                },
            });
            if !values.is_finite()? {
                return Ok((total.expect("set above"), None));
            }
            let root = loss.scaled_objective(if n == l { scale } else { scale * weight })?;
            drop(loss);
            let mut g = root.backward()?;
            drop(root);
            let upstream = g.remove(head_in.as_tensor());
            let g = self
                .trunk
                .backward_stages(stages, g, upstream, None, "embedding")?;
            match grads.as_mut() {
                None => grads = Some(g),
                Some(acc) => acc.extend(g)?,
            }
            start += n;
        }
        Ok((total.expect("L >= 1"), grads))
    }
}

fn weighted(v: &LmLoss, w: f64) -> Result<LmLoss> {
    Ok(LmLoss {
        objective: v.objective.affine(w, 0.0)?,
        cross_entropy: v.cross_entropy.affine(w, 0.0)?,
    })
}
