//! Checkpoints: the atomic set on disk (`set`: write a complete new set, sync, switch the
//! `CURRENT` pointer with one rename; load with every file agreeing), the tensor key names and
//! their checks ([`keys`]), and which sets a run keeps ([`retention`]: the latest, and the best
//! by the monitored metric when asked).

pub mod keys;
pub mod retention;
mod set;

pub use set::*;
