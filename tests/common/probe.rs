//! Reading videos back with ffmpeg (the same libraries the product uses), to check what was
//! written: frame times, sizes, sound.
#![allow(dead_code)]

use std::path::Path;

use ffmpeg::{format, media};
use ffmpeg_next as ffmpeg;

/// What a video file holds.
#[derive(Debug)]
pub struct Probe {
    /// Video codec name.
    pub codec: String,
    /// Coded size.
    pub size: (u32, u32),
    /// Presentation time of every video frame, in seconds, in display order.
    pub times: Vec<f64>,
    /// The container's duration, in seconds.
    pub duration: f64,
    /// Sound: codec and duration in seconds, if any.
    pub audio: Option<(String, f64)>,
    /// When the sound starts, in seconds.
    pub audio_start: f64,
    /// Pixel aspect ratio of the video stream.
    pub sample_aspect_ratio: (i32, i32),
    /// Rotation side data present.
    pub rotated: bool,
}

pub fn probe(path: &Path) -> Probe {
    ffmpeg::init().unwrap();
    let mut input = format::input(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let video = input
        .streams()
        .best(media::Type::Video)
        .expect("a video stream");
    let (vi, vtb) = (video.index(), f64::from(video.time_base()));
    let params = video.parameters();
    let ctx = ffmpeg::codec::context::Context::from_parameters(params).unwrap();
    let codec = format!("{:?}", ctx.id()).to_lowercase();
    let decoder = ctx.decoder().video().unwrap();
    let size = (decoder.width(), decoder.height());
    let sar: ffmpeg::Rational = unsafe {
        ffmpeg::ffi::av_guess_sample_aspect_ratio(
            input.as_ptr() as *mut _,
            video.as_ptr() as *mut _,
            std::ptr::null_mut(),
        )
    }
    .into();
    let rotated = video
        .side_data()
        .any(|s| s.kind() == ffmpeg::codec::packet::side_data::Type::DisplayMatrix);
    let audio_stream = input.streams().best(media::Type::Audio).map(|s| {
        let c = ffmpeg::codec::context::Context::from_parameters(s.parameters()).unwrap();
        (
            s.index(),
            f64::from(s.time_base()),
            format!("{:?}", c.id()).to_lowercase(),
        )
    });
    let duration = input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE);
    let mut times = Vec::new();
    let (mut a_first, mut a_end) = (f64::INFINITY, f64::NEG_INFINITY);
    for (stream, packet) in input.packets() {
        if stream.index() == vi {
            times.push(packet.pts().expect("pts") as f64 * vtb);
        } else if let Some((ai, atb, _)) = &audio_stream {
            if stream.index() == *ai {
                let pts = packet.pts().unwrap_or(0) as f64 * atb;
                a_first = a_first.min(pts);
                a_end = a_end.max(pts + packet.duration() as f64 * atb);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    Probe {
        codec,
        size,
        times,
        duration,
        audio: audio_stream.map(|(_, _, c)| (c, a_end - a_first)),
        audio_start: a_first,
        sample_aspect_ratio: (sar.numerator(), sar.denominator()),
        rotated,
    }
}

/// Runs the ffmpeg command-line tool (to make odd test inputs).
pub fn ffmpeg_cli(args: &[&str]) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("the ffmpeg tool (make test installs it)");
    assert!(status.success(), "ffmpeg {args:?}");
}

/// The colour tags of the first decoded video frame, as players read them: matrix, range,
/// primaries and transfer, in ffmpeg's names (`bt709`, `tv`, ...).
pub fn colour_tags(path: &Path) -> [String; 4] {
    ffmpeg::init().unwrap();
    let mut input = format::input(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stream = input.streams().best(media::Type::Video).expect("a video");
    let index = stream.index();
    let ctx = ffmpeg::codec::context::Context::from_parameters(stream.parameters()).unwrap();
    let mut decoder = ctx.decoder().video().unwrap();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut decoded = false;
    for (stream, packet) in input.packets() {
        if stream.index() == index {
            decoder.send_packet(&packet).unwrap();
            decoded = decoder.receive_frame(&mut frame).is_ok();
            if decoded {
                break;
            }
        }
    }
    if !decoded {
        decoder.send_eof().unwrap();
        decoder.receive_frame(&mut frame).expect("a frame");
    }
    let name = |s: *const std::ffi::c_char| {
        assert!(!s.is_null(), "a known value");
        unsafe { std::ffi::CStr::from_ptr(s) }
            .to_string_lossy()
            .into_owned()
    };
    let raw = unsafe { &*frame.as_ptr() };
    unsafe {
        [
            name(ffmpeg::ffi::av_color_space_name(raw.colorspace)),
            name(ffmpeg::ffi::av_color_range_name(raw.color_range)),
            name(ffmpeg::ffi::av_color_primaries_name(raw.color_primaries)),
            name(ffmpeg::ffi::av_color_transfer_name(raw.color_trc)),
        ]
    }
}
