//! The JSON report (`--report`): every resolved setting and, per frame, the losses before and
//! after, the loss history and the time taken. Version 1; later versions add fields, never
//! rename them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::engine::stylizer::{LossSettings, LossTerms, OptimizerSettings, Outcome};
use crate::error::Result;
use crate::io::atomic;
use crate::memory::MemoryUse;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Format version: 1.
    pub version: u32,
    /// Every resolved setting.
    pub settings: Map<String, Value>,
    /// One entry per stylised image or frame.
    pub frames: Vec<FrameReport>,
    /// Figures of a whole video or sequence run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<RunTotals>,
    /// Every warning the run gave, as logged (damaged frames, steps the optimiser refused,
    /// encoding notes, inputs of which only a part is used).
    pub warnings: Vec<String>,
    /// The memory the run took, read when the report was written.
    pub memory: MemoryUse,
}

/// Figures of a whole video or sequence run.
#[derive(Debug, Serialize)]
pub struct RunTotals {
    /// Frames in the output.
    pub frames: usize,
    /// Frames taken from an earlier, interrupted run instead of being stylised again.
    pub resumed: usize,
    /// Frames stylised in this run.
    pub stylized: usize,
    /// Wall time of the run, from opening the input to the finished output, in seconds.
    pub seconds: f64,
    /// Of which spent optimising, in seconds.
    pub stylize_seconds: f64,
    /// Of which estimating the optical flow of warm starts, as seen from the host, in seconds.
    pub flow_seconds: f64,
    /// Output frames per second of wall time, over the frames stylised in this run.
    pub frames_per_second: f64,
    /// Iterations of the first (cold) frame stylised in this run, if any.
    pub first_frame_iterations: Option<usize>,
    /// Mean iterations of the warm frames stylised in this run, if any.
    pub mean_warm_iterations: Option<f64>,
    /// Frames (source indices) stylised in this run that started a new shot, and so started
    /// cold with the first frame's iterations.
    pub shot_cuts: Vec<usize>,
    /// Whether the run was interrupted (Ctrl-C) before the end.
    pub interrupted: bool,
    /// Whether the output was completed; `false`: the run stopped (interrupted or failed), its
    /// finished frames are kept, and rerunning the command resumes and replaces this report.
    pub complete: bool,
    /// What stopped a run that did not complete, as its error said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
}

/// One image or frame.
#[derive(Debug, Serialize)]
pub struct FrameReport {
    /// Position in the run, from 0.
    pub index: usize,
    /// Where the content came from.
    pub input: String,
    /// Where the result went.
    pub output: String,
    /// How a video frame's optimisation started: `first` (the run's first frame, cold), `warm`
    /// (from the previous result) or `cut` (cold, as it starts a new shot). Absent for stills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<crate::pipeline::FrameStart>,
    /// Iterations done.
    pub iterations: usize,
    /// Loss evaluations done.
    pub evaluations: usize,
    /// Wall time of the optimisation, in seconds.
    pub seconds: f64,
    /// Losses at the initial image.
    pub initial: LossReport,
    /// Losses at the output image.
    #[serde(rename = "final")]
    pub final_: LossReport,
    /// The iteration whose image is the output (the lowest total loss met; 0: the start):
    /// where the last iterations climbed, not the last.
    pub final_iteration: usize,
    /// Why the optimisation stopped.
    pub stop: crate::engine::stylizer::StopReason,
    /// Steps refused (a non-finite loss, or one multiplied by over 100) and undone.
    pub recoveries: usize,
    /// The total loss after every iteration (iteration 0 is the initial image).
    pub history: Vec<HistoryPoint>,
}

/// The loss terms, unweighted as in the paper, and the weighted total.
#[derive(Debug, Serialize)]
pub struct LossReport {
    /// α·content + β·Σ w_l E_l (+ λ·tv).
    pub total: f64,
    /// Σ over the content layers of their weight · ½ Σ (F − P)² (the paper's term for one
    /// layer of weight 1).
    pub content: f64,
    /// E_l per style layer.
    pub style: BTreeMap<String, f64>,
    /// Total variation, when its weight is not zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tv: Option<f64>,
}

/// One point of the loss history.
#[derive(Debug, Serialize)]
pub struct HistoryPoint {
    /// Iteration number.
    pub iteration: usize,
    /// Total loss.
    pub total: f64,
}

impl LossReport {
    /// The report form of `terms`; `with_tv` adds the total-variation term.
    pub fn new(terms: &LossTerms, with_tv: bool) -> Self {
        LossReport {
            total: terms.total,
            content: terms.content,
            style: terms
                .style
                .iter()
                .map(|(l, e)| (l.to_string(), *e))
                .collect(),
            tv: with_tv.then_some(terms.tv),
        }
    }
}

impl FrameReport {
    /// The entry for one optimisation.
    pub fn new(
        index: usize,
        input: &Path,
        output: &Path,
        outcome: &Outcome,
        seconds: f64,
        with_tv: bool,
    ) -> Self {
        FrameReport {
            index,
            input: input.display().to_string(),
            output: output.display().to_string(),
            start: None,
            iterations: outcome.iterations,
            evaluations: outcome.evaluations,
            seconds,
            initial: LossReport::new(&outcome.initial, with_tv),
            final_: LossReport::new(&outcome.best, with_tv),
            final_iteration: best_iteration(&outcome.history),
            stop: outcome.stop,
            recoveries: outcome.recoveries,
            history: outcome
                .history
                .iter()
                .enumerate()
                .map(|(iteration, total)| HistoryPoint {
                    iteration,
                    total: *total,
                })
                .collect(),
        }
    }
}

/// The loss and optimiser settings as report fields, resolved for a processing size of
/// `height` x `width` (α, β and the λ of total variation included).
pub fn engine_settings(
    loss: &LossSettings,
    optimizer: &OptimizerSettings,
    height: i64,
    width: i64,
) -> Map<String, Value> {
    let layers = |ls: &[crate::engine::stylizer::LayerWeight]| -> Value {
        ls.iter()
            .map(|l| json!({ "layer": l.layer.name(), "weight": l.weight }))
            .collect()
    };
    let value = json!({
        "alpha": loss.alpha(height, width),
        "beta": loss.beta(),
        "content_weight": loss.content_weight,
        "style_weight": loss.style_weight,
        "tv_weight": loss.tv_weight,
        "tv_lambda": loss.tv_lambda(height, width),
        "content_layers": layers(&loss.content_layers),
        "style_layers": layers(&loss.style_layers),
        "pooling": loss.pooling,
        "gram_scale": loss.gram_scale,
        "optimizer": optimizer.kind,
        "iterations": optimizer.iterations,
        "tolerance": optimizer.tolerance,
        "patience": optimizer.patience,
        "bounded": optimizer.bounded,
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

impl Report {
    /// Writes the report as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.stage(path)?.commit()
    }

    /// [`Report::write`], the file left under its temporary name until committed.
    pub fn stage(&self, path: &Path) -> Result<atomic::Staged> {
        let text = serde_json::to_string_pretty(self).expect("a report serialises");
        atomic::Staged::write(path, |f| {
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")
        })
    }
}

/// The iteration of the lowest total in `history` (the first, where several are as low).
fn best_iteration(history: &[f64]) -> usize {
    history
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_finite())
        .min_by(|(i, a), (j, b)| a.total_cmp(b).then(i.cmp(j)))
        .map_or(0, |(i, _)| i)
}
