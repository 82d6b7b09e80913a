//! Reusable accumulators: a pool of zeroed tensors keyed by (shape, dtype, device).
//!
//! [`AccumulatorPool::acquire`] hands out a zeroed tensor — a recycled one when an idle buffer of the
//! same key exists, zeroed in place, else a fresh one — and the [`PooledTensor`] handle puts it back
//! when dropped. After the first call for a key, acquire/release cycles allocate nothing.
//!
//! **Contract (design §7):** pooled buffers are for memory no autograd graph holds — evaluation,
//! streaming generation, scratch space. A buffer that is still read by a graph (or by a clone of the
//! tensor kept elsewhere) when its handle drops would be zeroed under that reader's feet: use
//! [`PooledTensor::into_inner`] to take a buffer out of the pool for good instead.

use crate::error::Result;
use candle_core::{DType, Device, DeviceLocation, Shape, Tensor};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
struct Entry {
    dims: Vec<usize>,
    dtype: DType,
    location: DeviceLocation,
    idle: Vec<Tensor>,
}

/// Counters of a pool's activity.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// Buffers allocated because no idle one fitted.
    pub created: u64,
    /// Acquisitions served by an idle buffer.
    pub reused: u64,
    /// Buffers currently idle in the pool.
    pub idle_buffers: u64,
    /// Bytes held by idle buffers.
    pub idle_bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    created: u64,
    reused: u64,
}

/// A pool of reusable zeroed tensors. Cheap to clone (an `Arc` inside), `Send + Sync`.
#[derive(Debug, Clone, Default)]
pub struct AccumulatorPool {
    inner: Arc<Mutex<Inner>>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock cannot leave the pool inconsistent (every mutation is a
    // single push/pop), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AccumulatorPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// A zeroed tensor of `shape`, `dtype` on `device`, recycled when possible.
    pub fn acquire<S: Into<Shape>>(
        &self,
        shape: S,
        dtype: DType,
        device: &Device,
    ) -> Result<PooledTensor> {
        let shape = shape.into();
        let location = device.location();
        let recycled = {
            let mut inner = lock(&self.inner);
            let found = inner
                .entries
                .iter_mut()
                .find(|e| e.dtype == dtype && e.location == location && e.dims == shape.dims())
                .and_then(|e| e.idle.pop());
            if found.is_some() {
                inner.reused += 1;
            } else {
                inner.created += 1;
            }
            found
        };
        let tensor = match recycled {
            Some(t) => {
                t.zero_set()?;
                t
            }
            None => Tensor::zeros(shape, dtype, device)?,
        };
        Ok(PooledTensor {
            tensor: Some(tensor),
            pool: self.clone(),
        })
    }

    fn give_back(&self, tensor: Tensor) {
        let mut inner = lock(&self.inner);
        let location = tensor.device().location();
        let dtype = tensor.dtype();
        if let Some(e) = inner
            .entries
            .iter_mut()
            .find(|e| e.dtype == dtype && e.location == location && e.dims == tensor.dims())
        {
            e.idle.push(tensor);
        } else {
            inner.entries.push(Entry {
                dims: tensor.dims().to_vec(),
                dtype,
                location,
                idle: vec![tensor],
            });
        }
    }

    /// Drops every idle buffer; returns `(buffers, bytes)` released.
    pub fn clear_idle(&self) -> (u64, u64) {
        let mut inner = lock(&self.inner);
        let (mut n, mut bytes) = (0u64, 0u64);
        for e in inner.entries.iter_mut() {
            for t in e.idle.drain(..) {
                n += 1;
                bytes += (t.elem_count() * t.dtype().size_in_bytes()) as u64;
            }
        }
        inner.entries.clear();
        (n, bytes)
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        let inner = lock(&self.inner);
        let mut s = PoolStats {
            created: inner.created,
            reused: inner.reused,
            ..PoolStats::default()
        };
        for e in &inner.entries {
            for t in &e.idle {
                s.idle_buffers += 1;
                s.idle_bytes += (t.elem_count() * t.dtype().size_in_bytes()) as u64;
            }
        }
        s
    }
}

/// A tensor on loan from an [`AccumulatorPool`]; returned to the pool on drop.
#[derive(Debug)]
pub struct PooledTensor {
    tensor: Option<Tensor>,
    pool: AccumulatorPool,
}

impl PooledTensor {
    /// The pooled tensor.
    pub fn tensor(&self) -> &Tensor {
        self.tensor.as_ref().expect("present until drop")
    }

    /// Takes the tensor out of the pool for good (it will not be recycled).
    pub fn into_inner(mut self) -> Tensor {
        self.tensor.take().expect("present until drop")
    }
}

impl std::ops::Deref for PooledTensor {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        self.tensor()
    }
}

impl Drop for PooledTensor {
    fn drop(&mut self) {
        if let Some(t) = self.tensor.take() {
            self.pool.give_back(t);
        }
    }
}
