//! Dense optical flow between two frames, so that a warm start follows the motion: the previous
//! stylised frame is moved along the flow before the next frame's optimisation starts from it
//! (Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos", 2016).
//!
//! The estimator is Horn and Schunck's (1981), coarse to fine with repeated warping and a median
//! filter of the flow after each warp, written in tensor operations so that it runs on the
//! device beside the optimisation and needs no library beyond libtorch.

use tch::{Kind, Tensor};

/// Finds where each pixel of one frame is in another.
pub trait FlowEstimator {
    /// The displacement field `w` (1 x 2 x H x W, float32, x then y, in pixels) such that
    /// `from(p) ≈ to(p + w(p))`, for two frames of the same size (1 x 3 x H x W, network space
    /// as [`to_network`](super::preprocess::to_network) makes, or any linear colour space).
    fn flow(&self, from: &Tensor, to: &Tensor) -> Tensor;
}

/// Horn–Schunck flow, coarse to fine with warping.
#[derive(Clone, Debug, PartialEq)]
pub struct HornSchunck {
    /// Weight of the flow's smoothness against brightness constancy, on intensities in 0..1.
    /// The default, 0.05, lined real frames up best among 0.01–0.2 (`tests/flow.rs`).
    pub smoothness: f64,
    /// Warps (re-linearisations) per pyramid level.
    pub warps: usize,
    /// Jacobi iterations per warp.
    pub iterations: usize,
    /// The coarsest level's shorter side, in pixels, at least.
    pub coarsest: i64,
}

impl Default for HornSchunck {
    fn default() -> Self {
        HornSchunck {
            smoothness: 0.05,
            warps: 3,
            iterations: 30,
            coarsest: 12,
        }
    }
}

impl FlowEstimator for HornSchunck {
    fn flow(&self, from: &Tensor, to: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let first = intensity(from);
            let second = intensity(to);
            let pyramid = pyramid(&first, &second, self.coarsest);
            let (_, _, h, w) = pyramid
                .last()
                .expect("one level at least")
                .0
                .size4()
                .unwrap();
            let mut flow = Tensor::zeros([1, 2, h, w], (Kind::Float, from.device()));
            for (i, (first, second)) in pyramid.iter().rev().enumerate() {
                if i > 0 {
                    flow = upscale_flow(&flow, first);
                }
                for _ in 0..self.warps {
                    flow = self.refine(first, second, &flow);
                    flow = median3(&flow);
                }
            }
            flow
        })
    }
}

impl HornSchunck {
    /// One warp: the brightness constancy linearised around `flow`, then Jacobi iterations of
    /// Horn and Schunck's equations for the whole flow.
    fn refine(&self, first: &Tensor, second: &Tensor, flow: &Tensor) -> Tensor {
        let moved = warp(second, flow, Sampling::Bilinear);
        let (ix, iy) = gradients(&((&moved + first) * 0.5));
        let it = &moved - first;
        let denominator = (&ix * &ix + &iy * &iy + self.smoothness * self.smoothness).reciprocal();
        let u0 = flow.narrow(1, 0, 1);
        let v0 = flow.narrow(1, 1, 1);
        let mut current = flow.shallow_clone();
        for _ in 0..self.iterations {
            let mean = neighbour_mean(&current);
            let u = mean.narrow(1, 0, 1);
            let v = mean.narrow(1, 1, 1);
            let t = (&ix * (&u - &u0) + &iy * (&v - &v0) + &it) * &denominator;
            current = Tensor::cat(&[&u - &ix * &t, &v - &iy * &t], 1);
        }
        current
    }
}

/// Side of the square neighbourhoods over which [`validated`] compares how well the moved and
/// the unmoved previous frame match the current one.
pub const VALIDATION_WINDOW: i64 = 7;

/// `back` (the flow from `current` to `previous`, as [`FlowEstimator::flow`] gives it) kept
/// where moving `previous` along it matches `current` at least as well as leaving `previous` in
/// place, over [`VALIDATION_WINDOW`]-pixel neighbourhoods, and zero elsewhere: where the
/// estimate failed (scenery rushing past a car window, a large motion missed at the coarsest
/// level), what it would move lands in the wrong place, and staying put is the better guess.
/// Moved along the result, `previous` never matches `current` much worse than unmoved.
pub fn validated(back: &Tensor, current: &Tensor, previous: &Tensor) -> Tensor {
    tch::no_grad(|| {
        let (current, previous) = (current.to_kind(Kind::Float), previous.to_kind(Kind::Float));
        let error = |other: &Tensor| {
            let k = VALIDATION_WINDOW;
            (&current - other)
                .abs()
                .sum_dim_intlist(1, true, Kind::Float)
                .avg_pool2d([k, k], [1, 1], [k / 2, k / 2], false, false, None::<i64>)
        };
        let moved = warp(&previous, back, Sampling::Bilinear);
        let keep = error(&moved).le_tensor(&error(&previous));
        back * keep.to_kind(back.kind())
    })
}

/// How [`warp`] reads an image between its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// The nearest pixel: keeps the texture sharp, at half a pixel of misplacement at most.
    Nearest,
    /// Bilinear: the smoothest, which softens fine texture.
    Bilinear,
    /// Bicubic: in between.
    Bicubic,
}

/// `image` (1 x C x H x W) moved along `flow` (1 x 2 x H x W): the result at `p` is `image` at
/// `p + flow(p)`, read as `sampling` says, with the border repeated outside.
pub fn warp(image: &Tensor, flow: &Tensor, sampling: Sampling) -> Tensor {
    let (_, _, h, w) = image.size4().expect("an image batch");
    let device = image.device();
    let xs = Tensor::arange(w, (Kind::Float, device)).view([1, 1, w]);
    let ys = Tensor::arange(h, (Kind::Float, device)).view([1, h, 1]);
    let x = (flow.select(1, 0) + xs) * (2.0 / (w - 1).max(1) as f64) - 1.0;
    let y = (flow.select(1, 1) + ys) * (2.0 / (h - 1).max(1) as f64) - 1.0;
    let grid = Tensor::stack(&[x, y], 3);
    let mode = match sampling {
        Sampling::Bilinear => 0,
        Sampling::Nearest => 1,
        Sampling::Bicubic => 2,
    };
    const BORDER: i64 = 1;
    image
        .to_kind(Kind::Float)
        .grid_sampler(&grid, mode, BORDER, true)
        .to_kind(image.kind())
}

/// Brightness (0..1, up to an offset) of network-space images: Rec. 601 luma of BGR channels
/// on the 0..255 scale.
fn intensity(x: &Tensor) -> Tensor {
    let weights = Tensor::from_slice(&[0.114f32, 0.587, 0.299])
        .to_device(x.device())
        .view([1, 3, 1, 1]);
    (x.to_kind(Kind::Float) * weights).sum_dim_intlist(1, true, Kind::Float) / 255.0
}

/// Both frames at every level, finest first, halving until the shorter side would fall below
/// `coarsest`.
fn pyramid(first: &Tensor, second: &Tensor, coarsest: i64) -> Vec<(Tensor, Tensor)> {
    let mut levels = vec![(first.shallow_clone(), second.shallow_clone())];
    loop {
        let (a, b) = levels.last().expect("one level");
        let (_, _, h, w) = a.size4().expect("an image batch");
        if h.min(w) / 2 < coarsest.max(2) {
            return levels;
        }
        let size = [(h + 1) / 2, (w + 1) / 2];
        let next = (a.adaptive_avg_pool2d(size), b.adaptive_avg_pool2d(size));
        levels.push(next);
    }
}

/// A coarser level's flow on the next finer level (`like`'s size), in that level's pixels.
fn upscale_flow(flow: &Tensor, like: &Tensor) -> Tensor {
    let (_, _, h, w) = flow.size4().expect("a flow");
    let (_, _, fine_h, fine_w) = like.size4().expect("an image batch");
    let up = flow.upsample_bilinear2d([fine_h, fine_w], true, None, None);
    let scale = Tensor::from_slice(&[fine_w as f32 / w as f32, fine_h as f32 / h as f32])
        .to_device(flow.device())
        .view([1, 2, 1, 1]);
    up * scale
}

/// Central differences, with the border repeated.
fn gradients(image: &Tensor) -> (Tensor, Tensor) {
    let (_, _, h, w) = image.size4().expect("an image batch");
    let padded = image.replication_pad2d([1, 1, 1, 1]);
    let dx =
        (padded.narrow(2, 1, h).narrow(3, 2, w) - padded.narrow(2, 1, h).narrow(3, 0, w)) * 0.5;
    let dy =
        (padded.narrow(2, 2, h).narrow(3, 1, w) - padded.narrow(2, 0, h).narrow(3, 1, w)) * 0.5;
    (dx, dy)
}

/// Horn and Schunck's weighted mean of the 8 neighbours (edges 1/6, corners 1/12), per channel.
fn neighbour_mean(flow: &Tensor) -> Tensor {
    let (_, c, _, _) = flow.size4().expect("a flow");
    let kernel = Tensor::from_slice(&[
        1.0f32 / 12.0,
        1.0 / 6.0,
        1.0 / 12.0,
        1.0 / 6.0,
        0.0,
        1.0 / 6.0,
        1.0 / 12.0,
        1.0 / 6.0,
        1.0 / 12.0,
    ])
    .to_device(flow.device())
    .view([1, 1, 3, 3])
    .repeat([c, 1, 1, 1]);
    // Strict float32, whatever the last evaluation left in libtorch's global TF32 switch (which
    // conv2d would follow on a GPU): the flow is the same on every device.
    flow.replication_pad2d([1, 1, 1, 1]).internal_convolution(
        &kernel,
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        false,
        [0, 0],
        c,
        false,
        false,
        true,
        false,
    )
}

/// The median of each 3 x 3 neighbourhood, per channel: removes the flow's outliers.
fn median3(flow: &Tensor) -> Tensor {
    let (n, c, h, w) = flow.size4().expect("a flow");
    flow.replication_pad2d([1, 1, 1, 1])
        .unfold(2, 3, 1)
        .unfold(3, 3, 1)
        .reshape([n, c, h, w, 9])
        .median_dim(4, false)
        .0
}

/// Mean of |a - b| over every value, in the images' units: worked out on the images' device,
/// only the figure is read back.
pub fn mean_abs_difference(a: &Tensor, b: &Tensor) -> f64 {
    let mean = tch::no_grad(|| {
        (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
            .abs()
            .mean(Kind::Double)
    });
    super::host::read_one(&mean).expect("a scalar")
}
