//! # lsnn-examples
//!
//! The models the examples and their tests share, written as a user of lsnn writes them:
//!
//! - [`sequence`]: a candle model built from lsnn-layers' pieces (the spiking encoder, a `Leaky`
//!   layer and a CfC) with a `candle_nn::linear` head, trained with candle-nn's own AdamW;
//! - [`classifier`]: a spiking classifier and its data, implementing lsnn-train's `TrainModel`
//!   and `Dataset` so that lsnn's `Trainer` trains it.
//!
//! The programs are in `examples/` (`cargo run -p lsnn-examples --example own_model`, and
//! `trainer_own_model`, `leak_test_own_model`); each checks what it prints and exits non-zero
//! when it does not hold. The crates' place in the workspace: design §1.
#![deny(missing_docs)]

pub mod classifier;
pub mod sequence;
