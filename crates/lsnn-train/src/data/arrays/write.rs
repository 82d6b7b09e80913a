//! Writing an `.npz` (stored members, as `np.savez` writes them) that `np.load` reads: each
//! array as a version-1.0 `.npy` member, little-endian, C order. Written to a temporary file
//! beside the target and renamed over it, so a failed write never leaves a half file under the
//! target's name (nor replaces what was there).

use super::{Array, ElemType, Elems};
use crate::error::{Result, TrainError};
use std::io::Write;
use std::path::Path;

/// numpy's `descr` of an element type (little-endian).
fn descr(t: ElemType) -> &'static str {
    match t {
        ElemType::F32 => "<f4",
        ElemType::F64 => "<f8",
        ElemType::I8 => "|i1",
        ElemType::I16 => "<i2",
        ElemType::I32 => "<i4",
        ElemType::I64 => "<i8",
        ElemType::U8 => "|u1",
        ElemType::U16 => "<u2",
        ElemType::U32 => "<u4",
        ElemType::U64 => "<u8",
        ElemType::Bool => "|b1",
    }
}

/// A version-1.0 `.npy` of `array`, its elements at the width of its `dtype` (a value that does
/// not fit the width is the caller's bug, refused here rather than wrapped).
fn npy_bytes(array: &Array) -> Result<Vec<u8>> {
    let shape = match array.shape.as_slice() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        descr(array.dtype)
    );
    // numpy pads the header with spaces so the data starts at a multiple of 64, ending in '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    let misfit = || TrainError::Config {
        field: "array".into(),
        message: format!(
            "elements do not fit the declared dtype {}",
            array.dtype.name()
        ),
    };
    macro_rules! put {
        ($v:expr, $ty:ty) => {
            for &x in $v {
                out.extend(<$ty>::try_from(x).map_err(|_| misfit())?.to_le_bytes());
            }
        };
    }
    match (&array.elems, array.dtype) {
        (Elems::F32(v), ElemType::F32) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        (Elems::F64(v), ElemType::F64) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        (Elems::I64(v), ElemType::I8) => put!(v, i8),
        (Elems::I64(v), ElemType::I16) => put!(v, i16),
        (Elems::I64(v), ElemType::I32) => put!(v, i32),
        (Elems::I64(v), ElemType::I64) => put!(v, i64),
        (Elems::U64(v), ElemType::U8) => put!(v, u8),
        (Elems::U64(v), ElemType::U16) => put!(v, u16),
        (Elems::U64(v), ElemType::U32) => put!(v, u32),
        (Elems::U64(v), ElemType::U64) => put!(v, u64),
        (Elems::Bool(v), ElemType::Bool) => out.extend(v.iter().map(|&b| u8::from(b))),
        _ => return Err(misfit()),
    }
    Ok(out)
}

/// Writes `arrays` (name, array) to `path` as an `.npz`.
pub fn write_npz(path: &Path, arrays: &[(&str, &Array)]) -> Result<()> {
    let io = |e: std::io::Error| TrainError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let zipped = |e: zip::result::ZipError| TrainError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.npz".into());
    let tmp = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        for (member, array) in arrays {
            let bytes = npy_bytes(array)?;
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(bytes.len() as u64 >= u32::MAX as u64);
            zip.start_file(format!("{member}.npy"), options)
                .map_err(zipped)?;
            zip.write_all(&bytes).map_err(io)?;
        }
        let mut writer = zip.finish().map_err(zipped)?;
        writer.flush().map_err(io)?;
        let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::arrays::read_arrays;

    #[test]
    fn written_arrays_read_back() {
        let dir = std::env::temp_dir().join(format!("lsnn-npz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.npz");
        let a = Array {
            dtype: ElemType::F32,
            shape: vec![2, 3],
            elems: Elems::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]),
        };
        let b = Array {
            dtype: ElemType::I64,
            shape: vec![2],
            elems: Elems::I64(vec![7, -1]),
        };
        write_npz(&path, &[("y_pred", &a), ("lengths", &b)]).unwrap();
        let back = read_arrays(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["y_pred"], a);
        assert_eq!(back["lengths"], b);
        std::fs::remove_dir_all(&dir).ok();
    }
}
