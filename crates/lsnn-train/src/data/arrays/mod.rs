//! Named numeric arrays from NumPy's `.npz` (`np.savez` and `np.savez_compressed`) and from
//! `.safetensors` files — the sequence tasks' data files (design §8.4) — and the `.npz` writer
//! `lsnn predict` uses. The format is recognised from the content (a ZIP archive or a
//! safetensors header), not the file name.
//!
//! Every array comes back in C order with its element type: float32/float64 as they are, every
//! integer width widened to i64 or u64, bool as bool. Which arrays a task needs, and what they
//! must hold, is [`super::sequence`]'s business.

mod npy;
mod npz;
mod st;
mod write;

pub use write::write_npz;

use std::collections::BTreeMap;

/// What is wrong with a file's bytes (the caller adds the path and the array's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayError(String);

impl ArrayError {
    pub(crate) fn new(message: String) -> Self {
        ArrayError(message)
    }
}

impl std::fmt::Display for ArrayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArrayError {}

/// An element type as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    /// float32.
    F32,
    /// float64.
    F64,
    /// int8.
    I8,
    /// int16.
    I16,
    /// int32.
    I32,
    /// int64.
    I64,
    /// uint8.
    U8,
    /// uint16.
    U16,
    /// uint32.
    U32,
    /// uint64.
    U64,
    /// bool.
    Bool,
}

impl ElemType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElemType::I8 | ElemType::U8 | ElemType::Bool => 1,
            ElemType::I16 | ElemType::U16 => 2,
            ElemType::F32 | ElemType::I32 | ElemType::U32 => 4,
            ElemType::F64 | ElemType::I64 | ElemType::U64 => 8,
        }
    }

    /// NumPy's name.
    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "float32",
            ElemType::F64 => "float64",
            ElemType::I8 => "int8",
            ElemType::I16 => "int16",
            ElemType::I32 => "int32",
            ElemType::I64 => "int64",
            ElemType::U8 => "uint8",
            ElemType::U16 => "uint16",
            ElemType::U32 => "uint32",
            ElemType::U64 => "uint64",
            ElemType::Bool => "bool",
        }
    }

    /// float32 or float64.
    pub fn is_float(self) -> bool {
        matches!(self, ElemType::F32 | ElemType::F64)
    }

    /// Any integer width, signed or not.
    pub fn is_integer(self) -> bool {
        !self.is_float() && self != ElemType::Bool
    }
}

/// The elements, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum Elems {
    /// float32.
    F32(Vec<f32>),
    /// float64.
    F64(Vec<f64>),
    /// Any signed integer, widened.
    I64(Vec<i64>),
    /// Any unsigned integer, widened.
    U64(Vec<u64>),
    /// bool.
    Bool(Vec<bool>),
}

impl Elems {
    /// Elements.
    pub fn len(&self) -> usize {
        match self {
            Elems::F32(v) => v.len(),
            Elems::F64(v) => v.len(),
            Elems::I64(v) => v.len(),
            Elems::U64(v) => v.len(),
            Elems::Bool(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements stored column-major (Fortran order) for `shape`, rearranged row-major.
    fn fortran_to_c(self, shape: &[usize]) -> Elems {
        fn permute<T: Copy>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
            let rank = shape.len();
            // Fortran strides: the first index moves fastest.
            let mut strides = vec![1usize; rank];
            for k in 1..rank {
                strides[k] = strides[k - 1] * shape[k - 1];
            }
            let mut out = Vec::with_capacity(v.len());
            let mut idx = vec![0usize; rank];
            let mut offset = 0usize;
            for _ in 0..v.len() {
                out.push(v[offset]);
                // Advance the C-order index (last index fastest), keeping the offset in step.
                for k in (0..rank).rev() {
                    idx[k] += 1;
                    offset += strides[k];
                    if idx[k] < shape[k] {
                        break;
                    }
                    offset -= strides[k] * idx[k];
                    idx[k] = 0;
                }
            }
            out
        }
        match self {
            Elems::F32(v) => Elems::F32(permute(v, shape)),
            Elems::F64(v) => Elems::F64(permute(v, shape)),
            Elems::I64(v) => Elems::I64(permute(v, shape)),
            Elems::U64(v) => Elems::U64(permute(v, shape)),
            Elems::Bool(v) => Elems::Bool(permute(v, shape)),
        }
    }
}

/// One named array.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The element type in the file.
    pub dtype: ElemType,
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The elements, C order.
    pub elems: Elems,
}

impl Array {
    /// The elements as f64 (exact for float32, float64 and integers up to 2^53 in magnitude).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.elems {
            Elems::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Elems::F64(v) => v.clone(),
            Elems::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Elems::U64(v) => v.iter().map(|&x| x as f64).collect(),
            Elems::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }

    /// The elements as i128, for integer and bool arrays (every value exact), `None` for floats.
    pub fn to_i128(&self) -> Option<Vec<i128>> {
        match &self.elems {
            Elems::I64(v) => Some(v.iter().map(|&x| x as i128).collect()),
            Elems::U64(v) => Some(v.iter().map(|&x| x as i128).collect()),
            Elems::Bool(v) => Some(v.iter().map(|&x| i128::from(x)).collect()),
            Elems::F32(_) | Elems::F64(_) => None,
        }
    }
}

/// The file formats [`read_arrays`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A ZIP archive of `.npy` members (`np.savez`, `np.savez_compressed`).
    Npz,
    /// A safetensors file.
    Safetensors,
}

/// The format of a file's first bytes.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Some(Format::Npz);
    }
    // safetensors: an 8-byte little-endian header length, then a JSON object.
    if bytes.len() >= 9 && bytes[8] == b'{' {
        return Some(Format::Safetensors);
    }
    None
}

/// Every array of an `.npz` or `.safetensors` file's bytes, by name (an `.npz` member's name
/// without its `.npy`). Errors name the array at fault.
pub fn read_arrays(bytes: &[u8]) -> Result<BTreeMap<String, Array>, ArrayError> {
    match sniff(bytes) {
        Some(Format::Npz) => npz::read(bytes),
        Some(Format::Safetensors) => st::read(bytes),
        None => Err(ArrayError::new(
            "neither an .npz archive (np.savez / np.savez_compressed) nor a .safetensors file"
                .into(),
        )),
    }
}
