//! Helpers shared by the integration tests: the bundled samples, at small sizes.
#![allow(dead_code)]

pub mod files;
#[cfg(feature = "video")]
pub mod probe;
pub mod reference;

use std::path::{Path, PathBuf};

use image::Rgb32FImage;
use stylize_video::engine::preprocess::{resize, scaled_size, to_network};
use stylize_video::engine::vgg::Vgg19;
use stylize_video::io::image::load;
use tch::{Device, Tensor};

/// Says that a test skips and why, on the terminal even where the test harness captures a
/// passing test's output (it captures the print macros, not writes to the stream itself).
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// A run's JSON report (`--report`).
pub fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `command` with `-o out --report json`, asserts that it succeeded, and returns the run
/// and its report.
pub fn run_with_report(
    command: &mut assert_cmd::Command,
    out: &Path,
    json: &Path,
) -> (assert_cmd::assert::Assert, serde_json::Value) {
    let run = command
        .arg("-o")
        .arg(out)
        .arg("--report")
        .arg(json)
        .assert()
        .success();
    (run, report(json))
}

/// The project's folder: the one the tests were built from, or where they run from when that is
/// gone (the test binaries carried to a GPU machine, `make gpu-bundle`).
pub fn root() -> &'static Path {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"));
    if built.join("samples").is_dir() {
        built
    } else {
        Path::new(".")
    }
}

/// A Big Buck Bunny frame (1280x720).
pub fn frame() -> PathBuf {
    root().join("samples/frames/bigbuckbunny-060.jpg")
}

pub fn van_gogh() -> PathBuf {
    root().join("samples/styles/van-gogh-village-street-auvers.jpg")
}

pub fn hokusai() -> PathBuf {
    root().join("samples/styles/hokusai-great-wave.jpg")
}

pub fn vgg() -> Vgg19 {
    Vgg19::load(&Vgg19::default_weights_path(), Device::Cpu).expect("the shipped weights load")
}

/// `path` scaled to a long edge of `edge` pixels.
pub fn picture(path: &Path, edge: u32) -> Rgb32FImage {
    let image = load(path).unwrap();
    let (w, h) = scaled_size(image.width(), image.height(), edge);
    resize(&image, w, h)
}

/// The first `count` frames (all, if `None`) of the sample clip `name` at a long edge of `edge`
/// pixels, in network space on the CPU.
#[cfg(feature = "video")]
pub fn clip_frames(name: &str, edge: u32, count: Option<usize>) -> Vec<Tensor> {
    use stylize_video::frames::FrameSource;
    let path = root().join("samples/video").join(name);
    let mut source = stylize_video::io::video::decode::VideoSource::open(&path, edge).unwrap();
    std::iter::from_fn(|| source.next_frame().unwrap())
        .take(count.unwrap_or(usize::MAX))
        .map(|f| to_network(&f.image, Device::Cpu))
        .collect()
}

/// `path` scaled to a long edge of `edge` pixels, in network space on the CPU.
pub fn tensor(path: &Path, edge: u32) -> Tensor {
    to_network(&picture(path, edge), Device::Cpu)
}

/// A running binary whose standard error is read as it comes (so that a test can wait for a
/// line, and a full pipe never blocks it).
pub struct Watched {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Watched {
    /// Starts `command` with its standard error piped to the watcher.
    pub fn spawn(command: &mut std::process::Command) -> Self {
        let mut child = command
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = std::io::Read::read(&mut stderr, &mut chunk) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Watched {
            child,
            log,
            reader: Some(reader),
        }
    }

    /// Waits until the standard error holds `needle`; fails after `limit` or if the binary
    /// ends first.
    pub fn wait_for(&mut self, needle: &str, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        while !self.log.lock().unwrap().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "ended ({status}) before saying {needle:?}: {}",
                    self.log.lock().unwrap()
                );
            }
            assert!(start.elapsed() < limit, "no {needle:?} in {limit:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Presses Ctrl-C (SIGINT) once, without waiting.
    pub fn signal(&self) {
        self.send("-INT");
    }

    fn send(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Asks the binary to end (SIGTERM, as a scheduler, `timeout` or `docker stop` do) and
    /// waits for it as [`Watched::interrupt`] does.
    pub fn terminate(self) -> (Option<i32>, String) {
        self.send("-TERM");
        self.end_within(std::time::Duration::from_secs(60))
    }

    /// Presses Ctrl-C (SIGINT) and waits for the binary to end, at most 60 s (then kills it and
    /// fails): its exit code and all it wrote to its standard error.
    pub fn interrupt(self) -> (Option<i32>, String) {
        self.signal();
        self.end_within(std::time::Duration::from_secs(60))
    }

    /// Waits for the binary to end, at most `limit` (then kills it and fails): its exit code
    /// and all it wrote to its standard error.
    pub fn end_within(mut self, limit: std::time::Duration) -> (Option<i32>, String) {
        let asked = std::time::Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if asked.elapsed() > limit {
                self.child.kill().unwrap();
                panic!("still running after {limit:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        self.reader.take().unwrap().join().unwrap();
        let log = self.log.lock().unwrap().clone();
        (status.code(), log)
    }
}

/// Files in `dir` written under a temporary name (`.NAME.partial-PID...`): left behind, they
/// are a defect.
pub fn partials(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".partial-"))
        .collect()
}
