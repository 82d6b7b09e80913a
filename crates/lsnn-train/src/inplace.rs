//! Elementwise in-place candle ops (CPU, f32) for the optimizer and the EMA: they overwrite a
//! tensor's own storage, so a step allocates nothing proportional to the parameter count.
//! Other devices and dtypes take a tensor-op fallback in the callers.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor};

fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let d = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&d[a..b]),
        None => candle_core::bail!("{op}: source must be contiguous"),
    }
}

fn slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let (a, b) = match l.contiguous_offsets() {
        Some(r) => r,
        None => candle_core::bail!("{op}: destination must be contiguous"),
    };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{op}: expected f32"),
    }
}

/// True when the in-place CPU kernels apply to all of `ts`.
pub fn fast_path(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32 && t.is_contiguous())
}

/// dst ← a·dst + b·src.
#[derive(Debug, Clone, Copy)]
pub struct Axpby {
    /// Factor of dst.
    pub a: f32,
    /// Factor of src.
    pub b: f32,
}

impl InplaceOp2 for Axpby {
    fn name(&self) -> &'static str {
        "axpby"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        src: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<()> {
        let s = slice(src, sl, "axpby")?;
        let d = slice_mut(dst, dl, "axpby")?;
        for (x, &y) in d.iter_mut().zip(s) {
            *x = self.a * *x + self.b * y;
        }
        Ok(())
    }
}

/// dst ← a·dst + b·src² (the second-moment update).
#[derive(Debug, Clone, Copy)]
pub struct AxpbySq {
    /// Factor of dst.
    pub a: f32,
    /// Factor of src².
    pub b: f32,
}

impl InplaceOp2 for AxpbySq {
    fn name(&self) -> &'static str {
        "axpby-sq"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        src: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<()> {
        let s = slice(src, sl, "axpby-sq")?;
        let d = slice_mut(dst, dl, "axpby-sq")?;
        for (x, &y) in d.iter_mut().zip(s) {
            *x = self.a * *x + self.b * (y * y);
        }
        Ok(())
    }
}

/// dst ← max(dst, src) (AMSGrad's running maximum).
#[derive(Debug, Clone, Copy)]
pub struct MaxInPlace;

impl InplaceOp2 for MaxInPlace {
    fn name(&self) -> &'static str {
        "max-in-place"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        src: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<()> {
        let s = slice(src, sl, "max-in-place")?;
        let d = slice_mut(dst, dl, "max-in-place")?;
        for (x, &y) in d.iter_mut().zip(s) {
            if y > *x {
                *x = y;
            }
        }
        Ok(())
    }
}

/// The AdamW parameter update: p ← p·(1 − lr·wd) − lr·(m/bc1) / (√(v/bc2) + ε).
#[derive(Debug, Clone, Copy)]
pub struct AdamUpdate {
    /// Learning rate.
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// 1 − β1^t.
    pub bc1: f32,
    /// 1 − β2^t.
    pub bc2: f32,
    /// ε.
    pub eps: f32,
}

impl InplaceOp3 for AdamUpdate {
    fn name(&self) -> &'static str {
        "adamw-update"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<()> {
        let m = slice(ms, ml, "adamw-update")?;
        let v = slice(vs, vl, "adamw-update")?;
        let p = slice_mut(dst, dl, "adamw-update")?;
        let decay = 1.0 - self.lr * self.wd;
        for ((x, &mi), &vi) in p.iter_mut().zip(m).zip(v) {
            let mhat = mi / self.bc1;
            let vhat = vi / self.bc2;
            *x = *x * decay - self.lr * mhat / (vhat.sqrt() + self.eps);
        }
        Ok(())
    }
}
