//! Optimisation: [`AdamW`] with saveable state, the in-place [`Ema`], the learning-rate and
//! cleanup [`schedule`]s, and the [`inplace`] candle ops they run on.

mod adamw;
mod ema;
pub mod inplace;
pub mod schedule;

pub use adamw::{global_norm, AdamW, AdamWConfig, ParamState};
pub use ema::Ema;
