//! Outputs appear whole or not at all: each is written under a temporary name in the same
//! directory and renamed into place once complete.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// The temporary name `path` is written under: hidden, in the same directory (so that the
/// rename is atomic), and unique to this process.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = format!(".partial-{}", std::process::id());
    let kept = shortened(&name, 1 + suffix.len());
    path.with_file_name(format!(".{kept}{suffix}"))
}

/// The bytes a file name may have on the usual file systems (ext4, APFS, NTFS in UTF-16 units).
pub const NAME_MAX: usize = 255;

/// Refuses, before any work, an output whose file name is longer than a name may be: it could
/// only fail once the output is made.
pub fn check_name_length(path: &Path) -> Result<()> {
    match path.file_name().map(|n| n.as_encoded_bytes().len()) {
        Some(length) if length > NAME_MAX => Err(Error::output(
            path,
            format!("its name is {length} bytes long; a file name may have at most {NAME_MAX}"),
        )),
        _ => Ok(()),
    }
}

/// `name`, or where it is too long to leave `reserved` of the [`NAME_MAX`] bytes of a file name
/// for what is added to it, its beginning (at a whole character) and a digest of the whole, so
/// that two long names that begin alike still get names of their own, the same in every run.
pub fn shortened(name: &str, reserved: usize) -> String {
    if name.len() + reserved <= NAME_MAX {
        return name.to_string();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(name.as_bytes());
    let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let mut room = NAME_MAX.saturating_sub(reserved + 1 + tag.len());
    while !name.is_char_boundary(room) {
        room -= 1;
    }
    format!("{}~{tag}", &name[..room])
}

/// Whether two paths name one file, however spelt (`out.png`, `./out.png`, `../dir/out.png`, a
/// link to it), whether or not it exists yet.
pub fn same_file(a: &Path, b: &Path) -> bool {
    real_path(a) == real_path(b)
}

/// `path` with links and `..` resolved: the file's real path where it exists, else its folder's
/// real path joined with its name.
pub fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (dir.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// The temporary files being written now, for [`remove_in_progress`].
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn in_progress() -> MutexGuard<'static, Vec<PathBuf>> {
    IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary file being written: listed while this lives, so that a process that must exit
/// at once (a second Ctrl-C) can remove it with [`remove_in_progress`].
pub struct InProgress(PathBuf);

impl InProgress {
    /// Lists `path` as being written.
    pub fn new(path: PathBuf) -> Self {
        in_progress().push(path.clone());
        Self(path)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let mut list = in_progress();
        if let Some(i) = list.iter().position(|p| p == &self.0) {
            list.swap_remove(i);
        }
    }
}

/// Removes every temporary file this process is writing: for a process about to exit without
/// unwinding (`_exit`), which would otherwise leave them behind. Only for that: every later
/// write of an output in this process then blocks until it exits.
pub fn remove_in_progress() {
    let mut list = in_progress();
    for path in list.drain(..) {
        let _ = std::fs::remove_file(path);
    }
    // Held until the process exits: a writer about to start another file waits.
    std::mem::forget(list);
}

/// Writes `path` through `fill`, which gets the temporary file; on success the file is synced
/// and renamed to `path`, on failure it is removed.
pub fn write(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    Staged::write(path, fill)?.commit()
}

/// A file written whole under its temporary name, waiting to take its name: outputs that
/// belong together (a picture, its GIF and its report) are all written before any appears, so
/// that a failure leaves none of them. Dropped without [`Staged::commit`], it is removed.
pub struct Staged {
    named: PathBuf,
    target: PathBuf,
    temporary: PathBuf,
    committed: bool,
    _listed: InProgress,
}

impl Staged {
    /// Writes the temporary file of `path` through `fill`, and syncs it.
    pub fn write(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<Self> {
        let target = landing(path);
        let temporary = temporary_path(&target);
        let staged = Staged {
            named: path.to_path_buf(),
            target,
            _listed: InProgress::new(temporary.clone()),
            temporary,
            committed: false,
        };
        File::create(&staged.temporary)
            .and_then(|mut f| {
                fill(&mut f)?;
                f.sync_all()
            })
            .map_err(|source| staged.error(source))?;
        Ok(staged)
    }

    /// Gives the file its name.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.temporary, &self.target).map_err(|source| self.error(source))?;
        self.committed = true;
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error::Io {
            action: "cannot write",
            path: self.named.clone(),
            source,
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// The file a write to `path` lands on: where `path` is a link (to a link ...), the file it
/// points to, so that the link stays and its target gets the new contents.
pub fn landing(path: &Path) -> PathBuf {
    let mut path = path.to_path_buf();
    // As many links as the system itself follows.
    for _ in 0..40 {
        match std::fs::read_link(&path) {
            Ok(target) => {
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                }
            }
            Err(_) => break,
        }
    }
    path
}

/// Checks, before any work is done, that `path` can be written: its directory exists and takes
/// new files, and it does not exist yet unless `overwrite` is set. A link is checked as the
/// file it points to; a device, pipe or socket is refused.
pub fn check_writable(path: &Path, overwrite: bool) -> Result<()> {
    check_name_length(path)?;
    let named = path;
    let path = &landing(named);
    if path.is_dir() {
        return Err(Error::output(named, "is a directory"));
    }
    if path.metadata().is_ok_and(|m| !m.is_file()) {
        return Err(Error::output(
            named,
            "is not a regular file (a device, a pipe or a socket): name a file to write",
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::output(
            named,
            format!("the directory '{}' does not exist", dir.display()),
        ));
    }
    // A link counts as there even when what it points to is not.
    if named.symlink_metadata().is_ok() && !overwrite {
        return Err(Error::output(
            named,
            "already exists; pass --overwrite to replace it",
        ));
    }
    let probe = temporary_path(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            Error::output(
                path,
                format!("cannot create files in '{}': {e}", dir.display()),
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_that_begin_alike_get_temporary_names_of_their_own() {
        let stem = "é".repeat(120);
        let (picture, report) = (format!("{stem}.png"), format!("{stem}.json"));
        let (a, b) = (
            temporary_path(Path::new(&picture)),
            temporary_path(Path::new(&report)),
        );
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert!(t.file_name().unwrap().len() <= NAME_MAX, "{}", t.display());
        }
        // Short names stay as they are; the same long name gives the same name in every run.
        assert_eq!(shortened("clip.mp4", 10), "clip.mp4");
        assert_eq!(shortened(&picture, 10), shortened(&picture, 10));
        assert!(shortened(&picture, 10).len() <= NAME_MAX - 10);
    }
}
