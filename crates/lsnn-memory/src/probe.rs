//! [`DeviceProbe`]: live, peak and total memory for one candle [`Device`].
//!
//! The CPU probe reads the counting allocator when it is installed and falls back to the process
//! RSS otherwise. The CUDA probe (feature `cuda`) asks the driver for free/total memory after a
//! device synchronise.

use crate::alloc;
use crate::error::{MemoryError, Result};
use crate::rss;
use candle_core::Device;

/// Where a probe's `live` figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MemorySource {
    /// The counting global allocator (exact heap bytes).
    CountingAllocator,
    /// The process resident set (what the OS sees).
    Rss,
    /// The CUDA driver's used memory (total − free).
    CudaDriver,
}

/// Memory figures of one device.
pub trait DeviceProbe: Send + Sync + std::fmt::Debug {
    /// The device this probe measures.
    fn device(&self) -> &Device;
    /// Where `live_bytes` comes from.
    fn source(&self) -> MemorySource;
    /// Bytes in use now.
    fn live_bytes(&self) -> Result<u64>;
    /// Highest bytes in use observed (the allocator's window peak, `VmHWM`, or the driver's
    /// used figure where no peak exists).
    fn peak_bytes(&self) -> Result<u64>;
    /// All memory of the device (physical memory for the CPU).
    fn total_bytes(&self) -> Result<u64>;
    /// Bytes still available for new allocations.
    fn available_bytes(&self) -> Result<u64>;
    /// Waits until the device has finished its queued work.
    fn synchronize(&self) -> Result<()> {
        self.device().synchronize().map_err(MemoryError::from)
    }
}

/// The CPU probe: the counting allocator when installed, else RSS.
#[derive(Debug, Clone)]
pub struct CpuProbe {
    device: Device,
}

impl CpuProbe {
    /// A probe of the host.
    pub fn new() -> Self {
        CpuProbe {
            device: Device::Cpu,
        }
    }
}

impl Default for CpuProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl DeviceProbe for CpuProbe {
    fn device(&self) -> &Device {
        &self.device
    }

    fn source(&self) -> MemorySource {
        if alloc::is_installed() {
            MemorySource::CountingAllocator
        } else {
            MemorySource::Rss
        }
    }

    fn live_bytes(&self) -> Result<u64> {
        if alloc::is_installed() {
            Ok(alloc::live_bytes())
        } else {
            rss::rss_bytes()
        }
    }

    fn peak_bytes(&self) -> Result<u64> {
        if alloc::is_installed() {
            Ok(alloc::peak_bytes())
        } else {
            rss::peak_rss_bytes()
        }
    }

    fn total_bytes(&self) -> Result<u64> {
        rss::physical_memory_bytes()
    }

    fn available_bytes(&self) -> Result<u64> {
        rss::available_memory_bytes()
    }
}

/// The CUDA probe: the driver's free and total memory, read after a device synchronise.
#[cfg(feature = "cuda")]
#[derive(Debug, Clone)]
pub struct CudaProbe {
    device: Device,
}

#[cfg(feature = "cuda")]
impl CudaProbe {
    /// A probe of `device`, which must be a CUDA device.
    pub fn new(device: &Device) -> Result<Self> {
        if !device.is_cuda() {
            return Err(MemoryError::Unsupported(format!(
                "CudaProbe needs a cuda device, got {device:?}"
            )));
        }
        Ok(CudaProbe {
            device: device.clone(),
        })
    }

    /// `(free, total)` bytes as the driver reports them, after a synchronise.
    pub fn mem_info(&self) -> Result<(u64, u64)> {
        self.device.synchronize()?;
        let cuda = self.device.as_cuda_device()?;
        let stream = cuda.cuda_stream();
        let (free, total) = stream
            .context()
            .mem_get_info()
            .map_err(|e| MemoryError::Unsupported(format!("cuda mem_get_info: {e}")))?;
        Ok((free as u64, total as u64))
    }
}

#[cfg(feature = "cuda")]
impl DeviceProbe for CudaProbe {
    fn device(&self) -> &Device {
        &self.device
    }
    fn source(&self) -> MemorySource {
        MemorySource::CudaDriver
    }
    fn live_bytes(&self) -> Result<u64> {
        let (free, total) = self.mem_info()?;
        Ok(total - free)
    }
    fn peak_bytes(&self) -> Result<u64> {
        self.live_bytes()
    }
    fn total_bytes(&self) -> Result<u64> {
        Ok(self.mem_info()?.1)
    }
    fn available_bytes(&self) -> Result<u64> {
        Ok(self.mem_info()?.0)
    }
}

/// The probe that fits `device`.
pub fn probe_for(device: &Device) -> Result<Box<dyn DeviceProbe>> {
    match device {
        Device::Cpu => Ok(Box::new(CpuProbe::new())),
        #[cfg(feature = "cuda")]
        Device::Cuda(_) => Ok(Box::new(CudaProbe::new(device)?)),
        other => Err(MemoryError::Unsupported(format!(
            "no memory probe for {other:?} in this build"
        ))),
    }
}
