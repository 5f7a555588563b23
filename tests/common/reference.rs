//! The float64 reference of `tests/reference/` (see its README): the oracle's pair and the
//! check of every loss figure and gradient norm against it, on any device.

use std::path::PathBuf;

use serde_json::Value;
use stylize_video::engine::preprocess::to_network;
use stylize_video::engine::stylizer::*;
use stylize_video::engine::vgg::{Layer, Pooling, Precision, Vgg19};
use stylize_video::io::image::load;
use tch::{Device, Kind, Tensor};

pub fn reference() -> PathBuf {
    super::root().join("tests/reference")
}

/// The reference pair (content 128x72, painting 128x100) in network space, as stored.
pub fn reference_pair(device: Device) -> (Tensor, Tensor) {
    let image = |name: &str| to_network(&load(&reference().join(name)).unwrap(), device);
    (image("content-128x72.png"), image("style-128x100.png"))
}

/// The total loss and the gradient (on the CPU) at `x` of the reference pair's problem, with the
/// default settings, on `device` in `precision`.
pub fn evaluate_reference(
    device: Device,
    precision: Precision,
    channels_last: bool,
    x: &Tensor,
) -> (f64, Tensor) {
    let (content, style) = reference_pair(device);
    let vgg = Vgg19::load_with(
        &Vgg19::default_weights_path(),
        device,
        precision,
        channels_last,
    )
    .unwrap();
    let loss = LossSettings::default();
    let target = StyleTarget::new(&vgg, &[(style, 1.0)], &loss).unwrap();
    let stylizer = Stylizer::new(&vgg, &target, loss, OptimizerSettings::default()).unwrap();
    let t = stylizer.content_target(&content).unwrap();
    let e = stylizer.evaluate(&t, &x.to_device(device)).unwrap();
    (e.terms.total, e.gradient.to_device(Device::Cpu))
}

pub fn assert_close(what: &str, got: f64, want: f64) {
    let rel = (got - want).abs() / want.abs();
    assert!(
        rel < 1e-3,
        "{what}: got {got}, reference {want}, relative error {rel:.2e}"
    );
}

/// The engine on `device` in float32 against the float64 reference: every figure within a
/// relative 1e-3, for both poolings, at the content and at a flat image.
pub fn check_against_reference(device: Device) {
    let oracle: Value = serde_json::from_str(
        &std::fs::read_to_string(reference().join("gatys-losses.json")).unwrap(),
    )
    .unwrap();
    let vgg = Vgg19::load(&Vgg19::default_weights_path(), device).unwrap();
    let content = load(&reference().join(oracle["content"].as_str().unwrap())).unwrap();
    let style = load(&reference().join(oracle["style"].as_str().unwrap())).unwrap();
    // Used as stored: no resizing.
    assert_eq!(content.dimensions(), (128, 72));
    assert_eq!(style.dimensions(), (128, 100));
    let content = to_network(&content, device);
    let style = to_network(&style, device);
    let (h, w) = (72i64, 128i64);

    let cases = oracle["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let pooling = match case["pooling"].as_str().unwrap() {
            "max" => Pooling::Max,
            "avg" => Pooling::Avg,
            p => panic!("unknown pooling {p}"),
        };
        let point = case["x"].as_str().unwrap();
        let loss = LossSettings {
            pooling,
            gram_scale: GramScale::Paper,
            // α = content_weight · 512² / (H·W) = 1 here.
            content_weight: oracle["alpha"].as_f64().unwrap() * (h * w) as f64 / REFERENCE_AREA,
            style_weight: oracle["beta"].as_f64().unwrap(),
            ..LossSettings::default()
        };
        assert!((loss.alpha(h, w) - 1.0).abs() < 1e-12);
        let target = StyleTarget::new(&vgg, &[(style.shallow_clone(), 1.0)], &loss).unwrap();
        let stylizer = Stylizer::new(&vgg, &target, loss, OptimizerSettings::default()).unwrap();
        let content_target = stylizer.content_target(&content).unwrap();
        let x = match point {
            "content" => content.shallow_clone(),
            // Every pixel the mean colour: zero after mean subtraction.
            "gray" => Tensor::zeros([1, 3, h, w], (Kind::Float, device)),
            p => panic!("unknown point {p}"),
        };
        let e = stylizer.evaluate(&content_target, &x).unwrap();
        let label = format!("{pooling:?} pooling at x = {point}");

        let want_content = case["content"].as_f64().unwrap();
        if want_content == 0.0 {
            // Exactly 0 where the two forward passes round alike (the CPU). A GPU may pick
            // another convolution algorithm for the second pass: features apart by float32's
            // rounding ε give a term of about ε² times the one away from the content (x = gray):
            // 1e-8 of it allows ε up to 1e-4.
            let away = cases
                .iter()
                .filter_map(|c| c["content"].as_f64())
                .fold(0.0, f64::max);
            let bound = if device.is_cuda() { 1e-8 * away } else { 0.0 };
            assert!(
                e.terms.content <= bound,
                "{label}: content {}",
                e.terms.content
            );
        } else {
            assert_close(&format!("{label}: content"), e.terms.content, want_content);
        }
        assert_eq!(e.terms.style.len(), 5);
        for (layer, value) in &e.terms.style {
            let want = case["style_E"][*layer].as_f64().unwrap();
            assert_close(&format!("{label}: E {layer}"), *value, want);
        }
        assert_close(
            &format!("{label}: total"),
            e.terms.total,
            case["total"].as_f64().unwrap(),
        );
        let g = e.gradient.to_kind(Kind::Double);
        let l2 = f64::try_from(g.norm()).unwrap();
        let l1 = f64::try_from(g.abs().sum(Kind::Double)).unwrap();
        assert_close(
            &format!("{label}: |grad|_2"),
            l2,
            case["grad_l2"].as_f64().unwrap(),
        );
        assert_close(
            &format!("{label}: |grad|_1"),
            l1,
            case["grad_abs_sum"].as_f64().unwrap(),
        );

        for (layer, shape) in case["feature_shapes"].as_object().unwrap() {
            let l = Layer::named(layer).unwrap();
            let want: Vec<i64> = shape
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap())
                .collect();
            let (fh, fw) = l.feature_size(h, w);
            assert_eq!(
                vec![l.channels(), fh, fw],
                want,
                "{label}: shape of {layer}"
            );
        }
    }
}
