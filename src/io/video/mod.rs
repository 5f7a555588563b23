//! Video files through ffmpeg (ffmpeg-next): decoding to upright RGB frames, encoding stylised
//! frames with the source's timing, sound and aspect. Behind the `video` cargo feature.

mod audio;
pub mod decode;
pub mod encode;
mod timecode;
mod timing;

use std::path::Path;
use std::sync::Once;

use ffmpeg::util::color;
use ffmpeg_next as ffmpeg;

use crate::error::Error;
use crate::frames::Ratio;

/// Initialises ffmpeg once per process and keeps its own log quiet: problems reach the user
/// through this crate's errors and warnings instead, which quote ffmpeg's own explanation of a
/// failure (see [`video_error`]).
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        ffmpeg::init().expect("ffmpeg initialises");
        ffmpeg::log::set_level(ffmpeg::log::Level::Fatal);
        explained::listen();
    });
}

/// ffmpeg's own words for its failures. Its functions return only a code ("Invalid argument")
/// and say why in the log ("vp9 only supported in MP4"): the last error line of each thread is
/// kept for the error the user sees.
mod explained {
    use std::cell::RefCell;

    thread_local! {
        /// The last error line, and whether it is complete (ffmpeg writes lines in pieces).
        static LAST: RefCell<(String, bool)> = const { RefCell::new((String::new(), true)) };
    }

    /// Forgets the thread's last error line (before a call whose failure is to be explained).
    pub fn clear() {
        LAST.with(|last| *last.borrow_mut() = (String::new(), true));
    }

    /// The thread's last error line, if any, forgotten as it is taken.
    pub fn take() -> Option<String> {
        LAST.with(|last| {
            let (line, _) = std::mem::replace(&mut *last.borrow_mut(), (String::new(), true));
            let line = line.trim().to_string();
            (!line.is_empty()).then_some(line)
        })
    }

    #[cfg(all(target_arch = "x86_64", unix))]
    pub fn listen() {
        use ffmpeg_next::ffi;
        use std::ffi::{c_char, c_int, c_void, CStr};

        unsafe extern "C" fn keep(
            class: *mut c_void,
            level: c_int,
            format: *const c_char,
            arguments: *mut ffi::__va_list_tag,
        ) {
            if level > ffi::AV_LOG_ERROR {
                return;
            }
            let mut text = [0 as c_char; 1024];
            let mut prefix = 0;
            unsafe {
                ffi::av_log_format_line2(
                    class,
                    level,
                    format,
                    arguments,
                    text.as_mut_ptr(),
                    text.len() as c_int,
                    &mut prefix,
                );
            }
            let piece = unsafe { CStr::from_ptr(text.as_ptr()) }.to_string_lossy();
            let _ = LAST.try_with(|last| {
                let mut last = last.borrow_mut();
                if last.1 {
                    last.0.clear();
                }
                last.0.push_str(&piece);
                last.1 = piece.ends_with('\n');
            });
        }
        unsafe { ffi::av_log_set_callback(Some(keep)) };
    }

    /// Elsewhere the log stays silent and errors give ffmpeg's code alone.
    #[cfg(not(all(target_arch = "x86_64", unix)))]
    pub fn listen() {}
}

pub(crate) use explained::clear as clear_explanation;

/// Read or decode errors in a row after which a file is given up as unreadable from there on.
pub(crate) const MAX_READ_ERRORS: usize = 100;

/// Whether a receive call gave something: `Ok(false)` when the codec needs more input or is
/// drained, an error for anything else (which must not pass for the end of the data).
pub(crate) fn ready(
    result: std::result::Result<(), ffmpeg::Error>,
) -> std::result::Result<bool, ffmpeg::Error> {
    match result {
        Ok(()) => Ok(true),
        Err(ffmpeg::Error::Eof) => Ok(false),
        Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn ratio(r: ffmpeg::Rational) -> Ratio {
    Ratio::new(r.numerator(), r.denominator())
}

pub(crate) fn rational(r: Ratio) -> ffmpeg::Rational {
    ffmpeg::Rational::new(r.num, r.den)
}

/// Whether the `container` muxer starts a file holding one stream of `parameters`, tried on a
/// scratch file: some muxers say they can hold a codec and refuse it only when the file starts
/// (VP9 or AV1 in MOV, FLAC in MP4). `Err` carries ffmpeg's explanation of a refusal; a trial
/// that cannot be set up says nothing and counts as accepted.
pub(crate) fn muxer_accepts(
    container: &str,
    parameters: ffmpeg::codec::Parameters,
) -> std::result::Result<(), String> {
    use ffmpeg::{codec, encoder, format};
    let scratch = std::env::temp_dir().join(format!(
        "stylize-video-trial-{}-{container}",
        std::process::id()
    ));
    let _listed = crate::io::atomic::InProgress::new(scratch.clone());
    let refused = (|| {
        let mut trial = format::output_as(&scratch, container).ok()?;
        let mut stream = trial.add_stream(encoder::find(codec::Id::None)).ok()?;
        stream.set_parameters(parameters);
        unsafe {
            (*stream.parameters().as_mut_ptr()).codec_tag = 0;
        }
        clear_explanation();
        match trial.write_header() {
            Ok(()) => None,
            Err(e) => Some(explained::take().unwrap_or_else(|| e.to_string())),
        }
    })();
    let _ = std::fs::remove_file(&scratch);
    clear_explanation();
    match refused {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// An error of the video file `path`: what failed, ffmpeg's code, and ffmpeg's own explanation
/// when it logged one on this thread (since [`clear_explanation`]).
pub(crate) fn video_error(path: &Path, what: &str, e: ffmpeg::Error) -> Error {
    match explained::take() {
        Some(why) => Error::video(path, format!("{what}: {e} (ffmpeg: {why})")),
        None => Error::video(path, format!("{what}: {e}")),
    }
}

/// The YUV matrix of a stream, as swscale names it: the stream's own, or by size when unsaid
/// (BT.709 from 720 lines up, BT.601 below, as players assume).
pub(crate) fn sws_matrix(space: color::Space, height: u32) -> i32 {
    use ffmpeg::ffi::{SWS_CS_BT2020, SWS_CS_FCC, SWS_CS_ITU601, SWS_CS_ITU709, SWS_CS_SMPTE240M};
    match space {
        color::Space::BT709 => SWS_CS_ITU709,
        color::Space::BT470BG | color::Space::SMPTE170M => SWS_CS_ITU601,
        color::Space::SMPTE240M => SWS_CS_SMPTE240M,
        color::Space::FCC => SWS_CS_FCC,
        color::Space::BT2020NCL | color::Space::BT2020CL => SWS_CS_BT2020,
        _ if height >= 720 => SWS_CS_ITU709,
        _ => SWS_CS_ITU601,
    }
}

/// The colour space tag that goes with a swscale matrix.
pub(crate) fn space_of(matrix: i32) -> color::Space {
    use ffmpeg::ffi::{SWS_CS_BT2020, SWS_CS_ITU709};
    match matrix {
        SWS_CS_ITU709 => color::Space::BT709,
        SWS_CS_BT2020 => color::Space::BT2020NCL,
        _ => color::Space::SMPTE170M,
    }
}

/// Sets the YUV matrix and ranges a scaler converts with (swscale assumes BT.601 otherwise).
pub(crate) fn set_colorspace(
    scaler: &mut ffmpeg::software::scaling::Context,
    src_matrix: i32,
    src_full_range: bool,
    dst_matrix: i32,
    dst_full_range: bool,
) {
    unsafe {
        let src = ffmpeg::ffi::sws_getCoefficients(src_matrix);
        let dst = ffmpeg::ffi::sws_getCoefficients(dst_matrix);
        ffmpeg::ffi::sws_setColorspaceDetails(
            scaler.as_mut_ptr(),
            src,
            i32::from(src_full_range),
            dst,
            i32::from(dst_full_range),
            0,
            1 << 16,
            1 << 16,
        );
    }
}
