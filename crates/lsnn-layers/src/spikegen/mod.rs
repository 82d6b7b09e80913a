//! Spike encoders (snnTorch `spikegen`; design §2.8): static or analog data turned into spike
//! trains with time as the leading axis — [`rate`] (Bernoulli draws from the project's seeded
//! generator), [`latency`] (one spike per element, earlier for larger values; logarithmic or
//! linear), [`delta`] (a spike where the signal changed by at least a threshold).
//!
//! They are data preparation, not layers: no gradient flows through them, and they compute on
//! the host in f64 and return a tensor of the input's dtype on the input's device. Where
//! snnTorch silently clamps (rate probabilities outside [0, 1]) these refuse with a typed error
//! unless asked to saturate.

mod delta;
mod encoding;
mod latency;
mod rate;

pub use delta::{delta, DeltaConfig};
pub use encoding::SpikeEncoding;
pub use latency::{latency, LatencyConfig};
pub use rate::{rate, rate_from_uniform, RateConfig};

use crate::error::{LayerError, Result};
use candle_core::{DType, Tensor};

/// The elements of `t` in f64, row-major.
fn host(t: &Tensor, what: &str) -> Result<Vec<f64>> {
    match t.dtype() {
        DType::F32 | DType::F64 | DType::BF16 | DType::F16 => {}
        dt => {
            return Err(LayerError::config(
                what,
                format!("dtype {dt:?}; expected a floating-point tensor"),
            ))
        }
    }
    let v = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(LayerError::config(
            what,
            format!("element {i} is {}; expected finite values", v[i]),
        ));
    }
    Ok(v)
}

/// `values` as a tensor of `dims` with `like`'s dtype and device.
fn back(values: Vec<f64>, dims: &[usize], like: &Tensor) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, dims, &candle_core::Device::Cpu)?
        .to_dtype(like.dtype())?
        .to_device(like.device())?)
}

/// `[steps, dims...]`, checked.
fn with_steps(steps: usize, dims: &[usize]) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(dims.len() + 1);
    out.push(steps);
    out.extend_from_slice(dims);
    let total = out
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= 1 << 40);
    match total {
        Some(_) => Ok(out),
        None => Err(LayerError::config(
            "num_steps",
            format!("{steps} steps of {dims:?} is too many elements; expected at most 2^40"),
        )),
    }
}
