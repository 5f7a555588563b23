//! Time of one loss evaluation (forward to conv5_1 and backward to the image) per size,
//! precision and memory layout, on the CPU and on CUDA when present; then the same evaluation in
//! PyTorch on the same machine (benches/pytorch_evaluation.py, when `python3` can import torch)
//! for a side-by-side ratio. Prints one JSON object per line, then a table.
//!
//! With `--lbfgs M`, also the time of one whole L-BFGS iteration (evaluation, direction from a
//! full memory of 50 pairs, bookkeeping): 50 iterations fill the memory, the next M are timed;
//! PyTorch's `torch.optim.LBFGS` is timed the same way. `--lbfgs-forms two-loop,compact` times
//! each way of computing the direction (default: the device's own).
//!
//! `cargo bench --bench evaluation -- [--sizes 256,512 | 512x512,1280x720] [--precisions fp32,tf32,bf16]
//!   [--layouts contiguous,channels-last] [--devices cpu,cuda] [--repeats 5] [--warmup 2] [--lbfgs M] [--no-pytorch]`

#[path = "common/args.rs"]
mod args;

use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::time::Instant;

use args::option;
use serde_json::{json, Value};
use stylize_video::engine::stylizer::{
    LossSettings, OptimizerKind, OptimizerSettings, StyleTarget, Stylizer,
};
use stylize_video::engine::vgg::{Precision, Vgg19};
use tch::{Device, Kind, Tensor};

fn list(args: &[String], name: &str, default: &str) -> Vec<String> {
    option(args, name, default)
        .split(',')
        .map(|s| s.trim().to_string())
        .collect()
}

/// `512` (square) or `1280x720` (width x height).
fn size(text: &str) -> (i64, i64) {
    match text.split_once('x') {
        Some((w, h)) => (w.parse().expect("a width"), h.parse().expect("a height")),
        None => {
            let s = text.parse().expect("a size");
            (s, s)
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Case {
    device: Device,
    size: (i64, i64),
    precision: Precision,
    channels_last: bool,
}

/// Correction pairs of the timed L-BFGS (the default), filled before timing.
const HISTORY: usize = 50;

/// Median milliseconds of one evaluation, and with `lbfgs` > 0 the mean milliseconds of one
/// L-BFGS iteration over `lbfgs` iterations after the memory is full, for each of `forms`
/// (empty: the device's default).
fn bench(
    case: &Case,
    repeats: usize,
    warmup: usize,
    lbfgs: usize,
    forms: &[String],
) -> (f64, Vec<(String, Option<f64>)>) {
    let vgg = Vgg19::load_with(
        &Vgg19::default_weights_path(),
        case.device,
        case.precision,
        case.channels_last,
    )
    .expect("weights");
    tch::manual_seed(0);
    let (w, h) = case.size;
    let random = || {
        (Tensor::rand([1, 3, h, w], (Kind::Float, Device::Cpu)) * 255.0 - 120.0)
            .to_device(case.device)
    };
    let (content, style) = (random(), random());
    let loss = LossSettings::default();
    let target = StyleTarget::new(&vgg, &[(style, 1.0)], &loss).expect("style target");
    let stylizer =
        Stylizer::new(&vgg, &target, loss.clone(), OptimizerSettings::default()).expect("stylizer");
    let t = stylizer.content_target(&content).expect("content target");
    for _ in 0..warmup {
        stylizer.evaluate(&t, &content).expect("evaluation");
    }
    let times = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            // Reads every loss figure back to the host: synchronises with the device.
            stylizer.evaluate(&t, &content).expect("evaluation");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let evaluation = median(times);
    if lbfgs == 0 {
        return (evaluation, Vec::new());
    }
    let mut timed = Vec::new();
    for form in forms {
        if form != "default" {
            std::env::set_var("STYLIZE_VIDEO_LBFGS_FORM", form);
        }
        timed.push((form.clone(), iteration_ms(&vgg, &target, &content, lbfgs)));
        std::env::remove_var("STYLIZE_VIDEO_LBFGS_FORM");
    }
    (evaluation, timed)
}

/// Mean milliseconds of one L-BFGS iteration, over `lbfgs` iterations after the memory is full;
/// `None` (and a note) if the run stopped before (a benchmark that loses the other cases to one
/// early stop would lose a GPU run's worth of figures).
fn iteration_ms(vgg: &Vgg19, target: &StyleTarget, content: &Tensor, lbfgs: usize) -> Option<f64> {
    let loss = LossSettings::default();
    let optimizer = OptimizerSettings {
        kind: OptimizerKind::Lbfgs {
            history: HISTORY,
            learning_rate: 1.0,
            line_search: false,
        },
        iterations: HISTORY + lbfgs,
        ..OptimizerSettings::default()
    };
    let stylizer = Stylizer::new(vgg, target, loss, optimizer).expect("stylizer");
    let mut started = None;
    let outcome = stylizer
        .run(content, content, |it| {
            if it.iteration == HISTORY {
                // Waits for the device, so that the clock starts with the queue empty.
                it.loss().expect("a loss");
                started = Some(Instant::now());
            }
            ControlFlow::Continue(())
        })
        .expect("an optimisation");
    // The run ends reading its figures from the device: the clock stops with the queue empty.
    let Some(started) = started.filter(|_| outcome.iterations == HISTORY + lbfgs) else {
        eprintln!(
            "evaluation: the L-BFGS run stopped after {} of {} iterations ({:?}); not timed",
            outcome.iterations,
            HISTORY + lbfgs,
            outcome.stop
        );
        return None;
    };
    let seconds = started.elapsed().as_secs_f64();
    Some(seconds * 1e3 / lbfgs as f64)
}

fn name(p: Precision) -> &'static str {
    match p {
        Precision::Fp32 => "fp32",
        Precision::Tf32 => "tf32",
        Precision::Bf16 => "bf16",
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<String> = list(&args, "--sizes", "256,512");
    let precisions: Vec<Precision> = list(&args, "--precisions", "fp32,bf16")
        .iter()
        .map(|p| match p.as_str() {
            "fp32" => Precision::Fp32,
            "tf32" => Precision::Tf32,
            "bf16" => Precision::Bf16,
            other => panic!("unknown precision {other}"),
        })
        .collect();
    let layouts = list(&args, "--layouts", "contiguous");
    let repeats: usize = option(&args, "--repeats", "5").parse().expect("a count");
    let warmup: usize = option(&args, "--warmup", "2").parse().expect("a count");
    let lbfgs: usize = option(&args, "--lbfgs", "0").parse().expect("a count");
    let forms = list(&args, "--lbfgs-forms", "default");
    let mut devices = Vec::new();
    for d in list(&args, "--devices", "cpu,cuda") {
        match d.as_str() {
            "cpu" => devices.push(("cpu", Device::Cpu)),
            "cuda" if tch::Cuda::is_available() => devices.push(("cuda", Device::Cuda(0))),
            "cuda" => eprintln!("evaluation: no CUDA device; CPU only"),
            other => panic!("unknown device {other}"),
        }
    }
    // PyTorch first: its process then has the GPU to itself (libtorch's caching allocator keeps
    // what this process's cases took, which would squeeze its cuDNN workspaces), and its rows are
    // printed as they come, so that a run cut off later keeps them.
    let theirs: Vec<Value> = if args.iter().any(|a| a == "--no-pytorch") {
        Vec::new()
    } else {
        pytorch(&args, &devices)
    };
    let mut ours = Vec::new();
    for (device_name, device) in &devices {
        for s in &sizes {
            for &precision in &precisions {
                for layout in &layouts {
                    let case = Case {
                        device: *device,
                        size: size(s),
                        precision,
                        channels_last: layout == "channels-last",
                    };
                    let (ms, iterations) = bench(&case, repeats, warmup, lbfgs, &forms);
                    let round = |v: f64| (v * 1e3).round() / 1e3;
                    // The table compares the form the device uses by default.
                    let default = if device.is_cuda() {
                        "compact"
                    } else {
                        "two-loop"
                    };
                    let best = iterations
                        .iter()
                        .find(|(f, _)| f == default)
                        .or(iterations.first())
                        .and_then(|(_, ms)| *ms);
                    let by_form: serde_json::Map<String, Value> = iterations
                        .iter()
                        .map(|(f, ms)| (f.clone(), json!(ms.map(round))))
                        .collect();
                    let row = json!({ "impl": "stylize-video", "device": device_name,
                        "width": case.size.0, "height": case.size.1, "precision": name(precision),
                        "layout": layout, "ms": round(ms),
                        "lbfgs_iteration_ms": best.map(round), "lbfgs_iteration_ms_by_form": by_form,
                        "threads": tch::get_num_threads() });
                    println!("{row}");
                    ours.push(row);
                }
            }
        }
    }
    println!();
    println!("| device | size | precision | layout | stylize-video | PyTorch | PyTorch / stylize-video | L-BFGS iteration | PyTorch's | PyTorch / stylize-video |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in &ours {
        let other = theirs.iter().find(|t| {
            ["device", "width", "height", "precision", "layout"]
                .iter()
                .all(|k| t[*k] == row[*k])
        });
        let compare = |key: &str| {
            let ms = row[key].as_f64();
            let theirs = other.and_then(|t| t[key].as_f64());
            let show = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
            let ratio = match (ms, theirs) {
                (Some(m), Some(t)) => format!("{:.2}", t / m),
                _ => "-".into(),
            };
            format!("{} | {} | {ratio}", show(ms), show(theirs))
        };
        println!(
            "| {} | {}x{} | {} | {} | {} | {} |",
            row["device"].as_str().unwrap_or("?"),
            row["width"],
            row["height"],
            row["precision"].as_str().unwrap_or("?"),
            row["layout"].as_str().unwrap_or("?"),
            compare("ms"),
            compare("lbfgs_iteration_ms"),
        );
    }
}

/// The same cases in PyTorch, in the same run.
fn pytorch(args: &[String], devices: &[(&str, Device)]) -> Vec<Value> {
    // Beside the working directory first: the benchmark may run on another machine than it was
    // built on (scripts/gpu-bench.sh).
    let here = std::path::Path::new("benches/pytorch_evaluation.py");
    let script = if here.is_file() {
        here.to_str().expect("a plain path")
    } else {
        concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_evaluation.py")
    };
    let device_arg = devices
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",");
    let mut command = Command::new(option(args, "--python", "python3"));
    command.arg(script).args(["--devices", &device_arg]);
    for flag in [
        "--sizes",
        "--precisions",
        "--layouts",
        "--repeats",
        "--warmup",
        "--lbfgs",
    ] {
        if let Some(i) = args.iter().position(|a| a == flag) {
            command.arg(flag).arg(&args[i + 1]);
        }
    }
    command.stdout(Stdio::piped()).env("PYTHONUNBUFFERED", "1");
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("evaluation: no python3 for the PyTorch comparison: {e}");
            return Vec::new();
        }
    };
    let rows: Vec<Value> = BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .inspect(|v: &Value| println!("{v}"))
        .collect();
    match child.wait() {
        Ok(status) if status.success() => {}
        other => eprintln!(
            "evaluation: the PyTorch comparison failed ({other:?}; its cases before the failure are kept)"
        ),
    }
    rows
}
