//! The leak detector measuring a device through a probe (the CUDA driver's figures on a GPU):
//! driven here by a scripted probe, so the device mode's verdicts are checked on any machine.

use candle_core::Device;
use lsnn_memory::{DeviceProbe, LeakConfig, LeakDetector, MemorySource, Verdict};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A device whose used memory is whatever the test sets.
#[derive(Debug)]
struct Scripted {
    device: Device,
    used: AtomicU64,
}

impl DeviceProbe for Scripted {
    fn device(&self) -> &Device {
        &self.device
    }
    fn source(&self) -> MemorySource {
        MemorySource::CudaDriver
    }
    fn live_bytes(&self) -> lsnn_memory::Result<u64> {
        Ok(self.used.load(Ordering::Relaxed))
    }
    fn peak_bytes(&self) -> lsnn_memory::Result<u64> {
        self.live_bytes()
    }
    fn total_bytes(&self) -> lsnn_memory::Result<u64> {
        Ok(80 << 30)
    }
    fn available_bytes(&self) -> lsnn_memory::Result<u64> {
        Ok((80 << 30) - self.used.load(Ordering::Relaxed))
    }
}

fn run(step_bytes: u64) -> lsnn_memory::LeakReport {
    let probe = Arc::new(Scripted {
        device: Device::Cpu,
        used: AtomicU64::new(1 << 30),
    });
    let p = probe.clone();
    LeakDetector::new(LeakConfig::default())
        .with_probe(probe)
        .run(|_| {
            // Host allocations the probe must not see.
            let host = vec![0u8; 1 << 20];
            std::hint::black_box(&host);
            p.used.fetch_add(step_bytes, Ordering::Relaxed);
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap()
}

#[test]
fn a_probed_device_that_holds_steady_passes_and_one_that_grows_is_caught() {
    let steady = run(0);
    assert_eq!(steady.verdict, Verdict::Pass, "{:?}", steady.reasons);
    assert_eq!(steady.source, MemorySource::CudaDriver);
    assert_eq!(steady.live_start, 1 << 30);
    // A device-side leak of 2 MiB per iteration (one allocation granule of the driver).
    let growing = run(2 << 20);
    assert_eq!(growing.verdict, Verdict::Leak);
    assert!((growing.slope_bytes_per_iter - (2 << 20) as f64).abs() < 1.0);
    assert!(
        growing.reasons.iter().any(|r| r.contains("live bytes")),
        "{:?}",
        growing.reasons
    );
}
