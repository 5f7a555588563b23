//! Videos and frame sequences through the real binary, on the bundled clips at small sizes and
//! few iterations: what comes out is read back and compared with what went in.
#![cfg(feature = "video")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::probe::{colour_tags, ffmpeg_cli, probe, Probe};
use common::*;

fn clip(name: &str) -> PathBuf {
    root().join("samples/video").join(name)
}

/// The binary on a video with quick settings: tiny frames, few iterations.
fn quick(input: &Path, output: &Path) -> Command {
    let mut c = Command::cargo_bin("stylize-video").unwrap();
    c.arg(input)
        .arg("--style")
        .arg(van_gogh())
        .args([
            "--size",
            "48",
            "--first-frame-iterations",
            "8",
            "--iterations",
            "2",
        ])
        .arg("-o")
        .arg(output);
    c
}

/// [`quick`] at its cheapest, for tests of timing and sound: 32 px, one iteration on the first
/// frame and none on the others, written at 160 px.
fn sound_and_timing(input: &Path, output: &Path) -> Command {
    let mut c = quick(input, output);
    c.args([
        "--size",
        "32",
        "--first-frame-iterations",
        "1",
        "--iterations",
        "0",
        "--output-size",
        "160",
    ]);
    c
}

/// A 1 s copy of `source` (video and sound copied) in which the picture, or else the sound,
/// starts 0.3 s after the other.
fn one_stream_late(source: &str, output: &Path, picture_late: bool) {
    let late = ["-itsoffset", "0.3", "-i", source];
    let on_time = ["-i", source];
    let inputs: Vec<&str> = if picture_late {
        late.iter().chain(&on_time).copied().collect()
    } else {
        on_time.iter().chain(&late).copied().collect()
    };
    let rest = ["-map", "0:v", "-map", "1:a", "-t", "1", "-c", "copy"];
    let mut args: Vec<&str> = inputs.into_iter().chain(rest).collect();
    args.push(output.to_str().unwrap());
    ffmpeg_cli(&args);
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_same_times(a: &[f64], b: &[f64]) {
    assert_times_within(a, b, 0.002);
}

fn assert_times_within(a: &[f64], b: &[f64], tolerance: f64) {
    assert_eq!(a.len(), b.len(), "frame counts differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() < tolerance, "frame {i}: {x} s vs {y} s");
    }
}

/// The mean |difference| (0..255) between the first frames of two videos of one size, each
/// as ffmpeg's own tool decodes it (upright, in RGB), through PNG files in `dir`.
fn first_frames_difference(dir: &Path, a: &Path, b: &Path) -> f64 {
    let [first_a, first_b] = [(a, "first-a.png"), (b, "first-b.png")].map(|(video, name)| {
        let png = dir.join(name);
        ffmpeg_cli(&[
            "-i",
            video.to_str().unwrap(),
            "-frames:v",
            "1",
            png.to_str().unwrap(),
        ]);
        image::open(png).unwrap().to_rgb8()
    });
    assert_eq!(first_a.dimensions(), first_b.dimensions());
    first_a
        .as_raw()
        .iter()
        .zip(first_b.as_raw())
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / first_a.as_raw().len() as f64
}

#[test]
fn every_codec_tags_how_its_colours_are_read() {
    let dir = tempfile::tempdir().unwrap();
    // Pictures under 720 lines are converted with BT.601's matrix, larger ones with BT.709's,
    // on the studio range; JPEG's are BT.601 on the full range whatever their size. Players
    // guess when a file does not say (MOV once said nothing of ProRes's colours).
    let sd = ["smpte170m", "tv", "smpte170m", "smpte170m"];
    let hd = ["bt709", "tv", "bt709", "bt709"];
    let jpeg = ["bt470bg", "pc", "smpte170m", "smpte170m"];
    for (codec, name, size, tags) in [
        ("h264", "h264.mp4", "176", sd),
        ("h264", "h264-hd.mp4", "1280", hd),
        ("prores", "prores.mov", "176", sd),
        ("prores", "prores-hd.mov", "1280", hd),
        ("vp9", "vp9.webm", "1280", hd),
        ("ffv1", "ffv1.mkv", "1280", hd),
        ("mjpeg", "mjpeg.mkv", "1280", jpeg),
    ] {
        let out = dir.path().join(name);
        quick(&clip("carphone_pristine.mp4"), &out)
            .args(["--frames", ":2", "--codec", codec, "--output-size", size])
            .assert()
            .success();
        assert_eq!(colour_tags(&out), tags.map(String::from), "{name}");
    }
}

#[test]
fn an_interlaced_source_is_told_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let interlaced = dir.path().join("interlaced.mpg");
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=25:d=0.3",
        "-vf",
        "tinterlace=4",
        "-flags",
        "+ilme+ildct",
        "-top",
        "1",
        "-c:v",
        "mpeg2video",
        interlaced.to_str().unwrap(),
    ]);
    let out = dir.path().join("out.mp4");
    let log = success_log(quick(&interlaced, &out).args(["--frames", ":2"]));
    assert!(
        log.contains("interlaced.mpg: interlaced (top field first)") && log.contains("bwdif"),
        "{log}"
    );
    // A progressive one is not.
    let log = success_log(quick(&clip("carphone_pristine.mp4"), &out).args([
        "--frames",
        ":1",
        "--overwrite",
    ]));
    assert!(!log.contains("interlaced"), "{log}");
}

#[test]
fn the_av1_encoder_s_own_log_stays_off_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let run = |extra: &[&str]| {
        let output = quick(&clip("carphone_pristine.mp4"), &out)
            .args(["--frames", ":2", "--codec", "av1", "--overwrite"])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        assert_eq!(probe(&out).times.len(), 2);
        stderr_of(&output)
    };
    // SVT-AV1 writes a dozen lines of its settings itself, past ffmpeg's log.
    let log = run(&[]);
    assert!(!log.contains("Svt["), "{log}");
    assert!(log.contains("encoding libsvtav1"), "{log}");
    let log = run(&["-q"]);
    assert!(log.is_empty(), "--quiet: {log}");
}

#[test]
fn a_clip_keeps_its_frames_timestamps_duration_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("carphone.stylized.mp4");
    let json = dir.path().join("r.json");
    let output = quick(&clip("carphone_pristine.mp4"), &out)
        .arg("--report")
        .arg(&json)
        .assert()
        .success()
        .get_output()
        .clone();
    let (a, b) = (probe(&clip("carphone_pristine.mp4")), probe(&out));
    assert_eq!(b.times.len(), 120);
    assert_same_times(&a.times, &b.times);
    assert!(
        (a.duration - b.duration).abs() < 0.05,
        "{} vs {}",
        a.duration,
        b.duration
    );
    // The output has the input's size by default (stylised at 48 px, scaled up), in H.264.
    assert_eq!(b.size, (176, 144));
    assert_eq!(b.codec, "h264");
    assert!(b.audio.is_none());
    // No kept frames or temporary file are left once the output is complete.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // The report: one entry per frame, run totals, and the log says how the time went.
    let r = report(&json);
    let frames = r["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 120);
    assert_eq!(frames[0]["iterations"], 8);
    assert_eq!(frames[1]["iterations"], 2);
    assert!(frames
        .iter()
        .all(|f| f["final"]["total"].as_f64().unwrap() <= f["initial"]["total"].as_f64().unwrap()));
    let totals = &r["totals"];
    assert_eq!(totals["frames"], 120);
    assert_eq!(totals["stylized"], 120);
    assert_eq!(totals["first_frame_iterations"], 8);
    assert_eq!(totals["mean_warm_iterations"], 2.0);
    assert!(totals["stylize_seconds"].as_f64().unwrap() <= totals["seconds"].as_f64().unwrap());
    let log = stderr_of(&output);
    assert!(
        log.contains("120 frame(s)") && log.contains("frames/s"),
        "{log}"
    );
}

#[test]
fn big_buck_bunny_keeps_its_sound_and_timing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bbb.mp4");
    quick(&clip("bigbuckbunny.mp4"), &out)
        .args([
            "--size",
            "32",
            "--first-frame-iterations",
            "4",
            "--iterations",
            "1",
        ])
        .args(["--output-size", "320"])
        .assert()
        .success();
    let (a, b) = (probe(&clip("bigbuckbunny.mp4")), probe(&out));
    assert_eq!(b.times.len(), 132);
    assert_same_times(&a.times, &b.times);
    assert_eq!(b.size, (320, 180));
    let (codec, seconds) = b.audio.expect("the sound is kept");
    let (in_codec, in_seconds) = a.audio.unwrap();
    assert_eq!(codec, in_codec);
    assert!(
        (seconds - in_seconds).abs() < 0.03,
        "sound {seconds} s vs {in_seconds} s"
    );
    assert!((a.duration - b.duration).abs() < 0.05);

    // --no-audio leaves it out; a range keeps its frames' times from 0 and the sound with them.
    let part = dir.path().join("part.mkv");
    quick(&clip("bigbuckbunny.mp4"), &part)
        .args([
            "--size",
            "32",
            "--first-frame-iterations",
            "2",
            "--iterations",
            "1",
        ])
        .args(["--output-size", "160", "--frames", "25:50"])
        .assert()
        .success();
    let p = probe(&part);
    assert_eq!(p.times.len(), 25);
    let shifted: Vec<f64> = a.times[25..50].iter().map(|t| t - a.times[25]).collect();
    assert_same_times(&shifted, &p.times);
    let (_, seconds) = p.audio.expect("sound for the range");
    assert!(
        (seconds - 1.0).abs() < 0.1,
        "sound of a 1 s range lasts {seconds} s"
    );

    // WebM cannot hold AAC: the sound is encoded again (Opus), for the same time.
    let webm = dir.path().join("part.webm");
    let log = stderr_of(
        &sound_and_timing(&clip("bigbuckbunny.mp4"), &webm)
            .args(["--frames", ":25"])
            .assert()
            .success()
            .get_output()
            .clone(),
    );
    assert!(log.contains("re-encoded"), "{log}");
    let w = probe(&webm);
    assert_eq!(w.codec, "vp9");
    assert_eq!(w.times.len(), 25);
    let (codec, seconds) = w.audio.expect("sound in the WebM");
    assert_eq!(codec, "opus");
    assert!((seconds - 1.0).abs() < 0.1, "{seconds}");

    // Sound that starts late stays late when it is encoded again.
    let late = dir.path().join("late.mkv");
    let bbb = clip("bigbuckbunny.mp4");
    let bbb = bbb.to_str().unwrap();
    one_stream_late(bbb, &late, false);
    let late_webm = dir.path().join("late.webm");
    sound_and_timing(&late, &late_webm).assert().success();
    let l = probe(&late_webm);
    assert!(
        (l.audio_start - 0.3).abs() < 0.03,
        "sound starts at {}",
        l.audio_start
    );
    assert!(l.times[0].abs() < 0.001);

    // Sound that starts before the first frame is kept, and the picture starts as late as in
    // the source (it used to be cut to the first frame), copied (MP4) or encoded again (WebM).
    let early = dir.path().join("early.mkv");
    one_stream_late(bbb, &early, true);
    let e = probe(&early);
    assert!((e.times[0] - 0.3).abs() < 0.002 && e.audio_start.abs() < 0.002);
    for name in ["early.mp4", "early.webm"] {
        let out = dir.path().join(name);
        let log = success_log(&mut sound_and_timing(&early, &out));
        assert!(
            log.contains("sound starts 0.300 s before the first frame"),
            "{log}"
        );
        let o = probe(&out);
        // Opus's 6.5 ms of encoder delay start the WebM's sound at -6.5 ms (read to the
        // millisecond in `sound_stays_on_its_picture_to_the_millisecond`).
        let gap = o.times[0] - o.audio_start;
        assert!(
            o.audio_start.abs() < 0.01 && (gap - 0.3).abs() < 0.015,
            "{name}: sound starts at {}, the picture {} s later",
            o.audio_start,
            gap
        );
        let from_first = |times: &[f64]| times.iter().map(|t| t - times[0]).collect::<Vec<_>>();
        assert_times_within(&from_first(&e.times), &from_first(&o.times), 0.002);
        let (_, seconds) = o.audio.expect("sound");
        let (_, source_seconds) = e.audio.clone().unwrap();
        assert!(
            (seconds - source_seconds).abs() < 0.05,
            "{name}: {seconds} s of sound, {source_seconds} s in the source"
        );
    }
    // A range that starts later starts with its first frame, sound and picture.
    let later = dir.path().join("later.mkv");
    sound_and_timing(&early, &later)
        .args(["--frames", "5:"])
        .assert()
        .success();
    let r = probe(&later);
    assert!(
        r.times[0].abs() < 0.001 && (r.audio_start - 0.0).abs() < 0.03,
        "{} {}",
        r.times[0],
        r.audio_start
    );

    // PCM sound (AVI) cannot go into MP4: it becomes AAC, all channels kept.
    let pcm = dir.path().join("pcm.avi");
    ffmpeg_cli(&[
        "-i",
        bbb,
        "-t",
        "1",
        "-c:v",
        "mpeg4",
        "-c:a",
        "pcm_s16le",
        pcm.to_str().unwrap(),
    ]);
    let pcm_mp4 = dir.path().join("pcm.mp4");
    sound_and_timing(&pcm, &pcm_mp4).assert().success();
    let (codec, seconds) = probe(&pcm_mp4).audio.expect("sound");
    assert_eq!(codec, "aac");
    assert!((seconds - 1.0).abs() < 0.1, "{seconds}");

    let silent = dir.path().join("silent.mp4");
    sound_and_timing(&clip("bigbuckbunny.mp4"), &silent)
        .args(["--frames", ":10", "--no-audio"])
        .assert()
        .success();
    assert!(probe(&silent).audio.is_none());
}

/// One channel, with the tone (see [`tone_after_one_second`]).
const MONO: (&str, usize, usize) = ("mono", 1, 0);

/// A 2 s clip of 64x36 at 24 fps made by the ffmpeg tool, with sound in `codec` that is silent
/// for 1 s and then a 1 kHz tone, at `rate` Hz: `channels` names ffmpeg's layout, its number of
/// channels and the one (from 0) with the tone.
fn tone_after_one_second(path: &Path, codec: &str, rate: u32, channels: (&str, usize, usize)) {
    let (layout, count, tone_in) = channels;
    let sound: Vec<&str> = (0..count)
        .map(|c| {
            if c == tone_in {
                "if(gte(t,1),sin(2*PI*1000*t),0)"
            } else {
                "0"
            }
        })
        .collect();
    let source = format!("aevalsrc='{}':s={rate}:d=2:c={layout}", sound.join("|"));
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x36:rate=24:duration=2",
        "-f",
        "lavfi",
        "-i",
        &source,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        codec,
        path.to_str().unwrap(),
    ]);
}

/// Seconds from the first frame to the tone, as ffmpeg's tool plays the file: the sound
/// decoded (its codec's delay dropped) at the times the file gives it, to the first sample
/// above -20 dB (silencedetect's end of silence; at -30 dB Opus's pre-echo in surround comes
/// 2 ms ahead of the tone).
fn tone_after_first_frame(path: &Path) -> f64 {
    let log = sound_through(path, "silencedetect=n=-20dB:d=0.05");
    let tone: f64 = log
        .split("silence_end: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{}: no tone found\n{log}", path.display()));
    tone - probe(path).times[0]
}

#[test]
fn sound_stays_on_its_picture_to_the_millisecond() {
    // Each output's tone must come as long after the first frame as in its source (less the
    // frames a range leaves out), to within the millisecond that Matroska rounds times to.
    // Before, it came 6.5 ms early where Opus was written to Matroska or WebM (FFmpeg 5.1's
    // muxer), and where sound with a codec delay was encoded again (it was placed by its
    // packets' times, before the samples its decoder drops).
    let dir = tempfile::tempdir().unwrap();
    let source = |name: &str, codec: &str, rate: u32| {
        let path = dir.path().join(name);
        tone_after_one_second(&path, codec, rate, MONO);
        path
    };
    let aac = source("aac.mp4", "aac", 48000);
    let opus_mp4 = source("opus.mp4", "libopus", 48000);
    // ffmpeg 5.1's tool writes this one's picture 7 ms late (the muxer fault above): copying
    // or encoding again keeps what it holds, neither mending nor adding to it.
    let opus_mkv = source("opus.mkv", "libopus", 48000);
    // Opus was encoded at 8 kHz from it, and FFmpeg 5.1 wrote its codec delay too short (as if
    // at 48 kHz): 5.8 ms late.
    let narrow = source("8khz.mp4", "aac", 8000);
    let cases: [(&Path, &str, &[&str], &str); 8] = [
        (&aac, "aac.webm", &[], "re-encoded as libopus"),
        (&narrow, "8khz.webm", &[], "re-encoded as libopus"),
        (&aac, "aac.mkv", &[], "sound copied"),
        (&opus_mp4, "opus.webm", &[], "sound copied"),
        (&opus_mkv, "opus.mov", &[], "re-encoded as aac"),
        (
            &opus_mkv,
            "opus-range.webm",
            &["--frames", "12:"],
            "sound copied",
        ),
        (
            &opus_mkv,
            "opus-range.mov",
            &["--frames", "12:"],
            "re-encoded as aac",
        ),
        // Cut inside a packet, by the edit list.
        (
            &opus_mp4,
            "opus-range.mp4",
            &["--frames", "13:"],
            "sound copied",
        ),
    ];
    for (input, name, flags, how) in cases {
        let out = dir.path().join(name);
        let log = success_log(sound_and_timing(input, &out).args(flags));
        assert!(log.contains(how), "{name}: {log}");
        // The frames a range leaves out, at 24 fps.
        let skipped = flags.get(1).map_or(0.0, |range| {
            range.trim_end_matches(':').parse::<f64>().unwrap() / 24.0
        });
        let (before, after) = (tone_after_first_frame(input), tone_after_first_frame(&out));
        assert!(
            (after - (before - skipped)).abs() < 0.0015,
            "{name}: the tone comes {after:.4} s after the first frame, {before:.4} s in the source"
        );
        // Copied Opus starts with the source's first packet, which ends after the first frame
        // (its first 6.5 ms are the decoder's to drop): it was left out, and with it 13.5 ms of
        // sound. (AAC's first packet, its priming, ends at the first frame and is left out.)
        if name == "opus.webm" {
            let lead = |p: Probe| p.audio_start - p.times[0];
            let (source_lead, lead) = (lead(probe(input)), lead(probe(&out)));
            assert!(
                (lead - source_lead).abs() < 0.0015,
                "{name}: the sound starts {lead} s after the first frame, {source_lead} s in the source"
            );
        }
    }
}

#[test]
fn a_range_s_sound_starts_with_its_first_frame() {
    // Big Buck Bunny's frame 13 comes at 0.52 s, inside an AAC packet (0.512–0.533 s). A range
    // from it used to start its sound with the next packet, 13 ms after the picture. Now the
    // sound is cut at the start's own sample where it is encoded again, and where it is copied
    // into MP4 or MOV, whose edit list hides the packets' part before it (the packet before goes
    // in too, which the AAC decoder needs to give the first samples right). Matroska and WebM
    // have no such list: a copy there starts with a whole packet, on time.
    let dir = tempfile::tempdir().unwrap();
    let source = clip("bigbuckbunny.mp4");
    let source_sound = mono_samples(&source);
    let range_start = 13 * RATE / 25;
    // AAC's packets: 1024 samples, the 26th from 0.533 s.
    let packet = 1024;
    for (name, how) in [
        ("range.mp4", "sound copied"),
        ("range.mov", "sound copied"),
        ("range.webm", "re-encoded as libopus"),
        ("range.mkv", "sound copied"),
    ] {
        let out = dir.path().join(name);
        let log = success_log(sound_and_timing(&source, &out).args(["--frames", "13:25"]));
        assert!(log.contains(how), "{name}: {log}");
        let start = first_sound_time(&out) - probe(&out).times[0];
        let sound = mono_samples(&out);
        // Where the output's first sample is in the source: the first packet that starts in
        // the range (0.533 s), in Matroska, whose times are whole milliseconds.
        let first = if name == "range.mkv" {
            25 * packet - range_start
        } else {
            0
        };
        assert!(
            (start - first as f64 / RATE as f64).abs() < 0.001,
            "{name}: the sound starts {start:.4} s after the first frame"
        );
        let expected = &source_sound[range_start + first..];
        if how == "sound copied" {
            // Decoded from the same packets, every sample is the source's; in Matroska from the
            // second packet on (the decoder gives the first one's 12 ms without the packet
            // before it).
            let from = if name == "range.mkv" { packet } else { 0 };
            let differs = (from..sound.len().min(expected.len()))
                .find(|&i| (sound[i] - expected[i]).abs() > 1e-4);
            assert_eq!(differs, None, "{name}: sample {differs:?} differs");
        } else {
            // Encoded again, the sound lines up with the source's within 0.1 ms, 50–75 ms in
            // (searched over 1.3 ms either way).
            let window = 2400..3600;
            let error = |lag: isize| {
                window
                    .clone()
                    .map(|i| (sound[i] - expected[(i as isize + lag) as usize]).powi(2))
                    .sum::<f32>()
            };
            let best = (-64..64).min_by(|a, b| error(*a).total_cmp(&error(*b)));
            assert!(
                best.is_some_and(|lag| lag.abs() <= 5),
                "{name}: the sound is {best:?} samples off the source's"
            );
        }
    }
}

/// The sample rate of [`mono_samples`].
const RATE: usize = 48000;

/// `path`'s sound as ffmpeg's tool decodes it, mixed to one channel at 48 kHz, from its first
/// sample (after what an edit list hides).
fn mono_samples(path: &Path) -> Vec<f32> {
    let run = Process::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-ac", "1", "-ar", &RATE.to_string()])
        .args(["-f", "f32le", "-"])
        .output()
        .expect("the ffmpeg tool (make test installs it)");
    assert!(run.status.success(), "{}: {run:?}", path.display());
    run.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The time (seconds) of `path`'s first decoded sound, as ffmpeg's tool plays it.
fn first_sound_time(path: &Path) -> f64 {
    let log = sound_through(path, "ashowinfo");
    log.split("pts_time:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{}: no sound frame\n{log}", path.display()))
}

/// What ffmpeg's tool logs of `path`'s sound, decoded at the times the file gives it and passed
/// through the measuring `filter`.
fn sound_through(path: &Path, filter: &str) -> String {
    let run = Process::new("ffmpeg")
        .args(["-nostats", "-copyts", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-af", filter, "-f", "null", "-"])
        .output()
        .expect("the ffmpeg tool (make test installs it)");
    String::from_utf8_lossy(&run.stderr).into_owned()
}

/// The RMS level (dB) of each channel of `path`'s sound, as ffmpeg's tool decodes it.
fn channel_levels(path: &Path) -> Vec<f64> {
    sound_through(
        path,
        "astats=measure_overall=none:measure_perchannel=RMS_level",
    )
    .lines()
    .filter_map(|l| l.split("RMS level dB: ").nth(1))
    .map(|v| v.trim().parse().unwrap_or(f64::NEG_INFINITY))
    .collect()
}

#[test]
fn surround_with_side_channels_becomes_opus_with_every_channel_in_place() {
    // AC-3 5.1 (side), as on most films, into WebM: libopus takes 5.1 only with back channels,
    // and it was refused ("Invalid channel layout 5.1(side)"); the side channels now go to the
    // back ones, each sound where it was.
    let dir = tempfile::tempdir().unwrap();
    let ac3 = dir.path().join("side.mkv");
    // FL FR FC LFE SL SR, the tone in the left side channel.
    tone_after_one_second(&ac3, "ac3", 48000, ("5.1(side)", 6, 4));
    let out = dir.path().join("side.webm");
    let log = success_log(&mut sound_and_timing(&ac3, &out));
    assert!(log.contains("re-encoded as libopus"), "{log}");
    assert_eq!(probe(&out).audio.expect("sound").0, "opus");
    // FL FR FC LFE BL BR: only the back left channel holds the tone (a full sine: -3 dB RMS
    // over its half of the clip, -6 dB over the whole).
    let levels = channel_levels(&out);
    assert_eq!(levels.len(), 6, "{levels:?}");
    for (channel, level) in levels.iter().enumerate() {
        if channel == 4 {
            assert!(
                (level + 6.0).abs() < 1.0,
                "back left at {level} dB: {levels:?}"
            );
        } else {
            assert!(
                *level < -60.0,
                "channel {channel} at {level} dB: {levels:?}"
            );
        }
    }
    let (before, after) = (tone_after_first_frame(&ac3), tone_after_first_frame(&out));
    assert!(
        (after - before).abs() < 0.0015,
        "{after} s against {before} s"
    );
}

#[test]
fn sound_a_container_refuses_as_it_is_is_encoded_again() {
    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("flac.mkv");
    ffmpeg_cli(&[
        "-i",
        clip("bigbuckbunny.mp4").to_str().unwrap(),
        "-t",
        "1",
        "-c:v",
        "copy",
        "-c:a",
        "flac",
        flac.to_str().unwrap(),
    ]);
    assert_eq!(probe(&flac).audio.unwrap().0, "flac");
    // MP4 and MOV say they hold FLAC, then refuse it when the file starts.
    for name in ["o.mp4", "o.mov"] {
        let out = dir.path().join(name);
        let log = success_log(quick(&flac, &out).args(["--frames", ":3"]));
        assert!(log.contains("sound re-encoded as aac"), "{log}");
        assert_eq!(probe(&out).audio.unwrap().0, "aac", "{name}");
    }
    // MKV takes it as it is.
    let out = dir.path().join("o.mkv");
    let log = success_log(quick(&flac, &out).args(["--frames", ":3"]));
    assert!(log.contains("sound copied"), "{log}");
    assert!(!log.contains("left out"), "{log}");
    // Copied whole packets (of 0.096 s) that start within the 3 frames' 0.12 s, no more.
    let (codec, seconds) = probe(&out).audio.unwrap();
    assert_eq!(codec, "flac");
    assert!((seconds - 0.192).abs() < 0.001, "{seconds} s of sound");
    // Opus takes 48, 24, 16, 12 or 8 kHz: sound at 22050 Hz is resampled to 48 kHz (it was
    // negotiated to 0 Hz and refused), and lasts as long as the frames.
    let low = dir.path().join("22050.mp4");
    ffmpeg_cli(&[
        "-i",
        flac.to_str().unwrap(),
        "-c:v",
        "copy",
        "-c:a",
        "aac",
        "-ar",
        "22050",
        low.to_str().unwrap(),
    ]);
    let out = dir.path().join("22050.webm");
    let log = success_log(quick(&low, &out).args(["--frames", ":12", "--output-size", "128"]));
    assert!(log.contains("sound re-encoded as libopus"), "{log}");
    let written = probe(&out);
    let (codec, seconds) = written.audio.unwrap();
    assert_eq!(codec, "opus");
    assert!(
        (seconds - 0.48).abs() < 0.05,
        "{seconds} s of sound for 12 frames at 25 fps"
    );
    // Of two tracks, one is kept, and the log says so.
    let two = dir.path().join("two.mkv");
    ffmpeg_cli(&[
        "-i",
        flac.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "0:a",
        "-map",
        "0:a",
        "-c",
        "copy",
        two.to_str().unwrap(),
    ]);
    let log = success_log(quick(&two, &dir.path().join("two-out.mkv")).args(["--frames", ":3"]));
    assert!(log.contains("1 other sound track(s) left out"), "{log}");
}

#[test]
fn h265_in_mp4_is_tagged_for_apple_players() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["h.mp4", "h.mov"] {
        let out = dir.path().join(name);
        quick(&clip("carphone_pristine.mp4"), &out)
            .args(["--codec", "h265", "--frames", ":2"])
            .assert()
            .success();
        let tag = Process::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-show_entries"])
            .args(["stream=codec_name,codec_tag_string", "-of", "csv=p=0"])
            .arg(&out)
            .output()
            .expect("ffprobe (make test installs it)");
        assert_eq!(String::from_utf8_lossy(&tag.stdout).trim(), "hevc,hvc1");
    }
}

/// Mean and standard deviation of a picture's values, in 0..1.
fn mean_and_deviation(picture: &image::RgbImage) -> (f64, f64) {
    let values: Vec<f64> = picture
        .as_raw()
        .iter()
        .map(|&v| f64::from(v) / 255.0)
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    (mean, variance.sqrt())
}

#[test]
fn encoders_of_older_standards_take_any_source_and_a_refused_output_costs_no_painting() {
    let dir = tempfile::tempdir().unwrap();
    // A transport stream: times in 1/90000 s, which MPEG-4 Part 2 and MPEG-2 refuse. Square
    // pixels, so that the painted frames (kept below) have the output's shape.
    let ts = dir.path().join("carphone.ts");
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "5",
        "-vf",
        "setsar=1",
        "-c:v",
        "libx264",
        ts.to_str().unwrap(),
    ]);
    let source = probe(&ts).times;
    let every: Vec<f64> = source.iter().map(|t| t - source[0]).collect();
    assert_eq!(every.len(), 5);
    for codec in ["mpeg4", "mpeg2video"] {
        let out = dir.path().join(format!("{codec}.mkv"));
        let log = success_log(quick(&ts, &out).args(["--codec", codec]));
        assert!(
            log.contains("refuses the source's time base 1/90000")
                && log.contains("frame period 1001/30000"),
            "{log}"
        );
        assert_same_times(&every, &probe(&out).times);
    }
    // Motion JPEG takes full-range pictures only; its colours are those of the painted frames.
    let out = dir.path().join("mjpeg.mkv");
    quick(&ts, &out)
        .args(["--codec", "mjpeg", "--size", "64", "--output-size", "64"])
        .arg("--keep-frames")
        .assert()
        .success();
    let decoded = dir.path().join("mjpeg-first.png");
    ffmpeg_cli(&[
        "-i",
        out.to_str().unwrap(),
        "-frames:v",
        "1",
        "-pix_fmt",
        "rgb24",
        decoded.to_str().unwrap(),
    ]);
    let painted = image::open(dir.path().join("mjpeg.mkv.frames/000000.png"))
        .unwrap()
        .to_rgb8();
    // Studio-range pictures read as full range (or the reverse) would change the contrast by
    // 14 %; the 4:2:0 chroma alone changes it by 1 % here.
    let decoded = image::open(&decoded).unwrap().to_rgb8();
    assert_eq!(decoded.dimensions(), painted.dimensions());
    let ((m, d), (pm, pd)) = (mean_and_deviation(&decoded), mean_and_deviation(&painted));
    assert!((m - pm).abs() < 0.01, "mean {m} vs {pm}");
    assert!((d / pd - 1.0).abs() < 0.03, "deviation {d} vs {pd}");

    // A container that refuses a codec only when the file starts (VP9 in MOV) is tried before
    // any work, and says why in ffmpeg's words.
    let out = dir.path().join("vp9.mov");
    let log = failure_log(quick(&ts, &out).args(["--codec", "vp9"]));
    assert!(
        log.contains("vp9.mov") && log.contains("vp9 only supported in MP4"),
        "{log}"
    );
    assert!(!dir.path().join("vp9.mov.frames").exists());
    // An encoder that refuses the source's frame rate (MPEG-2 takes only its standard's) is
    // opened when the first frame is decoded, before it is painted: nothing is kept.
    let odd = dir.path().join("19fps.mkv");
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "3",
        "-r",
        "19",
        "-c:v",
        "libx264",
        odd.to_str().unwrap(),
    ]);
    let out = dir.path().join("mpeg2.mkv");
    let log = failure_log(quick(&odd, &out).args(["--codec", "mpeg2video"]));
    assert!(
        log.contains("mpeg2.mkv") && log.contains("MPEG-1/2 does not support"),
        "{log}"
    );
    assert!(!dir.path().join("mpeg2.mkv.frames").exists());
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn an_animated_gif_is_painted_frame_by_frame_not_as_a_still() {
    let dir = tempfile::tempdir().unwrap();
    let gif = common::files::gif_of(dir.path(), "wave.gif", 3);
    // As a still it would lose all but its first frame: refused, with what to do instead.
    let mut still = Command::cargo_bin("stylize-video").unwrap();
    still
        .arg(&gif)
        .arg("--style")
        .arg(van_gogh())
        .args(["--size", "48", "--iterations", "2", "-o"])
        .arg(dir.path().join("wave.png"));
    let log = failure_log(&mut still);
    assert!(
        log.contains("wave.gif")
            && log.contains("an animated picture")
            && log.contains("-o clip.mp4"),
        "{log}"
    );
    assert!(!dir.path().join("wave.png").exists());
    // So it is with a video's flag too, which was refused first as one an image ignores.
    let log = failure_log(still.args(["--first-frame-iterations", "3"]));
    assert!(log.contains("an animated picture"), "{log}");
    // As the message says: every frame into a video.
    let out = dir.path().join("wave.mp4");
    quick(&gif, &out).assert().success();
    assert_eq!(probe(&out).times.len(), 3);
    // An animated WebP, which ffmpeg cannot decode, gets the advice that works.
    let webp = dir.path().join("wave.webp");
    ffmpeg_cli(&[
        "-i",
        gif.to_str().unwrap(),
        "-loop",
        "0",
        webp.to_str().unwrap(),
    ]);
    let log = failure_log(&mut quick(&webp, &dir.path().join("webp.mp4")));
    assert!(
        log.contains("wave.webp") && log.contains("an animated WebP, which ffmpeg cannot decode"),
        "{log}"
    );
}

#[test]
fn a_video_is_taken_for_a_video_whatever_its_name_or_output() {
    let dir = tempfile::tempdir().unwrap();
    // A percent sign followed by d is no frame pattern in a video's name.
    let named = dir.path().join("100%done.mp4");
    std::fs::copy(clip("carphone_pristine.mp4"), &named).unwrap();
    let out = dir.path().join("done.mp4");
    quick(&named, &out)
        .args(["--frames", ":2"])
        .assert()
        .success();
    assert_eq!(probe(&out).times.len(), 2);
    // A name of 250 bytes, the most that leaves room for nothing else: its kept frames'
    // folder and temporary file get shortened names, and nothing is left beside it.
    let long = dir.path().join(format!("{}.mp4", "ü".repeat(123)));
    quick(&named, &long)
        .args(["--frames", ":2"])
        .assert()
        .success();
    assert_eq!(probe(&long).times.len(), 2);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    // A video asked for a picture is told what it can be written to, not that it is no image.
    let log = failure_log(&mut quick(&named, &dir.path().join("still.png")));
    assert!(
        log.contains("still.png")
            && log.contains("use .mp4, .mkv, .mov or .webm, or a frame pattern"),
        "{log}"
    );
}

#[test]
fn a_raw_stream_without_timestamps_keeps_its_frame_rate() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.h264");
    // An elementary stream: its frames carry no timestamps, only the stream its rate
    // (carphone's 30000/1001).
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "6",
        "-c:v",
        "libx264",
        raw.to_str().unwrap(),
    ]);
    let out = dir.path().join("raw.mp4");
    quick(&raw, &out).assert().success();
    let every: Vec<f64> = (0..6).map(|i| i as f64 * 1001.0 / 30000.0).collect();
    assert_same_times(&every, &probe(&out).times);
}

#[test]
fn millisecond_times_of_29_97_fps_come_out_on_the_frame_grid() {
    // Matroska keeps carphone's 30000/1001 s frame period as 33 or 34 ms in turn; copied as
    // such an MP4 plays at a jittering, variable rate. Put back on the grid, as ffmpeg does.
    let dir = tempfile::tempdir().unwrap();
    let mkv = dir.path().join("ntsc.mkv");
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "12",
        "-c:v",
        "libx264",
        mkv.to_str().unwrap(),
    ]);
    let stored = probe(&mkv).times;
    assert_eq!(stored[1], 0.033, "Matroska's millisecond times");
    let grid = |n: usize| -> Vec<f64> { (0..n).map(|i| i as f64 * 1001.0 / 30000.0).collect() };
    let on_grid = |times: &[f64], expected: &[f64]| assert_times_within(expected, times, 1e-6);
    for container in ["mp4", "mov"] {
        let out = dir.path().join(format!("ntsc.{container}"));
        let json = dir.path().join(format!("{container}.json"));
        let run = quick(&mkv, &out)
            .arg("--report")
            .arg(&json)
            .assert()
            .success();
        let log = stderr_of(&run.get_output().clone());
        assert!(log.contains("29.970 fps grid"), "{log}");
        // The report keeps what the log said.
        let warnings = report(&json)["warnings"].clone();
        assert!(
            warnings
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("29.970 fps grid")),
            "{warnings}"
        );
        let written = probe(&out);
        on_grid(&written.times, &grid(12));
        assert!(
            (written.duration - 12.0 * 1001.0 / 30000.0).abs() < 1e-3,
            "{container}: {} s",
            written.duration
        );
    }
    // A range starts its grid at its first frame.
    let part = dir.path().join("part.mp4");
    quick(&mkv, &part)
        .args(["--frames", "5:9"])
        .assert()
        .success();
    on_grid(&probe(&part).times, &grid(4));
}

#[test]
fn an_odd_sized_variable_rate_clip_keeps_every_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let vfr = dir.path().join("vfr.mkv");
    // 175x143 with non-square (4:3) pixels, with irregular gaps between frames.
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "24",
        "-vf",
        "scale=175:143,setsar=4/3,setpts='(N+floor(N/4)*0.7)/(25*TB)'",
        "-fps_mode",
        "passthrough",
        "-c:v",
        "ffv1",
        vfr.to_str().unwrap(),
    ]);
    let a = probe(&vfr);
    let gaps: Vec<f64> = a.times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().cloned().fold(0.0, f64::max) > 1.5 * gaps.iter().cloned().fold(1.0, f64::min)
    );

    let even = dir.path().join("even.mp4");
    let output = quick(&vfr, &even).assert().success().get_output().clone();
    let b = probe(&even);
    assert_same_times(&a.times, &b.times);
    assert_eq!(b.size, (176, 144));
    assert!(
        stderr_of(&output).contains("175x143 is odd"),
        "{}",
        stderr_of(&output)
    );

    let exact = dir.path().join("exact.mkv");
    quick(&vfr, &exact)
        .args(["--pix-fmt", "yuv444p"])
        .assert()
        .success();
    let c = probe(&exact);
    assert_same_times(&a.times, &c.times);
    assert_eq!(c.size, (175, 143));
    assert_eq!(a.sample_aspect_ratio, (4, 3));
    assert_eq!(b.sample_aspect_ratio, (4, 3));
    assert_eq!(c.sample_aspect_ratio, (4, 3));

    // Frames 0, 1, 3, 6, ... of 30000/1001: the last lasts 1001/30000 s, not a frame at the
    // average rate (11.8 fps): the clip keeps its length.
    let dropped = dir.path().join("dropped.mp4");
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-t",
        "1",
        "-vf",
        "select='not(mod(n\\,3))+eq(n\\,1)'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        dropped.to_str().unwrap(),
    ]);
    let source = probe(&dropped);
    let out = dir.path().join("dropped-out.mp4");
    quick(&dropped, &out).assert().success();
    let written = probe(&out);
    assert_same_times(&source.times, &written.times);
    assert!(
        (written.duration - source.duration).abs() < 0.002,
        "{} s against the source's {} s",
        written.duration,
        source.duration
    );
}

#[test]
fn a_rotated_phone_clip_comes_out_upright() {
    let dir = tempfile::tempdir().unwrap();
    let rotated = dir.path().join("portrait.mp4");
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "6",
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        rotated.to_str().unwrap(),
    ]);
    assert!(probe(&rotated).rotated);
    // No optimisation: the output is the input, turned upright by us.
    let out = dir.path().join("upright.mkv");
    quick(&rotated, &out)
        .args([
            "--size",
            "176",
            "--first-frame-iterations",
            "0",
            "--iterations",
            "0",
        ])
        .args(["--codec", "ffv1", "--pix-fmt", "yuv444p"])
        .assert()
        .success();
    let b = probe(&out);
    assert_eq!(b.size, (144, 176));
    assert!(!b.rotated);
    // ffmpeg's own upright decoding of the input agrees with ours.
    let diff = first_frames_difference(dir.path(), &rotated, &out);
    assert!(diff < 3.0, "mean difference {diff}");
}

#[test]
fn an_anamorphic_clip_is_painted_as_it_is_seen() {
    // Pixels twice as wide as high (a 2x anamorphic squeeze): shown 352x144. Painted in the
    // stored pixels, every brush stroke would come out twice as wide on screen.
    let dir = tempfile::tempdir().unwrap();
    let squeezed = dir.path().join("squeezed.mkv");
    ffmpeg_cli(&[
        "-i",
        clip("carphone_pristine.mp4").to_str().unwrap(),
        "-frames:v",
        "3",
        "-vf",
        "setsar=2",
        "-c:v",
        "ffv1",
        squeezed.to_str().unwrap(),
    ]);
    let out = dir.path().join("out.mkv");
    let json = dir.path().join("r.json");
    quick(&squeezed, &out)
        .args([
            "--size",
            "176",
            "--first-frame-iterations",
            "0",
            "--iterations",
            "0",
        ])
        .args(["--codec", "ffv1", "--pix-fmt", "yuv444p", "--report"])
        .arg(&json)
        .assert()
        .success();
    let settings = report(&json)["settings"].clone();
    assert_eq!(
        (
            settings["processing_width"].as_u64(),
            settings["processing_height"].as_u64()
        ),
        (Some(176), Some(72)),
        "square pixels at the display shape"
    );
    // Written back in the source's own pixels and aspect.
    let b = probe(&out);
    assert_eq!(b.size, (176, 144));
    assert_eq!(b.sample_aspect_ratio, (2, 1));
    // Without optimisation the picture is the source's, through the processing size.
    let diff = first_frames_difference(dir.path(), &squeezed, &out);
    assert!(diff < 6.0, "mean difference {diff}");
}

#[test]
fn frame_sequences_go_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Video to PNG frames, numbered from 0.
    let frames = d.join("frames");
    quick(&clip("carphone_pristine.mp4"), &frames.join("%04d.png"))
        .args(["--frames", "0:8"])
        .assert()
        .success();
    let names: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(&frames)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names,
        (0..8).map(|i| format!("{i:04}.png")).collect::<Vec<_>>()
    );
    let first = image::open(frames.join("0000.png")).unwrap();
    assert_eq!((first.width(), first.height()), (176, 144));

    // Those frames (a folder) back to a 29.97 fps video.
    let back = d.join("back.mp4");
    quick(&frames, &back)
        .args(["--fps", "29.97"])
        .assert()
        .success();
    let b = probe(&back);
    assert_eq!(b.times.len(), 8);
    assert!(
        (b.times[7] - 7.0 * 1001.0 / 30000.0).abs() < 0.002,
        "{:?}",
        b.times
    );

    // Kept frames of a sequence input are tied to its files: a changed frame is noticed.
    let again_dir = d.join("kept-test");
    let run = || {
        let mut c = quick(&frames.join("%04d.png"), &again_dir.join("%04d.png"));
        c.args(["--keep-frames", "--frames", ":3"]);
        c
    };
    run().assert().success();
    let log = stderr_of(&run().assert().success().get_output().clone());
    assert!(log.contains("resuming: 3 finished frame(s)"), "{log}");
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::copy(frames.join("0005.png"), frames.join("0001.png")).unwrap();
    // It is painted again, with the frame after it (which starts from it); the first stays.
    let log = stderr_of(&run().assert().success().get_output().clone());
    assert!(
        log.contains("frame 1 of the output: its input")
            && log.contains("0001.png' changed")
            && log.contains("(1 resumed, 2 stylised)"),
        "{log}"
    );
    // Other settings: starting over replaces the frames written before, so it needs
    // --overwrite as well as --restart, and without it discards nothing: the first command
    // still resumes.
    let refused = run()
        .args(["--iterations", "3", "--restart"])
        .assert()
        .failure()
        .get_output()
        .clone();
    let log = stderr_of(&refused);
    assert!(
        log.contains("pass --overwrite too") && log.contains("nothing was discarded"),
        "{log}"
    );
    let log = stderr_of(&run().assert().success().get_output().clone());
    assert!(log.contains("resuming: 3 finished frame(s)"), "{log}");
    // With it, the kept frames go; and the second time, with the same settings, too.
    for _ in 0..2 {
        let log = stderr_of(
            &run()
                .args(["--iterations", "3", "--restart", "--overwrite"])
                .assert()
                .success()
                .get_output()
                .clone(),
        );
        assert!(
            log.contains("--restart: discarded") && !log.contains("resuming"),
            "{log}"
        );
    }

    // A pattern to 16-bit PNGs, keeping the input's numbers, and to EXR.
    let deep = d.join("deep");
    quick(&frames.join("%04d.png"), &deep.join("f%03d.png"))
        .args(["--bit-depth", "16", "--frames", "2:5"])
        .assert()
        .success();
    let f = image::open(deep.join("f002.png")).unwrap();
    assert_eq!(f.color(), image::ColorType::Rgb16);
    assert!(deep.join("f004.png").is_file() && !deep.join("f005.png").exists());
    let exr = d.join("exr");
    quick(&frames, &exr.join("%04d.exr"))
        .args(["--frames", ":2"])
        .assert()
        .success();
    let e = stylize_video::io::image::load(&exr.join("0001.exr")).unwrap();
    assert_eq!(e.dimensions(), (176, 144));
    // An EXR sequence reads back as it was written (sRGB in, linear in the file, sRGB out).
    let again = d.join("again");
    quick(&exr.join("%04d.exr"), &again.join("%04d.png"))
        .args([
            "--first-frame-iterations",
            "0",
            "--iterations",
            "0",
            "--size",
            "176",
        ])
        .assert()
        .success();
    let png = stylize_video::io::image::load(&again.join("0000.png")).unwrap();
    let src = stylize_video::io::image::load(&exr.join("0000.exr")).unwrap();
    let worst = png
        .as_raw()
        .iter()
        .zip(src.as_raw())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 0.02, "{worst}");
}

#[test]
fn a_size_too_small_for_a_clip_s_shape_says_which_size_would_do() {
    // bikes is 2.35:1: at --size 32 its frames would be 14 pixels high, below VGG19's 16. A still
    // was told which size would do; a video or sequence got "--size = 32x14: images must be at
    // least 16x16 pixels", naming neither the file nor a fix, after opening its output.
    let dir = tempfile::tempdir().unwrap();
    let bikes = clip("bikes.mp4");
    let plates = dir.path().join("plates");
    std::fs::create_dir(&plates).unwrap();
    ffmpeg_cli(&[
        "-i",
        bikes.to_str().unwrap(),
        "-frames:v",
        "2",
        "-vf",
        "scale=640:272",
        plates.join("%04d.png").to_str().unwrap(),
    ]);
    let pattern = plates.join("%04d.png");
    for (input, output) in [
        (bikes, dir.path().join("bikes.stylized.mp4")),
        (pattern, dir.path().join("out").join("%04d.png")),
    ] {
        let log = failure_log(quick(&input, &output).args(["--size", "32"]));
        let expected = format!(
            "--size = 32: '{}' would be processed at 32x14; each side must be 16 to 16384 \
             pixels: a long edge of at least 37 pixels would do",
            input.display()
        );
        assert!(log.contains(&expected), "{log}");
        // Nothing is left behind: no output, no folder of kept frames.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["plates"], "{log}");
    }
}

#[test]
fn broken_and_unusable_videos_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = d.join("notes.mp4");
    std::fs::write(&text, "not a video at all\n").unwrap();
    let sound = d.join("sound.m4a");
    ffmpeg_cli(&[
        "-i",
        clip("bigbuckbunny.mp4").to_str().unwrap(),
        "-vn",
        "-c",
        "copy",
        sound.to_str().unwrap(),
    ]);
    // An MP3 with cover art: ffmpeg lists the picture as a one-frame video stream, which was
    // painted into a video of one frame lasting 11 microseconds.
    let cover = d.join("cover.png");
    image::RgbImage::from_pixel(64, 64, image::Rgb([200, 120, 40]))
        .save(&cover)
        .unwrap();
    let song = d.join("song.mp3");
    ffmpeg_cli(&[
        "-i",
        sound.to_str().unwrap(),
        "-i",
        cover.to_str().unwrap(),
        "-map",
        "0:a",
        "-map",
        "1",
        "-t",
        "1",
        "-c:a",
        "libmp3lame",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        song.to_str().unwrap(),
    ]);
    let out = d.join("out.mp4");
    let cases: Vec<(PathBuf, Vec<&str>, Vec<&str>)> = vec![
        (text.clone(), vec![], vec!["notes.mp4", "not a video"]),
        (
            song.clone(),
            vec![],
            vec!["song.mp3", "only a cover picture", "cover.png"],
        ),
        (
            d.join("missing.mp4"),
            vec![],
            vec!["missing.mp4", "no such file"],
        ),
        (sound.clone(), vec![], vec!["sound.m4a", "no video stream"]),
        (
            clip("carphone_pristine.mp4"),
            vec!["--frames", "500:"],
            vec!["--frames", "no frame in this range"],
        ),
        (
            clip("carphone_pristine.mp4"),
            vec!["--frames", "9:3"],
            vec!["--frames", "end must come after"],
        ),
    ];
    for (input, extra, expected) in cases {
        let output = quick(&input, &out)
            .args(&extra)
            .assert()
            .failure()
            .code(1)
            .get_output()
            .clone();
        let log = stderr_of(&output);
        for needle in expected {
            assert!(log.contains(needle), "{input:?} {extra:?}: {log}");
        }
        assert!(!out.exists());
    }
    // A container that cannot hold the codec, named with both.
    let webm = d.join("out.webm");
    let log = stderr_of(
        &quick(&clip("carphone_pristine.mp4"), &webm)
            .args(["--codec", "h264", "--frames", ":2"])
            .assert()
            .failure()
            .get_output()
            .clone(),
    );
    assert!(
        log.contains("--codec = h264")
            && log.contains("webm container")
            && log.contains("cannot hold it"),
        "{log}"
    );
    assert!(!log.contains("frame(s)"), "refused before any frame: {log}");
    assert!(!webm.exists());
    // An unwritable place.
    let log = stderr_of(
        &quick(&clip("carphone_pristine.mp4"), Path::new("/proc/out.mp4"))
            .assert()
            .failure()
            .get_output()
            .clone(),
    );
    assert!(log.contains("/proc/out.mp4"), "{log}");
}

/// Every timecode a file holds, as ffmpeg's tool reads them: the video stream's tag, a timecode
/// track's, the file's.
fn timecodes(path: &Path) -> Vec<String> {
    let run = Process::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args(["stream=codec_type:stream_tags=timecode:format_tags=timecode"])
        .args(["-of", "compact"])
        .arg(path)
        .output()
        .expect("ffprobe (make test installs it)");
    String::from_utf8_lossy(&run.stdout)
        .split(['|', '\n'])
        .filter_map(|field| {
            let (key, value) = field.split_once('=')?;
            key.eq_ignore_ascii_case("tag:timecode")
                .then(|| value.trim().to_string())
        })
        .collect()
}

#[test]
fn a_source_s_timecode_carries_on_from_the_first_frame_written() {
    // Editors lay a rendered shot over the original by its timecode: it was left out.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = d.join("shot.mov");
    let bbb = clip("bigbuckbunny.mp4");
    ffmpeg_cli(&[
        "-i",
        bbb.to_str().unwrap(),
        "-t",
        "2",
        "-c",
        "copy",
        "-timecode",
        "01:00:00:00",
        source.to_str().unwrap(),
    ]);
    assert_eq!(timecodes(&source), ["01:00:00:00", "01:00:00:00"]);
    // QuickTime and MP4 as a timecode track (and the video stream's tag, as ffmpeg reads it),
    // Matroska as a tag; a range starts it at its first frame (25 fps: frame 12 is 12 frames
    // on, 30 is 1 s and 5 frames).
    let cases: [(&Path, &str, &str, [&str; 2]); 4] = [
        (&source, "all.mov", ":3", ["01:00:00:00", "01:00:00:00"]),
        (&source, "part.mp4", "12:15", ["01:00:00:12", "01:00:00:12"]),
        (&source, "part.mkv", "30:33", ["01:00:01:05", ""]),
        (
            &d.join("part.mkv"),
            "again.mov",
            "2:4",
            ["01:00:01:07", "01:00:01:07"],
        ),
    ];
    for (input, name, range, expected) in cases {
        let out = d.join(name);
        sound_and_timing(input, &out)
            .args(["--frames", range])
            .assert()
            .success();
        let expected: Vec<&str> = expected.into_iter().filter(|t| !t.is_empty()).collect();
        assert_eq!(timecodes(&out), expected, "{name}");
    }
    // Drop-frame timecode at 29.97 fps skips frames 0 and 1 of each minute but every tenth.
    let ntsc = d.join("ntsc.mov");
    ffmpeg_cli(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x36:rate=30000/1001:duration=0.5",
        "-c:v",
        "libx264",
        "-timecode",
        "00:00:59;28",
        ntsc.to_str().unwrap(),
    ]);
    let out = d.join("ntsc-part.mov");
    sound_and_timing(&ntsc, &out)
        .args(["--frames", "3:5"])
        .assert()
        .success();
    assert_eq!(timecodes(&out), ["00:01:00;03", "00:01:00;03"]);
}

#[test]
fn a_damaged_clip_gives_what_can_be_decoded_and_reports_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(clip("carphone_pristine.mp4")).unwrap();
    // Garbage over a stretch in the middle of the picture data.
    let middle = bytes.len() / 2;
    for (i, b) in bytes[middle..middle + 40_000].iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    let damaged = dir.path().join("damaged.mp4");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = dir.path().join("out.mp4");
    let output = quick(&damaged, &out)
        .assert()
        .success()
        .get_output()
        .clone();
    let log = stderr_of(&output);
    assert!(log.contains("damaged"), "{log}");
    let frames = probe(&out).times.len();
    assert!(frames > 60, "only {frames} frames");

    // Cut in half, its index first (as a streaming MP4 has it): the first half decodes and
    // is written, and the log and the report say how many frames of the 120 the header counts
    // are missing (before, only "1 damaged packet" early in the log).
    let streaming = dir.path().join("streaming.mp4");
    let source = clip("carphone_pristine.mp4");
    ffmpeg_cli(&[
        "-i",
        source.to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        streaming.to_str().unwrap(),
    ]);
    let cut = dir.path().join("cut.mp4");
    let whole = std::fs::read(&streaming).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out2 = dir.path().join("out2.mp4");
    let report = dir.path().join("cut.json");
    let output = quick(&cut, &out2)
        .arg("--report")
        .arg(&report)
        .assert()
        .success()
        .get_output()
        .clone();
    let log = stderr_of(&output);
    let n = probe(&out2).times.len();
    assert!(n > 10 && n < 120, "{n} frames from half a file");
    let shortfall = format!("only {n} of the 120 frame(s)");
    assert!(log.contains(&shortfall), "{log}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let warnings = report["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(&shortfall))),
        "{warnings:?}"
    );
}

/// PNG files in `dir` (0 when it does not exist): the kept frames.
fn kept_pngs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "png")
            })
            .count()
        })
        .unwrap_or(0)
}

/// The binary's standard error, once it has failed with exit status 1.
fn failure_log(c: &mut Command) -> String {
    stderr_of(c.assert().failure().code(1).get_output())
}

/// The binary's standard error, once it has succeeded.
fn success_log(c: &mut Command) -> String {
    stderr_of(c.assert().success().get_output())
}

/// Waits until `dir` holds at least `n` kept frames.
fn wait_for_frames(dir: &Path, n: usize, limit: Duration) {
    let start = Instant::now();
    loop {
        if kept_pngs(dir) >= n {
            return;
        }
        assert!(start.elapsed() < limit, "no {n} kept frames in {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_run_resumes_without_redoing_finished_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("resumed.mp4");
    let json = dir.path().join("r.json");
    let kept = dir.path().join("resumed.mp4.frames");
    let binary = assert_cmd::cargo::cargo_bin("stylize-video");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            clip("carphone_pristine.mp4").display().to_string(),
            "--style".into(),
            van_gogh().display().to_string(),
            "--size".into(),
            "64".into(),
            "--first-frame-iterations".into(),
            "20".into(),
            "--iterations".into(),
            "10".into(),
            "--frames".into(),
            ":30".into(),
            "-o".into(),
            out.display().to_string(),
            "--report".into(),
            json.display().to_string(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };

    // Killed outright (no chance to clean up) after a few frames.
    let mut child = Process::new(&binary).args(args(&[])).spawn().unwrap();
    wait_for_frames(&kept, 6, Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists(), "no output before the end");
    // Its half-written video stays, until the next run into the output starts.
    assert_eq!(partials(dir.path()).len(), 1);
    let settled = kept_pngs(&kept);
    assert!(settled < 30);

    // Ctrl-C: stops after the frame in flight, says how to resume, exit status 130.
    let run = Watched::spawn(Process::new(&binary).args(args(&[])));
    wait_for_frames(&kept, settled + 3, Duration::from_secs(120));
    let (code, log) = run.interrupt();
    assert_eq!(code, Some(130), "{log}");
    assert!(
        log.contains("resuming") && log.contains("run the same command again"),
        "{log}"
    );
    assert!(!out.exists());
    assert_eq!(
        partials(dir.path()),
        Vec::<String>::new(),
        "the killed run's half-written video is gone"
    );
    // The stopped run reports what it did (and the rerun below replaces that report).
    let stopped = report(&json);
    assert_eq!(stopped["totals"]["interrupted"], true, "{stopped}");
    assert_eq!(stopped["totals"]["complete"], false);
    // With what stopped it, as the log said.
    let why = stopped["totals"]["stopped_by"].as_str().unwrap_or_default();
    assert!(why.contains("run the same command again"), "{stopped}");
    assert_eq!(stopped["totals"]["resumed"], settled);
    let done_then = stopped["frames"].as_array().unwrap().len();
    assert!(done_then >= 3, "{stopped}");
    assert_eq!(stopped["totals"]["stylized"], done_then);
    assert_eq!(stopped["frames"][0]["index"], settled);

    // Ended by a scheduler (SIGTERM): stops as for Ctrl-C, leaving no partial video.
    let left = partials(dir.path());
    let run = Watched::spawn(Process::new(&binary).args(args(&[])));
    wait_for_frames(&kept, settled + done_then + 1, Duration::from_secs(120));
    // Meanwhile the same command again (or with --restart): refused, naming the run at work,
    // which it leaves alone.
    for extra in [&[][..], &["--restart"][..]] {
        let second = Command::new(&binary)
            .args(args(extra))
            .assert()
            .failure()
            .get_output()
            .clone();
        let log = stderr_of(&second);
        assert!(
            log.contains("another run (process ") && log.contains("is writing this output"),
            "{log}"
        );
    }
    let (code, log) = run.terminate();
    // As shells report a process ended by SIGTERM, and said so.
    assert_eq!(code, Some(143), "{log}");
    assert!(log.contains("stopping on SIGTERM"), "{log}");
    assert!(log.contains("run the same command again"), "{log}");
    assert_eq!(partials(dir.path()), left);
    assert!(!out.exists());

    // Other settings: refused, nothing touched.
    let other = Command::new(&binary)
        .args(args(&["--iterations", "11"]))
        .assert()
        .failure()
        .get_output()
        .clone();
    let log = stderr_of(&other);
    // The setting that changed is named by its path, with both values.
    assert!(
        log.contains("other settings (style.iterations: ")
            && log.contains(" -> 11)")
            && log.contains("--restart"),
        "{log}"
    );

    // The same command, its paths spelt from the output's folder: resumes, finishes, and
    // stylises only the frames that were missing (and replaces the stopped run's report).
    let before = kept_pngs(&kept);
    let spelt: Vec<String> = args(&[])
        .into_iter()
        .map(|a| {
            if a == out.display().to_string() {
                "./resumed.mp4".into()
            } else if a == json.display().to_string() {
                "r.json".into()
            } else {
                a
            }
        })
        .collect();
    let done = Command::new(&binary)
        .current_dir(dir.path())
        .args(spelt)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        stderr_of(&done).contains(&format!("resuming: {before} finished frame(s)")),
        "{}",
        stderr_of(&done)
    );
    let r = report(&json);
    assert_eq!(r["totals"]["complete"], true);
    assert!(r["totals"].get("stopped_by").is_none(), "{r}");
    assert_eq!(r["totals"]["interrupted"], false);
    assert_eq!(r["totals"]["frames"], 30);
    assert_eq!(r["totals"]["resumed"], before);
    assert_eq!(r["totals"]["stylized"], 30 - before);
    assert_eq!(r["frames"].as_array().unwrap().len(), 30 - before);
    assert_eq!(r["frames"][0]["index"], before);
    // The resumed frame started warm from the last kept one: it used the warm budget.
    assert_eq!(r["frames"][0]["iterations"], 10);
    assert_eq!(probe(&out).times.len(), 30);
    assert!(
        !kept.exists(),
        "kept frames are removed once the output is complete"
    );

    // An --overwrite run stopped before it replaced the video leaves it, and its report.
    let run =
        Watched::spawn(Process::new(&binary).args(args(&["--overwrite", "--iterations", "11"])));
    wait_for_frames(&kept, 2, Duration::from_secs(120));
    let (code, log) = run.interrupt();
    assert_eq!(code, Some(130), "{log}");
    assert!(log.contains("report was not written"), "{log}");
    assert_eq!(report(&json)["totals"]["complete"], true);
    assert_eq!(probe(&out).times.len(), 30);
}

#[test]
fn a_resumed_run_paints_the_same_frames_as_an_unbroken_one() {
    let dir = tempfile::tempdir().unwrap();
    let binary = assert_cmd::cargo::cargo_bin("stylize-video");
    let args = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = vec![
            clip("carphone_pristine.mp4").display().to_string(),
            "--style".into(),
            van_gogh().display().to_string(),
        ];
        v.extend(
            // The bits are the CPU's: a GPU's fastest kernels need not be deterministic.
            [
                "--device",
                "cpu",
                "--size",
                "64",
                "--first-frame-iterations",
                "20",
                "--iterations",
                "10",
                "--frames",
                ":16",
                "--keep-frames",
                "-o",
            ]
            .map(String::from),
        );
        v.push(dir.path().join(name).display().to_string());
        v
    };
    Command::new(&binary)
        .args(args("unbroken.mp4"))
        .assert()
        .success();
    let unbroken = dir.path().join("unbroken.mp4.frames");
    assert_eq!(kept_pngs(&unbroken), 16);

    // Killed outright after a few frames, then run again.
    let broken = dir.path().join("broken.mp4.frames");
    let mut child = Process::new(&binary)
        .args(args("broken.mp4"))
        .spawn()
        .unwrap();
    wait_for_frames(&broken, 4, Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    let settled = kept_pngs(&broken);
    assert!(settled < 16, "killed before the end");
    let log = success_log(Command::new(&binary).args(args("broken.mp4")));
    assert!(
        log.contains(&format!("resuming: {settled} finished frame(s)")),
        "{log}"
    );

    // Every frame after the break, started from the optimiser's own image as kept, is the
    // unbroken run's to the bit.
    for i in 0..16 {
        let name = format!("{i:06}.png");
        let a = image::open(unbroken.join(&name)).unwrap().to_rgb16();
        let b = image::open(broken.join(&name)).unwrap().to_rgb16();
        assert!(
            a == b,
            "frame {i} differs after a resume at frame {settled}"
        );
    }
    // Only the frames stay once the output is complete.
    for kept in [&unbroken, &broken] {
        for entry in std::fs::read_dir(kept).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name.ends_with(".png") || name == "settings.json",
                "{name} left in {kept:?}"
            );
        }
    }
}

#[test]
fn a_second_ctrl_c_quits_at_once_leaving_no_half_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("quit.mp4");
    let kept = dir.path().join("quit.mp4.frames");
    let mut run = Watched::spawn(
        Process::new(assert_cmd::cargo::cargo_bin("stylize-video"))
            .arg(clip("carphone_pristine.mp4"))
            .arg("--style")
            .arg(van_gogh())
            // Iterations of a second or so: the second Ctrl-C comes while the first waits for one.
            .args([
                "--device",
                "cpu",
                "--size",
                "320",
                "--first-frame-iterations",
                "1",
            ])
            .args(["--iterations", "400", "--frames", ":30", "-o"])
            .arg(&out),
    );
    // A frame is finished and the video is being written.
    wait_for_frames(&kept, 1, Duration::from_secs(120));
    let start = Instant::now();
    while partials(dir.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no video being written"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run.signal();
    run.wait_for("stopping (Ctrl-C again", Duration::from_secs(60));
    let (code, log) = run.interrupt();
    assert_eq!(code, Some(130), "{log}");
    assert!(log.contains("stopped at once"), "{log}");
    assert_eq!(partials(dir.path()), Vec::<String>::new());
    assert!(!out.exists());
    assert!(kept_pngs(&kept) >= 1, "the finished frames are kept");
}

#[test]
fn warm_frames_reach_a_cold_frames_loss_in_fewer_iterations() {
    use std::ops::ControlFlow;
    use stylize_video::engine::preprocess::to_network;
    use stylize_video::engine::stylizer::*;
    use stylize_video::frames::FrameSource;
    use stylize_video::io::video::decode::VideoSource;

    let mut source = VideoSource::open(&clip("carphone_pristine.mp4"), 96).unwrap();
    let frames: Vec<_> = (0..4)
        .map(|_| source.next_frame().unwrap().unwrap())
        .collect();
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = StyleTarget::new(&vgg, &[(tensor(&van_gogh(), 96), 1.0)], &loss).unwrap();
    let stylizer = Stylizer::new(&vgg, &style, loss, OptimizerSettings::default()).unwrap();
    let device = tch::Device::Cpu;
    let content = |i: usize| to_network(&frames[i].image, device);
    let cold_iterations = 100;
    let previous = stylizer
        .run_for(&content(0), &content(0), cold_iterations, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    // Frame 3, cold: the loss 100 iterations reach.
    let cold = stylizer
        .run_for(&content(3), &content(3), cold_iterations, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    // Frame 3, warm from frame 0's result: iterations to reach the same loss.
    let mut reached = None;
    let warm = stylizer
        .run_for(&content(3), &previous.image, cold_iterations, |it| {
            if it.loss().unwrap() <= cold.best.total && reached.is_none() {
                reached = Some(it.iteration);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })
        .unwrap();
    let reached = reached.unwrap_or_else(|| {
        panic!(
            "warm start never reached {} (best {})",
            cold.best.total, warm.best.total
        )
    });
    eprintln!("warm frame reached the cold-{cold_iterations} loss after {reached} iterations");
    assert!(
        reached * 2 <= cold_iterations,
        "warm start took {reached} iterations"
    );
}

#[test]
fn sequence_outputs_keep_input_numbers_and_their_own_kept_frames() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Plates 1001, 1002 and 1004: 1003 is missing.
    let plates = d.join("plates");
    std::fs::create_dir(&plates).unwrap();
    let source = image::open(frame()).unwrap().to_rgb8();
    for (k, number) in [1001, 1002, 1004].into_iter().enumerate() {
        let window = image::imageops::crop_imm(&source, 40 * k as u32, 0, 960, 540).to_image();
        image::imageops::resize(&window, 96, 54, image::imageops::FilterType::Triangle)
            .save(plates.join(format!("{number}.png")))
            .unwrap();
    }
    let out = d.join("out");
    let run = |name: &str, iterations: &str| {
        let mut c = quick(&plates.join("%04d.png"), &out.join(name));
        c.args(["--keep-frames", "--iterations", iterations]);
        c
    };

    // Each output frame carries its plate's number, across the gap; the log says so.
    let log = success_log(&mut run("a_%04d.png", "2"));
    assert!(
        log.contains("gaps (1 missing from 4, the first 1003)")
            && log.contains("keeps each input frame's number"),
        "{log}"
    );
    for number in [1001, 1002, 1004] {
        assert!(out.join(format!("a_{number}.png")).is_file(), "{number}");
    }
    assert!(!out.join("a_1003.png").exists());
    // Frame 1004's content is the third plate's, not a renumbered copy of another.
    let first = image::open(out.join("a_1001.png")).unwrap().to_rgb8();
    let last = image::open(out.join("a_1004.png")).unwrap().to_rgb8();
    assert_eq!(first.dimensions(), (96, 54));
    assert_ne!(first, last);

    // A second sequence with other settings into the same folder keeps its frames apart...
    run("b_%04d.png", "3").assert().success();
    for number in [1001, 1002, 1004] {
        assert!(out.join(format!("b_{number}.png")).is_file(), "{number}");
    }
    assert_eq!(kept_pngs(&out.join(".a_%04d.png.frames")), 3);
    // A shorter run that completes leaves the frames past its end for a longer run...
    let d_run = |extra: &[&str]| {
        let mut c = quick(&plates.join("%04d.png"), &out.join("d_%04d.png"));
        c.args(["--iterations", "2"]).args(extra);
        c
    };
    success_log(&mut d_run(&["--keep-frames"]));
    let log = success_log(&mut d_run(&["--frames", ":2"]));
    assert!(
        log.contains("taking over") && log.contains("keeps 3 frame(s), some past this run's end"),
        "{log}"
    );
    assert_eq!(kept_pngs(&out.join(".d_%04d.png.frames-0-2")), 3);
    // ...but not for a run with other settings, which leaves them be.
    let log = success_log(&mut d_run(&["--iterations", "3", "--overwrite"]));
    assert!(
        !log.contains("taking over") && !log.contains("resuming"),
        "{log}"
    );
    assert_eq!(kept_pngs(&out.join(".d_%04d.png.frames-0-2")), 3);
    assert!(!out.join(".d_%04d.png.frames").exists());
    assert_eq!(kept_pngs(&out.join(".b_%04d.png.frames")), 3);
    // ...and the first one's frames still resume its own run.
    let log = success_log(run("a_%04d.png", "2").arg("--overwrite"));
    assert!(log.contains("resuming: 3 finished frame(s)"), "{log}");
    // The shot shortened, then extended again: the run to the new end takes over the frames
    // kept for the old one (they were kept per range, and the run refused for existing frames).
    let log = success_log(run("a_%04d.png", "2").args(["--frames", ":2"]));
    assert!(
        log.contains("taking over the frames kept in")
            && log.contains("resuming: 2 finished frame(s)"),
        "{log}"
    );
    assert!(!out.join(".a_%04d.png.frames").exists());
    let log = success_log(run("a_%04d.png", "2").args(["--frames", "0:"]));
    assert!(
        log.contains("taking over") && log.contains("resuming: 3 finished frame(s)"),
        "{log}"
    );
    assert_eq!(kept_pngs(&out.join(".a_%04d.png.frames")), 3);

    // Compositing packages' `####` spelling, in and out: the same frames and numbers.
    let log = success_log(&mut quick(
        &plates.join("####.png"),
        &out.join("c_####.png"),
    ));
    assert!(log.contains("keeps each input frame's number"), "{log}");
    for number in [1001, 1002, 1004] {
        assert!(out.join(format!("c_{number}.png")).is_file(), "{number}");
    }
    assert!(!out.join("c_####.png").exists());

    // However the output is written, it never lands on the input's frames, even with
    // --overwrite.
    let before = std::fs::read(plates.join("1002.png")).unwrap();
    for output in [
        "./plates/%04d.png",
        "plates/%4d.png",
        "out/../plates/%04d.png",
    ] {
        let log = failure_log(quick(&plates.join("%04d.png"), &d.join(output)).arg("--overwrite"));
        assert!(
            log.contains("would write over the input's frame") || log.contains("is the input"),
            "{output}: {log}"
        );
    }
    assert_eq!(std::fs::read(plates.join("1002.png")).unwrap(), before);

    // Shards of one sequence rendered one after the other into one folder: the second is not
    // refused for the first's files, and each keeps its own frames; a shard whose own files
    // exist still needs --overwrite.
    let shards = d.join("shards");
    let shard_run = |range: &str| {
        let mut c = quick(&plates.join("%04d.png"), &shards.join("s_%04d.png"));
        c.args(["--frames", range]);
        c
    };
    shard_run("0:2").assert().success();
    shard_run("2:").assert().success();
    for number in [1001, 1002, 1004] {
        assert!(shards.join(format!("s_{number}.png")).is_file(), "{number}");
    }
    let log = stderr_of(&shard_run("0:2").assert().failure().get_output().clone());
    assert!(log.contains("--overwrite"), "{log}");

    // Two files with one number (other zero padding) are refused, naming both.
    let twin = d.join("twin");
    std::fs::create_dir(&twin).unwrap();
    std::fs::copy(plates.join("1001.png"), twin.join("1001.png")).unwrap();
    std::fs::copy(plates.join("1002.png"), twin.join("01001.png")).unwrap();
    let log = failure_log(&mut quick(
        &twin.join("%04d.png"),
        &d.join("twin-out/%04d.png"),
    ));
    assert!(
        log.contains("1001.png' and '") && log.contains("are both frame 1001"),
        "{log}"
    );

    // Frames kept under the folder name used before 2026-11-24 are taken over and resume.
    std::fs::rename(
        out.join(".a_%04d.png.frames"),
        out.join(".stylize-video-frames"),
    )
    .unwrap();
    let log = success_log(run("a_%04d.png", "2").arg("--overwrite"));
    assert!(log.contains("resuming: 3 finished frame(s)"), "{log}");
    assert!(!out.join(".stylize-video-frames").exists());

    // Shards of one sequence into one folder keep theirs apart too; a video keeps its own name.
    use stylize_video::pipeline::FrameRange;
    use stylize_video::video::kept_dir;
    let pattern = Path::new("out/a_%04d.png");
    let shard = |start, end| kept_dir(pattern, FrameRange { start, end });
    assert_eq!(shard(0, None), Path::new("out/.a_%04d.png.frames"));
    assert_eq!(shard(0, Some(50)), Path::new("out/.a_%04d.png.frames-0-50"));
    assert_eq!(shard(50, None), Path::new("out/.a_%04d.png.frames-50-end"));
    assert_eq!(
        kept_dir(
            Path::new("v/clip.mp4"),
            FrameRange {
                start: 5,
                end: Some(9)
            }
        ),
        Path::new("v/clip.mp4.frames")
    );
}

#[test]
fn quality_presets_set_each_kind_of_frame_s_iterations() {
    let dir = tempfile::tempdir().unwrap();
    let run = |flags: &[&str]| {
        let (out, json) = (dir.path().join("q.mkv"), dir.path().join("q.json"));
        let (_, r) = run_with_report(
            Command::cargo_bin("stylize-video")
                .unwrap()
                .arg(clip("bigbuckbunny.mp4"))
                .arg("--style")
                .arg(van_gogh())
                .args(["--size", "32", "--frames", ":3", "--overwrite", "-q"])
                .args(flags),
            &out,
            &json,
        );
        let settings = (
            r["settings"]["first_frame_iterations"].as_u64().unwrap(),
            r["settings"]["iterations"].as_u64().unwrap(),
        );
        let done: Vec<u64> = r["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["iterations"].as_u64().unwrap())
            .collect();
        (settings, done)
    };
    // Draft: 100 for the cold first frame, 20 for the warm ones.
    assert_eq!(run(&["--quality", "draft"]), ((100, 20), vec![100, 20, 20]));
    // Final: 1000 and 200, unless a flag says otherwise (the frames may stop sooner, stalled
    // at a 32 px optimum).
    let ((first, warm), done) = run(&["--quality", "final", "--first-frame-iterations", "4"]);
    assert_eq!((first, warm), (4, 200));
    assert_eq!(done[0], 4);
    assert!(done[1] > 20, "{done:?}");
}

#[test]
fn flags_a_run_would_ignore_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("steps.gif");
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4"))
            .arg("--gif")
            .arg(&gif),
    );
    assert!(
        log.contains("--gif = ") && log.contains("applies to still images only"),
        "{log}"
    );
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4")).args(["--fps", "30"]),
    );
    assert!(
        log.contains("--fps = 30") && log.contains("keeps its own timing"),
        "{log}"
    );
    // A range that does not parse is named, quoted apart from the message's own colons.
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4")).args(["--frames", "25::"]),
    );
    assert!(
        log.contains(r#"--frames = "25::": START:END, e.g. 0:48"#),
        "{log}"
    );
    // An encoder setting that would only fail after the first frame, or be ignored, is refused
    // before any work.
    for (extra, name, problem) in [
        (
            &["--crf", "70"][..],
            "c.mp4",
            "libx264 takes 0 (best) to 51",
        ),
        (&["--crf", "20", "--bitrate", "2M"], "c.mp4", "not both"),
        (
            &["--codec", "ffv1", "--crf", "20"],
            "c.mkv",
            "no constant-quality setting",
        ),
    ] {
        let log =
            failure_log(quick(&clip("carphone_pristine.mp4"), &dir.path().join(name)).args(extra));
        assert!(log.contains("--crf = ") && log.contains(problem), "{log}");
    }
    // A bit rate for an encoder that has none.
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mkv")).args([
            "--codec",
            "ffv1",
            "--bitrate",
            "2M",
        ]),
    );
    assert!(
        log.contains("--bitrate = 2000000") && log.contains("ffv1 encoder has no bit-rate setting"),
        "{log}"
    );
    // A bit rate without its unit.
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4")).args(["--bitrate", "8"]),
    );
    assert!(
        log.contains("--bitrate = 8") && log.contains("did you mean 8M or 8k?"),
        "{log}"
    );
    // A GIF setting on a video is a still's, whether or not --gif is there.
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4")).args(["--gif-every", "5"]),
    );
    assert!(
        log.contains("--gif-every = 5") && log.contains("applies to still images only"),
        "{log}"
    );
    // A report named like the video (or the input) would replace it.
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4"))
            .arg("--report")
            .arg(dir.path().join(".").join("c.mp4")),
    );
    assert!(log.contains("named twice among the outputs"), "{log}");
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4"))
            .arg("--report")
            .arg(clip("carphone_pristine.mp4"))
            .arg("--overwrite"),
    );
    assert!(log.contains("is one of the inputs"), "{log}");
    // Encoder settings for a sequence written as image files; 16 bits asked of a video.
    let frames = dir.path().join("f_%04d.png");
    for extra in [&["--codec", "ffv1"][..], &["--crf", "20"], &["--no-audio"]] {
        let log = failure_log(quick(&clip("carphone_pristine.mp4"), &frames).args(extra));
        assert!(
            log.contains(&format!("{} = ", extra[0]))
                && log.contains("sets the video encoder")
                && log.contains("f_%04d.png' is a frame sequence"),
            "{log}"
        );
    }
    let log = failure_log(
        quick(&clip("carphone_pristine.mp4"), &dir.path().join("c.mp4"))
            .args(["--bit-depth", "16"]),
    );
    assert!(
        log.contains("--bit-depth = 16") && log.contains("only PNG and TIFF files take 16 bits"),
        "{log}"
    );
    let still = dir.path().join("s.png");
    for extra in [
        &["--frames", "0:3"][..],
        &["--keep-frames"],
        &["--crf", "20"],
    ] {
        let mut c = Command::cargo_bin("stylize-video").unwrap();
        c.arg(frame())
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "32", "--iterations", "1"])
            .args(extra)
            .arg("-o")
            .arg(&still);
        let log = failure_log(&mut c);
        assert!(
            log.contains(&format!("{} = ", extra[0]))
                && log.contains("applies to videos and frame sequences only"),
            "{log}"
        );
    }
    assert!(!gif.exists() && !still.exists());
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn an_output_that_fails_midway_is_not_blamed_on_the_source() {
    // Frame 3's file cannot be written (a folder of its name, as a full disk would refuse it):
    // the run fails naming it, and does not also say that the source ended early.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out/0003.png")).unwrap();
    let json = dir.path().join("r.json");
    let failed = quick(
        &clip("carphone_pristine.mp4"),
        &dir.path().join("out/%04d.png"),
    )
    .args(["--frames", ":6", "--overwrite", "--report"])
    .arg(&json)
    .assert()
    .failure()
    .get_output()
    .clone();
    let log = stderr_of(&failed);
    assert!(
        log.contains("cannot write") && log.contains("0003.png"),
        "{log}"
    );
    assert!(!log.contains("could be decoded"), "{log}");
    let r = report(&json);
    assert_eq!(r["totals"]["complete"], false);
    assert_eq!(r["warnings"], serde_json::json!([]), "{r}");
    assert!(dir.path().join("out/0002.png").is_file());
}
