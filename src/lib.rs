//! # stylize-video
//!
//! Neural style transfer by optimisation, as in Gatys, Ecker and Bethge, "A Neural Algorithm of
//! Artistic Style" (2015): an image is optimised so that its VGG19 features match a content
//! image's and its Gram matrices match a painting's.
//!
//! - [`engine`]: the network, the losses and the optimisers, on tensors (no threads; files only
//!   to load the weights).
//! - [`settings`]: what stills and videos share ([`settings::StyleSettings::new`] gives the
//!   command line's defaults).
//! - [`still`]: one image from files to files (the result, the iteration GIF, the report).
//! - [`video`]: a video or frame sequence from files to files, resumable; [`pipeline`]: the
//!   decode, stylise and encode threads between any [`frames::FrameSource`] and
//!   [`frames::FrameSink`]; [`kept`]: the finished frames kept for resuming.
//! - [`io`]: pictures, sequences and videos in and out; [`report`]: the JSON report;
//!   [`progress`]: progress as a trait; [`device`], [`memory`]: the compute device and its
//!   memory; [`error`]: the one error type, a variant per kind of failure.
//!
//! libtorch's settings are process-wide: a GPU evaluation sets cuDNN's TF32 and autotuning
//! switches for its precision (see [`engine::vgg::Precision`]), and a seeded noise start seeds
//! libtorch's generator.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use stylize_video::engine::{preprocess, stylizer::*, vgg::Vgg19};
//! # fn main() -> stylize_video::Result<()> {
//! let device = tch::Device::cuda_if_available();
//! let vgg = Vgg19::load(&Vgg19::default_weights_path(), device)?;
//! let content = stylize_video::io::image::load("photo.jpg".as_ref())?;
//! let painting = stylize_video::io::image::load("painting.jpg".as_ref())?;
//! let loss = LossSettings::default();
//! // The painting's Gram matrices, computed once, reused for every image that follows.
//! let style = StyleTarget::new(&vgg, &[(preprocess::to_network(&painting, device), 1.0)], &loss)?;
//! let stylizer = Stylizer::new(&vgg, &style, loss, OptimizerSettings::default())?;
//! let x0 = preprocess::to_network(&content, device);
//! let outcome = stylizer.run(&x0, &x0, |_| ControlFlow::Continue(()))?;
//! let picture = preprocess::from_network(&outcome.image)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

pub mod device;
pub mod engine;
pub mod error;
pub mod frames;
pub mod io;
pub mod kept;
mod loaded;
pub mod memory;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod settings;
pub mod still;
pub mod video;

pub use error::{Error, Result};

/// The README's library example, compiled with the documentation's tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;
