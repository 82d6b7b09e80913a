//! The sequence tasks (design §2.9, §8.4): lsnn-layers' [`lsnn_layers::SequenceModel`] trained
//! on [`crate::data::SequenceData`] ([`sequence`]), and its predictions on new data, batched or
//! streamed ([`predict`]). The language model's counterpart is [`crate::lm`].

pub mod predict;
pub mod sequence;

pub use predict::{load_sequence, LoadedSequence, Prediction};
pub use sequence::{memory_estimate_of, sequence_data, SeqBatch};
