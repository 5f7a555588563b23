//! Memory figures for reports and logs: the process's peak resident memory on the host, and the
//! memory in use on a CUDA GPU, read from the CUDA runtime that libtorch has loaded (libtorch's
//! own allocator statistics are not reachable through tch).

use std::ffi::{c_int, c_void};

use serde::Serialize;
use tch::Device;

use crate::loaded::symbol;

/// The memory a run took.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MemoryUse {
    /// The process's peak resident memory on the host (RAM), in MiB.
    pub host_peak_mib: Option<f64>,
    /// Memory in use on the run's GPU when asked, in MiB, all processes together: the CUDA
    /// context and the memory libtorch reserved, which it keeps for reuse, so at the end of a
    /// run it is about the run's peak plus the context (and whatever other programs hold);
    /// less where libtorch, short of memory, gave cached blocks back. `None` on the CPU.
    pub gpu_in_use_mib: Option<f64>,
    /// The GPU's memory, in MiB; `None` on the CPU.
    pub gpu_total_mib: Option<f64>,
}

impl MemoryUse {
    /// The figures now, for a run on `device`.
    pub fn now(device: Device) -> Self {
        let gpu = match device {
            Device::Cuda(index) => gpu_memory(index),
            _ => None,
        };
        MemoryUse {
            host_peak_mib: host_peak_bytes().map(mib),
            gpu_in_use_mib: gpu.map(|(free, total)| mib(total.saturating_sub(free))),
            gpu_total_mib: gpu.map(|(_, total)| mib(total)),
        }
    }

    /// One line for the log: `memory: host peak 812 MiB` and, on a GPU, `; GPU 10240 of 81559
    /// MiB in use (all processes; libtorch keeps what it reserved)`.
    pub fn describe(&self) -> String {
        let mut line = match self.host_peak_mib {
            Some(host) => format!("memory: host peak {host:.0} MiB"),
            None => "memory: host peak unknown".to_string(),
        };
        if let (Some(used), Some(total)) = (self.gpu_in_use_mib, self.gpu_total_mib) {
            line += &format!(
                "; GPU {used:.0} of {total:.0} MiB in use (all processes; libtorch keeps what \
                 it reserved)"
            );
        }
        line
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// The peak resident set of this process, from getrusage.
#[cfg(unix)]
fn host_peak_bytes() -> Option<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the structure it is given.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    // Kibibytes on Linux, bytes on macOS.
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    u64::try_from(usage.ru_maxrss).ok().map(|n| n * unit)
}

#[cfg(not(unix))]
fn host_peak_bytes() -> Option<u64> {
    None
}

/// (free, total) bytes of GPU `index`, from the CUDA runtime. The calling thread's current
/// device becomes `index` if it was another: setting it back would make a CUDA context on a
/// GPU the run may never have used (libtorch names the device of every operation anyway).
fn gpu_memory(index: usize) -> Option<(u64, u64)> {
    type GetDevice = unsafe extern "C" fn(*mut c_int) -> c_int;
    type SetDevice = unsafe extern "C" fn(c_int) -> c_int;
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> c_int;
    let get = symbol(c"cudaGetDevice")?;
    let set = symbol(c"cudaSetDevice")?;
    let info = symbol(c"cudaMemGetInfo")?;
    // SAFETY: the symbols are the CUDA runtime's, with these signatures; every call's status
    // is checked.
    unsafe {
        let (get, set, info) = (
            std::mem::transmute::<*mut c_void, GetDevice>(get),
            std::mem::transmute::<*mut c_void, SetDevice>(set),
            std::mem::transmute::<*mut c_void, MemGetInfo>(info),
        );
        let (wanted, mut current) = (c_int::try_from(index).ok()?, 0);
        if get(&mut current) != 0 || (current != wanted && set(wanted) != 0) {
            return None;
        }
        let (mut free, mut total) = (0usize, 0usize);
        let status = info(&mut free, &mut total);
        (status == 0 && total > 0).then_some((free as u64, total as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_peak_grows_with_what_the_process_touches() {
        let before = MemoryUse::now(Device::Cpu).host_peak_mib.unwrap();
        // 256 MiB written page by page.
        let block = vec![1u8; 256 << 20];
        let after = MemoryUse::now(Device::Cpu);
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        let grown = after.host_peak_mib.unwrap();
        assert!(grown >= before.max(256.0), "{before} MiB, then {grown} MiB");
        assert_eq!(after.gpu_in_use_mib, None);
        assert!(after.describe().starts_with("memory: host peak "));
        assert!(!after.describe().contains("GPU"));
    }
}
