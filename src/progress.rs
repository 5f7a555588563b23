//! Progress of long work, as a trait, so that the library needs no progress-bar crate: the
//! binary shows it with indicatif, tests and library users may ignore it.

/// Receives progress. Every method has a default that does nothing.
pub trait Progress {
    /// A stage of `total` steps begins, e.g. the iterations of one image.
    fn begin(&mut self, what: &str, total: u64) {
        let _ = (what, total);
    }
    /// `position` steps are done; `loss` is the current total loss when it was read (reading
    /// it from a GPU waits for the GPU, so callers read it a few times a second at most).
    fn advance(&mut self, position: u64, loss: Option<f64>) {
        let _ = (position, loss);
    }
    /// The stage is over.
    fn end(&mut self) {}
    /// Something the user should read (not an error).
    fn log(&mut self, message: &str) {
        let _ = message;
    }
    /// A frame of a video or sequence is finished, before it goes to the output: painted now
    /// (`done.outcome` has its losses and iterations) or taken from an earlier run's kept frames
    /// (`done.outcome` is `None`).
    fn frame_done(&mut self, done: &crate::pipeline::FrameDone<'_>) {
        let _ = done;
    }
    /// A warning: logged now, and kept in `warnings` for the run's report.
    fn warn(&mut self, warnings: &mut Vec<String>, message: String) {
        self.log(&message);
        warnings.push(message);
    }
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {}

/// Says when a figure that costs a wait for the device is worth reading again: the first time,
/// then at most every `interval`.
pub struct Throttle {
    interval: std::time::Duration,
    last: Option<std::time::Instant>,
}

impl Throttle {
    /// A throttle of `interval`.
    pub fn new(interval: std::time::Duration) -> Self {
        Throttle {
            interval,
            last: None,
        }
    }

    /// Whether it is time; if so, the clock starts again.
    pub fn due(&mut self) -> bool {
        let now = std::time::Instant::now();
        let due = self
            .last
            .is_none_or(|last| now.duration_since(last) >= self.interval);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// How often progress bars show the loss.
pub const LOSS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
