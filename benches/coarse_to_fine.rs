//! Does coarse-to-fine save work at equal quality? A frame of Big Buck Bunny in the style of Van
//! Gogh: a plain cold run of N iterations at the full size sets the loss to reach; then each
//! schedule optimises at smaller sizes first (each level's result, upscaled, starts the next)
//! and goes on at the full size until it reaches that loss. Reports, per schedule, the
//! full-size iterations needed and the work in full-size evaluations (a level of half the edge
//! costs about a quarter), with wall times.
//!
//! `cargo bench --bench coarse_to_fine -- [--size 256] [--iterations 300] [--schedules 128:100,128:200,64:100+128:100] [--device cpu|cuda]`
//!
//! On CUDA the network runs as the command line's default there (TF32, channels-last).

#[path = "common/args.rs"]
mod args;
#[path = "common/gatys.rs"]
mod gatys;

use std::ops::ControlFlow;
use std::time::Instant;

use args::option;
use serde_json::json;
use stylize_video::engine::preprocess::{from_network, resize, scaled_size, to_network};
use stylize_video::engine::stylizer::LossSettings;
use stylize_video::io::image::load;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size: u32 = option(&args, "--size", "256").parse().expect("a size");
    let iterations: usize = option(&args, "--iterations", "300")
        .parse()
        .expect("a count");
    let device = gatys::device(&args);
    // Each schedule: levels EDGE:ITERATIONS joined by '+', coarsest first.
    let schedules: Vec<Vec<(u32, usize)>> = option(&args, "--schedules", "128:100,128:200")
        .split(',')
        .map(|s| {
            s.split('+')
                .map(|level| {
                    let (edge, n) = level.split_once(':').expect("EDGE:ITERATIONS");
                    (edge.parse().expect("an edge"), n.parse().expect("a count"))
                })
                .collect()
        })
        .collect();

    let frame =
        load(&gatys::root().join("samples/frames/bigbuckbunny-060.jpg")).expect("the frame");
    let vgg = gatys::network(device);
    let loss = LossSettings::default();
    let style = gatys::van_gogh(&vgg, size, &loss);
    let at = |edge: u32| {
        let (w, h) = scaled_size(frame.width(), frame.height(), edge);
        (resize(&frame, w, h), (w, h))
    };
    let stylizer = |n: usize| gatys::stylizer(&vgg, &style, &loss, n);
    let (full, (w, h)) = at(size);
    let content = to_network(&full, device);

    let started = Instant::now();
    let plain = stylizer(iterations)
        .run(&content, &content, |_| ControlFlow::Continue(()))
        .expect("plain run");
    let plain_seconds = started.elapsed().as_secs_f64();
    let target = plain.best.total;
    println!(
        "{}",
        json!({ "schedule": "plain", "size": [w, h], "iterations": iterations,
                "loss": target, "seconds": plain_seconds,
                "full_size_evaluations": plain.evaluations })
    );

    for schedule in &schedules {
        let started = Instant::now();
        let mut work = 0.0;
        let mut start = None;
        for &(edge, n) in schedule {
            let (image, (lw, lh)) = at(edge);
            let content_l = to_network(&image, device);
            let init = match &start {
                Some(previous) => to_network(&resize(previous, lw, lh), device),
                None => content_l.shallow_clone(),
            };
            let outcome = stylizer(n)
                .run(&content_l, &init, |_| ControlFlow::Continue(()))
                .expect("coarse run");
            work += outcome.evaluations as f64 * f64::from(lw * lh) / f64::from(w * h);
            start = Some(from_network(&outcome.image).expect("finite"));
        }
        let coarse_seconds = started.elapsed().as_secs_f64();
        let init = to_network(&resize(start.as_ref().expect("a level"), w, h), device);
        let mut reached = None;
        let fine = stylizer(iterations)
            .run(&content, &init, |it| {
                if it.loss().expect("a loss") <= target {
                    reached = Some(it.iteration);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .expect("fine run");
        let name = schedule
            .iter()
            .map(|(e, n)| format!("{e}:{n}"))
            .collect::<Vec<_>>()
            .join("+");
        println!(
            "{}",
            json!({ "schedule": name, "size": [w, h], "coarse_seconds": coarse_seconds,
                    "start_loss_at_full_size": fine.initial.total,
                    "full_size_iterations_to_plain_loss": reached,
                    "best_loss": fine.best.total, "best_over_plain": fine.best.total / target,
                    "full_size_evaluations": work + fine.evaluations as f64,
                    "seconds": started.elapsed().as_secs_f64() })
        );
    }
}
