//! Stylising one still image from files to files: load, scale to the processing size, optimise,
//! write the result, the iteration GIF and the report.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::Rgb32FImage;
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

use crate::engine::preprocess::{self, from_network, resize, scaled_size, to_network};
use crate::engine::stylizer::{LossSettings, OptimizerSettings, Outcome, StyleTarget, Stylizer};
use crate::engine::vgg::Vgg19;
use crate::error::{Error, Result};
use crate::io::gif::GifRecorder;
use crate::io::{atomic, image as picture};
use crate::progress::Progress;
use crate::report::{engine_settings, FrameReport, Report};

/// Standard deviation of the noise initialisation, in pixel units (0..255 scale), around the
/// mean colour.
pub const NOISE_STD: f64 = 1.0;

/// Largest `--style-scale`.
pub const MAX_STYLE_SCALE: f64 = 8.0;

/// Where the optimisation starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// The content image (default).
    Content,
    /// Gaussian noise around the mean colour (seeded).
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

/// The iteration GIF.
#[derive(Clone, Debug, PartialEq)]
pub struct GifSettings {
    /// Where to write it.
    pub path: PathBuf,
    /// Record every this many iterations; `None` chooses about 50 frames.
    pub every: Option<usize>,
    /// Cap on the long edge, in pixels; default 512.
    pub max_edge: u32,
}

/// Everything one still-image run needs.
#[derive(Clone, Debug)]
pub struct StillSettings {
    /// The content image.
    pub content: PathBuf,
    /// The painting(s).
    pub styles: Vec<StyleImage>,
    /// The output image; its extension picks the format.
    pub output: PathBuf,
    /// Processing size: the long edge in pixels (default 512). The output has this size.
    pub size: u32,
    /// The painting's long edge relative to the processing size; default 1.
    pub style_scale: f64,
    /// Where the optimisation starts.
    pub init: Init,
    /// Share of noise mixed into the start, 0..1 (1 for `Init::Noise`); default 0.
    pub noise_ratio: f64,
    /// Seed of the noise; default 0.
    pub seed: i64,
    /// Keep the content's colours (luminance transfer).
    pub preserve_colors: bool,
    /// The iteration GIF, if wanted.
    pub gif: Option<GifSettings>,
    /// The JSON report, if wanted.
    pub report: Option<PathBuf>,
    /// Replace existing outputs.
    pub overwrite: bool,
    /// The loss.
    pub loss: LossSettings,
    /// The optimiser.
    pub optimizer: OptimizerSettings,
    /// The compute device.
    pub device: Device,
    /// The VGG19 weights file.
    pub weights: PathBuf,
}

/// What a still-image run did.
pub struct StillSummary {
    /// The optimisation's outcome.
    pub outcome: Outcome,
    /// Processing size (width, height).
    pub size: (u32, u32),
    /// Seconds spent optimising.
    pub seconds: f64,
    /// Frames written to the GIF, if one was asked for.
    pub gif_frames: Option<usize>,
}

impl StillSettings {
    /// Checks every value and that every output can be written, before any work is done.
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
        self.optimizer.validate()?;
        picture::output_format(&self.output)?;
        let mut outputs = vec![self.output.as_path()];
        if let Some(gif) = &self.gif {
            if gif.max_edge < picture::MIN_SIDE {
                return Err(Error::setting(
                    "--gif-size",
                    gif.max_edge,
                    format!("must be at least {}", picture::MIN_SIDE),
                ));
            }
            let is_gif = gif
                .path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gif"));
            if !is_gif {
                return Err(Error::output(
                    &gif.path,
                    "the iteration GIF's name must end in .gif",
                ));
            }
            if gif.every == Some(0) {
                return Err(Error::setting("--gif-every", 0, "must be at least 1"));
            }
            outputs.push(&gif.path);
        }
        if let Some(report) = &self.report {
            outputs.push(report);
        }
        for (i, path) in outputs.iter().enumerate() {
            if outputs[..i].iter().any(|p| same_file(p, path)) {
                return Err(Error::output(path, "named twice among the outputs"));
            }
            if same_file(path, &self.content)
                || self.styles.iter().any(|s| same_file(path, &s.path))
            {
                return Err(Error::output(path, "is one of the inputs"));
            }
            atomic::check_writable(path, self.overwrite)?;
        }
        Ok(())
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Stylises one image as `settings` say, reporting progress to `progress`.
pub fn stylize_image(
    settings: &StillSettings,
    progress: &mut dyn Progress,
) -> Result<StillSummary> {
    settings.validate()?;
    let device = settings.device;
    let content_full = picture::load(&settings.content)?;
    let (w, h) = scaled_size(content_full.width(), content_full.height(), settings.size);
    check_processing_size(&settings.content, "--size", settings.size, w, h)?;
    let content = resize(&content_full, w, h);
    drop(content_full);

    let style_edge = (f64::from(settings.size) * settings.style_scale).round() as u32;
    let mut styles = Vec::with_capacity(settings.styles.len());
    for style in &settings.styles {
        let painting = picture::load(&style.path)?;
        let (sw, sh) = scaled_size(painting.width(), painting.height(), style_edge);
        check_processing_size(&style.path, "--style-scale", settings.style_scale, sw, sh)?;
        styles.push((to_network(&resize(&painting, sw, sh), device), style.blend));
    }
    let init_image = match &settings.init {
        Init::Image(path) => {
            let start = picture::load(path)?;
            Some(resize(&start, w, h))
        }
        _ => None,
    };

    let vgg = Vgg19::load(&settings.weights, device)?;
    let style_target = StyleTarget::new(&vgg, &styles, &settings.loss)?;
    drop(styles);
    let stylizer = Stylizer::new(
        &vgg,
        &style_target,
        settings.loss.clone(),
        settings.optimizer.clone(),
    )?;

    let x_content = to_network(&content, device);
    let x0 = initial_image(settings, &x_content, init_image.as_ref())?;
    let finish = |image: Rgb32FImage| -> Rgb32FImage {
        if settings.preserve_colors {
            preprocess::preserve_colors(&image, &content)
        } else {
            image
        }
    };

    let mut gif = settings.gif.as_ref().map(|g| {
        let every = g
            .every
            .unwrap_or_else(|| GifRecorder::interval_for(settings.optimizer.iterations));
        GifRecorder::new(every, g.max_edge)
    });
    progress.begin("iterations", settings.optimizer.iterations as u64);
    let started = Instant::now();
    let mut failure = None;
    let outcome = stylizer.run(&x_content, &x0, |it| {
        progress.advance(it.iteration as u64, it.terms.total);
        if let Some(gif) = gif.as_mut().filter(|g| g.wants(it.iteration)) {
            match it.image() {
                Ok(image) => gif.record(it.iteration, &finish(image)),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    progress.end();
    if let Some(e) = failure {
        return Err(e);
    }
    if outcome.recoveries > 0 {
        progress.log(&format!(
            "met non-finite values {} time(s); stepped back to the last finite image each time",
            outcome.recoveries
        ));
    }

    let result = finish(from_network(&outcome.image)?);
    picture::save(&result, &settings.output)?;
    let gif_frames = match (gif, &settings.gif) {
        (Some(recorder), Some(g)) => Some(recorder.finish(&result, outcome.iterations, &g.path)?),
        _ => None,
    };
    if let Some(path) = &settings.report {
        report(settings, (w, h), &outcome, seconds, device).write(path)?;
    }
    Ok(StillSummary {
        outcome,
        size: (w, h),
        seconds,
        gif_frames,
    })
}

fn check_processing_size(
    path: &Path,
    flag: &str,
    value: impl ToString,
    w: u32,
    h: u32,
) -> Result<()> {
    if w < picture::MIN_SIDE
        || h < picture::MIN_SIDE
        || w > picture::MAX_SIDE
        || h > picture::MAX_SIDE
    {
        return Err(Error::setting(
            flag,
            value.to_string(),
            format!(
                "'{}' would be processed at {w}x{h}; each side must be {} to {} pixels",
                path.display(),
                picture::MIN_SIDE,
                picture::MAX_SIDE
            ),
        ));
    }
    Ok(())
}

/// The start of the optimisation: content, image or noise, with `noise_ratio` of noise mixed in.
fn initial_image(
    settings: &StillSettings,
    content: &Tensor,
    init_image: Option<&Rgb32FImage>,
) -> Result<Tensor> {
    let base = match init_image {
        Some(image) => to_network(image, settings.device),
        None => content.shallow_clone(),
    };
    let ratio = match settings.init {
        Init::Noise => 1.0,
        _ => settings.noise_ratio,
    };
    if ratio == 0.0 {
        return Ok(base);
    }
    // Drawn on the CPU so that a seed gives the same start on every device.
    tch::manual_seed(settings.seed);
    let noise = (Tensor::randn(base.size(), (Kind::Float, Device::Cpu)) * NOISE_STD)
        .to_device(settings.device);
    Ok(base * (1.0 - ratio) + noise * ratio)
}

fn report(
    settings: &StillSettings,
    (w, h): (u32, u32),
    outcome: &Outcome,
    seconds: f64,
    device: Device,
) -> Report {
    let mut s = engine_settings(
        &settings.loss,
        &settings.optimizer,
        i64::from(h),
        i64::from(w),
    );
    let init = match &settings.init {
        Init::Content => Value::from("content"),
        Init::Noise => Value::from("noise"),
        Init::Image(p) => Value::from(p.display().to_string()),
    };
    let extra = json!({
        "size": settings.size,
        "processing_width": w,
        "processing_height": h,
        "styles": settings.styles.iter().map(|s| json!({
            "path": s.path.display().to_string(), "blend": s.blend
        })).collect::<Vec<_>>(),
        "style_scale": settings.style_scale,
        "init": init,
        "init_noise": settings.noise_ratio,
        "seed": settings.seed,
        "preserve_colors": settings.preserve_colors,
        "device": crate::device::describe(device),
        "weights": settings.weights.display().to_string(),
    });
    if let Value::Object(extra) = extra {
        s.extend(extra);
    }
    let with_tv = settings.loss.tv_weight > 0.0;
    Report {
        version: 1,
        settings: s,
        frames: vec![FrameReport::new(
            0,
            &settings.content,
            &settings.output,
            outcome,
            seconds,
            with_tv,
        )],
    }
}
