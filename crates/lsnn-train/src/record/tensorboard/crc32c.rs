//! CRC-32C (Castagnoli) and TFRecord's masked form, which frames every record of an event file.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// The byte-at-a-time table, built at compile time. Event files are small (a few hundred bytes
/// per step), so a wider slicing table would buy nothing measurable.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The CRC-32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc = TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// TFRecord's mask over a CRC: rotated right by 15 bits plus a constant, so that a CRC stored
/// inside CRC-checked data does not check itself trivially.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xA282_EAD8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check values of the CRC catalogue (CRC-32/ISCSI) and RFC 3720's test patterns.
    #[test]
    fn known_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&ascending), 0x46DD_794E);
    }

    /// Masked values as TensorBoard's own `masked_crc32c` computes them (an empty input, the
    /// check string, and the 8-byte length field of an empty record).
    #[test]
    fn mask() {
        assert_eq!(masked_crc32c(b""), 0xA282_EAD8);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(masked_crc32c(&[0u8; 8]), 0x0798_0329);
    }
}
