//! The real binary on real samples: results, GIFs, reports, and clean failures.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::files::*;
use common::*;
use serde_json::Value;

/// The binary, on the default device (the CPU here; a GPU where there is one).
fn stylize() -> Command {
    Command::cargo_bin("stylize-video").unwrap()
}

/// The binary on the Big Buck Bunny frame with Van Gogh's painting.
fn on_frame() -> Command {
    let mut c = stylize();
    c.arg(frame()).arg("--style").arg(van_gogh());
    c
}

/// What a finished run wrote to its standard error.
fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

fn style_sum(losses: &Value) -> f64 {
    losses["style"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum()
}

/// RGB frames of a GIF, and whether it loops forever.
fn gif_frames(path: &Path) -> (Vec<image::RgbaImage>, bool) {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options
        .read_info(std::fs::File::open(path).unwrap())
        .unwrap();
    let looping = decoder.repeat() == gif::Repeat::Infinite;
    let (w, h) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let mut frames = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        assert_eq!((u32::from(frame.width), u32::from(frame.height)), (w, h));
        frames.push(image::RgbaImage::from_raw(w, h, frame.buffer.to_vec()).unwrap());
    }
    (frames, looping)
}

fn mean_abs_diff(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| f64::from(x.abs_diff(*y)))
        .sum::<f64>()
        / a.as_raw().len() as f64
}

#[test]
fn a_frame_turns_into_the_painting_with_gif_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let (out, gif, json) = (
        dir.path().join("out.png"),
        dir.path().join("anim.gif"),
        dir.path().join("report.json"),
    );
    let (assert, _) = run_with_report(
        on_frame()
            .args(["--size", "64", "--iterations", "200", "--init", "noise"])
            .args(["--gif-every", "20"])
            .arg("--gif")
            .arg(&gif),
        &out,
        &json,
    );
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("wrote") && stderr.contains("11 frames"),
        "{stderr}"
    );

    // The result: the processing size (64 px long edge, the frame's aspect).
    let result = image::open(&out).unwrap().to_rgba8();
    assert_eq!(result.dimensions(), (64, 36));

    // The report: settings resolved, losses down by orders of magnitude.
    let r = report(&json);
    assert_eq!(r["version"], 1);
    let s = &r["settings"];
    assert!((s["alpha"].as_f64().unwrap() - 512.0 * 512.0 / (64.0 * 36.0)).abs() < 1e-9);
    assert_eq!(s["beta"], 1e4);
    assert_eq!(s["pooling"], "avg");
    assert_eq!(s["size"], 64);
    assert_eq!(s["init"], "noise");
    let device = s["device"].as_str().unwrap();
    assert!(
        device.starts_with("cpu") || device.starts_with("cuda"),
        "{device}"
    );
    // The memory it took: libtorch alone holds over 100 MiB; a GPU's figures only on a GPU.
    let memory = &r["memory"];
    let host = memory["host_peak_mib"].as_f64().unwrap();
    assert!((100.0..16384.0).contains(&host), "host peak {host} MiB");
    assert_eq!(
        memory["gpu_in_use_mib"].is_null(),
        device.starts_with("cpu")
    );
    assert!(stderr.contains("memory: host peak "), "{stderr}");
    assert_eq!(s["content_layers"][0]["layer"], "conv4_2");
    let layers: Vec<&str> = s["style_layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(
        layers,
        ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    );
    let frames = r["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    assert_eq!(f["index"], 0);
    assert_eq!(f["iterations"], 200);
    assert_eq!(f["output"], out.display().to_string());
    assert!(f["seconds"].as_f64().unwrap() > 0.0);
    let history = f["history"].as_array().unwrap();
    assert_eq!(history.len(), 201);
    assert_eq!(history[200]["iteration"], 200);
    // The iteration written is the one whose total the final losses give: the lowest.
    let written = f["final_iteration"].as_u64().expect("final_iteration") as usize;
    let total_at = |i: usize| history[i]["total"].as_f64().unwrap();
    assert_eq!(total_at(written), f["final"]["total"].as_f64().unwrap());
    assert!((0..=200).all(|i| total_at(i) >= total_at(written)));
    let (initial, last) = (&f["initial"], &f["final"]);
    for losses in [initial, last] {
        let keys: Vec<&String> = losses["style"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
        );
        // total = α·content + β·Σ 0.2·E_l
        let total = s["alpha"].as_f64().unwrap() * losses["content"].as_f64().unwrap()
            + 1e4 * 0.2 * style_sum(losses);
        assert!((total / losses["total"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    }
    let fall = initial["total"].as_f64().unwrap() / last["total"].as_f64().unwrap();
    let style_fall = style_sum(initial) / style_sum(last);
    assert!(fall > 20.0, "total loss fell {fall}x only");
    assert!(style_fall > 30.0, "style loss fell {style_fall}x only");
    let best_layer = initial["style"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| v.as_f64().unwrap() / last["style"][k].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(
        best_layer > 100.0,
        "no style layer fell by two orders of magnitude"
    );

    // The GIF: 1 + 200/20 frames, looping, from the grey start to the result.
    let (frames, looping) = gif_frames(&gif);
    assert!(looping);
    assert_eq!(frames.len(), 11);
    assert_eq!(frames[0].dimensions(), (64, 36));
    let last_frame = frames.last().unwrap();
    // (up to the GIF's 256-colour palette)
    assert!(
        mean_abs_diff(last_frame, &result) < 12.0,
        "the GIF ends on the result"
    );
    assert!(
        mean_abs_diff(&frames[0], &result) > 30.0,
        "the GIF starts elsewhere"
    );
    // The recorded steps move towards the result, on the whole: every two steps (from a flat
    // grey start the first 20 iterations may only colour it, as far from the result as it was).
    let d: Vec<f64> = frames.iter().map(|f| mean_abs_diff(f, &result)).collect();
    assert!(d.windows(3).all(|w| w[2] < w[0]), "{d:?}");
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn the_gif_interval_and_size_cap_are_chosen_sensibly() {
    let dir = tempfile::tempdir().unwrap();
    let gif = dir.path().join("a.gif");
    on_frame()
        .args(["--size", "96", "--iterations", "120", "--gif-size", "48"])
        .arg("-o")
        .arg(dir.path().join("a.png"))
        .arg("--gif")
        .arg(&gif)
        .assert()
        .success();
    let (frames, _) = gif_frames(&gif);
    // Every ⌈120 / 50⌉ = 3 iterations: 1 + 40 frames, capped at 48 px.
    assert_eq!(frames.len(), 41);
    assert_eq!(frames[0].dimensions(), (48, 27));
}

#[test]
fn a_seed_reproduces_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let render = |seed: &str, name: &str| {
        let out = dir.path().join(name);
        on_frame()
            .args(["--size", "48", "--iterations", "15", "--init", "noise"])
            .args(["--seed", seed])
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        image::open(out).unwrap().to_rgba8()
    };
    let a = render("7", "a.png");
    let b = render("7", "b.png");
    let c = render("8", "c.png");
    assert_eq!(a.as_raw(), b.as_raw());
    assert_ne!(a.as_raw(), c.as_raw());
}

#[test]
fn a_painting_of_several_pictures_uses_its_first_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("o.png"), dir.path().join("r.json"));
    let dark = image::RgbImage::from_pixel(80, 60, image::Rgb([20, 30, 40]));
    let pages = multi_page_tiff(dir.path(), "pages.tif", &[dark]);
    let animation = gif_of(dir.path(), "moving.gif", 3);
    // The start's losses: the style term depends on the painting alone.
    let losses = |style: &Path, extra: &[&str]| {
        let (run, r) = run_with_report(
            stylize()
                .arg(frame())
                .arg("--style")
                .arg(style)
                .args(["--size", "64", "--iterations", "0", "--overwrite"])
                .args(extra),
            &out,
            &json,
        );
        (stderr_of(&run), r)
    };
    let (_, single) = losses(&cmyk_jpeg().1, &[]);
    assert_eq!(single["warnings"], serde_json::json!([]));
    let (log, several) = losses(&pages, &[]);
    let pages_said = format!(
        "--style '{}' is a TIFF of several pages: only its first picture is used",
        pages.display()
    );
    assert!(log.contains(&pages_said), "{log}");
    assert_eq!(several["warnings"], serde_json::json!([pages_said]));
    assert_eq!(
        style_sum(&several["frames"][0]["initial"]),
        style_sum(&single["frames"][0]["initial"])
    );
    let (log, started) = losses(&pages, &["--init", animation.to_str().unwrap()]);
    let animation_said = format!(
        "--init '{}' is an animation: only its first picture is used",
        animation.display()
    );
    assert!(log.contains(&animation_said), "{log}");
    // Its first picture, 64x48, is stretched to the content's shape, and that is said too.
    let stretch_said = format!(
        "--init '{}' is 64x48, of another shape than the content's 64x36: it is stretched to it",
        animation.display()
    );
    assert_eq!(
        started["warnings"],
        serde_json::json!([pages_said, animation_said, stretch_said])
    );
}

#[test]
fn zero_iterations_write_the_start_and_report_its_losses() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = (dir.path().join("start.png"), dir.path().join("r.json"));
    // One zero-iteration run with `flags`: its log and its report.
    let start = |flags: &[&str]| {
        let (run, r) = run_with_report(
            on_frame()
                .args(["--size", "64", "--iterations", "0", "--overwrite"])
                .args(flags),
            &out,
            &json,
        );
        (stderr_of(&run), r)
    };
    let (_, r) = start(&[]);
    let written = image::open(&out).unwrap().to_rgb8();
    let content = stylize_video::io::image::to_rgb8(&picture(&frame(), 64));
    assert_eq!(written.as_raw(), content.as_raw());
    let f = &r["frames"][0];
    assert_eq!(f["iterations"], 0);
    assert_eq!(f["history"].as_array().unwrap().len(), 1);
    assert_eq!(f["initial"], f["final"]);
    assert_eq!(f["initial"]["content"], 0.0);
    assert!(f["initial"]["total"].as_f64().unwrap() > 0.0);
    // On the CPU, the automatic precision is float32 (the exact path), the layout channels-last
    // (the same figures up to summation order, faster); asked for, the others are used and
    // reported.
    if !tch::Cuda::is_available() {
        assert_eq!(r["settings"]["precision"], "fp32");
    }
    assert_eq!(r["settings"]["channels_last"], true);
    for (flags, precision, channels_last) in [
        (
            &["--precision", "bf16", "--channels-last"][..],
            "bf16",
            true,
        ),
        (
            &["--precision", "tf32", "--layout", "contiguous"][..],
            "tf32",
            false,
        ),
    ] {
        let (log, r) = start(flags);
        // bf16 on a CPU that only emulates it is about eight times slower than fp32: the user is told.
        let warned = log.contains("emulated");
        let expected = precision == "bf16"
            && !tch::Cuda::is_available()
            && !stylize_video::device::cpu_has_native_bf16();
        assert_eq!(warned, expected, "{log}");
        assert_eq!(r["settings"]["precision"], precision, "{flags:?}");
        assert_eq!(r["settings"]["channels_last"], channels_last, "{flags:?}");
    }
    // Pixels are kept within range unless --unbounded.
    assert_eq!(r["settings"]["bounded"], true);
    let (_, r) = start(&["--unbounded"]);
    assert_eq!(r["settings"]["bounded"], false);
}

#[test]
fn same_size_images_are_not_resized() {
    // With --size equal to the content's long edge and a painting of that long edge, the run
    // sees the files' pixels: the reference pair gives the reference's losses.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let reference = root().join("tests/reference");
    let (_, r) = run_with_report(
        stylize()
            .arg(reference.join("content-128x72.png"))
            .arg("--style")
            .arg(reference.join("style-128x100.png"))
            .args([
                "--size",
                "128",
                "--iterations",
                "0",
                "--gram-scale",
                "paper",
            ])
            .args([
                "--content-weight",
                &(128.0 * 72.0 / (512.0 * 512.0)).to_string(),
            ])
            .args(["--style-weight", "1000", "--pooling", "max"]),
        &dir.path().join("o.png"),
        &json,
    );
    let initial = &r["frames"][0]["initial"];
    // The max-pooling, x = content case of gatys-losses.json.
    let want = 41313846767322.086;
    let got = initial["total"].as_f64().unwrap();
    assert!((got / want - 1.0).abs() < 1e-3, "{got} vs {want}");
    assert_eq!(r["settings"]["processing_width"], 128);
    assert_eq!(r["settings"]["processing_height"], 72);
}

#[test]
fn a_blend_s_report_gives_the_weights_as_used() {
    // Blend weights are normalised to sum to 1: 7,3 paints what 0.7,0.3 does, and the report
    // gives the weights used (it gave 7 and 3 as typed).
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("blend.json");
    on_frame()
        .arg("--style")
        .arg(hokusai())
        .args(["--style-blend", "7, 3", "--size", "32", "--iterations", "1"])
        .arg("-o")
        .arg(dir.path().join("blend.png"))
        .arg("--report")
        .arg(&report)
        .assert()
        .success();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let blends: Vec<f64> = report["settings"]["styles"]
        .as_array()
        .expect("styles")
        .iter()
        .map(|s| s["blend"].as_f64().expect("a blend"))
        .collect();
    assert_eq!(blends, [0.7, 0.3]);
}

#[test]
fn preserve_colors_keeps_the_content_hue() {
    let dir = tempfile::tempdir().unwrap();
    let render = |extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let run = on_frame()
            .args(["--size", "64", "--iterations", "40"])
            .args(extra)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        (image::open(out).unwrap().to_rgb8(), stderr_of(&run))
    };
    let (plain, _) = render(&[], "plain.png");
    let (kept, log) = render(&["--preserve-colors"], "kept.png");
    // The losses are the optimised picture's, and the log says so (they were taken for the
    // written picture's, which after the colour transfer is several times higher).
    assert!(
        log.contains("the optimised picture's: its colours are then the content's"),
        "{log}"
    );
    let content = stylize_video::io::image::to_rgb8(&picture(&frame(), 64));
    // Chroma distance to the content (I and Q of YIQ, 0..255 scale).
    let chroma = |img: &image::RgbImage| {
        img.pixels()
            .zip(content.pixels())
            .map(|(p, c)| {
                let f = |p: &image::Rgb<u8>| {
                    stylize_video::engine::preprocess::rgb_to_yiq(p.0.map(f32::from))
                };
                let (a, b) = (f(p), f(c));
                f64::from((a[1] - b[1]).abs() + (a[2] - b[2]).abs())
            })
            .sum::<f64>()
            / content.pixels().count() as f64
    };
    let (plain_d, kept_d) = (chroma(&plain), chroma(&kept));
    assert!(
        kept_d * 3.0 < plain_d,
        "chroma distance {kept_d} vs {plain_d}"
    );
}

#[test]
fn an_existing_output_is_kept_unless_overwrite_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("taken.png");
    std::fs::write(&out, b"precious").unwrap();
    let args = |c: &mut Command| {
        c.arg(frame())
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "32", "--iterations", "1"])
            .arg("-o")
            .arg(&out);
    };
    let mut refused = stylize();
    args(&mut refused);
    let output = refused.assert().failure().code(1).get_output().clone();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("taken.png") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    let mut allowed = stylize();
    args(&mut allowed);
    allowed.arg("--overwrite").assert().success();
    assert_eq!(image::open(&out).unwrap().width(), 32);
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn a_picture_through_a_pipe_is_refused_with_what_to_do() {
    // A pipe can be read once; the picture is looked at more than once. It used to be called
    // empty.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    let bytes = std::fs::read(frame()).unwrap();
    let assert = stylize()
        .arg("/dev/stdin")
        .arg("--style")
        .arg(van_gogh())
        .args(["--size", "32", "--iterations", "1", "-o"])
        .arg(&out)
        .write_stdin(bytes)
        .assert()
        .failure()
        .code(1);
    let log = stderr_of(&assert);
    assert!(
        log.contains("'/dev/stdin': is a pipe or a device, not a file"),
        "{log}"
    );
    assert!(!out.exists());
}

#[test]
fn unusual_but_valid_images_are_stylised() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        cmyk_jpeg().0,
        sixteen_bit(dir.path()),
        grayscale(dir.path()),
        with_alpha(dir.path()),
    ];
    for (i, input) in inputs.iter().enumerate() {
        let out = dir.path().join(format!("out-{i}.png"));
        // Each as the content and as the painting.
        stylize()
            .arg(input)
            .arg("--style")
            .arg(input)
            .args(["--size", "48", "--iterations", "3"])
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        let written = image::open(&out).unwrap();
        assert_eq!((written.width(), written.height()), (48, 33));
    }
}

#[test]
fn bad_inputs_and_settings_fail_cleanly_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let frame = frame();
    let style = van_gogh();
    let missing = d.join("missing.jpg");
    let text = text_named_jpg(d);
    let truncated = truncated_jpeg(d);
    let dot = one_pixel(d);
    let huge = huge_header(d);
    let out = d.join("out.png");
    let p = |p: &Path| p.display().to_string();
    // (content, style, extra arguments, what the message must say)
    let cases: Vec<(String, String, Vec<String>, Vec<String>)> = vec![
        (
            p(&missing),
            p(&style),
            vec![],
            vec![p(&missing), "no such file".into()],
        ),
        (
            p(&frame),
            p(&missing),
            vec![],
            vec![p(&missing), "no such file".into()],
        ),
        (
            p(&text),
            p(&style),
            vec![],
            vec![p(&text), "not an image".into()],
        ),
        (
            p(&truncated),
            p(&style),
            vec![],
            vec![p(&truncated), "truncated JPEG".into()],
        ),
        (
            p(&dot),
            p(&style),
            vec![],
            vec![p(&dot), "1x1 pixels is too small".into()],
        ),
        (
            p(&huge),
            p(&style),
            vec![],
            vec![p(&huge), "20000x20000 pixels is too large".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--style-weight".into(), "-1".into()],
            vec!["--style-weight = -1".into(), "zero or more".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--content-weight".into(), "nan".into()],
            vec!["--content-weight".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["-o".into(), p(&d.join("no/such/dir/out.png"))],
            vec!["no/such/dir".into(), "does not exist".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["-o".into(), p(&d.join("out.xyz"))],
            vec!["out.xyz".into(), "unknown image extension".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--gif".into(), p(&d.join("anim.png"))],
            vec!["anim.png".into(), "must end in .gif".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--size".into(), "0".into()],
            vec!["--size = 0".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--size".into(), "100000".into()],
            vec!["--size = 100000".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--style-scale".into(), "0".into()],
            vec!["--style-scale = 0".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--style-scale".into(), "0.05".into()],
            vec!["--style-scale".into(), p(&style)],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--style-blend".into(), "1,2".into()],
            vec!["--style-blend = 1,2: give one weight per --style (1)".into()],
        ),
        // Lists are echoed as typed (they were Rust's debug lists, `[1.0, 2.0]`).
        (
            p(&frame),
            p(&style),
            vec!["--style-layer-weights".into(), "1,2,3".into()],
            vec!["--style-layer-weights = 1,2,3: give one weight per style layer (5)".into()],
        ),
        // As with --style-blend 0,0: weights that all vanish are refused, and so is a loss
        // whose every term weighs nothing (the start was written as it was, "loss 0").
        (
            p(&frame),
            p(&style),
            vec!["--style-layer-weights".into(), "0,0,0,0,0".into()],
            vec![
                "--style-layer-weights = 0,0,0,0,0".into(),
                "--style-weight 0".into(),
            ],
        ),
        (
            p(&frame),
            p(&style),
            vec![
                "--style-weight".into(),
                "0".into(),
                "--content-weight".into(),
                "0".into(),
            ],
            vec!["--content-weight = 0".into(), "weighs nothing".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--style-layers".into(), "conv9_9".into()],
            vec!["conv9_9".into(), "not a VGG19 layer".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--style-layers".into(), "conv1_1,conv2_1,conv1_1".into()],
            vec![
                "--style-layers = conv1_1,conv2_1,conv1_1".into(),
                "conv1_1 is named twice".into(),
            ],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--content-layers".into(), "conv4_2:1,conv4_2:2".into()],
            vec!["conv4_2 is named twice".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--init".into(), p(&missing)],
            vec![p(&missing), "no such file".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--init-noise".into(), "1.5".into()],
            vec!["--init-noise = 1.5".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--tolerance".into(), "-0.1".into()],
            vec!["--tolerance".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--device".into(), "tpu".into()],
            vec!["device 'tpu'".into()],
        ),
        (
            p(&frame),
            p(&style),
            vec!["--weights".into(), p(&d.join("nothing.safetensors"))],
            vec!["nothing.safetensors".into(), "cannot read".into()],
        ),
    ];
    for (content, painting, extra, expected) in cases {
        let mut command = stylize();
        command
            .arg(&content)
            .arg("--style")
            .arg(&painting)
            .args(["--iterations", "1", "--size", "64"])
            .args(&extra);
        if !extra.contains(&"-o".to_string()) {
            command.arg("-o").arg(&out);
        }
        let output = command.assert().failure().code(1).get_output().clone();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_line = stderr.lines().last().unwrap_or_default();
        assert!(last_line.starts_with("error: "), "{stderr}");
        for needle in &expected {
            assert!(stderr.contains(needle.as_str()), "{extra:?}: {stderr}");
        }
        assert!(!out.exists(), "{extra:?} left an output");
        assert!(partials(d).is_empty());
    }
    if !tch::Cuda::is_available() {
        stylize()
            .arg(&frame)
            .arg("--style")
            .arg(&style)
            .args(["--device", "cuda"])
            .arg("-o")
            .arg(&out)
            .assert()
            .failure()
            .stderr(predicates::str::contains("no CUDA GPU"));
    }
}

#[test]
fn the_start_can_be_any_image_or_a_mix_with_noise() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], name: &str| {
        let out = dir.path().join(name);
        let run = on_frame()
            .args(["--size", "64", "--iterations", "0"])
            .args(extra)
            .arg("-o")
            .arg(&out)
            .assert()
            .success();
        (image::open(out).unwrap().to_rgb8(), stderr_of(&run))
    };
    let start = |extra: &[&str], name: &str| run(extra, name).0;
    // An image: scaled to the content's processing size (64x36), whatever its own shape, and
    // the log says so where the shape changes (it did not).
    let painting = van_gogh();
    let (from_painting, log) = run(&["--init", painting.to_str().unwrap()], "painting.png");
    assert!(
        log.contains("of another shape than the content's 64x36: it is stretched to it"),
        "{log}"
    );
    let (_, log) = run(&["--init", frame().to_str().unwrap()], "frame.png");
    assert!(!log.contains("stretched"), "{log}");
    let expected = image::imageops::resize(
        &picture(&painting, 400),
        64,
        36,
        image::imageops::FilterType::Lanczos3,
    );
    let expected = stylize_video::io::image::to_rgb8(&expected);
    let worst = from_painting
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(worst <= 16, "{worst}");

    // Half noise: halfway between the content and the mean colour (the noise is faint).
    let mixed = start(&["--init-noise", "0.5"], "mixed.png");
    let content = stylize_video::io::image::to_rgb8(&picture(&frame(), 64));
    let mean = [123.68, 116.779, 103.939]; // Caffe's RGB mean
    let mut worst = 0.0f64;
    for (m, c) in mixed.pixels().zip(content.pixels()) {
        for ((got, content), mean) in m.0.iter().zip(c.0).zip(mean) {
            let want = 0.5 * f64::from(content) + 0.5 * mean;
            worst = worst.max((f64::from(*got) - want).abs());
        }
    }
    assert!(worst < 4.0, "{worst}");
}

#[test]
fn ctrl_c_stops_a_still_keeping_its_best_picture_beside_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kept.png");
    std::fs::write(&out, b"precious").unwrap();
    let gif = dir.path().join("steps.gif");
    let json = dir.path().join("run.json");
    let mut run = Watched::spawn(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("stylize-video"))
            .arg(frame())
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "64", "--iterations", "100000", "--overwrite"])
            .arg("-o")
            .arg(&out)
            .arg("--gif")
            .arg(&gif)
            .arg("--report")
            .arg(&json),
    );
    // The handler is set before this line; the optimisation starts after it.
    run.wait_for(
        " with 1 painting(s) on ",
        std::time::Duration::from_secs(120),
    );
    // Some iterations in (a 64 px iteration takes tens of milliseconds here)...
    std::thread::sleep(std::time::Duration::from_secs(5));
    // ...it stops within an iteration or two, not at the end of the run.
    let (code, log) = run.interrupt();
    assert_eq!(code, Some(130), "{log}");
    assert!(
        log.contains("stopped at iteration")
            && log.contains("of 100000; the best picture so far (loss ")
            && log.contains("kept.png' was not written"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"precious",
        "the old output is untouched"
    );
    assert!(!gif.exists() && !json.exists(), "{log}");
    assert!(partials(dir.path()).is_empty());
    // The work done is kept beside it, under the iteration it stopped at.
    let stopped: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kept.stopped-at-") && n.ends_with(".png"))
        .collect();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(log.contains(&stopped[0]), "{log}");
    let iteration: usize = stopped[0]["kept.stopped-at-".len()..stopped[0].len() - 4]
        .parse()
        .unwrap();
    assert!(iteration > 0 && iteration < 100000, "{iteration}");
    let painted = image::open(dir.path().join(&stopped[0])).unwrap();
    assert_eq!(painted.width(), 64);
    // Painted, not the content as it was.
    let content = picture(&frame(), 64);
    let difference = painted
        .to_rgb32f()
        .as_raw()
        .iter()
        .zip(content.as_raw())
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / content.as_raw().len() as f32;
    assert!(difference > 0.01, "{difference}");
}

#[test]
fn a_gif_that_cannot_be_written_leaves_no_picture_either() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("still.png");
    let json = dir.path().join("run.json");
    let steps = dir.path().join("steps");
    std::fs::create_dir(&steps).unwrap();
    let mut run = Watched::spawn(
        std::process::Command::new(assert_cmd::cargo::cargo_bin("stylize-video"))
            .arg(frame())
            .arg("--style")
            .arg(van_gogh())
            // Seconds of work after the first line, on the CPU whatever the machine has.
            .args(["--size", "64", "--iterations", "100"])
            .args(["--device", "cpu", "-o"])
            .arg(&out)
            .arg("--gif")
            .arg(steps.join("steps.gif"))
            .arg("--report")
            .arg(&json),
    );
    run.wait_for(
        " with 1 painting(s) on ",
        std::time::Duration::from_secs(120),
    );
    // The GIF's folder goes away while the picture is painted.
    std::fs::remove_dir(&steps).unwrap();
    let (code, log) = run.end_within(std::time::Duration::from_secs(600));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("steps.gif"), "{log}");
    // Outputs appear together or not at all: a rerun needs no --overwrite.
    assert!(!out.exists() && !json.exists(), "{log}");
    assert!(partials(dir.path()).is_empty());
}

#[test]
fn an_output_name_too_long_for_the_file_system_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join(format!("{}.png", "n".repeat(252)));
    let assert = on_frame()
        .args(["--size", "32", "--iterations", "1", "-o"])
        .arg(&long)
        .assert()
        .failure()
        .code(1);
    let log = stderr_of(&assert);
    assert!(
        log.contains("its name is 256 bytes long; a file name may have at most 255"),
        "{log}"
    );
    // The same for a report.
    let report = dir.path().join(format!("{}.json", "r".repeat(252)));
    let assert = on_frame()
        .args(["--size", "32", "--iterations", "1", "-o"])
        .arg(dir.path().join("fine.png"))
        .arg("--report")
        .arg(&report)
        .assert()
        .failure()
        .code(1);
    let log = stderr_of(&assert);
    assert!(log.contains("a file name may have at most 255"), "{log}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_still_can_be_written_with_16_bits() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.png");
    let shallow = dir.path().join("shallow.png");
    for (out, depth) in [(&deep, "16"), (&shallow, "8")] {
        on_frame()
            .args(["--size", "48", "--iterations", "5"])
            .args(["--bit-depth", depth])
            .arg("-o")
            .arg(out)
            .assert()
            .success();
    }
    let d = image::open(&deep).unwrap();
    let s = image::open(&shallow).unwrap();
    assert_eq!(d.color(), image::ColorType::Rgb16);
    assert_eq!(s.color(), image::ColorType::Rgb8);
    // The same picture: the 8-bit file is the 16-bit one rounded.
    let (d, s) = (d.to_rgb16(), s.to_rgb8());
    let worst = d
        .as_raw()
        .iter()
        .zip(s.as_raw())
        .map(|(a, b)| (f64::from(*a) / 257.0 - f64::from(*b)).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 0.51, "{worst}");
    // Finer steps than 8 bits hold: some values fall between two 8-bit levels.
    assert!(d.as_raw().iter().any(|v| v % 257 != 0));
}

#[test]
fn settings_without_effect_are_refused_by_name() {
    let second = hokusai().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    for (extra, output, expected) in [
        (
            &["--gif-size", "64"][..],
            "out.png",
            "has no effect without --gif",
        ),
        (
            &["--gif-every", "5"],
            "out.png",
            "has no effect without --gif",
        ),
        (
            &["--patience", "9"],
            "out.png",
            "has no effect without --tolerance",
        ),
        (
            &["--optimizer", "adam", "--lbfgs-history", "20"],
            "out.png",
            "applies to --optimizer lbfgs only",
        ),
        (
            &["--bit-depth", "16"],
            "out.jpg",
            "only PNG and TIFF files take 16 bits, and the output is",
        ),
        (
            &["--init", "noise", "--init-noise", "0.5"],
            "out.png",
            "has no effect with --init noise",
        ),
        (&["--seed", "3"], "out.png", "this run starts without noise"),
        // A negative number is the tool's to judge, not taken for a flag.
        (
            &["--style", &second, "--style-blend", "-1,1"],
            "out.png",
            "must be a finite number, zero or more",
        ),
        (
            &["--style", &second, "--style-blend", "0, 0"],
            "out.png",
            "0,0: the blend weights sum to zero",
        ),
    ] {
        let output = dir.path().join(output);
        let assert = on_frame()
            .args(["--size", "32", "--iterations", "1"])
            .args(extra)
            .arg("-o")
            .arg(&output)
            .assert()
            .failure()
            .code(1);
        let log = stderr_of(&assert);
        let flag = extra.iter().rev().nth(1).unwrap();
        assert!(
            log.contains(&format!("{flag} = ")) && log.contains(expected),
            "{extra:?}: {log}"
        );
        assert!(!output.exists());
    }
    // What they need given, they are taken.
    on_frame()
        .args(["--size", "32", "--iterations", "3"])
        .args(["--tolerance", "1e-3", "--patience", "2"])
        .args(["--optimizer", "adam"])
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    assert!(out.exists());
}

#[test]
fn outputs_are_told_apart_however_spelt_and_written_through_links() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    let refused = |args: &[std::ffi::OsString]| -> String {
        let assert = on_frame()
            .args(["--size", "32", "--iterations", "1"])
            .args(args)
            .assert()
            .failure()
            .code(1);
        stderr_of(&assert)
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let at = |s: &str| d.join(s).into_os_string();
    // One file under two spellings: the report would have replaced the picture.
    let dotted = d.join("sub/../dup.png").into_os_string();
    let log = refused(&[os("-o"), at("dup.png"), os("--report"), dotted]);
    assert!(log.contains("named twice among the outputs"), "{log}");
    assert!(!d.join("dup.png").exists());

    // A link is written through: the link stays, its target gets the picture.
    let target = d.join("sub/target.png");
    std::fs::write(&target, b"old").unwrap();
    std::os::unix::fs::symlink("sub/target.png", d.join("link.png")).unwrap();
    let log = refused(&[os("-o"), at("link.png")]);
    assert!(log.contains("already exists"), "{log}");
    on_frame()
        .args(["--size", "32", "--iterations", "1", "--overwrite", "-o"])
        .arg(d.join("link.png"))
        .assert()
        .success();
    assert!(d.join("link.png").symlink_metadata().unwrap().is_symlink());
    assert_eq!(image::open(&target).unwrap().width(), 32);
    // A link to nowhere is there all the same.
    std::os::unix::fs::symlink("sub/nothing.png", d.join("dangling.png")).unwrap();
    let log = refused(&[os("-o"), at("dangling.png")]);
    assert!(log.contains("already exists"), "{log}");

    // A pipe (or a device) is not a file to replace.
    assert!(std::process::Command::new("mkfifo")
        .arg(d.join("pipe.json"))
        .status()
        .unwrap()
        .success());
    let log = refused(&[
        os("-o"),
        at("fine.png"),
        os("--report"),
        at("pipe.json"),
        os("--overwrite"),
    ]);
    assert!(
        log.contains("pipe.json") && log.contains("not a regular file"),
        "{log}"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(d
        .join("pipe.json")
        .metadata()
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(!d.join("fine.png").exists());
    assert!(partials(d).is_empty() && partials(&d.join("sub")).is_empty());
}

/// A folder `shot` in `dir` of three frames, PREFIX0001.png to PREFIX0003.png: the sample frame
/// scaled to a long edge of `edge`, which is returned too.
fn frame_folder(dir: &Path, edge: u32, prefix: &str) -> (std::path::PathBuf, image::DynamicImage) {
    let shot = dir.join("shot");
    std::fs::create_dir(&shot).unwrap();
    let picture = image::open(frame())
        .unwrap()
        .resize(edge, edge, image::imageops::Triangle);
    for n in 1..=3 {
        picture
            .save(shot.join(format!("{prefix}{n:04}.png")))
            .unwrap();
    }
    (shot, picture)
}

#[test]
fn a_frame_folder_is_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (shot, source) = frame_folder(d, 64, "shot_");
    // What macOS leaves on shared drives: not frames.
    std::fs::write(shot.join("._shot_0001.png"), b"resource fork").unwrap();
    let run = |input: &Path, output: &Path| {
        let mut c = stylize();
        c.arg(input)
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "32", "--first-frame-iterations", "1"])
            .args(["--iterations", "1", "-o"])
            .arg(output);
        c
    };
    let out = d.join("out");
    run(&shot, &out.join("%04d.png")).assert().success();
    let written: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    assert_eq!(written.len(), 3, "{written:?}");

    let refused = |input: &Path, output: &Path| -> String {
        let assert = run(input, output).assert().failure().code(1);
        stderr_of(&assert)
    };
    // Written into the folder, the frames would be read as input by the next run.
    let log = refused(&shot, &shot.join("styled_%04d.png"));
    assert!(log.contains("is in the input folder"), "{log}");
    let log = refused(&shot.join("shot_%04d.png"), &shot.join("shot_%05d.png"));
    assert!(
        log.contains("would be taken for frames of the input"),
        "{log}"
    );
    // The same frames in two formats would be interleaved.
    source.save(shot.join("shot_0001.jpg")).unwrap();
    let log = refused(&shot, &d.join("two/%04d.png"));
    assert!(
        log.contains("several formats (1 .jpg, 3 .png)") && log.contains("shot_%04d.jpg"),
        "{log}"
    );
    std::fs::remove_file(shot.join("shot_0001.jpg")).unwrap();
    // A frame of another size is found before the first frame is painted, not when reached.
    source
        .resize_exact(64, 60, image::imageops::Triangle)
        .save(shot.join("shot_0003.png"))
        .unwrap();
    let log = refused(&shot, &d.join("sizes/%04d.png"));
    assert!(
        log.contains("shot_0003.png") && log.contains("is 64x60") && log.contains("one size"),
        "{log}"
    );
    assert!(!d.join("two").exists() && !d.join("sizes").exists());
    assert_eq!(std::fs::read_dir(&shot).unwrap().count(), 4);
    // Only the frames of --frames are read: a shard is not stopped (or slowed) by the others.
    std::fs::write(shot.join("shot_0001.png"), b"damaged").unwrap();
    let part = d.join("part");
    run(&shot, &part.join("%04d.png"))
        .args(["--frames", "1:2"])
        .assert()
        .success();
    let written: Vec<_> = std::fs::read_dir(&part)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    // A folder's frames are numbered by position from 0: the second is 1.
    assert_eq!(written, ["0001.png"]);
}

#[test]
fn running_out_of_memory_on_the_cpu_says_which_size_fits_in_a_few_lines() {
    // 6 GB of address space: libtorch loads, a 4096-pixel image's activations do not fit.
    let binary = assert_cmd::cargo::cargo_bin("stylize-video");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.png");
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v 6000000 && exec "$@""#)
        .arg("sh")
        .arg(binary)
        .arg(frame())
        .arg("--style")
        .arg(van_gogh())
        .args(["--size", "4096", "-n", "1", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("ran out of memory optimising a 4096x2304 image")
            && log.contains("--size 2896"),
        "{log}"
    );
    assert!(log.len() < 2000, "no C++ call stacks: {log}");
    assert!(!out.exists());
}

#[test]
fn default_and_long_output_names_keep_the_input_s_name_and_format() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = image::open(frame())
        .unwrap()
        .resize(64, 64, image::imageops::Triangle);
    // An EXR stays EXR; a name that is not UTF-8 keeps its bytes.
    let exr = d.join("plate.exr");
    image::DynamicImage::ImageRgb32F(source.to_rgb32f())
        .save(&exr)
        .unwrap();
    let latin1 = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png"));
    source.save(&latin1).unwrap();
    for input in [&exr, &latin1] {
        stylize()
            .arg(input)
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "32", "-n", "0"])
            .assert()
            .success();
    }
    assert!(d.join("plate.stylized.exr").is_file());
    assert!(d
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.stylized.png"))
        .is_file());
    // A name of 250 bytes (its temporary name would be longer than a name may be).
    let long = d.join(format!("{}.png", "a".repeat(246)));
    on_frame()
        .args(["--size", "32", "-n", "0", "-o"])
        .arg(&long)
        .assert()
        .success();
    assert!(long.is_file());
    assert!(partials(d).is_empty());
}

#[test]
fn a_sequence_resumes_however_its_path_is_spelt_and_gives_the_same_frames() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (shot, _) = frame_folder(d, 160, "");
    let run = |input: &Path| {
        let mut c = stylize();
        c.arg(input)
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "96", "--first-frame-iterations", "1"])
            .args(["--iterations", "1", "--keep-frames", "--overwrite", "-o"])
            .arg(d.join("out/%04d.png"));
        c
    };
    run(&shot.join("%04d.png")).assert().success();
    let frames = || -> Vec<Vec<u8>> {
        (1..=3)
            .map(|n| std::fs::read(d.join(format!("out/{n:04}.png"))).unwrap())
            .collect()
    };
    let painted = frames();
    // The same frames by another road: what was kept is taken, nothing is painted again.
    let assert = run(&d.join("out/../shot/%04d.png")).assert().success();
    let log = stderr_of(&assert);
    assert!(
        log.contains("resuming: 3 finished frame(s)") && log.contains("(3 resumed, 0 stylised)"),
        "{log}"
    );
    // Scaled up from 96 to 160 px and rounded to 8 bits, a frame made from where it was kept
    // is the frame made as it was painted, to the bit.
    assert!(
        frames() == painted,
        "resumed frames differ from painted ones"
    );
}

#[test]
fn a_repaired_frame_resumes_and_a_changed_painted_one_is_painted_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (shot, _) = frame_folder(d, 64, "");
    let run = |shot: &std::path::Path| {
        let mut c = stylize();
        c.arg(shot.join("%04d.png"))
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", "48", "--first-frame-iterations", "2"])
            .args(["--iterations", "1", "--keep-frames", "-o"])
            .arg(d.join("out/%04d.png"));
        c
    };
    // The last frame is damaged after its header: the run stops there, two frames painted.
    let third = shot.join("0003.png");
    let whole = std::fs::read(&third).unwrap();
    std::fs::write(&third, &whole[..whole.len() / 2]).unwrap();
    let failed = stderr_of(&run(&shot).assert().failure());
    assert!(failed.contains("0003.png"), "{failed}");
    // Repaired, it is the only frame painted: the others' inputs did not change.
    std::fs::write(&third, &whole).unwrap();
    let resumed = stderr_of(&run(&shot).assert().success());
    assert!(
        resumed.contains("resuming: 2 finished frame(s)")
            && resumed.contains("(2 resumed, 1 stylised)"),
        "{resumed}"
    );
    // A painted frame's input changed: it and the frames after it are painted again.
    let second = shot.join("0002.png");
    image::open(&second).unwrap().fliph().save(&second).unwrap();
    // Changed within the second it was made, its size perhaps the same: dated later, as an
    // edit would be.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&second)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let again = stderr_of(&run(&shot).assert().success());
    assert!(
        again.contains("frame 1 of the output: its input")
            && again.contains("0002.png' changed")
            && again.contains("(1 resumed, 2 stylised)"),
        "{again}"
    );
    // The shot moved elsewhere (as a project to another disk) and a frame touched, its
    // contents the same: everything resumes.
    let moved = d.join("moved-shot");
    std::fs::rename(&shot, &moved).unwrap();
    std::fs::File::options()
        .write(true)
        .open(moved.join("0001.png"))
        .unwrap()
        .set_modified(later + std::time::Duration::from_secs(60))
        .unwrap();
    let moved_log = stderr_of(&run(&moved).assert().success());
    assert!(
        moved_log.contains("resuming: 3 finished frame(s)")
            && moved_log.contains("(3 resumed, 0 stylised)"),
        "{moved_log}"
    );
}

#[test]
fn the_log_says_why_the_optimiser_stopped_and_what_a_precision_does_here() {
    let dir = tempfile::tempdir().unwrap();
    // Its own painting: the start is already the optimum, every step diverges from a loss
    // near 0 and is refused; nothing is non-finite.
    let assert = stylize()
        .arg(frame())
        .arg("--style")
        .arg(frame())
        .args([
            "--size",
            "32",
            "-n",
            "20",
            "--device",
            "cpu",
            "--precision",
            "tf32",
            "-o",
        ])
        .arg(dir.path().join("same.png"))
        .assert()
        .success();
    let log = stderr_of(&assert);
    assert!(
        log.contains("refused 12 step(s) that gave a non-finite loss or multiplied it by over 100")
            && log.contains("(stalled: 12 steps in a row refused; the best image is kept)")
            && log.contains("--precision tf32 is a mode of NVIDIA GPUs' tensor cores"),
        "{log}"
    );
    assert!(
        !log.contains("NonFinite") && !log.contains("met non-finite"),
        "{log}"
    );
}

#[test]
fn an_l_bfgs_memory_no_device_can_hold_is_refused_by_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    // A million pairs of 256x144 images: 824 GiB (it was a crash, exit 101, inside the loop).
    let assert = stylize()
        .arg(frame())
        .arg("--style")
        .arg(van_gogh())
        .args([
            "--size",
            "256",
            "-n",
            "1000000",
            "--lbfgs-history",
            "1000000",
            "-o",
        ])
        .arg(dir.path().join("out.png"))
        .assert()
        .failure()
        .code(1);
    let log = stderr_of(&assert);
    assert!(
        log.contains("--lbfgs-history = 1000000: 1000000 pairs of 256x144 images need 824.0 GiB"),
        "{log}"
    );
    assert!(!dir.path().join("out.png").exists());
}

#[test]
fn a_sequence_frame_turned_by_its_exif_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shot = d.join("shot");
    std::fs::create_dir(&shot).unwrap();
    let picture = image::open(frame())
        .unwrap()
        .resize(64, 64, image::imageops::Triangle);
    let mut jpeg = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    for n in 1..=3 {
        std::fs::write(shot.join(format!("{n:04}.jpg")), &jpeg).unwrap();
    }
    // Stored as the others, shown on its side: it reads upright as 36x64.
    std::fs::write(shot.join("0003.jpg"), with_orientation(&jpeg, 6)).unwrap();
    assert_eq!(
        stylize_video::io::image::load(&shot.join("0003.jpg"))
            .unwrap()
            .dimensions(),
        (36, 64)
    );
    let assert = stylize()
        .arg(shot.join("%04d.jpg"))
        .arg("--style")
        .arg(van_gogh())
        .args([
            "--size",
            "32",
            "--first-frame-iterations",
            "1",
            "-n",
            "1",
            "-o",
        ])
        .arg(d.join("out/%04d.png"))
        .assert()
        .failure()
        .code(1);
    let log = stderr_of(&assert);
    assert!(log.contains("0003.jpg") && log.contains("36x64"), "{log}");
    assert!(
        !d.join("out/0001.png").exists(),
        "refused before the first frame is painted"
    );
}

#[test]
fn a_size_too_small_for_a_picture_s_shape_says_which_size_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let square = dir.path().join("square.png");
    image::open(frame())
        .unwrap()
        .resize_exact(16, 16, image::imageops::Triangle)
        .save(&square)
        .unwrap();
    let refused = |input: &Path, size: &str| {
        let assert = stylize()
            .arg(input)
            .arg("--style")
            .arg(van_gogh())
            .args(["--size", size, "-n", "1", "-o"])
            .arg(dir.path().join("out.png"))
            .assert()
            .failure()
            .code(1);
        stderr_of(&assert)
    };
    // 1280x720 at a long edge of 20 is 20x11.
    let log = refused(&frame(), "20");
    assert!(
        log.contains("--size = 20") && log.contains("a long edge of at least 28 pixels would do"),
        "{log}"
    );
    // The square content fits at 16; the landscape painting does not, and is what is named.
    let log = refused(&square, "16");
    assert!(
        log.contains("van-gogh") && log.contains("or its own when smaller, times --style-scale"),
        "{log}"
    );
}

#[test]
fn quality_presets_set_the_iterations_that_flags_leave_unsaid() {
    let dir = tempfile::tempdir().unwrap();
    let run = |flags: &[&str]| {
        let (out, json) = (dir.path().join("q.png"), dir.path().join("q.json"));
        let (_, r) = run_with_report(
            on_frame()
                .args(["--size", "32", "--overwrite", "-q"])
                .args(flags),
            &out,
            &json,
        );
        (
            r["settings"]["iterations"].as_u64().unwrap(),
            r["frames"][0]["iterations"].as_u64().unwrap(),
        )
    };
    assert_eq!(run(&["--quality", "draft"]), (100, 100));
    assert_eq!(run(&["--iterations", "40"]), (40, 40));
    // Normal's and final's counts: the binary's unit test (running them here would take long).
    // A preset that every count overrides is refused, as other flags without effect are.
    let refused = on_frame()
        .args(["--quality", "final", "--iterations", "3", "-o"])
        .arg(dir.path().join("r.png"))
        .assert()
        .failure();
    let text = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(
        text.contains("--quality") && text.contains("leave one out"),
        "{text}"
    );
    let help = String::from_utf8(stylize().arg("--help").output().unwrap().stdout).unwrap();
    assert!(
        help.contains("--quality <QUALITY>") && help.contains("draft"),
        "{help}"
    );
    stylize()
        .arg(frame())
        .args(["--style", "x.jpg", "--quality", "best"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "invalid value 'best' for '--quality",
        ));
}

/// `--device auto` can only find a GPU if the binary loads libtorch_cuda, which no symbol of it
/// references: the linker's --as-needed would drop it and CUDA would be silently absent
/// (`build.rs` forces it in). Checked on the binary's own list of needed libraries.
#[test]
fn the_binary_needs_libtorch_cuda_where_libtorch_has_it() {
    let binary = assert_cmd::cargo::cargo_bin("stylize-video");
    let run = |program: &str, args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(out.status.success(), "{program} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Where the binary finds libtorch (ldd resolves the rpath).
    let resolved = run("ldd", &[binary.as_os_str()]);
    let cpu = resolved
        .lines()
        .find_map(|l| l.trim().strip_prefix("libtorch_cpu.so => "))
        .and_then(|rest| rest.split(" (").next())
        .expect("the binary loads libtorch_cpu.so");
    let cuda = Path::new(cpu).with_file_name("libtorch_cuda.so");
    if !cuda.is_file() {
        skip(
            "the_binary_needs_libtorch_cuda_where_libtorch_has_it",
            &format!("this libtorch ({cpu}) is a CPU-only build"),
        );
        return;
    }
    let dynamic = run("readelf", &["-d".as_ref(), binary.as_os_str()]);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.strip_suffix(']'))
        .collect();
    assert!(needed.contains(&"libtorch_cpu.so"), "{needed:?}");
    assert!(needed.contains(&"libtorch_cuda.so"), "{needed:?}");
}
