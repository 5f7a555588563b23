//! The optimisation of the paper: an image whose VGG19 features match the content image's at the
//! content layers and whose Gram matrices match the painting's at the style layers.
//!
//! [`StyleTarget`] holds the painting's Gram matrices, computed once and reused for every image
//! or frame; [`Stylizer::run`] optimises one image from a given start.

use std::cell::Cell;
use std::ops::ControlFlow;

use image::Rgb32FImage;
use tch::{Device, Kind, Tensor};

use super::host;
use super::loss;
use super::optim::{Adam, Lbfgs, Optimizer, Point};
use super::preprocess;
use super::vgg::{Layer, Pooling, Vgg19, CAFFE_MEAN_BGR};
use crate::error::{listed, shown, Error, Result};

/// The processing area at which `content_weight` and `tv_weight` equal the paper's α and the
/// smoothness weight exactly: 512 x 512 pixels.
pub const REFERENCE_AREA: f64 = 512.0 * 512.0;

/// A layer with its weight in a loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerWeight {
    /// The layer.
    pub layer: Layer,
    /// Its weight (the paper's w_l for style layers).
    pub weight: f64,
}

/// How the painting's Gram matrix A is compared with the generated image's G when the two
/// images have different sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GramScale {
    /// A is rescaled to the generated image's number of positions (A·M_x/M_s), so that a
    /// painting of any size or aspect asks for the same texture statistics. Identical to the
    /// paper's formula when both images have the same area. The default.
    #[default]
    PerPosition,
    /// A is the painting's Gram matrix as it is, as in the paper's formula.
    Paper,
}

/// The loss: which layers, with which weights.
///
/// The paper's total loss is α·L_content + β·Σ w_l E_l. Its α/β ratio depends on the image size
/// (L_content grows with the pixel count, E_l does not), so α is normalised here:
/// α = `content_weight` · 512² / (H·W), β = `style_weight`. At a 512 x 512 processing size the
/// two weights are exactly the paper's α and β.
#[derive(Clone, Debug, PartialEq)]
pub struct LossSettings {
    /// Content layers and weights; default conv4_2 with weight 1.
    pub content_layers: Vec<LayerWeight>,
    /// Style layers and their w_l; default conv1_1, conv2_1, conv3_1, conv4_1, conv5_1, each 1/5.
    pub style_layers: Vec<LayerWeight>,
    /// α at 512 x 512 (see above); default 1.
    pub content_weight: f64,
    /// β; default [`DEFAULT_STYLE_WEIGHT`].
    pub style_weight: f64,
    /// Weight of the total-variation smoothness term at 512 x 512 (scaled like α); default 0.
    pub tv_weight: f64,
    /// Pooling between blocks; default average, as the paper recommends.
    pub pooling: Pooling,
    /// Gram matrix comparison across sizes; default per position.
    pub gram_scale: GramScale,
}

/// The default β (`style_weight`), chosen so that one setting gives a clearly stylised image
/// from 128 px to 1080p.
pub const DEFAULT_STYLE_WEIGHT: f64 = 1e4;

impl Default for LossSettings {
    fn default() -> Self {
        let layer = |name| Layer::named(name).expect("a VGG19 layer");
        LossSettings {
            content_layers: vec![LayerWeight {
                layer: layer("conv4_2"),
                weight: 1.0,
            }],
            style_layers: ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
                .into_iter()
                .map(|n| LayerWeight {
                    layer: layer(n),
                    weight: 0.2,
                })
                .collect(),
            content_weight: 1.0,
            style_weight: DEFAULT_STYLE_WEIGHT,
            tv_weight: 0.0,
            pooling: Pooling::Avg,
            gram_scale: GramScale::PerPosition,
        }
    }
}

impl LossSettings {
    /// Checks every value; errors name the command-line flag.
    pub fn validate(&self) -> Result<()> {
        non_negative("--content-weight", self.content_weight)?;
        non_negative("--style-weight", self.style_weight)?;
        non_negative("--tv-weight", self.tv_weight)?;
        if self.content_layers.is_empty() && self.style_layers.is_empty() {
            return Err(Error::setting(
                "--content-layers/--style-layers",
                "(none)",
                "at least one layer is needed",
            ));
        }
        for l in &self.content_layers {
            non_negative("--content-layers weight", l.weight)?;
        }
        for l in &self.style_layers {
            non_negative("--style-layer-weights", l.weight)?;
        }
        for (flag, layers) in [
            ("--content-layers", &self.content_layers),
            ("--style-layers", &self.style_layers),
        ] {
            // Counted twice but reported once; a weight says what a repetition meant to.
            if let Some((_, twice)) = layers
                .iter()
                .enumerate()
                .find(|(i, l)| layers[..*i].iter().any(|k| k.layer == l.layer))
            {
                let names: Vec<&str> = layers.iter().map(|l| l.layer.name()).collect();
                return Err(Error::setting(
                    flag,
                    names.join(","),
                    format!(
                        "{} is named twice; name each layer once and give it a larger weight \
                         instead",
                        twice.layer.name()
                    ),
                ));
            }
        }
        // As with --style-blend: weights that all vanish leave a term with nothing to match.
        if !self.style_layers.is_empty() && self.style_layers.iter().all(|l| l.weight == 0.0) {
            return Err(Error::setting(
                "--style-layer-weights",
                listed(self.style_layers.iter().map(|l| l.weight)),
                "the style layers' weights sum to zero; to leave the style out, give \
                 --style-weight 0",
            ));
        }
        let content =
            self.content_weight * self.content_layers.iter().map(|l| l.weight).sum::<f64>();
        let style = self.style_weight * self.style_layers.iter().map(|l| l.weight).sum::<f64>();
        if content == 0.0 && style == 0.0 && self.tv_weight == 0.0 {
            return Err(Error::setting(
                "--content-weight",
                self.content_weight,
                format!(
                    "with --style-weight {} and --tv-weight 0 every term of the loss weighs \
                     nothing: any picture would do, and the start would be written as it is",
                    shown(self.style_weight)
                ),
            ));
        }
        Ok(())
    }

    /// The paper's α for a processing size of `height` x `width`.
    pub fn alpha(&self, height: i64, width: i64) -> f64 {
        self.content_weight * REFERENCE_AREA / (height * width) as f64
    }

    /// The paper's β.
    pub fn beta(&self) -> f64 {
        self.style_weight
    }

    /// The total-variation weight for a processing size of `height` x `width`.
    pub fn tv_lambda(&self, height: i64, width: i64) -> f64 {
        self.tv_weight * REFERENCE_AREA / (height * width) as f64
    }
}

pub(crate) fn non_negative(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::setting(
            name,
            value,
            "must be a finite number, zero or more",
        ))
    }
}

/// The optimiser and when to stop.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerSettings {
    /// The algorithm; default L-BFGS.
    pub kind: OptimizerKind,
    /// Iterations at most; default 500. Zero returns the initial image.
    pub iterations: usize,
    /// Stop earlier once the relative change of the total loss between iterations stays below
    /// this for `patience` iterations in a row; default 0 (never).
    pub tolerance: f64,
    /// See `tolerance`; default 5.
    pub patience: usize,
    /// Keep every pixel within 0..255 while optimising (projected: a pixel at a bound is not
    /// pushed beyond it), so that the picture written is the one optimised; default true.
    /// Without bounds (neural-style's way) pixels wander outside that range and the picture is
    /// clipped only when written: at 128-256 px, 300 iterations, its loss was 6-50 % above the
    /// optimiser's figure, while a bounded run reaches that figure within 0.6 %.
    pub bounded: bool,
}

impl Default for OptimizerSettings {
    fn default() -> Self {
        OptimizerSettings {
            kind: OptimizerKind::default(),
            iterations: 500,
            tolerance: 0.0,
            patience: 5,
            bounded: true,
        }
    }
}

/// An optimisation algorithm with its parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerKind {
    /// L-BFGS.
    Lbfgs {
        /// Correction pairs kept; default 50.
        history: usize,
        /// Step length along the quasi-Newton direction; default 1.
        learning_rate: f64,
        /// A backtracking (Armijo) line search; default off (one evaluation per iteration).
        line_search: bool,
    },
    /// Adam.
    Adam {
        /// Step size in pixel units (0..255 scale); default 10.
        learning_rate: f64,
    },
}

impl Default for OptimizerKind {
    fn default() -> Self {
        OptimizerKind::Lbfgs {
            history: 50,
            learning_rate: 1.0,
            line_search: false,
        }
    }
}

impl OptimizerSettings {
    /// Checks every value; errors name the command-line flag.
    pub fn validate(&self) -> Result<()> {
        if !(self.tolerance.is_finite() && (0.0..1.0).contains(&self.tolerance)) {
            return Err(Error::setting(
                "--tolerance",
                self.tolerance,
                "must be at least 0 and below 1",
            ));
        }
        if self.patience == 0 {
            return Err(Error::setting("--patience", 0, "must be at least 1"));
        }
        match self.kind {
            OptimizerKind::Lbfgs {
                history,
                learning_rate,
                ..
            } => {
                if history == 0 {
                    return Err(Error::setting("--lbfgs-history", 0, "must be at least 1"));
                }
                positive("--learning-rate", learning_rate)
            }
            OptimizerKind::Adam { learning_rate } => positive("--learning-rate", learning_rate),
        }
    }

    fn optimizer(&self, iterations: usize) -> Box<dyn Optimizer> {
        match self.kind {
            OptimizerKind::Lbfgs {
                history,
                learning_rate,
                line_search,
            } => Box::new(Lbfgs::new(history, iterations, learning_rate, line_search)),
            OptimizerKind::Adam { learning_rate } => Box::new(Adam::new(learning_rate)),
        }
    }
}

fn positive(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::setting(
            name,
            value,
            "must be a finite number above 0",
        ))
    }
}

/// The painting's (or blended paintings') Gram matrices at the style layers, computed once.
pub struct StyleTarget {
    pooling: Pooling,
    scale: GramScale,
    /// Per style layer: Σ_s b_s A_s / M_s (per position) or Σ_s b_s A_s (paper).
    grams: Vec<(Layer, Tensor)>,
}

impl StyleTarget {
    /// The target for `styles`: network-space images (see [`preprocess::to_network`]) with their
    /// blend weights, which are normalised to sum to 1.
    pub fn new(vgg: &Vgg19, styles: &[(Tensor, f64)], settings: &LossSettings) -> Result<Self> {
        // Summed relative to the largest, so that weights near f64's limit (1e308) do not sum
        // to infinity and leave every painting a weight of 0.
        let largest = styles.iter().map(|(_, b)| *b).fold(0.0, f64::max);
        let sum: f64 = styles.iter().map(|(_, b)| b / largest).sum();
        if styles.is_empty() {
            return Err(Error::setting(
                "--style",
                "(none)",
                "at least one style image is needed",
            ));
        }
        for (_, b) in styles {
            non_negative("--style-blend", *b)?;
        }
        if largest <= 0.0 {
            return Err(Error::setting(
                "--style-blend",
                listed(styles.iter().map(|(_, b)| *b)),
                "the blend weights sum to zero",
            ));
        }
        let layers: Vec<Layer> = settings.style_layers.iter().map(|l| l.layer).collect();
        let grams = tch::no_grad(|| -> Result<Vec<Tensor>> {
            let mut acc: Vec<Option<Tensor>> = layers.iter().map(|_| None).collect();
            for (image, b) in styles {
                let (_, _, height, width) = image.size4()?;
                let share = b / largest / sum;
                // Running out of memory names this painting's size.
                let weighted = guard_memory((height, width), || {
                    let features =
                        vgg.features(&image.to_device(vgg.device()), settings.pooling, &layers);
                    Ok(features
                        .iter()
                        .map(|f| {
                            let (_, _, h, w) = f.size4().expect("features are 4-d");
                            let per = match settings.gram_scale {
                                GramScale::PerPosition => share / (h * w) as f64,
                                GramScale::Paper => share,
                            };
                            loss::gram(f) * per
                        })
                        .collect::<Vec<_>>())
                })?;
                for (slot, a) in acc.iter_mut().zip(weighted) {
                    *slot = Some(match slot.take() {
                        Some(prev) => prev + a,
                        None => a,
                    });
                }
            }
            Ok(acc
                .into_iter()
                .map(|a| a.expect("one style at least"))
                .collect())
        })?;
        Ok(StyleTarget {
            pooling: settings.pooling,
            scale: settings.gram_scale,
            grams: layers.into_iter().zip(grams).collect(),
        })
    }

    /// The target Gram matrices for a generated image of `height` x `width`.
    fn grams_for(&self, height: i64, width: i64) -> Vec<Tensor> {
        self.grams
            .iter()
            .map(|(layer, a)| match self.scale {
                GramScale::PerPosition => {
                    let (h, w) = layer.feature_size(height, width);
                    a * (h * w) as f64
                }
                GramScale::Paper => a.shallow_clone(),
            })
            .collect()
    }
}

/// The loss terms at one point, unweighted as in the paper, and the weighted total.
#[derive(Clone, Debug, PartialEq)]
pub struct LossTerms {
    /// α·content + β·Σ w_l E_l + λ·tv.
    pub total: f64,
    /// Σ over content layers of weight · ½ Σ (F − P)².
    pub content: f64,
    /// E_l for each style layer, in the order of the settings.
    pub style: Vec<(&'static str, f64)>,
    /// The total variation (0 when its weight is 0).
    pub tv: f64,
}

/// The objective at one point: the terms and ∂total/∂x.
pub struct Evaluation {
    /// The loss terms.
    pub terms: LossTerms,
    /// ∂total/∂x, in network space (mean-subtracted BGR, 0..255 scale).
    pub gradient: Tensor,
    /// Whether every element of the gradient is finite.
    gradient_finite: bool,
}

impl Evaluation {
    /// Whether the loss and the gradient are finite.
    pub fn is_finite(&self) -> bool {
        self.terms.total.is_finite() && self.gradient_finite
    }
}

/// The content image's features and the style targets at the content's size, made once per
/// content image.
pub struct ContentTarget {
    features: Vec<Tensor>,
    grams: Vec<Tensor>,
    alpha: f64,
    tv_lambda: f64,
    size: (i64, i64),
}

/// Why an optimisation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// It ran the requested number of iterations.
    Iterations,
    /// The relative loss change stayed under the tolerance.
    Tolerance,
    /// The callback asked to stop.
    Callback,
    /// Every step kept being refused (non-finite, or diverging: see [`describe_recoveries`]);
    /// the best point was kept.
    NonFinite,
}

impl StopReason {
    /// Why it stopped, in words for the log.
    pub fn describe(self) -> String {
        match self {
            StopReason::Iterations => "all iterations run".into(),
            StopReason::Tolerance => "converged: the loss changed less than --tolerance".into(),
            StopReason::Callback => "stopped".into(),
            StopReason::NonFinite => format!(
                "stalled: {MAX_RECOVERIES_IN_A_ROW} steps in a row refused; the best image is kept"
            ),
        }
    }
}

/// The log's words for `count` refused steps (see [`Outcome::recoveries`]).
pub fn describe_recoveries(count: usize) -> String {
    format!(
        "refused {count} step(s) that gave a non-finite loss or multiplied it by over {}; \
         stepped back each time",
        crate::engine::optim::DIVERGENCE_FACTOR
    )
}

/// The state after one iteration, for progress, GIFs and reports.
///
/// The figures stay on the device until asked for: each accessor that returns a number or an
/// image copies it to the host and so waits for the device. Call them only when needed (a
/// progress bar a few times a second, a GIF every few iterations); a callback that asks for
/// nothing lets the host run ahead of a GPU.
pub struct Iteration<'a> {
    /// The iteration number; 0 is the initial image.
    pub iteration: usize,
    /// Loss evaluations so far.
    pub evaluations: usize,
    names: &'a [&'static str],
    point: &'a Point,
    recoveries: &'a Tensor,
    /// The run's loss scale (see [`loss_scale`]).
    scale: f64,
}

impl Iteration<'_> {
    /// The loss terms at the current image. Reads from the device.
    pub fn terms(&self) -> Result<LossTerms> {
        Ok(terms_from(
            &host::read(&self.point.scalars)?,
            self.names,
            self.scale,
        ))
    }

    /// The total loss at the current image. Reads from the device.
    pub fn loss(&self) -> Result<f64> {
        Ok(host::read_one(&self.point.total())? / self.scale)
    }

    /// Steps refused so far (a non-finite loss, or one multiplied by over 100) and undone.
    /// Reads from the device.
    pub fn recoveries(&self) -> Result<usize> {
        Ok(host::read_one(self.recoveries)? as usize)
    }

    /// The current image (RGB, 0..1). Copies from the device.
    pub fn image(&self) -> Result<Rgb32FImage> {
        preprocess::from_network(&self.point.x)
    }

    /// The current image in network space, on the device.
    pub fn tensor(&self) -> &Tensor {
        &self.point.x
    }
}

/// The loss terms from the figures [scaled total, content, tv, E_l..., Σ gradient] of a point
/// evaluated with the loss scale `scale` (see [`loss_scale`]).
fn terms_from(values: &[f64], names: &[&'static str], scale: f64) -> LossTerms {
    LossTerms {
        total: values[0] / scale,
        content: values[1],
        tv: values[2],
        style: names
            .iter()
            .zip(&values[3..])
            .map(|(n, v)| (*n, *v))
            .collect(),
    }
}

/// The result of one optimisation.
pub struct Outcome {
    /// The best image met (lowest total loss), network space. Always finite.
    pub image: Tensor,
    /// Loss terms at the initial image.
    pub initial: LossTerms,
    /// Loss terms at `image`.
    pub best: LossTerms,
    /// Iterations done.
    pub iterations: usize,
    /// Loss evaluations done: the start's, and one per iteration without line search (one more
    /// when the start is evaluated again with a loss scale: see `LossSettings`' weights).
    pub evaluations: usize,
    /// The total loss after each iteration; element 0 is the initial image's.
    pub history: Vec<f64>,
    /// Steps refused (a non-finite loss, or one multiplied by over 100) and stepped back from.
    pub recoveries: usize,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Recoveries in a row after which the optimisation gives up and keeps its last finite point.
const MAX_RECOVERIES_IN_A_ROW: usize = 12;

/// Optimises images against one style target.
pub struct Stylizer<'a> {
    vgg: &'a Vgg19,
    style: &'a StyleTarget,
    loss: LossSettings,
    optimizer: OptimizerSettings,
    /// Content layers then style layers, in the order of the settings.
    layers: Vec<Layer>,
}

impl<'a> Stylizer<'a> {
    /// A stylizer; `style` must have been made with the same style layers and pooling.
    pub fn new(
        vgg: &'a Vgg19,
        style: &'a StyleTarget,
        loss: LossSettings,
        optimizer: OptimizerSettings,
    ) -> Result<Self> {
        loss.validate()?;
        optimizer.validate()?;
        let style_layers: Vec<Layer> = loss.style_layers.iter().map(|l| l.layer).collect();
        let target_layers: Vec<Layer> = style.grams.iter().map(|(l, _)| *l).collect();
        if style_layers != target_layers
            || style.pooling != loss.pooling
            || style.scale != loss.gram_scale
        {
            return Err(Error::setting(
                "style target",
                "(library call)",
                "made with other style layers, pooling or Gram scaling than the stylizer's",
            ));
        }
        let layers = loss
            .content_layers
            .iter()
            .map(|l| l.layer)
            .chain(style_layers)
            .collect();
        Ok(Stylizer {
            vgg,
            style,
            loss,
            optimizer,
            layers,
        })
    }

    /// The loss settings.
    pub fn loss_settings(&self) -> &LossSettings {
        &self.loss
    }

    /// The optimiser settings.
    pub fn optimizer_settings(&self) -> &OptimizerSettings {
        &self.optimizer
    }

    /// The features of a content image (network space) and the style targets at its size.
    pub fn content_target(&self, content: &Tensor) -> Result<ContentTarget> {
        let (_, _, h, w) = content.size4()?;
        let min = 1i64 << 4;
        if h < min || w < min {
            return Err(Error::setting(
                "--size",
                format!("{w}x{h}"),
                format!("images must be at least {min}x{min} pixels for VGG19's five blocks"),
            ));
        }
        let layers: Vec<Layer> = self.loss.content_layers.iter().map(|l| l.layer).collect();
        let features = guard_memory((h, w), || {
            Ok(tch::no_grad(|| {
                self.vgg.features(
                    &content.to_device(self.vgg.device()),
                    self.loss.pooling,
                    &layers,
                )
            }))
        })?;
        Ok(ContentTarget {
            features,
            grams: self.style.grams_for(h, w),
            alpha: self.loss.alpha(h, w),
            tv_lambda: self.loss.tv_lambda(h, w),
            size: (h, w),
        })
    }

    /// The loss terms and gradient at `x` (network space, the content's size). Reads the
    /// figures from the device.
    pub fn evaluate(&self, target: &ContentTarget, x: &Tensor) -> Result<Evaluation> {
        let point = self.point(target, x, 1.0)?;
        let values = host::read(&point.scalars)?;
        Ok(Evaluation {
            terms: terms_from(&values, &self.style_names(), 1.0),
            gradient: point.gradient,
            // A NaN or infinity anywhere makes the sum non-finite.
            gradient_finite: values[values.len() - 1].is_finite(),
        })
    }

    fn style_names(&self) -> Vec<&'static str> {
        self.loss
            .style_layers
            .iter()
            .map(|l| l.layer.name())
            .collect()
    }

    /// The evaluated point at `x`, its figures left on the device: the objective is the total
    /// loss times `scale` (see [`loss_scale`]), and so are its figure and gradient.
    fn point(&self, target: &ContentTarget, x: &Tensor, scale: f64) -> Result<Point> {
        guard_memory(target.size, || self.point_unguarded(target, x, scale))
    }

    /// The total loss in float64 from the unweighted figures of a point (see [`terms_from`]),
    /// which stay finite whatever the weights.
    fn weighted_total(&self, target: &ContentTarget, values: &[f64]) -> f64 {
        let style: f64 = self
            .loss
            .style_layers
            .iter()
            .zip(&values[3..])
            .map(|(lw, e)| lw.weight * e)
            .sum();
        target.alpha * values[1] + self.loss.beta() * style + target.tv_lambda * values[2]
    }

    fn point_unguarded(&self, target: &ContentTarget, x: &Tensor, scale: f64) -> Result<Point> {
        let x = x.detach().set_requires_grad(true);
        let features = self.vgg.features(&x, self.loss.pooling, &self.layers);
        let (content_f, style_f) = features.split_at(self.loss.content_layers.len());
        let zero = || Tensor::zeros([], (Kind::Float, x.device()));
        let weighted_sum = |terms: Vec<Tensor>| match terms.len() {
            0 => zero(),
            _ => Tensor::stack(&terms, 0).sum(Kind::Float),
        };
        let content = weighted_sum(
            content_f
                .iter()
                .zip(&target.features)
                .zip(&self.loss.content_layers)
                .map(|((f, p), lw)| loss::content(f, p) * lw.weight)
                .collect(),
        );
        let style_e: Vec<Tensor> = style_f
            .iter()
            .zip(&target.grams)
            .map(|(f, a)| loss::style_layer(f, a))
            .collect();
        let style = weighted_sum(
            style_e
                .iter()
                .zip(&self.loss.style_layers)
                .map(|(e, lw)| e * lw.weight)
                .collect(),
        );
        let tv = if target.tv_lambda > 0.0 {
            loss::total_variation(&x)
        } else {
            zero()
        };
        let total = &content * (target.alpha * scale)
            + style * (self.loss.beta() * scale)
            + &tv * (target.tv_lambda * scale);
        let gradient = Tensor::f_run_backward(&[&total], &[&x], false, false)?
            .pop()
            .expect("one gradient");
        let mut scalars = vec![total.detach(), content.detach(), tv.detach()];
        scalars.extend(style_e.iter().map(|e| e.detach()));
        scalars.push(gradient.sum(Kind::Float));
        Ok(Point {
            x: x.detach(),
            scalars: Tensor::stack(&scalars, 0).to_kind(Kind::Double),
            gradient,
        })
    }

    /// Optimises from `init` (network space, the content's size) towards `content`'s content and
    /// the target style. `on_iteration` is called for the initial image (iteration 0) and after
    /// every iteration the host queues; returning `ControlFlow::Break` stops early. The host
    /// learns of a stop decided on the device (a stall of refused steps) up to 15 iterations
    /// later when no tolerance is set (at once with one), so the last calls may show the stopped
    /// image again, numbered beyond [`Outcome::iterations`]; their evaluations are counted in
    /// [`Outcome::evaluations`].
    pub fn run(
        &self,
        content: &Tensor,
        init: &Tensor,
        on_iteration: impl FnMut(&Iteration<'_>) -> ControlFlow<()>,
    ) -> Result<Outcome> {
        self.run_for(content, init, self.optimizer.iterations, on_iteration)
    }

    /// [`Stylizer::run`] with another iteration count than the settings' (a video's cold first
    /// frame needs more than its warm frames).
    pub fn run_for(
        &self,
        content: &Tensor,
        init: &Tensor,
        iterations: usize,
        mut on_iteration: impl FnMut(&Iteration<'_>) -> ControlFlow<()>,
    ) -> Result<Outcome> {
        if content.size() != init.size() {
            return Err(Error::setting(
                "--init",
                format!("{:?}", init.size()),
                format!(
                    "the initial image must have the content's size {:?}",
                    content.size()
                ),
            ));
        }
        let target = self.content_target(content)?;
        let device = self.vgg.device();
        let names = self.style_names();
        let evaluations = Cell::new(0usize);
        let scale = Cell::new(1.0);
        let bounds = self.optimizer.bounded.then(|| PixelBounds::new(device));
        let mut objective = |x: &Tensor| {
            evaluations.set(evaluations.get() + 1);
            match &bounds {
                Some(bounds) => {
                    Ok(bounds.project(self.point(&target, &bounds.clamp(x), scale.get())?))
                }
                None => self.point(&target, x, scale.get()),
            }
        };
        let init = init.detach().to_device(device).to_kind(Kind::Float).copy();
        if bounds.is_some() && !bool::try_from(init.isfinite().all())? {
            // Clamping would turn it into a picture of saturated pixels.
            return Err(Error::NonFinite(format!(
                "the initial image holds non-finite values at {}x{}",
                target.size.1, target.size.0
            )));
        }
        let mut current = objective(&init)?;
        let mut initial_values = host::read(&current.scalars)?;
        let total = self.weighted_total(&target, &initial_values);
        if let Some(factor) = loss_scale(total) {
            scale.set(factor);
            let scaled = objective(&init)?;
            let values = host::read(&scaled.scalars)?;
            // A weight far beyond the others can overflow float32 once scaled, on a term that
            // is 0 at the start (the content's, starting from the content): then as it is.
            if values.iter().all(|v| v.is_finite()) {
                (current, initial_values) = (scaled, values);
            } else {
                scale.set(1.0);
            }
        }
        let scale = scale.get();
        // The unweighted terms (not the total, nor the gradient's sum that ends the figures).
        let terms = &initial_values[1..initial_values.len() - 1];
        let terms_finite = terms.iter().all(|v| v.is_finite());
        let all_finite = initial_values.iter().all(|v| v.is_finite());
        if terms_finite && !(total.is_finite() && all_finite) {
            let l = &self.loss;
            // The total is summed in float64, the terms and the gradient in float32.
            let limit = if total.is_finite() {
                "beyond what float32 can optimise"
            } else {
                "beyond even float64"
            };
            return Err(Error::setting(
                "--style-weight",
                l.style_weight,
                format!(
                    "with --content-weight {} and --tv-weight {} the start's total loss is \
                     {total:e}, {limit}; only the weights' ratios shape the picture, so bring \
                     them closer together or divide them all by the same large number",
                    shown(l.content_weight),
                    shown(l.tv_weight)
                ),
            ));
        }
        if !all_finite {
            return Err(Error::NonFinite(format!(
                "the initial image gives non-finite loss terms at {}x{} (content {}, total \
                 variation {}, style {:?})",
                target.size.1,
                target.size.0,
                terms[0],
                terms[1],
                &terms[2..]
            )));
        }
        // Everything the loop decides, it decides on the device (see `optim`): the host reads
        // whether the optimisation still runs every `check_every` iterations, and the callback
        // reads what it asks for. With a tolerance the check is every iteration, so that no
        // evaluation is spent after the stop.
        let check_every = if self.optimizer.tolerance > 0.0 {
            1
        } else {
            CHECK_EVERY
        };
        if let OptimizerKind::Lbfgs { history, .. } = self.optimizer.kind {
            check_lbfgs_memory(history, iterations, &current.x)?;
        }
        let mut state = LoopState::new(&current, device);
        // The best image met and its figures.
        let (mut best_x, mut best_scalars) =
            (current.x.shallow_clone(), current.scalars.shallow_clone());
        let mut history = vec![current.total()];
        let mut optimizer = self.optimizer.optimizer(iterations);
        let mut stopped_by_callback = false;
        let mut report = |iteration: usize, point: &Point, recoveries: &Tensor| {
            on_iteration(&Iteration {
                iteration,
                evaluations: evaluations.get(),
                names: &names,
                point,
                recoveries,
                scale,
            })
        };
        if report(0, &current, &state.recoveries).is_break() {
            stopped_by_callback = true;
        }
        let mut iteration = 0;
        while !stopped_by_callback && iteration < iterations {
            let candidate = optimizer.step(&current, &mut objective)?;
            iteration += 1;
            let taken = candidate.acceptable.logical_and(&state.running);
            let refused = candidate
                .acceptable
                .logical_not()
                .logical_and(&state.running);
            optimizer.update(&current, &candidate.point, &taken, &refused);
            let next = candidate.point;
            let improved = taken.logical_and(&next.total().lt_tensor(&best_scalars.get(0)));
            best_x = next.x.where_self(&improved, &best_x);
            best_scalars = next.scalars.where_self(&improved, &best_scalars);
            state.advance(
                &current,
                &next,
                (&taken, &refused, &candidate.probe),
                &self.optimizer,
            );
            current = next.choose(&taken, &current);
            history.push(current.total());
            if report(iteration, &current, &state.recoveries).is_break() {
                stopped_by_callback = true;
            } else if iteration % check_every == 0
                && iteration < iterations
                && host::read_one(&state.running)? == 0.0
            {
                break;
            }
        }
        // One read for every figure of the run: the counts, the best point's figures, the history.
        let figures = host::read(&Tensor::cat(
            &[
                Tensor::stack(&[&state.done, &state.recoveries, &state.stop], 0)
                    .to_kind(Kind::Double),
                best_scalars.shallow_clone(),
                Tensor::stack(&history, 0),
            ],
            0,
        ))?;
        let (counts, rest) = figures.split_at(3);
        let (best_figures, history) = rest.split_at(best_scalars.size()[0] as usize);
        let (done, recoveries) = (counts[0] as usize, counts[1] as usize);
        let stop = match counts[2] as i64 {
            STOP_TOLERANCE => StopReason::Tolerance,
            STOP_NON_FINITE => StopReason::NonFinite,
            _ if stopped_by_callback => StopReason::Callback,
            _ => StopReason::Iterations,
        };
        let history = history[..=done].iter().map(|t| t / scale).collect();
        let best_terms = terms_from(best_figures, &names, scale);
        Ok(Outcome {
            image: best_x,
            initial: terms_from(&initial_values, &names, scale),
            best: best_terms,
            iterations: done,
            evaluations: evaluations.get(),
            history,
            recoveries,
            stop,
        })
    }
}

/// The range of a pixel, 0..255 in every channel, in network space (mean-subtracted BGR).
struct PixelBounds {
    low: Tensor,
    high: Tensor,
}

impl PixelBounds {
    fn new(device: Device) -> Self {
        let mean = Tensor::from_slice(&CAFFE_MEAN_BGR)
            .view([1, 3, 1, 1])
            .to_kind(Kind::Float)
            .to_device(device);
        PixelBounds {
            low: -&mean,
            high: 255.0 - mean,
        }
    }

    /// `x` with every value brought within the range (a NaN stays a NaN; an infinity becomes
    /// the bound, which is why a non-finite start is refused before the clamping).
    fn clamp(&self, x: &Tensor) -> Tensor {
        x.maximum(&self.low).minimum(&self.high)
    }

    /// The point evaluated at a clamped image, its gradient projected: a pixel at a bound whose
    /// descent direction leaves the range gets 0, so that the optimiser neither steps out (to
    /// be clamped back) nor learns curvature from a move that did not happen. Without this,
    /// L-BFGS's pairs mix projected steps with free gradients and the loss can jump tenfold.
    fn project(&self, mut point: Point) -> Point {
        let leaving = point
            .x
            .le_tensor(&self.low)
            .logical_and(&point.gradient.gt(0.0))
            .logical_or(
                &point
                    .x
                    .ge_tensor(&self.high)
                    .logical_and(&point.gradient.lt(0.0)),
            );
        point.gradient = point
            .gradient
            .where_scalarother(&leaving.logical_not(), 0.0);
        point
    }
}

/// Totals within which the optimisers work on the loss as it is: float32 sums of the squared
/// gradient (L-BFGS's curvature) overflow above, and the first step (unit L1 length at most) and
/// L-BFGS's curvature test (yᵀs > 1e-10, as PyTorch's) stall below. The defaults give 1e10–1e13.
const WORKABLE_TOTALS: std::ops::RangeInclusive<f64> = 1e3..=1e17;
/// Where a total outside [`WORKABLE_TOTALS`] is brought.
const SCALED_TOTAL: f64 = 1e11;

/// The factor, a power of two, by which the optimisation multiplies a run's objective when the
/// start's total loss (float64, from the unweighted terms) lies outside [`WORKABLE_TOTALS`]: only
/// the ratios of the weights shape the picture, so the weights' absolute size should not decide
/// whether the optimisation moves (--style-weight 1e20 or 1e-12 used to leave the content image
/// as it was). A power of two scales every float exactly; `None` where the total is workable,
/// zero or not finite.
fn loss_scale(total: f64) -> Option<f64> {
    if !total.is_finite() || total <= 0.0 || WORKABLE_TOTALS.contains(&total) {
        return None;
    }
    let exponent = (SCALED_TOTAL / total).log2().round().clamp(-1000.0, 1000.0);
    Some(2f64.powi(exponent as i32))
}

/// Iterations between the host's checks of whether the optimisation still runs, when no
/// tolerance is set (then only runs of refused steps stop it, which is rare): at most this many
/// minus one evaluations are spent in vain after such a stop.
const CHECK_EVERY: usize = 16;

const STOP_TOLERANCE: i64 = 1;
const STOP_NON_FINITE: i64 = 2;

/// The optimisation loop's counters, on the device (0-d tensors).
struct LoopState {
    /// Whether the optimisation still runs (boolean).
    running: Tensor,
    /// Iterations done while running.
    done: Tensor,
    /// Iterations in a row whose relative loss change was under the tolerance.
    calm: Tensor,
    /// Refused steps in a row, and in all.
    refused_in_a_row: Tensor,
    recoveries: Tensor,
    /// Why it stopped: 0 (it has not), [`STOP_TOLERANCE`] or [`STOP_NON_FINITE`].
    stop: Tensor,
}

impl LoopState {
    fn new(start: &Point, device: Device) -> Self {
        let zero = || Tensor::zeros([], (Kind::Int64, device));
        LoopState {
            running: start.finite(),
            done: zero(),
            calm: zero(),
            refused_in_a_row: zero(),
            recoveries: zero(),
            stop: zero(),
        }
    }

    /// Counts one iteration from `at` to the candidate `next` (`taken`, `refused`, a `probe`:
    /// see `optim::Candidate`) and applies the stopping rules.
    fn advance(
        &mut self,
        at: &Point,
        next: &Point,
        (taken, refused, probe): (&Tensor, &Tensor, &Tensor),
        settings: &OptimizerSettings,
    ) {
        let change =
            (at.total() - next.total()).abs() / at.total().abs().clamp_min(f64::MIN_POSITIVE);
        let calm_step = change.lt(settings.tolerance);
        // A probe's small change is no sign of convergence: it neither counts nor breaks a run.
        let calm = (&self.calm + 1)
            .where_scalarother(&calm_step, 0)
            .where_self(&calm_step.logical_and(probe).logical_not(), &self.calm);
        self.calm = calm.where_self(taken, &self.calm);
        let refused_count = refused.to_kind(Kind::Int64);
        self.refused_in_a_row =
            (&self.refused_in_a_row + &refused_count).where_scalarother(&taken.logical_not(), 0);
        self.recoveries = &self.recoveries + &refused_count;
        self.done = &self.done + self.running.to_kind(Kind::Int64);
        let non_finite = self
            .refused_in_a_row
            .ge(MAX_RECOVERIES_IN_A_ROW as i64)
            .logical_and(&self.running);
        let tolerance = self
            .calm
            .ge(settings.patience as i64)
            .logical_and(&self.running)
            .logical_and(&non_finite.logical_not());
        self.stop = Tensor::where_scalarself(
            &non_finite,
            STOP_NON_FINITE,
            &Tensor::where_scalarself(&tolerance, STOP_TOLERANCE, &self.stop),
        );
        self.running = self
            .running
            .logical_and(&non_finite.logical_not())
            .logical_and(&tolerance.logical_not());
    }
}

/// Whether the L-BFGS memory of `history` pairs (at most one per iteration) of images like `x`
/// can be had on its device: an error that names --lbfgs-history if not (the memory is taken
/// inside the loop, where running out would be a crash).
fn check_lbfgs_memory(history: usize, iterations: usize, x: &Tensor) -> Result<()> {
    let pairs = history.min(iterations).max(1) as i64;
    let n = x.numel() as i64;
    let trial = std::panic::catch_unwind(|| {
        Tensor::f_empty([pairs, 2, n], (Kind::Float, x.device())).map(|_| ())
    });
    if matches!(trial, Ok(Ok(()))) {
        return Ok(());
    }
    let gib = (pairs * 2 * n * 4) as f64 / (1u64 << 30) as f64;
    let (h, w) = (x.size()[2], x.size()[3]);
    Err(Error::setting(
        "--lbfgs-history",
        history,
        format!(
            "{pairs} pairs of {w}x{h} images need {gib:.1} GiB, more than the device could give; \
             the default of 50 needs {:.2} GiB",
            (50.min(pairs) * 2 * n * 4) as f64 / (1u64 << 30) as f64
        ),
    ))
}

/// Runs `work` (network passes at an image of `size` = (height, width)), turning libtorch's
/// panics into errors: running out of device memory, as a panic or as the error of a fallible
/// call (the backward pass, where a GPU is likeliest to run out), says which size would fit;
/// any other panic of libtorch becomes [`Error::Torch`] with the first line of its message.
pub(crate) fn guard_memory<T>(size: (i64, i64), work: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(Err(Error::Torch(e))) => {
            Err(memory_error(&e.to_string(), size).unwrap_or(Error::Torch(e)))
        }
        Ok(result) => result,
        Err(payload) => {
            let message = panic_message(payload.as_ref()).unwrap_or("libtorch failed");
            Err(memory_error(message, size).unwrap_or_else(|| {
                Error::Torch(tch::TchError::Torch(first_line(message).to_string()))
            }))
        }
    }
}

/// The message a panic carries (libtorch's errors arrive as panics), if it carries text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
}

/// The first line of a libtorch message (the rest is its C++ call stack), without the escaped
/// newline of a message quoted inside another.
pub fn first_line(message: &str) -> &str {
    let line = message.lines().next().unwrap_or(message);
    line.split("\\n").next().unwrap_or(line).trim()
}

/// The error for a libtorch message about memory at an image of (height, width), with the
/// long edge that would need about half the memory (memory grows with the pixel count).
pub(crate) fn memory_error(message: &str, (h, w): (i64, i64)) -> Option<Error> {
    let lower = message.to_ascii_lowercase();
    // CUDA's wording, and the CPU allocator's.
    let wordings = [
        "out of memory",
        "not enough memory",
        "can't allocate memory",
        "cannot allocate memory",
    ];
    if !wordings.iter().any(|w| lower.contains(w)) {
        return None;
    }
    let long = h.max(w);
    let fits = ((long as f64) * std::f64::consts::FRAC_1_SQRT_2 / 16.0).floor() as i64 * 16;
    Some(Error::OutOfMemory {
        width: w,
        height: h,
        fits,
        problem: first_line(message).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_outside_the_workable_range_are_scaled_by_a_power_of_two() {
        for total in [1e3, 2.6e12, 1e17, 0.0, f64::INFINITY, f64::NAN] {
            assert_eq!(loss_scale(total), None, "{total}");
        }
        for total in [2.6e28, 2.6e-4, 1e300, 5e-324] {
            let scale = loss_scale(total).unwrap();
            assert_eq!(scale.log2().fract(), 0.0, "{total}: {scale}");
            assert!(scale.is_finite() && scale > 0.0);
            if total > 1e-290 {
                let scaled = total * scale;
                assert!(
                    (SCALED_TOTAL / 1.5..=SCALED_TOTAL * 1.5).contains(&scaled),
                    "{scaled}"
                );
            }
        }
    }

    #[test]
    fn a_pixel_at_a_bound_gets_no_gradient_pointing_out_of_the_range() {
        let bounds = PixelBounds::new(Device::Cpu);
        let bound = |b: &Tensor, c: i64| b.double_value(&[0, c, 0, 0]) as f32;
        for (c, mean) in CAFFE_MEAN_BGR.iter().enumerate() {
            let c = c as i64;
            assert_eq!(bound(&bounds.low, c), -*mean as f32);
            assert_eq!(bound(&bounds.high, c), 255.0 - *mean as f32);
        }
        // Per channel: twice at the low bound, twice at the high one, inside, and beyond each
        // bound (where an optimiser's step may leave a pixel; clamping brings it to the bound).
        let columns = |c: i64| {
            let (lo, hi) = (bound(&bounds.low, c), bound(&bounds.high, c));
            [lo, lo, hi, hi, 0.0, lo - 40.0, hi + 40.0]
        };
        let x = Tensor::cat(
            &(0..3)
                .map(|c| Tensor::from_slice(&columns(c)).view([1, 1, 1, 7]))
                .collect::<Vec<_>>(),
            1,
        );
        let clamped = bounds.clamp(&x);
        let gradient = Tensor::from_slice(&[1f32, -1.0, -1.0, 1.0, 1.0, 1.0, -1.0])
            .view([1, 1, 1, 7])
            .repeat([1, 3, 1, 1]);
        let point = bounds.project(Point {
            x: clamped.shallow_clone(),
            scalars: Tensor::zeros([1], (Kind::Double, Device::Cpu)),
            gradient,
        });
        // A positive gradient means descent lowers the pixel: refused at the low bound only.
        let expected = [0f32, -1.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        for c in 0..3 {
            let row = Vec::<f32>::try_from(point.gradient.get(0).get(c).flatten(0, -1)).unwrap();
            assert_eq!(row, expected, "channel {c}");
            let pixels = Vec::<f32>::try_from(clamped.get(0).get(c).flatten(0, -1)).unwrap();
            let [lo, _, hi, ..] = columns(c);
            assert_eq!(pixels, [lo, lo, hi, hi, 0.0, lo, hi], "channel {c}");
        }
    }

    #[test]
    fn running_out_of_memory_in_a_fallible_call_says_which_size_fits() {
        let cuda = "CUDA out of memory. Tried to allocate 3.16 GiB. GPU 0 has a total capacity of \
            79.19 GiB of which 1.02 GiB is free.\nException raised from malloc at CUDACachingAllocator.cpp";
        let error = guard_memory::<()>((2160, 3840), || {
            Err(tch::TchError::Torch(cuda.into()).into())
        })
        .unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, Error::OutOfMemory { fits: 2704, .. }),
            "{text}"
        );
        assert!(
            text.contains("3840x2160") && text.contains("--size 2704"),
            "{text}"
        );
        assert!(!text.contains("CUDACachingAllocator"), "{text}");
        // Other libtorch errors pass as they are.
        let other = guard_memory::<()>((72, 128), || {
            Err(tch::TchError::Torch("shape mismatch".into()).into())
        })
        .unwrap_err();
        assert!(matches!(other, Error::Torch(_)), "{other}");
    }

    #[test]
    fn the_cpu_allocator_running_out_is_told_as_memory_too() {
        let message = "a 3x3 convolution of matching shapes: Torch(\"[enforce fail at alloc_cpu.cpp:127] err == 0. \
            DefaultCPUAllocator: can't allocate memory: you tried to allocate 2415919104 bytes. \
            Error code 12 (Cannot allocate memory)\\nframe #0: c10::ThrowEnforceNotMet\")";
        let text = memory_error(message, (2304, 4096))
            .expect("recognised")
            .to_string();
        assert!(
            text.contains("4096x2304") && text.contains("--size 2896") && !text.contains("c10::"),
            "{text}"
        );
        assert!(first_line(message).ends_with("(Cannot allocate memory)"));
        assert!(memory_error("shapes do not match", (64, 64)).is_none());
    }

    #[test]
    fn running_out_of_memory_suggests_a_size_that_fits() {
        let e = memory_error(
            "CUDA out of memory. Tried to allocate 2.00 GiB\nmore",
            (2160, 3840),
        )
        .expect("recognised");
        let text = e.to_string();
        assert!(
            text.contains("3840x2160") && text.contains("--size 2704"),
            "{text}"
        );
        assert!(memory_error("shape mismatch", (10, 10)).is_none());
        let caught = guard_memory::<()>((720, 1280), || {
            panic!("DefaultCPUAllocator: not enough memory")
        });
        assert!(caught.unwrap_err().to_string().contains("--size 896"));
        // Another panic of libtorch is its error, not a claim about the image.
        let other = guard_memory::<()>((720, 1280), || panic!("shape mismatch\nframe #0: c10::"));
        assert!(
            matches!(other, Err(Error::Torch(tch::TchError::Torch(ref m))) if m == "shape mismatch"),
            "{other:?}"
        );
    }
}
