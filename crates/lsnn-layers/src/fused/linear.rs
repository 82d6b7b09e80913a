//! y = x·Wᵀ + b with W [out, in] (PyTorch's layout) over any leading dimensions, as one CPU op:
//! one gemm with the bias pre-filled in the output, so the graph keeps no separate matmul result;
//! backward is two gemm calls on the slices. Reference: [`super::reference::linear`].

use candle_core::{Shape, Tensor};

/// x·Wᵀ + b for x `[.., in]`, W `[out, in]`, b `[out]` — the fused op on the CPU (f32/f64, matching
/// dtypes, contiguous parameters), else [`super::reference::linear`].
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    let (_, in_dim) = w.dims2()?;
    let fused = crate::kernel::fused_available(x)
        && x.dtype() == w.dtype()
        && w.is_contiguous()
        && b.is_contiguous();
    if !fused {
        return super::reference::linear(x, w, b);
    }
    if x.dims().last() != Some(&in_dim) {
        candle_core::bail!(
            "linear input: expected shape [.., {in_dim}], got {:?}",
            x.dims()
        );
    }
    // The op takes x with its leading dimensions as they are: a reshape to a matrix and back
    // would be two more graph nodes, each a zero-filled gradient and an add in backward. It
    // keeps the precision in force now, so its backward runs in the same one.
    let bf16 = crate::kernel::matmul_precision() == crate::kernel::MatmulPrecision::Bf16;
    x.contiguous()?.apply_op3(w, b, LinearOp { bf16 })
}

/// `dims` with its last dimension (the caller has checked there is one) replaced by `last`.
fn with_last(dims: &[usize], last: usize) -> Shape {
    let mut d = dims.to_vec();
    if let Some(l) = d.last_mut() {
        *l = last;
    }
    Shape::from(d)
}

/// The row count and width of a tensor read as a matrix [Π leading dims, last dim], or an
/// error naming `what` for a scalar.
fn rows_cols(l: &candle_core::Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    match l.dims().split_last() {
        Some((&last, lead)) => Ok((lead.iter().product(), last)),
        None => candle_core::bail!("{what}: expected [.., d], got a scalar"),
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
/// call on the slices (no transposed copies, no candle reduction). With `bf16` (f32 only) the
/// three products round their operands to bf16 and sum in f32 (design §9.5).
#[derive(Debug, Clone, Copy)]
struct LinearOp {
    bf16: bool,
}

fn linear_kernel<T: candle_core::WithDType>(
    bf16: bool,
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
    crate::kernel::matmul_in(
        bf16,
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
    bf16: bool,
    dy: &[T],
    x: &[T],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let mut out = vec![T::zero(); n * k + n];
    let (dw, db) = out.split_at_mut(n * k);
    // dyᵀ [n, m]: row stride 1, column stride n.
    crate::kernel::matmul_in(
        bf16,
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
    bf16: bool,
    dy: &[T],
    w: &[T],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<T> {
    let mut dx = vec![T::zero(); m * k];
    crate::kernel::matmul_in(
        bf16,
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
        let (m, k) = rows_cols(l1, "linear: x")?;
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
            self.bf16,
            cs(s1, l1, "linear: x")?,
            cs(s2, l2, "linear: weight")?,
            cs(s3, l3, "linear: bias")?,
            m,
            k,
            n,
        ));
        Ok((out, with_last(l1.dims(), n)))
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
        let grad = |part| LinearGradOp {
            part,
            bf16: self.bf16,
        };
        let dx = dy.apply_op2_no_bwd(w, &grad(GradPart::Input))?;
        let packed = dy.apply_op2_no_bwd(x, &grad(GradPart::Params))?;
        let dw = packed.narrow(0, 0, n * k)?.reshape((n, k))?;
        let db = packed.narrow(0, n * k, n)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Backward of [`LinearOp`], one gemm each (in bf16 where forward was), with m the product of
/// the leading dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinearGradOp {
    part: GradPart,
    bf16: bool,
}

/// Which gradient: `Input` maps (dy [.., n], W [n, k]) to dx [.., k]; `Params` maps
/// (dy [.., n], x [.., k]) to [dW (n·k) | db (n)].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GradPart {
    Input,
    Params,
}

impl candle_core::CustomOp2 for LinearGradOp {
    fn name(&self) -> &'static str {
        match self.part {
            GradPart::Input => "linear-dx",
            GradPart::Params => "linear-dw",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, Shape)> {
        let (m, n) = rows_cols(l1, "linear grad: dy")?;
        let (rows, k) = match self.part {
            GradPart::Input => l2.shape().dims2()?,
            GradPart::Params => rows_cols(l2, "linear grad: x")?,
        };
        // W has a row per output (n), x a row per input row (m).
        let want = match self.part {
            GradPart::Input => n,
            GradPart::Params => m,
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
            match self.part {
                GradPart::Input => linear_dx_kernel::<T>(self.bf16, dy, other, m, k, n),
                GradPart::Params => linear_dw_kernel::<T>(self.bf16, dy, other, m, k, n),
            }
        });
        let shape = match self.part {
            GradPart::Input => with_last(l1.dims(), k),
            GradPart::Params => Shape::from(n * k + n),
        };
        Ok((out, shape))
    }
}
