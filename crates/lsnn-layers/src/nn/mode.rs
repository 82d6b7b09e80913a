//! Training or evaluation, and where dropout masks come from.
//!
//! Two ways into a layer with dropout: the explicit [`Mode`] (`Mode::Train(&mut rng)`), where the
//! caller owns the generator — the bit-exact path the trainer uses, whose draws depend only on
//! the generator it is handed — and candle's `ModuleT::forward_t(x, train)`, where the layer
//! draws from the [`DropoutRng`] it owns. That generator forks one child per call; when one
//! layer runs on several threads at once the order of the forks, and so the masks, follow the
//! scheduling: that path is reproducible on one thread, not bit-exact across thread counts.

use crate::error::{LayerError, Result};
use crate::rng::SeededRng;
use candle_core::Tensor;
use std::sync::{Arc, Mutex};

/// Evaluation, or training with the generator that draws dropout masks.
#[derive(Debug)]
pub enum Mode<'a> {
    /// No dropout.
    Eval,
    /// Dropout on, masks from this generator.
    Train(&'a mut SeededRng),
}

impl Mode<'_> {
    /// True in training mode.
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// Inverted dropout with probability `p` in training mode (the fused op of
/// [`crate::fused::dropout`], a bit mask per element); the identity in evaluation mode.
pub fn dropout(x: &Tensor, p: f64, mode: &mut Mode<'_>) -> Result<Tensor> {
    match mode {
        Mode::Train(rng) if p > 0.0 => Ok(crate::fused::dropout(x, p, rng)?),
        _ => Ok(x.clone()),
    }
}

/// The seeded generator a layer owns for dropout under candle's `ModuleT`. Clones of a layer
/// (and its detached views) share it. Its state can be saved and restored.
#[derive(Debug, Clone)]
pub struct DropoutRng(Arc<Mutex<SeededRng>>);

impl DropoutRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        DropoutRng(Arc::new(Mutex::new(SeededRng::new(seed))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeededRng> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generator's state (to save).
    pub fn state(&self) -> [u64; 4] {
        self.lock().state()
    }

    /// Restores a saved state; the all-zero state (which the generator cannot leave) is an error.
    pub fn set_state(&self, state: [u64; 4]) -> Result<()> {
        let rng = SeededRng::from_state(state).ok_or_else(|| {
            LayerError::config(
                "dropout generator state",
                "all zero; expected a saved state",
            )
        })?;
        *self.lock() = rng;
        Ok(())
    }

    /// Runs `f` in training mode with a generator forked from this one (`train`), or in
    /// evaluation mode.
    pub fn run<R>(&self, train: bool, f: impl FnOnce(&mut Mode<'_>) -> R) -> R {
        if train {
            let mut child = self.lock().fork();
            f(&mut Mode::Train(&mut child))
        } else {
            f(&mut Mode::Eval)
        }
    }
}

impl Default for DropoutRng {
    fn default() -> Self {
        DropoutRng::new(0)
    }
}
