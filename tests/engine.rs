//! The engine through its library API, on the bundled samples at small sizes.

mod common;

use std::ops::ControlFlow;

use common::*;
use stylize_video::engine::preprocess::{self, from_network, to_network};
use stylize_video::engine::stylizer::*;
use stylize_video::engine::vgg::{Layer, Pooling, Vgg19, CAFFE_MEAN_BGR};
use stylize_video::Error;
use tch::{Device, Kind, Tensor};

fn lbfgs(iterations: usize) -> OptimizerSettings {
    OptimizerSettings {
        iterations,
        ..OptimizerSettings::default()
    }
}

/// The style target of Van Gogh's painting at a long edge of `edge` pixels.
fn van_gogh_style(vgg: &Vgg19, loss: &LossSettings, edge: u32) -> StyleTarget {
    StyleTarget::new(vgg, &[(tensor(&van_gogh(), edge), 1.0)], loss).unwrap()
}

fn run(stylizer: &Stylizer, content: &Tensor, init: &Tensor) -> Outcome {
    stylizer
        .run(content, init, |_| ControlFlow::Continue(()))
        .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

#[test]
fn lbfgs_and_adam_lower_the_loss_and_stylise_the_content() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let content = tensor(&frame(), 64);
    for (optimizer, at_least) in [
        (lbfgs(60), 10.0),
        (
            OptimizerSettings {
                kind: OptimizerKind::Adam {
                    learning_rate: 10.0,
                },
                iterations: 60,
                ..OptimizerSettings::default()
            },
            3.0,
        ),
    ] {
        let stylizer = Stylizer::new(&vgg, &style, loss.clone(), optimizer.clone()).unwrap();
        let mut seen = Vec::new();
        let outcome = stylizer
            .run(&content, &content, |it| {
                seen.push((it.iteration, it.loss().unwrap()));
                ControlFlow::Continue(())
            })
            .unwrap();
        let fall = outcome.initial.total / outcome.best.total;
        assert!(
            fall > at_least,
            "{:?}: loss {} -> {} only",
            optimizer.kind,
            outcome.initial.total,
            outcome.best.total
        );
        assert_eq!(outcome.iterations, 60);
        assert_eq!(outcome.history.len(), 61);
        assert_eq!(outcome.stop, StopReason::Iterations);
        assert_eq!(outcome.recoveries, 0);
        // The callback saw iteration 0 (the start) and every iteration after it.
        assert_eq!(seen.len(), 61);
        assert!(seen.iter().enumerate().all(|(i, (n, _))| *n == i));
        assert_eq!(seen[0].1, outcome.initial.total);
        // The output is the best point met, and starting from the content it moved away from it.
        let best = outcome
            .history
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        assert_eq!(outcome.best.total, best);
        assert!(outcome.best.content > 0.0);
        assert!(max_abs_diff(&outcome.image, &content) > 30.0);
    }
}

#[test]
fn zero_iterations_return_the_initial_image_and_its_losses() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let stylizer = Stylizer::new(&vgg, &style, loss, lbfgs(0)).unwrap();
    let content = tensor(&frame(), 64);
    let outcome = run(&stylizer, &content, &content);
    assert_eq!(outcome.iterations, 0);
    assert_eq!(outcome.evaluations, 1);
    assert_eq!(outcome.history.len(), 1);
    assert_eq!(outcome.initial, outcome.best);
    assert_eq!(outcome.initial.content, 0.0);
    assert!(outcome.initial.style.iter().all(|(_, e)| *e > 0.0));
    assert_eq!(max_abs_diff(&outcome.image, &content), 0.0);
}

#[test]
fn non_finite_and_diverging_steps_are_undone_and_never_reach_the_output() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let content = tensor(&frame(), 64);

    // Without the pixel bounds (which hold any finite step within 0..255), Adam with an absurd
    // step overflows at once, every time: the start is kept.
    let adam = OptimizerSettings {
        kind: OptimizerKind::Adam {
            learning_rate: 1e30,
        },
        iterations: 40,
        bounded: false,
        ..OptimizerSettings::default()
    };
    let stylizer = Stylizer::new(&vgg, &style, loss.clone(), adam).unwrap();
    let outcome = run(&stylizer, &content, &content);
    assert_eq!(outcome.stop, StopReason::NonFinite);
    // It stops at the 12th refusal in a row, decided on the device: the iterations the host ran
    // on before it looked are not counted, and changed nothing.
    assert_eq!(outcome.recoveries, 12);
    assert_eq!(outcome.iterations, 12);
    assert_eq!(outcome.history.len(), 13);
    assert!(outcome.evaluations <= 1 + 16);
    assert!(outcome.history.iter().all(|v| v.is_finite()));
    assert_eq!(max_abs_diff(&outcome.image, &content), 0.0);
    from_network(&outcome.image).expect("a finite image");

    // L-BFGS with a huge step diverges along its quasi-Newton directions; each time it steps
    // back, forgets its history, shrinks its step and goes on from the last good point.
    let wild = OptimizerSettings {
        kind: OptimizerKind::Lbfgs {
            history: 10,
            learning_rate: 1e5,
            line_search: false,
        },
        iterations: 30,
        bounded: false,
        ..OptimizerSettings::default()
    };
    let stylizer = Stylizer::new(&vgg, &style, loss.clone(), wild).unwrap();
    let outcome = run(&stylizer, &content, &content);
    assert!(outcome.recoveries > 0, "no overflow was provoked");
    assert!(outcome.best.total < outcome.initial.total);
    assert!(outcome.history.iter().all(|v| v.is_finite()));
    let finite = bool::try_from(outcome.image.isfinite().all()).unwrap();
    assert!(finite);

    // With the bounds, the same absurd steps land on the range's edges: finite, and undone
    // when they raise the loss a hundredfold.
    for kind in [
        OptimizerKind::Adam {
            learning_rate: 1e30,
        },
        OptimizerKind::Lbfgs {
            history: 10,
            learning_rate: 1e5,
            line_search: false,
        },
    ] {
        let settings = OptimizerSettings {
            kind,
            iterations: 30,
            ..OptimizerSettings::default()
        };
        let stylizer = Stylizer::new(&vgg, &style, loss.clone(), settings).unwrap();
        let outcome = run(&stylizer, &content, &content);
        assert!(outcome.history.iter().all(|v| v.is_finite()));
        assert!(outcome.best.total <= outcome.initial.total);
        from_network(&outcome.image).expect("a finite image");
    }
}

#[test]
fn a_non_finite_image_is_refused_not_written() {
    let bad = Tensor::full([1, 3, 16, 16], f64::NAN, (Kind::Float, Device::Cpu));
    assert!(matches!(from_network(&bad), Err(Error::NonFinite(_))));
    // Not an image's shape: an error, not a panic.
    let batch = Tensor::zeros([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let grey = Tensor::zeros([1, 1, 8, 8], (Kind::Float, Device::Cpu));
    for wrong in [batch, grey] {
        assert!(
            matches!(from_network(&wrong), Err(Error::Torch(_))),
            "{wrong:?}"
        );
    }
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let stylizer = Stylizer::new(&vgg, &style, loss, lbfgs(5)).unwrap();
    let content = tensor(&frame(), 64);
    let nan_start = content.full_like(f64::INFINITY);
    let result = stylizer.run(&content, &nan_start, |_| ControlFlow::Continue(()));
    assert!(matches!(result, Err(Error::NonFinite(_))));
}

#[test]
fn the_line_search_keeps_every_accepted_step_downhill() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let optimizer = OptimizerSettings {
        kind: OptimizerKind::Lbfgs {
            history: 20,
            learning_rate: 1.0,
            line_search: true,
        },
        iterations: 25,
        ..OptimizerSettings::default()
    };
    let stylizer = Stylizer::new(&vgg, &style, loss, optimizer).unwrap();
    let content = tensor(&frame(), 64);
    let outcome = run(&stylizer, &content, &content);
    assert!(outcome.history.windows(2).all(|w| w[1] <= w[0]));
    assert!(outcome.initial.total / outcome.best.total > 5.0);
    assert!(outcome.evaluations > outcome.iterations);
}

#[test]
fn the_tolerance_stops_early_and_the_callback_can_stop() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let content = tensor(&frame(), 64);
    let patient = OptimizerSettings {
        tolerance: 0.9,
        patience: 3,
        ..lbfgs(100)
    };
    let stylizer = Stylizer::new(&vgg, &style, loss.clone(), patient).unwrap();
    let outcome = run(&stylizer, &content, &content);
    assert_eq!(outcome.stop, StopReason::Tolerance);
    assert!(outcome.iterations >= 3 && outcome.iterations < 100);

    let stylizer = Stylizer::new(&vgg, &style, loss, lbfgs(100)).unwrap();
    let outcome = stylizer
        .run(&content, &content, |it| {
            if it.iteration == 7 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(outcome.stop, StopReason::Callback);
    assert_eq!(outcome.iterations, 7);
}

#[test]
fn the_tolerance_ignores_the_first_lbfgs_step_which_is_a_probe() {
    // L-BFGS's first step has unit L1 length over the whole image: it changes the loss by far
    // less than any sensible tolerance. With --patience 1 that step alone used to stop the run.
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let content = tensor(&frame(), 64);
    for line_search in [false, true] {
        let kind = OptimizerKind::Lbfgs {
            history: 50,
            learning_rate: 1.0,
            line_search,
        };
        let impatient = OptimizerSettings {
            kind: kind.clone(),
            tolerance: 1e-3,
            patience: 1,
            ..lbfgs(40)
        };
        let stylizer = Stylizer::new(&vgg, &style, loss.clone(), impatient).unwrap();
        let outcome = run(&stylizer, &content, &content);
        let first_change = (outcome.history[0] - outcome.history[1]).abs() / outcome.history[0];
        assert!(
            first_change < 1e-3,
            "line search {line_search}: the first step changed the loss by {first_change}"
        );
        assert!(
            outcome.iterations > 1,
            "line search {line_search}: stopped after {} iteration(s) ({:?})",
            outcome.iterations,
            outcome.stop
        );
        assert!(
            outcome.initial.total / outcome.best.total > 5.0,
            "line search {line_search}: loss {} -> {} only",
            outcome.initial.total,
            outcome.best.total
        );
    }
}

#[test]
fn the_style_target_is_made_once_and_serves_every_content() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let painting = tensor(&van_gogh(), 96);
    let shared = StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &loss).unwrap();
    let stylizer = Stylizer::new(&vgg, &shared, loss.clone(), lbfgs(3)).unwrap();
    // Two contents of different sizes against the one target, and against a fresh target each.
    for (path, edge) in [(frame(), 64), (hokusai(), 80)] {
        let content = tensor(&path, edge);
        let reused = run(&stylizer, &content, &content);
        let fresh_target =
            StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &loss).unwrap();
        let fresh = Stylizer::new(&vgg, &fresh_target, loss.clone(), lbfgs(3)).unwrap();
        let again = run(&fresh, &content, &content);
        assert_eq!(reused.history, again.history);
    }
}

#[test]
fn blends_of_paintings_weigh_their_gram_matrices() {
    let vgg = vgg();
    let loss = LossSettings::default();
    let a = tensor(&van_gogh(), 64);
    let b = tensor(&hokusai(), 64);
    let content = tensor(&frame(), 64);
    let evaluate = |styles: &[(Tensor, f64)]| {
        let target = StyleTarget::new(&vgg, styles, &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss.clone(), lbfgs(1)).unwrap();
        let t = stylizer.content_target(&content).unwrap();
        stylizer.evaluate(&t, &content).unwrap().terms.total
    };
    let only_a = evaluate(&[(a.shallow_clone(), 1.0)]);
    let only_b = evaluate(&[(b.shallow_clone(), 1.0)]);
    let a_with_zero_b = evaluate(&[(a.shallow_clone(), 2.0), (b.shallow_clone(), 0.0)]);
    let half_half = evaluate(&[(a.shallow_clone(), 1.0), (b.shallow_clone(), 1.0)]);
    assert!((a_with_zero_b / only_a - 1.0).abs() < 1e-5);
    assert!(
        (only_a / only_b - 1.0).abs() > 0.05,
        "the two paintings differ"
    );
    // The blended target lies between the two: the loss is not either one's.
    assert!((half_half / only_a - 1.0).abs() > 1e-3);
    assert!((half_half / only_b - 1.0).abs() > 1e-3);
    // Only the weights' ratio counts, however large they are (1e308 + 1e308 overflows).
    let huge = evaluate(&[(a.shallow_clone(), 1e308), (b.shallow_clone(), 1e308)]);
    assert!(
        (huge / half_half - 1.0).abs() < 1e-5,
        "{huge} vs {half_half}"
    );
    assert!(StyleTarget::new(&vgg, &[(a.shallow_clone(), 0.0)], &loss).is_err());
    assert!(StyleTarget::new(&vgg, &[(a.shallow_clone(), -1.0)], &loss).is_err());
}

#[test]
fn layers_pooling_and_gram_scaling_are_configurable() {
    let vgg = vgg();
    let content = tensor(&frame(), 64);
    let painting = tensor(&van_gogh(), 64);
    let layer = |n| Layer::named(n).unwrap();
    let custom = LossSettings {
        content_layers: vec![LayerWeight {
            layer: layer("conv2_2"),
            weight: 1.0,
        }],
        style_layers: vec![
            LayerWeight {
                layer: layer("conv1_2"),
                weight: 0.7,
            },
            LayerWeight {
                layer: layer("conv3_3"),
                weight: 0.3,
            },
        ],
        pooling: Pooling::Max,
        ..LossSettings::default()
    };
    let target = StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &custom).unwrap();
    let stylizer = Stylizer::new(&vgg, &target, custom.clone(), lbfgs(1)).unwrap();
    let gray = content.zeros_like();
    let t = stylizer.content_target(&content).unwrap();
    let e = stylizer.evaluate(&t, &gray).unwrap();
    let names: Vec<&str> = e.terms.style.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["conv1_2", "conv3_3"]);
    let (_, _, h, w) = content.size4().unwrap();
    let expected = custom.alpha(h, w) * e.terms.content
        + custom.style_weight * (0.7 * e.terms.style[0].1 + 0.3 * e.terms.style[1].1);
    assert!((e.terms.total / expected - 1.0).abs() < 1e-5);

    // A target made for other layers or pooling is refused.
    let default_target = StyleTarget::new(
        &vgg,
        &[(painting.shallow_clone(), 1.0)],
        &LossSettings::default(),
    )
    .unwrap();
    assert!(Stylizer::new(&vgg, &default_target, custom, lbfgs(1)).is_err());

    // Gram scaling: identical when the painting has the content's area, different otherwise.
    let same_area = painting.narrow(2, 0, 16).narrow(3, 0, 16);
    let small_content = content.narrow(2, 0, 16).narrow(3, 0, 16);
    let wide = tensor(&van_gogh(), 48);
    let total = |painting: &Tensor, scale: GramScale| {
        let loss = LossSettings {
            gram_scale: scale,
            ..LossSettings::default()
        };
        let target = StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss, lbfgs(1)).unwrap();
        let t = stylizer.content_target(&small_content).unwrap();
        stylizer.evaluate(&t, &small_content).unwrap().terms.total
    };
    let (p, q) = (
        total(&same_area, GramScale::Paper),
        total(&same_area, GramScale::PerPosition),
    );
    assert!((p / q - 1.0).abs() < 1e-5, "{p} vs {q}");
    let (p, q) = (
        total(&wide, GramScale::Paper),
        total(&wide, GramScale::PerPosition),
    );
    assert!((p / q - 1.0).abs() > 0.01, "{p} vs {q}");
}

#[test]
fn the_weights_normalisation_makes_the_loss_balance_independent_of_size() {
    // E_l does not grow with the image; α·L_content does not either once α is normalised. At the
    // mean-colour start, the balance of the two terms stays within a factor 2 from 64 to 256 px.
    let vgg = vgg();
    let loss = LossSettings::default();
    let ratio = |edge: u32| {
        let painting = tensor(&van_gogh(), edge);
        let content = tensor(&frame(), edge);
        let target = StyleTarget::new(&vgg, &[(painting, 1.0)], &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss.clone(), lbfgs(1)).unwrap();
        let t = stylizer.content_target(&content).unwrap();
        let e = stylizer.evaluate(&t, &content.zeros_like()).unwrap().terms;
        let (_, _, h, w) = content.size4().unwrap();
        let style: f64 = e.style.iter().map(|(_, v)| 0.2 * v).sum();
        loss.alpha(h, w) * e.content / (loss.beta() * style)
    };
    let (small, large) = (ratio(64), ratio(256));
    assert!(
        (small / large).max(large / small) < 2.0,
        "content/style balance {small} at 64 px, {large} at 256 px"
    );
}

#[test]
fn only_the_ratios_of_the_weights_shape_the_picture() {
    // Multiplying every weight by one factor changes the loss by that factor and nothing else;
    // the optimisation must follow the same path. Once, style weights of 1e15 and up (float32
    // curvature sums overflowed) and totals under about 1e-2 (the curvature test and the first
    // step stalled) left the content image as it was, loss unchanged.
    let vgg = vgg();
    let painting = tensor(&van_gogh(), 64);
    let content = tensor(&frame(), 64);
    let run_with = |factor: f64| {
        let loss = LossSettings {
            content_weight: factor,
            style_weight: 1e4 * factor,
            ..LossSettings::default()
        };
        let target = StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss, lbfgs(30)).unwrap();
        run(&stylizer, &content, &content)
    };
    let plain = run_with(1.0);
    let plain_drop = plain.best.total / plain.initial.total;
    assert!(plain_drop < 0.2, "the plain run fell to {plain_drop}");
    for factor in [1e20, 1e-14] {
        let scaled = run_with(factor);
        let ratio = scaled.initial.total / plain.initial.total / factor;
        assert!((ratio - 1.0).abs() < 1e-5, "start x{factor}: {ratio}");
        let drop = scaled.best.total / scaled.initial.total;
        assert!(
            (drop / plain_drop - 1.0).abs() < 0.01,
            "weights x{factor}: the loss fell to {drop} of its start, {plain_drop} with the plain weights"
        );
        let (style, plain_style) = (&scaled.best.style[2].1, &plain.best.style[2].1);
        assert!(
            (style / plain_style - 1.0).abs() < 0.05,
            "conv3_1 {style} against {plain_style}"
        );
        let difference =
            f64::try_from((&scaled.image - &plain.image).abs().mean(Kind::Float)).unwrap();
        // The weights scaled by a power of ten round apart from the plain ones, and 30 L-BFGS
        // steps amplify that: measured 2.0 (1e20) and 1.95 (1e-14) grey levels.
        assert!(
            difference < 4.0,
            "x{factor}: images differ by {difference} on average (0..255)"
        );
    }
    // Beyond float64 (the style's), or beyond float32 for one weight alone (the content's,
    // 0 · ∞ at the start), the error names the weights, as typed (not 301 digits), and the
    // limit passed.
    for (content_weight, style_weight, shown) in [
        (
            1.0,
            1e300,
            "--style-weight = 1e300: with --content-weight 1 and",
        ),
        (
            1e39,
            1e4,
            "--style-weight = 10000: with --content-weight 1e39 and",
        ),
    ] {
        let loss = LossSettings {
            content_weight,
            style_weight,
            ..LossSettings::default()
        };
        let target = StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss, lbfgs(2)).unwrap();
        let error = stylizer
            .run(&content, &content, |_| ControlFlow::Continue(()))
            .err()
            .expect("an overflowing total is refused")
            .to_string();
        assert!(error.contains(shown) && error.contains("ratios"), "{error}");
        let limit = if style_weight > 1e200 {
            "beyond even float64"
        } else {
            "beyond what float32 can optimise"
        };
        assert!(error.contains(limit), "{error}");
    }
}

#[test]
fn weights_are_checked_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.safetensors");
    let err = Vgg19::load(&missing, Device::Cpu)
        .err()
        .expect("missing file");
    assert!(err.to_string().contains("none.safetensors"), "{err}");
    let mut bytes = std::fs::read(Vgg19::default_weights_path()).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    let damaged = dir.path().join("damaged.safetensors");
    std::fs::write(&damaged, &bytes).unwrap();
    let err = Vgg19::load(&damaged, Device::Cpu)
        .err()
        .expect("damaged file");
    assert!(err.to_string().contains("sha256"), "{err}");
}

#[test]
fn preserving_colours_keeps_the_contents_chroma_and_the_stylised_luminance() {
    let content = picture(&frame(), 64);
    let stylised = picture(&van_gogh(), 64);
    let stylised =
        image::imageops::crop_imm(&stylised, 0, 0, content.width(), content.height()).to_image();
    let out = preprocess::preserve_colors(&stylised, &content);
    // Each pixel: the stylised luminance with the content's chrominance, exactly, unless that
    // colour lies outside RGB and had to be clipped (few pixels).
    let mut clipped = 0;
    for ((o, s), c) in out.pixels().zip(stylised.pixels()).zip(content.pixels()) {
        let [y, _, _] = preprocess::rgb_to_yiq(s.0);
        let [_, i, q] = preprocess::rgb_to_yiq(c.0);
        let want = preprocess::yiq_to_rgb([y, i, q]);
        if want.iter().any(|v| !(0.0..=1.0).contains(v)) {
            clipped += 1;
            continue;
        }
        for (got, want) in o.0.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{:?} vs {want:?}", o.0);
        }
        // And the chrominance survives the round trip.
        let [_, oi, oq] = preprocess::rgb_to_yiq(o.0);
        assert!((oi - i).abs() < 1e-3 && (oq - q).abs() < 1e-3);
    }
    assert!(clipped * 4 < out.pixels().count(), "{clipped} clipped");
    // And the result is neither input.
    let differs = |a: &image::Rgb32FImage, b: &image::Rgb32FImage| {
        a.pixels()
            .zip(b.pixels())
            .map(|(p, q)| (p.0[0] - q.0[0]).abs())
            .sum::<f32>()
            / a.pixels().count() as f32
    };
    assert!(differs(&out, &content) > 0.02 && differs(&out, &stylised) > 0.02);
}

#[test]
fn network_space_round_trips_an_image() {
    let image = picture(&frame(), 64);
    let x = to_network(&image, Device::Cpu);
    assert_eq!(x.size(), [1, 3, 36, 64]);
    // Pixel (0,0): BGR minus the Caffe mean.
    let p = image.get_pixel(0, 0).0;
    let b = f64::try_from(x.get(0).get(0).get(0).get(0)).unwrap();
    assert!((b - (f64::from(p[2]) * 255.0 - 103.939)).abs() < 1e-3);
    let back = from_network(&x).unwrap();
    let worst = image
        .as_raw()
        .iter()
        .zip(back.as_raw())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5);
}

#[test]
fn total_variation_smooths_the_result() {
    let vgg = vgg();
    let content = tensor(&frame(), 64);
    let painting = tensor(&van_gogh(), 64);
    let result = |tv_weight: f64| {
        let loss = LossSettings {
            tv_weight,
            ..LossSettings::default()
        };
        let target = StyleTarget::new(&vgg, &[(painting.shallow_clone(), 1.0)], &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss.clone(), lbfgs(40)).unwrap();
        let outcome = run(&stylizer, &content, &content);
        let tv =
            f64::try_from(stylize_video::engine::loss::total_variation(&outcome.image)).unwrap();
        (outcome, tv, loss)
    };
    let (plain, plain_tv, _) = result(0.0);
    let (smooth, smooth_tv, loss) = result(100.0);
    assert_eq!(plain.best.tv, 0.0, "not computed when its weight is 0");
    assert!((smooth.best.tv / smooth_tv - 1.0).abs() < 1e-4);
    assert!(
        smooth_tv < plain_tv * 0.8,
        "TV {smooth_tv} vs {plain_tv} without"
    );
    // total = α·content + β·Σ w E + λ·tv
    let (_, _, h, w) = content.size4().unwrap();
    let style: f64 = smooth.best.style.iter().map(|(_, e)| 0.2 * e).sum();
    let expected = loss.alpha(h, w) * smooth.best.content
        + loss.beta() * style
        + loss.tv_lambda(h, w) * smooth.best.tv;
    assert!((smooth.best.total / expected - 1.0).abs() < 1e-4);
}

#[test]
fn the_optimisation_loop_reads_from_the_device_only_when_asked() {
    use stylize_video::engine::host::reads_on_this_thread;
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 64);
    let content = tensor(&frame(), 64);
    let stylizer = Stylizer::new(&vgg, &style, loss.clone(), lbfgs(48)).unwrap();

    // Silent: the start's figures (to refuse a non-finite start), a look every 16 iterations
    // (at 16 and 32) and every figure of the run at the end: 4 reads for 48 iterations.
    let before = reads_on_this_thread();
    let silent = run(&stylizer, &content, &content);
    assert_eq!(reads_on_this_thread() - before, 4);
    assert_eq!(silent.iterations, 48);

    // A callback that asks for the loss every iteration reads once more per iteration, and sees
    // what the optimisation reports.
    let before = reads_on_this_thread();
    let mut seen = Vec::new();
    let watched = stylizer
        .run(&content, &content, |it| {
            seen.push(it.loss().unwrap());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(reads_on_this_thread() - before, 4 + 49);
    assert_eq!(seen, watched.history);
    // Reading or not changes nothing of the result.
    assert_eq!(silent.history, watched.history);
    assert_eq!(max_abs_diff(&silent.image, &watched.image), 0.0);

    // With a tolerance the loop looks every iteration, so that no evaluation is spent after the
    // stop.
    let patient = OptimizerSettings {
        tolerance: 0.9,
        patience: 3,
        ..lbfgs(48)
    };
    let stylizer = Stylizer::new(&vgg, &style, loss, patient).unwrap();
    let outcome = run(&stylizer, &content, &content);
    assert_eq!(outcome.stop, StopReason::Tolerance);
    assert_eq!(outcome.evaluations, outcome.iterations + 1);
}

#[test]
fn the_picture_written_is_the_picture_optimised() {
    // Pixels that leave 0..255 while optimising are clipped when the picture is written, and
    // the written picture is then worse than the optimiser's figure says. Bounded (the default),
    // every pixel stays in range and the loss reported is the written picture's.
    let vgg = vgg();
    let loss = LossSettings::default();
    let style = van_gogh_style(&vgg, &loss, 128);
    let content = tensor(&frame(), 128);
    let mean = Tensor::from_slice(&CAFFE_MEAN_BGR).view([1, 3, 1, 1]);
    // As written to an 8-bit file (clipped to the range, rounded), back in network space.
    let written = |x: &Tensor| {
        let picture = stylize_video::io::image::to_rgb8(&from_network(x).unwrap());
        to_network(
            &image::DynamicImage::ImageRgb8(picture).to_rgb32f(),
            Device::Cpu,
        )
    };
    let mut figures = Vec::new();
    for bounded in [true, false] {
        let settings = OptimizerSettings {
            bounded,
            ..lbfgs(100)
        };
        let stylizer = Stylizer::new(&vgg, &style, loss.clone(), settings).unwrap();
        let outcome = run(&stylizer, &content, &content);
        let pixels = &outcome.image + &mean;
        let outside = f64::try_from(
            pixels
                .lt(-1e-3)
                .logical_or(&pixels.gt(255.0 + 1e-3))
                .to_kind(Kind::Float)
                .mean(Kind::Float),
        )
        .unwrap();
        let target = stylizer.content_target(&content).unwrap();
        let as_written = stylizer
            .evaluate(&target, &written(&outcome.image))
            .unwrap()
            .terms
            .total;
        eprintln!(
            "bounded {bounded}: {:.4e} as optimised, {as_written:.4e} as written, {:.2} % of \
             values outside 0..255",
            outcome.best.total,
            outside * 100.0
        );
        figures.push((outcome.best.total, as_written, outside));
    }
    let [(bounded, bounded_written, bounded_outside), (free, free_written, free_outside)] =
        figures[..]
    else {
        unreachable!("two runs")
    };
    assert_eq!(bounded_outside, 0.0);
    assert!((bounded_written / bounded - 1.0).abs() < 1e-3);
    // Unbounded, a few per cent of the values leave the range and clipping them costs.
    assert!(free_outside > 0.01, "{free_outside}");
    assert!(
        free_written > free * 1.1,
        "{free_written:e} against {free:e}"
    );
    // The bounds cost the optimisation itself next to nothing, and the written picture gains.
    assert!(bounded < free * 1.01, "{bounded:e} against {free:e}");
    assert!(
        bounded_written < free_written * 0.9,
        "{bounded_written:e} against {free_written:e}"
    );
}

/// A sink that records what reached it.
struct Recording(std::sync::Arc<std::sync::Mutex<(usize, bool)>>);

impl stylize_video::frames::FrameSink for Recording {
    fn write(&mut self, _: &stylize_video::frames::Frame) -> stylize_video::Result<()> {
        self.0.lock().unwrap().0 += 1;
        Ok(())
    }
    fn finish(self: Box<Self>) -> stylize_video::Result<()> {
        self.0.lock().unwrap().1 = true;
        Ok(())
    }
}

/// Three frames of the sample, the same picture, 32 pixels wide.
struct Still3(stylize_video::frames::SourceInfo, usize);

impl stylize_video::frames::FrameSource for Still3 {
    fn info(&self) -> &stylize_video::frames::SourceInfo {
        &self.0
    }
    fn next_frame(&mut self) -> stylize_video::Result<Option<stylize_video::frames::Frame>> {
        self.1 += 1;
        Ok((self.1 <= 3).then(|| stylize_video::frames::Frame {
            index: self.1 - 1,
            pts: self.1 as i64 - 1,
            duration: 1,
            image: picture(&frame(), 32),
        }))
    }
}

#[test]
fn a_failure_while_stylising_leaves_the_output_incomplete_and_says_so() {
    // A panic on the stylising side (libtorch reports its failures as panics; here the caller's
    // own callback) used to unwind through the pipeline and close the encoder's channel, which
    // completed the output with the frames it had, as if the source had ended there.
    use stylize_video::frames::{FrameSink, FrameSource, Ratio, SourceInfo};
    use stylize_video::pipeline::{self, FrameRange, PipelineJob, WarmStart};
    let vgg = vgg();
    let loss = LossSettings::default();
    let target = van_gogh_style(&vgg, &loss, 32);
    let stylizer = Stylizer::new(&vgg, &target, loss, lbfgs(2)).unwrap();
    let mut style = stylize_video::settings::StyleSettings::new([van_gogh()]);
    style.device = Device::Cpu;
    style.size = 32;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let job = PipelineJob {
        stylizer: &stylizer,
        style: &style,
        first_frame_iterations: 2,
        warm_start: WarmStart::Flow,
        cut_threshold: 14.0,
        range: FrameRange::default(),
        kept: None,
        stop: &stop,
    };
    let (w, h) = picture(&frame(), 32).dimensions();
    let info = SourceInfo {
        width: w,
        height: h,
        frames: Some(3),
        time_base: Ratio::new(1, 25),
        frame_rate: Ratio::new(25, 1),
        sample_aspect_ratio: Ratio::new(1, 1),
        rotation: 0,
        has_audio: false,
        first_number: 0,
        numbers: Vec::new(),
        description: "three stills".into(),
        timecode: None,
    };
    // Stopped before the first frame: nothing written, and said so.
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let source_info = info.clone();
    let (_, result) = pipeline::run(
        move || Ok(Box::new(Still3(source_info, 0)) as Box<dyn FrameSource>),
        |_: &SourceInfo, _: &stylize_video::frames::Frame| -> stylize_video::Result<_> {
            panic!("no sink is opened")
        },
        &job,
        &mut stylize_video::progress::Silent,
        |_| {},
    );
    assert!(
        matches!(&result, Err(Error::Interrupted(m)) if m.contains("before the first frame was finished; nothing was written")),
        "{result:?}"
    );
    stop.store(false, std::sync::atomic::Ordering::SeqCst);
    for fail_at in [Some(1), None] {
        let sink = std::sync::Arc::new(std::sync::Mutex::new((0, false)));
        let (source_info, recorded) = (info.clone(), sink.clone());
        let (outcome, result) = pipeline::run(
            move || Ok(Box::new(Still3(source_info, 0)) as Box<dyn FrameSource>),
            move |_: &SourceInfo, _: &stylize_video::frames::Frame| {
                Ok((
                    Box::new(Recording(recorded)) as Box<dyn FrameSink>,
                    Vec::new(),
                ))
            },
            &job,
            &mut stylize_video::progress::Silent,
            |done| {
                if Some(done.position) == fail_at {
                    panic!("the caller's callback failed");
                }
            },
        );
        let (writes, finished) = *sink.lock().unwrap();
        match fail_at {
            Some(_) => {
                let error = result.unwrap_err();
                assert!(
                    matches!(&error, Error::Pipeline(m)
                        if m.contains("stylising failed after 1 frame(s): the caller's callback failed")),
                    "{error}"
                );
                assert_eq!((outcome.frames, writes, finished), (1, 1, false));
            }
            None => {
                result.unwrap();
                assert_eq!((outcome.frames, writes, finished), (3, 3, true));
                // Warm frames take the stylizer's iterations (not the style settings' 500).
                assert_eq!(outcome.warm_iterations, [2, 2]);
            }
        }
    }
}

#[test]
fn the_file_to_file_runs_work_from_the_library_with_its_defaults() {
    use std::sync::atomic::AtomicBool;
    use stylize_video::progress::Silent;
    use stylize_video::settings::StyleSettings;
    use stylize_video::still::{stylize_image, StillSettings};
    use stylize_video::video::{stylize_video, VideoSettings, WARM_ITERATIONS};
    let dir = tempfile::tempdir().unwrap();
    /// Hears of every finished frame, as a library user's own progress display would.
    #[derive(Default)]
    struct Frames(Vec<(usize, Option<usize>, Option<f64>)>);
    impl stylize_video::progress::Progress for Frames {
        fn frame_done(&mut self, done: &stylize_video::pipeline::FrameDone<'_>) {
            self.0.push((
                done.position,
                done.outcome.map(|o| o.iterations),
                done.outcome.map(|o| o.best.total),
            ));
        }
    }
    let mut style = StyleSettings::new([van_gogh()]);
    assert_eq!((style.size, style.optimizer.iterations), (512, 500));
    style.device = Device::Cpu;
    style.size = 48;
    style.optimizer.iterations = 20;
    let stop = AtomicBool::new(false);

    let out = dir.path().join("still.png");
    let still = StillSettings::new(frame(), &out, style.clone());
    let summary = stylize_image(&still, &mut Silent, &stop).unwrap();
    assert_eq!(summary.size, (48, 27));
    assert_eq!(image::image_dimensions(&out).unwrap(), (48, 27));
    assert!(summary.outcome.best.total < summary.outcome.initial.total / 3.0);
    // An existing output is kept unless asked otherwise.
    let again = stylize_image(&still, &mut Silent, &stop);
    assert!(
        matches!(again, Err(Error::Output { .. })),
        "{:?}",
        again.err()
    );

    // Three frames of a sequence, painted into another.
    let frames = dir.path().join("in");
    std::fs::create_dir(&frames).unwrap();
    for n in 1..=3 {
        let path = frames.join(format!("f{n:03}.png"));
        stylize_video::io::image::save(&picture(&frame(), 56), &path).unwrap();
    }
    let pattern = dir.path().join("out/p%03d.png");
    let mut video = VideoSettings::new(&frames, &pattern, style);
    assert_eq!(
        (
            video.first_frame_iterations,
            video.style.optimizer.iterations
        ),
        (500, WARM_ITERATIONS)
    );
    assert!(video.encode.audio);
    video.first_frame_iterations = 10;
    video.style.optimizer.iterations = 3;
    let mut frames = Frames::default();
    let summary = stylize_video(&video, &mut frames, &stop).unwrap();
    assert_eq!(summary.outcome.frames, 3);
    // Each frame as it was finished: its position, iterations and loss.
    let heard: Vec<_> = frames.0.iter().map(|(p, i, _)| (*p, *i)).collect();
    assert_eq!(heard, [(0, Some(10)), (1, Some(3)), (2, Some(3))]);
    assert!(frames
        .0
        .iter()
        .all(|(_, _, loss)| loss.is_some_and(|l| l > 0.0 && l.is_finite())));
    assert_eq!(summary.outcome.first_frame_iterations, Some(10));
    assert_eq!(summary.outcome.warm_iterations, [3, 3]);
    // A folder's frames are numbered from 0.
    for n in 0..3 {
        let written = dir.path().join(format!("out/p{n:03}.png"));
        // Painted at 48 pixels, written at the sequence's own size.
        assert_eq!(
            image::image_dimensions(&written).unwrap(),
            picture(&frame(), 56).dimensions(),
            "{n}"
        );
    }
    assert!(
        !summary.kept.exists(),
        "kept frames are removed once the output is complete"
    );
}
