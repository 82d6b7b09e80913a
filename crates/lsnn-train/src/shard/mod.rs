//! Batch-parallel steps: a batch is split by rows ([`TrainModel::batch_part`]) into a fixed
//! number of shards whose forward and backward passes run on separate threads, and the shards'
//! gradients are summed. A model whose batches do not split trains each batch whole
//! (design §3.3).
//!
//! The layers' kernels are too small to gain from splitting each op across threads (the thread
//! hand-over costs more than half an op saves), while whole shards keep every core busy for a
//! full forward and backward with one hand-over per step. Inside a shard the kernels run on
//! their thread alone ([`lsnn_layers::kernel::sequential`]).
//!
//! Shards are also the memory lever: a shard's activations live only from its forward to the end
//! of its backward, so a batch of many rows runs as shards of at most `shard_rows` rows
//! ([`ShardRows`]; default [`SHARD_ROWS`]), as many at a time as there are threads, and a step's
//! peak memory follows the shard size and the threads, not the batch size. [`auto`] chooses the
//! size from probe steps' measured peaks.
//!
//! The result is the gradient of the whole batch's mean loss: shard k of B_k rows contributes
//! (B_k / B)·∇loss_k. The shards follow from the batch size and `shard_rows`, never the threads,
//! and each shard draws its dropout masks from its own generator forked from the caller's in
//! shard order, so a run's numbers are the same on one thread or many.

pub mod auto;
mod rows;

pub use auto::{choose_shard_rows, ShardProbe, ShardSizing, AUTO_HEADROOM};
pub use rows::ShardRows;

use crate::error::Result;
use crate::model::{StepLoss, TrainModel};
use candle_core::{Tensor, Var};
use lsnn_layers::{Mode, SeededRng};

/// Most rows in one shard. Measured on the design §9.1 workloads (2 cores): lm-small's 8 rows as two
/// shards of 4 train fastest; lm-medium's 16 rows as four shards of 4 cut the peak memory from
/// 438 to 316 MiB for 4% of its speed.
pub const SHARD_ROWS: usize = 4;

/// The row ranges (start, len) of a batch of `rows` in shards of at most `max_rows`: ⌈rows /
/// max_rows⌉ near-equal parts, the first ones one row longer when they do not divide evenly.
pub fn shard_rows(rows: usize, max_rows: usize) -> Vec<(usize, usize)> {
    even_parts(rows, rows.div_ceil(max_rows.max(1)))
}

/// `rows` split into `parts` near-equal consecutive ranges (start, len) (fewer when there are
/// fewer rows), for work whose rows are independent, such as an evaluation forward.
pub fn even_parts(rows: usize, parts: usize) -> Vec<(usize, usize)> {
    let k = parts.clamp(1, rows.max(1));
    let (base, extra) = (rows / k, rows % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = (start, len);
            start += len;
            r
        })
        .collect()
}

/// Runs `f(i)` for each shard index `0..n`, on separate rayon threads when there is more than
/// one shard and more than one thread, each with the kernels' own threading off and the
/// calling thread's matmul precision; results in shard order.
pub fn run_shards<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    use lsnn_layers::kernel::{matmul_precision, sequential, with_matmul_precision};
    use rayon::prelude::*;
    if n > 1 && rayon::current_num_threads() > 1 {
        let precision = matmul_precision();
        (0..n)
            .into_par_iter()
            .map(|i| sequential(|| with_matmul_precision(precision, || f(i))))
            .collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// The losses and gradients of one training batch.
#[derive(Debug)]
pub struct BatchGrads {
    /// The reported loss over the batch (row-weighted mean of the shards').
    pub loss: f64,
    /// The training objective over the batch.
    pub objective: f64,
    /// ∇objective for each of the given variables (in their order; `None` for a variable the
    /// loss does not reach), or `None` as a whole when a loss was not finite and no backward
    /// pass ran.
    pub grads: Option<Vec<Option<Tensor>>>,
}

struct ShardOut {
    loss: StepLoss,
    /// The shard's share of the batch's weight ([`TrainModel::batch_weight`]).
    share: f64,
    grads: Option<Vec<Option<Tensor>>>,
}

/// Forward in training mode, loss and backward for a batch, split into shards of at most
/// `max_rows` rows when the model's batches split (see the module docs), else whole. Dropout
/// masks come from generators forked from `rng`, one per shard in shard order.
pub fn loss_and_grads<M: TrainModel>(
    model: &M,
    batch: &M::Batch,
    rng: &mut SeededRng,
    vars: &[(String, Var)],
    max_rows: usize,
) -> Result<BatchGrads> {
    let rows = M::batch_rows(batch);
    let total_weight = M::batch_weight(batch);
    // One row probes whether the model's batches split at all.
    let shards = if rows > max_rows && M::batch_part(batch, 0, 1).is_some() {
        shard_rows(rows, max_rows)
    } else {
        vec![(0, rows)]
    };
    let whole = shards.len() == 1;
    let rngs: Vec<SeededRng> = shards.iter().map(|_| rng.fork()).collect();
    let run_one = |i: usize| -> Result<ShardOut> {
        let (start, len) = shards[i];
        let part;
        let b = if whole {
            batch
        } else {
            part = M::batch_part(batch, start, len).expect("the model splits batches")?;
            &part
        };
        let mut r = rngs[i].clone();
        // The shard's share of the batch's mean: its weight over the batch's (rows, for a model
        // whose rows weigh the same).
        let scale = if whole || total_weight == 0.0 {
            1.0
        } else {
            M::batch_weight(b) / total_weight
        };
        let (loss, store) = model.loss_and_grads(b, &mut Mode::Train(&mut r), scale)?;
        let grads = store.map(|store| {
            vars.iter()
                .map(|(_, v)| store.get(v.as_tensor()).cloned())
                .collect()
        });
        Ok(ShardOut {
            loss,
            share: scale,
            grads,
        })
    };
    let mut loss = 0.0;
    let mut obj = 0.0;
    let mut total: Option<Vec<Option<Tensor>>> = None;
    let mut finite = true;
    // Waves of as many shards as threads, each wave's gradients added into the total (in shard
    // order, so the sum does not depend on the thread count) before the next wave runs: at most
    // one wave of shard gradients exists beside the total.
    let wave = rayon::current_num_threads().max(1);
    let mut first = 0;
    while first < shards.len() {
        let end = (first + wave).min(shards.len());
        let outs = run_shards(end - first, |k| run_one(first + k));
        for out in outs {
            let out = out?;
            let w = out.share;
            loss += w * out.loss.loss;
            obj += w * out.loss.objective;
            match (out.grads, finite && out.loss.is_finite()) {
                (Some(g), true) => {
                    total = Some(match total {
                        None => g,
                        Some(acc) => acc
                            .into_iter()
                            .zip(g)
                            .map(|pair| match pair {
                                (Some(a), Some(b)) => Ok(Some((a + b)?)),
                                (a, None) => Ok(a),
                                (None, b) => Ok(b),
                            })
                            .collect::<Result<_>>()?,
                    })
                }
                _ => {
                    finite = false;
                    total = None;
                }
            }
        }
        first = end;
    }
    Ok(BatchGrads {
        loss,
        objective: obj,
        grads: if finite { total } else { None },
    })
}
