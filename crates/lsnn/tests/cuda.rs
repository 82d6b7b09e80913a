//! The command line in a `cuda` build: a CUDA device the machine does not have is bad input
//! (exit 2) naming it, whether the config or `--device` asks for it.
#![cfg(feature = "cuda")]

mod support;

use support::{code, err, lsnn, scratch};

#[test]
fn a_cuda_device_the_machine_lacks_is_refused_with_exit_code_2() {
    let d = scratch("cuda-missing");
    // Index 64 exists on no machine; index 0 only on a GPU machine, so under the link stub of
    // scripts/cuda/install.sh both are missing.
    let present = candle_core::Device::new_cuda(0).is_ok();
    let names: &[&str] = if present {
        &["cuda:64"]
    } else {
        &["cuda", "cuda:64"]
    };
    for name in names {
        let o = lsnn(
            &[
                "train",
                "--task",
                "classification",
                "--device",
                name,
                "--out",
                "r",
            ],
            &d,
        );
        let e = err(&o);
        assert_eq!(code(&o), 2, "{name}: {e}");
        assert!(
            e.contains(&format!("device \"{name}\" is not available")),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&d).ok();
}
