//! Pictures in and out: still images, the iteration GIF, and atomic writes.

pub mod atomic;
pub mod gif;
pub mod image;
pub mod sequence;
#[cfg(feature = "video")]
pub mod video;
