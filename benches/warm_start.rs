//! How many iterations does a warm frame need, started from the previous result as it is or
//! moved along the optical flow? For each frame of a clip, a cold run of N iterations from the
//! content sets the loss to reach; then, for each kind of warm start, the frames are stylised in
//! order, each from the previous one's result, until they reach their frame's cold loss (the
//! first frame is the cold run itself; `flow` is the command line's flow warm start (the flow
//! kept where it lines the frames up, see `flow::validated`), `flow-raw` the flow as estimated,
//! `flow-nearest`, `flow-bilinear` and `flow-bicubic` read the previous result as they say,
//! `flow-residual` adds what the flow leaves unexplained of the new content). Reports, per kind,
//! the iterations each frame needed,
//! the temporal error (mean |difference|, 0..255, between each result and the previous result
//! moved along the input's flow, as in Ruder et al.) and the time of the flow.
//!
//! `cargo bench --bench warm_start -- [--input samples/video/bigbuckbunny.mp4 | frames/%05d.png]
//!  [--skip 0] [--size 128] [--frames 12] [--cold 300] [--cap 300]
//!  [--modes previous,flow,flow-bilinear,flow-bicubic,flow-residual] [--targets L0,L1,...]
//!  [--policy target|fixed] [--histories] [--device cpu|cuda]`
//!
//! `--policy` says when a warm frame stops short of `--cap`: `target` on reaching its frame's
//! cold loss, `fixed` never; the
//! figures report, per frame, when the cold loss was reached and the final loss over it, and with
//! `--histories` the loss over it after every iteration (to try stopping rules on).
//!
//! On CUDA the network runs as the command line's default there (TF32, channels-last).

#[path = "common/args.rs"]
mod args;
#[path = "common/gatys.rs"]
mod gatys;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use args::option;
use serde_json::json;
use stylize_video::engine::flow::{
    mean_abs_difference, validated, warp, FlowEstimator, HornSchunck, Sampling,
};
use stylize_video::engine::preprocess::to_network;
use stylize_video::engine::stylizer::LossSettings;
use stylize_video::engine::vgg::CAFFE_MEAN_BGR;
use stylize_video::frames::{FrameSource, Ratio};
use stylize_video::io::sequence::{is_sequence, SequenceSource};
use stylize_video::pipeline::WARM_START_SAMPLING;
use tch::Tensor;

fn open(input: &Path, size: u32) -> Box<dyn FrameSource> {
    if is_sequence(input) {
        return Box::new(SequenceSource::open(input, Ratio::new(25, 1), size).expect("the frames"));
    }
    #[cfg(feature = "video")]
    {
        Box::new(
            stylize_video::io::video::decode::VideoSource::open(input, size).expect("the clip"),
        )
    }
    #[cfg(not(feature = "video"))]
    panic!("a build without video support reads frame sequences only")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = gatys::root();
    let input = PathBuf::from(option(
        &args,
        "--input",
        &root
            .join("samples/video/bigbuckbunny.mp4")
            .display()
            .to_string(),
    ));
    let number = |name: &str, default: &str| -> usize {
        option(&args, name, default).parse().expect("a number")
    };
    let size = number("--size", "128") as u32;
    let count = number("--frames", "12");
    let cold_iterations = number("--cold", "300");
    let cap = number("--cap", "300");
    let modes = option(&args, "--modes", "previous,flow");
    let policy = Policy::parse(&option(&args, "--policy", "target"));
    let device = gatys::device(&args);

    let skip = number("--skip", "0");
    let mut source = open(&input, size);
    for _ in 0..skip {
        source.next_frame().expect("a frame");
    }
    let contents: Vec<Tensor> = (0..count)
        .map_while(|_| source.next_frame().expect("a frame"))
        .map(|f| to_network(&f.image, device))
        .collect();
    let vgg = gatys::network(device);
    let loss = LossSettings::default();
    let style = gatys::van_gogh(&vgg, size, &loss);
    let stylizer = |n: usize| gatys::stylizer(&vgg, &style, &loss, n);

    // The input's flow from each frame to the one before, for warm starts and temporal error.
    let estimator = HornSchunck::default();
    let started = Instant::now();
    let back: Vec<Option<Tensor>> = (0..contents.len())
        .map(|k| (k > 0).then(|| estimator.flow(&contents[k], &contents[k - 1])))
        .collect();
    // Wait for the device, so that the time is the flows' own.
    if let Some(Some(last)) = back.last() {
        let _ = last.sum(tch::Kind::Double).double_value(&[]);
    }
    let flow_ms = 1e3 * started.elapsed().as_secs_f64() / (contents.len().max(2) - 1) as f64;
    // Network space back to 0..255 pixel values, as written.
    let mean = Tensor::from_slice(&CAFFE_MEAN_BGR)
        .view([1, 3, 1, 1])
        .to_device(device);
    let shown = |x: &Tensor| (x + &mean).clamp(0.0, 255.0);
    let temporal = |images: &[Tensor]| -> f64 {
        let errors: Vec<f64> = (1..images.len())
            .map(|k| {
                let moved = warp(
                    &images[k - 1],
                    back[k].as_ref().expect("a flow"),
                    Sampling::Bilinear,
                );
                mean_abs_difference(&shown(&images[k]), &shown(&moved))
            })
            .collect();
        errors.iter().sum::<f64>() / errors.len().max(1) as f64
    };

    // Each frame's cold loss: measured, or (--targets, from an earlier run with the same
    // settings) given, when only the first frame's cold run is needed.
    let given: Option<Vec<f64>> = args.iter().position(|a| a == "--targets").map(|_| {
        option(&args, "--targets", "")
            .split(',')
            .map(|v| v.parse().expect("a loss"))
            .collect()
    });
    let runs = if given.is_some() { 1 } else { contents.len() };
    let cold: Vec<_> = contents[..runs]
        .iter()
        .map(|c| {
            stylizer(cold_iterations)
                .run(c, c, |_| ControlFlow::Continue(()))
                .expect("cold run")
        })
        .collect();
    let targets = given.unwrap_or_else(|| cold.iter().map(|o| o.best.total).collect());
    // The loss of each content frame as it is (one evaluation each), beside its cold loss: how
    // well the one would predict the other (docs/PERFORMANCE.md).
    let content_losses: Vec<f64> = contents
        .iter()
        .map(|c| {
            stylizer(0)
                .run(c, c, |_| ControlFlow::Continue(()))
                .expect("evaluation")
                .initial
                .total
        })
        .collect();
    assert_eq!(targets.len(), contents.len(), "one target per frame");
    let cold_images: Vec<Tensor> = cold.iter().map(|o| o.image.shallow_clone()).collect();
    println!(
        "{}",
        json!({ "start": "cold", "size": contents[0].size(), "frames": contents.len(),
                "iterations": cold_iterations,
                "losses": targets,
                "content_losses": content_losses,
                "temporal_error": (runs > 1).then(|| temporal(&cold_images)),
                "input_temporal_error": temporal(&contents),
                "flow_ms_per_pair": flow_ms })
    );

    for mode in modes.split(',') {
        let mut images = vec![cold_images[0].shallow_clone()];
        let mut needed = Vec::new();
        let mut start_ratio = Vec::new();
        let mut final_ratio = Vec::new();
        let mut run = Vec::new();
        let mut masked_share = Vec::new();
        let mut histories = Vec::new();
        let started = Instant::now();
        for k in 1..contents.len() {
            let previous = images.last().expect("a result");
            let flow = back[k].as_ref().expect("a flow");
            let init = match mode {
                "flow" => warp(
                    previous,
                    &validated(flow, &contents[k], &contents[k - 1]),
                    WARM_START_SAMPLING,
                ),
                // The flow as estimated, where it failed too (the command line's before
                // 2026-11-24).
                "flow-raw" => warp(previous, flow, WARM_START_SAMPLING),
                "flow-nearest" => warp(previous, flow, Sampling::Nearest),
                "flow-bilinear" => warp(previous, flow, Sampling::Bilinear),
                "flow-bicubic" => warp(previous, flow, Sampling::Bicubic),
                "previous" => previous.shallow_clone(),
                // The previous result moved along the flow, plus what the flow does not explain
                // of this frame's content (new objects, light): `x' + (c - c')`.
                "flow-residual" => {
                    warp(previous, flow, WARM_START_SAMPLING) + &contents[k]
                        - warp(&contents[k - 1], flow, WARM_START_SAMPLING)
                }
                // The moved previous result where the moved previous content matches this frame's
                // content, this frame's content where it does not (disocclusions, new objects,
                // the flow's failures): what the motion does not explain starts cold.
                m if m.starts_with("flow-masked") => {
                    let tolerance: f64 = m
                        .strip_prefix("flow-masked")
                        .and_then(|t| t.strip_prefix(':'))
                        .map_or(12.0, |t| t.parse().expect("flow-masked:TOLERANCE"));
                    let moved = warp(previous, flow, WARM_START_SAMPLING);
                    let unexplained = (&contents[k]
                        - warp(&contents[k - 1], flow, WARM_START_SAMPLING))
                    .abs()
                    .amax([1], true);
                    let mask = unexplained.gt(tolerance).to_kind(moved.kind());
                    masked_share.push(mask.mean(tch::Kind::Double).double_value(&[]));
                    &contents[k] * &mask + moved * (1.0 - &mask)
                }
                other => panic!("unknown warm start {other}"),
            };
            let target = targets[k];
            // Where the policy stops: at the cold loss, or never (the cap).
            let stop_at = match policy {
                Policy::Target => target,
                Policy::Fixed => f64::NEG_INFINITY,
            };
            let mut reached = None;
            let outcome = stylizer(cap)
                .run(&contents[k], &init, |it| {
                    let loss = it.loss().expect("a loss");
                    if loss <= target && reached.is_none() {
                        reached = Some(it.iteration);
                    }
                    if loss <= stop_at {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                })
                .expect("warm run");
            needed.push(reached);
            start_ratio.push(outcome.initial.total / target);
            final_ratio.push(outcome.best.total / target);
            run.push(outcome.iterations);
            histories.push(
                outcome
                    .history
                    .iter()
                    .map(|l| l / target)
                    .collect::<Vec<f64>>(),
            );
            images.push(outcome.image);
        }
        let reached: Vec<usize> = needed.iter().flatten().copied().collect();
        println!(
            "{}",
            json!({ "start": mode,
                    "iterations_to_cold_loss": needed,
                    "mean": reached.iter().sum::<usize>() as f64 / reached.len().max(1) as f64,
                    "min": reached.iter().min(), "max": reached.iter().max(),
                    "never_reached": needed.len() - reached.len(),
                    "start_loss_over_cold_loss": start_ratio,
                    "policy": format!("{policy:?}"),
                    "iterations_run": run,
                    "mean_iterations_run": run.iter().sum::<usize>() as f64 / run.len().max(1) as f64,
                    "final_loss_over_cold_loss": final_ratio,
                    "temporal_error": temporal(&images),
                    "masked_share": masked_share,
                    "loss_over_cold_loss_by_iteration":
                        args.iter().any(|a| a == "--histories").then_some(histories),
                    "seconds": started.elapsed().as_secs_f64() })
        );
    }
}

/// When a warm frame stops (besides `--cap`).
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// On reaching its frame's cold loss (known from the cold runs).
    Target,
    /// Never: every warm frame runs `--cap` iterations.
    Fixed,
}

impl Policy {
    fn parse(text: &str) -> Policy {
        match text {
            "target" => Policy::Target,
            "fixed" => Policy::Fixed,
            _ => panic!("--policy target|fixed, not {text}"),
        }
    }
}
