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

/// The kept frames of one output.
#[derive(Clone, Debug)]
pub struct KeptFrames {
    dir: PathBuf,
}

impl KeptFrames {
    /// Opens the folder `dir` for frames made with `fingerprint` (every setting that changes the
    /// pixels). Frames made with other settings are an error that says what changed, unless
    /// `restart` is set: then they are discarded. Returns the folder and how many frames from
    /// the first on are already there.
    pub fn open(dir: &Path, fingerprint: &Value, restart: bool) -> Result<(Self, usize)> {
        let kept = KeptFrames {
            dir: dir.to_path_buf(),
        };
        // Compared as read back from the file, so that a number whose text does not parse back
        // to the very same float (serde_json's fast parser may be one unit off) still matches.
        let text = serde_json::to_string_pretty(fingerprint).expect("JSON");
        let fingerprint: &Value = &serde_json::from_str(&text).expect("JSON");
        let settings = dir.join(SETTINGS_FILE);
        if dir.is_dir() {
            let previous: Option<Value> = std::fs::read_to_string(&settings)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if previous.as_ref() == Some(fingerprint) {
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
            std::fs::remove_dir_all(dir).map_err(|source| Error::Io {
                action: "cannot remove",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            action: "cannot create",
            path: dir.to_path_buf(),
            source,
        })?;
        atomic::write(&settings, |f| f.write_all(text.as_bytes()))?;
        Ok((kept, 0))
    }

    /// How many frames, from the first on, are kept.
    pub fn count(&self) -> usize {
        (0..).take_while(|i| self.path(*i).is_file()).count()
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
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Keeps the `index`-th frame (renamed into place when complete).
    pub fn save(&self, index: usize, image: &Rgb32FImage) -> Result<()> {
        picture::save_with_depth(image, &self.path(index), BitDepth::Sixteen)
    }

    /// The `index`-th kept frame.
    pub fn load(&self, index: usize) -> Result<Rgb32FImage> {
        picture::load(&self.path(index))
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

/// The settings that differ, as `name: old -> new`.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return vec!["unreadable settings".into()];
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            let (a, b) = (show(old.get(k)), show(new.get(k)));
            if a.len() + b.len() > 80 {
                k.clone()
            } else {
                format!("{k}: {a} -> {b}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let (_, already) = KeptFrames::open(&folder, &fingerprint, false).unwrap();
        assert_eq!(already, 1);
    }
}
