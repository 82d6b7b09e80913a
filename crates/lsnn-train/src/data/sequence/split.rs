//! One split of a sequence task's data in memory: features [N, L, F], targets, optional time
//! spans [N, L] and optional valid lengths [N], with the operations the data set needs on it —
//! normalisation, the time-shuffled control, row selection — and the trivial baselines.

use lsnn_layers::SeededRng;
use serde::{Deserialize, Serialize};

/// Targets of a split.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitTargets {
    /// Regression targets [N, L, width] (row-major).
    Values {
        /// The values.
        data: Vec<f32>,
        /// F_out.
        width: usize,
    },
    /// One class id per row.
    Classes(Vec<u32>),
}

/// One split: rows of L positions of F features.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Rows N.
    pub n: usize,
    /// Positions per row L (the padded length).
    pub l: usize,
    /// Features per position F.
    pub f: usize,
    /// Features [N, L, F].
    pub x: Vec<f32>,
    /// Targets (absent for inputs to predict).
    pub y: Option<SplitTargets>,
    /// Time spans [N, L].
    pub spans: Option<Vec<f32>>,
    /// Valid lengths `[N]`, each in 1..=L (every row whole when `None`).
    pub lengths: Option<Vec<u32>>,
}

/// Per-feature mean and standard deviation of the training split (over its valid positions),
/// stored with the checkpoint and applied to every input of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Mean of each feature.
    pub mean: Vec<f32>,
    /// Standard deviation of each feature (1 for a constant feature, which is only centred).
    pub std: Vec<f32>,
}

impl Normalization {
    /// The identity on `f` features (mean 0, standard deviation 1): what a spike-encoded data
    /// set records, its encoder reading the features as they are.
    pub fn identity(f: usize) -> Self {
        Normalization {
            mean: vec![0.0; f],
            std: vec![1.0; f],
        }
    }
}

impl Split {
    /// Row `r`'s valid length.
    pub fn len_of(&self, r: usize) -> usize {
        self.lengths.as_ref().map_or(self.l, |v| v[r] as usize)
    }

    /// The valid positions of every row.
    pub fn valid_positions(&self) -> usize {
        (0..self.n).map(|r| self.len_of(r)).sum()
    }

    /// The mean and standard deviation of each feature over the valid positions (f64 sums).
    pub fn normalization(&self) -> Normalization {
        let f = self.f;
        let mut sum = vec![0f64; f];
        let mut sq = vec![0f64; f];
        let mut count = 0f64;
        for r in 0..self.n {
            for t in 0..self.len_of(r) {
                let base = (r * self.l + t) * f;
                for k in 0..f {
                    let v = self.x[base + k] as f64;
                    sum[k] += v;
                    sq[k] += v * v;
                }
                count += 1.0;
            }
        }
        let count = count.max(1.0);
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let var = (q / count - m * m).max(0.0);
                let s = var.sqrt();
                // A constant feature (or one constant to f32 precision) is centred, not scaled.
                if s > 1e-6 * m.abs().max(1.0) {
                    s as f32
                } else {
                    1.0
                }
            })
            .collect();
        Normalization {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Features normalised by `norm`; padded positions (and their spans) set to 0, so that no
    /// value the file holds there can reach the model.
    pub fn normalize(&mut self, norm: &Normalization) {
        let f = self.f;
        for r in 0..self.n {
            let len = self.len_of(r);
            for t in 0..self.l {
                let base = (r * self.l + t) * f;
                for k in 0..f {
                    let v = &mut self.x[base + k];
                    *v = if t < len {
                        (*v - norm.mean[k]) / norm.std[k]
                    } else {
                        0.0
                    };
                }
                if t >= len {
                    if let Some(s) = &mut self.spans {
                        s[r * self.l + t] = 0.0;
                    }
                    if let Some(SplitTargets::Values { data, width }) = &mut self.y {
                        let w = *width;
                        data[(r * self.l + t) * w..(r * self.l + t + 1) * w].fill(0.0);
                    }
                }
            }
        }
    }

    /// The time-shuffled control: each row's valid positions of the features (and their spans)
    /// in a seeded random order, the targets untouched — what a model can still learn then
    /// does not depend on order.
    pub fn shuffle_time(&mut self, rng: &mut SeededRng) {
        let f = self.f;
        for r in 0..self.n {
            let len = self.len_of(r);
            let mut order: Vec<u32> = (0..len as u32).collect();
            rng.shuffle(&mut order);
            let base = r * self.l;
            let old_x = self.x[base * f..(base + len) * f].to_vec();
            for (t, &src) in order.iter().enumerate() {
                let src = src as usize;
                self.x[(base + t) * f..(base + t + 1) * f]
                    .copy_from_slice(&old_x[src * f..(src + 1) * f]);
            }
            if let Some(s) = &mut self.spans {
                let old = s[base..base + len].to_vec();
                for (t, &src) in order.iter().enumerate() {
                    s[base + t] = old[src as usize];
                }
            }
        }
    }

    /// Rows `rows` as a split of their own.
    pub fn select(&self, rows: &[usize]) -> Split {
        let (l, f) = (self.l, self.f);
        let gather = |v: &[f32], per_row: usize| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| v[r * per_row..(r + 1) * per_row].iter().copied())
                .collect()
        };
        Split {
            n: rows.len(),
            l,
            f,
            x: gather(&self.x, l * f),
            y: self.y.as_ref().map(|y| match y {
                SplitTargets::Values { data, width } => SplitTargets::Values {
                    data: gather(data, l * width),
                    width: *width,
                },
                SplitTargets::Classes(c) => {
                    SplitTargets::Classes(rows.iter().map(|&r| c[r]).collect())
                }
            }),
            spans: self.spans.as_ref().map(|s| gather(s, l)),
            lengths: self
                .lengths
                .as_ref()
                .map(|v| rows.iter().map(|&r| v[r]).collect()),
        }
    }

    /// 64-bit words of the whole content (shapes and the bits of every value), for a
    /// fingerprint.
    pub fn words(&self) -> Vec<u64> {
        let mut w = vec![self.n as u64, self.l as u64, self.f as u64];
        w.extend(self.x.iter().map(|v| v.to_bits() as u64));
        match &self.y {
            Some(SplitTargets::Values { data, width }) => {
                w.push(*width as u64);
                w.extend(data.iter().map(|v| v.to_bits() as u64));
            }
            Some(SplitTargets::Classes(c)) => {
                w.push(u64::MAX);
                w.extend(c.iter().map(|&v| v as u64));
            }
            None => {}
        }
        if let Some(s) = &self.spans {
            w.push(1);
            w.extend(s.iter().map(|v| v.to_bits() as u64));
        }
        if let Some(len) = &self.lengths {
            w.push(2);
            w.extend(len.iter().map(|&v| v as u64));
        }
        w
    }
}

/// The trivial baselines of a split's targets, given the training split's (design §2.9):
/// regression — predicting the training mean of each output (`mean`) and the previous
/// position's target (`persistence`, scored from each row's second valid position); classification —
/// always the training split's most frequent class (`majority`).
pub fn baselines(train: &Split, val: &Split) -> Vec<(String, f64)> {
    match (&train.y, &val.y) {
        (
            Some(SplitTargets::Values { data: ty, width }),
            Some(SplitTargets::Values { data: vy, .. }),
        ) => {
            let w = *width;
            let mut mean = vec![0f64; w];
            let mut count = 0f64;
            for r in 0..train.n {
                for t in 0..train.len_of(r) {
                    for k in 0..w {
                        mean[k] += ty[(r * train.l + t) * w + k] as f64;
                    }
                    count += 1.0;
                }
            }
            mean.iter_mut().for_each(|m| *m /= count.max(1.0));
            let (mut m_se, mut m_ae, mut m_n) = (0f64, 0f64, 0f64);
            let (mut p_se, mut p_ae, mut p_n) = (0f64, 0f64, 0f64);
            let (mut m_l1, mut p_l1) = (0f64, 0f64);
            let smooth = |d: f64| {
                if d.abs() < 1.0 {
                    0.5 * d * d
                } else {
                    d.abs() - 0.5
                }
            };
            for r in 0..val.n {
                for t in 0..val.len_of(r) {
                    for k in 0..w {
                        let y = vy[(r * val.l + t) * w + k] as f64;
                        let d = y - mean[k];
                        m_se += d * d;
                        m_ae += d.abs();
                        m_l1 += smooth(d);
                        m_n += 1.0;
                        if t > 0 {
                            let d = y - vy[(r * val.l + t - 1) * w + k] as f64;
                            p_se += d * d;
                            p_ae += d.abs();
                            p_l1 += smooth(d);
                            p_n += 1.0;
                        }
                    }
                }
            }
            let mut out = vec![
                ("baseline_mean_loss".to_string(), m_l1 / m_n.max(1.0)),
                ("baseline_mean_mse".to_string(), m_se / m_n.max(1.0)),
                ("baseline_mean_mae".to_string(), m_ae / m_n.max(1.0)),
            ];
            if p_n > 0.0 {
                out.extend([
                    ("baseline_persistence_loss".to_string(), p_l1 / p_n),
                    ("baseline_persistence_mse".to_string(), p_se / p_n),
                    ("baseline_persistence_mae".to_string(), p_ae / p_n),
                ]);
            }
            out
        }
        (Some(SplitTargets::Classes(tc)), Some(SplitTargets::Classes(vc))) => {
            let classes = tc.iter().chain(vc).copied().max().unwrap_or(0) as usize + 1;
            let mut counts = vec![0usize; classes];
            tc.iter().for_each(|&c| counts[c as usize] += 1);
            // The most frequent class, the lowest id among ties.
            let majority = (0..classes)
                .max_by_key(|&c| (counts[c], usize::MAX - c))
                .unwrap_or(0);
            let hits = vc.iter().filter(|&&c| c as usize == majority).count();
            // The cross-entropy of always predicting the training class frequencies.
            let total = tc.len().max(1) as f64;
            let ce = vc
                .iter()
                .map(|&c| {
                    -((counts[c as usize] as f64 + 0.5) / (total + 0.5 * classes as f64)).ln()
                })
                .sum::<f64>()
                / vc.len().max(1) as f64;
            vec![
                (
                    "baseline_majority_accuracy".to_string(),
                    hits as f64 / vc.len().max(1) as f64,
                ),
                ("baseline_prior_loss".to_string(), ce),
            ]
        }
        _ => Vec::new(),
    }
}
