//! [`SeededInit`]: a `VarBuilder` backend creating trainable [`Var`]s from the project's seeded
//! generator (candle's CPU generator cannot be seeded, design §6) for every [`Init`] candle-nn
//! asks for, so lsnn layers and candle-nn layers (whose `linear` asks for Kaiming) share one
//! builder and one `VarMap`.

use crate::rng::SeededRng;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use std::sync::Mutex;

/// A `VarBuilder` backend creating trainable [`Var`]s, initialised from a [`SeededRng`] by the
/// requested [`Init`], and registering them in a [`VarMap`] under their full names. A name the
/// map already holds is returned as it is (its shape must match).
pub struct SeededInit {
    varmap: VarMap,
    rng: Mutex<SeededRng>,
}

impl std::fmt::Debug for SeededInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededInit").finish_non_exhaustive()
    }
}

impl SeededInit {
    /// A `VarBuilder` that fills `varmap` from `rng`.
    pub fn var_builder(
        varmap: &VarMap,
        rng: SeededRng,
        dtype: DType,
        device: &Device,
    ) -> VarBuilder<'static> {
        VarBuilder::from_backend(
            Box::new(SeededInit {
                varmap: varmap.clone(),
                rng: Mutex::new(rng),
            }),
            dtype,
            device.clone(),
        )
    }
}

/// The initial values `init` asks for, drawn from `rng`. Kaiming follows PyTorch (and
/// candle-nn): std = gain / √fan, normal N(0, std²) or uniform U(−√3·std, √3·std).
fn draw(
    rng: &mut SeededRng,
    init: Init,
    s: Shape,
    dtype: DType,
    dev: &Device,
) -> candle_core::Result<Tensor> {
    match init {
        Init::Const(c) => Tensor::full(c, s, dev)?.to_dtype(dtype),
        Init::Uniform { lo, up } => rng.uniform_tensor(s, lo, up, dtype, dev),
        Init::Randn { mean, stdev } => rng.normal_tensor(s, mean, stdev, dtype, dev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(&s).max(1) as f64).sqrt();
            match dist {
                NormalOrUniform::Normal => rng.normal_tensor(s, 0.0, std, dtype, dev),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    rng.uniform_tensor(s, -bound, bound, dtype, dev)
                }
            }
        }
    }
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut map = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = map.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "parameter {name} requested as {s:?} but exists as {:?}",
                    v.shape()
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let v = Var::from_tensor(&draw(&mut rng, h, s, dtype, dev)?)?;
        let out = v.as_tensor().clone();
        map.insert(name.to_owned(), v);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let map = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        match map.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} does not exist"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|m| m.contains_key(name))
            .unwrap_or(false)
    }
}
