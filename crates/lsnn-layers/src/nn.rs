//! Building blocks shared by the layers: train/eval [`Mode`] with the seeded generator, a
//! PyTorch-layout [`Linear`], a differentiable [`LayerNorm`] (candle-nn's passes no gradient,
//! SPEC §3.9; the kernels are in [`crate::fused`]), inverted dropout, and [`SeededInit`], a
//! `VarBuilder` backend that creates trainable variables from the project's seeded generator.

use crate::error::{LayerError, Result};
use crate::rng::SeededRng;
use candle_core::{DType, Device, Module, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use std::sync::Mutex;

/// Evaluation, or training with the generator that draws dropout masks.
#[derive(Debug)]
pub enum Mode<'a> {
    /// No dropout.
    Eval,
    /// Dropout on, masks from this generator.
    Train(&'a mut SeededRng),
}

impl Mode<'_> {
    /// True in training mode.
    pub fn is_train(&self) -> bool {
        matches!(self, Mode::Train(_))
    }
}

/// Inverted dropout with probability `p` in training mode (the fused op of
/// [`crate::fused::dropout`], a bit mask per element); the identity in evaluation mode.
pub fn dropout(x: &Tensor, p: f64, mode: &mut Mode<'_>) -> Result<Tensor> {
    match mode {
        Mode::Train(rng) if p > 0.0 => Ok(crate::fused::dropout(x, p, rng)?),
        _ => Ok(x.clone()),
    }
}

/// y = x·Wᵀ + b with W [out, in] (PyTorch's layout), over any leading dimensions.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    /// A linear layer with PyTorch's default initialisation U(−1/√in, 1/√in).
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let b = 1.0 / (in_dim as f64).sqrt();
        Self::with_init(in_dim, out_dim, Init::Uniform { lo: -b, up: b }, vb)
    }

    /// A linear layer whose weight is initialised Xavier-uniform (ncps' CfC) and bias as
    /// PyTorch's default.
    pub fn xavier(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Self> {
        let a = (6.0 / (in_dim + out_dim) as f64).sqrt();
        let weight =
            vb.get_with_hints((out_dim, in_dim), "weight", Init::Uniform { lo: -a, up: a })?;
        let b = 1.0 / (in_dim as f64).sqrt();
        let bias = vb.get_with_hints(out_dim, "bias", Init::Uniform { lo: -b, up: b })?;
        Ok(Linear { weight, bias })
    }

    fn with_init(in_dim: usize, out_dim: usize, init: Init, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints((out_dim, in_dim), "weight", init)?;
        let bias = vb.get_with_hints(out_dim, "bias", init)?;
        Ok(Linear { weight, bias })
    }

    /// The weight [out, in].
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias [out].
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The same layer with its parameters detached from autograd (sharing their storage): ops
    /// on it build no graph, for inference.
    pub fn detached(&self) -> Self {
        Linear {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
        }
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Linear {
    /// x·Wᵀ + b as two candle ops (matmul, then a broadcast add): the path on devices without the
    /// fused kernel, and the reference the fused one is tested against.
    pub fn forward_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (x2, lead) = as_matrix(x, self.in_dim(), "linear input")?;
        let y = x2.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        y.reshape([lead, vec![self.out_dim()]].concat())
    }
}

/// x [.., in] as a matrix [Π leading dims, in] and the leading dims, or an error naming `what`
/// when x is a scalar or its last dimension is not `in_dim`.
pub(crate) fn as_matrix(
    x: &Tensor,
    in_dim: usize,
    what: &str,
) -> candle_core::Result<(Tensor, Vec<usize>)> {
    match x.dims().split_last() {
        Some((&last, lead)) if last == in_dim => Ok((
            x.reshape((lead.iter().product::<usize>(), in_dim))?,
            lead.to_vec(),
        )),
        _ => candle_core::bail!("{what}: expected shape [.., {in_dim}], got {:?}", x.dims()),
    }
}

/// y = x·Wᵀ + b as one CPU custom op: one gemm with the bias pre-filled in the output, so the
/// graph keeps no separate matmul result (less memory, one op fewer); backward
/// dx = dy·W and dW = dyᵀ·x with db = Σ_rows dy ([`LinearGradOp`]), each one gemm
/// call on the slices (no transposed copies, no candle reduction).
#[derive(Debug, Clone, Copy)]
struct LinearOp;

fn linear_kernel<T: candle_core::WithDType>(
    x: &[T],
    w: &[T],
    b: &[T],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let mut dst = Vec::with_capacity(m * n);
    for _ in 0..m {
        dst.extend_from_slice(b);
    }
    // x is [m, k] row-major; w is [n, k] row-major, so wᵀ [k, n] has row stride 1, column k.
    crate::kernel::matmul(
        crate::kernel::Gemm { m, n, k },
        &mut dst,
        true,
        (x, k, 1),
        (w, 1, k),
        true,
    );
    dst
}

/// Packed [n·k + n]: dW = dyᵀ·x [n, k], then db = Σ_rows dy [n].
fn linear_dw_kernel<T: candle_core::WithDType>(
    dy: &[T],
    x: &[T],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); n * k + n];
    let (dw, db) = out.split_at_mut(n * k);
    // dyᵀ [n, m]: row stride 1, column stride n.
    crate::kernel::matmul(
        crate::kernel::Gemm { m: n, n: k, k: m },
        dw,
        false,
        (dy, 1, n),
        (x, k, 1),
        true,
    );
    for row in dy.chunks_exact(n.max(1)) {
        for (a, &v) in db.iter_mut().zip(row) {
            *a += v;
        }
    }
    out
}

/// dx = dy·W [m, k].
fn linear_dx_kernel<T: candle_core::WithDType>(
    dy: &[T],
    w: &[T],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let mut dx = vec![T::zero(); m * k];
    crate::kernel::matmul(
        crate::kernel::Gemm { m, n: k, k: n },
        &mut dx,
        false,
        (dy, n, 1),
        (w, k, 1),
        true,
    );
    dx
}

impl candle_core::CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
        s3: &candle_core::CpuStorage,
        l3: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 || l3.shape().elem_count() != n {
            candle_core::bail!(
                "linear: x {:?}, w {:?}, b {:?} do not fit",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        use crate::kernel::contiguous_slice as cs;
        let dt = candle_core::backend::BackendStorage::dtype(s1);
        let out = crate::kernel::float_kernel!("linear", dt, |T| linear_kernel::<T>(
            cs(s1, l1, "linear: x")?,
            cs(s2, l2, "linear: weight")?,
            cs(s3, l3, "linear: bias")?,
            m,
            k,
            n,
        ));
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, k) = w.dims2()?;
        let dy = dy.contiguous()?;
        let dx = dy.apply_op2_no_bwd(w, &LinearGradOp::Input)?;
        let packed = dy.apply_op2_no_bwd(x, &LinearGradOp::Params)?;
        let dw = packed.narrow(0, 0, n * k)?.reshape((n, k))?;
        let db = packed.narrow(0, n * k, n)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward of [`LinearOp`], one gemm each: `Input` maps (dy [m, n], W [n, k]) to dx [m, k];
/// `Params` maps (dy [m, n], x [m, k]) to [dW (n·k) | db (n)].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinearGradOp {
    Input,
    Params,
}

impl candle_core::CustomOp2 for LinearGradOp {
    fn name(&self) -> &'static str {
        match self {
            LinearGradOp::Input => "linear-dx",
            LinearGradOp::Params => "linear-dw",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let (m, n) = l1.shape().dims2()?;
        let (rows, k) = l2.shape().dims2()?;
        // W has a row per output (n), x a row per input row (m).
        let want = match self {
            LinearGradOp::Input => n,
            LinearGradOp::Params => m,
        };
        if rows != want {
            candle_core::bail!(
                "{}: dy {:?} and {:?} do not fit",
                self.name(),
                l1.dims(),
                l2.dims()
            );
        }
        use crate::kernel::contiguous_slice as cs;
        let dt = candle_core::backend::BackendStorage::dtype(s1);
        let out = crate::kernel::float_kernel!(self.name(), dt, |T| {
            let (dy, other) = (cs(s1, l1, "linear grad: dy")?, cs(s2, l2, "linear grad")?);
            match self {
                LinearGradOp::Input => linear_dx_kernel::<T>(dy, other, m, k, n),
                LinearGradOp::Params => linear_dw_kernel::<T>(dy, other, m, k, n),
            }
        });
        let shape = match self {
            LinearGradOp::Input => Shape::from((m, k)),
            LinearGradOp::Params => Shape::from(n * k + n),
        };
        Ok((out, shape))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let fused = x.device().is_cpu()
            && matches!(x.dtype(), DType::F32 | DType::F64)
            && x.dtype() == self.weight.dtype()
            && self.weight.is_contiguous()
            && self.bias.is_contiguous();
        if !fused {
            return self.forward_composed(x);
        }
        let (x2, lead) = as_matrix(x, self.in_dim(), "linear input")?;
        let y = x2
            .contiguous()?
            .apply_op3(&self.weight, &self.bias, LinearOp)?;
        y.reshape([lead, vec![self.out_dim()]].concat())
    }
}

/// LayerNorm over the last dimension with biased variance and a real backward.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Weight 1, bias 0.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", Init::Const(1.0))?;
        let bias = vb.get_with_hints(dim, "bias", Init::Const(0.0))?;
        Ok(LayerNorm { weight, bias, eps })
    }

    /// The scale.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The same layer with detached parameters (see [`Linear::detached`]).
    pub fn detached(&self) -> Self {
        LayerNorm {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            eps: self.eps,
        }
    }

    /// The shift.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// ε.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// This LayerNorm, alone or with exact GELU as `act` says, then dropout with probability `p`
    /// in training mode, as one op ([`crate::fused::norm_act`]).
    pub fn with_act(
        &self,
        x: &Tensor,
        act: crate::fused::NormAct,
        p: f64,
        mode: &mut Mode<'_>,
    ) -> Result<Tensor> {
        let drop = match mode {
            Mode::Train(rng) if p > 0.0 => Some((p, &mut **rng)),
            _ => None,
        };
        Ok(crate::fused::norm_act(
            x,
            &self.weight,
            &self.bias,
            self.eps,
            act,
            drop,
        )?)
    }

    /// The same normalisation composed from candle ops (the reference of the fused op).
    pub fn forward_composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::fused::layer_norm_composed(x, &self.weight, &self.bias, self.eps)
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        crate::fused::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// Checks that `x` has `rank` dimensions with the last one equal to `width`.
pub fn check_width(x: &Tensor, what: &'static str, rank: usize, width: usize) -> Result<()> {
    if x.rank() != rank || x.dims()[rank - 1] != width {
        return Err(LayerError::Shape {
            what,
            expected: format!("rank {rank} with last dimension {width}"),
            actual: x.dims().to_vec(),
        });
    }
    Ok(())
}

/// Fails with [`LayerError::NonFinite`] if `x` holds NaN or infinity.
pub fn check_finite(x: &Tensor, what: &'static str) -> Result<()> {
    if !x.dtype().is_float() {
        return Ok(());
    }
    let v = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let count = v.iter().filter(|f| !f.is_finite()).count();
    if count > 0 {
        return Err(LayerError::NonFinite { what, count });
    }
    Ok(())
}

/// A `VarBuilder` backend creating trainable [`Var`]s, initialised from a [`SeededRng`] by the
/// requested [`Init`], and registering them in a [`VarMap`] under their full names.
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
        let t = match h {
            Init::Const(c) => Tensor::full(c, s, dev)?.to_dtype(dtype)?,
            Init::Uniform { lo, up } => rng.uniform_tensor(s, lo, up, dtype, dev)?,
            Init::Randn { mean, stdev } => rng.normal_tensor(s, mean, stdev, dtype, dev)?,
            Init::Kaiming { .. } => {
                candle_core::bail!("parameter {name}: Kaiming init is not used by lsnn")
            }
        };
        let v = Var::from_tensor(&t)?;
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
