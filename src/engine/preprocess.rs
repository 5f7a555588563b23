//! Between pictures and the network: Caffe preprocessing (RGB to BGR, 0..255, minus the mean),
//! resizing, and the colour transfer that keeps the content's original colours.

use image::imageops::FilterType;
use image::Rgb32FImage;
use tch::{Device, Kind, Tensor};

use super::vgg::CAFFE_MEAN_BGR;
use crate::error::{Error, Result};

/// The size (width, height) of an image of `width` x `height` scaled so that its long edge is
/// `long_edge` pixels, keeping the aspect ratio.
pub fn scaled_size(width: u32, height: u32, long_edge: u32) -> (u32, u32) {
    let long = width.max(height);
    if long == long_edge {
        return (width, height);
    }
    let scale = f64::from(long_edge) / f64::from(long);
    let w = (f64::from(width) * scale).round().max(1.0) as u32;
    let h = (f64::from(height) * scale).round().max(1.0) as u32;
    (w, h)
}

/// `image` resized to `width` x `height` with a Lanczos filter; returned unchanged (not
/// resampled) when it already has that size.
pub fn resize(image: &Rgb32FImage, width: u32, height: u32) -> Rgb32FImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    let mut out = image::imageops::resize(image, width, height, FilterType::Lanczos3);
    // Lanczos rings slightly beyond the input's range.
    for v in out.iter_mut() {
        *v = v.clamp(0.0, 1.0);
    }
    out
}

/// The network's input for an RGB image with values in 0..1: a 1 x 3 x H x W float32 tensor on
/// `device`, BGR, on the 0..255 scale, minus [`CAFFE_MEAN_BGR`].
pub fn to_network(image: &Rgb32FImage, device: Device) -> Tensor {
    let (w, h) = image.dimensions();
    let hwc = Tensor::from_slice(image.as_raw()).view([i64::from(h), i64::from(w), 3]);
    let mean = Tensor::from_slice(&CAFFE_MEAN_BGR).view([3, 1, 1]);
    let bgr = hwc.permute([2, 0, 1]).flip([0]).to_kind(Kind::Double) * 255.0 - mean;
    bgr.to_kind(Kind::Float).unsqueeze(0).to_device(device)
}

/// The RGB image (0..1, clamped) for a network-space tensor (1 x 3 x H x W, as
/// [`to_network`] makes). Fails if any value is NaN or infinite, so such a picture never leaves
/// the library.
pub fn from_network(x: &Tensor) -> Result<Rgb32FImage> {
    let (n, c, h, w) = x.size4()?;
    if (n, c) != (1, 3) {
        return Err(tch::TchError::Shape(format!(
            "an image tensor is 1 x 3 x H x W, as to_network makes it, not {n} x {c} x {h} x {w}"
        ))
        .into());
    }
    let x = x.detach().to_device(Device::Cpu).to_kind(Kind::Double);
    if !bool::try_from(x.isfinite().all())? {
        return Err(Error::NonFinite(
            "the image holds NaN or infinite values".into(),
        ));
    }
    let mean = Tensor::from_slice(&CAFFE_MEAN_BGR).view([3, 1, 1]);
    let rgb = ((x.squeeze_dim(0) + mean) / 255.0)
        .clamp(0.0, 1.0)
        .flip([0])
        .permute([1, 2, 0])
        .to_kind(Kind::Float)
        .contiguous();
    let data = Vec::<f32>::try_from(rgb.view([-1]))?;
    Ok(Rgb32FImage::from_raw(w as u32, h as u32, data).expect("buffer matches its size"))
}

/// The stylised image's luminance with the content's chrominance (YIQ), which keeps the content's
/// original colours while transferring the painting's strokes.
///
/// # Panics
/// If the two images are not the same size.
pub fn preserve_colors(stylised: &Rgb32FImage, content: &Rgb32FImage) -> Rgb32FImage {
    assert_eq!(stylised.dimensions(), content.dimensions());
    let mut out = stylised.clone();
    for (o, c) in out.pixels_mut().zip(content.pixels()) {
        let y = luma(o.0);
        let [_, i, q] = rgb_to_yiq(c.0);
        o.0 = yiq_to_rgb([y, i, q]).map(|v| v.clamp(0.0, 1.0));
    }
    out
}

/// Luminance (Y of YIQ, Rec. 601 weights).
pub fn luma([r, g, b]: [f32; 3]) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

/// RGB to YIQ (FCC NTSC matrix).
pub fn rgb_to_yiq(rgb @ [r, g, b]: [f32; 3]) -> [f32; 3] {
    [
        luma(rgb),
        0.595_716 * r - 0.274_453 * g - 0.321_263 * b,
        0.211_456 * r - 0.522_591 * g + 0.311_135 * b,
    ]
}

/// YIQ to RGB, the inverse of [`rgb_to_yiq`].
pub fn yiq_to_rgb([y, i, q]: [f32; 3]) -> [f32; 3] {
    [
        y + 0.956_3 * i + 0.621_0 * q,
        y - 0.272_1 * i - 0.647_4 * q,
        y - 1.107_0 * i + 1.704_6 * q,
    ]
}
