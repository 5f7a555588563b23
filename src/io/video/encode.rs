//! Encoding stylised frames into a video file with the source's timestamps, aspect and sound.
//! The file is written under a temporary name beside the output and renamed when complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::color;
use ffmpeg::{codec, encoder, format, frame, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;

use super::audio::{query, Sound};
use super::timing::{grid_time_base, FrameTimes};
use super::{init, rational, set_colorspace, space_of, sws_matrix, video_error};
use crate::error::{Error, Result};
use crate::frames::{Frame, FrameSink, Ratio, SourceInfo};
use crate::io::atomic::InProgress;
pub use crate::video::EncodeSettings;

/// Default constant rate factor.
pub const DEFAULT_CRF: f32 = 18.0;

/// The encoder for a codec name, and a short name for messages.
fn find_encoder(name: &str) -> Option<(ffmpeg::Codec, String)> {
    let candidates: &[&str] = match name {
        "h264" | "avc" | "x264" => &["libx264", "h264"],
        "h265" | "hevc" | "x265" => &["libx265", "hevc"],
        "vp9" => &["libvpx-vp9", "vp9"],
        "vp8" => &["libvpx", "vp8"],
        "av1" => &["libsvtav1", "libaom-av1", "librav1e", "av1"],
        "prores" => &["prores_ks", "prores"],
        "ffv1" => &["ffv1"],
        other => return encoder::find_by_name(other).map(|c| (c, other.to_string())),
    };
    candidates
        .iter()
        .find_map(|n| encoder::find_by_name(n).map(|c| (c, (*n).to_string())))
}

/// The muxer's name for an output path's extension.
fn container_of(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" => "mp4",
        "mkv" => "matroska",
        "mov" => "mov",
        "webm" => "webm",
        _ => return None,
    })
}

/// The muxer for `path`, or an error naming the extensions written.
fn container(path: &Path) -> Result<&'static str> {
    container_of(path).ok_or_else(|| {
        Error::output(
            path,
            "unknown video extension: use .mp4, .mkv, .mov or .webm",
        )
    })
}

/// Whether `path` names a video output this sink can write.
pub fn is_video_output(path: &Path) -> bool {
    container_of(path).is_some()
}

/// The codec a setting names, or the container's default.
fn codec_name(settings: &EncodeSettings, container: &str) -> String {
    settings
        .codec
        .clone()
        .unwrap_or_else(|| if container == "webm" { "vp9" } else { "h264" }.to_string())
}

/// Checks, before any frame is made, that `path`'s container can hold the chosen codec, and
/// that the codec and pixel format exist.
pub fn preflight(path: &Path, settings: &EncodeSettings) -> Result<()> {
    init();
    super::clear_explanation();
    let container = container(path)?;
    let name = std::ffi::CString::new(container).expect("no NUL");
    let muxer =
        unsafe { ffmpeg::ffi::av_guess_format(name.as_ptr(), std::ptr::null(), std::ptr::null()) };
    if muxer.is_null() {
        return Err(Error::output(
            path,
            format!("this ffmpeg has no {container} muxer"),
        ));
    }
    choose(path, container, muxer, settings).map(|_| ())
}

/// The encoders that take a constant-quality `crf`, with its largest value.
const CRF_ENCODERS: &[(&str, f32)] = &[
    ("libx264", 51.0),
    ("libx265", 51.0),
    ("libvpx-vp9", 63.0),
    ("libvpx", 63.0),
    ("libaom-av1", 63.0),
    ("libsvtav1", 63.0),
];

/// Encoders that ignore a bit rate: lossless ones, and ProRes (its profile sets the rate).
const FIXED_QUALITY: &[&str] = &[
    "ffv1",
    "prores_ks",
    "prores",
    "prores_aw",
    "huffyuv",
    "ffvhuff",
    "utvideo",
    "png",
    "qtrle",
    "rawvideo",
    "ljpeg",
    "jpegls",
];

/// Refuses a `--bitrate` the encoder would ignore, and a `--crf` it would ignore or reject
/// only after the first frame: given with `--bitrate`, for an encoder without one, or out of
/// its range.
fn check_quality(settings: &EncodeSettings, encoder_name: &str) -> Result<()> {
    if let (Some(bitrate), true) = (settings.bitrate, FIXED_QUALITY.contains(&encoder_name)) {
        return Err(Error::setting(
            "--bitrate",
            bitrate,
            format!(
                "the {encoder_name} encoder has no bit-rate setting (it is lossless or of fixed \
                 quality): leave it out"
            ),
        ));
    }
    let Some(crf) = settings.crf else {
        return Ok(());
    };
    if settings.bitrate.is_some() {
        return Err(Error::setting(
            "--crf",
            crf,
            "give --crf (constant quality) or --bitrate, not both",
        ));
    }
    match CRF_ENCODERS.iter().find(|(name, _)| *name == encoder_name) {
        None => Err(Error::setting(
            "--crf",
            crf,
            format!("the {encoder_name} encoder has no constant-quality setting: leave it out"),
        )),
        Some((_, max)) if !(0.0..=*max).contains(&crf) => Err(Error::setting(
            "--crf",
            crf,
            format!("{encoder_name} takes 0 (best) to {max}"),
        )),
        Some(_) => Ok(()),
    }
}

/// What to encode with.
struct Choice {
    codec: ffmpeg::Codec,
    encoder_name: String,
    pix_fmt: Pixel,
}

/// The encoder and pixel format for `settings` in the `container` of `path` (whose muxer is
/// `muxer`), or an error naming the flag and what does not fit.
fn choose(
    path: &Path,
    container: &str,
    muxer: *const ffmpeg::ffi::AVOutputFormat,
    settings: &EncodeSettings,
) -> Result<Choice> {
    let codec_name = codec_name(settings, container);
    let (codec, encoder_name) = find_encoder(&codec_name).ok_or_else(|| {
        Error::setting(
            "--codec",
            &codec_name,
            "no such encoder in this ffmpeg build",
        )
    })?;
    if !unsafe { query(muxer, codec.id()) } {
        return Err(Error::setting(
            "--codec",
            &codec_name,
            format!(
                "the {container} container of '{}' cannot hold it; choose another codec or container (.mkv holds most)",
                path.display()
            ),
        ));
    }
    // MOV and MP4 refuse some codecs they claim to hold only when the file starts (VP9 or AV1
    // in MOV): tried now, before an encoder exists (SVT-AV1 hangs when one never fed is
    // freed). Not elsewhere: Matroska wants the encoder's own header data to start a file.
    let mut trial = codec::Parameters::new();
    unsafe {
        let p = trial.as_mut_ptr();
        (*p).codec_type = ffmpeg::ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
        (*p).codec_id = codec.id().into();
        (*p).width = 64;
        (*p).height = 64;
    }
    let tried = matches!(container, "mov" | "mp4").then(|| super::muxer_accepts(container, trial));
    if let Some(Err(why)) = tried {
        return Err(Error::setting(
            "--codec",
            &codec_name,
            format!(
                "the {container} container of '{}' refuses it ({why}); choose another codec or container (.mkv holds most)",
                path.display()
            ),
        ));
    }
    let video = codec
        .video()
        .map_err(|e| video_error(path, "the codec is not a video codec", e))?;
    let supported: Vec<Pixel> = video.formats().map(|f| f.collect()).unwrap_or_default();
    let pix_fmt = match &settings.pix_fmt {
        Some(name) => {
            let p: Pixel = name.parse().map_err(|_| {
                Error::setting("--pix-fmt", name, "not a pixel format ffmpeg knows")
            })?;
            if !supported.is_empty() && !supported.contains(&p) {
                return Err(Error::setting(
                    "--pix-fmt",
                    name,
                    format!("{encoder_name} cannot encode it"),
                ));
            }
            p
        }
        None if supported.is_empty() || supported.contains(&Pixel::YUV420P) => Pixel::YUV420P,
        None => supported[0],
    };
    check_quality(settings, &encoder_name)?;
    Ok(Choice {
        codec,
        encoder_name,
        pix_fmt,
    })
}

/// Whether pictures of this pixel format and encoder take the full 0..255 range: JPEG's
/// formats and encoders (which refuse the studio range), not video's usual 16..235.
fn is_full_range(pix_fmt: &str, encoder_name: &str) -> bool {
    pix_fmt.starts_with("yuvj") || is_jpeg_encoder(encoder_name)
}

/// Whether an encoder writes JPEG pictures (full range, BT.601).
fn is_jpeg_encoder(encoder_name: &str) -> bool {
    matches!(encoder_name, "mjpeg" | "ljpeg" | "jpegls")
}

/// One frame period (the inverse of the frame rate), when the rate is known.
fn frame_period(frame_rate: Ratio) -> Option<Rational> {
    (frame_rate.num > 0 && frame_rate.den > 0)
        .then(|| Rational::new(frame_rate.den, frame_rate.num).reduce())
}

/// How the encoder is set up, apart from its time base.
struct EncoderSetup<'a> {
    codec: ffmpeg::Codec,
    encoder_name: &'a str,
    size: (u32, u32),
    pix_fmt: Pixel,
    frame_rate: Rational,
    aspect: Rational,
    /// The colour tags of a YUV format; `None` for RGB.
    colour: Option<ColourTags>,
    global_header: bool,
    settings: &'a EncodeSettings,
}

/// How the encoded YUV is to be read: its matrix and range, with the primaries and transfer
/// that go with the matrix (encoders and containers that tag all three or none, ProRes and MOV,
/// tag them then).
#[derive(Clone, Copy, Debug)]
struct ColourTags {
    space: color::Space,
    range: color::Range,
}

impl ColourTags {
    fn primaries(self) -> color::Primaries {
        if self.space == color::Space::BT709 {
            color::Primaries::BT709
        } else {
            color::Primaries::SMPTE170M
        }
    }

    fn transfer(self) -> color::TransferCharacteristic {
        if self.space == color::Space::BT709 {
            color::TransferCharacteristic::BT709
        } else {
            color::TransferCharacteristic::SMPTE170M
        }
    }

    /// Tags `picture`: some encoders (ProRes) write each frame's own tags, not the stream's.
    fn tag(self, picture: &mut frame::Video) {
        picture.set_color_space(self.space);
        picture.set_color_range(self.range);
        picture.set_color_primaries(self.primaries());
        picture.set_color_transfer_characteristic(self.transfer());
    }
}

impl EncoderSetup<'_> {
    /// Opens the encoder with frame times in `time_base`.
    fn open(&self, time_base: Rational) -> std::result::Result<encoder::Video, ffmpeg::Error> {
        super::clear_explanation();
        let mut context = codec::context::Context::new_with_codec(self.codec)
            .encoder()
            .video()?;
        context.set_width(self.size.0);
        context.set_height(self.size.1);
        context.set_format(self.pix_fmt);
        context.set_time_base(time_base);
        context.set_frame_rate(Some(self.frame_rate));
        context.set_aspect_ratio(self.aspect);
        if let Some(tags) = self.colour {
            context.set_colorspace(tags.space);
            context.set_color_range(tags.range);
            unsafe {
                let raw = context.as_mut_ptr();
                (*raw).color_primaries = tags.primaries().into();
                (*raw).color_trc = tags.transfer().into();
            }
        }
        if self.global_header {
            context.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let name = self.encoder_name;
        let mut options = Dictionary::new();
        match self.settings.bitrate {
            Some(b) => context.set_bit_rate(b as usize),
            None => {
                if CRF_ENCODERS.iter().any(|(n, _)| *n == name) {
                    let crf = self.settings.crf.unwrap_or(DEFAULT_CRF);
                    options.set("crf", &crf.to_string());
                    if name.starts_with("libvpx") || name == "libaom-av1" {
                        options.set("b", "0");
                    }
                }
            }
        }
        if name == "libx264" || name == "libx265" {
            options.set("preset", "medium");
        }
        if name == "libx265" {
            options.set("x265-params", "log-level=error");
        }
        context.open_with(options)
    }
}

/// A video file being written.
pub struct VideoSink {
    path: PathBuf,
    temporary: PathBuf,
    output: format::context::Output,
    encoder: encoder::Video,
    stream: usize,
    /// The encoder's time base: the source's, one that holds the frame period as well (see
    /// `timing`), or one frame period where the encoder refuses those.
    time_base: Rational,
    /// The frames' times in the encoder's unit.
    times: FrameTimes,
    scaler: scaling::Context,
    colour: Option<ColourTags>,
    processing: (u32, u32),
    durations: HashMap<i64, i64>,
    end_seconds: f64,
    audio: Option<Sound>,
    /// Whether the whole source is rendered (all its sound is kept).
    whole: bool,
    frames: usize,
    /// Set once the file is complete and renamed; until then dropping the sink removes it.
    finished: bool,
    /// Lists the temporary file for removal if the process must exit at once.
    _listed: InProgress,
}

/// Removes temporary files of earlier runs to the same output that were killed outright (a
/// stopped or failed run removes its own).
fn remove_stale_partials(path: &Path) {
    let (prefix, suffix) = partial_name_parts(path);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(&suffix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Removes a file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for VideoSink {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// What a sink made of the settings, for the log.
pub struct EncodePlan {
    /// The encoder's name.
    pub encoder: String,
    /// The pixel format.
    pub pix_fmt: String,
    /// Size of the encoded pictures.
    pub size: (u32, u32),
    /// Whether sound is copied, re-encoded or absent.
    pub audio: String,
    /// Remarks (odd sizes, ...).
    pub notes: Vec<String>,
}

/// Where and what a sink writes.
pub struct Target<'a> {
    /// The output file.
    pub path: &'a Path,
    /// The source video (for its sound).
    pub input: &'a Path,
    /// The source's timing and aspect.
    pub info: &'a SourceInfo,
    /// Size of the frames the sink gets.
    pub processing: (u32, u32),
    /// Size they are scaled to.
    pub size: (u32, u32),
    /// Source time of the first frame written, which becomes 0 unless sound starts before it
    /// (see `from_start`).
    pub start_pts: i64,
    /// Whether the whole source is rendered; if not, the sound ends with the last frame.
    pub whole: bool,
    /// Whether the output starts with the source's first frame: then sound that starts before
    /// it is kept, and the picture starts that much later, as in the source.
    pub from_start: bool,
    /// Position of the first frame written in the source (from 0), which the source's timecode
    /// moves on by.
    pub first_index: usize,
}

impl VideoSink {
    /// Opens `target.path` for writing (under a temporary name), removing the temporary files
    /// of earlier runs into it that were killed outright (one run at a time writes an output:
    /// see [`crate::kept::KeptFrames::open`]).
    pub fn create(target: &Target<'_>, settings: &EncodeSettings) -> Result<(Self, EncodePlan)> {
        let Target {
            path,
            input,
            info,
            processing,
            size,
            start_pts,
            whole,
            from_start,
            first_index,
        } = *target;
        remove_stale_partials(target.path);
        init();
        super::clear_explanation();
        // The container the name asks for, written through a link onto the file it points to.
        let container = container(path)?;
        let path = &crate::io::atomic::landing(path);
        let temporary = temporary_path(path);
        let listed = InProgress::new(temporary.clone());
        let fail = |what: &str, e: ffmpeg::Error| video_error(path, what, e);
        let mut output = format::output_as(&temporary, container)
            .map_err(|e| fail("cannot create the output", e))?;
        // Until the sink exists (and its Drop takes over), a failure removes the file.
        let guard = RemoveOnDrop(temporary.clone());
        let Choice {
            codec,
            encoder_name,
            pix_fmt,
        } = choose(
            path,
            container,
            unsafe { (*output.as_ptr()).oformat },
            settings,
        )?;
        let descriptor = pix_fmt
            .descriptor()
            .ok_or_else(|| Error::setting("--pix-fmt", format!("{pix_fmt:?}"), "unknown"))?;
        let mut notes = Vec::new();
        let (mut cw, mut ch) = size;
        if descriptor.log2_chroma_w() > 0 && cw % 2 == 1 {
            cw += 1;
        }
        if descriptor.log2_chroma_h() > 0 && ch % 2 == 1 {
            ch += 1;
        }
        if (cw, ch) != size {
            notes.push(format!(
                "{}x{} is odd and {} needs even sizes: encoded at {cw}x{ch} (scaled by one pixel); \
                 --pix-fmt yuv444p keeps the size",
                size.0,
                size.1,
                descriptor.name()
            ));
        }

        let global_header = output
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER);
        super::clear_explanation();
        let mut ost = output
            .add_stream(codec)
            .map_err(|e| fail("cannot add the video stream", e))?;
        let stream = ost.index();
        let full_range = is_full_range(descriptor.name(), &encoder_name);
        // JPEG's YUV is BT.601 whatever the size (its decoders assume it); video's is by size.
        let matrix = if is_jpeg_encoder(&encoder_name) {
            ffmpeg::ffi::SWS_CS_ITU601
        } else {
            sws_matrix(color::Space::Unspecified, ch)
        };
        let rgb_codec = matches!(descriptor.name(), n if n.starts_with("gbr") || n.starts_with("rgb") || n.starts_with("bgr"));
        let setup = EncoderSetup {
            codec,
            encoder_name: &encoder_name,
            size: (cw, ch),
            pix_fmt,
            frame_rate: rational(info.frame_rate),
            aspect: rational(info.sample_aspect_ratio),
            colour: (!rgb_codec).then(|| ColourTags {
                space: space_of(matrix),
                range: if full_range {
                    color::Range::JPEG
                } else {
                    color::Range::MPEG
                },
            }),
            global_header,
            settings,
        };
        let colour = setup.colour;
        let source_time_base = rational(info.time_base);
        // A unit that holds the nominal frame period when the source's cannot (see `timing`).
        let grid = grid_time_base(source_time_base, rational(info.frame_rate));
        let opened = match grid.map(|unit| (setup.open(unit), unit)) {
            Some((Ok(encoder), unit)) => Ok((encoder, unit)),
            _ => setup
                .open(source_time_base)
                .map(|encoder| (encoder, source_time_base)),
        };
        let (encoder, time_base) = match opened {
            Ok(opened) => opened,
            Err(refused) => {
                // Told now, while ffmpeg's explanation is the last one.
                let refused = fail(&format!("cannot open the {encoder_name} encoder"), refused);
                // Some encoders take only their standard's time bases (MPEG-4 Part 2 a
                // denominator up to 65535, MPEG-1/2 a standard frame period): one frame period
                // then, as ffmpeg's own tool does, with each time rounded to it.
                let retried = frame_period(info.frame_rate)
                    .filter(|period| *period != source_time_base)
                    .and_then(|period| setup.open(period).ok().map(|e| (e, period)));
                match retried {
                    Some((encoder, period)) => {
                        super::clear_explanation();
                        notes.push(format!(
                            "{encoder_name} refuses the source's time base {}/{}: frame times \
                             rounded to its frame period {}/{} s",
                            source_time_base.numerator(),
                            source_time_base.denominator(),
                            period.numerator(),
                            period.denominator()
                        ));
                        (encoder, period)
                    }
                    None => return Err(refused),
                }
            }
        };
        ost.set_parameters(&encoder);
        ost.set_time_base(time_base);
        ost.set_avg_frame_rate(rational(info.frame_rate));
        unsafe {
            let par = (*ost.as_mut_ptr()).codecpar;
            (*par).sample_aspect_ratio = rational(info.sample_aspect_ratio).into();
            // HEVC in MP4 or MOV tagged hvc1 (parameter sets in the header), which Apple's
            // players require; ffmpeg's default hev1 they refuse.
            if codec.id() == codec::Id::HEVC && matches!(container, "mp4" | "mov") {
                (*par).codec_tag = u32::from_le_bytes(*b"hvc1");
            }
            (*ost.as_mut_ptr()).sample_aspect_ratio = rational(info.sample_aspect_ratio).into();
        }
        // The source's timecode, from the first frame written: the QuickTime and MP4 muxers
        // make a timecode track of it, the Matroska one a tag.
        if let Some(source) = &info.timecode {
            match super::timecode::advanced(source, info.frame_rate, first_index) {
                Some(timecode) => {
                    let mut metadata = ffmpeg::Dictionary::new();
                    metadata.set("timecode", &timecode);
                    ost.set_metadata(metadata);
                }
                None => notes.push(format!(
                    "the source's timecode {source} is not carried over: ffmpeg cannot count it \
                     at {:.3} fps",
                    info.frame_rate.as_f64()
                )),
            }
        }

        let mut audio_plan = "none".to_string();
        let mut lead = 0.0;
        let mut audio = if settings.audio && info.has_audio {
            let start_seconds = start_pts as f64 * info.time_base.as_f64();
            let (sound, plan, sound_lead) =
                Sound::add(input, &mut output, start_seconds, from_start)?;
            audio_plan = plan;
            lead = sound_lead;
            Some(sound)
        } else {
            None
        };
        let times = FrameTimes::new(
            source_time_base,
            time_base,
            rational(info.frame_rate),
            start_pts,
        )
        .with_lead(lead);
        if lead > 0.0 {
            // The picture's lead is a whole number of the encoder's units (one frame period for
            // the MPEG encoders): the sound moves with it.
            let rounded = times.lead_seconds();
            if let Some(sound) = audio.as_mut() {
                sound.move_start(lead - rounded);
            }
            notes.push(format!(
                "the sound starts {lead:.3} s before the first frame, as in the source: kept, \
                 the picture starts at {rounded:.3} s"
            ));
        }
        if times.snaps() {
            notes.push(format!(
                "frame times put on the {:.3} fps grid that the source's {}/{} s unit could only \
                 approximate",
                info.frame_rate.as_f64(),
                source_time_base.numerator(),
                source_time_base.denominator()
            ));
        }

        super::clear_explanation();
        let mut scaler = scaling::Context::get(
            Pixel::RGB48LE,
            processing.0,
            processing.1,
            pix_fmt,
            cw,
            ch,
            scaling::Flags::LANCZOS | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INP,
        )
        .map_err(|e| fail("cannot convert frames for the encoder", e))?;
        set_colorspace(&mut scaler, matrix, true, matrix, full_range);
        super::clear_explanation();
        output
            .write_header()
            .map_err(|e| fail("cannot write the container header", e))?;
        let plan = EncodePlan {
            encoder: encoder_name,
            pix_fmt: descriptor.name().to_string(),
            size: (cw, ch),
            audio: audio_plan,
            notes,
        };
        std::mem::forget(guard);
        Ok((
            VideoSink {
                path: path.to_path_buf(),
                temporary,
                output,
                encoder,
                stream,
                time_base,
                times,
                scaler,
                colour,
                processing,
                durations: HashMap::new(),
                end_seconds: 0.0,
                audio,
                whole,
                frames: 0,
                finished: false,
                _listed: listed,
            },
            plan,
        ))
    }

    fn rgb48(&self, frame: &Frame) -> frame::Video {
        let (w, h) = self.processing;
        assert_eq!(
            frame.image.dimensions(),
            (w, h),
            "frames come at the processing size"
        );
        let mut rgb = frame::Video::new(Pixel::RGB48LE, w, h);
        let stride = rgb.stride(0);
        let data = rgb.data_mut(0);
        for (y, row) in frame
            .image
            .as_raw()
            .chunks_exact(w as usize * 3)
            .enumerate()
        {
            let line = &mut data[y * stride..y * stride + w as usize * 6];
            for (dst, v) in line.chunks_exact_mut(2).zip(row) {
                let q = (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
                dst.copy_from_slice(&q.to_le_bytes());
            }
        }
        rgb
    }

    /// Writes every packet the encoder has ready, with the sound that comes before it.
    fn drain(&mut self) -> Result<()> {
        let ost_time_base = self.output.stream(self.stream).expect("added").time_base();
        let mut packet = Packet::empty();
        while super::ready(self.encoder.receive_packet(&mut packet))
            .map_err(|e| video_error(&self.path, "the encoder failed", e))?
        {
            if let Some(pts) = packet.pts() {
                if let Some(d) = self.durations.remove(&pts) {
                    packet.set_duration(d);
                }
            }
            packet.set_stream(self.stream);
            packet.rescale_ts(self.time_base, ost_time_base);
            if let (Some(audio), Some(dts)) = (self.audio.as_mut(), packet.dts()) {
                let seconds = dts as f64 * f64::from(ost_time_base);
                audio.write_until(&mut self.output, seconds, &self.path)?;
            }
            super::clear_explanation();
            packet
                .write_interleaved(&mut self.output)
                .map_err(|e| video_error(&self.path, "cannot write a video packet", e))?;
        }
        Ok(())
    }
}

impl FrameSink for VideoSink {
    fn write(&mut self, frame: &Frame) -> Result<()> {
        super::clear_explanation();
        let rgb = self.rgb48(frame);
        let mut picture = frame::Video::empty();
        self.scaler
            .run(&rgb, &mut picture)
            .map_err(|e| video_error(&self.path, "cannot convert a frame for the encoder", e))?;
        let pts = self.times.pts(frame.pts);
        if let Some(tags) = self.colour {
            tags.tag(&mut picture);
        }
        picture.set_pts(Some(pts));
        let duration = self.times.duration(frame.duration);
        self.durations.insert(pts, duration);
        self.end_seconds = self.times.end_seconds(frame.pts, frame.duration);
        self.encoder
            .send_frame(&picture)
            .map_err(|e| video_error(&self.path, "the encoder refused a frame", e))?;
        self.frames += 1;
        self.drain()
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        super::clear_explanation();
        self.encoder
            .send_eof()
            .map_err(|e| video_error(&self.path, "cannot flush the encoder", e))?;
        self.drain()?;
        if let Some(audio) = self.audio.as_mut() {
            // All the sound when the whole source was rendered, else up to the last frame's end.
            let until = if self.whole {
                f64::INFINITY
            } else {
                self.end_seconds
            };
            audio.finish(&mut self.output, until, &self.path)?;
        }
        super::clear_explanation();
        self.output
            .write_trailer()
            .map_err(|e| video_error(&self.path, "cannot complete the file", e))?;
        // On the disk before it takes the output's name: the kept frames are removed next, and
        // a power cut must not leave an empty video with nothing to resume from.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.temporary)
            .and_then(|f| f.sync_all())
            .map_err(|source| Error::Io {
                action: "cannot flush the finished video to the disk",
                path: self.temporary.clone(),
                source,
            })?;
        std::fs::rename(&self.temporary, &self.path).map_err(|source| Error::Io {
            action: "cannot rename the finished video to",
            path: self.path.clone(),
            source,
        })?;
        self.finished = true;
        remove_stale_partials(&self.path);
        Ok(())
    }
}

/// A file name's stem and extension (empty when absent).
fn stem_and_extension(path: &Path) -> (String, String) {
    let text = |s: Option<&std::ffi::OsStr>| {
        s.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    (text(path.file_stem()), text(path.extension()))
}

/// What the temporary names of a video at `path` start and end with, around a process id:
/// `.clip.partial-` and `.mp4`. A long stem is shortened (see [`crate::io::atomic::shortened`]) so that the name
/// keeps within the 255 bytes a name may have, whatever the process id.
fn partial_name_parts(path: &Path) -> (String, String) {
    const MOST_PID_DIGITS: usize = 10;
    let (stem, ext) = stem_and_extension(path);
    let (prefix_end, suffix) = (".partial-", format!(".{ext}"));
    let reserved = 1 + prefix_end.len() + MOST_PID_DIGITS + suffix.len();
    let stem = crate::io::atomic::shortened(&stem, reserved);
    (format!(".{stem}{prefix_end}"), suffix)
}

/// The temporary name a video is written under: beside it, hidden, unique to this process. It
/// is removed if the video is not completed.
pub fn temporary_path(path: &Path) -> PathBuf {
    let (prefix, suffix) = partial_name_parts(path);
    path.with_file_name(format!("{prefix}{}{suffix}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_keep_within_a_file_name_s_length() {
        let short = temporary_path(Path::new("dir/clip.mp4"));
        let pid = std::process::id();
        assert_eq!(short, Path::new(&format!("dir/.clip.partial-{pid}.mp4")));
        // A name of 251 bytes: the temporary name is shortened to fit, at a whole character,
        // with a digest of the whole name, and keeps the extension.
        let long = format!("{}é{}.mp4", "a".repeat(230), "b".repeat(15));
        let temporary = temporary_path(Path::new(&long));
        let name = temporary.file_name().unwrap().to_str().unwrap();
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.starts_with(&format!(".{}", "a".repeat(200))), "{name}");
        assert!(name.ends_with(&format!(".partial-{pid}.mp4")), "{name}");
        // Another long name that begins alike gets another temporary name.
        let other = format!("{}é{}.mp4", "a".repeat(230), "c".repeat(15));
        assert_ne!(temporary_path(Path::new(&other)), temporary);
        let (prefix, suffix) = partial_name_parts(Path::new(&long));
        assert!(name.starts_with(&prefix) && name.ends_with(&suffix));
    }
}
