//! Budgeted tensor constructors: compute the result's byte size first and answer a request the
//! budget cannot hold with [`MemoryError::BudgetExceeded`] instead of aborting the process.

use crate::error::{MemoryError, Result};
use crate::manager::MemoryManager;
use candle_core::{DType, Device, Shape, Tensor};

/// Bytes of a `dims`-shaped tensor of `dtype`, with overflow reported as an error.
pub fn byte_size(what: &'static str, dims: &[usize], dtype: DType) -> Result<u64> {
    let overflow = || MemoryError::SizeOverflow {
        what,
        shape: dims.to_vec(),
        dtype_bytes: dtype.size_in_bytes(),
    };
    let mut n: u64 = dtype.size_in_bytes() as u64;
    for &d in dims {
        n = n.checked_mul(d as u64).ok_or_else(overflow)?;
    }
    Ok(n)
}

/// A zero tensor, if the budget holds it.
pub fn safe_zeros<S: Into<Shape>>(
    manager: &MemoryManager,
    shape: S,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    manager.ensure_fits("safe_zeros", byte_size("safe_zeros", shape.dims(), dtype)?)?;
    Ok(Tensor::zeros(shape, dtype, device)?)
}

/// A tensor of ones, if the budget holds it.
pub fn safe_ones<S: Into<Shape>>(
    manager: &MemoryManager,
    shape: S,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let shape = shape.into();
    manager.ensure_fits("safe_ones", byte_size("safe_ones", shape.dims(), dtype)?)?;
    Ok(Tensor::ones(shape, dtype, device)?)
}

fn check_common<T: AsRef<Tensor>>(op: &'static str, tensors: &[T]) -> Result<()> {
    let Some(first) = tensors.first() else {
        return Err(MemoryError::Shape {
            op,
            message: "no tensors given; expected at least one".into(),
        });
    };
    let first = first.as_ref();
    for (i, t) in tensors.iter().enumerate().skip(1) {
        let t = t.as_ref();
        if t.dtype() != first.dtype() {
            return Err(MemoryError::Shape {
                op,
                message: format!(
                    "tensor {i} has dtype {:?}, expected {:?} like tensor 0",
                    t.dtype(),
                    first.dtype()
                ),
            });
        }
        if !t.device().same_device(first.device()) {
            return Err(MemoryError::Shape {
                op,
                message: format!(
                    "tensor {i} is on {:?}, expected {:?} like tensor 0",
                    t.device().location(),
                    first.device().location()
                ),
            });
        }
        if t.rank() != first.rank() {
            return Err(MemoryError::Shape {
                op,
                message: format!(
                    "tensor {i} has rank {} (shape {:?}), expected rank {} like tensor 0 {:?}",
                    t.rank(),
                    t.dims(),
                    first.rank(),
                    first.dims()
                ),
            });
        }
    }
    Ok(())
}

/// Concatenates `tensors` along `dim`, if the budget holds the result.
pub fn safe_cat<T: AsRef<Tensor>>(
    manager: &MemoryManager,
    tensors: &[T],
    dim: usize,
) -> Result<Tensor> {
    const OP: &str = "safe_cat";
    check_common(OP, tensors)?;
    let first = tensors[0].as_ref();
    if dim >= first.rank() {
        return Err(MemoryError::Shape {
            op: OP,
            message: format!(
                "dim {dim} out of range for rank {} (shape {:?}); expected dim < {}",
                first.rank(),
                first.dims(),
                first.rank()
            ),
        });
    }
    let mut dims = first.dims().to_vec();
    dims[dim] = 0;
    for (i, t) in tensors.iter().enumerate() {
        let t = t.as_ref();
        for (k, (&a, &b)) in t.dims().iter().zip(first.dims()).enumerate() {
            if k != dim && a != b {
                return Err(MemoryError::Shape {
                    op: OP,
                    message: format!(
                        "tensor {i} has shape {:?}, expected {:?} outside dim {dim}",
                        t.dims(),
                        first.dims()
                    ),
                });
            }
        }
        dims[dim] =
            dims[dim]
                .checked_add(t.dims()[dim])
                .ok_or_else(|| MemoryError::SizeOverflow {
                    what: OP,
                    shape: t.dims().to_vec(),
                    dtype_bytes: t.dtype().size_in_bytes(),
                })?;
    }
    manager.ensure_fits(OP, byte_size(OP, &dims, first.dtype())?)?;
    Ok(Tensor::cat(tensors, dim)?)
}

/// Stacks `tensors` along a new dimension `dim`, if the budget holds the result.
pub fn safe_stack<T: AsRef<Tensor>>(
    manager: &MemoryManager,
    tensors: &[T],
    dim: usize,
) -> Result<Tensor> {
    const OP: &str = "safe_stack";
    check_common(OP, tensors)?;
    let first = tensors[0].as_ref();
    if dim > first.rank() {
        return Err(MemoryError::Shape {
            op: OP,
            message: format!(
                "dim {dim} out of range for stacking rank-{} tensors; expected dim <= {}",
                first.rank(),
                first.rank()
            ),
        });
    }
    for (i, t) in tensors.iter().enumerate() {
        let t = t.as_ref();
        if t.dims() != first.dims() {
            return Err(MemoryError::Shape {
                op: OP,
                message: format!(
                    "tensor {i} has shape {:?}, expected {:?} like tensor 0",
                    t.dims(),
                    first.dims()
                ),
            });
        }
    }
    let mut dims = first.dims().to_vec();
    dims.insert(dim, tensors.len());
    manager.ensure_fits(OP, byte_size(OP, &dims, first.dtype())?)?;
    Ok(Tensor::stack(tensors, dim)?)
}
