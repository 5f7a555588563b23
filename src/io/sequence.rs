//! Frame sequences: a folder of numbered pictures, named by a directory or a printf-style
//! pattern such as `shot/%05d.png`, in and out.

use std::path::{Path, PathBuf};

use image::Rgb32FImage;

use super::image::{self as picture, BitDepth};
use crate::engine::preprocess::resize;
use crate::error::{Error, Result};
use crate::frames::{Frame, FrameSink, FrameSource, Ratio, SourceInfo};
use crate::io::image::check_processing_size;

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
    /// Parses `shot/%05d.png`, `shot/frame.%d.exr` or `shot/frame.####.exr` (as many digits as
    /// `#`, two or more, as compositing packages write it; a file so named is a file); `None`
    /// if `path` holds no such place for the frame number.
    pub fn parse(path: &Path) -> Option<Pattern> {
        let name = path.file_name()?.to_str()?;
        let (prefix, width, after) = match name.find('%') {
            Some(start) => {
                let rest = &name[start + 1..];
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let after = rest[digits.len()..].strip_prefix('d')?;
                if after.contains('%') {
                    return None;
                }
                let width = digits.trim_start_matches('0').parse().unwrap_or(0);
                (&name[..start], width, after)
            }
            None => {
                let start = name.find("##")?;
                let width = name[start..].chars().take_while(|c| *c == '#').count();
                let after = &name[start + width..];
                if after.contains('#') || path.is_file() {
                    return None;
                }
                (&name[..start], width, after)
            }
        };
        // `100%done.mp4` names a video, not frames.
        let video = ["mp4", "m4v", "mkv", "mov", "webm", "avi", "mxf", "ts"];
        let extension = after.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        if extension.is_some_and(|e| video.contains(&e.as_str())) {
            return None;
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Some(Pattern {
            dir,
            prefix: prefix.to_string(),
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

/// Why frames written to `output` would be taken for frames of the sequence `input` by a later
/// run (which then could no longer resume it, nor run again), if they would: written into a
/// folder input, or named so that the input's pattern matches them.
pub fn output_meets_input(input: &Path, output: &Pattern) -> Option<String> {
    let same_folder = |dir: &Path| crate::io::atomic::same_file(dir, &output.dir);
    match Pattern::parse(input) {
        Some(pattern) => {
            if !same_folder(&pattern.dir) {
                return None;
            }
            let clash = [0, 1, 1001, 123_456].into_iter().find_map(|n| {
                let out = output.path(n);
                let name = out.file_name()?.to_str()?;
                pattern.number_of(name).map(|_| out.clone())
            })?;
            Some(format!(
                "its frames (such as '{}') would be taken for frames of the input '{}' by the next run: name them apart (such as out_%04d.png) or write them into another folder",
                clash.display(),
                input.display()
            ))
        }
        None => same_folder(input).then(|| {
            format!(
                "is in the input folder '{}', whose every image is read as a frame: write the frames into another folder",
                input.display()
            )
        }),
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
    // One format under either spelling (.jpg and .jpeg, .tif and .tiff) is one format.
    let extension = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .filter(|e| FRAME_EXTENSIONS.contains(&e.as_str()))
            .map(|e| match e.as_str() {
                "jpeg" => "jpg".to_string(),
                "tiff" => "tif".to_string(),
                _ => e,
            })
    };
    // Hidden files (`._0001.png` that macOS leaves on shared drives, `.thumbs.png`) are not
    // frames.
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .filter(|p| p.is_file() && extension(p).is_some())
        .collect();
    files.sort_by_cached_key(|p| natural_key(p));
    if files.is_empty() {
        return Err(not_found(format!(
            "the folder holds no frames ({})",
            FRAME_EXTENSIONS.join(", ")
        )));
    }
    // Frames in two formats (a shot exported twice, PNG and JPEG) would be interleaved.
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for e in files.iter().filter_map(|p| extension(p)) {
        match kinds.iter_mut().find(|(k, _)| *k == e) {
            Some((_, n)) => *n += 1,
            None => kinds.push((e, 1)),
        }
    }
    if kinds.len() > 1 {
        let counts: Vec<String> = kinds.iter().map(|(e, n)| format!("{n} .{e}")).collect();
        return Err(not_found(format!(
            "the folder holds frames in several formats ({}): name the ones to use with a pattern such as '{}'",
            counts.join(", "),
            path.join(pattern_of(&files[0])).display()
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

/// A pattern for the file `path` and its like: its last run of digits as `%0Nd`
/// (`shot_0001.png` → `shot_%04d.png`).
fn pattern_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = name.as_bytes();
    match bytes.iter().rposition(u8::is_ascii_digit) {
        Some(end) => {
            let start = bytes[..end]
                .iter()
                .rposition(|b| !b.is_ascii_digit())
                .map_or(0, |i| i + 1);
            format!(
                "{}%0{}d{}",
                &name[..start],
                end + 1 - start,
                &name[end + 1..]
            )
        }
        None => name,
    }
}

/// Reads the size of every frame that will be read from its header, before any work: a frame
/// that cannot be read, or whose size is not the first one's, is an error naming it.
fn check_sizes(files: &[(u64, PathBuf)]) -> Result<()> {
    let size_of = picture::dimensions;
    let first = size_of(&files[0].1)?;
    for (_, path) in &files[1..] {
        let size = size_of(path)?;
        if size != first {
            return Err(Error::image(
                path,
                format!(
                    "is {}x{}, but the first frame read, '{}', is {}x{}: a sequence's frames must all have one size",
                    size.0,
                    size.1,
                    files[0].1.display(),
                    first.0,
                    first.1
                ),
            ));
        }
    }
    Ok(())
}

/// A frame sequence read from files, scaled to a processing size.
pub struct SequenceSource {
    files: Vec<(u64, PathBuf)>,
    next: usize,
    /// One past the last position read.
    end: usize,
    size: (u32, u32),
    info: SourceInfo,
    warnings: Vec<String>,
}

impl SequenceSource {
    /// Opens the sequence at `path` (directory or pattern); frames come at `fps` frames per
    /// second, scaled so that the long edge is `long_edge` pixels (refused, with a `--size` that
    /// would do, where a side falls outside what the network takes).
    pub fn open(path: &Path, fps: Ratio, long_edge: u32) -> Result<Self> {
        Self::open_frames(path, fps, long_edge, 0..usize::MAX)
    }

    /// [`SequenceSource::open`] for the frames at positions `frames` only: only they are read
    /// (a shard at the end of a long sequence does not decode those before it); the first
    /// frame that comes has index `frames.start`.
    pub fn open_frames(
        path: &Path,
        fps: Ratio,
        long_edge: u32,
        frames: std::ops::Range<usize>,
    ) -> Result<Self> {
        let files = list(path)?;
        let start = frames.start.min(files.len());
        let end = frames.end.clamp(start, files.len());
        let wanted = &files[start..end];
        // Past the end nothing is read; the pipeline says there is no frame in the range.
        let wanted = if wanted.is_empty() {
            &files[..1]
        } else {
            wanted
        };
        check_sizes(wanted)?;
        let first = picture::load(&wanted[0].1)?;
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
                "the sequence has gaps ({} missing from {}, the first {first}): a sequence output keeps each input frame's number; a video plays the frames one after another",
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
            timecode: None,
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
        // Refused before any work, with the size that would do.
        let size = check_processing_size(path, "--size", long_edge, (width, height), long_edge)?;
        Ok(SequenceSource {
            size,
            end,
            files,
            next: start,
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
        let Some((_, path)) = self.files[..self.end].get(self.next) else {
            return Ok(None);
        };
        let image = picture::load(path)?;
        if image.dimensions() != (self.info.width, self.info.height) {
            return Err(Error::image(
                path,
                format!(
                    "is {}x{}, but the first frame read is {}x{}: a sequence's frames must all have one size",
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
        // Compositing packages' `####`: as many digits as marks.
        let h = Pattern::parse(Path::new("plates/sh010.####.exr")).unwrap();
        assert_eq!(
            h,
            Pattern::parse(Path::new("plates/sh010.%04d.exr")).unwrap()
        );
        assert_eq!(h.path(1001), Path::new("plates/sh010.1001.exr"));
        assert_eq!(h.number_of("sh010.0042.exr"), Some(42));
        // One mark is a name's (`take#1.png`), as is a second run, and a video's name.
        for name in ["take#1.png", "a##b##.png", "cut##.mp4"] {
            assert!(Pattern::parse(Path::new(name)).is_none(), "{name}");
        }
    }

    #[test]
    fn a_file_named_with_marks_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("logo##.png");
        assert!(Pattern::parse(&file).is_some());
        std::fs::write(&file, b"").unwrap();
        assert!(Pattern::parse(&file).is_none());
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
