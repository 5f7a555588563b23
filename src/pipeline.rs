//! The frame pipeline, and the only place with threads and channels: a decoding thread, the
//! stylizer on the calling thread (one device stream, strictly in frame order, each frame
//! warm-started from the previous result), and an encoding thread, joined by bounded channels so
//! that the device never waits on the codec and memory stays bounded.
//!
//! When a stage fails, the error that caused it is the one returned, not a closed channel.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;
use std::time::Instant;

use image::Rgb32FImage;
use tch::Tensor;

use crate::engine::flow::{validated, warp, FlowEstimator, HornSchunck, Sampling};
use crate::engine::preprocess::{self, from_network, to_network};
use crate::engine::shot::{is_cut, unexplained_difference};
use crate::engine::stylizer::{
    describe_recoveries, first_line, guard_memory, panic_message, Outcome, StopReason, Stylizer,
};
use crate::error::{Error, Result};
use crate::frames::{Frame, FrameSink, FrameSource, SourceInfo};
use crate::kept::KeptFrames;
use crate::progress::{Progress, Throttle, LOSS_INTERVAL};
use crate::settings::StyleSettings;

/// How a flow warm start reads the previous result between its pixels: bilinear tied with
/// bicubic and nearest on slow motion and needed far fewer iterations than nearest on fast
/// motion (`benches/warm_start.rs`, docs/PERFORMANCE.md).
pub const WARM_START_SAMPLING: Sampling = Sampling::Bilinear;

/// Frames in flight between two stages.
const CHANNEL_DEPTH: usize = 4;

/// Which frames of the source to render: `start..end` by position, from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct FrameRange {
    /// First frame.
    pub start: usize,
    /// One past the last frame; `None`: to the end.
    pub end: Option<usize>,
}

impl FrameRange {
    /// Whether the frame at position `index` of the source is in the range.
    pub fn contains(&self, index: usize) -> bool {
        index >= self.start && self.end.is_none_or(|e| index < e)
    }
}

/// Where a frame after the first starts its optimisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarmStart {
    /// The previous frame's result moved along the optical flow from this frame to the
    /// previous one, so that the painted texture follows the motion (default).
    #[default]
    Flow,
    /// The previous frame's result as it is.
    Previous,
}

/// How a frame's optimisation started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameStart {
    /// Cold (from the content, noise or `--init` image): the first frame stylised in a run.
    First,
    /// From the previous frame's result.
    Warm,
    /// Cold, because the frame starts a new shot (see [`crate::engine::shot`]).
    Cut,
}

/// One frame's stylisation, as the pipeline reports it.
pub struct FrameDone<'a> {
    /// The frame, at the processing size, as it goes to the sink.
    pub frame: &'a Frame,
    /// Its position in the output, from 0.
    pub position: usize,
    /// Its number for file names: its input file's number for a sequence, its index for a
    /// video ([`SourceInfo::number`]).
    pub number: u64,
    /// The optimisation, or `None` for a frame taken from an earlier run.
    pub outcome: Option<&'a Outcome>,
    /// Seconds the optimisation took.
    pub seconds: f64,
    /// How its optimisation started, or `None` for a frame taken from an earlier run.
    pub start: Option<FrameStart>,
}

/// What the pipeline needs besides its source and sink.
pub struct PipelineJob<'a> {
    /// The stylizer (style target made once, for the whole run); its optimiser's iterations
    /// are the warm frames'.
    pub stylizer: &'a Stylizer<'a>,
    /// How the result looks: the start of a cold frame (`init`, noise, seed), the colours and
    /// the device (the paintings, loss and optimiser are the stylizer's).
    pub style: &'a StyleSettings,
    /// Iterations of a frame without a previous result to start from.
    pub first_frame_iterations: usize,
    /// Where the other frames start.
    pub warm_start: WarmStart,
    /// The difference from the previous frame above which a frame starts a new shot and so
    /// starts cold (see [`crate::engine::shot`]); 0 never.
    pub cut_threshold: f64,
    /// Frames to render.
    pub range: FrameRange,
    /// Frames kept so far, if the run keeps them (and how many are there already).
    pub kept: Option<(&'a KeptFrames, usize)>,
    /// Set from outside (Ctrl-C) to stop at once: the frame in flight is abandoned, finished
    /// frames are kept.
    pub stop: &'a AtomicBool,
}

/// What a pipeline run did.
#[derive(Debug, Default)]
pub struct PipelineOutcome {
    /// Frames written to the sink.
    pub frames: usize,
    /// Of which taken from kept frames.
    pub resumed: usize,
    /// Seconds spent optimising (and estimating the flow of warm starts).
    pub stylize_seconds: f64,
    /// Of which estimating the optical flow, as seen from the host (the device may still be
    /// busy with it when the optimisation starts).
    pub flow_seconds: f64,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Iterations of the cold first frame, if one was stylised.
    pub first_frame_iterations: Option<usize>,
    /// Iterations of each warm frame.
    pub warm_iterations: Vec<usize>,
    /// Frames (source indices) that started a new shot, and so started cold.
    pub shot_cuts: Vec<usize>,
    /// Whether `stop` ended the run early.
    pub interrupted: bool,
    /// Messages from the source (damage) and the sink (encoding notes).
    pub warnings: Vec<String>,
    /// The source, as it described itself.
    pub info: Option<SourceInfo>,
}

enum Decoded {
    Info(SourceInfo),
    Frame(Frame),
    Warning(String),
    Failed(Error),
    /// The source is exhausted (a closed channel without this means the thread died).
    End,
}

enum Styled {
    /// Open the sink for the run's first frame, before it is painted, so that an output the
    /// encoder refuses costs no painting; the reply says whether it opened.
    Open {
        first: Frame,
        opened: SyncSender<bool>,
    },
    /// A finished frame; `keep` carries the result to keep, when it is new.
    Frame {
        frame: Frame,
        position: usize,
        keep: Option<Keep>,
    },
    /// Stop without completing the output.
    Abort,
    /// Every frame has been sent: complete the output. A channel closed without this (the
    /// stylising side failed in a way it could not report) leaves the output incomplete.
    End,
}

/// Runs the pipeline: `open_source` opens the source in the decoding thread (sources need not
/// be `Send`); `open_sink` opens the sink in the encoding thread when the first frame is decoded;
/// `on_frame` hears of every finished frame. Returns when the sink has completed its output,
/// or when a stage failed or `stop` was set: with what was done either way, so that a stopped
/// run can still be reported.
pub fn run<S, K>(
    open_source: S,
    open_sink: K,
    job: &PipelineJob<'_>,
    progress: &mut dyn Progress,
    mut on_frame: impl FnMut(&FrameDone<'_>),
) -> (PipelineOutcome, Result<()>)
where
    S: FnOnce() -> Result<Box<dyn FrameSource>> + Send + 'static,
    K: FnOnce(&SourceInfo, &Frame) -> Result<(Box<dyn FrameSink>, Vec<String>)> + Send + 'static,
{
    let started = Instant::now();
    let range = job.range;
    let (decoded_tx, decoded_rx) = sync_channel::<Decoded>(CHANNEL_DEPTH);
    let decoder = thread::Builder::new()
        .name("decode".into())
        .spawn(move || decode(open_source, range, decoded_tx))
        .expect("a thread starts");

    let info = match decoded_rx.recv() {
        Ok(Decoded::Info(info)) => info,
        Ok(Decoded::Failed(e)) => return (PipelineOutcome::default(), Err(e)),
        _ => {
            let e = Error::Pipeline("the decoder stopped without a word".into());
            return (PipelineOutcome::default(), Err(e));
        }
    };
    let (styled_tx, styled_rx) = sync_channel::<Styled>(CHANNEL_DEPTH);
    let kept = job.kept.map(|(k, _)| k.clone());
    let sink_info = info.clone();
    let encoder = thread::Builder::new()
        .name("encode".into())
        .spawn(move || encode(open_sink, sink_info, kept, styled_rx))
        .expect("a thread starts");

    let total = info.frames.map(|n| {
        n.min(range.end.unwrap_or(usize::MAX))
            .saturating_sub(range.start)
    });
    progress.begin("frames", total.unwrap_or(0) as u64);
    let mut outcome = PipelineOutcome {
        info: Some(info.clone()),
        ..PipelineOutcome::default()
    };
    // A panic while stylising (libtorch's failures arrive as panics) becomes the run's error:
    // the output is left incomplete, finished frames stay kept.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        stylize_all(
            job,
            &decoded_rx,
            &styled_tx,
            progress,
            &mut outcome,
            &mut on_frame,
        )
    }))
    .unwrap_or_else(|payload| Err(stylizing_failed(payload.as_ref(), outcome.frames)));
    progress.end();
    // A source that ends before the frames its header counts (a file cut short, or damaged
    // past repair): what could be decoded is written, and the shortfall said. (Not when the
    // output stopped taking frames: its error is the one to report.)
    let result = result.map(|ended| ended == Ended::Source);
    if let (Ok(true), Some(total)) = (&result, total) {
        let done = outcome.frames;
        if done < total && !outcome.interrupted {
            let w = format!(
                "only {done} of the {total} frame(s) that the source's header counts in this \
                 range could be decoded: the file ends early or is damaged, and the output has \
                 {done} frame(s)"
            );
            progress.warn(&mut outcome.warnings, w);
        }
    }
    let _ = styled_tx.send(if !matches!(result, Ok(true)) || outcome.interrupted {
        Styled::Abort
    } else {
        Styled::End
    });
    drop(styled_tx);
    drop(decoded_rx);
    let encoded = encoder.join().expect("the encoding thread does not panic");
    let _ = decoder.join();
    // The first failure is the one to report: a stage that failed makes the others stop.
    outcome.seconds = started.elapsed().as_secs_f64();
    let result = match (result, encoded) {
        (Err(e), _) if !matches!(e, Error::Interrupted(_)) => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(false), Ok(_)) => Err(Error::Pipeline(
            "the output stopped taking frames without an error".into(),
        )),
        (Ok(true), Ok(notes)) => {
            for n in &notes {
                progress.log(n);
            }
            outcome.warnings.extend(notes);
            Ok(())
        }
    };
    (outcome, result)
}

/// The decoding thread.
fn decode<S>(open_source: S, range: FrameRange, tx: SyncSender<Decoded>)
where
    S: FnOnce() -> Result<Box<dyn FrameSource>>,
{
    let mut source = match open_source() {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Decoded::Failed(e));
            return;
        }
    };
    if tx.send(Decoded::Info(source.info().clone())).is_err() {
        return;
    }
    let mut delivered = 0;
    loop {
        let next = source.next_frame();
        for w in source.warnings() {
            if tx.send(Decoded::Warning(w)).is_err() {
                return;
            }
        }
        let message = match next {
            Ok(Some(frame)) if range.contains(frame.index) => {
                delivered += 1;
                Decoded::Frame(frame)
            }
            Ok(Some(frame)) if range.end.is_some_and(|e| frame.index >= e) => break,
            Ok(Some(_)) => continue,
            Ok(None) if delivered == 0 => Decoded::Failed(Error::setting(
                "--frames",
                format!(
                    "{}:{}",
                    range.start,
                    range.end.map(|e| e.to_string()).unwrap_or_default()
                ),
                "the source has no frame in this range",
            )),
            Ok(None) => Decoded::End,
            Err(e) => Decoded::Failed(e),
        };
        let last = matches!(message, Decoded::Failed(_) | Decoded::End);
        if tx.send(message).is_err() || last {
            return;
        }
    }
    let _ = tx.send(Decoded::End);
}

/// A new frame to keep: its picture, and the optimiser's own image, where the next frame starts
/// (the network's input as it lies in memory: 3 planes, unclipped).
struct Keep {
    picture: Rgb32FImage,
    start: Vec<f32>,
}

/// The encoding thread: keeps new frames, writes every frame to the sink, completes it.
fn encode<K>(
    open_sink: K,
    info: SourceInfo,
    kept: Option<KeptFrames>,
    rx: Receiver<Styled>,
) -> Result<Vec<String>>
where
    K: FnOnce(&SourceInfo, &Frame) -> Result<(Box<dyn FrameSink>, Vec<String>)>,
{
    let mut open_sink = Some(open_sink);
    let mut sink: Option<Box<dyn FrameSink>> = None;
    let mut notes = Vec::new();
    for message in rx {
        match message {
            Styled::Open { first, opened } => {
                let open = open_sink.take().expect("opened once");
                match open(&info, &first) {
                    Ok((s, n)) => {
                        notes.extend(n);
                        sink = Some(s);
                        let _ = opened.send(true);
                    }
                    Err(e) => {
                        let _ = opened.send(false);
                        return Err(e);
                    }
                }
            }
            Styled::Frame {
                frame,
                position,
                keep,
            } => {
                if let (Some(keep), Some(kept)) = (keep, &kept) {
                    let (w, h) = keep.picture.dimensions();
                    kept.save_start(position, w, h, &keep.start)?;
                    kept.save(position, &keep.picture)?;
                }
                sink.as_mut()
                    .expect("opened before the first frame")
                    .write(&frame)?;
            }
            Styled::Abort => return Ok(notes),
            Styled::End => {
                return match sink {
                    Some(s) => s.finish().map(|()| notes),
                    None => Err(Error::Pipeline("no frame reached the output".into())),
                }
            }
        }
    }
    Err(Error::Pipeline(
        "the stylising stage stopped unexpectedly; the output was not completed".into(),
    ))
}

/// The stylizer loop, on the calling thread.
/// Why the stylising loop ended without an error of its own.
#[derive(Debug, PartialEq)]
enum Ended {
    /// The source had no more frames.
    Source,
    /// The sink stopped taking frames (its error says why).
    Sink,
}

fn stylize_all(
    job: &PipelineJob<'_>,
    decoded: &Receiver<Decoded>,
    styled: &SyncSender<Styled>,
    progress: &mut dyn Progress,
    outcome: &mut PipelineOutcome,
    on_frame: &mut dyn FnMut(&FrameDone<'_>),
) -> Result<Ended> {
    let device = job.style.device;
    let (kept, already) = match job.kept {
        Some((k, n)) => (Some(k), n),
        None => (None, 0),
    };
    // The previous frame's result and its content, where the next frame starts.
    let mut previous: Option<(Tensor, Tensor)> = None;
    let flow = HornSchunck::default();
    let mut init_image: Option<Option<Rgb32FImage>> = None;
    let mut position = 0usize;
    let mut loss_so_far = f64::NAN;
    loop {
        let frame = match decoded.recv() {
            Ok(Decoded::Frame(f)) => f,
            Ok(Decoded::Warning(w)) => {
                progress.warn(&mut outcome.warnings, w);
                continue;
            }
            Ok(Decoded::Failed(e)) => return Err(e),
            Ok(Decoded::Info(_)) => continue,
            Ok(Decoded::End) => break,
            // The decoding thread died without a word: never finish a short output as if
            // the source had ended.
            Err(_) => return Err(Error::Pipeline(
                "the decoding thread stopped unexpectedly (it crashed); finished frames are kept"
                    .into(),
            )),
        };
        if job.stop.load(Ordering::SeqCst) {
            outcome.interrupted = true;
            return Err(interrupted(outcome, kept));
        }
        if position == 0 && !open_sink(styled, &frame) {
            // The encoder refused the output: its error is the one to report.
            return Ok(Ended::Sink);
        }
        let content_image = frame.image.clone();
        let (raw, keep, done) = if position < already {
            let kept = kept.expect("frames kept");
            let raw = kept.load(position)?;
            if raw.dimensions() != content_image.dimensions() {
                return Err(Error::output(
                    kept.path(position),
                    format!(
                        "a kept frame is {}x{}, not the processing size {}x{} (kept by another \
                         version: an anamorphic source is now painted at its display shape); \
                         pass --restart to paint the frames again",
                        raw.width(),
                        raw.height(),
                        content_image.width(),
                        content_image.height()
                    ),
                ));
            }
            // The next frame starts from here: from the optimiser's own image where it was kept,
            // as in a run never stopped.
            if position + 1 == already {
                let (w, h) = raw.dimensions();
                let start = match kept.load_start(position, w, h) {
                    Some(values) => Tensor::from_slice(&values)
                        .view([1, 3, i64::from(h), i64::from(w)])
                        .to_device(device),
                    None => to_network(&raw, device),
                };
                previous = Some((start, to_network(&content_image, device)));
            }
            outcome.resumed += 1;
            (raw, None, None)
        } else {
            let content = to_network(&content_image, device);
            let started = Instant::now();
            let mut start = FrameStart::First;
            let mut warm_init = None;
            if let Some((result, previous_content)) = previous.take() {
                start = FrameStart::Warm;
                // Where each pixel of this frame was in the previous one (to move the result
                // along, and to tell whether this frame continues the shot at all).
                let flow_started = Instant::now();
                let size = (content.size()[2], content.size()[3]);
                let (back, difference) = guard_memory(size, || {
                    let back = (job.warm_start == WarmStart::Flow || job.cut_threshold > 0.0)
                        .then(|| flow.flow(&content, &previous_content));
                    let difference = back
                        .as_ref()
                        .filter(|_| job.cut_threshold > 0.0)
                        .map(|back| unexplained_difference(&content, &previous_content, back));
                    Ok((back, difference))
                })?;
                let cut = difference.filter(|&difference| is_cut(difference, job.cut_threshold));
                outcome.flow_seconds += flow_started.elapsed().as_secs_f64();
                if let Some(difference) = cut {
                    start = FrameStart::Cut;
                    outcome.shot_cuts.push(frame.index);
                    progress.log(&format!(
                        "frame {}: a new shot (it differs from the previous frame by {difference:.1} \
                         where the motion does not explain it, over --cut-threshold {}); it starts \
                         cold, with {} iterations",
                        frame.index, job.cut_threshold, job.first_frame_iterations
                    ));
                } else {
                    warm_init = Some(match (job.warm_start, back) {
                        (WarmStart::Flow, Some(back)) => guard_memory(size, || {
                            let back = validated(&back, &content, &previous_content);
                            Ok(warp(&result, &back, WARM_START_SAMPLING))
                        })?,
                        _ => result,
                    });
                }
            }
            let (init, iterations) = match warm_init {
                Some(init) => (init, job.stylizer.optimizer_settings().iterations),
                None => {
                    let (w, h) = content_image.dimensions();
                    let image = match &init_image {
                        Some(i) => i.clone(),
                        None => {
                            let (i, stretched) = job.style.load_init_image(w, h)?;
                            if let Some(warning) = stretched {
                                progress.warn(&mut outcome.warnings, warning);
                            }
                            init_image = Some(i.clone());
                            i
                        }
                    };
                    (
                        job.style.initial_image(&content, image.as_ref()),
                        job.first_frame_iterations,
                    )
                }
            };
            let stop = job.stop;
            let mut shown = Throttle::new(LOSS_INTERVAL);
            let frames_done = outcome.frames as u64;
            let result = job.stylizer.run_for(&content, &init, iterations, |it| {
                if shown.due() {
                    progress.advance(frames_done, it.loss().ok());
                }
                if stop.load(Ordering::SeqCst) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })?;
            let seconds = started.elapsed().as_secs_f64();
            if result.stop == StopReason::Callback {
                outcome.interrupted = true;
                return Err(interrupted(outcome, kept));
            }
            outcome.stylize_seconds += seconds;
            match start {
                FrameStart::Warm => outcome.warm_iterations.push(result.iterations),
                FrameStart::First => {
                    outcome
                        .first_frame_iterations
                        .get_or_insert(result.iterations);
                }
                FrameStart::Cut => {}
            }
            if result.recoveries > 0 {
                let w = format!(
                    "frame {}: {}",
                    frame.index,
                    describe_recoveries(result.recoveries)
                );
                progress.warn(&mut outcome.warnings, w);
            }
            loss_so_far = result.best.total;
            let host = result
                .image
                .detach()
                .to_device(tch::Device::Cpu)
                .to_kind(tch::Kind::Float)
                .contiguous();
            let mut raw = from_network(&host)?;
            if let Some(kept) = kept {
                // As it reads back if the run is stopped and resumed.
                raw = kept.as_kept(&raw);
            }
            let keep = Keep {
                picture: raw.clone(),
                start: Vec::<f32>::try_from(host.view([-1]))?,
            };
            previous = Some((result.image.shallow_clone(), content));
            (raw, Some(keep), Some((result, seconds, start)))
        };
        let shown = if job.style.preserve_colors {
            preprocess::preserve_colors(&raw, &content_image)
        } else {
            raw
        };
        let out = Frame {
            image: shown,
            ..frame
        };
        let finished = FrameDone {
            frame: &out,
            position,
            number: outcome
                .info
                .as_ref()
                .map_or(out.index as u64, |i| i.number(out.index)),
            outcome: done.as_ref().map(|(o, _, _)| o),
            seconds: done.as_ref().map(|(_, s, _)| *s).unwrap_or(0.0),
            start: done.as_ref().map(|(_, _, s)| *s),
        };
        on_frame(&finished);
        progress.frame_done(&finished);
        let keep = if kept.is_some() { keep } else { None };
        if styled
            .send(Styled::Frame {
                frame: out,
                position,
                keep,
            })
            .is_err()
        {
            // The encoder stopped: its error is the one to report.
            return Ok(Ended::Sink);
        }
        position += 1;
        outcome.frames += 1;
        progress.advance(outcome.frames as u64, Some(loss_so_far));
    }
    Ok(Ended::Source)
}

/// Has the encoding thread open the sink for the run's `first` frame (as decoded: the sink
/// needs its size and time), and waits for it; false when it could not.
fn open_sink(styled: &SyncSender<Styled>, first: &Frame) -> bool {
    let (opened, reply) = sync_channel(1);
    let first = first.clone();
    styled.send(Styled::Open { first, opened }).is_ok() && reply.recv().unwrap_or(false)
}

/// The error for a panic of the stylising stage outside the optimisation and the flow (which
/// turn running out of memory into [`Error::OutOfMemory`] themselves).
fn stylizing_failed(payload: &(dyn std::any::Any + Send), frames: usize) -> Error {
    let message = panic_message(payload).unwrap_or("a panic without a message");
    Error::Pipeline(format!(
        "stylising failed after {frames} frame(s): {}; finished frames are kept",
        first_line(message)
    ))
}

fn interrupted(outcome: &PipelineOutcome, kept: Option<&KeptFrames>) -> Error {
    Error::Interrupted(match kept {
        _ if outcome.frames == 0 && kept.is_none_or(|k| k.count() == 0) => {
            "stopped before the first frame was finished; nothing was written".into()
        }
        Some(k) => format!(
            "stopped after {} frame(s); finished frames are kept in '{}': run the same command again to resume",
            outcome.frames,
            k.dir().display()
        ),
        None => format!("stopped after {} frame(s)", outcome.frames),
    })
}
