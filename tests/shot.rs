//! Shot cuts: a frame that starts a new shot starts cold instead of from a painting of another
//! picture. Real clips: bikes has five cuts (frames 30, 76, 137, 187 and 242, as ffmpeg's scene
//! detection finds them) between shots of fast motion.
#![cfg(feature = "video")]

mod common;

use assert_cmd::Command;
use common::*;
use stylize_video::engine::flow::{FlowEstimator, HornSchunck};
use stylize_video::engine::shot::{is_cut, unexplained_difference, DEFAULT_CUT_THRESHOLD};
use tch::Tensor;

/// Every frame of a sample clip at 128 px, network space.
fn clip(name: &str) -> Vec<Tensor> {
    clip_frames(name, 128, None)
}

/// The difference between frame `k` and frame `k - 1` moved onto it.
fn difference(frames: &[Tensor], k: usize) -> f64 {
    let back = HornSchunck::default().flow(&frames[k], &frames[k - 1]);
    unexplained_difference(&frames[k], &frames[k - 1], &back)
}

const BIKES_CUTS: [usize; 5] = [30, 76, 137, 187, 242];

#[test]
fn cuts_are_told_from_fast_motion_in_real_clips() {
    let bikes = clip("bikes.mp4");
    assert_eq!(bikes.len(), 250);
    // Around every cut, and the clip's fastest motion (frames 95-104).
    let mut worst_within = 0.0f64;
    let mut least_at_cut = f64::INFINITY;
    let around = BIKES_CUTS.iter().flat_map(|&c| c - 3..c + 3).chain(95..105);
    for k in around {
        let d = difference(&bikes, k);
        let cut = BIKES_CUTS.contains(&k);
        assert_eq!(
            is_cut(d, DEFAULT_CUT_THRESHOLD),
            cut,
            "bikes frame {k}: difference {d:.2}"
        );
        if cut {
            least_at_cut = least_at_cut.min(d);
        } else {
            worst_within = worst_within.max(d);
        }
    }
    eprintln!("bikes: within shots at most {worst_within:.2}, at cuts at least {least_at_cut:.2}");
    // Not a close call either way.
    assert!(
        worst_within < 0.8 * DEFAULT_CUT_THRESHOLD && least_at_cut > 1.5 * DEFAULT_CUT_THRESHOLD
    );

    // Slow motion and a hand-held camera: no cut anywhere in the first twelve frames.
    for name in ["bigbuckbunny.mp4", "carphone_pristine.mp4"] {
        let frames = clip(name);
        for k in 1..12 {
            let d = difference(&frames, k);
            assert!(
                !is_cut(d, DEFAULT_CUT_THRESHOLD),
                "{name} frame {k}: {d:.2}"
            );
        }
    }
    // Different films one after the other: a cut. Never one with detection turned off.
    let bunny = clip("bigbuckbunny.mp4");
    let (_, _, h, w) = bikes[0].size4().unwrap();
    let other = bunny[60].upsample_bilinear2d([h, w], false, None, None);
    let d = difference(&[other, bikes[0].shallow_clone()], 1);
    assert!(is_cut(d, DEFAULT_CUT_THRESHOLD), "{d:.2}");
    assert!(!is_cut(d, 0.0));
}

/// Stylising across bikes' first cut: the frame after the cut starts cold, from its own content
/// (no content loss at its start), while the frames around it start warm; the report and the
/// log say where the new shot began. With detection off, the cut frame starts warm.
#[test]
fn a_new_shot_starts_cold() {
    let dir = tempfile::tempdir().unwrap();
    let mut cuts = Vec::new();
    for threshold in ["14", "0"] {
        let json = dir.path().join(format!("{threshold}.json"));
        let (assert, r) = run_with_report(
            Command::cargo_bin("stylize-video")
                .unwrap()
                .arg(root().join("samples/video/bikes.mp4"))
                .arg("--style")
                .arg(van_gogh())
                .args(["--size", "96", "--frames", "27:33"])
                .args(["--first-frame-iterations", "12", "--iterations", "4"])
                .args(["--cut-threshold", threshold]),
            &dir.path().join(threshold).join("%05d.png"),
            &json,
        );
        let log = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
        assert_eq!(
            r["settings"]["cut_threshold"].as_f64(),
            Some(threshold.parse().unwrap())
        );
        let frames = r["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 6);
        let starts: Vec<&str> = frames
            .iter()
            .map(|f| f["start"].as_str().unwrap())
            .collect();
        let expected = if threshold == "14" {
            ["first", "warm", "warm", "cut", "warm", "warm"]
        } else {
            ["first", "warm", "warm", "warm", "warm", "warm"]
        };
        assert_eq!(starts, expected);
        let start_content: Vec<(u64, f64, u64)> = frames
            .iter()
            .map(|f| {
                (
                    f["index"].as_u64().unwrap(),
                    f["initial"]["content"].as_f64().unwrap(),
                    f["iterations"].as_u64().unwrap(),
                )
            })
            .collect();
        eprintln!("--cut-threshold {threshold}: (frame, content loss at the start, iterations) {start_content:?}");
        for &(index, content, iterations) in &start_content {
            // The run's first frame and the cut frame start from their content.
            let cold = index == 27 || (index == 30 && threshold == "14");
            assert_eq!(content == 0.0, cold, "frame {index}: {content}");
            assert_eq!(iterations, if cold { 12 } else { 4 }, "frame {index}");
        }
        if threshold == "14" {
            assert!(log.contains("frame 30: a new shot"), "{log}");
            assert!(
                log.contains("1 new shot(s) started cold, at frame(s) 30"),
                "{log}"
            );
        } else {
            assert!(!log.contains("new shot"), "{log}");
        }
        cuts.push(r["totals"]["shot_cuts"].clone());
    }
    assert_eq!(cuts, [serde_json::json!([30]), serde_json::json!([])]);
}

#[test]
fn an_absurd_cut_threshold_is_refused() {
    for bad in ["-1", "300", "nan"] {
        let out = Command::cargo_bin("stylize-video")
            .unwrap()
            .arg(root().join("samples/video/bikes.mp4"))
            .arg("--style")
            .arg(van_gogh())
            .args(["--cut-threshold", bad])
            .arg("-o")
            .arg(std::env::temp_dir().join("never-written.mp4"))
            .assert()
            .failure();
        let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(err.contains("--cut-threshold"), "{bad}: {err}");
    }
}
