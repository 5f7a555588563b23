//! Decoding a video's frames to upright RGB at a processing size, with their timestamps.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::util::color;
use ffmpeg::{codec, format, frame, media, Packet};
use ffmpeg_next as ffmpeg;
use image::Rgb32FImage;

use super::{init, ratio, set_colorspace, sws_matrix, video_error};
use crate::error::{Error, Result};
use crate::frames::{Frame, FrameSource, Ratio, SourceInfo};
use crate::io::image::check_processing_size;

use super::MAX_READ_ERRORS;

/// A video file's frames, decoded in presentation order.
pub struct VideoSource {
    path: PathBuf,
    input: format::context::Input,
    stream: usize,
    decoder: ffmpeg::decoder::Video,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    /// Size the decoder's pictures are scaled to, before rotation.
    scaled: (u32, u32),
    info: SourceInfo,
    /// Frames decoded but not handed out yet: one is held back until the next one's timestamp
    /// gives its duration.
    ready: VecDeque<Frame>,
    next_index: usize,
    next_pts: i64,
    /// Where a frame without a timestamp goes: one frame after the previous one.
    untimed_pts: i64,
    default_duration: i64,
    draining: bool,
    done: bool,
    damaged: usize,
    warnings: Vec<String>,
}

/// The clockwise rotation (0, 90, 180 or 270 degrees) that makes a stream's pictures upright,
/// from its display matrix.
fn rotation_of(stream: &format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == codec::packet::side_data::Type::DisplayMatrix && side.data().len() >= 36 {
            let angle =
                unsafe { ffmpeg::ffi::av_display_rotation_get(side.data().as_ptr().cast()) };
            if angle.is_finite() {
                return ((-angle).round() as i64).rem_euclid(360) as u32 / 90 * 90;
            }
        }
    }
    0
}

impl VideoSource {
    /// Opens `path` and its best video stream; frames will come scaled so that their upright
    /// long edge is `long_edge` pixels. A size at which a side falls outside what the network
    /// takes is refused, with a `--size` that would do.
    pub fn open(path: &Path, long_edge: u32) -> Result<Self> {
        init();
        super::clear_explanation();
        if !path.is_file() {
            return Err(Error::video(path, "no such file"));
        }
        let input = format::input(&path).map_err(|e| {
            Error::video(path, format!("not a video or image ffmpeg can read ({e})"))
        })?;
        // What opening logged is no explanation of what follows.
        super::clear_explanation();
        let stream = video_stream(&input, path)?;
        let index = stream.index();
        let mut context = codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| video_error(path, "cannot read the video stream's parameters", e))?;
        context.set_threading(ffmpeg::threading::Config::kind(
            ffmpeg::threading::Type::Frame,
        ));
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| video_error(path, "no decoder for the video stream", e))?;
        let (w, h) = (decoder.width(), decoder.height());
        if w == 0 || h == 0 {
            // ffmpeg (5.1) reads a WebP animation's stream but not its frames.
            let problem = if decoder.id() == ffmpeg::codec::Id::WEBP {
                "an animated WebP, which ffmpeg cannot decode: save its frames as PNG files and \
                 give their folder"
            } else {
                "the video stream has no picture size"
            };
            return Err(Error::video(path, problem));
        }
        let rotation = rotation_of(&stream);
        let (uw, uh) = if rotation % 180 == 90 { (h, w) } else { (w, h) };
        // The container's pixel aspect when it has one (Matroska keeps it there), else the
        // codec's.
        let mut sar = ratio(
            unsafe {
                ffmpeg::ffi::av_guess_sample_aspect_ratio(
                    input.as_ptr() as *mut _,
                    stream.as_ptr() as *mut _,
                    std::ptr::null_mut(),
                )
            }
            .into(),
        );
        if sar.num <= 0 || sar.den <= 0 {
            sar = Ratio::new(1, 1);
        }
        if rotation % 180 == 90 {
            sar = Ratio::new(sar.den, sar.num);
        }
        // Painted in square pixels, as the picture is seen: an anamorphic source's frames are
        // stretched to their display width first (brush strokes keep their shape on screen) and
        // squeezed back by the encoder, which keeps the source's size and pixel aspect.
        let display_width = (f64::from(uw) * f64::from(sar.num) / f64::from(sar.den))
            .round()
            .max(1.0) as u32;
        // Upright, and refused before any work with the size that would do.
        let upright = if rotation % 180 == 90 {
            (uh, display_width)
        } else {
            (display_width, uh)
        };
        let scaled = check_processing_size(path, "--size", long_edge, upright, long_edge)?;
        let time_base = ratio(stream.time_base());
        let mut frame_rate = ratio(stream.avg_frame_rate());
        if frame_rate.num <= 0 || frame_rate.den <= 0 {
            frame_rate = ratio(stream.rate());
        }
        if frame_rate.num <= 0 || frame_rate.den <= 0 {
            frame_rate = Ratio::new(25, 1);
        }
        let audio = input.streams().best(media::Type::Audio).map(|s| {
            codec::context::Context::from_parameters(s.parameters())
                .map(|c| format!("{:?}", c.id()).to_lowercase())
                .unwrap_or_else(|_| "unknown".into())
        });
        let frames = usize::try_from(stream.frames()).ok().filter(|n| *n > 0);
        let description = format!(
            "{} {uw}x{uh}, {:.3} fps{}{}{}",
            format!("{:?}", decoder.id()).to_lowercase(),
            frame_rate.as_f64(),
            frames.map(|n| format!(", {n} frames")).unwrap_or_default(),
            if rotation != 0 {
                format!(", turned {rotation}° clockwise to stand upright")
            } else {
                String::new()
            },
            audio
                .as_ref()
                .map(|a| format!(", {a} audio"))
                .unwrap_or_default(),
        );
        // Interlaced pictures hold two moments, a line each: painted as they are, with the comb
        // their motion makes. Said, with what to do.
        let field_order = unsafe { (*stream.parameters().as_ptr()).field_order };
        let interlaced = match field_order {
            ffmpeg::ffi::AVFieldOrder::AV_FIELD_TT | ffmpeg::ffi::AVFieldOrder::AV_FIELD_TB => {
                Some("top")
            }
            ffmpeg::ffi::AVFieldOrder::AV_FIELD_BB | ffmpeg::ffi::AVFieldOrder::AV_FIELD_BT => {
                Some("bottom")
            }
            _ => None,
        };
        let warnings = interlaced
            .map(|first| {
                format!(
                    "{}: interlaced ({first} field first); its frames are painted as they are, the \
                     comb of moving edges included: deinterlace it first for a clean result \
                     (e.g. ffmpeg -i IN -vf bwdif -c:a copy OUT)",
                    path.display()
                )
            })
            .into_iter()
            .collect();
        // One frame's duration in the stream's time base, for frames whose next one is unknown.
        let default_duration = ((f64::from(time_base.den) * f64::from(frame_rate.den))
            / (f64::from(time_base.num) * f64::from(frame_rate.num)))
        .round()
        .max(1.0) as i64;
        let first_pts = match stream.start_time() {
            ffmpeg::ffi::AV_NOPTS_VALUE => 0,
            start => start,
        };
        Ok(VideoSource {
            path: path.to_path_buf(),
            stream: index,
            decoder,
            scaler: None,
            scaled,
            info: SourceInfo {
                width: uw,
                height: uh,
                frames,
                time_base,
                frame_rate,
                sample_aspect_ratio: sar,
                rotation,
                has_audio: audio.is_some(),
                timecode: timecode_of(&input, &stream),
                first_number: 0,
                numbers: Vec::new(),
                description,
            },
            input,
            ready: VecDeque::new(),
            next_index: 0,
            next_pts: first_pts,
            untimed_pts: first_pts,
            default_duration,
            draining: false,
            done: false,
            damaged: 0,
            warnings,
        })
    }

    /// The next decoded picture, `None` at the end of the stream.
    fn decode(&mut self) -> Result<Option<frame::Video>> {
        let mut read_errors = 0;
        loop {
            let mut picture = frame::Video::empty();
            match self.decoder.receive_frame(&mut picture) {
                Ok(()) => return Ok(Some(picture)),
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(e) => {
                    // A damaged picture: count it and go on with the next, up to a point.
                    self.damaged += 1;
                    read_errors += 1;
                    if read_errors >= MAX_READ_ERRORS {
                        self.warnings.push(format!(
                            "gave up decoding after {MAX_READ_ERRORS} errors in a row ({e})"
                        ));
                        return Ok(None);
                    }
                    continue;
                }
            }
            if self.draining {
                return Ok(None);
            }
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    read_errors = 0;
                    if packet.stream() != self.stream {
                        continue;
                    }
                    if self.decoder.send_packet(&packet).is_err() {
                        self.damaged += 1;
                    }
                }
                Err(ffmpeg::Error::Eof) => {
                    self.draining = true;
                    let _ = self.decoder.send_eof();
                }
                Err(e) => {
                    read_errors += 1;
                    self.damaged += 1;
                    if read_errors >= MAX_READ_ERRORS {
                        self.warnings.push(format!(
                            "gave up reading after {MAX_READ_ERRORS} errors in a row ({e})"
                        ));
                        self.draining = true;
                        let _ = self.decoder.send_eof();
                    }
                }
            }
        }
    }

    /// Upright RGB (0..1) at the processing size.
    fn convert(&mut self, picture: &frame::Video) -> Result<Rgb32FImage> {
        let (w, h, format) = (picture.width(), picture.height(), picture.format());
        let rebuild =
            !matches!(&self.scaler, Some((_, f, sw, sh)) if (*f, *sw, *sh) == (format, w, h));
        if rebuild {
            let mut scaler = scaling::Context::get(
                format,
                w,
                h,
                Pixel::RGB48LE,
                self.scaled.0,
                self.scaled.1,
                scaling::Flags::LANCZOS
                    | scaling::Flags::ACCURATE_RND
                    | scaling::Flags::FULL_CHR_H_INT,
            )
            .map_err(|e| video_error(&self.path, "cannot convert the frames to RGB", e))?;
            let full = self.decoder.color_range() == color::Range::JPEG
                || matches!(format, Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P);
            let matrix = sws_matrix(self.decoder.color_space(), h);
            set_colorspace(&mut scaler, matrix, full, matrix, true);
            self.scaler = Some((scaler, format, w, h));
        }
        let (scaler, _, _, _) = self.scaler.as_mut().expect("made above");
        let mut rgb = frame::Video::empty();
        scaler
            .run(picture, &mut rgb)
            .map_err(|e| video_error(&self.path, "cannot convert a frame to RGB", e))?;
        let (sw, sh) = self.scaled;
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let mut pixels = Vec::with_capacity((sw * sh * 3) as usize);
        for y in 0..sh as usize {
            let row = &data[y * stride..y * stride + sw as usize * 6];
            pixels.extend(
                row.chunks_exact(2)
                    .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) / 65535.0),
            );
        }
        let image = Rgb32FImage::from_raw(sw, sh, pixels).expect("sized above");
        Ok(match self.info.rotation {
            90 => image::imageops::rotate90(&image),
            180 => image::imageops::rotate180(&image),
            270 => image::imageops::rotate270(&image),
            _ => image,
        })
    }

    /// Decodes until a frame can be handed out.
    fn fill(&mut self) -> Result<()> {
        while !self.done && self.ready.len() < 2 {
            match self.decode()? {
                Some(picture) => {
                    // A frame without a timestamp (a raw stream's) comes a frame after the last.
                    let pts = picture.timestamp().unwrap_or(self.untimed_pts);
                    // Timestamps must increase; a repeated or backward one is moved on.
                    let pts = pts.max(self.next_pts);
                    if let Some(previous) = self.ready.back_mut() {
                        previous.duration = (pts - previous.pts).max(1);
                    }
                    let image = self.convert(&picture)?;
                    // Until the next frame says otherwise: the frame's own duration where its
                    // container gives one (a variable-rate clip's last frame), else one frame
                    // at the average rate.
                    let own = picture.packet().duration;
                    self.ready.push_back(Frame {
                        index: self.next_index,
                        pts,
                        duration: if own > 0 { own } else { self.default_duration },
                        image,
                    });
                    self.next_index += 1;
                    self.next_pts = pts + 1;
                    self.untimed_pts = pts + self.default_duration;
                }
                None => self.done = true,
            }
        }
        Ok(())
    }
}

impl FrameSource for VideoSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        self.fill()?;
        if self.ready.is_empty() && self.next_index == 0 {
            return Err(Error::video(&self.path, "no frame could be decoded"));
        }
        Ok(self.ready.pop_front())
    }

    fn warnings(&mut self) -> Vec<String> {
        let mut w = std::mem::take(&mut self.warnings);
        if self.damaged > 0 {
            w.push(format!(
                "{} damaged packet(s) or picture(s) skipped so far",
                self.damaged
            ));
            self.damaged = 0;
        }
        w
    }
}

/// The video stream to paint: the best one that is not a cover picture attached to sound (an MP3's
/// or M4A's artwork, which ffmpeg lists as a one-frame video stream).
fn video_stream<'a>(
    input: &'a format::context::Input,
    path: &Path,
) -> Result<format::stream::Stream<'a>> {
    let cover = |s: &format::stream::Stream| {
        s.disposition()
            .contains(format::stream::Disposition::ATTACHED_PIC)
    };
    let best = input
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| Error::video(path, "has no video stream"))?;
    if !cover(&best) {
        return Ok(best);
    }
    input
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Video && !cover(s))
        .max_by_key(|s| s.frames())
        .ok_or_else(|| {
            Error::video(
                path,
                "has no video stream, only a cover picture attached to its sound: to paint the \
                 picture, take it out (ffmpeg -i IN -an -frames:v 1 cover.png) and give that",
            )
        })
}

/// The source's timecode at its first frame: the video stream's, else a timecode track's
/// (QuickTime's tmcd), else the file's (MXF).
fn timecode_of(input: &format::context::Input, video: &format::stream::Stream) -> Option<String> {
    let tagged = |metadata: ffmpeg::DictionaryRef| metadata.get("timecode").map(str::to_string);
    tagged(video.metadata())
        .or_else(|| {
            input
                .streams()
                .filter(|s| s.parameters().medium() == media::Type::Data)
                .find_map(|s| tagged(s.metadata()))
        })
        .or_else(|| tagged(input.metadata()))
}
