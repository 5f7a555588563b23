//! The one error type of the library. Every variant carries the offending path or value, so that
//! a message alone tells the user what to fix.

use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} '{path}': {source}")]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An input image is missing, unreadable, damaged or unusable.
    #[error("image '{path}': {problem}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A video cannot be read or written.
    #[error("video '{path}': {problem}")]
    Video {
        /// The video file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The run was interrupted (Ctrl-C); finished frames are kept.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// The network weights are missing or damaged.
    #[error("weights '{path}': {problem}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A setting is out of range or inconsistent with another.
    #[error("{name} = {}: {problem}", shown_value(value))]
    Setting {
        /// The setting, named as on the command line (`--style-weight`).
        name: String,
        /// The value given.
        value: String,
        /// Why it cannot be used.
        problem: String,
    },
    /// An output cannot be written where asked.
    #[error("output '{path}': {problem}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why it cannot be written.
        problem: String,
    },
    /// The requested device is not available.
    #[error("device '{device}': {problem}")]
    Device {
        /// The device as asked for.
        device: String,
        /// Why it cannot be used.
        problem: String,
    },
    /// The device (GPU or host memory) ran out of memory for an image of this size.
    #[error(
        "ran out of memory optimising a {width}x{height} image ({problem}); --size {fits} needs \
         about half as much (memory grows with the pixel count), and --precision bf16 less again"
    )]
    OutOfMemory {
        /// The image's width, in pixels.
        width: i64,
        /// Its height.
        height: i64,
        /// A long edge that needs about half the memory (a multiple of 16).
        fits: i64,
        /// libtorch's words (their first line).
        problem: String,
    },
    /// The optimisation produced no finite image (never written out).
    #[error("the optimisation produced no finite image: {0}")]
    NonFinite(String),
    /// A stage of the frame pipeline (decoding, stylising, encoding) stopped without its own
    /// error.
    #[error("frame pipeline: {0}")]
    Pipeline(String),
    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A setting's value as the message shows it: quoted where it holds a colon or a space or is
/// empty, so that `--frames = "25::": ...` does not read as part of the message.
fn shown_value(value: &str) -> String {
    if value.is_empty() || value.contains([':', ' ', '\t']) {
        format!("{value:?}")
    } else {
        value.to_string()
    }
}

impl Error {
    /// A [`Error::Setting`] from its parts.
    pub fn setting(name: &str, value: impl ToString, problem: impl Into<String>) -> Self {
        let value = value.to_string();
        Error::Setting {
            name: name.to_string(),
            value: value.parse().ok().and_then(number).unwrap_or(value),
            problem: problem.into(),
        }
    }

    /// An [`Error::Image`] from its parts.
    pub fn image(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Image {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// An [`Error::Video`] from its parts.
    pub fn video(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Video {
            path: path.into(),
            problem: problem.into(),
        }
    }

    /// An [`Error::Output`] from its parts.
    pub fn output(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::Output {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// `x` as a person would write it where its decimal form is long (`1e300`, not its 301 digits;
/// `1e-12`), else `None`.
fn number(x: f64) -> Option<String> {
    let plain = x.to_string();
    (x.is_finite() && plain.len() > 16).then(|| format!("{x:e}"))
}

/// `x` for a message: as [`number`] writes it where its decimal form is long, else as Rust does.
pub(crate) fn shown(x: f64) -> String {
    number(x).unwrap_or_else(|| x.to_string())
}

/// Numbers for a message, as a comma-separated list would be typed: `0.7,0.3`.
pub fn listed(values: impl IntoIterator<Item = f64>) -> String {
    let each: Vec<String> = values.into_iter().map(shown).collect();
    each.join(",")
}
