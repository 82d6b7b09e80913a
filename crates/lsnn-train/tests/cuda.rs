//! The `cuda` build's device selection (issue: the CUDA paths that need no GPU): a CUDA device
//! this machine does not have is a typed error naming it and what the driver said — under the
//! link stub of `scripts/cuda/install.sh` every index, on a GPU machine an index past its
//! devices. Built and run only with `--features cuda` (`.ci/run`'s CUDA step).
#![cfg(feature = "cuda")]

use lsnn_train::config::{candle_device, parse_device};
use lsnn_train::TrainError;

/// Whether this machine has CUDA device 0 (the stub has none).
fn device_present() -> bool {
    candle_core::Device::new_cuda(0).is_ok()
}

#[test]
fn a_missing_cuda_device_is_a_typed_error() {
    // Index 64 exists nowhere; index 0 exists only on a GPU machine.
    let names = if device_present() {
        vec!["cuda:64"]
    } else {
        vec!["cuda", "cuda:0", "cuda:64"]
    };
    for name in names {
        match candle_device(name) {
            Err(e @ TrainError::DeviceUnavailable { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(name) && msg.contains("\"cpu\""), "{msg}");
            }
            other => panic!("{name}: expected DeviceUnavailable, got {other:?}"),
        }
    }
    // The names themselves parse (the error is the machine's, not the config's).
    assert_eq!(parse_device("cuda:64").unwrap(), Some(64));
    assert!(matches!(
        parse_device("cuda:x"),
        Err(TrainError::Config { .. })
    ));
    assert!(candle_device("cpu").unwrap().is_cpu());
}

#[test]
#[ignore = "needs a CUDA device (run by scripts/device-check.sh)"]
fn the_first_cuda_device_is_selected() {
    let d = candle_device("cuda").expect("a CUDA device");
    assert!(d.is_cuda());
    assert!(candle_device("cuda:0").unwrap().same_device(&d));
}
