//! Elementwise in-place candle ops (CPU, f32) for the optimizer and the EMA: they overwrite a
//! tensor's own storage, so a step allocates nothing proportional to the parameter count.
//! Other devices and dtypes take a tensor-op fallback in the callers.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor};

use lsnn_layers::kernel::{contiguous_slice, contiguous_slice_mut_f32};

/// dst[i] ← f(dst[i], src[i]) over two contiguous f32 operands of the same length.
fn zip_apply(
    op: &str,
    dst: &mut CpuStorage,
    dl: &Layout,
    src: &CpuStorage,
    sl: &Layout,
    f: impl Fn(f32, f32) -> f32,
) -> candle_core::Result<()> {
    let s = contiguous_slice::<f32>(src, sl, op)?;
    let d = contiguous_slice_mut_f32(dst, dl, op)?;
    if s.len() != d.len() {
        candle_core::bail!(
            "{op}: {} source elements for {} destination elements",
            s.len(),
            d.len()
        );
    }
    for (x, &y) in d.iter_mut().zip(s) {
        *x = f(*x, y);
    }
    Ok(())
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
        zip_apply("axpby", dst, dl, src, sl, |x, y| self.a * x + self.b * y)
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
        zip_apply("axpby-sq", dst, dl, src, sl, |x, y| {
            self.a * x + self.b * (y * y)
        })
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
        zip_apply(
            "max-in-place",
            dst,
            dl,
            src,
            sl,
            |x, y| if y > x { y } else { x },
        )
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
        let m = contiguous_slice::<f32>(ms, ml, "adamw-update: m")?;
        let v = contiguous_slice::<f32>(vs, vl, "adamw-update: v")?;
        let p = contiguous_slice_mut_f32(dst, dl, "adamw-update: parameter")?;
        if m.len() != p.len() || v.len() != p.len() {
            candle_core::bail!(
                "adamw-update: moments of {} and {} elements for {}",
                m.len(),
                v.len(),
                p.len()
            );
        }
        let decay = 1.0 - self.lr * self.wd;
        for ((x, &mi), &vi) in p.iter_mut().zip(m).zip(v) {
            let mhat = mi / self.bc1;
            let vhat = vi / self.bc2;
            *x = *x * decay - self.lr * mhat / (vhat.sqrt() + self.eps);
        }
        Ok(())
    }
}
