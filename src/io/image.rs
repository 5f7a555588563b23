//! Reading and writing still pictures with the `image` crate, with checks that turn damaged or
//! unusable files into errors that name the file and the problem.

use std::io::{BufWriter, Cursor, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::{
    DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits, Rgb32FImage,
};

use super::atomic;
use crate::engine::preprocess::scaled_size;
use crate::error::{Error, Result};

/// The largest width or height accepted, in pixels (16K).
pub const MAX_SIDE: u32 = 16384;

/// The smallest width or height accepted, in pixels: VGG19 halves the image four times before
/// conv5_1.
pub const MIN_SIDE: u32 = 16;

/// The most memory a decoder may take: a 16K x 16K 16-bit RGBA image.
const MAX_DECODE_BYTES: u64 = MAX_SIDE as u64 * MAX_SIDE as u64 * 8;

/// Formats read and written, named for messages.
const SUPPORTED: &str = "PNG, JPEG, TIFF, EXR, BMP, GIF or WebP";

/// The formats read (the `image` crate recognises more than it is built to decode here).
const READ: [ImageFormat; 7] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Tiff,
    ImageFormat::OpenExr,
    ImageFormat::Bmp,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

/// A format's name as users know it.
fn format_name(format: ImageFormat) -> String {
    match format {
        ImageFormat::Pnm => "PNM (PPM, PGM or PBM)".into(),
        ImageFormat::Hdr => "Radiance HDR".into(),
        other => other
            .extensions_str()
            .first()
            .map_or_else(|| format!("{other:?}"), |e| e.to_ascii_uppercase()),
    }
}

/// The size `original` is processed at with a long edge of `edge`, or an error (for `flag`
/// set to `value`) naming `path`, the size and the long edge that would do when a side falls
/// outside what the network takes.
pub(crate) fn check_processing_size(
    path: &Path,
    flag: &str,
    value: impl ToString,
    original: (u32, u32),
    edge: u32,
) -> Result<(u32, u32)> {
    let (w, h) = scaled_size(original.0, original.1, edge);
    let fits = |v: u32| (MIN_SIDE..=MAX_SIDE).contains(&v);
    if fits(w) && fits(h) {
        return Ok((w, h));
    }
    let short_side = |long: u32| {
        let (a, b) = scaled_size(original.0, original.1, long);
        a.min(b)
    };
    // The smallest long edge whose short side reaches the minimum, near the exact ratio's.
    let (long, short) = (
        original.0.max(original.1),
        original.0.min(original.1).max(1),
    );
    let estimate = (u64::from(MIN_SIDE) * u64::from(long)).div_ceil(u64::from(short));
    let need = (estimate.saturating_sub(2)..=estimate + 2)
        .filter_map(|l| u32::try_from(l).ok())
        .find(|&l| short_side(l) >= MIN_SIDE);
    let advice = match need {
        _ if w.min(h) >= MIN_SIDE => String::new(),
        Some(l) if l <= MAX_SIDE => {
            format!(": a long edge of at least {l} pixels would do")
        }
        _ => ": no size fits a shape this narrow".to_string(),
    };
    let how = if flag == "--style-scale" {
        " (a painting's long edge is --size, or its own when smaller, times --style-scale)"
    } else {
        ""
    };
    Err(Error::setting(
        flag,
        value.to_string(),
        format!(
            "'{}' would be processed at {w}x{h}; each side must be {} to {} pixels{advice}{how}",
            path.display(),
            MIN_SIDE,
            MAX_SIDE
        ),
    ))
}

/// Reads an image of any supported format and depth (8 or 16 bit, grey, RGB, CMYK JPEG, with or
/// without alpha; OpenEXR) as RGB with values in 0..1. EXIF orientation is applied, so that phone
/// pictures come out upright; transparency is flattened onto white. EXR's linear light is
/// encoded with the sRGB curve (the network was trained on sRGB pictures) and clipped to 0..1.
pub fn load(path: &Path) -> Result<Rgb32FImage> {
    // A pipe (`<(...)`, `/dev/stdin` fed by `cat`) can be read only once, and a picture is
    // looked at more than once (its kind, its size, its pixels): the second read finds nothing.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(Error::image(
            path,
            "is a pipe or a device, not a file: save the picture to a file and give its path",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        let problem = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            _ => format!("cannot read it: {e}"),
        };
        Error::image(path, problem)
    })?;
    decode(path, &bytes)
}

/// Decodes `bytes` read from `path` (the path is only for messages); see [`load`].
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Rgb32FImage> {
    if bytes.is_empty() {
        return Err(Error::image(path, "the file is empty"));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        Error::image(
            path,
            format!("not an image in a supported format ({SUPPORTED})"),
        )
    })?;
    if !READ.contains(&format) {
        return Err(Error::image(
            path,
            format!(
                "a picture in {}, a format this tool does not read: convert it to {SUPPORTED}",
                format_name(format)
            ),
        ));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::image(
            path,
            format!(
                "truncated JPEG: the image data stops without an end-of-image marker after {} bytes",
                bytes.len()
            ),
        ));
    }
    if format == ImageFormat::Tiff && has_32_bit_integers(bytes) {
        return Err(Error::image(
            path,
            "a TIFF of 32-bit integer samples, which this tool does not read: save it with 8- or \
             16-bit integers or 32-bit floats",
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // The size is checked from the header below, with a message that gives it; this only
    // bounds what a decoder may allocate.
    let mut limits = Limits::no_limits();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        // The image crate reads EXR's colour channels only.
        Err(e) if format == ImageFormat::OpenExr => {
            return grey_exr(path, bytes).ok_or_else(|| Error::image(path, describe(format, &e)))?
        }
        Err(e) => return Err(Error::image(path, describe(format, &e))),
    };
    let (w, h) = decoder.dimensions();
    check_size(path, w, h)?;
    let orientation = decoder.orientation().ok();
    let mut picture = DynamicImage::from_decoder(decoder)
        .map_err(|e| Error::image(path, describe(format, &e)))?;
    if let Some(o) = orientation {
        picture.apply_orientation(o);
    }
    // EXR's colours are premultiplied by their alpha (and so composited by addition).
    let mut rgb = flatten(picture, format == ImageFormat::OpenExr);
    if format == ImageFormat::OpenExr {
        for v in rgb.iter_mut() {
            *v = linear_to_srgb(*v);
        }
    } else {
        // Float TIFFs may hold any value: kept to 0..1 as EXR's are, NaN as 0.
        for v in rgb.iter_mut() {
            *v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
        }
    }
    Ok(rgb)
}

/// Whether a TIFF holds 32-bit samples without saying they are floats: integers by the
/// standard, which the image crate decodes as floats (garbage, or NaN).
fn has_32_bit_integers(bytes: &[u8]) -> bool {
    use tiff::decoder::Decoder;
    use tiff::tags::{SampleFormat, Tag};
    let Ok(mut decoder) = Decoder::new(Cursor::new(bytes)) else {
        return false;
    };
    let bits = match decoder.colortype() {
        Ok(tiff::ColorType::RGB(b) | tiff::ColorType::RGBA(b)) => b,
        Ok(tiff::ColorType::Gray(b) | tiff::ColorType::GrayA(b)) => b,
        _ => return false,
    };
    let float = matches!(
        decoder.find_tag_unsigned_vec::<u16>(Tag::SampleFormat),
        Ok(Some(formats)) if formats.iter().all(|f| *f == SampleFormat::IEEEFP.to_u16())
    );
    bits == 32 && !float
}

/// The format of the picture at `path` when it is an animation (a GIF, PNG or WebP of several
/// frames), which a still run would take only the first frame of. Files that cannot be read
/// say no: loading them gives the error.
pub fn animation_format(path: &Path) -> Option<ImageFormat> {
    animation_in(&std::fs::read(path).ok()?)
}

/// [`animation_format`] of a file's `bytes`.
fn animation_in(bytes: &[u8]) -> Option<ImageFormat> {
    use image::codecs::{gif::GifDecoder, png::PngDecoder, webp::WebPDecoder};
    use image::AnimationDecoder;
    let reader = || Cursor::new(bytes);
    let format = image::guess_format(bytes).ok()?;
    let animated = match format {
        ImageFormat::Gif => GifDecoder::new(reader())
            .is_ok_and(|d| d.into_frames().take(2).filter(|f| f.is_ok()).count() > 1),
        // An APNG of one frame is a still.
        ImageFormat::Png => PngDecoder::new(reader()).is_ok_and(|d| {
            d.is_apng().unwrap_or(false)
                && d.apng()
                    .is_ok_and(|a| a.into_frames().take(2).filter(|f| f.is_ok()).count() > 1)
        }),
        ImageFormat::WebP => WebPDecoder::new(reader()).is_ok_and(|d| d.has_animation()),
        _ => false,
    };
    animated.then_some(format)
}

/// What the file at `path` holds besides its first picture, which is all a painting or a
/// start image is taken from: `"an animation"` or `"a TIFF of several pages"`; `None` for one
/// picture, or a file that cannot be read (loading it gives the error).
pub fn several_pictures(path: &Path) -> Option<&'static str> {
    let bytes = std::fs::read(path).ok()?;
    if animation_in(&bytes).is_some() {
        return Some("an animation");
    }
    let tiff = image::guess_format(&bytes).ok()? == ImageFormat::Tiff;
    let pages = tiff
        && tiff::decoder::Decoder::new(Cursor::new(bytes.as_slice()))
            .is_ok_and(|d| d.more_images());
    pages.then_some("a TIFF of several pages")
}

/// A picture's width and height as stored, from its header (before any orientation is
/// applied); an error names the file and the problem.
pub fn dimensions(path: &Path) -> Result<(u32, u32)> {
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::image(path, format!("cannot read it: {e}")))?;
    let is_exr = reader.format() == Some(ImageFormat::OpenExr);
    reader.limits(Limits::no_limits());
    // As it will be read: upright (a phone's portrait JPEG is stored on its side).
    let upright = reader.into_decoder().map(|mut decoder| {
        let (w, h) = decoder.dimensions();
        use image::metadata::Orientation::*;
        match decoder.orientation() {
            Ok(Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH) => (h, w),
            _ => (w, h),
        }
    });
    upright.or_else(|e| {
        // The image crate reads only EXRs with colour channels; any layer has a size.
        is_exr
            .then(|| std::fs::File::open(path).ok())
            .flatten()
            .and_then(|f| exr_size(std::io::BufReader::new(f)))
            .and_then(|(w, h)| Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?)))
            .ok_or_else(|| Error::image(path, format!("not a readable image: {e}")))
    })
}

/// The size of an EXR's first layer, from its header alone.
fn exr_size(header: impl std::io::Read) -> Option<(usize, usize)> {
    let meta = exr::meta::MetaData::read_from_buffered(header, false).ok()?;
    let size = meta.headers.first()?.layer_size;
    Some((size.0, size.1))
}

/// An EXR of one grey channel (`Y`, or a single channel of any other name) and perhaps alpha,
/// as RGB like [`decode`] gives; `None` when it is not such a file (luminance with chroma, two
/// colour channels, ...), `Some(Err)` when it is but cannot be used.
fn grey_exr(path: &Path, bytes: &[u8]) -> Option<Result<Rgb32FImage>> {
    use exr::prelude::{read, ReadChannels, ReadLayers};
    // The size first, from the header: the whole file is decoded only when it is acceptable.
    let size = exr_size(Cursor::new(bytes))?;
    let (Ok(w), Ok(h)) = (u32::try_from(size.0), u32::try_from(size.1)) else {
        return Some(Err(Error::image(
            path,
            format!("{}x{} pixels is too large", size.0, size.1),
        )));
    };
    if let Err(e) = check_size(path, w, h) {
        return Some(Err(e));
    }
    let image = read()
        .no_deep_data()
        .largest_resolution_level()
        .all_channels()
        .first_valid_layer()
        .all_attributes()
        .from_buffered(Cursor::new(bytes))
        .ok()?;
    let layer = image.layer_data;
    let channels = &layer.channel_data.list;
    let name = |c: &exr::prelude::AnyChannel<exr::prelude::FlatSamples>| c.name.to_string();
    let alpha = channels.iter().find(|c| name(c) == "A");
    let others: Vec<_> = channels.iter().filter(|c| name(c) != "A").collect();
    // One channel besides alpha: Y, or a lone channel of any name. Luminance with chroma
    // (Y, RY, BY) is colour, which this does not read.
    let [grey] = others.as_slice() else {
        return None;
    };
    let pixels = w as usize * h as usize;
    let whole =
        |c: &exr::prelude::AnyChannel<exr::prelude::FlatSamples>| c.sample_data.len() == pixels;
    if (layer.size.0, layer.size.1) != size || !whole(grey) || alpha.is_some_and(|a| !whole(a)) {
        return Some(Err(Error::image(
            path,
            "its channels do not cover every pixel (subsampled?): not a picture this tool reads",
        )));
    }
    let coverage: Vec<f32> = match alpha {
        Some(a) => a.sample_data.values_as_f32().collect(),
        None => vec![1.0; pixels],
    };
    let mut rgb = Rgb32FImage::new(w, h);
    for ((pixel, value), a) in rgb
        .pixels_mut()
        .zip(grey.sample_data.values_as_f32())
        .zip(coverage)
    {
        // Premultiplied, as EXR keeps colours: composited onto white by addition.
        let v = linear_to_srgb(value + (1.0 - a));
        pixel.0 = [v, v, v];
    }
    Some(Ok(rgb))
}

/// The sRGB transfer function (linear light to encoded, both 0..1, clipped).
pub fn linear_to_srgb(v: f32) -> f32 {
    // Above 1 (+inf too, which half-float HDR files hold) is white; NaN black.
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// The inverse of [`linear_to_srgb`].
pub fn srgb_to_linear(v: f32) -> f32 {
    if v <= 0.040_45 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::image(
            path,
            format!("{w}x{h} pixels is too large: at most {MAX_SIDE} pixels per side"),
        ));
    }
    if w < MIN_SIDE || h < MIN_SIDE {
        return Err(Error::image(
            path,
            format!("{w}x{h} pixels is too small: at least {MIN_SIDE} pixels per side"),
        ));
    }
    Ok(())
}

fn describe(format: ImageFormat, e: &image::ImageError) -> String {
    match e {
        image::ImageError::Limits(_) => format!("too large to decode ({e})"),
        _ => format!("damaged or unsupported {format:?} file: {e}"),
    }
}

/// Whether a JPEG stream runs whole to its end-of-image marker: a cut file does not, and some
/// decoders would otherwise fill the missing part silently. The stream is walked segment by
/// segment, so what follows the image (a phone's "motion photo" video, a trailer) is no matter.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    const RESTART: std::ops::RangeInclusive<u8> = 0xD0..=0xD7;
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut i = 2;
    loop {
        // To the next marker (past any stray bytes and fill bytes).
        while i < bytes.len() && bytes[i] != 0xFF {
            i += 1;
        }
        while i < bytes.len() && bytes[i] == 0xFF {
            i += 1;
        }
        let Some(&marker) = bytes.get(i) else {
            return false;
        };
        i += 1;
        match marker {
            0xD9 => return true,
            0x01 => {}
            m if RESTART.contains(&m) => {}
            _ => {
                let Some(length) = bytes.get(i..i + 2) else {
                    return false;
                };
                i += usize::from(u16::from_be_bytes([length[0], length[1]]));
                if i > bytes.len() {
                    return false;
                }
                if marker == 0xDA {
                    // Entropy-coded data: 0xFF in it is followed by 0x00 or a restart marker.
                    loop {
                        match bytes.get(i..i + 2) {
                            None => return false,
                            Some([0xFF, next]) if *next != 0x00 && !RESTART.contains(next) => break,
                            Some(_) => i += 1,
                        }
                    }
                }
            }
        }
    }
}

/// RGB 0..1; any alpha is composited onto white (`premultiplied`: colours already multiplied
/// by their alpha, as EXR keeps them).
fn flatten(picture: DynamicImage, premultiplied: bool) -> Rgb32FImage {
    if !picture.color().has_alpha() {
        return picture.to_rgb32f();
    }
    let rgba = picture.to_rgba32f();
    let mut out = Rgb32FImage::new(rgba.width(), rgba.height());
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = p.0;
        let coverage = if premultiplied { 1.0 } else { a };
        o.0 = [r, g, b].map(|c| c * coverage + (1.0 - a));
    }
    out
}

/// The output format for `path`, from its extension; an error names the extensions accepted.
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "png" => Ok(ImageFormat::Png),
        "jpg" | "jpeg" => Ok(ImageFormat::Jpeg),
        "tif" | "tiff" => Ok(ImageFormat::Tiff),
        "exr" => Ok(ImageFormat::OpenExr),
        "bmp" => Ok(ImageFormat::Bmp),
        "webp" => Ok(ImageFormat::WebP),
        _ => Err(Error::output(
            path,
            "unknown image extension: use .png, .jpg, .tif, .exr, .bmp or .webp",
        )),
    }
}

/// 8-bit RGB from 0..1 values, rounded.
pub fn to_rgb8(image: &Rgb32FImage) -> image::RgbImage {
    let data = image
        .as_raw()
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    image::RgbImage::from_raw(image.width(), image.height(), data).expect("same size")
}

/// 16-bit RGB from 0..1 values, rounded.
fn to_rgb16(image: &Rgb32FImage) -> image::ImageBuffer<image::Rgb<u16>, Vec<u16>> {
    let data = image
        .as_raw()
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
        .collect();
    image::ImageBuffer::from_raw(image.width(), image.height(), data).expect("same size")
}

/// `image` exactly as a 16-bit PNG of it reads back with [`load`]: the values a frame kept for
/// resuming has, so that what is made from a frame is the same whether the frame was just
/// painted or read back from where it was kept.
pub fn as_sixteen_bit(image: &Rgb32FImage) -> Rgb32FImage {
    flatten(DynamicImage::ImageRgb16(to_rgb16(image)), false)
}

/// Bits per channel of a written image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BitDepth {
    /// 8 bits (default).
    #[default]
    Eight,
    /// 16 bits (PNG and TIFF; other formats write 8).
    Sixteen,
}

/// Writes `image` (RGB 0..1) to `path` in the format of its extension at 8 bits per channel (JPEG
/// at quality 95; EXR as 32-bit float linear light), under a temporary name renamed into place
/// when complete.
pub fn save(image: &Rgb32FImage, path: &Path) -> Result<()> {
    save_with_depth(image, path, BitDepth::Eight)
}

/// [`save`] with a choice of depth for PNG and TIFF.
pub fn save_with_depth(image: &Rgb32FImage, path: &Path, depth: BitDepth) -> Result<()> {
    stage(image, path, depth)?.commit()
}

/// [`save_with_depth`], the file left under its temporary name until committed.
pub fn stage(image: &Rgb32FImage, path: &Path, depth: BitDepth) -> Result<atomic::Staged> {
    let format = output_format(path)?;
    let (w, h) = image.dimensions();
    let encoded: DynamicImage = match (format, depth) {
        (ImageFormat::OpenExr, _) => {
            let mut linear = image.clone();
            for v in linear.iter_mut() {
                *v = srgb_to_linear(v.clamp(0.0, 1.0));
            }
            DynamicImage::ImageRgb32F(linear)
        }
        (ImageFormat::Png | ImageFormat::Tiff, BitDepth::Sixteen) => {
            DynamicImage::ImageRgb16(to_rgb16(image))
        }
        _ => DynamicImage::ImageRgb8(to_rgb8(image)),
    };
    atomic::Staged::write(path, |file| {
        let mut out = BufWriter::new(file);
        let result = match format {
            ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, 95).write_image(
                encoded.as_bytes(),
                w,
                h,
                image::ExtendedColorType::Rgb8,
            ),
            _ => {
                // Encoders that seek (TIFF, EXR) write to memory first.
                let mut buffer = Cursor::new(Vec::new());
                let r = encoded.write_to(&mut buffer, format);
                if r.is_ok() {
                    out.write_all(buffer.get_ref())?;
                }
                r
            }
        };
        result.map_err(|e| std::io::Error::other(e.to_string()))?;
        out.flush()
    })
}
