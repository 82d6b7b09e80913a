//! The built-in arithmetic task: two-digit additions as text lines.

use super::text::{ByteTokenizer, DataSource, TokenDataset};
use crate::error::Result;
use lsnn_layers::SeededRng;

/// The built-in task: lines `ab+cd=efg` (two-digit operands, three-digit sum, zero-padded so
/// every prompt has the same length), 10,000 problems of which 1,000 are held out for validation.
#[derive(Debug, Clone)]
pub struct ArithmeticTask {
    seed: u64,
    train: Vec<(u32, u32)>,
    val: Vec<(u32, u32)>,
}

/// Held-out problems.
pub const ARITH_VAL_PROBLEMS: usize = 1000;

impl ArithmeticTask {
    /// The problem split for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut all: Vec<(u32, u32)> = (0..100)
            .flat_map(|a| (0..100).map(move |b| (a, b)))
            .collect();
        SeededRng::new(seed ^ 0xA11CE).shuffle(&mut all);
        let val = all.split_off(all.len() - ARITH_VAL_PROBLEMS);
        ArithmeticTask {
            seed,
            train: all,
            val,
        }
    }

    /// One problem's line, newline included.
    pub fn line(a: u32, b: u32) -> String {
        format!("{a:02}+{b:02}={:03}\n", a + b)
    }

    /// The prompt for a problem: the previous line's end, then `ab+cd=`.
    pub fn prompt(a: u32, b: u32) -> String {
        format!("\n{a:02}+{b:02}=")
    }

    /// The expected answer after the prompt.
    pub fn answer(a: u32, b: u32) -> String {
        format!("{:03}", a + b)
    }

    /// Held-out problems.
    pub fn val_problems(&self) -> &[(u32, u32)] {
        &self.val
    }

    /// Training problems.
    pub fn train_problems(&self) -> &[(u32, u32)] {
        &self.train
    }

    /// The text data set: training lines and held-out lines, each as one stream.
    pub fn dataset(&self, seq_len: usize) -> Result<TokenDataset> {
        let text = |ps: &[(u32, u32)]| {
            ps.iter()
                .map(|&(a, b)| Self::line(a, b))
                .collect::<String>()
        };
        TokenDataset::new(
            ByteTokenizer.encode(&text(&self.train)),
            ByteTokenizer.encode(&text(&self.val)),
            seq_len,
            DataSource::Arithmetic { seed: self.seed },
        )
    }
}
