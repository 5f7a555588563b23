//! Stylising one still image from files to files: load, scale to the processing size, optimise,
//! write the result, the iteration GIF and the report.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use image::Rgb32FImage;

use crate::engine::preprocess::{self, from_network, resize, to_network};
use crate::engine::stylizer::{describe_recoveries, Outcome, StyleTarget, Stylizer};
use crate::error::{Error, Result};
use crate::io::gif::GifRecorder;
use crate::io::image::BitDepth;
use crate::io::{atomic, image as picture};
use crate::memory::MemoryUse;
use crate::progress::{Progress, Throttle, LOSS_INTERVAL};
use crate::report::{FrameReport, Report};
use crate::settings::StyleSettings;

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
    /// The output image; its extension picks the format. It has the processing size.
    pub output: PathBuf,
    /// The iteration GIF, if wanted.
    pub gif: Option<GifSettings>,
    /// The JSON report, if wanted.
    pub report: Option<PathBuf>,
    /// Replace existing outputs.
    pub overwrite: bool,
    /// Bits per channel of a PNG or TIFF result (EXR is always float; JPEG and the others 8).
    pub bit_depth: BitDepth,
    /// How the result looks.
    pub style: StyleSettings,
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
    /// The memory the run took (as its report gives it).
    pub memory: MemoryUse,
}

impl GifSettings {
    /// The command line's defaults: about 50 pictures, at most 512 pixels on the long edge.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        GifSettings {
            path: path.into(),
            every: None,
            max_edge: 512,
        }
    }
}

impl StillSettings {
    /// Paints `content` into `output` as `style` says, with the command line's defaults for the
    /// rest: no GIF or report, existing outputs kept (an error), 8 bits per channel.
    pub fn new(
        content: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        style: StyleSettings,
    ) -> Self {
        StillSettings {
            content: content.into(),
            output: output.into(),
            gif: None,
            report: None,
            overwrite: false,
            bit_depth: BitDepth::Eight,
            style,
        }
    }

    /// Checks every value and that every output can be written, before any work is done.
    pub fn validate(&self) -> Result<()> {
        self.style.validate()?;
        picture::output_format(&self.output)?;
        if let Some(format) = picture::animation_format(&self.content) {
            let remedy = if format == image::ImageFormat::WebP {
                // ffmpeg (5.1) reads only still WebP.
                "To paint every frame, save its frames as PNG files and give their folder"
            } else {
                "To paint every frame, give a video output (-o clip.mp4) or a frame pattern \
                 (-o frames/%04d.png)"
            };
            return Err(Error::image(
                &self.content,
                format!(
                    "an animated picture: a still run would paint its first frame only. {remedy}"
                ),
            ));
        }
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
            if outputs[..i].iter().any(|p| atomic::same_file(p, path)) {
                return Err(Error::output(path, "named twice among the outputs"));
            }
            self.style.check_not_an_input(path, &self.content)?;
            atomic::check_writable(path, self.overwrite)?;
        }
        Ok(())
    }
}

/// Where a still stopped at `iteration` keeps its best picture so far: beside `output`, as
/// `NAME.stopped-at-ITERATION.EXT`.
pub fn stopped_path(output: &std::path::Path, iteration: usize) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match output.extension() {
        Some(ext) => format!("{stem}.stopped-at-{iteration}.{}", ext.to_string_lossy()),
        None => format!("{stem}.stopped-at-{iteration}"),
    };
    output.with_file_name(name)
}

/// Stylises one image as `settings` say, reporting progress to `progress`. Setting `stop`
/// (from another thread, e.g. on Ctrl-C) ends the run at the next iteration with
/// [`Error::Interrupted`]: the output, the GIF and the report are not written, and the best
/// picture met so far is written beside the output ([`stopped_path`]).
pub fn stylize_image(
    settings: &StillSettings,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<StillSummary> {
    settings.validate()?;
    let look = &settings.style;
    let device = look.device;
    let mut warnings = look.warnings();
    for w in &warnings {
        progress.log(w);
    }
    let content_full = picture::load(&settings.content)?;
    let (w, h) = picture::check_processing_size(
        &settings.content,
        "--size",
        look.size,
        content_full.dimensions(),
        look.size,
    )?;
    let content = resize(&content_full, w, h);
    drop(content_full);
    let styles = look.load_styles()?;
    let (init_image, stretched) = look.load_init_image(w, h)?;
    if let Some(warning) = stretched {
        progress.warn(&mut warnings, warning);
    }

    let vgg = look.network()?;
    let style_target = StyleTarget::new(&vgg, &styles, &look.loss)?;
    drop(styles);
    let stylizer = Stylizer::new(
        &vgg,
        &style_target,
        look.loss.clone(),
        look.optimizer.clone(),
    )?;

    let x_content = to_network(&content, device);
    let x0 = look.initial_image(&x_content, init_image.as_ref());
    let finish = |image: Rgb32FImage| -> Rgb32FImage {
        if look.preserve_colors {
            preprocess::preserve_colors(&image, &content)
        } else {
            image
        }
    };

    let mut gif = settings.gif.as_ref().map(|g| {
        let every = g
            .every
            .unwrap_or_else(|| GifRecorder::interval_for(look.optimizer.iterations));
        GifRecorder::new(every, g.max_edge)
    });
    progress.begin("iterations", look.optimizer.iterations as u64);
    let started = Instant::now();
    let mut shown = Throttle::new(LOSS_INTERVAL);
    let mut failure = None;
    let mut stopped_at = None;
    let outcome = stylizer.run(&x_content, &x0, |it| {
        if stop.load(Ordering::SeqCst) {
            stopped_at = Some(it.iteration);
            return ControlFlow::Break(());
        }
        progress.advance(
            it.iteration as u64,
            shown.due().then(|| it.loss().ok()).flatten(),
        );
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
    if let Some(iteration) = stopped_at {
        let of = look.optimizer.iterations;
        if iteration == 0 {
            return Err(Error::Interrupted(format!(
                "stopped at iteration 0 of {of}; nothing was written"
            )));
        }
        // The work done is not lost: the best picture met, beside the output, under a name
        // that says what it is (the output itself is left as it was).
        let beside = stopped_path(&settings.output, iteration);
        let written = from_network(&outcome.image).and_then(|picture| {
            picture::stage(&finish(picture), &beside, settings.bit_depth)?.commit()
        });
        let kept = match written {
            Ok(()) => format!(
                "the best picture so far (loss {:.4e}) is in '{}'",
                outcome.best.total,
                beside.display()
            ),
            Err(e) => format!("the best picture so far could not be kept ({e})"),
        };
        return Err(Error::Interrupted(format!(
            "stopped at iteration {iteration} of {of}; {kept}, and '{}' was not written",
            settings.output.display()
        )));
    }
    if outcome.recoveries > 0 {
        progress.warn(&mut warnings, describe_recoveries(outcome.recoveries));
    }

    let result = finish(from_network(&outcome.image)?);
    // Every output is written before any takes its name: a failure leaves none of them.
    let mut staged = vec![picture::stage(
        &result,
        &settings.output,
        settings.bit_depth,
    )?];
    let gif_frames = match (gif, &settings.gif) {
        (Some(recorder), Some(g)) => {
            let (file, frames) = recorder.stage(&result, outcome.iterations, &g.path)?;
            staged.push(file);
            Some(frames)
        }
        _ => None,
    };
    let memory = MemoryUse::now(settings.style.device);
    if let Some(path) = &settings.report {
        let report = report(settings, (w, h), &outcome, seconds, warnings, memory);
        staged.push(report.stage(path)?);
    }
    for file in staged {
        file.commit()?;
    }
    Ok(StillSummary {
        outcome,
        size: (w, h),
        seconds,
        gif_frames,
        memory,
    })
}

fn report(
    settings: &StillSettings,
    (w, h): (u32, u32),
    outcome: &Outcome,
    seconds: f64,
    warnings: Vec<String>,
    memory: MemoryUse,
) -> Report {
    let with_tv = settings.style.loss.tv_weight > 0.0;
    Report {
        version: 1,
        settings: settings.style.report(w, h),
        frames: vec![FrameReport::new(
            0,
            &settings.content,
            &settings.output,
            outcome,
            seconds,
            with_tv,
        )],
        totals: None,
        warnings,
        memory,
    }
}
