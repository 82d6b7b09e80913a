//! The `.npz` and `.safetensors` readers against files numpy and safetensors wrote themselves
//! (scripts/fixtures/gen_arrays.py): every element type, both byte orders, C and Fortran order,
//! stored and deflated members; and malformed archives and headers as typed errors.

mod common;

use lsnn_train::data::arrays::{read_arrays, write_npz, Array, ElemType, Elems};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/arrays")
        .join(name)
}

fn read(name: &str) -> BTreeMap<String, Array> {
    read_arrays(&std::fs::read(fixture(name)).unwrap()).unwrap()
}

/// The array as numpy describes it in dtypes.json: (dtype name, shape, values as strings).
fn as_described(a: &Array) -> (String, Vec<usize>, Vec<String>) {
    let values = match &a.elems {
        Elems::F32(v) => v.iter().map(|x| format!("{:?}", *x as f64)).collect(),
        Elems::F64(v) => v.iter().map(|x| format!("{x:?}")).collect(),
        Elems::I64(v) => v.iter().map(|x| x.to_string()).collect(),
        Elems::U64(v) => v.iter().map(|x| x.to_string()).collect(),
        Elems::Bool(v) => v.iter().map(|x| x.to_string()).collect(),
    };
    (a.dtype.name().to_string(), a.shape.clone(), values)
}

fn python_float(s: &str) -> f64 {
    s.parse().unwrap()
}

#[test]
fn every_dtype_and_order_reads_as_numpy_wrote_it() {
    let want: BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("dtypes.json")).unwrap()).unwrap();
    for file in ["dtypes.npz", "dtypes_compressed.npz"] {
        let got = read(file);
        assert_eq!(got.len(), want.len(), "{file}: array count");
        for (name, w) in &want {
            let a = &got[name];
            let (dtype, shape, values) = as_described(a);
            assert_eq!(dtype, w["dtype"].as_str().unwrap(), "{file} {name}: dtype");
            let wshape: Vec<usize> = w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(shape, wshape, "{file} {name}: shape");
            let wvalues = w["values"].as_array().unwrap();
            assert_eq!(values.len(), wvalues.len(), "{file} {name}: count");
            for (i, (g, v)) in values.iter().zip(wvalues).enumerate() {
                match v {
                    Value::String(s) if a.dtype.is_float() => assert_eq!(
                        python_float(g).to_bits(),
                        python_float(s).to_bits(),
                        "{file} {name}[{i}]"
                    ),
                    Value::String(s) => assert_eq!(g, s, "{file} {name}[{i}]"),
                    Value::Bool(b) => assert_eq!(g, &b.to_string(), "{file} {name}[{i}]"),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
}

#[test]
fn safetensors_and_npz_of_the_same_arrays_agree() {
    for stem in ["regression", "classification"] {
        let npz = read(&format!("{stem}.npz"));
        let st = read(&format!("{stem}.safetensors"));
        assert_eq!(
            npz.keys().collect::<Vec<_>>(),
            st.keys().collect::<Vec<_>>()
        );
        for (k, a) in &npz {
            assert_eq!(a, &st[k], "{stem}: {k}");
        }
    }
    // The regression file's x was written in Fortran order (the .npz) and in C order (the
    // .safetensors): equal above means the transposition is right; its dtypes are as written.
    let reg = read("regression.npz");
    assert_eq!(reg["x"].dtype, ElemType::F64);
    assert_eq!(reg["lengths"].dtype, ElemType::I16);
    assert_eq!(reg["x"].shape, vec![40, 12, 3]);
}

fn corrupt(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut bytes = std::fs::read(fixture(name)).unwrap();
    edit(&mut bytes);
    read_arrays(&bytes).unwrap_err().to_string()
}

#[test]
fn malformed_files_are_typed_errors() {
    // Neither format.
    let e = read_arrays(b"hello, world").unwrap_err().to_string();
    assert!(e.contains("neither an .npz archive"), "{e}");
    // A truncated archive (the central directory is at the end).
    let e = corrupt("dtypes.npz", |b| b.truncate(b.len() / 2));
    assert!(e.contains("not a readable .npz"), "{e}");
    // A flipped byte in a stored member's data: the CRC-32 check refuses it.
    let e = corrupt("dtypes.npz", |b| {
        let at = b.windows(6).position(|w| w == b"\x93NUMPY").unwrap() + 200;
        b[at] ^= 0x40;
    });
    assert!(
        e.contains("cannot read its member") || e.contains("array"),
        "{e}"
    );
    // A flipped byte in a deflated member.
    let e = corrupt("dtypes_compressed.npz", |b| {
        let n = b.len();
        b[n / 3] ^= 0xFF;
    });
    assert!(!e.is_empty());
    // A truncated safetensors file, and one whose header lies about its length.
    let e = corrupt("classification.safetensors", |b| b.truncate(b.len() - 10));
    assert!(e.contains("not a readable .safetensors"), "{e}");
    let e = corrupt("classification.safetensors", |b| b[0] = 0xFF);
    assert!(e.contains("not a readable .safetensors"), "{e}");
}

#[test]
fn members_that_are_not_plain_arrays_are_refused() {
    let dir = common::scratch("arrays-members");
    // A zip member that is not an .npy.
    let path = dir.join("odd.npz");
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        z.start_file("notes.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(b"hello").unwrap();
        z.finish().unwrap();
    }
    let e = read_arrays(&std::fs::read(&path).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"notes.txt\" is not an .npy array"), "{e}");
    // An .npy member whose header is not numpy's, and one with an object dtype.
    for (header, needle) in [
        (
            "{'descr': '<f4', 'shape': (2,), }",
            "lacks descr, fortran_order or shape",
        ),
        (
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            "pickled",
        ),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            "structured",
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1, }",
            "unknown .npy header key",
        ),
        (
            "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }",
            "float32/float64",
        ),
    ] {
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend((header.len() as u16).to_le_bytes());
        npy.extend(header.as_bytes());
        npy.extend([0u8; 8]);
        let p = dir.join("bad.npz");
        {
            use std::io::Write;
            let mut z = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
            z.start_file("x.npy", zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(&npy).unwrap();
            z.finish().unwrap();
        }
        let e = read_arrays(&std::fs::read(&p).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle) && e.contains("\"x\""), "{header}: {e}");
    }
    // What lsnn writes, numpy's reader would read: here, lsnn's own reader reads it back.
    let a = Array {
        dtype: ElemType::Bool,
        shape: vec![3],
        elems: Elems::Bool(vec![true, false, true]),
    };
    let p = dir.join("round.npz");
    write_npz(&p, &[("m", &a)]).unwrap();
    assert_eq!(read_arrays(&std::fs::read(&p).unwrap()).unwrap()["m"], a);
    std::fs::remove_dir_all(&dir).ok();
}
