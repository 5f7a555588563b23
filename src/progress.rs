//! Progress of long work, as a trait, so that the library needs no progress-bar crate: the
//! binary shows it with indicatif, tests and library users may ignore it.

/// Receives progress. Every method has a default that does nothing.
pub trait Progress {
    /// A stage of `total` steps begins, e.g. the iterations of one image.
    fn begin(&mut self, what: &str, total: u64) {
        let _ = (what, total);
    }
    /// `position` steps are done; `loss` is the current total loss.
    fn advance(&mut self, position: u64, loss: f64) {
        let _ = (position, loss);
    }
    /// The stage is over.
    fn end(&mut self) {}
    /// Something the user should read (not an error).
    fn log(&mut self, message: &str) {
        let _ = message;
    }
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {}
