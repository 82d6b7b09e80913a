//! The checkpoint's tensor names (design §4.2), in one place: `model.safetensors` and `ema.safetensors` hold
//! every trainable variable under its own name; `optimizer.safetensors` holds AdamW's moments as
//! `m.<name>` and `v.<name>`, AMSGrad's maxima as `vmax.<name>`, and — only while an
//! accumulation window is open — the gradient accumulated so far as `acc.<name>`. On load
//! every expected tensor must be present with its variable's shape, in f32, and nothing else.

use crate::error::{Result, TrainError};
use crate::optim::{AdamW, Ema};
use candle_core::{DType, Device, Tensor, Var};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// The model file's tensors: every variable under its name.
pub fn model_tensors(vars: &[(String, Var)]) -> BTreeMap<String, Tensor> {
    vars.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

/// The optimizer file's tensors: AdamW's state and, for an open window, the accumulated
/// gradient of every variable (zeros for one that has received none yet, so that a load can
/// insist on the complete set).
pub fn optimizer_tensors(
    opt: &AdamW,
    acc: Option<&BTreeMap<String, Tensor>>,
    vars: &[(String, Var)],
) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    for (name, st) in opt.states() {
        out.insert(format!("m.{name}"), st.m.clone());
        out.insert(format!("v.{name}"), st.v.clone());
        if let Some(vm) = &st.vmax {
            out.insert(format!("vmax.{name}"), vm.clone());
        }
    }
    if let Some(acc) = acc {
        for (name, var) in vars {
            let a = match acc.get(name) {
                Some(a) => a.clone(),
                None => var.as_tensor().zeros_like()?.detach(),
            };
            out.insert(format!("acc.{name}"), a);
        }
    }
    Ok(out)
}

/// `got[key]` checked against `var` (shape, f32) and moved to `device`.
fn take(
    path: &Path,
    got: &HashMap<String, Tensor>,
    key: &str,
    var: &Var,
    device: &Device,
) -> Result<Tensor> {
    check_one(path, got, key, var)?;
    Ok(got[key].to_device(device)?)
}

/// The keys of `got` that are not in `expected`, as an error naming them.
fn no_unknown(
    path: &Path,
    got: &HashMap<String, Tensor>,
    expected: &HashSet<String>,
) -> Result<()> {
    let mut unknown: Vec<&String> = got.keys().filter(|k| !expected.contains(*k)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(TrainError::ckpt(
        path,
        format!("unknown tensors {unknown:?}"),
    ))
}

/// Every variable's tensor from a model (or EMA) file, checked (see the module docs).
pub fn weights(
    path: &Path,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
    device: &Device,
) -> Result<Vec<Tensor>> {
    let out = vars
        .iter()
        .map(|(n, v)| take(path, got, n, v, device))
        .collect::<Result<Vec<_>>>()?;
    no_unknown(path, got, &vars.iter().map(|(n, _)| n.clone()).collect())?;
    Ok(out)
}

/// Sets every variable from a model file.
pub fn restore_model(
    path: &Path,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
) -> Result<()> {
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    for ((_, var), t) in vars.iter().zip(weights(path, vars, got, &device)?) {
        var.set(&t)?;
    }
    Ok(())
}

/// Restores the EMA from an EMA file.
pub fn restore_ema(
    path: &Path,
    ema: &mut Ema,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
) -> Result<()> {
    let device = vars
        .first()
        .map(|(_, v)| v.device().clone())
        .unwrap_or(Device::Cpu);
    for ((name, _), t) in vars.iter().zip(weights(path, vars, got, &device)?) {
        ema.restore(name, &t)?;
    }
    Ok(())
}

/// Checks an optimizer file's tensors as [`restore_optimizer`] would take them, without an
/// optimizer to restore into (a loader for inference verifies the whole set as resume does).
pub fn check_optimizer(
    path: &Path,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
    amsgrad: bool,
    open_window: bool,
) -> Result<()> {
    let mut expected = HashSet::new();
    for (name, var) in vars {
        let mut kinds = vec!["m", "v"];
        if amsgrad {
            kinds.push("vmax");
        }
        if open_window {
            kinds.push("acc");
        }
        for k in kinds {
            let key = format!("{k}.{name}");
            check_one(path, got, &key, var)?;
            expected.insert(key);
        }
    }
    no_unknown(path, got, &expected)
}

/// `got[key]` present with `var`'s shape, in f32.
fn check_one(path: &Path, got: &HashMap<String, Tensor>, key: &str, var: &Var) -> Result<()> {
    let t = got
        .get(key)
        .ok_or_else(|| TrainError::ckpt(path, format!("missing tensor {key}")))?;
    if t.dims() != var.dims() {
        return Err(TrainError::ckpt(
            path,
            format!("{key} has shape {:?}, expected {:?}", t.dims(), var.dims()),
        ));
    }
    if t.dtype() != DType::F32 {
        return Err(TrainError::ckpt(
            path,
            format!("{key} is {:?}, expected f32", t.dtype()),
        ));
    }
    Ok(())
}

/// Checks a model or EMA file's tensors as [`weights`] would take them, without moving them.
pub fn check_weights(
    path: &Path,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
) -> Result<()> {
    for (n, v) in vars {
        check_one(path, got, n, v)?;
    }
    no_unknown(path, got, &vars.iter().map(|(n, _)| n.clone()).collect())
}

/// Restores AdamW's state (`amsgrad` says whether `vmax.*` must be there) and, when
/// `open_window`, returns the accumulated gradients (`acc.*`, all required); without an open
/// window an `acc.*` tensor is an error.
pub fn restore_optimizer(
    path: &Path,
    opt: &mut AdamW,
    vars: &[(String, Var)],
    got: &HashMap<String, Tensor>,
    amsgrad: bool,
    open_window: bool,
) -> Result<BTreeMap<String, Tensor>> {
    let mut expected = HashSet::new();
    let mut acc = BTreeMap::new();
    for (name, var) in vars {
        let device = var.device();
        let key = |p: &str| format!("{p}.{name}");
        let m = take(path, got, &key("m"), var, device)?;
        let v = take(path, got, &key("v"), var, device)?;
        expected.extend([key("m"), key("v")]);
        let vmax = if amsgrad {
            expected.insert(key("vmax"));
            Some(take(path, got, &key("vmax"), var, device)?)
        } else {
            None
        };
        opt.restore(name, &m, &v, vmax.as_ref())?;
        if open_window {
            expected.insert(key("acc"));
            let a = take(path, got, &key("acc"), var, device)?;
            acc.insert(name.clone(), a.force_contiguous()?.detach());
        }
    }
    no_unknown(path, got, &expected)?;
    Ok(acc)
}
