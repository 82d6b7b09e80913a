//! The project's own seeded generator (candle cannot seed its CPU generator, design §6).
//!
//! xoshiro256** seeded through SplitMix64; the whole state is four `u64`s that a checkpoint saves
//! and restores. Every random number of a run — initialisation, dropout masks, data order,
//! sampling — comes from here, so a run is reproducible from its seed.

use candle_core::{DType, Device, Shape, Tensor};
use serde::{Deserialize, Serialize};

/// A seedable, saveable pseudo-random generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SeededRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let s = [
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
            splitmix(&mut x),
        ];
        SeededRng { s }
    }

    /// The full state (to save).
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator resumed from a saved state; `None` for the all-zero state, which xoshiro
    /// cannot leave.
    pub fn from_state(s: [u64; 4]) -> Option<Self> {
        if s == [0; 4] {
            None
        } else {
            Some(SeededRng { s })
        }
    }

    /// A new generator derived from this one (for an independent stream).
    pub fn fork(&mut self) -> Self {
        SeededRng::new(self.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1) as f32 (24 random bits).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in 0..n, without modulo bias (an empty range cannot be asked for).
    pub fn below(&mut self, n: std::num::NonZeroU64) -> u64 {
        let n = n.get();
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u1 = self.next_f64();
            if u1 > 0.0 {
                let u2 = self.next_f64();
                return (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            }
        }
    }

    /// Shuffles `v` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(std::num::NonZeroU64::MIN.saturating_add(i as u64)) as usize;
            v.swap(i, j);
        }
    }

    /// A tensor of U(lo, hi) samples.
    pub fn uniform_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        lo: f64,
        hi: f64,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count())
            .map(|_| lo + (hi - lo) * self.next_f64())
            .collect();
        Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
    }

    /// A tensor of N(mean, std²) samples.
    pub fn normal_tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        mean: f64,
        std: f64,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.elem_count())
            .map(|_| mean + std * self.normal())
            .collect();
        Tensor::from_vec(v, shape, device)?.to_dtype(dtype)
    }

    /// A dropout keep-mask of `n` bits (bit i of word i/64 is element i): each element is
    /// dropped (bit 0) with probability `p`, from 32 random bits per element (two per draw), so
    /// `p` is honoured to within 2⁻³². Callers check `p` ([`crate::fused::dropout`] and the
    /// config do); p ≤ 0 keeps every element and p ≥ 1 drops every one.
    pub fn dropout_bits(&mut self, n: usize, p: f64) -> Vec<u64> {
        // Drop when the 32-bit draw is below p·2³² (the cast saturates: 0 below, 2⁶⁴−1 above).
        let threshold = (p * 4_294_967_296.0).round() as u64;
        let keep = |half: u64| (half >= threshold) as u64;
        // One draw's two elements as two bits: the low half first.
        let pair = |r: u64| keep(r & 0xFFFF_FFFF) | keep(r >> 32) << 1;
        let mut bits = vec![0u64; n.div_ceil(64)];
        // Whole words without a branch per element (32 draws each), then the last word's
        // elements two per draw: the same draws in the same order as one element at a time.
        let whole = n / 64;
        for word in &mut bits[..whole] {
            let mut w = 0u64;
            for k in 0..32 {
                w |= pair(self.next_u64()) << (2 * k);
            }
            *word = w;
        }
        let rest = n - whole * 64;
        if rest > 0 {
            let mut w = 0u64;
            for k in 0..rest.div_ceil(2) {
                w |= pair(self.next_u64()) << (2 * k);
            }
            // An odd count drew one half too many: its bit lies past n and is cleared.
            bits[whole] = w & (u64::MAX >> (64 - rest));
        }
        bits
    }

    /// An inverted-dropout mask tensor: each element is 0 with probability `p`, else 1/(1−p)
    /// (the same draws as [`SeededRng::dropout_bits`]).
    pub fn dropout_mask(
        &mut self,
        shape: &Shape,
        p: f64,
        dtype: DType,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let n = shape.elem_count();
        let bits = self.dropout_bits(n, p);
        let scale = 1.0 / (1.0 - p);
        let v: Vec<f64> = (0..n)
            .map(|i| {
                if bits[i / 64] >> (i % 64) & 1 == 1 {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        Tensor::from_vec(v, shape.clone(), device)?.to_dtype(dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::SeededRng;

    /// The mask one element at a time, two elements per draw: the definition the word-wise
    /// [`SeededRng::dropout_bits`] must reproduce.
    fn bits_one_by_one(rng: &mut SeededRng, n: usize, p: f64) -> Vec<u64> {
        let threshold = (p * 4_294_967_296.0).round() as u64;
        let mut bits = vec![0u64; n.div_ceil(64)];
        let mut i = 0;
        while i < n {
            let r = rng.next_u64();
            for half in [r & 0xFFFF_FFFF, r >> 32] {
                if i < n && half >= threshold {
                    bits[i / 64] |= 1 << (i % 64);
                }
                i += 1;
            }
        }
        bits
    }

    /// Same bits and the same generator state after, for lengths around word boundaries (odd
    /// ones included) and probabilities from 0 to 1; the drop rate near p.
    #[test]
    fn dropout_bits_match_the_element_wise_definition() {
        for n in [0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 1000, 4097] {
            for p in [0.0, 0.1, 0.5, 0.9, 1.0] {
                let (mut a, mut b) = (SeededRng::new(7 + n as u64), SeededRng::new(7 + n as u64));
                assert_eq!(
                    a.dropout_bits(n, p),
                    bits_one_by_one(&mut b, n, p),
                    "n {n} p {p}"
                );
                assert_eq!(a.next_u64(), b.next_u64(), "state after n {n} p {p}");
            }
        }
        let n = 1 << 16;
        let kept: u32 = SeededRng::new(3)
            .dropout_bits(n, 0.25)
            .iter()
            .map(|w| w.count_ones())
            .sum();
        let rate = 1.0 - kept as f64 / n as f64;
        assert!((rate - 0.25).abs() < 0.01, "drop rate {rate}");
    }
}
