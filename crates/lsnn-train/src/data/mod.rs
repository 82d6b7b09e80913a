//! Data: the byte tokenizer and token data sets ([`text`]), the built-in arithmetic task
//! ([`arithmetic`]) and the bigram baseline ([`baseline`]).

pub mod arithmetic;
pub mod arrays;
pub mod baseline;
pub mod builtin;
pub mod sequence;
pub mod text;

pub use arithmetic::{ArithmeticTask, ARITH_VAL_PROBLEMS};
pub use baseline::bigram_baseline;
pub use sequence::{SeqDescription, SeqSource, SequenceData};
pub use text::{ByteTokenizer, DataSource, TokenDataset, VAL_FRACTION};
