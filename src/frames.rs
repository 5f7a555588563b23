//! The one frame type where sources (video decoders, frame sequences, anything a library user
//! has) meet the stylizer and the sinks (video encoders, frame sequences).

use image::Rgb32FImage;

use crate::error::Result;

/// A rational number, for time bases and frame rates (ffmpeg's convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ratio {
    /// Numerator.
    pub num: i32,
    /// Denominator.
    pub den: i32,
}

impl Ratio {
    /// `num/den`.
    pub const fn new(num: i32, den: i32) -> Self {
        Ratio { num, den }
    }

    /// In lowest terms, with a non-negative denominator; `0/0` stays as it is, and so does a
    /// ratio whose reduced form does not fit (only `i32::MIN` over -1 or 1 can fail to).
    pub fn reduced(self) -> Self {
        let (num, den) = (i64::from(self.num), i64::from(self.den));
        let (mut a, mut b) = (num.abs(), den.abs());
        while b != 0 {
            (a, b) = (b, a % b);
        }
        if a == 0 {
            return self;
        }
        let sign = if den < 0 { -1 } else { 1 };
        match (i32::try_from(sign * num / a), i32::try_from(sign * den / a)) {
            (Ok(num), Ok(den)) => Ratio::new(num, den),
            _ => self,
        }
    }

    /// As a float (0 when the denominator is 0).
    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            f64::from(self.num) / f64::from(self.den)
        }
    }
}

/// One picture of a sequence: upright, RGB with values in 0..1.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Position in the source, from 0, counting every frame of the source.
    pub index: usize,
    /// Presentation time in the source's time base.
    pub pts: i64,
    /// How long the frame is shown, in the source's time base.
    pub duration: i64,
    /// The picture.
    pub image: Rgb32FImage,
}

/// What a source knows before its first frame.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    /// Upright width of the source's frames, in pixels.
    pub width: u32,
    /// Upright height of the source's frames, in pixels.
    pub height: u32,
    /// Number of frames, when the source knows it (containers may not say).
    pub frames: Option<usize>,
    /// Unit of `Frame::pts` and `Frame::duration`, in seconds.
    pub time_base: Ratio,
    /// Nominal frame rate (frames per second); variable-rate sources give their average.
    pub frame_rate: Ratio,
    /// Pixel aspect ratio (1:1 for square pixels), after rotation.
    pub sample_aspect_ratio: Ratio,
    /// Rotation applied to make the frames upright, in degrees clockwise (0, 90, 180, 270).
    pub rotation: u32,
    /// Whether the source has sound that a video sink may carry over.
    pub has_audio: bool,
    /// Number of the first frame, for naming output files: a sequence's first file number, 0
    /// for a video.
    pub first_number: u64,
    /// A sequence's file numbers, frame by frame, so that the output keeps them across gaps
    /// (input 1001, 1002, 1004 gives output 1001, 1002, 1004); empty for a video, whose frames
    /// are numbered from `first_number` on.
    pub numbers: Vec<u64>,
    /// A line for logs ("h264 1280x720 25 fps, aac audio").
    pub description: String,
    /// The source's SMPTE timecode at its first frame ("01:00:00:00"; ";" before the frames
    /// for drop-frame), which a video output carries on from its own first frame.
    pub timecode: Option<String>,
}

impl SourceInfo {
    /// The number of frame `index` (its position in the source, from 0), for file names.
    pub fn number(&self, index: usize) -> u64 {
        self.numbers
            .get(index)
            .copied()
            .unwrap_or(self.first_number + index as u64)
    }
}

/// Where frames come from. Frames arrive in presentation order, already scaled to the size the
/// source was opened for.
pub trait FrameSource {
    /// What the source is.
    fn info(&self) -> &SourceInfo;
    /// The next frame, `None` at the end.
    fn next_frame(&mut self) -> Result<Option<Frame>>;
    /// Problems met on the way that did not stop decoding (damaged packets, ...), for the log.
    fn warnings(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Where stylised frames go, in order.
pub trait FrameSink {
    /// Takes the next frame.
    fn write(&mut self, frame: &Frame) -> Result<()>;
    /// Completes the output (writes trailers, renames into place).
    fn finish(self: Box<Self>) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::Ratio;

    #[test]
    fn ratios_reduce_to_lowest_terms() {
        assert_eq!(Ratio::new(29970, 1000).reduced(), Ratio::new(2997, 100));
        assert_eq!(Ratio::new(50, -2).reduced(), Ratio::new(-25, 1));
        assert_eq!(Ratio::new(0, 5).reduced(), Ratio::new(0, 1));
        assert_eq!(Ratio::new(0, 0).reduced(), Ratio::new(0, 0));
        assert_eq!(Ratio::new(7, 0).reduced(), Ratio::new(1, 0));
        assert_eq!(Ratio::new(i32::MIN, -2).reduced(), Ratio::new(1 << 30, 1));
        assert_eq!(Ratio::new(i32::MIN, -1).reduced(), Ratio::new(i32::MIN, -1));
    }
}
