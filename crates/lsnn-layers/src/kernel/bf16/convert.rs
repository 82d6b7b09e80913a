//! f32 ↔ bf16 as the matmul's packing rounds: to nearest, ties to even, with the conventions of
//! the bf16 dot-product instructions (subnormal operands count as zero).

/// The bf16 nearest to `x` (ties to even), as its 16 bits. A subnormal `x` becomes a zero of its
/// sign — the bf16 dot-product instructions treat subnormal operands as zero, so flushing here
/// makes every kernel see the same operand; a NaN stays a (quiet) NaN; a finite value too large
/// for bf16 rounds to infinity, as rounding to nearest does.
#[inline]
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let magnitude = b & 0x7FFF_FFFF;
    // Adding 0x7FFF plus the kept part's lowest bit rounds to nearest with ties to even; a carry
    // out of the significand moves into the exponent, which is the correct rounding (up to
    // infinity at the top of the range).
    let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16;
    // Three selects rather than branches, so that packing loops vectorise. A NaN keeps its sign
    // and the top of its payload with the quiet bit set (a signalling NaN whose payload sits in
    // the low half must not become an infinity); a subnormal (or zero) keeps only its sign.
    let out = if magnitude > 0x7F80_0000 {
        (b >> 16) | 0x0040
    } else if magnitude < 0x0080_0000 {
        (b >> 16) & 0x8000
    } else {
        rounded
    };
    out as u16
}

/// The f32 whose value is the bf16 with these bits (exact: bf16 is f32 with 16 fewer
/// significand bits).
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// The high bf16 of a packed pair word, as f32.
#[inline(always)]
pub(super) fn high(word: u32) -> f32 {
    f32::from_bits(word & 0xFFFF_0000)
}

/// The low bf16 of a packed pair word, as f32.
#[inline(always)]
pub(super) fn low(word: u32) -> f32 {
    f32::from_bits(word << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_normal_bf16_converts_to_itself() {
        for bits in 0..=u16::MAX {
            let x = bf16_to_f32(bits);
            if x.is_nan() || x.is_subnormal() {
                continue;
            }
            assert_eq!(bf16_bits(x), bits, "{x:e}");
        }
    }

    #[test]
    fn rounding_is_to_nearest_with_ties_to_even() {
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the even neighbour (1) wins.
        assert_eq!(bf16_bits(1.0 + 2f32.powi(-8)), bf16_bits(1.0));
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: the even one is 1 + 2^-6.
        assert_eq!(
            bf16_to_f32(bf16_bits(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        // Just above a tie rounds up.
        assert_eq!(
            bf16_to_f32(bf16_bits(1.0 + 2f32.powi(-8) + 2f32.powi(-20))),
            1.0 + 2f32.powi(-7)
        );
        // Sampled: the result is one of the two bf16 neighbours and no farther than the other.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = f32::from_bits(s as u32);
            if !x.is_finite() || x.is_subnormal() || x.abs() > 3.0e38 {
                continue;
            }
            let r = bf16_to_f32(bf16_bits(x));
            let down = f32::from_bits(x.to_bits() & 0xFFFF_0000);
            let up = f32::from_bits((x.to_bits() & 0xFFFF_0000) + 0x1_0000);
            assert!(r == down || r == up, "{x:e} -> {r:e}");
            let (e, other) = ((r - x).abs(), if r == down { up } else { down });
            assert!(e <= (other - x).abs(), "{x:e} -> {r:e}, nearer {other:e}");
        }
    }

    #[test]
    fn specials() {
        assert!(bf16_to_f32(bf16_bits(f32::NAN)).is_nan());
        // A signalling NaN with its payload in the low half stays a NaN.
        assert!(bf16_to_f32(bf16_bits(f32::from_bits(0x7F80_0001))).is_nan());
        assert_eq!(bf16_to_f32(bf16_bits(f32::INFINITY)), f32::INFINITY);
        assert_eq!(bf16_to_f32(bf16_bits(f32::MAX)), f32::INFINITY);
        assert_eq!(bf16_bits(-1e-40), 0x8000);
        assert_eq!(bf16_bits(1e-40), 0);
        assert_eq!(bf16_bits(f32::MIN_POSITIVE), 0x0080);
        assert_eq!(high(0x3F80_4000), 1.0);
        assert_eq!(low(0x3F80_4000), 2.0);
    }
}
