//! The command line, parsed with clap and turned into the library's settings.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Parser, ValueEnum};
use stylize_video::engine::shot::DEFAULT_CUT_THRESHOLD;
use stylize_video::engine::stylizer::{
    GramScale, LayerWeight, LossSettings, OptimizerKind, OptimizerSettings, DEFAULT_STYLE_WEIGHT,
};
use stylize_video::engine::vgg::{Layer, Pooling, Precision, Vgg19};
use stylize_video::error::{listed, Error, Result};
use stylize_video::frames::Ratio;
use stylize_video::io::gif::DEFAULT_MAX_EDGE;
use stylize_video::io::image::BitDepth;
use stylize_video::pipeline::{FrameRange, WarmStart};
use stylize_video::settings::{Init, StyleImage, StyleSettings};
use stylize_video::still::{GifSettings, StillSettings};
use stylize_video::video::{EncodeSettings, VideoSettings};

/// Which runs read a flag.
#[derive(Clone, Copy, PartialEq)]
enum Reads {
    /// Still images only.
    Still,
    /// Videos and frame sequences.
    Moving,
    /// Frame-sequence inputs only (a video keeps its own timing).
    SequenceInput,
    /// Runs whose output is a video file (the encoder's settings).
    VideoOutput,
    /// Runs that also give this other flag (clap's id, as typed).
    With(&'static str, &'static str),
    /// Runs that optimise with L-BFGS.
    Lbfgs,
}

/// What a run is, as far as which flags it reads goes.
struct Run {
    still: bool,
    sequence: bool,
    video_output: bool,
    adam: bool,
    input: String,
    output: String,
}

impl Run {
    /// Why a flag read the `reads` way would have no effect in this run (`given`: whether a
    /// flag, by clap's id, is on the command line), if it would not.
    fn unread(&self, reads: Reads, given: &dyn Fn(&str) -> bool) -> Option<String> {
        let input = &self.input;
        Some(match reads {
            Reads::Still if !self.still => format!(
                "applies to still images only, and '{input}' is a video or frame sequence: leave it out"
            ),
            Reads::Moving | Reads::SequenceInput | Reads::VideoOutput if self.still => format!(
                "applies to videos and frame sequences only, and '{input}' is an image: leave it out"
            ),
            Reads::SequenceInput if !self.sequence => format!(
                "times a frame sequence's frames, and '{input}' is a video, which keeps its own timing: leave it out"
            ),
            Reads::VideoOutput if !self.video_output => format!(
                "sets the video encoder, and the output '{}' is a frame sequence, written as image files: leave it out",
                self.output
            ),
            Reads::With(other, other_flag) => {
                // Where the other flag itself has no effect, neither has this one.
                let partner = PARTIAL_FLAGS.iter().find(|(id, _, _)| *id == other);
                if let Some(why) = partner.and_then(|(_, _, r)| self.unread(*r, given)) {
                    return Some(why);
                }
                if given(other) {
                    return None;
                }
                format!("has no effect without {other_flag}: add {other_flag} or leave it out")
            }
            Reads::Lbfgs if self.adam => {
                "applies to --optimizer lbfgs only, and this run uses adam: leave it out".to_string()
            }
            _ => return None,
        })
    }
}

/// The flags that some runs ignore: (clap's id, as typed, which runs read it).
const PARTIAL_FLAGS: &[(&str, &str, Reads)] = &[
    ("gif", "--gif", Reads::Still),
    ("gif_every", "--gif-every", Reads::With("gif", "--gif")),
    ("gif_size", "--gif-size", Reads::With("gif", "--gif")),
    (
        "patience",
        "--patience",
        Reads::With("tolerance", "--tolerance"),
    ),
    ("lbfgs_history", "--lbfgs-history", Reads::Lbfgs),
    ("line_search", "--line-search", Reads::Lbfgs),
    (
        "first_frame_iterations",
        "--first-frame-iterations",
        Reads::Moving,
    ),
    ("warm_start", "--warm-start", Reads::Moving),
    ("cut_threshold", "--cut-threshold", Reads::Moving),
    ("frames", "--frames", Reads::Moving),
    ("fps", "--fps", Reads::SequenceInput),
    ("output_size", "--output-size", Reads::Moving),
    ("codec", "--codec", Reads::VideoOutput),
    ("crf", "--crf", Reads::VideoOutput),
    ("bitrate", "--bitrate", Reads::VideoOutput),
    ("pix_fmt", "--pix-fmt", Reads::VideoOutput),
    ("no_audio", "--no-audio", Reads::VideoOutput),
    ("restart", "--restart", Reads::Moving),
    ("keep_frames", "--keep-frames", Reads::Moving),
];

/// Paint an image, a video or a frame sequence in the style of a painting (Gatys, Ecker and
/// Bethge, "A Neural Algorithm of Artistic Style").
///
/// Examples: stylize-video photo.jpg --style painting.jpg -o out.png --gif out.gif;
/// stylize-video clip.mp4 --style painting.jpg (writes clip.stylized.mp4);
/// stylize-video shot/%04d.exr --style painting.jpg -o out/%04d.png
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_override_self = true)]
pub struct Args {
    /// The content: an image (PNG, JPEG, TIFF, EXR, BMP, GIF, WebP), a video file (an animated
    /// GIF or PNG too), a folder of frames, or a frame pattern such as shot/%05d.png.
    pub input: PathBuf,

    /// A painting whose style to transfer. Repeat it to blend several (see --style-blend).
    #[arg(short, long = "style", required = true, value_name = "IMAGE")]
    pub styles: Vec<PathBuf>,

    /// Blend weights of the paintings, one per --style, comma-separated (normalised to sum 1).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "W,W,...",
        value_parser = listed_number,
        allow_hyphen_values = true
    )]
    pub style_blend: Vec<f64>,

    /// The output [default: INPUT's name + .stylized, beside it]: an image (.png, .jpg, .tif,
    /// .exr, .bmp, .webp), a video (.mp4, .mkv, .mov, .webm) or a frame pattern
    /// (out/%05d.png).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Processing size: the long edge in pixels. An image output has this size; a video keeps
    /// its own size (see --output-size), and one of non-square pixels is painted at the shape
    /// it is shown at.
    #[arg(long, default_value_t = 512)]
    pub size: u32,

    /// How much optimisation each picture gets: draft (quick previews), normal or final (a
    /// little more of the painting's texture, for twice the time). It sets the iteration counts
    /// that --iterations and --first-frame-iterations leave unsaid.
    #[arg(long, value_enum, default_value_t = QualityArg::Normal)]
    pub quality: QualityArg,

    /// Video: iterations of the first frame, which starts cold (the others start from the
    /// previous result and use --iterations) [default: 500; 100 with --quality draft, 1000
    /// with final].
    #[arg(long)]
    pub first_frame_iterations: Option<usize>,

    /// Video: where each frame after the first starts. flow: the previous result moved along
    /// the optical flow, so that the painted texture follows the motion; previous: the previous
    /// result as it is.
    #[arg(long, value_enum, default_value_t = WarmStartArg::Flow)]
    pub warm_start: WarmStartArg,

    /// Video: a frame that differs from the previous one by more than this where the motion
    /// does not explain it (mean over pixels, 0..255) starts a new shot: it starts cold, with
    /// --first-frame-iterations, instead of from a painting of another picture. 0: never.
    #[arg(long, default_value_t = DEFAULT_CUT_THRESHOLD, allow_negative_numbers = true)]
    pub cut_threshold: f64,

    /// Video: render frames START:END only (positions from 0, END excluded; either may be left
    /// out).
    #[arg(long, value_name = "START:END")]
    pub frames: Option<String>,

    /// Frame-sequence input: frames per second (25, 29.97 or 30000/1001).
    #[arg(long, default_value = "25")]
    pub fps: String,

    /// Video: long edge of the output [default: the input's size; the stylised frames are
    /// scaled up].
    #[arg(long, value_name = "PX")]
    pub output_size: Option<u32>,

    /// Bits per channel of PNG or TIFF results (an image, or a sequence's frames).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(8..=16))]
    pub bit_depth: u8,

    /// Video output: codec (h264, h265, vp9, av1, prores, ffv1, or an ffmpeg encoder name)
    /// [default: h264; vp9 for .webm].
    #[arg(long)]
    pub codec: Option<String>,

    /// Video output: constant rate factor (quality; lower is better) [default: 18].
    #[arg(long)]
    pub crf: Option<f32>,

    /// Video output: bit rate instead of a constant quality (e.g. 8M, 2500k).
    #[arg(long)]
    pub bitrate: Option<String>,

    /// Video output: pixel format (yuv420p, yuv444p, yuv420p10le, ...) [default: yuv420p].
    #[arg(long)]
    pub pix_fmt: Option<String>,

    /// Video output: leave the sound out.
    #[arg(long)]
    pub no_audio: bool,

    /// Video: discard the frames kept from an earlier run and paint every frame again (needed to
    /// change settings with frames kept; a sequence's frames already written need --overwrite too).
    #[arg(long)]
    pub restart: bool,

    /// Video: keep the finished frames (16-bit PNG at the processing size) after the output is
    /// complete.
    #[arg(long)]
    pub keep_frames: bool,

    /// Maximum optimiser iterations per image, or per warm frame of a video (0 writes the
    /// start) [default: 500 for images, 100 for warm video frames; a fifth of that with
    /// --quality draft, twice with final].
    #[arg(short = 'n', long)]
    pub iterations: Option<usize>,

    /// Content weight; the paper's α at a 512x512 processing size (α = this · 512² / (W·H)).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub content_weight: f64,

    /// Style weight; the paper's β.
    #[arg(long, default_value_t = DEFAULT_STYLE_WEIGHT, allow_negative_numbers = true)]
    pub style_weight: f64,

    /// Total-variation (smoothness) weight, scaled like --content-weight.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub tv_weight: f64,

    /// Content layer(s), comma-separated, each optionally with a weight: conv4_2 or conv4_2:1.
    /// Features are taken after each layer's ReLU, so relu4_2 (neural-style's name) is the same.
    #[arg(long, value_delimiter = ',', default_value = "conv4_2")]
    pub content_layers: Vec<String>,

    /// Style layers, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "conv1_1,conv2_1,conv3_1,conv4_1,conv5_1"
    )]
    pub style_layers: Vec<String>,

    /// Weights w_l of the style layers, one per layer [default: equal, summing to 1].
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = listed_number,
        allow_hyphen_values = true
    )]
    pub style_layer_weights: Vec<f64>,

    /// The painting's long edge relative to the processing size (or to its own long edge when
    /// that is smaller: paintings are not enlarged by default, which would blur their strokes).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub style_scale: f64,

    /// Pooling between the network's blocks.
    #[arg(long, value_enum, default_value_t = PoolingArg::Avg)]
    pub pooling: PoolingArg,

    /// How the painting's Gram matrices compare with the image's when their sizes differ:
    /// per-position (rescaled to the image's size) or paper (as they are).
    #[arg(long, value_enum, default_value_t = GramScaleArg::PerPosition)]
    pub gram_scale: GramScaleArg,

    /// Where the optimisation starts: content, noise, or the path of an image.
    #[arg(long, default_value = "content", value_name = "content|noise|IMAGE")]
    pub init: String,

    /// Share of seeded noise mixed into the start (0..1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub init_noise: f64,

    /// The optimiser.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Lbfgs)]
    pub optimizer: OptimizerArg,

    /// Step size: L-BFGS's step along its direction [default: 1]; Adam's in pixel units
    /// [default: 10].
    #[arg(long)]
    pub learning_rate: Option<f64>,

    /// L-BFGS: correction pairs kept.
    #[arg(long, default_value_t = 50)]
    pub lbfgs_history: usize,

    /// L-BFGS: backtracking line search (safer, more evaluations per iteration).
    #[arg(long)]
    pub line_search: bool,

    /// Let pixels leave 0..255 while optimising, as neural-style does: the picture is then
    /// clipped only when written, and its loss is higher than the optimiser's (by 6-50 % in
    /// measurements). By default every pixel is kept within range, so the picture written is
    /// the one optimised.
    #[arg(long)]
    pub unbounded: bool,

    /// Stop early once the relative loss change stays below this for --patience iterations
    /// (0: never). L-BFGS's unscaled first step, which barely moves the loss, does not count.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub tolerance: f64,

    /// See --tolerance.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,

    /// Seed of the noise initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,

    /// Keep the content's original colours (only the luminance is stylised).
    #[arg(long)]
    pub preserve_colors: bool,

    /// Compute device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,

    /// Arithmetic of the network's convolutions: fp32 (exact), tf32 (tensor cores on NVIDIA
    /// GPUs; PyTorch's default for convolutions), bf16; auto is tf32 on a GPU, fp32 on the CPU.
    /// Losses and Gram matrices stay float32.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Auto)]
    pub precision: PrecisionArg,

    /// Memory order of the activations; auto is channels-last, what tensor cores prefer (and it
    /// spares cuDNN's large workspaces) and what measured fastest on the CPU too (fp32 10 %,
    /// bf16 1.4-1.9x faster than contiguous). The pictures differ only by summation order.
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub layout: LayoutArg,

    /// The same as --layout channels-last.
    #[arg(long, conflicts_with = "layout")]
    pub channels_last: bool,

    /// Write an animated GIF of the optimisation here.
    #[arg(long, value_name = "PATH")]
    pub gif: Option<PathBuf>,

    /// GIF: record every this many iterations [default: about 50 frames in all].
    #[arg(long, value_name = "K")]
    pub gif_every: Option<usize>,

    /// GIF: cap on its long edge, in pixels.
    #[arg(long, default_value_t = DEFAULT_MAX_EDGE)]
    pub gif_size: u32,

    /// Write a JSON report (settings, losses, history, timings) here.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Replace existing outputs.
    #[arg(long)]
    pub overwrite: bool,

    /// The VGG19 weights [default: weights/vgg19-caffe-q8.safetensors as shipped].
    #[arg(long, value_name = "PATH")]
    pub weights: Option<PathBuf>,

    /// No progress bar or messages, only errors.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PoolingArg {
    Avg,
    Max,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GramScaleArg {
    PerPosition,
    Paper,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PrecisionArg {
    Auto,
    Fp32,
    Tf32,
    Bf16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LayoutArg {
    Auto,
    Contiguous,
    ChannelsLast,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WarmStartArg {
    Flow,
    Previous,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerArg {
    Lbfgs,
    Adam,
}

/// Effort presets, in iterations (see [`QualityArg::iterations`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum QualityArg {
    Draft,
    Normal,
    Final,
}

/// Iterations per picture under one preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effort {
    /// A still image.
    pub still: usize,
    /// A video's first frame, and the first frame of each new shot (cold starts).
    pub first_frame: usize,
    /// A video's other frames (warm starts).
    pub warm: usize,
}

impl QualityArg {
    /// The iteration counts of the preset. Normal: 500 for a still or a cold frame, 100 for a
    /// warm frame. Draft, a fifth of that: a 128 px still's loss at 100 iterations is 1.11x its
    /// loss at 500. Final, twice: 0.989x at 1000 (Big Buck Bunny frame 60, Van Gogh).
    pub fn iterations(self) -> Effort {
        match self {
            QualityArg::Draft => Effort {
                still: 100,
                first_frame: 100,
                warm: 20,
            },
            QualityArg::Normal => Effort {
                still: OptimizerSettings::default().iterations,
                first_frame: stylize_video::video::FIRST_FRAME_ITERATIONS,
                warm: stylize_video::video::WARM_ITERATIONS,
            },
            QualityArg::Final => Effort {
                still: 1000,
                first_frame: 1000,
                warm: 200,
            },
        }
    }
}

/// Frame rates of the NTSC family, which decimals such as 29.97 and 119.88 stand for (each of
/// them divided by 1.001).
const NTSC_RATES: [i32; 9] = [12, 15, 24, 30, 48, 60, 96, 120, 240];

fn parse_fps(text: &str) -> Result<Ratio> {
    let typed = text.trim();
    let bad = |problem: &str| Error::setting("--fps", typed, problem.to_string());
    let example = "a frame rate such as 25, 29.97 or 30000/1001";
    if let Some((n, d)) = typed.split_once('/') {
        let (n, d): (i32, i32) = (
            n.trim().parse().map_err(|_| bad(example))?,
            d.trim().parse().map_err(|_| bad(example))?,
        );
        return Ok(Ratio::new(n, d));
    }
    let f: f64 = typed.parse().map_err(|_| bad(example))?;
    if !(f.is_finite() && f > 0.0 && f <= 1000.0) {
        return Err(bad("must be above 0 and at most 1000"));
    }
    // 29.97 → 30000/1001, 119.88 → 120000/1001, as video people mean them.
    for k in NTSC_RATES {
        if (f * 1.001 - f64::from(k)).abs() < 0.005 {
            return Ok(Ratio::new(k * 1000, 1001));
        }
    }
    // Any other decimal as written (7.4925 is 2997/400), to a millionth.
    let den = if typed.contains(['e', 'E']) {
        1_000_000
    } else {
        let decimals = typed.split_once('.').map_or(0, |(_, d)| d.len().min(6));
        10i32.pow(decimals as u32)
    };
    let num = (f * f64::from(den)).round() as i32;
    if num == 0 {
        return Err(bad("must be above 0 and at most 1000"));
    }
    Ok(Ratio::new(num, den).reduced())
}

fn parse_range(text: &str) -> Result<FrameRange> {
    let bad = || Error::setting("--frames", text, "START:END, e.g. 0:48, 100: or :24");
    let (a, b) = text.split_once(':').ok_or_else(bad)?;
    let start = if a.trim().is_empty() {
        0
    } else {
        a.trim().parse().map_err(|_| bad())?
    };
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(b.trim().parse().map_err(|_| bad())?)
    };
    Ok(FrameRange { start, end })
}

fn parse_bitrate(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_lowercase();
    let (digits, scale) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = digits
        .parse()
        .map_err(|_| Error::setting("--bitrate", text, "a bit rate such as 8M or 2500k"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::setting("--bitrate", text, "must be above 0"));
    }
    let bits = (v * scale).round();
    // Encoders need some thousands of bits a second for the smallest picture.
    if bits < MIN_BITRATE {
        let problem = if scale == 1.0 {
            format!("{bits} bits a second is far too low for video: did you mean {digits}M or {digits}k?")
        } else {
            format!("{bits} bits a second is far too low for video: give at least 10k")
        };
        return Err(Error::setting("--bitrate", text, problem));
    }
    Ok(bits as u64)
}

/// The lowest `--bitrate` taken, in bits a second.
const MIN_BITRATE: f64 = 10_000.0;

fn layer(flag: &str, name: &str) -> Result<Layer> {
    Layer::named(name.trim()).ok_or_else(|| {
        let names: Vec<&str> = Layer::all_names().collect();
        Error::setting(
            flag,
            name,
            format!("not a VGG19 layer; use one of {}", names.join(", ")),
        )
    })
}

/// A number of a comma-separated list, spaces around it allowed (`--style-blend "0.7, 0.3"`).
fn listed_number(text: &str) -> std::result::Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))
}

fn parse_weight(flag: &str, text: &str) -> Result<f64> {
    text.trim()
        .parse()
        .map_err(|_| Error::setting(flag, text, "not a number"))
}

/// Whether an output written as image files (not a video) takes 16 bits per channel: PNG and
/// TIFF do.
fn takes_sixteen_bits(output: &Path, video_output: bool) -> bool {
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    !video_output && ["png", "tif", "tiff"].contains(&ext.as_str())
}

/// The default output: `photo.jpg` → `photo.stylized.jpg` beside it (PNG for formats not
/// written).
pub fn default_output(input: &Path) -> PathBuf {
    let mut name = input
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_else(|| "output".into());
    let ext = input
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .filter(|e| {
            ["png", "jpg", "jpeg", "tif", "tiff", "exr", "bmp", "webp"].contains(&e.as_str())
        })
        .unwrap_or_else(|| "png".into());
    name.push(format!(".stylized.{ext}"));
    input.with_file_name(name)
}

impl Args {
    /// The loss settings the flags describe.
    pub fn loss(&self) -> Result<LossSettings> {
        let mut content_layers = Vec::new();
        for spec in &self.content_layers {
            let (name, weight) = match spec.split_once(':') {
                Some((n, w)) => (n, parse_weight("--content-layers", w)?),
                None => (spec.as_str(), 1.0),
            };
            content_layers.push(LayerWeight {
                layer: layer("--content-layers", name)?,
                weight,
            });
        }
        let style: Vec<Layer> = self
            .style_layers
            .iter()
            .map(|n| layer("--style-layers", n))
            .collect::<Result<_>>()?;
        let weights = if self.style_layer_weights.is_empty() {
            vec![1.0 / style.len().max(1) as f64; style.len()]
        } else if self.style_layer_weights.len() == style.len() {
            self.style_layer_weights.clone()
        } else {
            return Err(Error::setting(
                "--style-layer-weights",
                listed(self.style_layer_weights.iter().copied()),
                format!("give one weight per style layer ({})", style.len()),
            ));
        };
        Ok(LossSettings {
            content_layers,
            style_layers: style
                .into_iter()
                .zip(weights)
                .map(|(layer, weight)| LayerWeight { layer, weight })
                .collect(),
            content_weight: self.content_weight,
            style_weight: self.style_weight,
            tv_weight: self.tv_weight,
            pooling: match self.pooling {
                PoolingArg::Avg => Pooling::Avg,
                PoolingArg::Max => Pooling::Max,
            },
            gram_scale: match self.gram_scale {
                GramScaleArg::PerPosition => GramScale::PerPosition,
                GramScaleArg::Paper => GramScale::Paper,
            },
        })
    }

    /// The optimiser settings the flags describe.
    pub fn optimizer(&self) -> OptimizerSettings {
        let kind = match self.optimizer {
            OptimizerArg::Lbfgs => OptimizerKind::Lbfgs {
                history: self.lbfgs_history,
                learning_rate: self.learning_rate.unwrap_or(1.0),
                line_search: self.line_search,
            },
            OptimizerArg::Adam => OptimizerKind::Adam {
                learning_rate: self.learning_rate.unwrap_or(10.0),
            },
        };
        OptimizerSettings {
            kind,
            iterations: 0,
            tolerance: self.tolerance,
            patience: self.patience,
            bounded: !self.unbounded,
        }
    }

    /// How the result looks, from the flags; `iterations` is the resolved iteration count.
    pub fn style(&self, iterations: usize) -> Result<StyleSettings> {
        let blend = if self.style_blend.is_empty() {
            vec![1.0; self.styles.len()]
        } else if self.style_blend.len() == self.styles.len() {
            self.style_blend.clone()
        } else {
            return Err(Error::setting(
                "--style-blend",
                listed(self.style_blend.iter().copied()),
                format!("give one weight per --style ({})", self.styles.len()),
            ));
        };
        let init = match self.init.as_str() {
            "content" => Init::Content,
            "noise" => Init::Noise,
            path => Init::Image(PathBuf::from(path)),
        };
        let mut optimizer = self.optimizer();
        optimizer.iterations = iterations;
        let device = stylize_video::device::parse(&self.device)?;
        let gpu = device.is_cuda();
        Ok(StyleSettings {
            styles: self
                .styles
                .iter()
                .zip(blend)
                .map(|(path, blend)| StyleImage {
                    path: path.clone(),
                    blend,
                })
                .collect(),
            size: self.size,
            style_scale: self.style_scale,
            init,
            noise_ratio: self.init_noise,
            seed: self.seed,
            preserve_colors: self.preserve_colors,
            loss: self.loss()?,
            optimizer,
            device,
            precision: match self.precision {
                PrecisionArg::Auto if gpu => Precision::Tf32,
                PrecisionArg::Auto | PrecisionArg::Fp32 => Precision::Fp32,
                PrecisionArg::Tf32 => Precision::Tf32,
                PrecisionArg::Bf16 => Precision::Bf16,
            },
            // Auto is channels-last, and --channels-last (which excludes --layout) says the same.
            channels_last: !matches!(self.layout, LayoutArg::Contiguous),
            weights: self
                .weights
                .clone()
                .unwrap_or_else(Vgg19::default_weights_path),
        })
    }

    /// All the settings of a video or frame-sequence run.
    pub fn video(&self) -> Result<VideoSettings> {
        Ok(VideoSettings {
            input: self.input.clone(),
            output: self.output_path(false),
            style: self.style(self.iterations.unwrap_or(self.quality.iterations().warm))?,
            first_frame_iterations: self
                .first_frame_iterations
                .unwrap_or(self.quality.iterations().first_frame),
            warm_start: match self.warm_start {
                WarmStartArg::Flow => WarmStart::Flow,
                WarmStartArg::Previous => WarmStart::Previous,
            },
            cut_threshold: self.cut_threshold,
            range: match &self.frames {
                Some(text) => parse_range(text)?,
                None => FrameRange::default(),
            },
            fps: parse_fps(&self.fps)?,
            output_size: self.output_size,
            bit_depth: self.depth()?,
            encode: EncodeSettings {
                codec: self.codec.clone(),
                crf: self.crf,
                bitrate: self.bitrate.as_deref().map(parse_bitrate).transpose()?,
                pix_fmt: self.pix_fmt.clone(),
                audio: !self.no_audio,
            },
            report: self.report.clone(),
            overwrite: self.overwrite,
            restart: self.restart,
            keep_frames: self.keep_frames,
        })
    }

    /// `--bit-depth` as the library takes it.
    fn depth(&self) -> Result<BitDepth> {
        match self.bit_depth {
            8 => Ok(BitDepth::Eight),
            16 => Ok(BitDepth::Sixteen),
            d => Err(Error::setting("--bit-depth", d, "8 or 16")),
        }
    }

    /// Refuses a flag given on the command line that this kind of run would ignore (a GIF asked
    /// of a video, a frame range asked of a still, an encoder setting for a frame sequence,
    /// 16 bits for a JPEG, ...), naming it.
    pub fn check_applicable(&self, matches: &ArgMatches) -> Result<()> {
        let still = self.is_still();
        let output = self.output_path(still);
        let run = Run {
            still,
            sequence: stylize_video::io::sequence::is_sequence(&self.input),
            video_output: !still && !stylize_video::video::is_sequence_output(&output),
            adam: matches!(self.optimizer, OptimizerArg::Adam),
            input: self.input.display().to_string(),
            output: output.display().to_string(),
        };
        // An animation with a still's output is refused as such by the run, which says how to
        // paint every frame; a video's flag is no mistake then, and calling it an image would be.
        if still && stylize_video::io::image::animation_format(&self.input).is_some() {
            return Ok(());
        }
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        for (id, flag, reads) in PARTIAL_FLAGS {
            if !given(id) {
                continue;
            }
            let Some(problem) = run.unread(*reads, &given) else {
                continue;
            };
            let value: Vec<String> = matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            return Err(Error::setting(flag, value.join(" "), problem));
        }
        let counts_given = if still {
            given("iterations")
        } else {
            given("iterations") && given("first_frame_iterations")
        };
        if given("quality") && counts_given {
            return Err(Error::setting(
                "--quality",
                format!("{:?}", self.quality).to_lowercase(),
                "sets the iteration counts, and this run gives them all: leave one out",
            ));
        }
        let noise = self.init == "noise";
        if given("init_noise") && noise {
            return Err(Error::setting(
                "--init-noise",
                self.init_noise,
                "has no effect with --init noise, which starts from noise alone: leave it out",
            ));
        }
        if given("seed") && !noise && self.init_noise == 0.0 {
            return Err(Error::setting(
                "--seed",
                self.seed,
                "seeds the noise of --init noise or --init-noise, and this run starts without noise: leave it out",
            ));
        }
        if self.bit_depth == 16 && !takes_sixteen_bits(&output, run.video_output) {
            return Err(Error::setting(
                "--bit-depth",
                self.bit_depth,
                format!(
                    "only PNG and TIFF files take 16 bits, and the output is '{}': write .png or .tif, or leave it out",
                    output.display()
                ),
            ));
        }
        Ok(())
    }

    /// Where the run writes: `--output`, or the default for the input.
    fn output_path(&self, still: bool) -> PathBuf {
        match &self.output {
            Some(path) => path.clone(),
            None if still => default_output(&self.input),
            None => stylize_video::video::default_output(&self.input),
        }
    }

    /// Whether the run is a still image (else a video or a frame sequence).
    pub fn is_still(&self) -> bool {
        stylize_video::video::is_still_run(&self.input, self.output.as_deref())
    }

    /// All the settings of a still-image run.
    pub fn still(&self) -> Result<StillSettings> {
        Ok(StillSettings {
            content: self.input.clone(),
            output: self.output_path(true),
            gif: self.gif.as_ref().map(|path| GifSettings {
                path: path.clone(),
                every: self.gif_every,
                max_edge: self.gif_size,
            }),
            report: self.report.clone(),
            overwrite: self.overwrite,
            bit_depth: self.depth()?,
            style: self.style(self.iterations.unwrap_or(self.quality.iterations().still))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_presets_resolve_to_iteration_counts() {
        let parse = |extra: &[&str]| {
            let mut line = vec!["stylize-video", "frame.png", "--style", "painting.jpg"];
            line.extend_from_slice(extra);
            Args::try_parse_from(line).unwrap()
        };
        let counts = |extra: &[&str]| {
            let args = parse(extra);
            let still = args.still().unwrap().style.optimizer.iterations;
            let video = args.video().unwrap();
            (
                still,
                video.first_frame_iterations,
                video.style.optimizer.iterations,
            )
        };
        assert_eq!(counts(&[]), (500, 500, 100));
        assert_eq!(counts(&["--quality", "draft"]), (100, 100, 20));
        assert_eq!(counts(&["--quality", "normal"]), (500, 500, 100));
        assert_eq!(counts(&["--quality", "final"]), (1000, 1000, 200));
        assert_eq!(counts(&["--quality", "final", "-n", "7"]), (7, 1000, 7));
        assert_eq!(
            counts(&["--quality", "draft", "--first-frame-iterations", "9"]),
            (100, 9, 20)
        );
    }

    #[test]
    fn frame_rates_are_read_as_video_people_mean_them() {
        let rate = |t: &str| parse_fps(t).map(|r| (r.num, r.den)).ok();
        // The NTSC family, however many decimals are typed.
        assert_eq!(rate("29.97"), Some((30000, 1001)));
        assert_eq!(rate("23.976"), Some((24000, 1001)));
        assert_eq!(rate("59.94"), Some((60000, 1001)));
        assert_eq!(rate("119.88"), Some((120000, 1001)));
        assert_eq!(rate("47.952"), Some((48000, 1001)));
        assert_eq!(rate("14.985"), Some((15000, 1001)));
        // Other decimals as written.
        assert_eq!(rate("25"), Some((25, 1)));
        assert_eq!(rate("12.5"), Some((25, 2)));
        assert_eq!(rate("7.4925"), Some((2997, 400)));
        assert_eq!(rate(" 30 "), Some((30, 1)));
        assert_eq!(rate("30000/1001"), Some((30000, 1001)));
        // Refused with what was typed.
        for bad in ["1e9", "1e-9", "0", "-25", "inf", "NaN", "fast"] {
            let message = parse_fps(bad).unwrap_err().to_string();
            assert!(message.contains(&format!("--fps = {bad}")), "{message}");
        }
    }
}
