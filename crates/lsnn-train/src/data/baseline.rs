//! The bigram baseline of a token data set: what a model must beat to have learned more than
//! which byte follows which.

use super::text::TokenDataset;

/// Validation cross-entropy (nats per token) of an add-one-smoothed bigram model fitted on the
/// training tokens, over the same next-token targets the model is scored on.
pub fn bigram_baseline(ds: &TokenDataset, vocab: usize) -> f64 {
    let mut counts = vec![1f64; vocab * vocab];
    let mut rows = vec![vocab as f64; vocab];
    for w in ds.train_tokens().windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        counts[a * vocab + b] += 1.0;
        rows[a] += 1.0;
    }
    let (mut total, mut n) = (0f64, 0usize);
    for i in 0..ds.val_windows() {
        for w in ds.val_window(i).windows(2) {
            let (a, b) = (w[0] as usize, w[1] as usize);
            total -= (counts[a * vocab + b] / rows[a]).ln();
            n += 1;
        }
    }
    total / n as f64
}
