//! A data file's arrays as [`Split`]s, every rule checked (design §8.4): which arrays may
//! appear, their element types, ranks and shapes, finite values at the valid positions, class
//! ids in range, lengths (or a right-padding mask) in 1..=L, and that the training and
//! validation arrays agree. Each error names the array and says what was expected.

use super::split::{Split, SplitTargets};
use crate::data::arrays::{Array, Elems};
use lsnn_layers::Task;
use std::collections::BTreeMap;

/// The arrays a file may hold.
pub const ARRAY_NAMES: &[&str] = &[
    "x",
    "y",
    "dt",
    "lengths",
    "mask",
    "x_val",
    "y_val",
    "dt_val",
    "lengths_val",
    "mask_val",
];

/// A message about the file's arrays (the caller adds the path).
pub type LoadError = String;

fn shape_of(a: &Array) -> String {
    format!("{:?}", a.shape)
}

/// The arrays of a file, checked against [`ARRAY_NAMES`].
pub fn check_names(arrays: &BTreeMap<String, Array>) -> Result<(), LoadError> {
    for name in arrays.keys() {
        if !ARRAY_NAMES.contains(&name.as_str()) {
            return Err(format!(
                "unexpected array {:?}; expected x, y and optionally x_val, y_val, dt, dt_val, \
                 lengths (or mask), lengths_val (or mask_val)",
                crate::error::clip(name)
            ));
        }
    }
    Ok(())
}

/// Features `x` of `task` as (N, L, F, values in f32): float32 or float64, [N, L, F] (a
/// classifier's [N, F] is one position); every dimension at least 1; float64 values must fit
/// float32.
fn features(
    name: &str,
    a: &Array,
    task: Task,
) -> Result<(usize, usize, usize, Vec<f32>), LoadError> {
    if !a.dtype.is_float() {
        return Err(format!(
            "array {name:?} is {}; expected float32 or float64 features",
            a.dtype.name()
        ));
    }
    let (n, l, f) = match (task, a.shape.as_slice()) {
        (_, &[n, l, f]) => (n, l, f),
        (Task::Classification, &[n, f]) => (n, 1, f),
        _ => {
            let expected = match task {
                Task::Classification => "[N, L, F] (sequences) or [N, F] (one position each)",
                _ => "[N, L, F] (N sequences of L positions of F features)",
            };
            return Err(format!(
                "array {name:?} has shape {}; expected {expected}",
                shape_of(a)
            ));
        }
    };
    if n == 0 || l == 0 || f == 0 {
        return Err(format!(
            "array {name:?} has shape {}; expected every dimension at least 1",
            shape_of(a)
        ));
    }
    Ok((n, l, f, to_f32(name, a)?))
}

/// Float values as f32; a float64 value beyond f32's range is an error (never silently ∞).
fn to_f32(name: &str, a: &Array) -> Result<Vec<f32>, LoadError> {
    match &a.elems {
        Elems::F32(v) => Ok(v.clone()),
        Elems::F64(v) => v
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let y = x as f32;
                if x.is_finite() && !y.is_finite() {
                    Err(format!(
                        "array {name:?}: value {x:e} at flat index {i} does not fit float32 (the model's precision)"
                    ))
                } else {
                    Ok(y)
                }
            })
            .collect(),
        _ => Err(format!(
            "array {name:?} is {}; expected float32 or float64",
            a.dtype.name()
        )),
    }
}

/// Valid lengths from `lengths` [N] (integers in 1..=L) or `mask` [N, L] (bool or 0/1, each row
/// ones then zeros, at least one one).
fn lengths(
    arrays: &BTreeMap<String, Array>,
    suffix: &str,
    n: usize,
    l: usize,
) -> Result<Option<Vec<u32>>, LoadError> {
    let (ln, mn) = (format!("lengths{suffix}"), format!("mask{suffix}"));
    match (arrays.get(&ln), arrays.get(&mn)) {
        (Some(_), Some(_)) => Err(format!(
            "both {ln:?} and {mn:?} given; expected one way of marking padding"
        )),
        (Some(a), None) => {
            let Some(v) = a.to_i128() else {
                return Err(format!(
                    "array {ln:?} is {}; expected integer lengths",
                    a.dtype.name()
                ));
            };
            if a.shape != [n] {
                return Err(format!(
                    "array {ln:?} has shape {}; expected [{n}] (one length per sequence)",
                    shape_of(a)
                ));
            }
            v.iter()
                .enumerate()
                .map(|(r, &len)| {
                    if len < 1 || len > l as i128 {
                        Err(format!(
                            "array {ln:?}: sequence {r} has length {len}; expected 1..={l} (the padded length)"
                        ))
                    } else {
                        Ok(len as u32)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        (None, Some(a)) => {
            let Some(v) = a.to_i128() else {
                return Err(format!(
                    "array {mn:?} is {}; expected a bool (or 0/1 integer) mask",
                    a.dtype.name()
                ));
            };
            if a.shape != [n, l] {
                return Err(format!(
                    "array {mn:?} has shape {}; expected [{n}, {l}] (one flag per position)",
                    shape_of(a)
                ));
            }
            (0..n)
                .map(|r| {
                    let row = &v[r * l..(r + 1) * l];
                    if let Some(bad) = row.iter().find(|&&b| b != 0 && b != 1) {
                        return Err(format!("array {mn:?}: sequence {r} holds {bad}; expected 0 or 1"));
                    }
                    let len = row.iter().take_while(|&&b| b == 1).count();
                    if len == 0 || row[len..].contains(&1) {
                        return Err(format!(
                            "array {mn:?}: sequence {r} is not ones followed by zeros with at least one one; \
                             expected right padding (valid positions first)"
                        ));
                    }
                    Ok(len as u32)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// What reading a split needs to know.
#[derive(Debug, Clone, Copy)]
pub struct SplitSpec<'a> {
    /// The task.
    pub task: Task,
    /// `""` for the training arrays, `"_val"` for the validation ones.
    pub suffix: &'a str,
    /// Whether `y{suffix}` must be present and is read (training and evaluation), or is not
    /// read at all (inputs to predict).
    pub targets: bool,
}

/// The split of arrays `x{suffix}`, `y{suffix}`, `dt{suffix}`, `lengths{suffix}` / `mask{suffix}`,
/// or `None` when `x{suffix}` is absent (and nothing else of the split is there).
pub fn read_split(
    arrays: &BTreeMap<String, Array>,
    spec: SplitSpec<'_>,
) -> Result<Option<Split>, LoadError> {
    let s = spec.suffix;
    let name = |base: &str| format!("{base}{s}");
    let Some(xa) = arrays.get(&name("x")) else {
        for other in ["y", "dt", "lengths", "mask"] {
            if arrays.contains_key(&name(other)) {
                return Err(format!(
                    "array {:?} given without {:?}",
                    name(other),
                    name("x")
                ));
            }
        }
        return Ok(None);
    };
    let xn = name("x");
    let (n, l, f, x) = features(&xn, xa, spec.task)?;
    let lengths = lengths(arrays, s, n, l)?;
    let len_of = |r: usize| lengths.as_ref().map_or(l, |v| v[r] as usize);
    check_finite(&xn, &x, n, l, f, &len_of)?;
    let spans = match arrays.get(&name("dt")) {
        None => None,
        Some(a) => {
            let dn = name("dt");
            if a.shape != [n, l] {
                return Err(format!(
                    "array {dn:?} has shape {}; expected [{n}, {l}] (one time span per position)",
                    shape_of(a)
                ));
            }
            let v = to_f32(&dn, a)?;
            check_finite(&dn, &v, n, l, 1, &len_of)?;
            for r in 0..n {
                if let Some(t) = (0..len_of(r)).find(|&t| v[r * l + t] < 0.0) {
                    return Err(format!(
                        "array {dn:?}: sequence {r}, position {t} is {}; expected time spans >= 0",
                        v[r * l + t]
                    ));
                }
            }
            Some(v)
        }
    };
    let y = match arrays.get(&name("y")) {
        // Inputs to predict: the targets, if the file has them, are not read.
        _ if !spec.targets => None,
        None => {
            return Err(format!(
                "array {:?} is missing; expected the targets beside {xn:?}",
                name("y")
            ))
        }
        Some(a) => Some(targets(&name("y"), a, spec.task, n, l, &len_of)?),
    };
    Ok(Some(Split {
        n,
        l,
        f,
        x,
        y,
        spans,
        lengths,
    }))
}

/// NaN or infinity at a valid position of `v` [N, L, W] is an error naming the first one.
fn check_finite(
    name: &str,
    v: &[f32],
    n: usize,
    l: usize,
    w: usize,
    len_of: &dyn Fn(usize) -> usize,
) -> Result<(), LoadError> {
    for r in 0..n {
        let row = &v[r * l * w..(r * l + len_of(r)) * w];
        if let Some(i) = row.iter().position(|x| !x.is_finite()) {
            let count = (0..n)
                .map(|q| {
                    v[q * l * w..(q * l + len_of(q)) * w]
                        .iter()
                        .filter(|x| !x.is_finite())
                        .count()
                })
                .sum::<usize>();
            return Err(format!(
                "array {name:?} holds {count} non-finite values (NaN or infinity) at valid positions, \
                 the first in sequence {r}, position {}; expected finite numbers",
                i / w
            ));
        }
    }
    Ok(())
}

/// Targets `y`: regression floats [N, L, F_out] (or [N, L], one output); classification integer
/// class ids [N], non-negative.
fn targets(
    name: &str,
    a: &Array,
    task: Task,
    n: usize,
    l: usize,
    len_of: &dyn Fn(usize) -> usize,
) -> Result<SplitTargets, LoadError> {
    match task {
        Task::Classification => {
            let ints = match (&a.elems, a.to_i128()) {
                (Elems::Bool(_), _) | (_, None) => {
                    return Err(format!(
                        "array {name:?} is {}; expected integer class ids (any signed or unsigned width)",
                        a.dtype.name()
                    ))
                }
                (_, Some(v)) => v,
            };
            if a.shape != [n] {
                return Err(format!(
                    "array {name:?} has shape {}; expected [{n}] (one class id per sequence)",
                    shape_of(a)
                ));
            }
            ints.iter()
                .enumerate()
                .map(|(r, &c)| {
                    if c < 0 || c > u32::MAX as i128 {
                        Err(format!(
                            "array {name:?}: sequence {r} has class {c}; expected a class id >= 0"
                        ))
                    } else {
                        Ok(c as u32)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(SplitTargets::Classes)
        }
        _ => {
            let width = match *a.shape.as_slice() {
                [an, al, w] if an == n && al == l && w > 0 => w,
                [an, al] if an == n && al == l => 1,
                _ => {
                    return Err(format!(
                        "array {name:?} has shape {}; expected [{n}, {l}, F_out] (or [{n}, {l}]) to match x",
                        shape_of(a)
                    ))
                }
            };
            if !a.dtype.is_float() {
                return Err(format!(
                    "array {name:?} is {}; expected float32 or float64 regression targets",
                    a.dtype.name()
                ));
            }
            let data = to_f32(name, a)?;
            check_finite(name, &data, n, l, width, len_of)?;
            Ok(SplitTargets::Values { data, width })
        }
    }
}
