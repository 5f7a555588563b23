//! Stylising a video or a frame sequence from files to files: every frame optimised in order,
//! each starting from the previous result, the painting's Gram matrices computed once; the output
//! keeps the source's frame count, timing, aspect and sound. Finished frames are kept beside the
//! output until it is complete, so that an interrupted run resumes.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use serde_json::{json, Value};

use crate::engine::preprocess::scaled_size;
use crate::engine::stylizer::{StyleTarget, Stylizer};
use crate::error::{Error, Result};
use crate::frames::{Frame, FrameSink, FrameSource, Ratio, SourceInfo};
use crate::io::atomic;
use crate::io::image::{self as picture, BitDepth};
use crate::io::sequence::{self, Pattern, SequenceSink, SequenceSource};
use crate::kept::{file_identity, legacy_identity, read_identity, KeptFrames};
use crate::memory::MemoryUse;
use crate::pipeline::{self, FrameRange, FrameStart, PipelineJob, PipelineOutcome, WarmStart};
use crate::progress::Progress;
use crate::report::{FrameReport, Report, RunTotals};
use crate::settings::StyleSettings;

/// How to encode a video output.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EncodeSettings {
    /// Codec: `h264`, `h265`, `vp9`, `av1`, `prores`, `ffv1`, or an ffmpeg encoder name.
    /// Default: H.264, or VP9 for WebM.
    pub codec: Option<String>,
    /// Constant rate factor (quality; lower is better); default 18 for codecs that have one.
    pub crf: Option<f32>,
    /// Target bit rate in bits per second, instead of a constant quality.
    pub bitrate: Option<u64>,
    /// Pixel format (`yuv420p`, `yuv444p`, `yuv420p10le`, ...); default yuv420p where the codec
    /// has it, else the codec's first.
    pub pix_fmt: Option<String>,
    /// Carry the source's sound over (copied, or re-encoded when the container needs it);
    /// default true.
    pub audio: bool,
}

impl Default for EncodeSettings {
    /// The command line's defaults: the container's usual codec at CRF 18, the sound kept.
    fn default() -> Self {
        EncodeSettings {
            codec: None,
            crf: None,
            bitrate: None,
            pix_fmt: None,
            audio: true,
        }
    }
}

/// Everything a video or sequence run needs.
#[derive(Clone, Debug)]
pub struct VideoSettings {
    /// A video file, a folder of frames, or a pattern such as `shot/%05d.png`.
    pub input: PathBuf,
    /// A video file (`.mp4`, `.mkv`, `.mov`, `.webm`) or a pattern such as
    /// `out/%05d.png`.
    pub output: PathBuf,
    /// How the result looks; its optimiser's iterations are the warm frames'.
    pub style: StyleSettings,
    /// Iterations of the first frame, which starts cold; default 500.
    pub first_frame_iterations: usize,
    /// Where the other frames start; default the previous result moved along the optical flow.
    pub warm_start: WarmStart,
    /// A frame that differs from the previous one by more than this where the motion does not
    /// explain it (mean, 0..255) starts a new shot, cold; 0 never. Default
    /// [`DEFAULT_CUT_THRESHOLD`](crate::engine::shot::DEFAULT_CUT_THRESHOLD).
    pub cut_threshold: f64,
    /// Frames to render; default all.
    pub range: FrameRange,
    /// Frame rate of a frame-sequence input; default 25.
    pub fps: Ratio,
    /// Long edge of the output; default the input's own size (the stylised frames are scaled up).
    pub output_size: Option<u32>,
    /// Bits per channel of a PNG or TIFF sequence output; default 8.
    pub bit_depth: BitDepth,
    /// Encoding of a video output.
    pub encode: EncodeSettings,
    /// The JSON report, if wanted.
    pub report: Option<PathBuf>,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Discard the frames kept from an earlier run (with any settings) and paint every frame
    /// again; without it, frames kept with other settings are an error.
    pub restart: bool,
    /// Keep the finished frames after the output is complete.
    pub keep_frames: bool,
}

/// What a video run did.
pub struct VideoSummary {
    /// The pipeline's figures.
    pub outcome: PipelineOutcome,
    /// The source, as it describes itself.
    pub source: String,
    /// Processing size (width, height).
    pub processing: (u32, u32),
    /// Output size (width, height) before any codec adjustment.
    pub output_size: (u32, u32),
    /// Where finished frames were kept (removed at the end unless asked to keep them).
    pub kept: PathBuf,
    /// The memory the run took (as its report gives it).
    pub memory: MemoryUse,
}

/// Whether a run from `input` to `output` is a still image (rather than a video or a frame
/// sequence): the input is one file, and the output (or, without one, the input) is a picture.
pub fn is_still_run(input: &Path, output: Option<&Path>) -> bool {
    // A video asked for a picture gets the video's error about its output.
    if sequence::is_sequence(input) || is_video_path(input) {
        return false;
    }
    if let Some(output) = output {
        if is_sequence_output(output) || is_video_path(output) {
            return false;
        }
        if picture::output_format(output).is_ok() {
            return true;
        }
    }
    let mut head = [0u8; 64];
    let n = std::fs::File::open(input)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    // A file that holds an image, or that is named like one (so that a damaged picture gets a
    // picture's error).
    image::guess_format(&head[..n]).is_ok()
        || image::ImageFormat::from_path(input).is_ok_and(|f| f != image::ImageFormat::Gif)
}

/// Extensions of the video containers written.
pub const VIDEO_EXTENSIONS: [&str; 5] = ["mp4", "m4v", "mkv", "mov", "webm"];

/// Whether `path` has a video container's extension.
pub fn is_video_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether `path` names a frame-sequence output (a pattern with `%d`).
pub fn is_sequence_output(path: &Path) -> bool {
    Pattern::parse(path).is_some()
}

/// The default output for an input: `clip.mp4` → `clip.stylized.mp4`; a sequence `shot/` or
/// `shot/%05d.png` → `shot.stylized/%05d.png`.
pub fn default_output(input: &Path) -> PathBuf {
    if let Some(pattern) = Pattern::parse(input) {
        let dir = pattern.dir();
        let name = input.file_name().expect("a pattern has a name");
        return stylized_dir(dir).join(name);
    }
    if input.is_dir() {
        return stylized_dir(input).join("%05d.png");
    }
    let mut name = input
        .file_stem()
        .map(|s| s.to_os_string())
        .unwrap_or_default();
    let ext = input
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .filter(|e| ["mp4", "mkv", "mov", "webm"].contains(&e.as_str()))
        .unwrap_or_else(|| "mp4".into());
    name.push(format!(".stylized.{ext}"));
    input.with_file_name(name)
}

fn stylized_dir(dir: &Path) -> PathBuf {
    let dir = if dir.as_os_str().is_empty() || dir == Path::new(".") {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("frames"))
    } else {
        dir.to_path_buf()
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "frames".into());
    dir.with_file_name(format!("{name}.stylized"))
}

/// Where the finished frames of `output` are kept while it is made: `OUTPUT.frames` beside a
/// video; `.NAME.frames` (NAME: the pattern's file name) in a sequence's folder, so that
/// several sequences written into one folder keep theirs apart, with the part of the source
/// (`range`) added when it is not the whole, so that shards of one shot rendered at once
/// into one folder do not meet.
pub fn kept_dir(output: &Path, range: FrameRange) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = match range {
        FrameRange {
            start: 0,
            end: None,
        } => String::new(),
        FrameRange { start, end: None } => format!("-{start}-end"),
        FrameRange {
            start,
            end: Some(end),
        } => format!("-{start}-{end}"),
    };
    // A long name is shortened to leave room for the ending.
    match Pattern::parse(output) {
        Some(p) => {
            let ending = format!(".frames{part}");
            let name = atomic::shortened(&name, 1 + ending.len());
            p.dir().join(format!(".{name}{ending}"))
        }
        None => {
            let name = atomic::shortened(&name, ".frames".len());
            output.with_file_name(format!("{name}.frames"))
        }
    }
}

/// Identity of an input for the fingerprint: for a file, its contents
/// ([`file_identity`]); for a frame sequence, only that it is one (its frames are checked one
/// by one against the frames kept from them, wherever it lies: see [`sequence_frames`]).
fn input_identity(path: &Path) -> Value {
    if sequence::is_sequence(path) {
        json!({ "sequence": true })
    } else {
        file_identity(path)
    }
}

/// The frames of a sequence input in `range`, by position: each file and its identity.
/// A frame that cannot be read is an error (so that nothing kept is discarded for it).
fn sequence_frames(path: &Path, range: FrameRange) -> Result<Vec<(PathBuf, Value)>> {
    sequence::list(path)?
        .into_iter()
        .enumerate()
        .filter(|(position, _)| range.contains(*position))
        .map(|(_, (number, file))| {
            let id = read_identity(&file).map_err(|source| Error::Io {
                action: "cannot read",
                path: file.clone(),
                source,
            })?;
            Ok((file, json!({ "number": number, "file": id })))
        })
        .collect()
}

/// The digest of every frame of a sequence that versions before 2026-11-24 kept instead of
/// the frames' identities (needed only to resume what they kept).
fn legacy_digest(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for (number, file) in sequence::list(path).unwrap_or_default() {
        digest.update(legacy_identity(&file).to_string().as_bytes());
        digest.update(number.to_le_bytes());
    }
    digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Iterations of a warm frame (one that starts from the previous result) by default, the
/// command line's `--quality normal`.
pub const WARM_ITERATIONS: usize = 100;

/// Iterations of a cold frame (the first, or the first of a new shot) by default.
pub const FIRST_FRAME_ITERATIONS: usize = 500;

impl VideoSettings {
    /// Paints `input` into `output` as `style` says, with the command line's defaults for the
    /// rest: [`FIRST_FRAME_ITERATIONS`] for the first frame and [`WARM_ITERATIONS`] for each
    /// following one (this sets `style.optimizer.iterations`), warm starts along the optical
    /// flow, cuts found at [`DEFAULT_CUT_THRESHOLD`](crate::engine::shot::DEFAULT_CUT_THRESHOLD),
    /// every frame, 25 fps for a frame sequence, the input's own size, 8 bits, the sound kept,
    /// no report, an existing output kept (an error), and kept frames resumed, then removed.
    pub fn new(
        input: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
        mut style: StyleSettings,
    ) -> Self {
        style.optimizer.iterations = WARM_ITERATIONS;
        VideoSettings {
            input: input.into(),
            output: output.into(),
            style,
            first_frame_iterations: FIRST_FRAME_ITERATIONS,
            warm_start: WarmStart::Flow,
            cut_threshold: crate::engine::shot::DEFAULT_CUT_THRESHOLD,
            range: FrameRange::default(),
            fps: Ratio::new(25, 1),
            output_size: None,
            bit_depth: BitDepth::Eight,
            encode: EncodeSettings::default(),
            report: None,
            overwrite: false,
            restart: false,
            keep_frames: false,
        }
    }

    /// Checks every value and the output, before any work is done.
    pub fn validate(&self) -> Result<()> {
        self.style.validate()?;
        if !sequence::is_sequence(&self.input) && !self.input.is_file() {
            return Err(Error::video(&self.input, "no such file"));
        }
        if !(self.cut_threshold.is_finite() && (0.0..=255.0).contains(&self.cut_threshold)) {
            return Err(Error::setting(
                "--cut-threshold",
                self.cut_threshold,
                "must be between 0 (never) and 255 (a mean difference of 0..255 values)",
            ));
        }
        if let Some(end) = self.range.end {
            if end <= self.range.start {
                return Err(Error::setting(
                    "--frames",
                    format!("{}:{end}", self.range.start),
                    "the end must come after the start",
                ));
            }
        }
        if self.fps.num <= 0 || self.fps.den <= 0 || self.fps.as_f64() > 1000.0 {
            return Err(Error::setting(
                "--fps",
                format!("{}/{}", self.fps.num, self.fps.den),
                "must be above 0 and at most 1000",
            ));
        }
        if let Some(s) = self.output_size {
            if !(picture::MIN_SIDE..=picture::MAX_SIDE).contains(&s) {
                return Err(Error::setting(
                    "--output-size",
                    s,
                    format!(
                        "must be between {} and {}",
                        picture::MIN_SIDE,
                        picture::MAX_SIDE
                    ),
                ));
            }
        }
        if atomic::same_file(&self.input, &self.output) {
            return Err(Error::output(&self.output, "is the input"));
        }
        match Pattern::parse(&self.output) {
            Some(pattern) => {
                // Written however (`./plates/%04d.exr`, `plates/%4d.exr`, the folder itself),
                // an output frame must never land on an input frame.
                if let Ok(inputs) = sequence::list(&self.input) {
                    let files: std::collections::HashSet<PathBuf> = inputs
                        .iter()
                        .filter_map(|(_, f)| f.canonicalize().ok())
                        .collect();
                    for (number, _) in &inputs {
                        let out = pattern.path(*number);
                        if out.canonicalize().is_ok_and(|o| files.contains(&o)) {
                            return Err(Error::output(
                                &self.output,
                                format!("would write over the input's frame '{}'", out.display()),
                            ));
                        }
                    }
                }
                if let Some(problem) = sequence::output_meets_input(&self.input, &pattern) {
                    return Err(Error::output(&self.output, problem));
                }
                picture::output_format(&pattern.path(0))?;
                atomic::check_name_length(&pattern.path(0))?;
                let parent = pattern.dir().parent().filter(|p| !p.as_os_str().is_empty());
                if let Some(parent) = parent {
                    if !parent.is_dir() {
                        return Err(Error::output(
                            &self.output,
                            format!("the directory '{}' does not exist", parent.display()),
                        ));
                    }
                }
            }
            None => {
                if !cfg!(feature = "video") {
                    return Err(Error::output(
                        &self.output,
                        "this build has no video support (built without the `video` feature): \
                         write a frame sequence such as out/%05d.png",
                    ));
                }
                #[cfg(feature = "video")]
                {
                    if !crate::io::video::encode::is_video_output(&self.output) {
                        return Err(Error::output(
                            &self.output,
                            "unknown video extension: use .mp4, .mkv, .mov or .webm, or a frame pattern such as out/%05d.png",
                        ));
                    }
                    crate::io::video::encode::preflight(&self.output, &self.encode)?;
                }
                atomic::check_writable(&self.output, self.overwrite)?;
            }
        }
        if let Some(report) = &self.report {
            if atomic::same_file(report, &self.output) {
                return Err(Error::output(report, "named twice among the outputs"));
            }
            self.style.check_not_an_input(report, &self.input)?;
            // A stopped run's report is replaced by the run that resumes it.
            if !is_stopped_run_report(report, &self.output) {
                atomic::check_writable(report, self.overwrite)?;
            }
        }
        Ok(())
    }

    /// Every setting that changes the kept frames' pixels.
    fn fingerprint(&self) -> Value {
        let mut style = self.style.report(1, 1);
        // Paths as typed depend on the directory the command runs in; identities do not.
        for key in ["device", "weights", "styles", "init"] {
            style.remove(key);
        }
        let init = match &self.style.init {
            crate::settings::Init::Image(p) => file_identity(p),
            other => json!(format!("{other:?}")),
        };
        json!({
            "input": input_identity(&self.input),
            "init": init,
            "styles": self.style.styles.iter().map(|s| json!({ "file": file_identity(&s.path), "blend": s.blend })).collect::<Vec<_>>(),
            "style": style,
            "first_frame_iterations": self.first_frame_iterations,
            "warm_start": self.warm_start,
            "cut_threshold": self.cut_threshold,
            "start": self.range.start,
            // Always the default for a video (--fps is refused there).
            "fps": self.fps,
        })
    }
}

/// Opens the input: a frame sequence, or a video when the `video` feature is on.
fn open_source(
    input: &Path,
    fps: Ratio,
    long_edge: u32,
    range: FrameRange,
) -> Result<Box<dyn FrameSource>> {
    if sequence::is_sequence(input) {
        let frames = range.start..range.end.unwrap_or(usize::MAX);
        return Ok(Box::new(SequenceSource::open_frames(
            input, fps, long_edge, frames,
        )?));
    }
    #[cfg(feature = "video")]
    {
        Ok(Box::new(crate::io::video::decode::VideoSource::open(
            input, long_edge,
        )?))
    }
    #[cfg(not(feature = "video"))]
    {
        let _ = (fps, long_edge, range);
        Err(Error::video(
            input,
            "this build has no video support (built without the `video` feature): give a frame folder or pattern",
        ))
    }
}

/// Opens the output for the run's first frame, as decoded: before any painting, so that an output
/// the encoder refuses costs none.
fn open_sink(
    settings: &VideoSettings,
    info: &SourceInfo,
    first: &Frame,
) -> Result<(Box<dyn FrameSink>, Vec<String>)> {
    let size = output_size(settings, info);
    if let Some(pattern) = Pattern::parse(&settings.output) {
        let sink = SequenceSink::create(pattern, info, size, settings.bit_depth)?;
        return Ok((Box::new(sink), Vec::new()));
    }
    #[cfg(feature = "video")]
    {
        use crate::io::video::encode::{Target, VideoSink};
        let target = Target {
            path: &settings.output,
            input: &settings.input,
            info,
            processing: first.image.dimensions(),
            size,
            start_pts: first.pts,
            whole: settings.range.start == 0 && settings.range.end.is_none(),
            from_start: settings.range.start == 0,
            first_index: first.index,
        };
        let (sink, plan) = VideoSink::create(&target, &settings.encode)?;
        let mut notes = plan.notes;
        notes.insert(
            0,
            format!(
                "encoding {} {} {}x{}, sound {}",
                plan.encoder, plan.pix_fmt, plan.size.0, plan.size.1, plan.audio
            ),
        );
        Ok((Box::new(sink), notes))
    }
    #[cfg(not(feature = "video"))]
    {
        let _ = first;
        Err(Error::output(
            &settings.output,
            "this build has no video support",
        ))
    }
}

fn output_size(settings: &VideoSettings, info: &SourceInfo) -> (u32, u32) {
    match settings.output_size {
        Some(edge) => scaled_size(info.width, info.height, edge),
        None => (info.width, info.height),
    }
}

/// Whether a sequence output already has files where this run writes (which only --overwrite or
/// a resumed run may replace): the input's numbers in `range` for a sequence input, positions
/// in it for a video; another shard's frames in the same folder are no obstacle.
fn sequence_output_exists(output: &Path, input: &Path, range: FrameRange) -> bool {
    if Pattern::parse(output).is_none() {
        return false;
    }
    let Ok(existing) = sequence::list(output) else {
        return false;
    };
    match sequence::list(input) {
        // A sequence input: the numbers of its frames in the range.
        Ok(inputs) => {
            let numbers: std::collections::HashSet<u64> = inputs
                .iter()
                .enumerate()
                .filter(|(k, _)| range.contains(*k))
                .map(|(_, (n, _))| *n)
                .collect();
            existing.iter().any(|(n, _)| numbers.contains(n))
        }
        // A video: numbered by position from 0.
        Err(_) => existing
            .iter()
            .any(|(n, _)| usize::try_from(*n).is_ok_and(|p| range.contains(p))),
    }
}

/// Stylises the video or sequence `settings.input` into `settings.output`. `stop` (set by a
/// Ctrl-C handler) ends the run, abandoning the frame in flight and keeping the finished ones.
pub fn stylize_video(
    settings: &VideoSettings,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<VideoSummary> {
    settings.validate()?;
    let kept_path = kept_dir(&settings.output, settings.range);
    adopt_legacy_kept_frames(&settings.output, &kept_path);
    // Every input file is read for it: once per run.
    let fingerprint = settings.fingerprint();
    let adopted = (!settings.restart)
        .then(|| adopt_other_end(&settings.output, settings.range, &kept_path, &fingerprint))
        .flatten();
    if let Some(other) = adopted {
        progress.log(&format!(
            "taking over the frames kept in '{}' by a run of this sequence to another end",
            other.display()
        ));
    }
    // A sequence's folder that this run makes, for the kept frames before the first frame.
    let made_folder = kept_path
        .parent()
        .filter(|folder| !folder.exists())
        .map(Path::to_path_buf);
    // --restart paints every frame again: over a sequence's frames only with --overwrite, and
    // refused before it discards anything.
    if settings.restart
        && !settings.overwrite
        && sequence_output_exists(&settings.output, &settings.input, settings.range)
    {
        return Err(Error::output(
            &settings.output,
            "frames of this sequence already exist, and --restart paints them all again: pass \
             --overwrite too to replace them (nothing was discarded)",
        ));
    }
    let (kept, mut already) = KeptFrames::open(&kept_path, &fingerprint, settings.restart)?;
    if kept.discarded() > 0 {
        progress.log(&format!(
            "--restart: discarded {} file(s) of finished frames kept in '{}'; painting from the \
             first frame",
            kept.discarded(),
            kept_path.display()
        ));
    }
    // Warnings before the pipeline's own, for the log and the report.
    let mut warnings = settings.style.warnings();
    for w in &warnings {
        progress.log(w);
    }
    // A sequence that cannot be listed is not checked (nothing kept is discarded): opening it
    // below says what is wrong, and cleans up.
    let listed = sequence::is_sequence(&settings.input)
        .then(|| sequence_frames(&settings.input, settings.range).ok())
        .flatten();
    if let Some(frames) = listed {
        // A frame changed since it was painted: it and the frames after it (each starts from
        // the one before) are painted again; frames not yet painted may change freely.
        let inputs: Vec<Value> = frames.iter().map(|(_, id)| id.clone()).collect();
        let valid = kept.check_inputs(already, &inputs, || legacy_digest(&settings.input))?;
        // Kept frames past this run's end (kept by a run to a later one) stay for such a run.
        if valid < already.min(inputs.len()) {
            let changed = frames.get(valid).map_or_else(
                || "missing".to_string(),
                |(f, _)| format!("'{}' changed", f.display()),
            );
            let w = format!(
                "frame {valid} of the output: its input {changed} since it was painted; \
                 painting again from it ({} finished frame(s) before it kept, {} discarded)",
                valid,
                already - valid
            );
            progress.warn(&mut warnings, w);
        }
        already = valid;
    }
    // A run that failed before its first frame leaves nothing behind.
    let leave_nothing = |kept: &KeptFrames| {
        kept.remove_if_empty();
        if let Some(folder) = &made_folder {
            // Only when empty.
            let _ = std::fs::remove_dir(folder);
        }
    };
    let KeptRun {
        pipeline: mut outcome,
        result,
        processing,
        mut reports,
    } = match run_kept(settings, &kept, already, progress, stop) {
        Ok(run) => run,
        Err(e) => {
            leave_nothing(&kept);
            return Err(e);
        }
    };
    warnings.append(&mut outcome.warnings);
    outcome.warnings = warnings;
    if let Err(e) = result {
        leave_nothing(&kept);
        // Only what reached the kept frames is done: a failing encoder may have dropped the
        // last frames it was handed.
        let done = kept.count();
        let limit = settings.range.start + done;
        reports.retain(|r| r.index < limit);
        // The totals are those of the frames reported.
        let started = |kind| reports.iter().filter(move |r| r.start == Some(kind));
        let stylize_seconds = reports.iter().map(|r| r.seconds).sum();
        let outcome = PipelineOutcome {
            frames: outcome.frames.min(done),
            stylize_seconds,
            flow_seconds: outcome.flow_seconds.min(stylize_seconds),
            first_frame_iterations: started(FrameStart::First).map(|r| r.iterations).next(),
            warm_iterations: started(FrameStart::Warm).map(|r| r.iterations).collect(),
            shot_cuts: outcome
                .shot_cuts
                .into_iter()
                .filter(|&i| i < limit)
                .collect(),
            ..outcome
        };
        // What was stylised before the stop is reported (`totals.interrupted` says whether
        // Ctrl-C stopped it); the frames themselves are kept for the next run.
        // Not over the report of a complete video that is still there (an --overwrite run
        // stopped before replacing it): that report goes on describing it. (A sequence's
        // frames are replaced as they are painted.)
        let describes_output = |path: &Path| {
            path.is_file()
                && settings.output.is_file()
                && !is_stopped_run_report(path, &settings.output)
        };
        if let Some(path) = settings.report.as_deref().filter(|p| describes_output(p)) {
            progress.log(&format!(
                "the stopped run's report was not written: '{}' describes the complete output \
                 '{}', which is still there",
                path.display(),
                settings.output.display()
            ));
        } else if let (Some(path), false) = (&settings.report, reports.is_empty()) {
            let memory = MemoryUse::now(settings.style.device);
            let written = write_report(
                settings,
                path,
                &outcome,
                processing,
                reports,
                Some(&e),
                memory,
            );
            if let Err(r) = written {
                progress.log(&format!("the report could not be written: {r}"));
            }
        }
        return Err(e);
    }
    if kept.count() > outcome.frames {
        // Frames past this run's end, kept by a run to a later end, are that run's work.
        let held = kept.leave_for_later();
        progress.log(&format!(
            "'{}' keeps {held} frame(s), some past this run's end, for a run that goes on to them",
            kept_path.display()
        ));
    } else if settings.keep_frames {
        kept.keep();
    } else {
        kept.remove()?;
    }
    let memory = MemoryUse::now(settings.style.device);
    if let Some(path) = &settings.report {
        write_report(settings, path, &outcome, processing, reports, None, memory)?;
    }
    let info = outcome.info.clone().expect("the source was opened");
    Ok(VideoSummary {
        output_size: output_size(settings, &info),
        source: info.description,
        processing,
        kept: kept_path,
        outcome,
        memory,
    })
}

/// Whether `path` holds the report of a run into `output` that stopped before completing it.
/// The output it names is compared however spelt: as typed then (from this folder, or from
/// the report's own, where a run started beside its outputs wrote it) against `output`.
fn is_stopped_run_report(path: &Path, output: &Path) -> bool {
    let Some(report) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    else {
        return false;
    };
    let Some(named) = report["settings"]["output"].as_str().map(Path::new) else {
        return false;
    };
    let beside_report = path.parent().map(|folder| folder.join(named));
    report["totals"]["complete"] == json!(false)
        && (atomic::same_file(named, output)
            || beside_report.is_some_and(|p| atomic::same_file(&p, output)))
}

/// A sequence output's frames are kept per range (so that shards rendered at once into one
/// folder keep theirs apart); a run of the same start to another end (the shot extended, or
/// shortened) takes over what a run to the old end kept with the same settings (the most
/// frames, where several did), unless that run is at work. Returns the folder taken over.
fn adopt_other_end(
    output: &Path,
    range: FrameRange,
    kept: &Path,
    fingerprint: &Value,
) -> Option<PathBuf> {
    let pattern = Pattern::parse(output)?;
    if kept.exists() {
        return None;
    }
    let name = output.file_name()?.to_string_lossy().into_owned();
    let prefix = format!(".{name}.frames");
    let start_of = |part: &str| -> Option<usize> {
        if part.is_empty() {
            return Some(0);
        }
        let (start, end) = part.strip_prefix('-')?.split_once('-')?;
        (end == "end" || end.parse::<usize>().is_ok())
            .then(|| start.parse().ok())
            .flatten()
    };
    let other = std::fs::read_dir(pattern.dir())
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| {
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            path.as_path() != kept
                && path.is_dir()
                && file_name
                    .as_deref()
                    .and_then(|n| n.strip_prefix(&prefix))
                    .and_then(start_of)
                    == Some(range.start)
                && !crate::kept::in_use(path)
        })
        .filter_map(|path| crate::kept::holds_frames_of(&path, fingerprint).map(|n| (n, path)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, path)| path)?;
    std::fs::rename(&other, kept).ok()?;
    Some(other)
}

/// Before 2026-11-24 a sequence's frames were kept in the folder's `.stylize-video-frames`:
/// a run in progress then takes it over under its new name (its settings are checked as usual).
fn adopt_legacy_kept_frames(output: &Path, kept: &Path) {
    let Some(pattern) = Pattern::parse(output) else {
        return;
    };
    let legacy = pattern.dir().join(".stylize-video-frames");
    if legacy.is_dir() && !kept.exists() {
        let _ = std::fs::rename(&legacy, kept);
    }
}

/// Writes the report of a video run, complete or stopped.
fn write_report(
    settings: &VideoSettings,
    path: &Path,
    outcome: &PipelineOutcome,
    processing: (u32, u32),
    reports: Vec<FrameReport>,
    stopped_by: Option<&Error>,
    memory: MemoryUse,
) -> Result<()> {
    let stylized = outcome.frames - outcome.resumed;
    let mut s = settings.style.report(processing.0, processing.1);
    s.insert(
        "first_frame_iterations".into(),
        json!(settings.first_frame_iterations),
    );
    s.insert("warm_start".into(), json!(settings.warm_start));
    s.insert("cut_threshold".into(), json!(settings.cut_threshold));
    s.insert("frames".into(), json!(settings.range));
    s.insert("encode".into(), json!(settings.encode));
    s.insert("input".into(), json!(settings.input.display().to_string()));
    s.insert(
        "output".into(),
        json!(settings.output.display().to_string()),
    );
    let report = Report {
        version: 1,
        settings: s,
        frames: reports,
        totals: Some(RunTotals {
            frames: outcome.frames,
            resumed: outcome.resumed,
            stylized,
            seconds: outcome.seconds,
            stylize_seconds: outcome.stylize_seconds,
            flow_seconds: outcome.flow_seconds,
            frames_per_second: stylized as f64 / outcome.seconds.max(1e-9),
            first_frame_iterations: outcome.first_frame_iterations,
            mean_warm_iterations: mean(&outcome.warm_iterations),
            shot_cuts: outcome.shot_cuts.clone(),
            interrupted: outcome.interrupted,
            complete: stopped_by.is_none(),
            stopped_by: stopped_by.map(ToString::to_string),
        }),
        warnings: outcome.warnings.clone(),
        memory,
    };
    report.write(path)
}

/// What the pipeline part of a run gives back.
struct KeptRun {
    pipeline: PipelineOutcome,
    /// Whether the output was completed.
    result: Result<()>,
    processing: (u32, u32),
    reports: Vec<FrameReport>,
}

/// The run once the kept frames are open: paintings, network, pipeline.
fn run_kept(
    settings: &VideoSettings,
    kept: &KeptFrames,
    already: usize,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<KeptRun> {
    let style = &settings.style;
    if already == 0
        && !settings.overwrite
        && sequence_output_exists(&settings.output, &settings.input, settings.range)
    {
        return Err(Error::output(
            &settings.output,
            "frames of this sequence already exist; pass --overwrite to replace them",
        ));
    }
    if already > 0 {
        progress.log(&format!(
            "resuming: {already} finished frame(s) kept in '{}' from an earlier run; going on from frame {} of the output",
            kept.dir().display(),
            already
        ));
    }

    let styles = style.load_styles()?;
    let vgg = style.network()?;
    let target = StyleTarget::new(&vgg, &styles, &style.loss)?;
    drop(styles);
    let stylizer = Stylizer::new(&vgg, &target, style.loss.clone(), style.optimizer.clone())?;

    let job = PipelineJob {
        stylizer: &stylizer,
        style,
        first_frame_iterations: settings.first_frame_iterations,
        warm_start: settings.warm_start,
        cut_threshold: settings.cut_threshold,
        range: settings.range,
        kept: Some((kept, already)),
        stop,
    };
    let (input, fps, edge, range) = (
        settings.input.clone(),
        settings.fps,
        style.size,
        settings.range,
    );
    let sink_settings = settings.clone();
    let mut reports = Vec::new();
    let mut processing = (0, 0);
    let with_tv = style.loss.tv_weight > 0.0;
    let output = settings.output.clone();
    let (outcome, result) = pipeline::run(
        move || open_source(&input, fps, edge, range),
        move |info: &SourceInfo, first: &Frame| open_sink(&sink_settings, info, first),
        &job,
        progress,
        |done| {
            processing = done.frame.image.dimensions();
            if let Some(o) = done.outcome {
                let out = match Pattern::parse(&output) {
                    Some(p) => p.path(done.number),
                    None => output.clone(),
                };
                let input = format!("{}#{}", settings.input.display(), done.frame.index);
                let mut report = FrameReport::new(
                    done.frame.index,
                    Path::new(&input),
                    &out,
                    o,
                    done.seconds,
                    with_tv,
                );
                report.start = done.start;
                reports.push(report);
            }
        },
    );
    Ok(KeptRun {
        pipeline: outcome,
        result,
        processing,
        reports,
    })
}

fn mean(v: &[usize]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<usize>() as f64 / v.len() as f64)
}
