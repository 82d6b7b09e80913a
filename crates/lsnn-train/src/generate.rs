//! Generation with the language model: one decode loop, streaming one token per step with the
//! model's recurrent state and attention caches, greedy or sampled with a temperature. The CLI's
//! `generate` and the built-in task's exact-match accuracy both use it.

use crate::error::{Result, TrainError};
use candle_core::{DType, Tensor, D};
use lsnn_layers::{LanguageModel, SeededRng};

/// How the next token is chosen.
#[derive(Debug)]
pub enum Sampler<'a> {
    /// The most likely token.
    Greedy,
    /// A draw from softmax(logits / temperature), from this generator.
    Temperature {
        /// Temperature > 0.
        temperature: f64,
        /// The generator.
        rng: &'a mut SeededRng,
    },
}

/// `max_new` tokens after each of the equal-length, non-empty `prompts` (one row each), from
/// the model's graph-free view. Prompt plus output must fit the position table.
pub fn continue_prompts(
    model: &LanguageModel,
    prompts: &[Vec<u32>],
    max_new: usize,
    mut sampler: Sampler<'_>,
) -> Result<Vec<Vec<u32>>> {
    let b = prompts.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    let plen = prompts[0].len();
    if plen == 0 || prompts.iter().any(|p| p.len() != plen) {
        return Err(TrainError::Config {
            field: "prompts".into(),
            message: "expected non-empty prompts of equal length".into(),
        });
    }
    let limit = model.config().max_position_embeddings;
    if plen.checked_add(max_new).is_none_or(|n| n > limit) {
        return Err(TrainError::Config {
            field: "max_tokens".into(),
            message: format!(
                "a prompt of {plen} tokens and {max_new} new ones exceed the model's \
                 max_position_embeddings = {limit}"
            ),
        });
    }
    if let Sampler::Temperature { temperature, .. } = &sampler {
        if !(temperature.is_finite() && *temperature > 0.0) {
            return Err(TrainError::Config {
                field: "temperature".into(),
                message: format!("{temperature}; expected a number > 0 (or greedy decoding)"),
            });
        }
    }
    let this = model.detached();
    let dev = model.device().clone();
    let mut state = this.new_state(b)?;
    let mut logits = None;
    for t in 0..plen {
        let col: Vec<u32> = prompts.iter().map(|p| p[t]).collect();
        logits = Some(this.step(&Tensor::from_vec(col, b, &dev)?, &mut state)?);
    }
    let mut outs = vec![Vec::with_capacity(max_new); b];
    for k in 0..max_new {
        let l = logits.take().expect("a prompt token was consumed");
        let next: Vec<u32> = match &mut sampler {
            Sampler::Greedy => l.argmax(D::Minus1)?.to_dtype(DType::U32)?.to_vec1()?,
            Sampler::Temperature { temperature, rng } => {
                let p = candle_nn::ops::softmax(&(l / *temperature)?, D::Minus1)?
                    .to_dtype(DType::F32)?
                    .to_vec2::<f32>()?;
                p.iter()
                    .map(|row| draw(row, rng.next_f64() as f32))
                    .collect()
            }
        };
        for (o, &t) in outs.iter_mut().zip(&next) {
            o.push(t);
        }
        if k + 1 < max_new {
            logits = Some(this.step(&Tensor::from_vec(next, b, &dev)?, &mut state)?);
        }
    }
    Ok(outs)
}

/// The index where the running sum of `p` first exceeds `r` (the last one if rounding leaves
/// `r` above the sum).
fn draw(p: &[f32], r: f32) -> u32 {
    let mut acc = 0f32;
    for (i, &pi) in p.iter().enumerate() {
        acc += pi;
        if r < acc {
            return i as u32;
        }
    }
    (p.len() - 1) as u32
}
