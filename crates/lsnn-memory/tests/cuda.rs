//! The CUDA probe and the manager on a CUDA device. The probe's refusal of another device runs
//! anywhere the `cuda` feature builds (under `scripts/cuda/install.sh`'s link stub too); what
//! needs a device is ignored with that reason here and run by `scripts/device-check.sh`.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor};
use lsnn_memory::{probe_for, CudaProbe, DeviceProbe, ManagerConfig, MemoryManager, MemorySource};

#[test]
fn the_cuda_probe_refuses_another_device() {
    let e = CudaProbe::new(&Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("needs a cuda device"), "{e}");
    // The CPU still gets its own probe in a CUDA build (RSS: this test binary does not
    // install the counting allocator).
    assert_eq!(probe_for(&Device::Cpu).unwrap().source(), MemorySource::Rss);
}

#[test]
#[ignore = "needs a CUDA device (run by scripts/device-check.sh)"]
fn the_driver_sees_an_allocation_come_and_go() {
    let dev = Device::new_cuda(0).expect("a CUDA device");
    let probe = CudaProbe::new(&dev).unwrap();
    let (free, total) = probe.mem_info().unwrap();
    assert!(total > 0 && free <= total, "free {free}, total {total}");
    let before = probe.live_bytes().unwrap();
    let t = Tensor::zeros((64, 1024, 1024), DType::F32, &dev).unwrap(); // 256 MiB
    let during = probe.live_bytes().unwrap();
    assert!(during >= before + (200 << 20), "{before} -> {during}");
    drop(t);
    let manager = MemoryManager::new(&dev, ManagerConfig::default()).unwrap();
    manager.cleanup().unwrap();
    let after = probe.live_bytes().unwrap();
    assert!(after < during, "{during} -> {after} after drop and cleanup");
    assert_eq!(probe_for(&dev).unwrap().source(), MemorySource::CudaDriver);
}
