//! Which instruction paths this process's kernels take, decided at run time: what a checkpoint
//! records so that a resume on another machine (or under valgrind, which hides AVX-512) can say
//! that its bits will not continue the saved run's exactly (design §9.4).

use serde::{Deserialize, Serialize};

/// The run-time choices that change a training step's bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelPaths {
    /// The matmul's kernels (the `gemm` crate, candle's CPU matmul and the fused ops' products):
    /// `"avx512f"`, `"fma"` (AVX2 + FMA) or `"scalar"` — the same choice the crate makes; on a
    /// GPU the device's own (`"cuda"`, `"metal"`).
    pub matmul: String,
    /// The element kernels with an AVX2 copy (LIF, synaptic, alpha, ALIF, LTC, CfC):
    /// `"avx2"` or `"baseline"` (`"device"` on a GPU). Both CPU paths give the same bits
    /// (tested); recorded for the record.
    pub elements: String,
    /// The fused CPU kernels (`false`: the composed reference path, which rounds differently,
    /// and always on a GPU).
    pub fused: bool,
    /// The fused linears' matmul precision: `"f32"`, or `"bf16"` (mixed precision, design §9.5).
    /// Checkpoints written before it was recorded were f32.
    #[serde(default = "f32_name")]
    pub precision: String,
}

fn f32_name() -> String {
    super::MatmulPrecision::F32.name().to_string()
}

impl KernelPaths {
    /// The paths a model on `device` takes in this process now.
    pub fn for_device(device: &candle_core::Device) -> Self {
        let gpu = match device {
            candle_core::Device::Cpu => return Self::cpu(),
            candle_core::Device::Cuda(_) => "cuda",
            candle_core::Device::Metal(_) => "metal",
        };
        KernelPaths {
            matmul: gpu.to_string(),
            elements: "device".to_string(),
            fused: false,
            precision: f32_name(),
        }
    }

    /// These paths with the fused linears' products in `precision`.
    pub fn with_precision(mut self, precision: super::MatmulPrecision) -> Self {
        self.precision = precision.name().to_string();
        self
    }

    /// The paths of a CPU model in this process now.
    pub fn cpu() -> Self {
        KernelPaths {
            matmul: matmul_path().to_string(),
            elements: if super::wide_vectors() {
                "avx2"
            } else {
                "baseline"
            }
            .to_string(),
            fused: super::fused_enabled(),
            precision: f32_name(),
        }
    }

    /// What differs from `saved` in a way that changes results (`elements` does not; the
    /// precision does), as a sentence for a resume's notice; `None` when nothing does.
    pub fn differences(&self, saved: &KernelPaths) -> Option<String> {
        let mut parts = Vec::new();
        if self.matmul != saved.matmul {
            parts.push(format!(
                "matmul kernels {} (saved run: {})",
                self.matmul, saved.matmul
            ));
        }
        if self.fused != saved.fused {
            parts.push(format!(
                "{} path (saved run: {})",
                if self.fused { "fused" } else { "composed" },
                if saved.fused { "fused" } else { "composed" }
            ));
        }
        if self.precision != saved.precision {
            parts.push(format!(
                "matmul precision {} (saved run: {})",
                self.precision, saved.precision
            ));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The matmul kernels the `gemm` crate picks on this CPU: it takes AVX-512F where the CPU has
/// it (the workspace builds it with its `x86-v4` feature), else FMA, else scalar code.
pub fn matmul_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            "avx512f"
        } else if std::arch::is_x86_feature_detected!("fma") {
            "fma"
        } else {
            "scalar"
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        "portable"
    }
}

#[cfg(test)]
mod tests {
    use super::KernelPaths;

    fn paths(matmul: &str, elements: &str, fused: bool) -> KernelPaths {
        KernelPaths {
            matmul: matmul.into(),
            elements: elements.into(),
            fused,
            precision: "f32".into(),
        }
    }

    #[test]
    fn differences_name_what_changes_results_and_only_that() {
        let saved = paths("avx512f", "avx2", true);
        assert_eq!(saved.differences(&saved), None);
        // The element path gives the same bits: nothing to say.
        assert_eq!(paths("avx512f", "baseline", true).differences(&saved), None);
        let d = paths("fma", "avx2", true).differences(&saved).unwrap();
        assert_eq!(d, "matmul kernels fma (saved run: avx512f)");
        let d = paths("cuda", "device", false).differences(&saved).unwrap();
        assert_eq!(
            d,
            "matmul kernels cuda (saved run: avx512f), composed path (saved run: fused)"
        );
        assert_eq!(
            KernelPaths::for_device(&candle_core::Device::Cpu),
            KernelPaths::cpu()
        );
        assert_eq!(KernelPaths::cpu().matmul, super::matmul_path());
        let bf16 = saved
            .clone()
            .with_precision(crate::kernel::MatmulPrecision::Bf16);
        assert_eq!(
            bf16.differences(&saved).unwrap(),
            "matmul precision bf16 (saved run: f32)"
        );
        // A checkpoint from before the field was recorded reads as f32.
        let old: KernelPaths =
            serde_json::from_str(r#"{"matmul":"avx512f","elements":"avx2","fused":true}"#).unwrap();
        assert_eq!(old, saved);
    }
}
