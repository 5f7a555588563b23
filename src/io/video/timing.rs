//! Frame times for the encoder. Matroska and WebM keep times in milliseconds, in which the
//! periods of 23.976, 29.97 or 24 fps cannot be written: a 24000/1001 clip's frames lie at 0,
//! 42, 83, 125 ms. Copied as they are, the output's frames last 41 or 42 ms in turn and players
//! and editors see a variable rate. Where the source's unit cannot hold its frame period, the
//! encoder gets a unit that holds both, and each frame that lies within one source unit of the
//! nominal grid is put on it, as ffmpeg's own tool does; frames off the grid (a truly
//! variable rate) keep their own times, exactly.

use ffmpeg::util::mathematics::rescale::Rescale;
use ffmpeg::Rational;
use ffmpeg_next as ffmpeg;

/// A unit in which both the source's unit and the frame period of `rate` are whole numbers,
/// when the source's unit cannot hold the period: 1/lcm(the rate's numerator, the source unit's
/// denominator), both reduced. `None` when the source's unit holds the period, when the rate is
/// unknown, or when such a unit would be finer than a 32-bit denominator allows.
pub(super) fn grid_time_base(source: Rational, rate: Rational) -> Option<Rational> {
    let (source, rate) = (source.reduce(), rate.reduce());
    let (a, b) = (
        i64::from(source.numerator()),
        i64::from(source.denominator()),
    );
    let (num, den) = (i64::from(rate.numerator()), i64::from(rate.denominator()));
    if a <= 0 || b <= 0 || num <= 0 || den <= 0 {
        return None;
    }
    // The period den/num in units a/b: den·b / (num·a).
    if (den * b) % (num * a) == 0 {
        return None;
    }
    // lcm(num, b) = num/gcd · b, the reduced num/b giving num/gcd.
    let unit = i64::from(
        Rational::new(rate.numerator(), source.denominator())
            .reduce()
            .numerator(),
    ) * b;
    i32::try_from(unit).ok().map(|d| Rational::new(1, d))
}

/// The nominal frame grid in the encoder's unit.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// One frame period.
    period: i64,
    /// One unit of the source: how far a stored time may lie from the time it stands for.
    slack: i64,
}

/// Turns the source's frame times into the encoder's.
#[derive(Debug)]
pub(super) struct FrameTimes {
    source: Rational,
    encoder: Rational,
    /// The source time of the first frame written.
    offset: i64,
    /// The output time of the first frame written, in the encoder's unit: 0 unless sound
    /// starts before it (see [`FrameTimes::with_lead`]).
    lead: i64,
    grid: Option<Grid>,
    /// The last time given, in the encoder's unit (times rounded to a coarser unit must still
    /// increase).
    last: Option<i64>,
}

impl FrameTimes {
    /// Times in `source` units, from `offset` on, for an encoder in `encoder` units, of a
    /// stream of nominal `rate`. The grid applies when `encoder` is the unit
    /// [`grid_time_base`] gives.
    pub fn new(source: Rational, encoder: Rational, rate: Rational, offset: i64) -> Self {
        let grid = (grid_time_base(source, rate) == Some(encoder)).then(|| {
            let rate = rate.reduce();
            let per_second = i64::from(encoder.denominator());
            Grid {
                period: per_second * i64::from(rate.denominator()) / i64::from(rate.numerator()),
                slack: 1.rescale(source, encoder),
            }
        });
        FrameTimes {
            source,
            encoder,
            offset,
            lead: 0,
            grid,
            last: None,
        }
    }

    /// The same times, `seconds` later: the first frame written comes at `seconds` (rounded
    /// to the encoder's unit), where the output starts with sound that precedes it.
    pub fn with_lead(mut self, seconds: f64) -> Self {
        self.lead = (seconds / f64::from(self.encoder)).round() as i64;
        self
    }

    /// The first frame's output time, in seconds (the lead as the encoder's unit holds it).
    pub fn lead_seconds(&self) -> f64 {
        self.lead as f64 * f64::from(self.encoder)
    }

    /// Whether frames are put on the nominal grid.
    pub fn snaps(&self) -> bool {
        self.grid.is_some()
    }

    /// The encoder time of a frame at source time `pts`.
    pub fn pts(&mut self, pts: i64) -> i64 {
        let exact = (pts - self.offset).rescale(self.source, self.encoder);
        let time = match self.grid {
            Some(grid) => {
                let on = (exact + grid.period / 2).div_euclid(grid.period) * grid.period;
                if (exact - on).abs() <= grid.slack {
                    on
                } else {
                    exact
                }
            }
            None => exact,
        };
        let time = self.lead + time;
        let time = self.last.map_or(time, |last| time.max(last + 1));
        self.last = Some(time);
        time
    }

    /// When a frame at source time `pts` lasting `duration` source units ends, in seconds of
    /// output time.
    pub fn end_seconds(&self, pts: i64, duration: i64) -> f64 {
        (pts - self.offset + duration) as f64 * f64::from(self.source)
            + self.lead as f64 * f64::from(self.encoder)
    }

    /// The encoder duration of a frame lasting `duration` source units: whole periods when it
    /// is within two source units of them (it is the difference of two rounded times).
    pub fn duration(&self, duration: i64) -> i64 {
        let exact = duration.rescale(self.source, self.encoder);
        let snapped = self.grid.and_then(|grid| {
            let periods = ((exact + grid.period / 2) / grid.period).max(1);
            let on = periods * grid.period;
            ((exact - on).abs() <= 2 * grid.slack).then_some(on)
        });
        snapped.unwrap_or(exact).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: i32, den: i32) -> Rational {
        Rational::new(num, den)
    }

    #[test]
    fn the_grid_unit_holds_the_source_unit_and_the_period() {
        assert_eq!(
            grid_time_base(r(1, 1000), r(24000, 1001)),
            Some(r(1, 24000))
        );
        assert_eq!(
            grid_time_base(r(1, 1000), r(30000, 1001)),
            Some(r(1, 30000))
        );
        assert_eq!(grid_time_base(r(1, 1000), r(24, 1)), Some(r(1, 3000)));
        // Units that hold the period already.
        assert_eq!(grid_time_base(r(1, 1000), r(25, 1)), None);
        assert_eq!(grid_time_base(r(1, 90000), r(30000, 1001)), None);
        assert_eq!(grid_time_base(r(1001, 24000), r(24000, 1001)), None);
        assert_eq!(grid_time_base(r(1, 1000), r(0, 1)), None);
    }

    #[test]
    fn millisecond_times_of_23_976_fps_are_put_on_the_grid() {
        let mut times = FrameTimes::new(r(1, 1000), r(1, 24000), r(24000, 1001), 0);
        assert!(times.snaps());
        // Matroska's times of frames 0..5, then one frame 10 ms late (variable rate).
        let stored = [0, 42, 83, 125, 167, 219];
        let got: Vec<i64> = stored.iter().map(|&t| times.pts(t)).collect();
        assert_eq!(got, [0, 1001, 2002, 3003, 4004, 219 * 24]);
        assert_eq!(times.duration(41), 1001);
        assert_eq!(times.duration(42), 1001);
        assert_eq!(times.duration(83), 2002);
        assert_eq!(times.duration(30), 30 * 24);
    }

    #[test]
    fn a_lead_moves_every_frame_later_on_the_same_grid() {
        // 23.976 fps in milliseconds from 1.400 s, the sound 33 ms earlier.
        let mut times =
            FrameTimes::new(r(1, 1000), r(1, 24000), r(24000, 1001), 1400).with_lead(0.033);
        let got: Vec<i64> = [1400, 1442, 1483].iter().map(|&t| times.pts(t)).collect();
        assert_eq!(got, [792, 792 + 1001, 792 + 2002]);
        assert!((times.end_seconds(1483, 42) - (0.033 + 0.125)).abs() < 1e-9);
        assert_eq!(times.lead_seconds(), 792.0 / 24000.0);
        // In a unit of one frame period the lead is a whole frame.
        let coarse =
            FrameTimes::new(r(1, 1000), r(1001, 24000), r(24000, 1001), 0).with_lead(0.033);
        assert_eq!(coarse.lead_seconds(), 1001.0 / 24000.0);
    }

    #[test]
    fn without_the_grid_unit_times_are_only_rescaled() {
        let mut times = FrameTimes::new(r(1, 1000), r(1, 1000), r(24000, 1001), 500);
        assert!(!times.snaps());
        assert_eq!(times.pts(500), 0);
        assert_eq!(times.pts(542), 42);
        assert!((times.end_seconds(542, 42) - 0.084).abs() < 1e-12);
        // Rounded to a frame period (an encoder that takes no other unit): still increasing.
        let mut coarse = FrameTimes::new(r(1, 1000), r(1001, 24000), r(24000, 1001), 0);
        assert_eq!(coarse.pts(0), 0);
        assert_eq!(coarse.pts(10), 1);
        assert_eq!(coarse.pts(42), 2);
    }
}
