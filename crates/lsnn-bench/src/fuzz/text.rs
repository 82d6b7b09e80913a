//! The text target: the first two bytes pick a sequence length (small ones mostly, and the
//! extremes), the rest is a data file's content, read as `lsnn train --data` reads it.

use super::Outcome;
use lsnn_train::TokenDataset;
use std::path::Path;

/// The sequence length the first two bytes of an input pick.
fn sequence_length(a: u8, b: u8) -> usize {
    match a {
        0xff => usize::MAX - usize::from(b),
        0xfe => (1usize << 40) + usize::from(b),
        _ => usize::from(a) << 8 | usize::from(b),
    }
}

/// Reads `bytes` as a text data file.
pub fn text(bytes: &[u8]) -> Outcome {
    let (seq, content) = match bytes {
        [a, b, rest @ ..] => (sequence_length(*a, *b), rest),
        _ => (16, bytes),
    };
    Outcome::of(
        TokenDataset::from_text_bytes(content, seq, Path::new("<fuzz>/data.txt")).map(|d| {
            // What training does with it next: every window is reachable.
            let n = d.train_windows().min(4);
            (0..n).map(|i| d.train_window(i).len()).sum::<usize>()
                + d.val_window(d.val_windows() - 1).len()
        }),
    )
}
