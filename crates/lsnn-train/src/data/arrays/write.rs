//! Writing an `.npz` (stored members, as `np.savez` writes them) that `np.load` reads: each
//! array as a version-1.0 `.npy` member, little-endian, C order. Written to a temporary file
//! beside the target and renamed over it, so a failed write never leaves a half file under the
//! target's name (nor replaces what was there).

use super::{Array, Elems};
use crate::error::{Result, TrainError};
use std::io::Write;
use std::path::Path;

/// A version-1.0 `.npy` of `array`.
fn npy_bytes(array: &Array) -> Vec<u8> {
    let descr = match &array.elems {
        Elems::F32(_) => "<f4",
        Elems::F64(_) => "<f8",
        Elems::I64(_) => "<i8",
        Elems::U64(_) => "<u8",
        Elems::Bool(_) => "|b1",
    };
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
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces so the data starts at a multiple of 64, ending in '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    match &array.elems {
        Elems::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Elems::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Elems::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Elems::U64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
        Elems::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
    }
    out
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
            let bytes = npy_bytes(array);
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
    use crate::data::arrays::{read_arrays, ElemType};

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
