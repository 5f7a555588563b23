//! Reading pictures: every usual kind works, damaged or absurd files fail with the file's name
//! and the problem.

mod common;

use common::files::*;
use common::*;
use stylize_video::io::image::load;

fn mean_abs_diff(a: &image::Rgb32FImage, b: &image::Rgb32FImage) -> f32 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (x - y).abs())
        .sum::<f32>()
        / a.as_raw().len() as f32
}

#[test]
fn cmyk_16_bit_grey_and_alpha_images_read_as_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let (cmyk, original_path) = cmyk_jpeg();
    let original = load(&original_path).unwrap();
    assert_eq!(original.dimensions(), (96, 65));

    // CMYK JPEG: the same picture, up to JPEG's loss.
    let from_cmyk = load(&cmyk).unwrap();
    let d = mean_abs_diff(&from_cmyk, &original);
    assert!(d < 0.03, "CMYK decodes {d} away from the original");

    // 16 bit: exactly the 8-bit values.
    let deep = load(&sixteen_bit(dir.path())).unwrap();
    assert!(mean_abs_diff(&deep, &original) < 1e-6);

    // Grey: three equal channels, each the stored grey level.
    let gray_path = grayscale(dir.path());
    let gray = load(&gray_path).unwrap();
    let levels = image::open(&gray_path).unwrap().into_luma8();
    for (p, l) in gray.pixels().zip(levels.pixels()) {
        assert!(p
            .0
            .iter()
            .all(|v| (v - f32::from(l.0[0]) / 255.0).abs() < 1e-6));
    }
    assert!(
        mean_abs_diff(&gray, &original) > 0.01,
        "grey differs from colour"
    );

    // Alpha: transparent pixels become white, opaque ones keep their colour.
    let flat = load(&with_alpha(dir.path())).unwrap();
    assert_eq!(flat.get_pixel(0, 0).0, [1.0, 1.0, 1.0]);
    assert_eq!(flat.get_pixel(95, 64).0, original.get_pixel(95, 64).0);
}

#[test]
fn damaged_or_absurd_files_are_refused_with_their_name_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    // A picture of a format the image crate knows but this tool does not read is said to be so,
    // not damaged.
    let ppm = dir.path().join("scan.ppm");
    let mut bytes = b"P6\n32 32\n255\n".to_vec();
    bytes.extend(std::iter::repeat_n(128u8, 32 * 32 * 3));
    std::fs::write(&ppm, bytes).unwrap();
    let cases = [
        (
            ppm,
            "a picture in PNM (PPM, PGM or PBM), a format this tool does not read",
        ),
        (dir.path().join("missing.jpg"), "no such file"),
        (text_named_jpg(dir.path()), "not an image"),
        (truncated_jpeg(dir.path()), "truncated JPEG"),
        (one_pixel(dir.path()), "1x1 pixels is too small"),
        (huge_header(dir.path()), "too large"),
    ];
    for (path, problem) in cases {
        let err = load(&path)
            .err()
            .unwrap_or_else(|| panic!("{} loaded", path.display()));
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(problem), "{message}");
    }
    // A whole JPEG is fine.
    assert_eq!(load(&frame()).unwrap().dimensions(), (1280, 720));
}

#[test]
fn a_whole_jpeg_with_data_after_it_is_read_and_a_cut_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = std::fs::read(frame()).unwrap();
    let whole = load(&frame()).unwrap();
    // A phone's "motion photo" (a video after the picture), and a trailer whose bytes look like
    // a start of scan with no end after it.
    let video = std::fs::read(root().join("samples/video/carphone_pristine.mp4")).unwrap();
    let trailers: [&[u8]; 2] = [&video, b"\x00\x00\xFF\xDA\x00\x08 trailer"];
    for (i, trailer) in trailers.into_iter().enumerate() {
        let path = dir.path().join(format!("motion-{i}.jpg"));
        std::fs::write(&path, [&jpeg[..], trailer].concat()).unwrap();
        let read = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(read == whole, "the picture itself, trailer {i}");
    }
    // Cut anywhere in the picture (inside a segment or inside the scan): refused.
    for cut in [300, jpeg.len() / 3, jpeg.len() - 2] {
        let path = dir.path().join(format!("cut-{cut}.jpg"));
        std::fs::write(&path, &jpeg[..cut]).unwrap();
        let message = load(&path).expect_err("refused").to_string();
        assert!(message.contains("truncated JPEG"), "{cut}: {message}");
    }
}

#[test]
fn exr_over_range_values_are_white_and_its_alpha_is_premultiplied() {
    use stylize_video::io::image::linear_to_srgb;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hdr.exr");
    let mut hdr = image::Rgba32FImage::new(16, 16);
    for (x, _, p) in hdr.enumerate_pixels_mut() {
        p.0 = match x {
            // A highlight beyond what half floats hold, and one merely above 1.
            0..=3 => [f32::INFINITY, f32::INFINITY, f32::INFINITY, 1.0],
            4..=7 => [4.0, 2.0, 1.5, 1.0],
            // Half-covered red, premultiplied: 0.25 of red light over half the pixel.
            _ => [0.25, 0.0, 0.0, 0.5],
        };
    }
    image::DynamicImage::ImageRgba32F(hdr).save(&path).unwrap();
    let read = load(&path).unwrap();
    for x in [0, 5] {
        let white = read.get_pixel(x, 0).0;
        assert!(white.iter().all(|v| *v > 0.9999), "{x}: {white:?}");
    }
    // Over white: 0.25 + (1 - 0.5) of red, 0.5 of green and blue, in linear light.
    let expected = [0.75, 0.5, 0.5].map(linear_to_srgb);
    let got = read.get_pixel(12, 0).0;
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-3, "{got:?} vs {expected:?}");
    }
}

#[test]
fn an_animation_is_told_from_a_still_picture() {
    use stylize_video::io::image::animation_format;
    let dir = tempfile::tempdir().unwrap();
    let animated = gif_of(dir.path(), "animated.gif", 3);
    assert_eq!(animation_format(&animated), Some(image::ImageFormat::Gif));
    let still = gif_of(dir.path(), "still.gif", 1);
    assert_eq!(animation_format(&still), None);
    assert_eq!(load(&still).unwrap().dimensions(), (64, 48));
    assert_eq!(animation_format(&frame()), None);
    // An APNG of one frame is a still; of two, an animation.
    let one = apng_of(dir.path(), "one.png", 1);
    assert_eq!(animation_format(&one), None);
    assert_eq!(load(&one).unwrap().dimensions(), (32, 32));
    let two = apng_of(dir.path(), "two.png", 2);
    assert_eq!(animation_format(&two), Some(image::ImageFormat::Png));
}

#[test]
fn a_grey_exr_reads_as_grey_with_its_alpha_premultiplied() {
    use exr::prelude::*;
    use stylize_video::io::image::linear_to_srgb;
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (24usize, 16usize);
    // A ramp of linear light across, and in the grey-and-alpha file a left half half covered.
    let grey: Vec<f32> = (0..w * h).map(|i| (i % w) as f32 / w as f32).collect();
    let cover: Vec<f32> = (0..w * h)
        .map(|i| if i % w < w / 2 { 0.5 } else { 1.0 })
        .collect();
    let write = |name: &str, channels: SmallVec<[AnyChannel<FlatSamples>; 4]>| {
        let path = dir.path().join(name);
        let layer = Layer::new(
            (w, h),
            LayerAttributes::named("main"),
            Encoding::FAST_LOSSLESS,
            AnyChannels::sort(channels),
        );
        Image::from_layer(layer).write().to_file(&path).unwrap();
        path
    };
    let y = write(
        "y.exr",
        SmallVec::from_vec(vec![AnyChannel::new("Y", FlatSamples::F32(grey.clone()))]),
    );
    let read = load(&y).unwrap();
    assert_eq!(read.dimensions(), (w as u32, h as u32));
    // As a sequence's frames are checked: from the header.
    let size = stylize_video::io::image::dimensions(&y).unwrap();
    assert_eq!(size, (w as u32, h as u32));
    for (i, p) in read.pixels().enumerate() {
        let expected = linear_to_srgb(grey[i]);
        assert!(
            p.0.iter().all(|v| (v - expected).abs() < 1e-6),
            "{i}: {p:?}"
        );
    }
    let ya = write(
        "ya.exr",
        SmallVec::from_vec(vec![
            AnyChannel::new("Y", FlatSamples::F32(grey.clone())),
            AnyChannel::new("A", FlatSamples::F32(cover.clone())),
        ]),
    );
    let read = load(&ya).unwrap();
    for (i, p) in read.pixels().enumerate() {
        let expected = linear_to_srgb(grey[i] + 1.0 - cover[i]);
        assert!(
            p.0.iter().all(|v| (v - expected).abs() < 1e-6),
            "{i}: {p:?}"
        );
    }
    // Luminance with chroma is colour, not grey: refused rather than read as grey.
    let yc = write(
        "ryby.exr",
        SmallVec::from_vec(vec![
            AnyChannel::new("Y", FlatSamples::F32(grey.clone())),
            AnyChannel::new("RY", FlatSamples::F32(grey.clone())),
            AnyChannel::new("BY", FlatSamples::F32(grey.clone())),
        ]),
    );
    assert!(load(&yc).is_err());
    // Two colour channels without a third are no picture this tool can read.
    let rg = write(
        "rg.exr",
        SmallVec::from_vec(vec![
            AnyChannel::new("R", FlatSamples::F32(grey.clone())),
            AnyChannel::new("G", FlatSamples::F32(grey)),
        ]),
    );
    let message = load(&rg).unwrap_err().to_string();
    assert!(
        message.contains("rg.exr") && message.contains("OpenExr"),
        "{message}"
    );
}

#[test]
fn float_tiffs_are_read_within_range_and_integer_32_bit_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (16u32, 16u32);
    // A grey ramp, with one NaN, one infinity and one value over 1 (a float TIFF may hold any).
    let mut values: Vec<f32> = (0..3 * w * h).map(|i| (i / 3) as f32 / 255.0).collect();
    values[0] = f32::NAN;
    values[4] = f32::INFINITY;
    values[8] = 7.5;
    values[12] = -2.0;
    let bits: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
    let float = tiff_32_bit(dir.path(), "float.tif", w, h, &bits, true);
    let picture = load(&float).unwrap();
    let read = picture.as_raw();
    assert!(read.iter().all(|v| (0.0..=1.0).contains(v)), "within 0..1");
    assert_eq!((read[0], read[4], read[8], read[12]), (0.0, 1.0, 1.0, 0.0));
    assert_eq!(read[3 * 100], 100.0 / 255.0, "the rest as written");

    // The same numbers as integers, untagged: refused by name, not read as floats (black).
    let integers: Vec<u32> = (0..3 * w * h).map(|i| (i / 3) * 256).collect();
    let path = tiff_32_bit(dir.path(), "integers.tif", w, h, &integers, false);
    let message = load(&path).unwrap_err().to_string();
    assert!(
        message.contains("integers.tif") && message.contains("32-bit integer samples"),
        "{message}"
    );
}
