//! Frame sequences: a folder of numbered pictures, named by a directory or a printf-style
//! pattern such as `shot/%05d.png`, in and out.

use std::path::{Path, PathBuf};

use image::Rgb32FImage;

use super::image::{self as picture, BitDepth};
use crate::engine::preprocess::{resize, scaled_size};
use crate::error::{Error, Result};
use crate::frames::{Frame, FrameSink, FrameSource, Ratio, SourceInfo};

/// Extensions read as frames.
const FRAME_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "tif", "tiff", "exr", "bmp", "webp"];

/// A printf-style frame pattern: `prefix%0Nd suffix` in one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    dir: PathBuf,
    prefix: String,
    width: usize,
    suffix: String,
}

impl Pattern {
    /// Parses `shot/%05d.png` or `shot/frame.%d.exr`; `None` if `path` holds no `%d`/`%0Nd`.
    pub fn parse(path: &Path) -> Option<Pattern> {
        let name = path.file_name()?.to_str()?;
        let start = name.find('%')?;
        let rest = &name[start + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = rest[digits.len()..].strip_prefix('d')?;
        if after.contains('%') {
            return None;
        }
        let width = digits.trim_start_matches('0').parse().unwrap_or(0);
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(Pattern {
            dir,
            prefix: name[..start].to_string(),
            width,
            suffix: after.to_string(),
        })
    }

    /// The file of frame `number`.
    pub fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!(
            "{}{:0width$}{}",
            self.prefix,
            number,
            self.suffix,
            width = self.width
        ))
    }

    /// The directory the frames live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The frame number of `name`, if it matches the pattern.
    fn number_of(&self, name: &str) -> Option<u64> {
        let middle = name
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        if middle.is_empty()
            || middle.len() < self.width
            || !middle.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        middle.parse().ok()
    }

    /// The extension of the frames' files, lower case.
    pub fn extension(&self) -> String {
        self.suffix
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// Whether `path` names a frame sequence (a directory, or a pattern with `%d`).
pub fn is_sequence(path: &Path) -> bool {
    path.is_dir() || Pattern::parse(path).is_some()
}

/// The frames of an input sequence: (frame number, file), in order.
pub fn list(path: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let not_found = |problem: String| Error::image(path, problem);
    if let Some(pattern) = Pattern::parse(path) {
        let entries = std::fs::read_dir(&pattern.dir)
            .map_err(|e| not_found(format!("cannot list '{}': {e}", pattern.dir.display())))?;
        let mut frames: Vec<(u64, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                Some((pattern.number_of(&name)?, e.path()))
            })
            .collect();
        frames.sort();
        if frames.is_empty() {
            return Err(not_found("no file matches this pattern".into()));
        }
        if let Some(w) = frames.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(not_found(format!(
                "'{}' and '{}' are both frame {}: keep one of them",
                w[0].1.display(),
                w[1].1.display(),
                w[0].0
            )));
        }
        return Ok(frames);
    }
    let entries = std::fs::read_dir(path).map_err(|e| not_found(format!("cannot list it: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| FRAME_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort_by_cached_key(|p| natural_key(p));
    if files.is_empty() {
        return Err(not_found(format!(
            "the folder holds no frames ({})",
            FRAME_EXTENSIONS.join(", ")
        )));
    }
    Ok(files
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as u64, p))
        .collect())
}

/// Sort key that orders `f2.png` before `f10.png`.
fn natural_key(path: &Path) -> Vec<(String, u64)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut key = Vec::new();
    let mut chars = name.chars().peekable();
    while chars.peek().is_some() {
        let text: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_ascii_digit())).collect();
        let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
        key.push((text, digits.parse().unwrap_or(0)));
    }
    key
}

/// A frame sequence read from files, scaled to a processing size.
pub struct SequenceSource {
    files: Vec<(u64, PathBuf)>,
    next: usize,
    size: (u32, u32),
    info: SourceInfo,
    warnings: Vec<String>,
}

impl SequenceSource {
    /// Opens the sequence at `path` (directory or pattern); frames come at `fps` frames per
    /// second, scaled so that the long edge is `long_edge` pixels.
    pub fn open(path: &Path, fps: Ratio, long_edge: u32) -> Result<Self> {
        let files = list(path)?;
        let first = picture::load(&files[0].1)?;
        let (width, height) = first.dimensions();
        let mut warnings = Vec::new();
        let first_gap = files
            .windows(2)
            .find(|w| w[1].0 > w[0].0 + 1)
            .map(|w| w[0].0 + 1);
        if let (Some(first), Some(_)) = (first_gap, Pattern::parse(path)) {
            let missing: u64 = files
                .windows(2)
                .map(|w| w[1].0.saturating_sub(w[0].0 + 1))
                .sum();
            warnings.push(format!(
                "the sequence has gaps ({} missing from {}, the first {first}): each output frame keeps its input frame's number",
                missing,
                files.len() + missing as usize,
            ));
        }
        let info = SourceInfo {
            width,
            height,
            frames: Some(files.len()),
            time_base: Ratio::new(fps.den, fps.num),
            frame_rate: fps,
            sample_aspect_ratio: Ratio::new(1, 1),
            rotation: 0,
            has_audio: false,
            first_number: files[0].0,
            numbers: files.iter().map(|(n, _)| *n).collect(),
            description: format!(
                "{} frames of {width}x{height} ({} .. {}) at {} fps",
                files.len(),
                files[0].1.display(),
                files[files.len() - 1].1.display(),
                fps.as_f64()
            ),
        };
        Ok(SequenceSource {
            size: scaled_size(width, height, long_edge),
            files,
            next: 0,
            info,
            warnings,
        })
    }
}

impl FrameSource for SequenceSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        let Some((_, path)) = self.files.get(self.next) else {
            return Ok(None);
        };
        let image = picture::load(path)?;
        if image.dimensions() != (self.info.width, self.info.height) {
            return Err(Error::image(
                path,
                format!(
                    "is {}x{}, but the sequence's first frame is {}x{}",
                    image.width(),
                    image.height(),
                    self.info.width,
                    self.info.height
                ),
            ));
        }
        let index = self.next;
        self.next += 1;
        Ok(Some(Frame {
            index,
            pts: index as i64,
            duration: 1,
            image: resize(&image, self.size.0, self.size.1),
        }))
    }

    fn warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// Writes frames as numbered files, each renamed into place when complete.
pub struct SequenceSink {
    pattern: Pattern,
    numbering: SourceInfo,
    size: (u32, u32),
    depth: BitDepth,
}

impl SequenceSink {
    /// A sink writing frame `i` to `pattern`'s file numbered as the source numbers it
    /// ([`SourceInfo::number`]), scaled to `size`, at `depth` bits for PNG and TIFF. The
    /// directory is created if its parent exists.
    pub fn create(
        pattern: Pattern,
        source: &SourceInfo,
        size: (u32, u32),
        depth: BitDepth,
    ) -> Result<Self> {
        picture::output_format(&pattern.path(source.number(0)))?;
        if !pattern.dir.is_dir() {
            std::fs::create_dir(&pattern.dir).map_err(|e| {
                Error::output(&pattern.dir, format!("cannot create the folder: {e}"))
            })?;
        }
        Ok(SequenceSink {
            pattern,
            numbering: source.clone(),
            size,
            depth,
        })
    }

    /// The file frame `index` goes to.
    pub fn path_of(&self, index: usize) -> PathBuf {
        self.pattern.path(self.numbering.number(index))
    }
}

impl FrameSink for SequenceSink {
    fn write(&mut self, frame: &Frame) -> Result<()> {
        let image: Rgb32FImage = resize(&frame.image, self.size.0, self.size.1);
        picture::save_with_depth(&image, &self.path_of(frame.index), self.depth)
    }

    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_number_files() {
        let p = Pattern::parse(Path::new("shot/%05d.png")).unwrap();
        assert_eq!(p.path(42), Path::new("shot/00042.png"));
        assert_eq!(p.number_of("00042.png"), Some(42));
        assert_eq!(p.number_of("123456.png"), Some(123456));
        assert_eq!(p.number_of("0042.png"), None);
        assert_eq!(p.number_of("00042.jpg"), None);
        let q = Pattern::parse(Path::new("frame.%d.exr")).unwrap();
        assert_eq!(q.path(7), Path::new("./frame.7.exr"));
        assert_eq!(q.number_of("frame.7.exr"), Some(7));
        assert_eq!(q.extension(), "exr");
        assert!(Pattern::parse(Path::new("plain.png")).is_none());
        assert!(Pattern::parse(Path::new("a%s.png")).is_none());
    }

    #[test]
    fn natural_order_puts_2_before_10() {
        let mut v = vec![
            PathBuf::from("f10.png"),
            PathBuf::from("f2.png"),
            PathBuf::from("f1.png"),
        ];
        v.sort_by_cached_key(|p| natural_key(p));
        assert_eq!(
            v,
            [
                PathBuf::from("f1.png"),
                PathBuf::from("f2.png"),
                PathBuf::from("f10.png")
            ]
        );
    }
}
