//! The settings a still image and a video share: the paintings, the processing size, the start,
//! the loss and the optimiser; with the work they share (loading the paintings, making the start).

use std::path::{Path, PathBuf};

use image::Rgb32FImage;
use serde_json::{json, Map, Value};
use tch::{Device, Kind, Tensor};

use crate::engine::preprocess::{resize, to_network};
use crate::engine::stylizer::{LossSettings, OptimizerSettings};
use crate::engine::vgg::{Precision, Vgg19};
use crate::error::{Error, Result};
use crate::io::image as picture;
use crate::report::engine_settings;

/// Standard deviation of the noise start, in pixel units (0..255 scale), around the mean colour:
/// faint noise, as in Gatys' own code.
pub const NOISE_STD: f64 = 1.0;

/// Largest `--style-scale`.
pub const MAX_STYLE_SCALE: f64 = 8.0;

/// Where the optimisation starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// The content image (default).
    Content,
    /// Faint Gaussian noise around the mean colour (seeded).
    Noise,
    /// Any image, scaled to the processing size.
    Image(PathBuf),
}

/// A painting and its blend weight.
#[derive(Clone, Debug, PartialEq)]
pub struct StyleImage {
    /// The painting.
    pub path: PathBuf,
    /// Its weight in the blend; weights are normalised to sum to 1. Default 1.
    pub blend: f64,
}

/// How the result looks: everything but the inputs and outputs.
#[derive(Clone, Debug)]
pub struct StyleSettings {
    /// The painting(s).
    pub styles: Vec<StyleImage>,
    /// Processing size: the long edge in pixels; default 512.
    pub size: u32,
    /// The painting's long edge relative to the processing size (or to its own long edge when
    /// that is smaller); default 1.
    pub style_scale: f64,
    /// Where the (first) optimisation starts.
    pub init: Init,
    /// Share of noise mixed into the start, 0..1 (1 for `Init::Noise`); default 0.
    pub noise_ratio: f64,
    /// Seed of the noise; default 0.
    pub seed: i64,
    /// Keep the content's colours (luminance transfer).
    pub preserve_colors: bool,
    /// The loss.
    pub loss: LossSettings,
    /// The optimiser (for videos: of the warm frames).
    pub optimizer: OptimizerSettings,
    /// The compute device.
    pub device: Device,
    /// Arithmetic of the network's convolutions (the command line's default: TF32 on a GPU,
    /// float32 on the CPU).
    pub precision: Precision,
    /// Channels-last activations, what tensor cores prefer and what measured fastest on the CPU
    /// too (the command line's default).
    pub channels_last: bool,
    /// The VGG19 weights file.
    pub weights: PathBuf,
}

impl StyleSettings {
    /// The command line's defaults for `paintings`, blended equally: a long edge of 512 pixels,
    /// the paintings at that size, starting from the content, the paper's loss
    /// ([`LossSettings::default`]), 500 iterations of L-BFGS ([`OptimizerSettings::default`]),
    /// the first CUDA GPU if there is one (in TF32) or else the CPU (in float32), channels-last,
    /// and the bundled weights ([`Vgg19::default_weights_path`]). Change any field after.
    pub fn new<P: Into<PathBuf>>(paintings: impl IntoIterator<Item = P>) -> Self {
        let device = Device::cuda_if_available();
        StyleSettings {
            styles: paintings
                .into_iter()
                .map(|path| StyleImage {
                    path: path.into(),
                    blend: 1.0,
                })
                .collect(),
            size: 512,
            style_scale: 1.0,
            init: Init::Content,
            noise_ratio: 0.0,
            seed: 0,
            preserve_colors: false,
            loss: LossSettings::default(),
            optimizer: OptimizerSettings::default(),
            device,
            precision: if device.is_cuda() {
                Precision::Tf32
            } else {
                Precision::Fp32
            },
            channels_last: true,
            weights: Vgg19::default_weights_path(),
        }
    }

    /// Refuses an output that is the run's `content` or one of its paintings, however spelt.
    pub(crate) fn check_not_an_input(&self, output: &Path, content: &Path) -> Result<()> {
        let same = |input: &Path| crate::io::atomic::same_file(output, input);
        if same(content) || self.styles.iter().any(|s| same(&s.path)) {
            return Err(Error::output(output, "is one of the inputs"));
        }
        Ok(())
    }

    /// Checks every value, naming the flag of a bad one.
    pub fn validate(&self) -> Result<()> {
        if self.size < picture::MIN_SIDE || self.size > picture::MAX_SIDE {
            return Err(Error::setting(
                "--size",
                self.size,
                format!(
                    "must be between {} and {} pixels",
                    picture::MIN_SIDE,
                    picture::MAX_SIDE
                ),
            ));
        }
        if !(self.style_scale > 0.0 && self.style_scale <= MAX_STYLE_SCALE) {
            return Err(Error::setting(
                "--style-scale",
                self.style_scale,
                format!("must be above 0 and at most {MAX_STYLE_SCALE}"),
            ));
        }
        if !(0.0..=1.0).contains(&self.noise_ratio) {
            return Err(Error::setting(
                "--init-noise",
                self.noise_ratio,
                "must be between 0 and 1",
            ));
        }
        if self.styles.is_empty() {
            return Err(Error::setting(
                "--style",
                "(none)",
                "give at least one painting",
            ));
        }
        self.loss.validate()?;
        self.optimizer.validate()
    }

    /// What the user should know before the run: a painting or start image of several
    /// pictures (its first is used), an arithmetic that does nothing on the device.
    pub fn warnings(&self) -> Vec<String> {
        let init = match &self.init {
            Init::Image(path) => Some((path, "--init")),
            _ => None,
        };
        let inputs = self.styles.iter().map(|s| (&s.path, "--style")).chain(init);
        let mut warnings: Vec<String> = inputs
            .filter_map(|(path, flag)| {
                picture::several_pictures(path).map(|what| {
                    format!(
                        "{flag} '{}' is {what}: only its first picture is used",
                        path.display()
                    )
                })
            })
            .collect();
        warnings.extend(crate::device::precision_warning(
            self.device,
            self.precision,
        ));
        warnings
    }

    /// The network, on the device and in the arithmetic asked for.
    pub(crate) fn network(&self) -> Result<Vgg19> {
        Vgg19::load_with(
            &self.weights,
            self.device,
            self.precision,
            self.channels_last,
        )
    }

    /// The paintings in network space with their blend weights. A painting's long edge is the
    /// processing size, or its own long edge if that is smaller (enlarging a painting only blurs
    /// its brush strokes), times `--style-scale`.
    pub(crate) fn load_styles(&self) -> Result<Vec<(Tensor, f64)>> {
        let mut styles = Vec::with_capacity(self.styles.len());
        for style in &self.styles {
            let painting = picture::load(&style.path)?;
            let own = painting.width().max(painting.height());
            let edge = (f64::from(self.size.min(own)) * self.style_scale).round() as u32;
            let (w, h) = picture::check_processing_size(
                &style.path,
                "--style-scale",
                self.style_scale,
                painting.dimensions(),
                edge,
            )?;
            styles.push((
                to_network(&resize(&painting, w, h), self.device),
                style.blend,
            ));
        }
        Ok(styles)
    }

    /// The start image of `--init IMAGE`, scaled to `width` x `height`, with a warning where
    /// that changes its shape (it is stretched, as neural-style does, not cropped).
    pub(crate) fn load_init_image(
        &self,
        width: u32,
        height: u32,
    ) -> Result<(Option<Rgb32FImage>, Option<String>)> {
        let Init::Image(path) = &self.init else {
            return Ok((None, None));
        };
        let image = picture::load(path)?;
        let (w, h) = image.dimensions();
        let aspect = |w: u32, h: u32| f64::from(w) / f64::from(h);
        // Beyond what rounding to whole pixels does.
        let stretched = (aspect(w, h) / aspect(width, height) - 1.0).abs() > 0.02;
        let warning = stretched.then(|| {
            format!(
                "--init '{}' is {w}x{h}, of another shape than the content's {width}x{height}: \
                 it is stretched to it",
                path.display()
            )
        });
        Ok((Some(resize(&image, width, height)), warning))
    }

    /// The start of an optimisation without a previous result: the content (network space),
    /// the `--init` image or noise, with `noise_ratio` of noise mixed in.
    pub(crate) fn initial_image(
        &self,
        content: &Tensor,
        init_image: Option<&Rgb32FImage>,
    ) -> Tensor {
        let base = match init_image {
            Some(image) => to_network(image, self.device),
            None => content.shallow_clone(),
        };
        let ratio = match self.init {
            Init::Noise => 1.0,
            _ => self.noise_ratio,
        };
        if ratio == 0.0 {
            return base;
        }
        // Drawn on the CPU so that a seed gives the same start on every device.
        tch::manual_seed(self.seed);
        let noise = (Tensor::randn(base.size(), (Kind::Float, Device::Cpu)) * NOISE_STD)
            .to_device(self.device);
        base * (1.0 - ratio) + noise * ratio
    }

    /// Every resolved setting for a report, at a processing size of `width` x `height`.
    pub fn report(&self, width: u32, height: u32) -> Map<String, Value> {
        let mut s = engine_settings(
            &self.loss,
            &self.optimizer,
            i64::from(height),
            i64::from(width),
        );
        let init = match &self.init {
            Init::Content => Value::from("content"),
            Init::Noise => Value::from("noise"),
            Init::Image(p) => Value::from(p.display().to_string()),
        };
        // The blend as used: normalised to sum to 1.
        let blends: f64 = self.styles.iter().map(|s| s.blend).sum();
        let share = |blend: f64| if blends > 0.0 { blend / blends } else { blend };
        let extra = json!({
            "size": self.size,
            "processing_width": width,
            "processing_height": height,
            "styles": self.styles.iter().map(|s| json!({
                "path": s.path.display().to_string(), "blend": share(s.blend)
            })).collect::<Vec<_>>(),
            "style_scale": self.style_scale,
            "init": init,
            "init_noise": self.noise_ratio,
            "seed": self.seed,
            "preserve_colors": self.preserve_colors,
            "device": crate::device::describe(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "weights": self.weights.display().to_string(),
        });
        if let Value::Object(extra) = extra {
            s.extend(extra);
        }
        s
    }
}
