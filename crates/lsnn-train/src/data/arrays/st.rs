//! `.safetensors`: the `safetensors` crate validates the header (offsets, sizes, overlaps);
//! each tensor's little-endian bytes are decoded as [`super::npy`] decodes `.npy` data.

use super::{npy, Array, ArrayError, ElemType};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;

/// Every tensor of the file, by name.
pub fn read(bytes: &[u8]) -> Result<BTreeMap<String, Array>, ArrayError> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| ArrayError::new(format!("not a readable .safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => ElemType::F32,
            Dtype::F64 => ElemType::F64,
            Dtype::I8 => ElemType::I8,
            Dtype::I16 => ElemType::I16,
            Dtype::I32 => ElemType::I32,
            Dtype::I64 => ElemType::I64,
            Dtype::U8 => ElemType::U8,
            Dtype::U16 => ElemType::U16,
            Dtype::U32 => ElemType::U32,
            Dtype::U64 => ElemType::U64,
            Dtype::BOOL => ElemType::Bool,
            other => {
                return Err(ArrayError::new(format!(
                    "array {:?}: dtype {other:?}; expected F32/F64, an integer type or BOOL",
                    crate::error::clip(&name)
                )))
            }
        };
        let shape = view.shape().to_vec();
        let count = npy::element_count(&shape)?;
        if view.data().len() != count * dtype.size() {
            // The crate checks this; kept so that a decode never reads past the data.
            return Err(ArrayError::new(format!(
                "array {:?}: {} bytes for shape {shape:?} of {}",
                crate::error::clip(&name),
                view.data().len(),
                dtype.name()
            )));
        }
        let elems = npy::decode(view.data(), dtype, false, count);
        out.insert(
            name,
            Array {
                dtype,
                shape,
                elems,
            },
        );
    }
    Ok(out)
}
