//! Shot cuts. A warm start helps only while a frame continues the one before: after a cut the
//! previous result paints another picture, and starting from it leaves ghosts of the last shot
//! and a loss that the optimisation may never bring down to a cold start's. A frame that does
//! not continue the previous one starts cold instead.
//!
//! The test is how much of the frame the motion does not explain: the mean absolute difference
//! (0..255) between the frame and the previous frame moved along the optical flow onto it.

use tch::Tensor;

use super::flow::{mean_abs_difference, warp, Sampling};

/// The difference above which a frame starts a new shot. Measured on the sample clips: within a
/// shot at most 2.3 (Big Buck Bunny), 3.0 (carphone) and 10.0 (bikes, fast motion) at 128 px,
/// 2.8 and 9.4 at 640 px; at bikes' five cuts 25.6 to 52.8 at 128 px, 21.3 to 57.6 at 640 px;
/// between frames of different clips 28.9 or more. 14 is about 1.5x from either side at both
/// sizes.
pub const DEFAULT_CUT_THRESHOLD: f64 = 14.0;

/// The mean absolute difference (0..255) between `content` and `previous_content` moved along
/// `back`, the flow from `content` to `previous_content` (network space, 1 x 3 x H x W).
pub fn unexplained_difference(content: &Tensor, previous_content: &Tensor, back: &Tensor) -> f64 {
    let moved = tch::no_grad(|| warp(previous_content, back, Sampling::Bilinear));
    mean_abs_difference(content, &moved)
}

/// Whether a frame whose [`unexplained_difference`] is `difference` starts a new shot under
/// `threshold` (0: never).
pub fn is_cut(difference: f64, threshold: f64) -> bool {
    threshold > 0.0 && difference > threshold
}
