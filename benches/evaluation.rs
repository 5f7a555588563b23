//! Time of one loss evaluation (forward to conv5_1 and backward to the image) at several sizes,
//! on the CPU and on CUDA when present, then the same evaluation in PyTorch on the same machine
//! (benches/pytorch_evaluation.py, when `python3` can import torch) for a ratio.
//!
//! `cargo bench --bench evaluation [-- --sizes 256,512 --repeats 5]` (or `make bench`).

use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use stylize_video::engine::stylizer::{LossSettings, OptimizerSettings, StyleTarget, Stylizer};
use stylize_video::engine::vgg::Vgg19;
use tch::{Device, Kind, Tensor};

fn option(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(device: Device, size: i64, repeats: usize, warmup: usize) -> f64 {
    let vgg = Vgg19::load(&Vgg19::default_weights_path(), device).expect("weights");
    tch::manual_seed(0);
    let random = || {
        (Tensor::rand([1, 3, size, size], (Kind::Float, Device::Cpu)) * 255.0 - 120.0)
            .to_device(device)
    };
    let (content, style) = (random(), random());
    let loss = LossSettings::default();
    let target = StyleTarget::new(&vgg, &[(style, 1.0)], &loss).expect("style target");
    let stylizer =
        Stylizer::new(&vgg, &target, loss, OptimizerSettings::default()).expect("stylizer");
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
    median(times)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<i64> = option(&args, "--sizes", "256,512")
        .split(',')
        .map(|s| s.parse().expect("a size"))
        .collect();
    let repeats: usize = option(&args, "--repeats", "5").parse().expect("a count");
    let warmup: usize = option(&args, "--warmup", "2").parse().expect("a count");
    let mut devices = vec![("cpu", Device::Cpu)];
    if tch::Cuda::is_available() {
        tch::Cuda::cudnn_set_benchmark(true);
        devices.push(("cuda", Device::Cuda(0)));
    } else {
        eprintln!("evaluation: no CUDA device, CPU only");
    }
    let mut ours = Vec::new();
    for (name, device) in &devices {
        for &size in &sizes {
            let ms = bench(*device, size, repeats, warmup);
            let row = json!({ "impl": "stylize-video", "device": name, "size": size, "ms": (ms * 1e3).round() / 1e3,
                              "threads": tch::get_num_threads() });
            println!("{row}");
            ours.push(row);
        }
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pytorch_evaluation.py");
    let sizes_arg = sizes
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let device_arg = devices
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",");
    let pytorch = Command::new("python3")
        .args([script, "--sizes", &sizes_arg, "--devices", &device_arg])
        .args([
            "--repeats",
            &repeats.to_string(),
            "--warmup",
            &warmup.to_string(),
        ])
        .output();
    let theirs: Vec<Value> = match pytorch {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
        Ok(out) => {
            eprintln!(
                "evaluation: PyTorch comparison failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("evaluation: no python3 for the PyTorch comparison: {e}");
            Vec::new()
        }
    };
    println!();
    println!("| device | size | stylize-video | PyTorch | PyTorch / stylize-video |");
    println!("| --- | --- | --- | --- | --- |");
    for row in &ours {
        let other = theirs
            .iter()
            .find(|t| t["device"] == row["device"] && t["size"] == row["size"]);
        let ms = row["ms"].as_f64().unwrap_or(f64::NAN);
        let (their_ms, ratio) = match other.and_then(|t| t["ms"].as_f64()) {
            Some(t) => (format!("{t:.1} ms"), format!("{:.2}", t / ms)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {}x{} | {ms:.1} ms | {their_ms} | {ratio} |",
            row["device"].as_str().unwrap_or("?"),
            row["size"],
            row["size"]
        );
    }
}
