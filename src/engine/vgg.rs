//! VGG19 (the Caffe/Oxford weights Gatys et al. used), as far as conv5_4, with the layer structure
//! held as data. The weights come 256-level quantised in a safetensors file and are dequantised
//! at load.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// The sha256 of `weights/vgg19-caffe-q8.safetensors`; checked at every load.
pub const WEIGHTS_SHA256: &str = "e60713a159db1c0478db4a94431ad051fef8db1400bd97b43b7f893773b5b540";

/// The weights file's name, as shipped in `weights/`.
pub const WEIGHTS_FILE: &str = "vgg19-caffe-q8.safetensors";

/// The convolution layers in network order, by the paper's names, with their input and output
/// channel counts. A 2x2 stride-2 pooling follows the last layer of each of the first four blocks.
const LAYERS: [(&str, i64, i64); 16] = [
    ("conv1_1", 3, 64),
    ("conv1_2", 64, 64),
    ("conv2_1", 64, 128),
    ("conv2_2", 128, 128),
    ("conv3_1", 128, 256),
    ("conv3_2", 256, 256),
    ("conv3_3", 256, 256),
    ("conv3_4", 256, 256),
    ("conv4_1", 256, 512),
    ("conv4_2", 512, 512),
    ("conv4_3", 512, 512),
    ("conv4_4", 512, 512),
    ("conv5_1", 512, 512),
    ("conv5_2", 512, 512),
    ("conv5_3", 512, 512),
    ("conv5_4", 512, 512),
];

/// Layers after which the network pools.
const POOL_AFTER: [&str; 4] = ["conv1_2", "conv2_2", "conv3_4", "conv4_4"];

/// The pooling between blocks. The paper recommends average pooling for synthesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// 2x2 average pooling (default).
    #[default]
    Avg,
    /// 2x2 max pooling, as in the original classification network.
    Max,
}

/// The arithmetic of the network's convolutions. The loss terms (Gram matrices included) are
/// always computed in float32 from the features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 throughout, no TF32 in either pass (exact; the library's default, and the command
    /// line's on a CPU).
    #[default]
    Fp32,
    /// float32 storage, TF32 tensor-core convolutions on NVIDIA GPUs (float32 elsewhere).
    Tf32,
    /// bfloat16 convolutions (float32's range; float16 is not offered: the backward pass of a
    /// loss of ~1e11 overflows it).
    Bf16,
}

impl Precision {
    fn kind(self) -> Kind {
        match self {
            Precision::Fp32 | Precision::Tf32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }
}

/// The same values in channels-last (NHWC) memory order, which tensor-core convolutions prefer;
/// the tensor still reads as N x C x H x W.
fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// The BGR means (0..255 scale) that Caffe's VGG subtracts from its input.
pub const CAFFE_MEAN_BGR: [f64; 3] = [103.939, 116.779, 123.68];

/// A layer of the network, by index into network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Layer(usize);

impl Layer {
    /// The layer with the paper's name (`conv4_2`), or `None`. Its features are taken after its
    /// ReLU, as in the paper's Caffe network, so neural-style's name for the same features
    /// (`relu4_2`) is taken too.
    pub fn named(name: &str) -> Option<Layer> {
        let name = name
            .strip_prefix("relu")
            .map_or_else(|| name.to_string(), |rest| format!("conv{rest}"));
        LAYERS.iter().position(|(n, _, _)| *n == name).map(Layer)
    }

    /// The paper's name of the layer (`conv4_2`).
    pub fn name(self) -> &'static str {
        LAYERS[self.0].0
    }

    /// Number of feature maps (the paper's N_l).
    pub fn channels(self) -> i64 {
        LAYERS[self.0].2
    }

    /// How many times the input has been halved by pooling before this layer.
    pub fn poolings_before(self) -> u32 {
        LAYERS[..self.0]
            .iter()
            .filter(|(n, _, _)| POOL_AFTER.contains(n))
            .count() as u32
    }

    /// Spatial size (height, width) of this layer's features for an input of `height` x `width`.
    pub fn feature_size(self, height: i64, width: i64) -> (i64, i64) {
        let d = 1i64 << self.poolings_before();
        (height / d, width / d)
    }

    /// All layer names, in network order.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        LAYERS.iter().map(|(n, _, _)| *n)
    }
}

struct Conv {
    weight: Tensor,
    bias: Tensor,
}

/// The network, on one device.
pub struct Vgg19 {
    convs: Vec<Conv>,
    device: Device,
    precision: Precision,
    channels_last: bool,
}

impl Vgg19 {
    /// Loads the weights from `path` onto `device` in float32, after checking the file's sha256.
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        Self::load_with(path, device, Precision::Fp32, false)
    }

    /// [`Vgg19::load`] with another arithmetic and, optionally, channels-last memory order.
    pub fn load_with(
        path: &Path,
        device: Device,
        precision: Precision,
        channels_last_order: bool,
    ) -> Result<Self> {
        let weights_error = |problem: String| Error::Weights {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| {
            weights_error(format!(
                "cannot read it ({e}); it ships in the project's weights/ folder, or pass --weights"
            ))
        })?;
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex != WEIGHTS_SHA256 {
            return Err(weights_error(format!(
                "damaged or not the expected file: sha256 {hex}, expected {WEIGHTS_SHA256} ({} bytes read)",
                bytes.len()
            )));
        }
        drop(bytes);
        let tensors = Tensor::read_safetensors(path).map_err(|e| weights_error(e.to_string()))?;
        let find = |name: &str| -> Result<&Tensor> {
            tensors
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t)
                .ok_or_else(|| weights_error(format!("tensor '{name}' is missing")))
        };
        let mut convs = Vec::with_capacity(LAYERS.len());
        for (name, c_in, c_out) in LAYERS {
            // conv4_2 is stored as block4_conv2.
            let key = format!("block{}", &name[4..]).replace('_', "_conv");
            let q = find(&format!("{key}.weight_q"))?;
            let table = find(&format!("{key}.weight_table"))?;
            let bias = find(&format!("{key}.bias"))?;
            let shape = [c_out, c_in, 3, 3];
            if q.size() != shape || table.size() != [256] || bias.size() != [c_out] {
                return Err(weights_error(format!(
                    "{key} has shapes {:?}/{:?}/{:?}, expected {shape:?}/[256]/[{c_out}]",
                    q.size(),
                    table.size(),
                    bias.size()
                )));
            }
            let weight = table
                .to_kind(Kind::Float)
                .index_select(0, &q.to_kind(Kind::Int64).flatten(0, -1))
                .view(shape);
            let weight = weight.to_device(device).to_kind(precision.kind());
            convs.push(Conv {
                weight: if channels_last_order {
                    channels_last(&weight)
                } else {
                    weight
                },
                bias: bias.to_device(device).to_kind(precision.kind()),
            });
        }
        Ok(Vgg19 {
            convs,
            device,
            precision,
            channels_last: channels_last_order,
        })
    }

    /// Finds the shipped weights: `$STYLIZE_VIDEO_WEIGHTS`, then `weights/` beside the executable
    /// or two levels above it (`target/release/`), then the source tree the binary was built from.
    pub fn default_weights_path() -> PathBuf {
        if let Some(p) = std::env::var_os("STYLIZE_VIDEO_WEIGHTS") {
            return PathBuf::from(p);
        }
        let mut candidates = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(3) {
                candidates.push(dir.join("weights").join(WEIGHTS_FILE));
                candidates.push(dir.join(WEIGHTS_FILE));
            }
        }
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("weights")
            .join(WEIGHTS_FILE);
        candidates.push(built_from.clone());
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .unwrap_or(built_from)
    }

    /// The device the network lives on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The arithmetic of the convolutions.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether activations are kept in channels-last order.
    pub fn channels_last(&self) -> bool {
        self.channels_last
    }

    /// Runs `x` (N x 3 x H x W, Caffe-preprocessed) through the network as far as the deepest of
    /// `layers`, and returns the rectified features of each of `layers`, in the order given.
    pub fn features(&self, x: &Tensor, pooling: Pooling, layers: &[Layer]) -> Vec<Tensor> {
        let Some(deepest) = layers.iter().max() else {
            return Vec::new();
        };
        let mut out: Vec<Option<Tensor>> = layers.iter().map(|_| None).collect();
        let mut h = x.to_kind(self.precision.kind());
        if self.channels_last {
            h = channels_last(&h);
        }
        let cuda = self.device.is_cuda();
        if cuda {
            // The backward pass reads these from libtorch's global settings.
            super::cudnn::prepare(self.precision);
        }
        for (i, conv) in self.convs.iter().enumerate().take(deepest.0 + 1) {
            h = h
                .f_internal_convolution(
                    &conv.weight,
                    Some(&conv.bias),
                    [1, 1],
                    [1, 1],
                    [1, 1],
                    false,
                    [0, 0],
                    1,
                    cuda,
                    false,
                    true,
                    self.precision == Precision::Tf32,
                )
                .expect("a 3x3 convolution of matching shapes")
                .relu();
            for (slot, layer) in out.iter_mut().zip(layers) {
                if layer.0 == i {
                    // The losses work in float32 whatever the convolutions ran in.
                    *slot = Some(h.to_kind(Kind::Float));
                }
            }
            if i < deepest.0 && POOL_AFTER.contains(&LAYERS[i].0) {
                h = match pooling {
                    Pooling::Avg => h.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None),
                    Pooling::Max => h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false),
                };
            }
        }
        out.into_iter().map(|t| t.expect("layer reached")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_named_as_in_the_paper_or_after_their_relu() {
        let conv = Layer::named("conv4_2").expect("the paper's name");
        assert_eq!(conv.name(), "conv4_2");
        assert_eq!(Layer::named("relu4_2"), Some(conv));
        assert_eq!(Layer::named("relu1_1"), Layer::named("conv1_1"));
        for name in ["relu9_1", "pool1", "relu", "CONV1_1", "conv4_2 "] {
            assert_eq!(Layer::named(name), None, "{name}");
        }
    }
}
