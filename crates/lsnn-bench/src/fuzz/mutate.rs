//! Mutations of valid files, for the campaign without coverage feedback: bit flips, byte
//! changes, insertions and deletions, copies within the input, splices with another seed, and
//! tokens a parser meets at its limits (huge and negative numbers, NaN, unbalanced brackets).

/// A small deterministic generator (SplitMix64): a campaign's seed repeats its inputs.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Tokens at the edges of what the readers parse.
const EDGE_TOKENS: &[&str] = &[
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    "NaN",
    "Infinity",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967296",
    "1099511627776",
    "0.0",
    "-0",
    "null",
    "true",
    "\"\"",
    "[]",
    "{}",
    "{",
    "}",
    "[",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"é\"",
    ",",
    ":",
    "\n",
];

/// One random change to `input`; `other` is another seed to splice from.
pub fn mutate(input: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let len = input.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            input[i] = rng.next_u64() as u8;
        }
        2 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(at..at, bytes);
        }
        3 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(16)).min(len);
            input.drain(a..b);
        }
        4 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            let copy = input[a..b].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, copy);
        }
        5 if !other.is_empty() => {
            let cut = rng.below(len + 1);
            let from = rng.below(other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        6 => {
            let at = rng.below(len + 1);
            let t = EDGE_TOKENS[rng.below(EDGE_TOKENS.len())];
            input.splice(at..at, t.bytes());
        }
        7 => replace_number(input, rng),
        _ => {
            let at = rng.below(len + 1);
            input.truncate(at);
        }
    }
}

/// Replaces one run of ASCII digits with an edge token (the values of a config's fields).
fn replace_number(input: &mut Vec<u8>, rng: &mut Rng) {
    let starts: Vec<usize> = (0..input.len())
        .filter(|&i| input[i].is_ascii_digit() && (i == 0 || !input[i - 1].is_ascii_digit()))
        .collect();
    if starts.is_empty() {
        return;
    }
    let a = starts[rng.below(starts.len())];
    let b = (a..input.len())
        .find(|&i| !input[i].is_ascii_digit())
        .unwrap_or(input.len());
    let t = EDGE_TOKENS[rng.below(12)];
    input.splice(a..b, t.bytes());
}

/// Random bytes, of a random length up to `max`.
pub fn random_bytes(max: usize, rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(max + 1);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}
