//! numpy's `np.random.default_rng(seed)`: PCG64 (XSL-RR output, 128-bit LCG) seeded through
//! `SeedSequence`, with `Generator.choice(list)` — Lemire's bounded integers on buffered 32-bit
//! halves — the one draw ncps' `FullyConnected` wiring makes (its synapse polarities).

const MULT_A: u32 = 0x931e_8875;
const MULT_B: u32 = 0x58f3_8ded;
const INIT_A: u32 = 0x43b0_d7e5;
const INIT_B: u32 = 0x8b51_f9dd;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL: usize = 4;
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) + 4_865_540_595_714_422_341u128;

fn hashmix(value: u32, hash: &mut u32) -> u32 {
    let mut v = value ^ *hash;
    *hash = hash.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// `SeedSequence(seed).generate_state(4, uint64)` for a non-negative integer seed.
fn seed_words(seed: u64) -> [u64; 4] {
    // The seed as little-endian 32-bit words (numpy keeps at least one word).
    let mut entropy = vec![seed as u32];
    if seed >> 32 != 0 {
        entropy.push((seed >> 32) as u32);
    }
    let mut pool = [0u32; POOL];
    let mut hash = INIT_A;
    for (i, p) in pool.iter_mut().enumerate() {
        *p = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash);
    }
    for src in 0..POOL {
        for dst in 0..POOL {
            if src != dst {
                let h = hashmix(pool[src], &mut hash);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    let mut hash = INIT_B;
    let mut words = [0u32; 8];
    for (i, w) in words.iter_mut().enumerate() {
        let mut v = pool[i % POOL] ^ hash;
        hash = hash.wrapping_mul(MULT_B);
        v = v.wrapping_mul(hash);
        *w = v ^ (v >> XSHIFT);
    }
    std::array::from_fn(|k| words[2 * k] as u64 | (words[2 * k + 1] as u64) << 32)
}

/// numpy's `np.random.default_rng(seed)` for the draws ncps' `FullyConnected` wiring makes.
#[derive(Debug, Clone)]
pub struct Generator {
    state: u128,
    inc: u128,
    half: Option<u32>,
}

impl Generator {
    /// `default_rng(seed)` for a non-negative integer seed below 2⁶⁴.
    pub fn new(seed: u64) -> Self {
        let w = seed_words(seed);
        let init_state = (w[0] as u128) << 64 | w[1] as u128;
        let init_seq = (w[2] as u128) << 64 | w[3] as u128;
        let mut g = Generator {
            state: 0,
            inc: init_seq << 1 | 1,
            half: None,
        };
        g.step();
        g.state = g.state.wrapping_add(init_state);
        g.step();
        g
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let s = self.state;
        ((s >> 64) as u64 ^ s as u64).rotate_right((s >> 122) as u32)
    }

    /// The next 32-bit output: the low half of a 64-bit draw, then its high half.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(h) = self.half.take() {
            return h;
        }
        let v = self.next_u64();
        self.half = Some((v >> 32) as u32);
        v as u32
    }

    /// A uniform integer in 0..=max (max < 2³² − 1) by Lemire's multiply-and-reject.
    pub fn bounded(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let excl = max as u64 + 1;
        let mut m = self.next_u32() as u64 * excl;
        let mut left = m as u32;
        if (left as u64) < excl {
            let threshold = ((u32::MAX - max) as u64 % excl) as u32;
            while left < threshold {
                m = self.next_u32() as u64 * excl;
                left = m as u32;
            }
        }
        (m >> 32) as u32
    }

    /// `choice(items)`: one element, uniformly.
    ///
    /// # Panics
    /// On an empty slice (numpy raises; callers pass fixed lists).
    pub fn choice<T: Copy>(&mut self, items: &[T]) -> T {
        assert!(!items.is_empty(), "choice from an empty population");
        items[self.bounded((items.len() - 1) as u32) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_default_rng() {
        // numpy 2.4.6: SeedSequence(1111).generate_state(4, np.uint64)
        assert_eq!(
            seed_words(1111),
            [
                2_258_116_934_205_301_517,
                14_409_187_479_005_411_873,
                10_706_133_586_571_000_085,
                3_240_790_825_565_068_648
            ]
        );
        // g = np.random.default_rng(1111); [g.bit_generator.random_raw() for _ in range(3)]
        let mut g = Generator::new(1111);
        let raw: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
        assert_eq!(
            raw,
            [
                15_852_105_362_585_597_067,
                12_115_427_431_398_542_507,
                8_887_363_355_600_350_134
            ]
        );
        // g = np.random.default_rng(1111); [g.integers(0, 3) for _ in range(20)]
        let mut g = Generator::new(1111);
        let ints: Vec<u32> = (0..20).map(|_| g.bounded(2)).collect();
        assert_eq!(
            ints,
            [2, 2, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 0, 2, 1, 2, 0]
        );
        // g = np.random.default_rng(1111); [g.choice([-1, 1, 1]) for _ in range(20)]
        let mut g = Generator::new(1111);
        let pol: Vec<i8> = (0..20).map(|_| g.choice(&[-1, 1, 1])).collect();
        assert_eq!(
            pol,
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, 1, 1, 1, -1]
        );
    }
}
