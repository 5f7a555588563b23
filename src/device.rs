//! Choosing the compute device from its command-line name.

use tch::Device;

use crate::engine::vgg::Precision;
use crate::error::{Error, Result};

/// The device named `name`: `auto` (the first CUDA GPU if there is one, else the CPU), `cpu`,
/// `cuda` (GPU 0) or `cuda:N`. Asking for a GPU that is not there is an error.
pub fn parse(name: &str) -> Result<Device> {
    let unavailable = |problem: String| Error::Device {
        device: name.to_string(),
        problem,
    };
    let gpus = || tch::Cuda::device_count();
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let index = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| unavailable("use auto, cpu, cuda or cuda:N".into()))?,
                None => return Err(unavailable("use auto, cpu, cuda or cuda:N".into())),
            };
            if !tch::Cuda::is_available() {
                return Err(unavailable(
                    "no CUDA GPU is available to libtorch (use --device cpu or auto)".into(),
                ));
            }
            if index as i64 >= gpus() {
                return Err(unavailable(format!("only {} CUDA GPU(s) present", gpus())));
            }
            Ok(Device::Cuda(index))
        }
    }
}

/// A short description for logs: `cpu (2 threads)` or `cuda:0 (1 GPU present)`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => {
            let name = gpu_model(&gpu_names()).unwrap_or_else(|| "NVIDIA GPU".into());
            format!(
                "cuda:{i} {name} ({} GPU(s) present)",
                tch::Cuda::device_count()
            )
        }
        _ => {
            let why = if tch::Cuda::is_available() {
                ""
            } else {
                ", no CUDA GPU found"
            };
            format!("cpu ({} threads{why})", tch::get_num_threads())
        }
    }
}

/// The model of the GPUs in `names` where they are all of one model: the driver lists them in
/// bus order, while CUDA numbers them fastest first and `CUDA_VISIBLE_DEVICES` renumbers them,
/// so with mixed models the name at a CUDA index could be another GPU's.
fn gpu_model(names: &[String]) -> Option<String> {
    let first = names.first()?;
    names.iter().all(|n| n == first).then(|| first.clone())
}

/// The NVIDIA driver's names of the machine's GPUs, in bus order, from /proc; empty where the
/// driver does not publish them.
fn gpu_names() -> Vec<String> {
    let mut dirs: Vec<_> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.iter()
        .filter_map(|d| std::fs::read_to_string(d.join("information")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_string())
        })
        .collect()
}

/// Whether this CPU does bfloat16 arithmetic natively (AVX-512 BF16 or AMX), from /proc/cpuinfo.
/// Elsewhere libtorch emulates it, far slower than float32.
pub fn cpu_has_native_bf16() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.lines().filter(|l| l.starts_with("flags")).any(|l| {
            l.split_whitespace()
                .any(|f| f == "avx512_bf16" || f == "amx_bf16")
        })
    })
}

/// A warning for a precision that does nothing or is slow on `device`: TF32 off NVIDIA GPUs,
/// bfloat16 on a CPU without native bfloat16 arithmetic (measured about eight times slower than
/// float32 on such a CPU).
pub fn precision_warning(device: Device, precision: Precision) -> Option<String> {
    if device.is_cuda() {
        return None;
    }
    match precision {
        Precision::Bf16 if !cpu_has_native_bf16() => Some(
            "--precision bf16 on this CPU (no AVX-512 BF16 or AMX) is emulated: it measured about \
             eight times slower than fp32 on such a CPU (55 s against 7 s); bf16 pays on GPUs"
                .to_string(),
        ),
        Precision::Tf32 => Some(
            "--precision tf32 is a mode of NVIDIA GPUs' tensor cores: on the CPU it is fp32 \
             (the same pictures, the same speed)"
                .to_string(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_is_named_only_where_no_other_model_could_be_meant() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let h100 = "NVIDIA H100 80GB HBM3";
        assert_eq!(gpu_model(&names(&[h100])).as_deref(), Some(h100));
        assert_eq!(gpu_model(&names(&[h100, h100])).as_deref(), Some(h100));
        assert_eq!(gpu_model(&names(&[h100, "NVIDIA A100-SXM4-40GB"])), None);
        assert_eq!(gpu_model(&[]), None);
    }
}
