//! What the optimisation benchmarks share: where the samples are, the network as the command
//! line runs it on a device, the Van Gogh style target, and stylizers of N iterations.

use std::path::Path;

use stylize_video::engine::preprocess::{resize, scaled_size, to_network};
use stylize_video::engine::stylizer::{LossSettings, OptimizerSettings, StyleTarget, Stylizer};
use stylize_video::engine::vgg::{Precision, Vgg19};
use stylize_video::io::image::load;
use tch::Device;

/// Where the samples are: the working directory first, since a benchmark may run on another
/// machine than it was built on (scripts/gpu-bench.sh).
pub fn root() -> &'static Path {
    if Path::new("samples/frames").is_dir() {
        Path::new(".")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }
}

/// `--device cpu|cuda`.
pub fn device(args: &[String]) -> Device {
    match super::args::option(args, "--device", "cpu").as_str() {
        "cuda" => Device::Cuda(0),
        _ => Device::Cpu,
    }
}

/// VGG19 on `device`, as the command line's default runs it there (channels-last; TF32 on
/// CUDA, float32 on the CPU).
pub fn network(device: Device) -> Vgg19 {
    let precision = match device {
        Device::Cuda(_) => Precision::Tf32,
        _ => Precision::Fp32,
    };
    Vgg19::load_with(&Vgg19::default_weights_path(), device, precision, true).expect("weights")
}

/// Van Gogh's painting at the processing size `size` (or its own, if smaller).
pub fn van_gogh(vgg: &Vgg19, size: u32, loss: &LossSettings) -> StyleTarget {
    let painting =
        load(&root().join("samples/styles/van-gogh-village-street-auvers.jpg")).expect("painting");
    let (pw, ph) = scaled_size(
        painting.width(),
        painting.height(),
        size.min(painting.width().max(painting.height())),
    );
    let device = vgg.device();
    StyleTarget::new(
        vgg,
        &[(to_network(&resize(&painting, pw, ph), device), 1.0)],
        loss,
    )
    .expect("style target")
}

/// A stylizer of `iterations` iterations, the other optimiser settings the defaults.
pub fn stylizer<'a>(
    vgg: &'a Vgg19,
    style: &'a StyleTarget,
    loss: &LossSettings,
    iterations: usize,
) -> Stylizer<'a> {
    Stylizer::new(
        vgg,
        style,
        loss.clone(),
        OptimizerSettings {
            iterations,
            ..OptimizerSettings::default()
        },
    )
    .expect("stylizer")
}
