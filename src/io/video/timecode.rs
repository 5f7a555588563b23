//! SMPTE timecodes, carried from a source to the output: a render that starts at a later frame
//! starts its timecode that many frames later, so that an editor can lay it over the original.

use std::ffi::{c_char, CStr, CString};

use ffmpeg_next as ffmpeg;

use crate::frames::Ratio;

/// `timecode` ("HH:MM:SS:FF", or with ";" before the frames for drop-frame) moved on by
/// `frames` frames at `rate` frames per second; None when ffmpeg cannot read it at that rate.
pub(crate) fn advanced(timecode: &str, rate: Ratio, frames: usize) -> Option<String> {
    let text = CString::new(timecode).ok()?;
    let frames = i32::try_from(frames).ok()?;
    let rate = ffmpeg::ffi::AVRational {
        num: rate.num,
        den: rate.den,
    };
    let mut tc = ffmpeg::ffi::AVTimecode {
        start: 0,
        flags: 0,
        rate,
        fps: 0,
    };
    let mut buffer = [0 as c_char; ffmpeg::ffi::AV_TIMECODE_STR_SIZE as usize];
    unsafe {
        if ffmpeg::ffi::av_timecode_init_from_string(
            &mut tc,
            rate,
            text.as_ptr(),
            std::ptr::null_mut(),
        ) < 0
        {
            return None;
        }
        ffmpeg::ffi::av_timecode_make_string(&tc, buffer.as_mut_ptr(), frames);
        Some(CStr::from_ptr(buffer.as_ptr()).to_str().ok()?.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timecode_moves_on_by_whole_frames_at_its_rate() {
        let film = Ratio::new(24, 1);
        assert_eq!(advanced("01:00:00:00", film, 0).unwrap(), "01:00:00:00");
        assert_eq!(advanced("01:00:00:00", film, 25).unwrap(), "01:00:01:01");
        assert_eq!(advanced("00:59:59:23", film, 1).unwrap(), "01:00:00:00");
        // 23.976 fps counts 24 frames a second; PAL 25.
        let ntsc_film = Ratio::new(24000, 1001);
        assert_eq!(
            advanced("10:00:00:00", ntsc_film, 48).unwrap(),
            "10:00:02:00"
        );
        assert_eq!(
            advanced("00:00:00:00", Ratio::new(25, 1), 25).unwrap(),
            "00:00:01:00"
        );
        // Drop-frame 29.97: frames 0 and 1 of each minute but every tenth are skipped.
        let ntsc = Ratio::new(30000, 1001);
        assert_eq!(advanced("00:00:59;29", ntsc, 1).unwrap(), "00:01:00;02");
        assert_eq!(advanced("00:09:59;29", ntsc, 1).unwrap(), "00:10:00;00");
        assert!(advanced("not a timecode", film, 1).is_none());
    }
}
