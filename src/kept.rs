//! Finished frames kept beside the output while a video or sequence is made (16-bit PNG at the
//! processing size, lossless enough to warm-start from), with the settings that made them, so
//! that a crash, a kill or Ctrl-C loses at most the frame in flight and a rerun resumes.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::Rgb32FImage;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::image::{self as picture, BitDepth};

const SETTINGS_FILE: &str = "settings.json";
/// The identities of a sequence's input frames, by position (see [`KeptFrames::check_inputs`]).
const INPUTS_FILE: &str = "inputs.json";
/// The first bytes of a kept start (see [`KeptFrames::save_start`]).
const START_MAGIC: &[u8] = b"stylize-video start 1\n";

/// Held by the run that keeps frames in the folder (see [`lock`]).
const LOCK_FILE: &str = ".lock";

/// The kept frames of one output, held by this run alone while it lives (another run into the
/// same output is refused, see [`KeptFrames::open`]).
#[derive(Clone, Debug)]
pub struct KeptFrames {
    dir: PathBuf,
    discarded: usize,
    /// The locked file; the lock goes with the last clone (or with the process, however it
    /// ends: the kernel releases it).
    _lock: std::sync::Arc<std::fs::File>,
}

/// Takes an exclusive `flock` on `file` without waiting; it goes with the File.
fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether a run holds the kept frames in `dir` now (it holds a lock on the folder's lock
/// file while it runs).
pub fn in_use(dir: &Path) -> bool {
    std::fs::File::open(dir.join(LOCK_FILE)).is_ok_and(|file| {
        try_lock(&file).is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock)
    })
}

/// The JSON file `path` holds, if it is there and whole.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// `fingerprint` as written to the settings file, and as it reads back from it: compared so,
/// a number whose text does not parse back to the very same float (serde_json's fast parser
/// may be one unit off) still matches.
fn as_read_back(fingerprint: &Value) -> (String, Value) {
    let text = serde_json::to_string_pretty(fingerprint).expect("JSON");
    let back = serde_json::from_str(&text).expect("JSON");
    (text, back)
}

/// Whether `dir` holds kept frames made with `fingerprint` (as [`KeptFrames::open`] compares
/// them), and how many files of frames.
pub fn holds_frames_of(dir: &Path, fingerprint: &Value) -> Option<usize> {
    let previous = read_json(&dir.join(SETTINGS_FILE)).map(upgraded)?;
    (previous == as_read_back(fingerprint).1).then(|| count_pngs(dir))
}

fn count_pngs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                .count()
        })
        .unwrap_or(0)
}

/// Locks `dir` for this process: an exclusive `flock` on its lock file, which holds the pid of
/// the run that holds it. Another run holding it is an error that names it. On storage without
/// locks the folder is used unlocked.
fn lock(dir: &Path) -> Result<std::fs::File> {
    use std::io::{Read, Seek};
    let path = dir.join(LOCK_FILE);
    let io = |action: &'static str| {
        let path = path.clone();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("cannot create"))?;
    if let Err(error) = try_lock(&file) {
        if error.kind() != std::io::ErrorKind::WouldBlock {
            // Storage that has no locks (some network and FUSE file systems): the run goes on
            // unguarded rather than not at all.
            return Ok(file);
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = holder.trim();
        let by = if holder.is_empty() {
            "another run".to_string()
        } else {
            format!("another run (process {holder})")
        };
        return Err(Error::output(
            dir,
            format!(
                "{by} is writing this output and keeps its frames here; wait for it to end, \
                 or stop it (it resumes where it stopped)"
            ),
        ));
    }
    file.set_len(0).map_err(io("cannot write"))?;
    file.rewind().map_err(io("cannot write"))?;
    write!(file, "{}", std::process::id()).map_err(io("cannot write"))?;
    Ok(file)
}

impl KeptFrames {
    /// Opens the folder `dir` for frames made with `fingerprint` (every setting that changes the
    /// pixels). Frames made with other settings are an error that says what changed. With
    /// `restart`, whatever is kept is discarded (see [`KeptFrames::discarded`]). Returns the
    /// folder and how many frames from the first on are already there.
    pub fn open(dir: &Path, fingerprint: &Value, restart: bool) -> Result<(Self, usize)> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut kept = KeptFrames {
            dir: dir.to_path_buf(),
            discarded: 0,
            _lock: std::sync::Arc::new(lock(dir)?),
        };
        let (text, fingerprint) = as_read_back(fingerprint);
        let fingerprint = &fingerprint;
        let settings = dir.join(SETTINGS_FILE);
        // As the current version writes it.
        let raw: Option<Value> = read_json(&settings);
        let previous = raw.clone().map(upgraded);
        if !restart && previous.as_ref() == Some(fingerprint) {
            if raw != previous {
                // Kept by an earlier version: written as this one writes it, so that what it
                // upgraded (files known by path and time) holds once the files move; a whole
                // sequence's digest stays for `check_inputs`, which reads it once.
                let mut now = fingerprint.clone();
                let digest = raw.as_ref().and_then(|r| r.pointer("/input/digest"));
                if let (Some(digest), Some(input)) = (digest, now.get_mut("input")) {
                    if let Some(input) = input.as_object_mut() {
                        input.insert("digest".into(), digest.clone());
                    }
                }
                let text = serde_json::to_string_pretty(&now).expect("JSON");
                atomic::write(&settings, |f| f.write_all(text.as_bytes()))?;
            }
            let count = kept.count();
            return Ok((kept, count));
        }
        // Without frames there is nothing to lose: start afresh.
        if !restart && kept.count_files() > 0 {
            let frames = kept.count_files();
            let changed = match &previous {
                Some(p) => differences(p, fingerprint).join(", "),
                None => "unknown settings".into(),
            };
            return Err(Error::output(
                dir,
                format!(
                    "holds {frames} frame(s) kept from an earlier run with other settings ({changed}); \
                     rerun with those settings to resume, or pass --restart to discard them"
                ),
            ));
        }
        kept.discarded = kept.count_files();
        kept.clear()?;
        atomic::write(&settings, |f| f.write_all(text.as_bytes()))?;
        Ok((kept, 0))
    }

    /// Removes everything kept but the lock.
    fn clear(&self) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| Error::Io {
            action: "cannot read",
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == LOCK_FILE {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|source| Error::Io {
                action: "cannot remove",
                path,
                source,
            })?;
        }
        Ok(())
    }

    /// How many kept frames opening discarded (`restart`).
    pub fn discarded(&self) -> usize {
        self.discarded
    }

    /// How many frames, from the first on, are kept.
    pub fn count(&self) -> usize {
        (0..).take_while(|i| self.path(*i).is_file()).count()
    }

    /// Checks the first `already` kept frames against the input frames they were painted from
    /// (`inputs`: an identity per position of a frame sequence's run), and keeps `inputs` for
    /// the next run. The frames from the first whose input changed on are discarded: each frame
    /// starts from the one before it. Frames beyond `inputs` (kept by a run to a later end)
    /// stay, with their inputs' identities, for a run that reaches them. Frames kept by a
    /// version that kept only a digest of the whole sequence in their settings stay if it is
    /// still `whole_digest()` (computed only for them). Returns how many frames of `inputs`,
    /// from the first on, are kept and valid.
    pub fn check_inputs(
        &self,
        already: usize,
        inputs: &[Value],
        whole_digest: impl FnOnce() -> String,
    ) -> Result<usize> {
        let path = self.dir.join(INPUTS_FILE);
        let kept: Option<Vec<Value>> = read_json(&path).map(upgraded_inputs);
        let in_range = already.min(inputs.len());
        let valid = match &kept {
            Some(kept) => (0..in_range)
                .take_while(|&i| kept.get(i).is_some() && kept.get(i) == inputs.get(i))
                .count(),
            None => {
                let settings: Option<Value> = read_json(&self.dir.join(SETTINGS_FILE));
                let digest = settings.as_ref().and_then(|s| s.pointer("/input/digest"));
                if in_range > 0
                    && digest
                        .and_then(Value::as_str)
                        .is_some_and(|d| d == whole_digest())
                {
                    in_range
                } else {
                    0
                }
            }
        };
        let mut next = inputs.to_vec();
        if valid < in_range {
            for index in valid..already {
                let frame = self.path(index);
                std::fs::remove_file(&frame).map_err(|source| Error::Io {
                    action: "cannot remove",
                    path: frame,
                    source,
                })?;
            }
            self.remove_starts();
        } else if let Some(kept) = &kept {
            next.extend(kept.iter().take(already).skip(inputs.len()).cloned());
        }
        let text = serde_json::to_string(&next).expect("JSON");
        atomic::write(&path, |f| f.write_all(text.as_bytes()))?;
        Ok(valid)
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the `index`-th frame of the output.
    pub fn path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{index:06}.png"))
    }

    fn count_files(&self) -> usize {
        count_pngs(&self.dir)
    }

    /// Keeps the `index`-th frame (renamed into place when complete); the previous frame's
    /// start is no longer needed then.
    pub fn save(&self, index: usize, image: &Rgb32FImage) -> Result<()> {
        picture::save_with_depth(image, &self.path(index), BitDepth::Sixteen)?;
        if index > 0 {
            let _ = std::fs::remove_file(self.start_path(index - 1));
        }
        Ok(())
    }

    /// `image` exactly as it reads back once kept: what is made of a frame (scaled, colours
    /// preserved, rounded) is then the same whether it was just painted or resumed.
    pub fn as_kept(&self, image: &Rgb32FImage) -> Rgb32FImage {
        picture::as_sixteen_bit(image)
    }

    /// The `index`-th kept frame.
    pub fn load(&self, index: usize) -> Result<Rgb32FImage> {
        picture::load(&self.path(index))
    }

    /// Keeps the optimiser's own image of the `index`-th frame (`values`: the network's input,
    /// 3 planes of `width` x `height`, unclipped and at full precision), where the next frame
    /// starts: a resumed run then starts it from exactly where an unbroken run would have, not
    /// from the clipped 16-bit picture. Keep it before the frame itself.
    pub fn save_start(&self, index: usize, width: u32, height: u32, values: &[f32]) -> Result<()> {
        assert_eq!(values.len(), 3 * width as usize * height as usize);
        atomic::write(&self.start_path(index), |f| {
            let mut out = std::io::BufWriter::new(f);
            out.write_all(START_MAGIC)?;
            out.write_all(&width.to_le_bytes())?;
            out.write_all(&height.to_le_bytes())?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_all(&bytes)?;
            out.flush()
        })
    }

    /// What [`KeptFrames::save_start`] kept for the `index`-th frame, if it is there, whole,
    /// and of this size (else the frame's picture is the start).
    pub fn load_start(&self, index: usize, width: u32, height: u32) -> Option<Vec<f32>> {
        let bytes = std::fs::read(self.start_path(index)).ok()?;
        let header = START_MAGIC.len() + 8;
        let count = 3 * width as usize * height as usize;
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if bytes.len() != header + 4 * count
            || !bytes.starts_with(START_MAGIC)
            || word(START_MAGIC.len()) != width
            || word(START_MAGIC.len() + 4) != height
        {
            return None;
        }
        let values: Vec<f32> = bytes[header..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        values.iter().all(|v| v.is_finite()).then_some(values)
    }

    /// Removes the starts kept for resuming (when the output is complete and the frames stay).
    pub fn remove_starts(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|x| x == "start") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }

    fn start_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{index:06}.start"))
    }

    /// The output is complete and the frames stay (`--keep-frames`): removes what served only
    /// to resume (the starts) and the lock.
    pub fn keep(self) {
        self.remove_starts();
        self.remove_lock_file();
    }

    /// The output is complete but the folder holds frames past its end (kept by a run to a
    /// later end): they stay, as they are, for such a run; only the lock goes. Returns how many
    /// frames the folder holds.
    pub fn leave_for_later(self) -> usize {
        self.remove_lock_file();
        self.count_files()
    }

    /// The lock file goes with the run's end where the folder stays (the lock itself goes with
    /// the File).
    fn remove_lock_file(&self) {
        let _ = std::fs::remove_file(self.dir.join(LOCK_FILE));
    }

    /// Removes the folder if it holds no frame (a run that failed before its first frame).
    pub fn remove_if_empty(&self) {
        if self.count_files() == 0 {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Removes the folder, once the output is complete.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(|source| Error::Io {
            action: "cannot remove",
            path: self.dir.clone(),
            source,
        })
    }
}

/// Files up to this size are digested whole; larger ones at [`SAMPLES`] places.
const WHOLE_UP_TO: u64 = 16 << 20;
/// Places (fractions of the file) of the 1 MiB samples digested of a larger file; the last
/// ends at the file's end.
const SAMPLES: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];

/// What tells an input file apart from another, wherever it lies and whatever its time (a
/// project moved or mounted elsewhere, a copy, a touch keep their kept frames): its size and a
/// SHA-256 of its bytes, of 1 MiB at five places (start, quarters, end) of a file over 16 MiB.
/// A missing or unreadable file has nulls (its run fails on opening it, saying why).
pub fn file_identity(path: &Path) -> Value {
    read_identity(path).unwrap_or_else(|_| serde_json::json!({ "bytes": null, "sha256": null }))
}

/// [`file_identity`], or why the file cannot be read.
pub fn read_identity(path: &Path) -> std::io::Result<Value> {
    let (bytes, sha256) = digest(path)?;
    Ok(serde_json::json!({ "bytes": bytes, "sha256": sha256 }))
}

fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let bytes = file.metadata()?.len();
    let mut hash = Sha256::new();
    hash.update(bytes.to_le_bytes());
    let mut buffer = vec![0u8; 1 << 20];
    if bytes <= WHOLE_UP_TO {
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hash.update(&buffer[..n]);
        }
    } else {
        let span = bytes - buffer.len() as u64;
        for at in SAMPLES {
            file.seek(SeekFrom::Start((span as f64 * at) as u64))?;
            file.read_exact(&mut buffer)?;
            hash.update(&buffer);
        }
    }
    let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((bytes, sha256))
}

/// A file's identity as versions before 2026-11-25 kept it: its real path, size and
/// modification time (to upgrade what they kept, and for a whole sequence's
/// legacy digest).
pub fn legacy_identity(path: &Path) -> Value {
    let meta = std::fs::metadata(path).ok();
    serde_json::json!({
        "path": path.canonicalize().unwrap_or_else(|_| path.to_path_buf()).display().to_string(),
        "bytes": meta.as_ref().map(|m| m.len()),
        "modified": meta.and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
    })
}

/// A file's identity as [`legacy_identity`] kept it, as this version writes it, if that file
/// is still there unchanged (the same size and time); else as it was.
fn upgraded_identity(old: &Value) -> Value {
    let (Some(path), Some(_), Some(_)) = (
        old.get("path").and_then(Value::as_str),
        old.get("bytes").and_then(Value::as_u64),
        old.get("modified").and_then(Value::as_u64),
    ) else {
        return old.clone();
    };
    let path = Path::new(path);
    let now = legacy_identity(path);
    if now["bytes"] == old["bytes"] && now["modified"] == old["modified"] {
        file_identity(path)
    } else {
        old.clone()
    }
}

/// The identities of a sequence's frames as [`KeptFrames::check_inputs`] kept them, each as
/// this version writes it (see [`upgraded_identity`]).
fn upgraded_inputs(kept: Vec<Value>) -> Vec<Value> {
    kept.into_iter()
        .map(|mut frame| {
            if let Some(file) = frame.get_mut("file") {
                *file = upgraded_identity(file);
            }
            frame
        })
        .collect()
}

/// A fingerprint kept by an earlier version as this one writes it: a sequence input's path
/// was kept as typed, then as its real path; it is now left out (its frames are checked one
/// by one, wherever it lies). Files were known by path, size and time; now by their contents.
fn upgraded(mut kept: Value) -> Value {
    // A sequence was one digest of all its frames; its frames are now checked one by one
    // (the digest is checked once by `check_inputs`).
    if let Some(input) = kept.pointer_mut("/input").and_then(Value::as_object_mut) {
        if input.contains_key("sequence") {
            input.remove("digest");
            input.remove("frames");
        }
    }
    if let Some(sequence) = kept.pointer_mut("/input/sequence") {
        *sequence = Value::Bool(true);
    }
    for pointer in ["/input", "/init"] {
        if let Some(file) = kept.pointer_mut(pointer) {
            *file = upgraded_identity(file);
        }
    }
    if let Some(styles) = kept.pointer_mut("/styles").and_then(Value::as_array_mut) {
        for style in styles {
            if let Some(file) = style.get_mut("file") {
                *file = upgraded_identity(file);
            }
        }
    }
    kept
}

/// The settings that differ, as `name: old -> new`; nested settings by their path
/// (`style.loss.style_weight: 1000.0 -> 100.0`), so that the user sees which one changed.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    if !(old.is_object() && new.is_object()) {
        return vec!["unreadable settings".into()];
    }
    let mut found = Vec::new();
    differ("", Some(old), Some(new), &mut found);
    found
}

/// Adds to `found` where `old` and `new` differ below `path` (a missing value is `-`).
fn differ(path: &str, old: Option<&Value>, new: Option<&Value>, found: &mut Vec<String>) {
    if old == new {
        return;
    }
    if let (Some(Value::Object(old)), Some(Value::Object(new))) = (old, new) {
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let inner = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            differ(&inner, old.get(k), new.get(k), found);
        }
        return;
    }
    if let (Some(Value::Array(old)), Some(Value::Array(new))) = (old, new) {
        if old.len() == new.len() {
            for (i, (a, b)) in old.iter().zip(new).enumerate() {
                differ(&format!("{path}[{i}]"), Some(a), Some(b), found);
            }
            return;
        }
    }
    // A file's identity: its digest says it all (a size that differs, it differs too).
    if let Some(file) = path.strip_suffix(".sha256") {
        found.push(format!("{file}: another file (its contents differ)"));
        return;
    }
    if path.ends_with(".bytes") && old.is_some() && new.is_some() {
        return;
    }
    let show = |v: Option<&Value>| v.map_or_else(|| "-".to_string(), Value::to_string);
    let (a, b) = (show(old), show(new));
    found.push(if a.len() + b.len() > 80 {
        path.to_string()
    } else {
        format!("{path}: {a} -> {b}")
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_setting_is_named_by_its_path() {
        let old = serde_json::json!({
            "style": { "loss": { "style_weight": 1000.0, "tv_weight": 0.0 }, "size": 64 },
            "start": 0,
        });
        let new = serde_json::json!({
            "style": { "loss": { "style_weight": 100.0, "tv_weight": 0.0 }, "size": 64 },
            "start": 0,
            "fps": 24,
        });
        assert_eq!(
            differences(&old, &new),
            ["fps: - -> 24", "style.loss.style_weight: 1000.0 -> 100.0"]
        );
        assert_eq!(differences(&old, &old), Vec::<String>::new());
        // A setting an older version did not write, now written as null, is named too.
        let older = serde_json::json!({ "input": { "file": "a.mp4" } });
        let newer = serde_json::json!({ "input": { "file": "a.mp4", "modified": null } });
        assert_eq!(differences(&older, &newer), ["input.modified: - -> null"]);
        // Another painting: named by its place in the list, in words, not by two digests.
        let one = json!({ "styles": [{ "file": { "bytes": 10, "sha256": "a".repeat(64) }, "blend": 1.0 }] });
        let other = json!({ "styles": [{ "file": { "bytes": 12, "sha256": "b".repeat(64) }, "blend": 1.0 }] });
        assert_eq!(
            differences(&one, &other),
            ["styles[0].file: another file (its contents differ)"]
        );
    }

    #[test]
    fn a_setting_whose_text_parses_back_one_unit_off_still_resumes() {
        // serde_json's default parser reads this one unit in the last place off.
        let weight = 9941.414234139935_f64;
        let text = serde_json::to_string(&weight).unwrap();
        assert_ne!(serde_json::from_str::<f64>(&text).unwrap(), weight);

        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.mp4.frames");
        let fingerprint = serde_json::json!({ "style_weight": weight });
        let (kept, already) = KeptFrames::open(&folder, &fingerprint, false).unwrap();
        assert_eq!(already, 0);
        std::fs::write(kept.path(0), b"a frame").unwrap();
        drop(kept);
        let (_, already) = KeptFrames::open(&folder, &fingerprint, false).unwrap();
        assert_eq!(already, 1);
    }

    #[test]
    fn frames_kept_with_a_sequence_path_still_resume() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.frames");
        let shot = dir.path().join("shot");
        std::fs::create_dir(&shot).unwrap();
        // As an earlier version kept it: the path as typed, here with a detour.
        let typed = dir.path().join("shot/../shot/%04d.png");
        let old = serde_json::json!({ "input": { "sequence": typed.display().to_string() } });
        let (kept, _) = KeptFrames::open(&folder, &old, false).unwrap();
        std::fs::write(kept.path(0), b"a frame").unwrap();
        drop(kept);
        // Now only that it is a sequence: its frames are checked one by one.
        let new = serde_json::json!({ "input": { "sequence": true } });
        let (_, already) = KeptFrames::open(&folder, &new, false).unwrap();
        assert_eq!(already, 1);
    }

    #[test]
    fn a_sequence_s_frames_are_checked_one_by_one_and_a_whole_digest_once() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.frames");
        // As a version before 2026-11-24 kept it: a digest of every frame of the sequence.
        let old = serde_json::json!({ "input": { "sequence": "/s/%04d.png", "frames": 3, "digest": "d1" } });
        let (kept, _) = KeptFrames::open(&folder, &old, false).unwrap();
        for i in 0..2 {
            std::fs::write(kept.path(i), b"a frame").unwrap();
        }
        drop(kept);
        let new = serde_json::json!({ "input": { "sequence": true } });
        let (kept, already) = KeptFrames::open(&folder, &new, false).unwrap();
        assert_eq!(already, 2);
        let inputs = [json!("a"), json!("b"), json!("c")];
        // The sequence as it was then: every kept frame stays, and its frames are now kept.
        assert_eq!(kept.check_inputs(2, &inputs, || "d1".into()).unwrap(), 2);
        // A frame not yet painted changed (or was added): nothing is lost.
        let later = [json!("a"), json!("b"), json!("C"), json!("d")];
        assert_eq!(kept.check_inputs(2, &later, || "other".into()).unwrap(), 2);
        // A painted frame changed: it and those after it go.
        let changed = [json!("a"), json!("B"), json!("C")];
        assert_eq!(
            kept.check_inputs(2, &changed, || "other".into()).unwrap(),
            1
        );
        assert_eq!(kept.count(), 1);
        // The digest of a sequence that changed since: nothing stays.
        let folder = dir.path().join("other.frames");
        let (kept, _) = KeptFrames::open(&folder, &old, false).unwrap();
        std::fs::write(kept.path(0), b"a frame").unwrap();
        assert_eq!(kept.check_inputs(1, &inputs, || "d2".into()).unwrap(), 0);
        assert_eq!(kept.count(), 0);
    }

    #[test]
    fn a_kept_start_reads_back_exactly_and_only_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.mp4.frames");
        let (kept, _) = KeptFrames::open(&folder, &serde_json::json!({}), false).unwrap();
        // Values a 16-bit picture cannot hold: outside 0..255 and between its steps.
        let values: Vec<f32> = (0..3 * 4 * 2).map(|i| i as f32 * 37.3 - 300.0).collect();
        kept.save_start(5, 4, 2, &values).unwrap();
        assert_eq!(kept.load_start(5, 4, 2), Some(values.clone()));
        assert_eq!(kept.load_start(5, 2, 4), None, "another size");
        assert_eq!(kept.load_start(4, 4, 2), None, "another frame");
        // Kept frame 6 makes frame 5's start useless.
        let picture = Rgb32FImage::new(4, 2);
        kept.save(6, &picture).unwrap();
        assert_eq!(kept.load_start(5, 4, 2), None);
        // A damaged file is not used.
        kept.save_start(6, 4, 2, &values).unwrap();
        let path = kept.start_path(6);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(kept.load_start(6, 4, 2), None);
        kept.remove_starts();
        assert!(!path.exists() && kept.path(6).exists());
    }

    #[test]
    fn a_frame_as_kept_is_what_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.mp4.frames");
        let (kept, _) = KeptFrames::open(&folder, &serde_json::json!({}), false).unwrap();
        // Values between a 16-bit picture's steps, and out of range.
        let picture = Rgb32FImage::from_fn(17, 16, |x, y| {
            let v = (x * 16 + y) as f32 * 0.00531 - 0.1;
            image::Rgb([v, v * 0.5 + 1e-6, 1.2 - v])
        });
        kept.save(0, &picture).unwrap();
        let back = kept.load(0).unwrap();
        let as_kept = kept.as_kept(&picture);
        assert_ne!(as_kept, picture, "rounded to 16 bits");
        assert!(
            as_kept
                .as_raw()
                .iter()
                .zip(back.as_raw())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the same to the bit"
        );
    }

    #[test]
    fn a_folder_in_use_by_another_run_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.mp4.frames");
        let fingerprint = json!({ "size": 64 });
        let (kept, _) = KeptFrames::open(&folder, &fingerprint, false).unwrap();
        std::fs::write(kept.path(0), b"a frame").unwrap();
        // Another run (a second open, as another process's would be), even with --restart:
        // refused, naming the process, and nothing discarded.
        for restart in [false, true] {
            let error = KeptFrames::open(&folder, &fingerprint, restart).unwrap_err();
            let text = error.to_string();
            assert!(
                text.contains(&format!("another run (process {})", std::process::id()))
                    && text.contains("is writing this output"),
                "{text}"
            );
        }
        assert_eq!(kept.count(), 1);
        // Held while any clone lives; free once the run is over.
        let clone = kept.clone();
        drop(kept);
        assert!(KeptFrames::open(&folder, &fingerprint, false).is_err());
        drop(clone);
        let (_, already) = KeptFrames::open(&folder, &fingerprint, false).unwrap();
        assert_eq!(already, 1);
    }

    #[test]
    fn a_file_is_known_by_its_contents_wherever_and_whenever() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.mp4"), dir.path().join("moved.mp4"));
        let small: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&a, &small).unwrap();
        let before = file_identity(&a);
        // Copied elsewhere, later: the same.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(&b, &small).unwrap();
        assert_eq!(file_identity(&b), before);
        assert_eq!(before["bytes"], 100_000);
        // One byte changed: another file.
        let mut changed = small.clone();
        changed[50_000] ^= 1;
        std::fs::write(&b, &changed).unwrap();
        assert_ne!(file_identity(&b), before);
        assert_eq!(
            file_identity(&dir.path().join("none"))["sha256"],
            Value::Null
        );
        // A large file is known by samples: a change at one of them, or in its size, tells.
        let large: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 253) as u8).collect();
        std::fs::write(&a, &large).unwrap();
        let whole = file_identity(&a);
        let mut middle = large.clone();
        middle[10 << 20] ^= 1;
        std::fs::write(&b, &middle).unwrap();
        assert_ne!(file_identity(&b), whole);
        std::fs::write(&b, &large[..large.len() - 1]).unwrap();
        assert_ne!(file_identity(&b), whole);
        // As an earlier version knew it (path, size, time): upgraded while the file is unchanged.
        let meta = std::fs::metadata(&a).unwrap();
        let secs = |m: &std::fs::Metadata| {
            m.modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let old = json!({ "path": a.display().to_string(), "bytes": meta.len(), "modified": secs(&meta) });
        assert_eq!(upgraded_identity(&old), whole);
        let stale = json!({ "path": a.display().to_string(), "bytes": meta.len(), "modified": secs(&meta) - 5 });
        assert_eq!(upgraded_identity(&stale), stale);
    }

    #[test]
    fn frames_past_a_shorter_run_s_end_stay_for_a_longer_one() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out.frames");
        let (kept, _) = KeptFrames::open(&folder, &json!({}), false).unwrap();
        // A first run keeps its inputs, then paints three frames.
        let three = [json!("a"), json!("b"), json!("c")];
        assert_eq!(kept.check_inputs(0, &three, || "-".into()).unwrap(), 0);
        for i in 0..3 {
            std::fs::write(kept.path(i), b"a frame").unwrap();
        }
        assert_eq!(kept.check_inputs(3, &three, || "-".into()).unwrap(), 3);
        // A run to frame 2: its two frames are valid, the third stays with its input.
        assert_eq!(kept.check_inputs(3, &three[..2], || "-".into()).unwrap(), 2);
        assert_eq!(kept.count(), 3);
        assert_eq!(kept.check_inputs(3, &three, || "-".into()).unwrap(), 3);
        // The third's input changed since: it alone goes.
        let changed = [json!("a"), json!("b"), json!("C")];
        assert_eq!(kept.check_inputs(3, &changed, || "-".into()).unwrap(), 2);
        assert_eq!(kept.count(), 2);
    }

    #[test]
    fn settings_kept_by_an_earlier_version_are_rewritten_once_they_match() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("clip.mp4");
        std::fs::write(&input, b"a clip").unwrap();
        let meta = std::fs::metadata(&input).unwrap();
        let secs = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let folder = dir.path().join("out.mp4.frames");
        std::fs::create_dir(&folder).unwrap();
        let old = json!({ "input": { "path": input.display().to_string(), "bytes": 6, "modified": secs } });
        std::fs::write(folder.join(SETTINGS_FILE), old.to_string()).unwrap();
        std::fs::write(folder.join("000000.png"), b"a frame").unwrap();
        let new = json!({ "input": file_identity(&input) });
        let (kept, already) = KeptFrames::open(&folder, &new, false).unwrap();
        assert_eq!(already, 1);
        drop(kept);
        // Written as this version writes it: the file may now move.
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join(SETTINGS_FILE)).unwrap())
                .unwrap();
        assert_eq!(written, new);
        std::fs::rename(&input, dir.path().join("moved.mp4")).unwrap();
        let (_, already) = KeptFrames::open(&folder, &new, false).unwrap();
        assert_eq!(already, 1);
    }
}
