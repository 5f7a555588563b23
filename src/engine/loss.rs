//! The paper's loss terms, on feature tensors of shape 1 x N x H x W (N feature maps of
//! M = H·W positions).

use tch::{Kind, Tensor};

/// The Gram matrix G = F Fᵀ (N x N, unnormalised, float32) of features `f` (1 x N x H x W).
pub fn gram(f: &Tensor) -> Tensor {
    let (_, n, h, w) = f.size4().expect("features are 1 x N x H x W");
    let f = f.view([n, h * w]).to_kind(Kind::Float);
    f.mm(&f.tr())
}

/// The content loss ½ Σ (F − P)² between the features `f` of the generated image and `p` of the
/// content image at one layer.
pub fn content(f: &Tensor, p: &Tensor) -> Tensor {
    (f - p).to_kind(Kind::Float).square().sum(Kind::Float) * 0.5
}

/// One layer's style loss E_l = Σ (G − A)² / (4 N² M²), for the generated image's features `f`
/// (N maps of M positions) and the target Gram matrix `a`.
pub fn style_layer(f: &Tensor, a: &Tensor) -> Tensor {
    let (_, n, h, w) = f.size4().expect("features are 1 x N x H x W");
    let m = (h * w) as f64;
    let n = n as f64;
    // Scaling before squaring keeps the terms small; the value is the paper's.
    ((gram(f) - a) * (1.0 / (2.0 * n * m)))
        .square()
        .sum(Kind::Float)
}

/// Total variation Σ (x[i, j+1] − x[i, j])² + (x[i+1, j] − x[i, j])² over every channel of an
/// image `x` (1 x 3 x H x W), a smoothness prior.
pub fn total_variation(x: &Tensor) -> Tensor {
    let (_, _, h, w) = x.size4().expect("image is 1 x 3 x H x W");
    let dx = x.narrow(3, 1, w - 1) - x.narrow(3, 0, w - 1);
    let dy = x.narrow(2, 1, h - 1) - x.narrow(2, 0, h - 1);
    dx.square().sum(Kind::Float) + dy.square().sum(Kind::Float)
}
