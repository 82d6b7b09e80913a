//! `--precision f32|bf16` of `bench`, `eval` and `generate`: the fused linears' matmul precision
//! for inference (design §9.5), checked against this CPU before anything runs.

use crate::exit::BadInput;
use lsnn_train::lsnn_layers::kernel::bf16::Bf16Kernel;
use lsnn_train::lsnn_layers::kernel::MatmulPrecision;

/// The values `--precision` takes.
pub const CHOICES: [&str; 2] = ["f32", "bf16"];

/// The precision `flag` names for a command on `device` (`None`: the run's own): bf16 is the
/// CPU's fused linear, so it refuses another `device` and a CPU without AVX-512 BF16 (rather
/// than running the slow portable kernel) — also when the run's own device, used for lack of
/// `--device`, is a GPU, where it would change nothing.
pub fn parse(flag: &str, device: Option<&str>) -> Result<MatmulPrecision, BadInput> {
    match flag {
        "f32" => Ok(MatmulPrecision::F32),
        "bf16" => {
            if let Some(d) = device.filter(|d| *d != "cpu") {
                return Err(BadInput(format!(
                    "--precision bf16 is the CPU's bf16 matmul, but --device is {d}; expected \
                     --device cpu or --precision f32"
                )));
            }
            if Bf16Kernel::active() != Bf16Kernel::Avx512Bf16 {
                return Err(BadInput(
                    "--precision bf16 needs a CPU with AVX-512 BF16 instructions, which this \
                     one lacks (or LSNN_BASELINE_ISA=1 turned them off); expected --precision f32"
                        .into(),
                ));
            }
            Ok(MatmulPrecision::Bf16)
        }
        other => Err(BadInput(format!(
            "--precision {other}; expected one of {}",
            CHOICES.join(", ")
        ))),
    }
}
