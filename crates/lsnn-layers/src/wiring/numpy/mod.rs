//! numpy's random generators, as far as ncps' wirings use them, so that a seed gives the wiring
//! ncps gives (design §2.3.3). Written from the published algorithms — MT19937 (Matsumoto and
//! Nishimura 1998) with numpy's legacy `RandomState` sampling rules, and PCG64 (O'Neill 2014)
//! seeded by numpy's `SeedSequence` with its `Generator`'s bounded integers (Lemire 2019) —
//! and tested against numpy's output through ncps' wirings.

mod legacy;
mod pcg64;

pub use legacy::RandomState;
pub use pcg64::Generator;
