//! numpy's legacy `RandomState`: MT19937 seeded by `init_genrand`, with the sampling rules
//! `NCP` uses — `choice(list)`, `choice(list, size, replace=False)` — which reduce to masked
//! rejection on 32-bit draws and a Fisher–Yates shuffle.

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER: u32 = 0x8000_0000;
const LOWER: u32 = 0x7fff_ffff;

/// numpy's `np.random.RandomState(seed)` for the draws ncps' `NCP` wiring makes.
#[derive(Clone)]
pub struct RandomState {
    mt: [u32; N],
    pos: usize,
}

impl std::fmt::Debug for RandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RandomState")
            .field("pos", &self.pos)
            .finish()
    }
}

impl RandomState {
    /// `RandomState(seed)` for an integer seed (numpy accepts 0..2³²).
    pub fn new(seed: u32) -> Self {
        let mut mt = [0u32; N];
        mt[0] = seed;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        RandomState { mt, pos: N }
    }

    fn regenerate(&mut self) {
        for i in 0..N {
            let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.mt[i] = self.mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.regenerate();
        }
        let mut y = self.mt[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A uniform integer in 0..=max by masked rejection (numpy's `random_interval`, and its
    /// masked bounded integers for ranges below 2³²).
    pub fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for s in [1, 2, 4, 8, 16] {
            mask |= mask >> s;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `choice(items)`: one element, uniformly (`randint(0, len)` underneath).
    ///
    /// # Panics
    /// On an empty slice (numpy raises; callers check sizes first).
    pub fn choice<T: Copy>(&mut self, items: &[T]) -> T {
        assert!(!items.is_empty(), "choice from an empty population");
        items[self.interval((items.len() - 1) as u32) as usize]
    }

    /// `permutation(n)`: 0..n shuffled (Fisher–Yates from the end, numpy's legacy `shuffle`).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.interval(i as u32) as usize;
            v.swap(i, j);
        }
        v
    }

    /// `choice(items, size, replace=False)`: the first `size` of a permutation, or `None` when
    /// `size` exceeds the population (where numpy raises).
    pub fn sample<T: Copy>(&mut self, items: &[T], size: usize) -> Option<Vec<T>> {
        if size > items.len() {
            return None;
        }
        Some(
            self.permutation(items.len())[..size]
                .iter()
                .map(|&i| items[i])
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_reference_outputs() {
        // The reference implementation's first outputs for init_genrand(5489), its default seed
        // (mt19937ar.c); numpy's RandomState(5489) draws the same words.
        let mut r = RandomState::new(5489);
        let first: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(first, [3_499_211_612, 581_869_302, 3_890_346_734]);
        // The 10000th output of the default-seeded generator (C++11 std::mt19937's check).
        let mut r = RandomState::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = r.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn matches_numpy_random_state() {
        // numpy 2.4.6: r = np.random.RandomState(22222);
        // [r.randint(0, 2**32, dtype=np.uint32) for _ in range(3)]
        let mut r = RandomState::new(22222);
        let raw: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(raw, [294_195_201, 1_847_582_594, 1_342_442_730]);
        // r = np.random.RandomState(22222); r.choice(range(10, 20), size=4, replace=False),
        // r.choice([-1, 1]), r.choice([3, 4, 5]), r.permutation(7)
        let mut r = RandomState::new(22222);
        let items: Vec<i32> = (10..20).collect();
        assert_eq!(r.sample(&items, 4).unwrap(), [13, 15, 19, 14]);
        assert_eq!(r.choice(&[-1, 1]), 1);
        assert_eq!(r.choice(&[3, 4, 5]), 3);
        assert_eq!(r.permutation(7), [3, 1, 2, 6, 0, 4, 5]);
    }

    #[test]
    fn sample_without_replacement_is_distinct_and_refuses_oversize() {
        let mut r = RandomState::new(7);
        let s = r.sample(&[10, 11, 12, 13, 14], 4).unwrap();
        let mut d = s.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 4);
        assert!(r.sample(&[1, 2], 3).is_none());
    }
}
