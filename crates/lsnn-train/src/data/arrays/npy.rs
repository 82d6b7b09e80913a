//! NumPy's `.npy` format (versions 1.0, 2.0 and 3.0), read from bytes: the magic, the header —
//! a Python dict literal with `descr`, `fortran_order` and `shape` — then the raw elements in
//! the header's byte order, in C or Fortran order. Every way a file can be malformed is an
//! [`ArrayError`] naming what was expected; nothing is allocated before the element count has
//! been checked against the bytes that are really there.

use super::{Array, ArrayError, ElemType, Elems};

const MAGIC: &[u8] = b"\x93NUMPY";

/// The header's three fields.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// One `.npy` file's bytes as an [`Array`] in C order.
pub fn parse(bytes: &[u8]) -> Result<Array, ArrayError> {
    let (header, body) = split_header(bytes)?;
    let (dtype, big_endian) = parse_descr(&header.descr)?;
    let count = element_count(&header.shape)?;
    let need = count
        .checked_mul(dtype.size())
        .ok_or_else(|| ArrayError::new(format!("shape {:?} overflows", header.shape)))?;
    if body.len() != need {
        return Err(ArrayError::new(format!(
            "{} bytes of data after the header; shape {:?} of {} needs {need}",
            body.len(),
            header.shape,
            dtype.name()
        )));
    }
    let elems = decode(body, dtype, big_endian, count);
    let elems = if header.fortran_order && header.shape.len() > 1 {
        elems.fortran_to_c(&header.shape)
    } else {
        elems
    };
    Ok(Array {
        dtype,
        shape: header.shape,
        elems,
    })
}

/// The header and the data after it.
fn split_header(bytes: &[u8]) -> Result<(Header, &[u8]), ArrayError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(ArrayError::new(
            "not a .npy array (no \\x93NUMPY magic); expected an array written by numpy".into(),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(ArrayError::new("truncated .npy header".into()));
            }
            let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (n as usize, 12)
        }
        _ => {
            return Err(ArrayError::new(format!(
                ".npy format version {major}.{minor}; expected 1.0, 2.0 or 3.0"
            )))
        }
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            ArrayError::new(format!(
                "the .npy header claims {len} bytes but the file has {} after its start",
                bytes.len() - start
            ))
        })?;
    let raw = &bytes[start..end];
    // Versions 1 and 2 write latin-1, version 3 UTF-8; the fields lsnn reads are ASCII in both.
    let text: String = if major == 3 {
        std::str::from_utf8(raw)
            .map_err(|_| ArrayError::new("the .npy header is not UTF-8".into()))?
            .to_owned()
    } else {
        raw.iter().map(|&b| b as char).collect()
    };
    Ok((parse_header(&text)?, &bytes[end..]))
}

/// A minimal reader of the header's Python literal: `{'key': value, ...}` where a value is a
/// quoted string, `True`/`False`, or a tuple of integers.
fn parse_header(text: &str) -> Result<Header, ArrayError> {
    let mut p = Lexer {
        s: text.as_bytes(),
        i: 0,
    };
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => {
                p.skip_ws();
                if p.peek() == Some(b'[') {
                    return Err(ArrayError::new(
                        "a structured (record) dtype; expected a plain numeric array".into(),
                    ));
                }
                descr = Some(p.string()?)
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => {
                return Err(ArrayError::new(format!(
                    "unknown .npy header key {:?}; expected descr, fortran_order and shape",
                    crate::error::clip(other)
                )))
            }
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(Header {
            descr,
            fortran_order,
            shape,
        }),
        _ => Err(ArrayError::new(
            "the .npy header lacks descr, fortran_order or shape".into(),
        )),
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), ArrayError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("'{}'", c as char)))
        }
    }

    fn error(&self, what: &str) -> ArrayError {
        ArrayError::new(format!(
            "malformed .npy header at byte {}: expected {what}",
            self.i
        ))
    }

    fn string(&mut self) -> Result<String, ArrayError> {
        self.skip_ws();
        let q = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.error("a quoted string")),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err(self.error("the end of a string"));
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }

    fn boolean(&mut self) -> Result<bool, ArrayError> {
        self.skip_ws();
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(self.error("True or False"))
        }
    }

    fn tuple(&mut self) -> Result<Vec<usize>, ArrayError> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_ws();
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            // Python 2 era files may write a long as `3L`.
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            if digits.is_empty() {
                return Err(self.error("a dimension (a non-negative integer)"));
            }
            let d: usize = digits.parse().map_err(|_| {
                ArrayError::new(format!(
                    "dimension {} is too large",
                    crate::error::clip(digits)
                ))
            })?;
            if self.peek() == Some(b'L') {
                self.i += 1;
            }
            dims.push(d);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}

/// The element type and byte order of a `descr` such as `<f4`, `|u1`, `>i8`.
fn parse_descr(descr: &str) -> Result<(ElemType, bool), ArrayError> {
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<') | Some(b'|') | Some(b'=') => (false, &descr[1..]),
        Some(b'>') => (true, &descr[1..]),
        _ => (false, descr),
    };
    let t = match code {
        "f4" => ElemType::F32,
        "f8" => ElemType::F64,
        "i1" => ElemType::I8,
        "i2" => ElemType::I16,
        "i4" => ElemType::I32,
        "i8" => ElemType::I64,
        "u1" => ElemType::U8,
        "u2" => ElemType::U16,
        "u4" => ElemType::U32,
        "u8" => ElemType::U64,
        "b1" => ElemType::Bool,
        _ => {
            let named = match code.as_bytes().first() {
                Some(b'f') => "a float type other than float32/float64",
                Some(b'c') => "complex numbers",
                Some(b'O') => "Python objects (pickled)",
                Some(b'U') | Some(b'S') => "strings",
                Some(b'M') | Some(b'm') => "dates or time deltas",
                _ => "an unknown type",
            };
            return Err(ArrayError::new(format!(
                "dtype {:?} ({named}); expected float32/float64, an integer type or bool",
                crate::error::clip(descr)
            )));
        }
    };
    Ok((t, order))
}

/// Σ of a shape, checked.
pub(super) fn element_count(shape: &[usize]) -> Result<usize, ArrayError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| ArrayError::new(format!("shape {shape:?} overflows")))
}

/// The raw elements as [`Elems`] (ints widened), in file order.
pub(super) fn decode(body: &[u8], t: ElemType, big: bool, count: usize) -> Elems {
    macro_rules! read {
        ($ty:ty, $n:expr) => {
            body.chunks_exact($n).map(|c| {
                let a: [u8; $n] = c.try_into().expect("chunks_exact gives whole chunks");
                if big {
                    <$ty>::from_be_bytes(a)
                } else {
                    <$ty>::from_le_bytes(a)
                }
            })
        };
    }
    let out = match t {
        ElemType::F32 => Elems::F32(read!(f32, 4).collect()),
        ElemType::F64 => Elems::F64(read!(f64, 8).collect()),
        ElemType::I8 => Elems::I64(body.iter().map(|&b| b as i8 as i64).collect()),
        ElemType::I16 => Elems::I64(read!(i16, 2).map(i64::from).collect()),
        ElemType::I32 => Elems::I64(read!(i32, 4).map(i64::from).collect()),
        ElemType::I64 => Elems::I64(read!(i64, 8).collect()),
        ElemType::U8 => Elems::U64(body.iter().map(|&b| b as u64).collect()),
        ElemType::U16 => Elems::U64(read!(u16, 2).map(u64::from).collect()),
        ElemType::U32 => Elems::U64(read!(u32, 4).map(u64::from).collect()),
        ElemType::U64 => Elems::U64(read!(u64, 8).collect()),
        ElemType::Bool => Elems::Bool(body.iter().map(|&b| b != 0).collect()),
    };
    debug_assert_eq!(out.len(), count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(body);
        out
    }

    #[test]
    fn fortran_order_is_transposed_to_c_order() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let body: Vec<u8> = [1i16, 4, 2, 5, 3, 6]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse(&npy("<i2", true, "(2, 3)", &body)).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.elems, Elems::I64(vec![1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn big_endian_and_scalars_read() {
        let a = parse(&npy(">f8", false, "()", &2.5f64.to_be_bytes())).unwrap();
        assert_eq!(a.shape, Vec::<usize>::new());
        assert_eq!(a.elems, Elems::F64(vec![2.5]));
    }

    #[test]
    fn malformed_headers_and_short_bodies_are_errors() {
        let short = parse(&npy("<f4", false, "(3,)", &[0; 8])).unwrap_err();
        assert!(short.to_string().contains("needs 12"), "{short}");
        let huge = parse(&npy("<f4", false, "(99999999999999, 99999999999)", &[])).unwrap_err();
        assert!(huge.to_string().contains("overflows"), "{huge}");
        let obj = parse(&npy("|O", false, "(1,)", &[0; 8])).unwrap_err();
        assert!(obj.to_string().contains("pickled"), "{obj}");
        let bad = parse(b"\x93NUMPY\x01\x00\x05\x00{'de").unwrap_err();
        assert!(bad.to_string().contains("header"), "{bad}");
    }
}
