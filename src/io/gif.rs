//! The iteration GIF: the image every k iterations, from the start to the result, looping, with
//! the result held at the end.

use std::io::{BufWriter, Write};
use std::path::Path;

use gif::{Encoder, Frame, Repeat};
use image::{Rgb32FImage, RgbImage};

use super::atomic;
use super::image::to_rgb8;
use crate::engine::preprocess::{resize, scaled_size};
use crate::error::Result;

/// Frames a GIF gets when the interval is chosen automatically (plus the result).
pub const TARGET_FRAMES: usize = 50;
/// Default cap on the GIF's long edge, in pixels.
pub const DEFAULT_MAX_EDGE: u32 = 512;
/// Display time of each frame, in hundredths of a second.
const FRAME_DELAY: u16 = 8;
/// Display time of the first and the last frame, in hundredths of a second.
const HOLD_FIRST: u16 = 60;
const HOLD_LAST: u16 = 300;
/// NeuQuant's speed (1 best .. 30 fastest).
const QUANTISER_SPEED: i32 = 1;

/// Collects the frames of an iteration GIF.
pub struct GifRecorder {
    every: usize,
    max_edge: u32,
    frames: Vec<(usize, RgbImage)>,
}

impl GifRecorder {
    /// A recorder keeping the image every `every` iterations (at least 1), scaled down to at most
    /// `max_edge` pixels on the long edge.
    pub fn new(every: usize, max_edge: u32) -> Self {
        GifRecorder {
            every: every.max(1),
            max_edge,
            frames: Vec::new(),
        }
    }

    /// The interval that gives about [`TARGET_FRAMES`] frames for a run of `iterations`.
    pub fn interval_for(iterations: usize) -> usize {
        iterations.div_ceil(TARGET_FRAMES).max(1)
    }

    /// Whether the image of `iteration` is wanted.
    pub fn wants(&self, iteration: usize) -> bool {
        iteration % self.every == 0
    }

    /// Keeps the image of `iteration`.
    pub fn record(&mut self, iteration: usize, image: &Rgb32FImage) {
        let frame = self.shrink(image);
        self.frames.push((iteration, frame));
    }

    fn shrink(&self, image: &Rgb32FImage) -> RgbImage {
        let (w, h) = image.dimensions();
        if w.max(h) <= self.max_edge {
            return to_rgb8(image);
        }
        let (sw, sh) = scaled_size(w, h, self.max_edge);
        to_rgb8(&resize(image, sw, sh))
    }

    /// Writes the GIF to `path`: every recorded frame, then `result` (the output image, after
    /// `iterations` iterations) in place of or after the last one. Returns the frame count:
    /// 1 + ⌈iterations / every⌉.
    pub fn finish(self, result: &Rgb32FImage, iterations: usize, path: &Path) -> Result<usize> {
        let (staged, count) = self.stage(result, iterations, path)?;
        staged.commit()?;
        Ok(count)
    }

    /// [`GifRecorder::finish`], the file left under its temporary name until committed.
    pub fn stage(
        mut self,
        result: &Rgb32FImage,
        iterations: usize,
        path: &Path,
    ) -> Result<(atomic::Staged, usize)> {
        // Frames of iterations at or past the last (the optimiser may have run on, discarding
        // its work, after a stop it decided on the device) give way to the result.
        self.frames.retain(|(i, _)| *i < iterations);
        let last = self.shrink(result);
        self.frames.push((iterations, last));
        let count = self.frames.len();
        let (w, h) = self.frames[0].1.dimensions();
        let staged = atomic::Staged::write(path, |file| {
            let mut encoder = Encoder::new(BufWriter::new(file), w as u16, h as u16, &[])
                .map_err(std::io::Error::other)?;
            encoder
                .set_repeat(Repeat::Infinite)
                .map_err(std::io::Error::other)?;
            for (n, (_, image)) in self.frames.iter().enumerate() {
                let mut frame =
                    Frame::from_rgb_speed(w as u16, h as u16, image.as_raw(), QUANTISER_SPEED);
                frame.delay = match n {
                    0 if count > 1 => HOLD_FIRST,
                    n if n + 1 == count => HOLD_LAST,
                    _ => FRAME_DELAY,
                };
                encoder.write_frame(&frame).map_err(std::io::Error::other)?;
            }
            encoder.into_inner().map_err(std::io::Error::other)?.flush()
        })?;
        Ok((staged, count))
    }
}
