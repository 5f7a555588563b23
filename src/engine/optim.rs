//! Optimisers over the image: L-BFGS (limited-memory BFGS with an optional safeguarded
//! backtracking line search) and Adam. Both refuse non-finite and diverging points: a step that
//! meets a NaN or an infinity, or multiplies the loss by more than [`DIVERGENCE_FACTOR`], is
//! undone, the optimiser's memory is cleared and its step shrunk, and the caller is told so that
//! it can report the recovery.

use std::collections::VecDeque;

use tch::{Kind, Tensor};

use super::stylizer::Evaluation;
use crate::error::Result;

/// A point of the optimisation: an image (network space) and its evaluation.
pub(crate) struct Point {
    pub x: Tensor,
    pub eval: Evaluation,
}

/// What one optimiser step did.
pub(crate) enum Step {
    /// Moved to a new, finite point.
    Moved(Point),
    /// Met a non-finite value (or found no acceptable step); stayed where it was and reset.
    Recovered,
}

/// The objective: the evaluation at a point.
pub(crate) type Objective<'a> = dyn FnMut(&Tensor) -> Result<Evaluation> + 'a;

/// One optimisation algorithm.
pub(crate) trait Optimizer {
    /// One iteration from `at`, evaluating the objective as often as the algorithm needs.
    fn step(&mut self, at: &Point, objective: &mut Objective<'_>) -> Result<Step>;
}

/// A step that multiplies the loss by more than this has diverged (L-BFGS without a line search
/// raises the loss now and then, but never by this much on a sane step).
pub(crate) const DIVERGENCE_FACTOR: f64 = 100.0;

/// Whether a step from `at` to the point evaluated as `eval` can be taken.
fn acceptable(at: &Point, eval: &Evaluation) -> bool {
    eval.is_finite() && eval.terms.total <= at.eval.terms.total.abs() * DIVERGENCE_FACTOR
}

fn dot(a: &Tensor, b: &Tensor) -> Tensor {
    (a * b).sum(Kind::Float)
}

/// L-BFGS with the usual two-loop recursion.
pub(crate) struct Lbfgs {
    history: usize,
    learning_rate: f64,
    line_search: bool,
    /// Shrinks every step after a recovery.
    damping: f64,
    /// (s, y, 1 / yᵀs), oldest first.
    pairs: VecDeque<(Tensor, Tensor, Tensor)>,
}

/// Armijo's sufficient-decrease constant for the backtracking line search.
const ARMIJO_C1: f64 = 1e-4;
/// Halvings the line search tries before giving up on a direction.
const MAX_BACKTRACKS: usize = 20;

impl Lbfgs {
    pub fn new(history: usize, learning_rate: f64, line_search: bool) -> Self {
        Lbfgs {
            history,
            learning_rate,
            line_search,
            damping: 1.0,
            pairs: VecDeque::new(),
        }
    }

    /// −H g, H the inverse-Hessian approximation held in the pairs.
    fn direction(&self, g: &Tensor) -> Tensor {
        let Some((s_last, y_last, _)) = self.pairs.back() else {
            return -g;
        };
        // A copy: q is updated in place and g must stay as it is.
        let mut q = g.copy();
        let mut alphas = Vec::with_capacity(self.pairs.len());
        for (s, y, rho) in self.pairs.iter().rev() {
            let a = rho * dot(s, &q);
            q -= y * &a;
            alphas.push(a);
        }
        let gamma = dot(s_last, y_last) / dot(y_last, y_last);
        let mut r = q * gamma;
        for ((s, y, rho), a) in self.pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &r);
            r += s * (a - b);
        }
        -r
    }

    fn reset(&mut self) {
        self.pairs.clear();
        self.damping *= 0.5;
    }

    fn remember(&mut self, s: Tensor, y: Tensor) -> Result<()> {
        let ys = f64::try_from(dot(&y, &s))?;
        // Only pairs with positive curvature keep H positive definite.
        if ys > 1e-10 && ys.is_finite() {
            if self.pairs.len() == self.history {
                self.pairs.pop_front();
            }
            let rho = Tensor::from(1.0 / ys).to_device(s.device());
            self.pairs.push_back((s, y, rho));
        }
        Ok(())
    }
}

impl Optimizer for Lbfgs {
    fn step(&mut self, at: &Point, objective: &mut Objective<'_>) -> Result<Step> {
        let g = &at.eval.gradient;
        let mut d = self.direction(g);
        let mut t = self.learning_rate * self.damping;
        if self.pairs.is_empty() {
            // Without curvature information the gradient's scale is meaningless: take a step
            // of unit L1 length at most, as PyTorch's and Torch7's L-BFGS do.
            let g_l1 = f64::try_from(g.abs().sum(Kind::Float))?;
            t *= (1.0 / g_l1).min(1.0);
        }
        let mut candidate = None;
        if self.line_search {
            let f0 = at.eval.terms.total;
            let mut gtd = f64::try_from(dot(g, &d))?;
            if gtd >= 0.0 {
                // Round-off made the direction point uphill: forget the history, go down.
                self.pairs.clear();
                d = -g;
                gtd = -f64::try_from(dot(g, g))?;
                let g_l1 = f64::try_from(g.abs().sum(Kind::Float))?;
                t = self.learning_rate * self.damping * (1.0 / g_l1).min(1.0);
            }
            for _ in 0..MAX_BACKTRACKS {
                let x = &at.x + &d * t;
                let eval = objective(&x)?;
                if eval.is_finite() && eval.terms.total <= f0 + ARMIJO_C1 * t * gtd {
                    candidate = Some(Point { x, eval });
                    break;
                }
                t *= 0.5;
            }
        } else {
            let x = &at.x + &d * t;
            let eval = objective(&x)?;
            if acceptable(at, &eval) {
                candidate = Some(Point { x, eval });
            }
        }
        match candidate {
            Some(p) => {
                self.remember(&p.x - &at.x, &p.eval.gradient - g)?;
                // A good step earns back some of the step length lost in recoveries.
                self.damping = (self.damping * 2.0).min(1.0);
                Ok(Step::Moved(p))
            }
            None => {
                self.reset();
                Ok(Step::Recovered)
            }
        }
    }
}

/// Adam (Kingma and Ba) with the usual bias correction.
pub(crate) struct Adam {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    t: i32,
    moments: Option<(Tensor, Tensor)>,
}

impl Adam {
    pub fn new(learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            t: 0,
            moments: None,
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, at: &Point, objective: &mut Objective<'_>) -> Result<Step> {
        let g = &at.eval.gradient;
        let (m, v) = match &self.moments {
            Some((m, v)) => (
                m * self.beta1 + g * (1.0 - self.beta1),
                v * self.beta2 + g.square() * (1.0 - self.beta2),
            ),
            None => (g * (1.0 - self.beta1), g.square() * (1.0 - self.beta2)),
        };
        let t = self.t + 1;
        let m_hat = &m / (1.0 - self.beta1.powi(t));
        let v_hat = &v / (1.0 - self.beta2.powi(t));
        let x = &at.x - m_hat / (v_hat.sqrt() + self.epsilon) * self.learning_rate;
        let eval = objective(&x)?;
        if acceptable(at, &eval) {
            self.t = t;
            self.moments = Some((m, v));
            Ok(Step::Moved(Point { x, eval }))
        } else {
            self.t = 0;
            self.moments = None;
            self.learning_rate *= 0.5;
            Ok(Step::Recovered)
        }
    }
}
