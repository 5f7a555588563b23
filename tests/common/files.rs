//! Odd and broken input files, made from the real samples.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, Luma, Rgb, Rgba};

use super::{frame, root};

/// A text file with an image's name.
pub fn text_named_jpg(dir: &Path) -> PathBuf {
    let p = dir.join("notes.jpg");
    std::fs::write(&p, "these are not the pixels you are looking for\n").unwrap();
    p
}

/// The sample frame cut in half.
pub fn truncated_jpeg(dir: &Path) -> PathBuf {
    let bytes = std::fs::read(frame()).unwrap();
    let p = dir.join("truncated.jpg");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    p
}

/// A 1x1 PNG.
pub fn one_pixel(dir: &Path) -> PathBuf {
    let p = dir.join("dot.png");
    ImageBuffer::from_pixel(1, 1, Rgb([200u8, 10, 10]))
        .save(&p)
        .unwrap();
    p
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// A PNG whose header claims 20000x20000 pixels (with almost no pixel data behind it).
pub fn huge_header(dir: &Path) -> PathBuf {
    let mut png = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend(20000u32.to_be_bytes());
    ihdr.extend(20000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &ihdr);
    // The start of the pixel data (an empty zlib stream): decoding would need 1.2 GB.
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    let p = dir.join("huge.png");
    std::fs::write(&p, png).unwrap();
    p
}

/// The Hokusai sample at 96x65 as a CMYK JPEG (made with Pillow) and its RGB original.
pub fn cmyk_jpeg() -> (PathBuf, PathBuf) {
    (
        root().join("tests/data/hokusai-96-cmyk.jpg"),
        root().join("tests/data/hokusai-96.png"),
    )
}

fn original() -> image::RgbImage {
    image::open(cmyk_jpeg().1).unwrap().to_rgb8()
}

/// The RGB original as a 16-bit PNG.
pub fn sixteen_bit(dir: &Path) -> PathBuf {
    let p = dir.join("deep.png");
    DynamicImage::ImageRgb8(original())
        .into_rgb16()
        .save(&p)
        .unwrap();
    p
}

/// The RGB original as 8-bit greyscale.
pub fn grayscale(dir: &Path) -> PathBuf {
    let p = dir.join("gray.png");
    let rgb = original();
    let gray: ImageBuffer<Luma<u8>, Vec<u8>> = DynamicImage::ImageRgb8(rgb).into_luma8();
    gray.save(&p).unwrap();
    p
}

/// The RGB original with an alpha channel: the left half fully transparent (and black
/// underneath), the rest opaque.
pub fn with_alpha(dir: &Path) -> PathBuf {
    let p = dir.join("alpha.png");
    let rgb = original();
    let rgba = ImageBuffer::from_fn(rgb.width(), rgb.height(), |x, y| {
        if x < rgb.width() / 2 {
            Rgba([0u8, 0, 0, 0])
        } else {
            let [r, g, b] = rgb.get_pixel(x, y).0;
            Rgba([r, g, b, 255])
        }
    });
    rgba.save(&p).unwrap();
    p
}

/// A GIF of `frames` frames of 64x48 pixels, each a shade darker than the last.
pub fn gif_of(dir: &Path, name: &str, frames: usize) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut encoder = image::codecs::gif::GifEncoder::new(file);
    let pictures = (0..frames).map(|k| {
        let shade = 200 - 40 * k as u8;
        let picture = image::RgbaImage::from_fn(64, 48, |x, y| {
            image::Rgba([shade, (x * 4) as u8, (y * 5) as u8, 255])
        });
        image::Frame::new(picture)
    });
    encoder.encode_frames(pictures).unwrap();
    path
}

/// A baseline TIFF of 3 samples a pixel, 32 bits each, uncompressed, written by hand (the
/// `tiff` crate always tags the sample format): `float` tags them as floats (SampleFormat 3);
/// without it they are integers by the standard, and untagged, as some writers leave them.
pub fn tiff_32_bit(
    dir: &Path,
    name: &str,
    w: u32,
    h: u32,
    samples: &[u32],
    float: bool,
) -> PathBuf {
    assert_eq!(samples.len(), (3 * w * h) as usize);
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    // Header, then the bits-per-sample and sample-format arrays, then the data, then the IFD.
    let bits_at = 8u32;
    let format_at = bits_at + 6;
    let data_at = format_at + 6;
    let ifd_at = data_at + data.len() as u32;
    let mut tags: Vec<(u16, u16, u32, u32)> = vec![
        (256, 4, 1, w),
        (257, 4, 1, h),
        (258, 3, 3, bits_at),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, data_at),
        (277, 3, 1, 3),
        (278, 4, 1, h),
        (279, 4, 1, data.len() as u32),
        (284, 3, 1, 1),
    ];
    if float {
        tags.push((339, 3, 3, format_at));
    }
    let mut file = b"II*\0".to_vec();
    file.extend(ifd_at.to_le_bytes());
    file.extend([32u16, 32, 32].iter().flat_map(|v| v.to_le_bytes()));
    file.extend([3u16, 3, 3].iter().flat_map(|v| v.to_le_bytes()));
    file.extend(&data);
    file.extend((tags.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in tags {
        file.extend(tag.to_le_bytes());
        file.extend(kind.to_le_bytes());
        file.extend(count.to_le_bytes());
        file.extend(value.to_le_bytes());
    }
    file.extend(0u32.to_le_bytes());
    let path = dir.join(name);
    std::fs::write(&path, file).unwrap();
    path
}

/// `jpeg` with an EXIF orientation (6: stored on its side, shown turned a quarter clockwise, as
/// phones write portrait pictures).
pub fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a".to_vec();
    tiff.extend(8u32.to_be_bytes());
    tiff.extend(1u16.to_be_bytes());
    tiff.extend(0x112u16.to_be_bytes());
    tiff.extend(3u16.to_be_bytes());
    tiff.extend(1u32.to_be_bytes());
    tiff.extend(orientation.to_be_bytes());
    tiff.extend(0u16.to_be_bytes());
    tiff.extend(0u32.to_be_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

/// An APNG of `frames` frames of 32x32 grey, each a shade lighter.
pub fn apng_of(dir: &Path, name: &str, frames: u32) -> PathBuf {
    let path = dir.join(name);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut encoder = png::Encoder::new(file, 32, 32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_animated(frames, 0).unwrap();
    let mut writer = encoder.write_header().unwrap();
    for f in 0..frames {
        writer
            .write_image_data(&vec![(40 * f) as u8; 32 * 32 * 3])
            .unwrap();
    }
    writer.finish().unwrap();
    path
}

/// A TIFF of several pages: the RGB original, then each of `more` after it.
pub fn multi_page_tiff(dir: &Path, name: &str, more: &[image::RgbImage]) -> PathBuf {
    use tiff::encoder::{colortype::RGB8, TiffEncoder};
    let path = dir.join(name);
    let mut encoder = TiffEncoder::new(std::fs::File::create(&path).unwrap()).unwrap();
    for page in std::iter::once(&original()).chain(more) {
        encoder
            .write_image::<RGB8>(page.width(), page.height(), page.as_raw())
            .unwrap();
    }
    path
}
