//! The Gatys engine: pure tensors in, tensors out. No threads, no ffmpeg; the only file it reads
//! is the network's weights.

mod cudnn;
pub mod flow;
pub mod host;
pub mod loss;
mod optim;
pub mod preprocess;
pub mod shot;
pub mod stylizer;
pub mod vgg;
